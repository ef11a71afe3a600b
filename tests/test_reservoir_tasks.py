"""Task generators against their defining recurrences and known properties; loaders round-trip files."""

import gzip

import numpy as np
import pytest

from diffring import DiffringError
from diffring.reservoir import (
    digits,
    flipflop,
    load_idx,
    load_npz,
    mackey_glass,
    mackey_glass_series,
    memory_capacity,
    mnist_idx,
    mnist_npz,
    narma10,
)
from diffring.reservoir._tasks import _flipflop_from


def test_narma10_matches_a_plain_loop():
    d = narma10(300, seed=4)
    u = d.inputs[0, :, 0]
    assert u.min() >= 0 and u.max() <= 0.5
    y = [0.0] * 301
    for t in range(300):
        s = sum(y[t - i] for i in range(10) if t - i >= 0)
        y[t + 1] = 0.3 * y[t] + 0.05 * y[t] * s + 1.5 * (u[t - 9] if t >= 9 else 0.0) * u[t] + 0.1
    np.testing.assert_allclose(d.y[0], y[1:], rtol=1e-14)


def test_narma10_without_input_settles_at_its_fixed_point():
    # u = 0: y* = 0.3 y* + 0.05 y* (10 y*) + 0.1, i.e. 0.5 y^2 - 0.7 y + 0.1 = 0
    d = narma10(500, u=np.zeros(500))
    assert d.y[0, -1] == pytest.approx(0.7 - np.sqrt(0.49 - 0.2), rel=1e-12)


def test_mackey_glass_fixed_point_and_convergence():
    # x = 1 is an equilibrium (0.2 * 1 / 2 - 0.1 * 1 = 0): a constant history stays there.
    x = mackey_glass_series(50, x0=1.0, seed=None, transient=0.0)
    np.testing.assert_allclose(x, 1.0, atol=1e-14)
    # Heun is second order: halving dt changes a short trajectory by about a quarter as much.
    a = mackey_glass_series(30, dt=0.1, transient=0.0)
    b = mackey_glass_series(30, dt=0.05, transient=0.0, seed=None)
    c = mackey_glass_series(30, dt=0.025, transient=0.0, seed=None)
    a = mackey_glass_series(30, dt=0.1, transient=0.0, seed=None)
    e1, e2 = np.max(np.abs(a - c)), np.max(np.abs(b - c))
    assert 2.5 < e1 / e2 < 5.5


def test_mackey_glass_tau17_is_chaotic_in_the_known_range():
    x = mackey_glass_series(2000)
    assert 0.2 < x.min() < 0.6 and 1.2 < x.max() < 1.45  # the classic tau = 17 attractor
    d = mackey_glass(500, horizons=(1, 5))
    np.testing.assert_array_equal(d.y[0, :-5, 1], d.inputs[0, 5:, 0])
    np.testing.assert_array_equal(d.y[0, :-1, 0], d.inputs[0, 1:, 0])


def test_memory_capacity_targets_are_delayed_inputs():
    d = memory_capacity(300, max_delay=7, seed=2)
    u = d.inputs[0, :, 0]
    for k in range(1, 8):
        np.testing.assert_array_equal(d.y[0, k:, k - 1], u[:-k])


def test_flipflop_reproduces_the_spec_example():
    # timed-automata spec 1.3: P = 4, u = a b a a b a a b -> y = 1 1 0 0 1 1 0 1
    sym = np.array([[0, 1, 0, 0, 1, 0, 0, 1]])
    d = _flipflop_from(sym, 4, 0.5, 1, np.array([False]))
    assert d.y[0].tolist() == [1, 1, 0, 0, 1, 1, 0, 1]
    assert d.masks["TD"][0].astype(int).tolist() == [1, 0, 1, 1, 0, 1, 1, 0]
    assert np.array_equal(d.masks["TI"], ~d.masks["TD"])
    g = flipflop(50, 40, 10, seed=1)
    assert g.inputs.shape == (50, 40, 2) and np.all(g.inputs.sum(-1) == 1)
    assert abs(g.masks["TD"].mean() - 0.5) < 0.05 and g.test.sum() == 10


def test_digits_is_the_shipped_set():
    d = digits(seed=0)
    assert d.inputs.shape == (1797, 8, 8) and d.inputs.max() == 1.0 and d.classification
    assert d.test.sum() == round(0.2 * 1797)
    assert np.array_equal(digits(seed=0).test, d.test) and not np.array_equal(digits(seed=1).test, d.test)


def _write_idx(path, a, compress):
    code = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}[a.dtype.type]
    head = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
    raw = head + a.astype(a.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(raw)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, rng, compress):
    imgs = rng.integers(0, 256, (5, 4, 3)).astype(np.uint8)
    labels = rng.integers(0, 10, 5).astype(np.uint8)
    ext = ".gz" if compress else ""
    _write_idx(tmp_path / f"x{ext}", imgs, compress)
    _write_idx(tmp_path / f"y{ext}", labels, compress)
    np.testing.assert_array_equal(load_idx(str(tmp_path / f"x{ext}")), imgs)
    f = rng.standard_normal((2, 3)).astype(np.float32)
    _write_idx(tmp_path / "f", f, False)
    np.testing.assert_array_equal(load_idx(str(tmp_path / "f")), f)
    d = mnist_idx(
        str(tmp_path / f"x{ext}"), str(tmp_path / f"y{ext}"), str(tmp_path / f"x{ext}"), str(tmp_path / f"y{ext}")
    )
    np.testing.assert_allclose(d.inputs[:5], imgs / 255.0)
    assert d.y.tolist() == labels.tolist() * 2 and d.test.tolist() == [False] * 5 + [True] * 5


def test_idx_errors_name_the_field(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DiffringError, match="task.path.*not an IDX"):
        load_idx(str(p))
    _write_idx(tmp_path / "x", np.zeros((2, 2, 2), np.uint8), False)
    p.write_bytes((tmp_path / "x").read_bytes()[:-1])
    with pytest.raises(DiffringError, match="needs 8"):
        load_idx(str(p))


def test_npz_loaders_round_trip(tmp_path, rng):
    xtr, xte = rng.integers(0, 256, (6, 5, 5)), rng.integers(0, 256, (3, 5, 5))
    ytr, yte = rng.integers(0, 10, 6), rng.integers(0, 10, 3)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    d = mnist_npz(str(tmp_path / "mnist.npz"))
    np.testing.assert_allclose(d.inputs, np.concatenate([xtr, xte]) / 255.0)
    assert d.test.sum() == 3 and d.y.tolist() == ytr.tolist() + yte.tolist()

    X, y = rng.standard_normal((10, 7, 2)), rng.standard_normal((10, 7))
    test = np.arange(10) >= 7
    np.savez(tmp_path / "seq.npz", X=X, y=y, test=test)
    s = load_npz(str(tmp_path / "seq.npz"))
    np.testing.assert_array_equal(s.inputs, X)
    np.testing.assert_array_equal(s.y, y)
    assert s.per_step and not s.classification and s.test.tolist() == test.tolist() and not s.is_image
    np.savez(tmp_path / "img.npz", images=xtr / 255.0, y=ytr)
    i = load_npz(str(tmp_path / "img.npz"), seed=3)
    assert i.is_image and i.classification and i.test.sum() == 1


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"y": np.zeros(3, int)}, "exactly one of arrays 'X' or 'images'"),
        ({"X": np.zeros((3, 4, 1))}, "expected an array 'y'"),
        ({"X": np.zeros((3, 4)), "y": np.zeros(3, int)}, r"task.path\[X\]"),
        ({"X": np.zeros((3, 4, 1)), "y": np.zeros((3, 5))}, r"task.path\[y\]"),
        ({"images": np.zeros((3, 4, 4)), "y": np.zeros(3, int), "test": np.ones(3, bool)}, r"task.path\[test\]"),
    ],
)
def test_npz_dataset_errors_name_the_field(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DiffringError, match=match):
        load_npz(str(tmp_path / "d.npz"))
