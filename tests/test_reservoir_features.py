"""On-the-fly features equal post-hoc extraction from a fully recorded run; the ESN equals a NumPy loop;
the pipeline's scores equal a NumPy recomputation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffring as dr
from diffring.reservoir import (
    Dataset,
    EchoStateNetwork,
    Features,
    MeanFiring,
    Phases,
    Ridge,
    SeriesEncoder,
    Snapshots,
    Voltages,
    esn_features,
    evaluate,
    raw_features,
    reservoir_features,
)


@pytest.fixture(scope="module")
def tiny():
    net = dr.small_world(5, (2, 4), eps=0.2, p=0.3, n_in=2, seed=1)
    model = dr.DiscreteMap(net, 0.05)
    s0 = dr.init.random_phase(net, jax.random.key(2), 0.05)
    X = np.random.default_rng(0).uniform(0, 1, (5, 20, 2))
    enc = SeriesEncoder(length=20, channels=2, hold=5, scale=0.3, noise=0.01)
    return model, s0, enc, X


def _full(model, s0, enc, X, key):
    """Every sample run alone with every step recorded (the post-hoc reference)."""
    keys = [jax.random.fold_in(key, i) for i in range(len(X))]
    sols = [
        dr.simulate(model, s0, n_steps=enc.n_steps, inputs=enc(jnp.asarray(x), k), record=dr.Record(every=1))
        for x, k in zip(X, keys, strict=True)
    ]
    return sols


def test_pooled_features_equal_post_hoc_extraction(tiny):
    model, s0, enc, X = tiny
    key = jax.random.key(7)
    feats = Features((Snapshots(), Voltages(), MeanFiring(), Phases()), n_times=5)
    F, status = reservoir_features(model, s0, enc, feats, X, key, chunk_size=2)  # 3 chunks, the last padded
    assert np.all(status == 0)
    idx = np.arange(0, 101, 25)
    for i, sol in enumerate(_full(model, s0, enc, X, key)):
        o, v = np.asarray(sol.o)[idx], np.asarray(sol.v)[idx]
        ph, ok = np.asarray(sol.phase)[idx], np.asarray(sol.phase_valid)[idx]
        want = np.concatenate(
            [
                o.ravel(),
                v.ravel(),
                (o < 0.5).mean(0),
                np.concatenate([np.cos(ph) * ok, np.sin(ph) * ok], axis=1).ravel(),
            ]
        )
        np.testing.assert_allclose(F[i], want, rtol=1e-12, atol=1e-12)


def test_per_step_features_equal_post_hoc_extraction(tiny):
    model, s0, enc, X = tiny
    key = jax.random.key(8)
    F, _ = reservoir_features(model, s0, enc, Features((Snapshots(),), every=5), X, key, per_step=True)
    assert F.shape == (5, 21, model.network.n_neurons)
    for i, sol in enumerate(_full(model, s0, enc, X, key)):
        np.testing.assert_array_equal(F[i], np.asarray(sol.o)[::5])


def test_esn_equals_a_numpy_loop():
    esn = EchoStateNetwork.random(12, 2, spectral_radius=0.8, density=0.5, leak=0.7, seed=3)
    W, win, b = (np.asarray(a) for a in (esn.W, esn.win, esn.bias))
    assert np.max(np.abs(np.linalg.eigvals(W))) == pytest.approx(0.8, rel=1e-12)
    x = np.random.default_rng(1).standard_normal((30, 2))
    h, ref = np.zeros(12), [np.zeros(12)]
    for t in range(30):
        h = 0.3 * h + 0.7 * np.tanh(W @ h + win @ x[t] + b)
        ref.append(h)
    got = np.asarray(esn.run(jnp.asarray(x), every=3))
    np.testing.assert_allclose(got, np.array(ref)[::3], rtol=1e-12, atol=1e-14)
    # through the harness: the encoder's drive once per held sample, unscaled (gain 1 / scale)
    enc = SeriesEncoder(length=30, channels=2, hold=4, scale=0.5)
    F = esn_features(esn, enc, Features(n_times=4), x[None], jax.random.key(0))
    np.testing.assert_allclose(F[0], np.array(ref)[::10].ravel(), rtol=1e-12, atol=1e-14)


def test_raw_features_delays():
    s = np.arange(12.0).reshape(1, 6, 2)
    r = np.asarray(raw_features(s, delays=2))
    assert r.shape == (1, 6, 6)
    np.testing.assert_array_equal(r[0, 3], [6, 7, 4, 5, 2, 3])
    np.testing.assert_array_equal(r[0, 0], [0, 1, 0, 0, 0, 0])


def test_evaluate_classification_equals_numpy_ridge(rng):
    n, d = 60, 5
    X = rng.standard_normal((n, d))
    y = rng.integers(0, 3, n)
    test = np.arange(n) >= 45
    data = Dataset("images:t", X[:, :, None], y, test=test)
    out = evaluate(data, X, Ridge(alphas=(0.5,)))
    # one-vs-rest ridge with an unpenalised intercept, in closed form
    Y = np.where(y[:, None] == np.arange(3)[None], 1.0, -1.0)
    Xa = np.hstack([X, np.ones((n, 1))])
    P = np.diag([1.0] * d + [0.0])
    Wt = np.linalg.solve(Xa[~test].T @ Xa[~test] + 0.5 * P, Xa[~test].T @ Y[~test])
    pred = np.argmax(Xa @ Wt, axis=1)
    assert out["train_accuracy"] == pytest.approx(np.mean(pred[~test] == y[~test]))
    assert out["test_accuracy"] == pytest.approx(np.mean(pred[test] == y[test]))
    assert out["confusion"].sum() == test.sum() and np.trace(out["confusion"]) == np.sum(pred[test] == y[test])


def test_evaluate_per_step_time_split_and_memory_capacity(rng):
    T = 400
    u = rng.uniform(-0.5, 0.5, T + 3)
    y = np.stack([u[3 - k : 3 - k + T] for k in (1, 2, 3)], -1)
    data = Dataset("memory_capacity", u[None, 3:, None], y[None], washout=10, test_from=300)
    feats = np.stack([u[3 - k : 3 - k + T] for k in range(0, 3)], -1)[None]  # u(t), u(t-1), u(t-2): exact for k < 3
    out = evaluate(data, feats, Ridge(alphas=(1e-9,)))
    assert out["memory_r2"][0] == pytest.approx(1.0, abs=1e-6) and out["memory_r2"][1] == pytest.approx(1.0, abs=1e-6)
    assert out["memory_r2"][2] < 0.05  # u(t-3) is independent of the features
    assert out["memory_capacity"] == pytest.approx(sum(out["memory_r2"]))


def test_evaluate_flipflop_accuracies_equal_recomputation():
    from diffring.reservoir import flipflop

    d = flipflop(40, 12, 4, seed=3)
    t = np.arange(12)
    theta = ((t % 4) < 2).astype(float)
    a, b = d.inputs[..., 0], d.inputs[..., 1]
    exact = np.stack([a * theta[None], b], -1)  # y = Theta(t) after a, 1 after b: linear in these
    out = evaluate(d, exact, Ridge(alphas=(1e-9,)))
    assert out["test_accuracy_TD"] == 1.0 and out["test_accuracy_TI"] == 1.0
    blind = d.inputs  # no clock: TD steps are at chance
    out = evaluate(d, blind, Ridge(alphas=(1e-9,)))
    hit = (out["predictions"][..., 0] >= 0.5) == (d.y >= 0.5)
    td = d.masks["TD"] & d.test[:, None]
    assert out["test_accuracy_TD"] == pytest.approx(hit[td].mean())
    assert out["test_accuracy_TI"] == 1.0
    per = out["test_accuracy_TD_per_step"]
    assert all(p == pytest.approx(hit[:, k][td[:, k]].mean()) for k, p in enumerate(per) if p is not None)


def test_nonnegative_drive_uses_the_packed_carry_and_matches_the_plain_one(tiny):
    model, s0, _, X = tiny
    enc = SeriesEncoder(length=20, channels=2, hold=5, scale=0.3)  # no noise, X >= 0: a nonnegative drive
    assert enc.nonnegative(X) and not SeriesEncoder(length=20, channels=2, noise=0.1).nonnegative(X)
    assert not SeriesEncoder(length=20, channels=2, offset=-1.0).nonnegative(X)
    assert dr.MapScan().resolve(model, s0, jnp.zeros((1, 2))).pack is True  # the path under test is the packed one
    F, _ = reservoir_features(model, s0, enc, Features((Snapshots(), Voltages()), n_times=5), X, jax.random.key(0))
    plain = dr.MapScan(pack=False)
    idx = np.arange(0, 101, 25)
    for i, x in enumerate(X):
        sol = dr.simulate(
            model, s0, n_steps=100, inputs=enc(jnp.asarray(x), None), record=dr.Record(every=1), method=plain
        )
        want = np.concatenate([np.asarray(sol.o)[idx].ravel(), np.asarray(sol.v)[idx].ravel()])
        np.testing.assert_allclose(F[i], want, rtol=1e-12, atol=1e-12)
