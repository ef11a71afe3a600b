"""Readouts against independent answers: NumPy closed-form ridge, brute-force k-fold selection,
scikit-learn's logistic regression, and the ridge optimum for RLS and gradient-trained readouts."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import diffring.reservoir as rs
from diffring import DiffringError


def _data(rng, n, d, k, noise=0.1):
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d)[None, :] + rng.normal(size=d)[None, :]
    W = rng.normal(size=(d, k))
    Y = X @ W + rng.normal(size=k)[None, :] + noise * rng.normal(size=(n, k))
    return X, Y


def _np_ridge(X, Y, alpha, standardize, intercept):
    mu = X.mean(0) if intercept else np.zeros(X.shape[1])
    ybar = Y.mean(0) if intercept else np.zeros(Y.shape[1])
    s = np.sqrt(((X - mu) ** 2).mean(0)) if standardize else np.ones(X.shape[1])
    Xc, Yc = (X - mu) / s, Y - ybar
    W = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ Yc)
    return lambda Z: ((Z - mu) / s) @ W + ybar


@pytest.mark.parametrize(
    "n, d, standardize, intercept",
    [(80, 12, False, True), (80, 12, True, True), (30, 50, True, True), (30, 50, False, False), (60, 5, True, False)],
)
def test_ridge_equals_numpy_closed_form(rng, n, d, standardize, intercept):
    X, Y = _data(rng, n, d, 3)
    Xt = rng.normal(size=(17, d))
    alpha = 0.37
    ridge = rs.Ridge(alphas=(alpha,), standardize=standardize, intercept=intercept)
    state = jax.jit(ridge.fit)(jnp.asarray(X), jnp.asarray(Y))
    ref = _np_ridge(X, Y, alpha, standardize, intercept)
    np.testing.assert_allclose(np.asarray(ridge.predict(state, jnp.asarray(Xt))), ref(Xt), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.asarray(ridge.predict(state, jnp.asarray(X))), ref(X), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("selection", [rs.KFold(k=4, seed=3), rs.ValidationSplit(fraction=0.25, seed=1)])
@pytest.mark.parametrize("d", [8, 70])  # primal and dual path
def test_ridge_alpha_selection_equals_brute_force(rng, selection, d):
    X, Y = _data(rng, 60, d, 2, noise=1.0)
    alphas = (1e-3, 1e-1, 1.0, 10.0, 100.0)
    ridge = rs.Ridge(alphas=alphas, selection=selection, standardize=True)
    state = jax.jit(ridge.fit)(jnp.asarray(X), jnp.asarray(Y))
    masks = selection.train_masks(60).astype(bool)
    scores = []
    for a in alphas:
        per = []
        for m in masks:
            f = _np_ridge(X[m], Y[m], a, True, True)
            per.append(np.mean((f(X[~m]) - Y[~m]) ** 2))
        scores.append(np.mean(per))
    np.testing.assert_allclose(np.asarray(state.scores), scores, rtol=1e-8)
    best = alphas[int(np.argmin(scores))]
    assert float(state.alpha) == best
    ref = _np_ridge(X, Y, best, True, True)
    np.testing.assert_allclose(np.asarray(ridge.predict(state, jnp.asarray(X))), ref(X), rtol=1e-9, atol=1e-9)


def test_kfold_masks_partition_rows():
    m = rs.KFold(k=3, seed=0).train_masks(10)
    assert m.shape == (3, 10)
    np.testing.assert_array_equal((1 - m).sum(0), np.ones(10))  # every row validates exactly once
    assert sorted((1 - m).sum(1).tolist()) == [3, 3, 4]


def test_ridge_vmaps_over_datasets(rng):
    X, Y = _data(rng, 40, 6, 2)
    Xs = jnp.stack([jnp.asarray(X), jnp.asarray(X[::-1] * 0.5)])
    Ys = jnp.stack([jnp.asarray(Y), jnp.asarray(Y)])
    ridge = rs.Ridge(alphas=(0.1, 1.0, 10.0), standardize=True)
    batched = jax.jit(jax.vmap(ridge.fit))(Xs, Ys)
    for b in range(2):
        single = jax.jit(ridge.fit)(Xs[b], Ys[b])
        np.testing.assert_allclose(np.asarray(batched.weight[b]), np.asarray(single.weight), rtol=1e-10, atol=1e-12)


def test_ridge_is_differentiable(rng):
    """d(validation loss)/d(features scale) through the Cholesky solve matches central differences."""
    X, Y = _data(rng, 30, 5, 2)
    Xv = rng.normal(size=(10, 5))
    ridge = rs.Ridge(alphas=(0.5,), standardize=False)

    def loss(c):
        st = ridge.fit(c * jnp.asarray(X), jnp.asarray(Y))
        return jnp.mean((ridge.predict(st, c * jnp.asarray(Xv)) - 1.0) ** 2)

    h = 1e-5
    loss = jax.jit(loss)
    fd = (loss(1.3 + h) - loss(1.3 - h)) / (2 * h)
    np.testing.assert_allclose(float(jax.jit(jax.grad(loss))(1.3)), float(fd), rtol=1e-7)


def test_rls_equals_ridge_with_penalised_bias(rng):
    X, Y = _data(rng, 200, 6, 3)
    alpha = 2.0
    rls = rs.RLS(forgetting=1.0, delta=alpha)
    state = jax.jit(rls.fit)(jnp.asarray(X), jnp.asarray(Y))
    Xa = np.concatenate([X, np.ones((200, 1))], axis=1)
    W = np.linalg.solve(Xa.T @ Xa + alpha * np.eye(7), Xa.T @ Y)
    np.testing.assert_allclose(np.asarray(state.weight), W, rtol=1e-8, atol=1e-10)
    ridge = rs.Ridge(alphas=(alpha,), intercept=False)
    rstate = ridge.fit(jnp.asarray(Xa), jnp.asarray(Y))
    np.testing.assert_allclose(np.asarray(state.weight), np.asarray(rstate.weight), rtol=1e-8, atol=1e-10)


def test_rls_streaming_equals_one_pass_and_converges(rng):
    """Two updates on halves equal one update on all rows; with forgetting < 1 on a drifting target the
    weights track the current one (exact linear data: the error vanishes)."""
    X, Y = _data(rng, 300, 4, 1, noise=0.0)
    rls = rs.RLS(delta=1e-3)
    s_all = rls.fit(jnp.asarray(X), jnp.asarray(Y))
    s = rls.init(4, 1)
    s = rls.update(s, jnp.asarray(X[:150]), jnp.asarray(Y[:150]))
    s = rls.update(s, jnp.asarray(X[150:]), jnp.asarray(Y[150:]))
    np.testing.assert_allclose(np.asarray(s.weight), np.asarray(s_all.weight), rtol=1e-9, atol=1e-12)
    W2 = rng.normal(size=(4, 1))
    Y2 = X @ W2 - 0.7
    forget = rs.RLS(forgetting=0.95, delta=1e-3)
    st = forget.update(forget.fit(jnp.asarray(X), jnp.asarray(Y)), jnp.asarray(X), jnp.asarray(Y2))
    np.testing.assert_allclose(np.asarray(st.weight[:4]), W2, atol=1e-6)
    np.testing.assert_allclose(float(st.weight[4, 0]), -0.7, atol=1e-6)


def test_rls_step_returns_prior_prediction(rng):
    rls = rs.RLS(delta=0.5)
    s = rls.fit(jnp.asarray(rng.normal(size=(5, 3))), jnp.asarray(rng.normal(size=(5, 2))))
    x, y = jnp.asarray(rng.normal(size=3)), jnp.asarray(rng.normal(size=2))
    s2, prior = rls.step(s, x, y)
    np.testing.assert_allclose(np.asarray(prior), np.asarray(rls.predict(s, x[None])[0]), rtol=1e-12)
    assert float(s2.count) == 6.0


def test_gradient_readout_lbfgs_reaches_ridge_optimum(rng):
    X, Y = _data(rng, 100, 6, 2)
    alpha = 3.0
    gr = rs.GradientReadout(optimizer=optax.lbfgs(), n_epochs=200, l2=alpha)
    state = eqx.filter_jit(gr.fit)(jnp.asarray(X), jnp.asarray(Y))
    ref = _np_ridge(X, Y, alpha, False, True)
    np.testing.assert_allclose(np.asarray(gr.predict(state, jnp.asarray(X))), ref(X), rtol=1e-7, atol=1e-7)


def test_gradient_readout_adam_minibatches_reach_ridge_objective(rng):
    X, Y = _data(rng, 128, 5, 1)
    X = (X - X.mean(0)) / X.std(0)
    alpha = 1.0
    gr = rs.GradientReadout(optimizer=optax.adam(3e-2), n_epochs=300, batch_size=32, l2=alpha)
    state = eqx.filter_jit(gr.fit)(jnp.asarray(X), jnp.asarray(Y))
    ridge = rs.Ridge(alphas=(alpha,))
    rstate = ridge.fit(jnp.asarray(X), jnp.asarray(Y))
    params_opt = ((rstate.weight, rstate.bias),)
    f_opt = float(gr.objective(params_opt, jnp.asarray(X), jnp.asarray(Y), 128))
    f = float(gr.objective(state.params, jnp.asarray(X), jnp.asarray(Y), 128))
    assert f_opt <= f <= f_opt * (1 + 1e-3)
    np.testing.assert_allclose(np.asarray(state.params[0][0]), np.asarray(rstate.weight), atol=2e-2)


def test_gradient_readout_cross_entropy_equals_sklearn_logistic(rng):
    from sklearn.linear_model import LogisticRegression

    n, d, c = 150, 4, 3
    centres = rng.normal(size=(c, d)) * 1.5
    y = rng.integers(0, c, size=n)
    X = centres[y] + rng.normal(size=(n, d))
    C = 0.5
    sk = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, y)
    gr = rs.GradientReadout(loss=rs.CrossEntropy(), optimizer=optax.lbfgs(), n_epochs=300, l2=1 / (2 * C))
    state = eqx.filter_jit(gr.fit)(jnp.asarray(X), rs.one_vs_rest(jnp.asarray(y), c, negative=0.0))
    # softmax weights are defined up to a common shift; the l2 penalty fixes it (columns sum to 0)
    np.testing.assert_allclose(np.asarray(state.params[0][0]), sk.coef_.T, atol=1e-5)
    p = jax.nn.softmax(gr.predict(state, jnp.asarray(X)), axis=1)
    np.testing.assert_allclose(np.asarray(p), sk.predict_proba(X), atol=1e-6)


def test_mlp_readout_fits_xor_which_linear_cannot(rng):
    """A problem no linear readout solves (XOR labels): ridge stays at chance, the MLP fits it."""
    X = rng.uniform(-1, 1, size=(200, 2))
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)
    Y = rs.one_vs_rest(jnp.asarray(y), 2, negative=0.0)
    ridge = rs.Ridge(alphas=(1e-3,))
    acc_lin = float(rs.accuracy(jnp.asarray(y), ridge.predict(ridge.fit(jnp.asarray(X), Y), jnp.asarray(X))))
    mlp = rs.GradientReadout(
        hidden=(16,), loss=rs.CrossEntropy(), optimizer=optax.adam(3e-2), n_epochs=300, batch_size=50, seed=1
    )
    st = eqx.filter_jit(mlp.fit)(jnp.asarray(X), Y)
    acc_mlp = float(rs.accuracy(jnp.asarray(y), mlp.predict(st, jnp.asarray(X))))
    assert acc_lin < 0.7 and acc_mlp > 0.95


def test_metrics_against_numpy(rng):
    y = rng.normal(size=(50, 2))
    np.testing.assert_allclose(float(rs.nrmse(jnp.asarray(y), jnp.broadcast_to(jnp.asarray(y.mean(0)), (50, 2)))), 1.0)
    yhat = y + 0.1 * rng.normal(size=y.shape)
    ref = np.sqrt(((y - yhat) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())
    np.testing.assert_allclose(float(rs.nrmse(jnp.asarray(y), jnp.asarray(yhat))), ref, rtol=1e-12)
    labels = rng.integers(0, 4, size=30)
    scores = rng.normal(size=(30, 4))
    np.testing.assert_allclose(
        float(rs.accuracy(jnp.asarray(labels), jnp.asarray(scores))), np.mean(scores.argmax(1) == labels)
    )
    T = np.asarray(rs.one_vs_rest(jnp.asarray(labels), 4))
    np.testing.assert_array_equal(T, np.where(np.eye(4)[labels] == 1, 1.0, -1.0))


def test_readout_errors_name_field():
    with pytest.raises(DiffringError, match="readout.alphas"):
        rs.Ridge(alphas=(0.0,))
    with pytest.raises(DiffringError, match="readout.forgetting"):
        rs.RLS(forgetting=1.5)
    ridge = rs.Ridge()
    st = ridge.init(3, 1)
    with pytest.raises(DiffringError, match="readout.X"):
        ridge.update(st, jnp.zeros((5, 4)), jnp.zeros((5, 1)))
    with pytest.raises(DiffringError, match="readout.Y"):
        ridge.update(st, jnp.zeros((5, 3)), jnp.zeros((4, 1)))
    with pytest.raises(DiffringError, match="non-finite"):
        ridge.update(st, jnp.full((5, 3), jnp.nan), jnp.zeros((5, 1)))
    with pytest.raises(DiffringError, match="readout.selection.k"):
        rs.Ridge(alphas=(1.0, 2.0), selection=rs.KFold(k=10)).fit(jnp.zeros((5, 3)), jnp.zeros((5, 1)))
