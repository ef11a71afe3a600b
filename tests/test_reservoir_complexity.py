"""Complexity measures against analytic cases and NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffring as dr
from diffring import DiffringError
from diffring.reservoir import _complexity as cx


def _np_pattern_entropy(o):
    _, counts = np.unique(o < 0.5, axis=0, return_counts=True)
    p = counts / counts.sum()
    return -np.sum(p * np.log2(p))


def _outputs(bits):
    return jnp.asarray(np.where(bits, 0.0, 1.0))  # firing = output 0


def test_neural_entropy_analytic_and_numpy(rng):
    T, n = 4000, 6
    p = np.array([0.0, 1.0, 0.5, 0.1, 0.25, 0.9])
    bits = rng.random((T, n)) < p[None, :]
    h = float(cx.neural_entropy(_outputs(bits)))
    q = bits.mean(0)
    hb = np.where(
        (q > 0) & (q < 1), -q * np.log2(np.clip(q, 1e-300, 1)) - (1 - q) * np.log2(np.clip(1 - q, 1e-300, 1)), 0
    )
    np.testing.assert_allclose(h, hb.mean(), rtol=1e-12)
    exact = np.mean([0, 0, 1, 0.4689955935892812, 0.8112781244591328, 0.4689955935892812])
    assert abs(h - exact) < 0.02
    alternating = np.tile(np.array([[True], [False]]), (50, 3))
    np.testing.assert_allclose(float(cx.neural_entropy(_outputs(alternating))), 1.0)


def test_pattern_entropy_uniform_bits_capped_by_samples(rng):
    # n = 3 fair bits, many samples: 3 bits
    bits = rng.random((20000, 3)) < 0.5
    entropy = jax.jit(cx.pattern_entropy)
    assert abs(float(entropy(_outputs(bits))) - 3.0) < 0.01
    # n = 80 fair bits, 64 samples: all patterns distinct, entropy = log2(64) = 6 (capped by samples)
    bits = rng.random((64, 80)) < 0.5
    np.testing.assert_allclose(float(entropy(_outputs(bits))), 6.0, rtol=1e-12)


def test_pattern_entropy_equals_numpy_with_repeats(rng):
    """Patterns over several 32-bit words, drawn from 5 prototypes with unequal frequencies; batched."""
    protos = rng.random((5, 70)) < 0.5
    idx = rng.choice(5, size=(3, 300), p=[0.5, 0.2, 0.15, 0.1, 0.05])
    bits = protos[idx]  # (3, 300, 70)
    got = np.asarray(jax.jit(cx.pattern_entropy)(_outputs(bits)))
    want = [_np_pattern_entropy(np.where(b, 0.0, 1.0)) for b in bits]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_hamming_distance_numpy(rng):
    a, b = rng.random((2, 4, 30, 11)) < 0.3
    got = np.asarray(cx.hamming_distance(_outputs(a), _outputs(b)))
    np.testing.assert_allclose(got, (a != b).mean(axis=(1, 2)), rtol=1e-12)


def test_effective_dimensionality_analytic(rng):
    d = 10
    iso = rng.normal(size=(40000, d))
    assert abs(float(cx.effective_dimensionality(jnp.asarray(iso))) - d) < 0.05 * d
    rank1 = rng.normal(size=(200, 1)) * rng.normal(size=(1, 30)) + rng.normal(size=(1, 30))
    np.testing.assert_allclose(float(cx.effective_dimensionality(jnp.asarray(rank1))), 1.0, rtol=1e-10)
    # exact spectrum: orthonormal centred columns scaled by sigma have covariance eigenvalues sigma^2 / (n - 1)
    Q, _ = np.linalg.qr(rng.normal(size=(50, 5)) - 0)
    Q = Q - Q.mean(0)
    Q, _ = np.linalg.qr(Q)  # orthonormal columns spanning centred vectors: still centred
    sig = np.array([3.0, 2.0, 1.0, 0.5, 0.1])
    want = (sig**2).sum() ** 2 / (sig**4).sum()
    np.testing.assert_allclose(float(cx.effective_dimensionality(jnp.asarray(Q * sig))), want, rtol=1e-10)
    assert float(cx.effective_dimensionality(jnp.ones((7, 3)))) == 0.0  # no variance: no dimension
    wide = rng.normal(size=(20, 60))  # dual path (d > n)
    lam = np.linalg.eigvalsh(np.cov(wide.T))
    np.testing.assert_allclose(
        float(cx.effective_dimensionality(jnp.asarray(wide))), lam.sum() ** 2 / (lam**2).sum(), rtol=1e-9
    )


def test_input_sensitivity_zero_for_identical_inputs_and_grows(key):
    net = dr.small_world(12, (3, 5), eps=0.2, p=0.3, n_in=2, input_weight=1.0, seed=1)
    model = dr.DiscreteMap(net, dt=0.05)
    s0 = dr.init.random_phase(net, key, dt=0.05)
    x = 0.3 * jax.random.uniform(jax.random.key(1), (3, 200, 2))
    same = cx.input_sensitivity(model, s0, x, jax.random.key(2), delta=0.0, every=5)
    np.testing.assert_array_equal(np.asarray(same), np.zeros(3))
    small = cx.input_sensitivity(model, s0, x, jax.random.key(2), delta=1e-9, every=5)
    big = cx.input_sensitivity(model, s0, x, jax.random.key(2), delta=0.3, every=5)
    # independent check of one member: simulate the two drives separately and compare with NumPy
    xi = jax.random.normal(jax.random.key(2), x.shape, x.dtype)
    rec = dr.Record(every=5, fields=("o",), phases=False)
    a = dr.simulate(model, s0, n_steps=200, record=rec, inputs=x[1]).o[1:]
    b = dr.simulate(model, s0, n_steps=200, record=rec, inputs=x[1] + 0.3 * xi[1]).o[1:]
    np.testing.assert_allclose(float(big[1]), np.mean(np.asarray(a) != np.asarray(b)), rtol=1e-12)
    assert float(jnp.mean(small)) <= float(jnp.mean(big)) and float(jnp.mean(big)) > 0.01


def test_complexity_errors():
    with pytest.raises(DiffringError, match="outputs"):
        cx.neural_entropy(jnp.zeros(5))
    with pytest.raises(DiffringError, match="features"):
        cx.effective_dimensionality(jnp.zeros((1, 3)))


def test_input_sensitivity_zero_for_an_input_independent_reservoir(key):
    """With zero input weights the outputs cannot depend on the input: distance exactly 0 at any delta."""
    net = dr.small_world(12, (3, 5), eps=0.2, p=0.3, n_in=2, input_weight=0.0, seed=1)
    model = dr.DiscreteMap(net, dt=0.05)
    s0 = dr.init.random_phase(net, key, dt=0.05)
    x = jax.random.uniform(jax.random.key(1), (3, 200, 2))
    got = cx.input_sensitivity(model, s0, x, jax.random.key(2), delta=10.0, every=5)
    np.testing.assert_array_equal(np.asarray(got), np.zeros(3))


def test_complexity_sweep_equals_measures_recomputed_by_hand():
    """Each row of the sweep equals the task score and the measures recomputed independently: each probe
    sample simulated alone and measured with NumPy; a disconnected input gives sensitivity exactly 0."""
    from diffring.reservoir import Dataset, Features, Ridge, SeriesEncoder, evaluate, reservoir_features

    rng = np.random.default_rng(3)
    n, T, hold = 24, 12, 4
    X = rng.uniform(0, 1, (n, T, 2))
    y = (X[:, :, 0].mean(1) > X[:, :, 1].mean(1)).astype(np.int64)
    data = Dataset("tiny", X, y, test=np.arange(n) % 4 == 0)
    enc = SeriesEncoder(length=T, channels=2, hold=hold, scale=0.5)  # noiseless: the drive ignores keys
    feats = Features(n_times=4)
    readout = Ridge(alphas=(1e-2, 1.0))

    def build(setting, seed):
        net = dr.small_world(6, (3, 3), eps=setting["eps"], p=0.3, n_in=2, input_weight=setting["w"], seed=seed)
        return dr.DiscreteMap(net, 0.05), dr.init.random_phase(net, jax.random.key(seed), 0.05)

    settings = [{"eps": 0.2, "w": 0.0}, {"eps": 0.5, "w": 1.0}]
    rows = cx.complexity_sweep(settings, build, data, enc, feats, seeds=(0, 1), readout=readout, n_probe=5)
    assert [(r["eps"], r["w"], r["seed"]) for r in rows] == [(0.2, 0.0, 0), (0.2, 0.0, 1), (0.5, 1.0, 0), (0.5, 1.0, 1)]
    for r in rows:
        model, s0 = build(r, r["seed"])
        F, _ = reservoir_features(model, s0, enc, feats, X, jax.random.key(0))
        assert r["test_accuracy"] == evaluate(data, F, readout)["test_accuracy"]
        lam = np.linalg.eigvalsh(np.cov(F.T))
        want = lam.sum() ** 2 / (lam**2).sum() if r["w"] else 0.0  # disconnected input: identical features
        np.testing.assert_allclose(r["effective_dim"], want, rtol=1e-8)
        rec = dr.Record(every=hold, fields=("o",), phases=False)
        o = [
            np.asarray(dr.simulate(model, s0, n_steps=T * hold, record=rec, inputs=enc(jnp.asarray(x), None)).o[1:])
            for x in X[:5]
        ]
        q = np.array([(b < 0.5).mean(0) for b in o])
        with np.errstate(divide="ignore", invalid="ignore"):
            hb = np.nan_to_num(-q * np.log2(q)) + np.nan_to_num(-(1 - q) * np.log2(1 - q))
        np.testing.assert_allclose(r["neural_entropy"], hb.mean(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(r["pattern_entropy"], np.mean([_np_pattern_entropy(b) for b in o]), rtol=1e-10)
        if r["w"] == 0.0:
            assert r["input_sensitivity"] == 0.0
        else:
            assert 0.0 <= r["input_sensitivity"] <= 1.0
        assert r["failed_runs"] == 0
