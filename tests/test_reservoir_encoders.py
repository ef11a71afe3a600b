"""Image and series encoders against hand-made images and hand-computed drives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffring import DiffringError
from diffring.reservoir import ImageEncoder, SeriesEncoder, hilbert_order, hold_index

# The Hilbert curve on a 4 x 4 grid, (row, col), drawn by hand from the standard picture
# (start top-left, first move down, end bottom-left).
HILBERT_4 = [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2), (0, 3), (1, 3), (1, 2),
             (2, 2), (2, 3), (3, 3), (3, 2), (3, 1), (2, 1), (2, 0), (3, 0)]  # fmt: skip


def test_hilbert_2x2_and_4x4_by_hand():
    assert [tuple(p) for p in hilbert_order(2)] == [(0, 0), (0, 1), (1, 1), (1, 0)]
    assert [tuple(p) for p in hilbert_order(4)] == HILBERT_4


@pytest.mark.parametrize("size", [8, 32])
def test_hilbert_visits_every_cell_by_unit_steps(size):
    o = hilbert_order(size)
    assert len({tuple(p) for p in o}) == size * size
    assert np.all(np.abs(np.diff(o, axis=0)).sum(axis=1) == 1)


def test_hilbert_rejects_non_power_of_two():
    with pytest.raises(DiffringError, match="encoder.size"):
        hilbert_order(6)


def test_hold_index_hold_lengths_and_repeat_fill():
    idx = hold_index(3, 2, 10)  # items 0,0,1,1,2,2 then repeat from the first rows
    assert idx.tolist() == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1]
    assert hold_index(5, 3, 7).tolist() == [0, 0, 0, 1, 1, 1, 2]  # cut when longer than the run


def test_image_encoder_windows_hold_and_fill_on_a_hand_made_image():
    # A 4 x 4 image whose pixel value is its own cell number: the Hilbert read-out then lists the
    # cell numbers in curve order, so every window's contents are known by hand.
    img = np.arange(16, dtype=np.float64).reshape(4, 4)
    enc = ImageEncoder(size=4, window=3, hold=2, steps=31, scale=1.0, noise=0.0)
    seq = [4 * r + c for r, c in HILBERT_4]
    x = np.asarray(enc(jnp.asarray(img), None))
    assert x.shape == (31, 3)
    n_rows = 16 - 3 + 1
    for step in range(31):
        row = (step % (n_rows * 2)) // 2
        assert x[step].tolist() == seq[row : row + 3], step
    # hold: each window for exactly 2 consecutive steps; the fill restarts at the first window
    assert np.array_equal(x[0], x[1]) and not np.array_equal(x[1], x[2])
    assert np.array_equal(x[28], x[0]) and np.array_equal(x[30], x[2])


def test_image_encoder_scale_noise_and_resize():
    img = np.ones((2, 2))
    enc = ImageEncoder(size=4, window=2, hold=1, steps=15, scale=0.5, noise=0.0)
    x = np.asarray(enc(jnp.asarray(img), None))
    np.testing.assert_allclose(x, 0.5)  # a constant image stays constant under resizing
    noisy = ImageEncoder(size=4, window=2, hold=1, steps=15, scale=0.5, noise=0.1)
    k = jax.random.key(3)
    a, b = np.asarray(noisy(jnp.asarray(img), k)), np.asarray(noisy(jnp.asarray(img), k))
    assert np.array_equal(a, b)  # seeded
    seq = np.asarray(noisy.sequence(jnp.asarray(img), k))
    order = hilbert_order(4)
    noise = 0.1 * np.asarray(jax.random.normal(k, (4, 4), jnp.float64))
    np.testing.assert_allclose(seq, 0.5 + noise[order[:, 0], order[:, 1]], rtol=1e-12)


def test_series_encoder_holds_each_sample():
    s = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    enc = SeriesEncoder(length=3, channels=2, hold=4, scale=2.0, offset=0.5)
    x = np.asarray(enc(jnp.asarray(s), None))
    assert x.shape == (12, 2)
    for t in range(12):
        np.testing.assert_array_equal(x[t], 2.0 * s[t // 4] + 0.5)
    with pytest.raises(DiffringError, match="X"):
        enc(jnp.ones((4, 2)), None)
