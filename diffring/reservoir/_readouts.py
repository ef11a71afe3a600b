"""Readouts: linear or small nonlinear maps from reservoir features to targets, in the optax style.

Every readout is a strategy object with three pure functions, so it can be jitted, vmapped over
seeds or folds, and differentiated (the ridge solve is differentiable, which the gradient tuning of
`_tuning.py` uses):

    state = readout.init(features_dim, n_out)      # or init(..., key) for random initialisations
    state = readout.update(state, X, Y)            # X (n, features_dim), Y (n, n_out)
    Y_hat = readout.predict(state, X)

`Ridge` is the closed form (batch: `update` refits on the rows it is given), `RLS` the online
recursive least squares / FORCE rule (`update` processes rows in order; `step` does one row), and
`GradientReadout` a linear map or small MLP trained by an optax optimiser on minibatches.
Classification uses one-vs-rest targets and argmax (`_metrics.py`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DiffringError, check_float, check_int


def _check_xy(X, Y, d=None, o=None):
    """Shapes at the boundary (static, so also valid under jit)."""
    if jnp.ndim(X) != 2:
        raise DiffringError("readout.X", f"shape {jnp.shape(X)}", "expected features of shape (n_samples, features)")
    if Y is not None:
        if jnp.ndim(Y) != 2 or jnp.shape(Y)[0] != jnp.shape(X)[0]:
            raise DiffringError(
                "readout.Y",
                f"shape {jnp.shape(Y)}",
                f"expected targets of shape (n_samples = {jnp.shape(X)[0]}, n_out)",
            )
        if o is not None and jnp.shape(Y)[1] != o:
            raise DiffringError("readout.Y", f"shape {jnp.shape(Y)}", f"expected {o} output columns (as in init)")
    if d is not None and jnp.shape(X)[1] != d:
        raise DiffringError("readout.X", f"shape {jnp.shape(X)}", f"expected {d} feature columns (as in init)")
    for name, a in (("readout.X", X), ("readout.Y", Y)):
        if a is not None and not isinstance(a, jax.core.Tracer) and not bool(np.all(np.isfinite(np.asarray(a)))):
            raise DiffringError(name, "non-finite values", "expected finite features and targets")


class AbstractReadout(eqx.Module):
    """A readout: `init(features_dim, n_out) -> state`, `update(state, X, Y) -> state`, `predict`."""

    @abc.abstractmethod
    def init(self, features_dim: int, n_out: int, key: PRNGKeyArray | None = None):
        """The untrained state for `features_dim` inputs and `n_out` outputs."""

    @abc.abstractmethod
    def update(self, state, X: Float[Array, "n d"], Y: Float[Array, "n k"]):
        """The state after learning from the rows of (X, Y)."""

    @abc.abstractmethod
    def predict(self, state, X: Float[Array, "n d"]) -> Float[Array, "n k"]:
        """Outputs for the rows of X."""

    def fit(self, X: Float[Array, "n d"], Y: Float[Array, "n k"], key: PRNGKeyArray | None = None):
        """`update(init(d, k, key), X, Y)`."""
        _check_xy(X, Y)
        return self.update(self.init(X.shape[1], Y.shape[1], key), X, Y)


# ----------------------------------------------------------------------------------------------
# Closed-form ridge


class AbstractAlphaSelection(eqx.Module):
    """How the ridge regularisation is chosen from a grid: a set of train/validation row splits."""

    @abc.abstractmethod
    def train_masks(self, n: int) -> np.ndarray:
        """(n_splits, n) array, 1.0 for the training rows of each split and 0.0 for its validation rows."""


class ValidationSplit(AbstractAlphaSelection):
    """One split: a seeded random `fraction` of the rows is held out for validation."""

    fraction: float = eqx.field(static=True, default=0.2)
    seed: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        check_float("readout.selection.fraction", self.fraction, lo=0.0, hi=1.0)
        check_int("readout.selection.seed", self.seed, minimum=0)

    def train_masks(self, n):
        n_val = int(round(self.fraction * n))
        if not 1 <= n_val < n:
            raise DiffringError(
                "readout.selection.fraction",
                self.fraction,
                f"expected at least one training and one validation row out of {n}",
            )
        perm = np.random.default_rng(self.seed).permutation(n)
        m = np.ones((1, n))
        m[0, perm[:n_val]] = 0.0
        return m


class KFold(AbstractAlphaSelection):
    """k splits: the rows are shuffled with `seed` and cut into k folds; each fold validates once."""

    k: int = eqx.field(static=True, default=5)
    seed: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        check_int("readout.selection.k", self.k, minimum=2)
        check_int("readout.selection.seed", self.seed, minimum=0)

    def train_masks(self, n):
        if n < self.k:
            raise DiffringError("readout.selection.k", self.k, f"expected at most n_samples = {n} folds")
        fold = np.empty(n, dtype=np.int64)
        fold[np.random.default_rng(self.seed).permutation(n)] = np.arange(n) % self.k
        return (fold[None, :] != np.arange(self.k)[:, None]).astype(float)


class RidgeState(eqx.Module):
    """A fitted ridge readout: `predict(X) = ((X - mean) / scale) @ weight + bias`.

    `alpha` is the regularisation used; `scores` the validation mean squared error of each alpha
    of the grid (averaged over splits), or None when the grid has one value.
    """

    mean: Float[Array, " d"]
    scale: Float[Array, " d"]
    weight: Float[Array, "d k"]
    bias: Float[Array, " k"]
    alpha: Float[Array, ""]
    scores: Float[Array, " n_alphas"] | None


def _moments(X, Y, m, standardize, intercept):
    """Weighted column means (zero without intercept) and scales (one without standardisation)."""
    n_m = jnp.sum(m)
    if intercept:
        mu = (m @ X) / n_m
        ybar = (m @ Y) / n_m
    else:
        mu = jnp.zeros(X.shape[1], X.dtype)
        ybar = jnp.zeros(Y.shape[1], Y.dtype)
    if standardize:
        var = (m @ (X - mu[None, :]) ** 2) / n_m
        # (Nearly) constant columns keep scale 1 instead of being blown up from rounding noise; the
        # inner where keeps sqrt's gradient finite.
        tol = (100 * jnp.finfo(X.dtype).eps * (1 + jnp.abs(mu))) ** 2
        live = var > tol
        s = jnp.where(live, jnp.sqrt(jnp.where(live, var, jnp.ones((), X.dtype))), jnp.ones((), X.dtype))
    else:
        s = jnp.ones(X.shape[1], X.dtype)
    return mu, s, ybar


def _ridge_path(X, Y, m, alphas, standardize, intercept):
    """Weights (n_alphas, d, k) fitted on the rows with m = 1, for every alpha, from one eigh."""
    mu, s, ybar = _moments(X, Y, m, standardize, intercept)
    Xm = (X - mu[None, :]) / s[None, :] * m[:, None]
    Ym = (Y - ybar[None, :]) * m[:, None]
    n, d = X.shape
    a = alphas[:, None, None]
    if d <= n:
        lam, V = jnp.linalg.eigh(Xm.T @ Xm)
        W = V[None] @ ((V.T @ (Xm.T @ Ym))[None] / (lam[None, :, None] + a))
    else:  # dual form: an (n, n) system instead of (d, d)
        lam, U = jnp.linalg.eigh(Xm @ Xm.T)
        A = U[None] @ ((U.T @ Ym)[None] / (lam[None, :, None] + a))
        W = Xm.T[None] @ A
    return mu, s, ybar, W


def _ridge_solve(X, Y, alpha, standardize, intercept):
    """The ridge solution on all rows at one alpha, by Cholesky (primal or dual, whichever is smaller)."""
    m = jnp.ones(X.shape[0], X.dtype)
    mu, s, ybar = _moments(X, Y, m, standardize, intercept)
    Xc = (X - mu[None, :]) / s[None, :]
    Yc = Y - ybar[None, :]
    n, d = X.shape
    if d <= n:
        G = Xc.T @ Xc + alpha * jnp.eye(d, dtype=X.dtype)
        W = jsl.cho_solve(jsl.cho_factor(G), Xc.T @ Yc)
    else:
        K = Xc @ Xc.T + alpha * jnp.eye(n, dtype=X.dtype)
        W = Xc.T @ jsl.cho_solve(jsl.cho_factor(K), Yc)
    return mu, s, ybar, W


class Ridge(AbstractReadout):
    """Closed-form ridge regression, multi-output: minimises ||Y - Xs W - b||^2 + alpha ||W||^2.

    `Xs` are the features, standardised per column (`standardize=True`, zero mean and unit variance
    on the training rows) or not; the intercept `b` is not penalised (`intercept=False` drops it).
    With several `alphas` the one with the smallest validation mean squared error under `selection`
    (`KFold(5)` by default, or `ValidationSplit`) is chosen, then the readout is refitted on all rows.
    The grid is searched with one eigendecomposition per split; the final solve is a Cholesky
    factorisation of the smaller of the (d, d) and (n, n) systems, and is differentiable.
    `update` refits on the rows it is given (ridge is a batch method; for streams use `RLS`).
    """

    alphas: tuple[float, ...] = eqx.field(static=True, default=(1e-4,))
    selection: AbstractAlphaSelection = KFold()
    standardize: bool = eqx.field(static=True, default=False)
    intercept: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if len(self.alphas) == 0:
            raise DiffringError("readout.alphas", list(self.alphas), "expected at least one alpha > 0")
        for a in self.alphas:
            check_float("readout.alphas[]", a, positive=True)

    def init(self, features_dim, n_out, key=None):
        d = check_int("readout.features_dim", features_dim, minimum=1)
        k = check_int("readout.n_out", n_out, minimum=1)
        dtype = jnp.result_type(float)
        return RidgeState(
            mean=jnp.zeros(d, dtype),
            scale=jnp.ones(d, dtype),
            weight=jnp.zeros((d, k), dtype),
            bias=jnp.zeros(k, dtype),
            alpha=jnp.asarray(self.alphas[0], dtype),
            scores=None if len(self.alphas) == 1 else jnp.zeros(len(self.alphas), dtype),
        )

    def update(self, state, X, Y):
        _check_xy(X, Y, state.weight.shape[0], state.weight.shape[1])
        dtype = jnp.result_type(X, Y)
        X, Y = X.astype(dtype), Y.astype(dtype)
        alphas = jnp.asarray(self.alphas, dtype)
        scores = None
        if len(self.alphas) == 1:
            alpha = alphas[0]
        else:
            masks = jnp.asarray(self.selection.train_masks(X.shape[0]), dtype)

            def split_score(m):
                mu, s, ybar, W = _ridge_path(X, Y, m, alphas, self.standardize, self.intercept)
                P = ((X - mu[None, :]) / s[None, :])[None] @ W + ybar[None, None, :]
                sq = jnp.sum((P - Y[None]) ** 2, axis=2)  # (n_alphas, n)
                v = 1 - m
                return (sq @ v) / (jnp.sum(v) * Y.shape[1])

            scores = jnp.mean(jax.vmap(split_score)(masks), axis=0)
            alpha = alphas[jnp.argmin(scores)]
        mu, s, ybar, W = _ridge_solve(X, Y, alpha, self.standardize, self.intercept)
        return RidgeState(mean=mu, scale=s, weight=W, bias=ybar, alpha=alpha, scores=scores)

    def predict(self, state, X):
        _check_xy(X, None, state.weight.shape[0])
        return ((X - state.mean[None, :]) / state.scale[None, :]) @ state.weight + state.bias[None, :]


# ----------------------------------------------------------------------------------------------
# Recursive least squares / FORCE


class RLSState(eqx.Module):
    """Inverse correlation estimate `P` and weights (the last row is the bias when `intercept`)."""

    P: Float[Array, "d1 d1"]
    weight: Float[Array, "d1 k"]
    count: Float[Array, ""]


class RLS(AbstractReadout):
    """Online recursive least squares with forgetting factor `forgetting` (lambda in (0, 1]).

    After rows x_1..x_n the weights minimise sum_i lambda^(n-i) |y_i - W' x_i|^2 +
    lambda^n delta |W|^2, where x carries a trailing 1 when `intercept` (so the bias is penalised
    too): with lambda = 1 this is exactly ridge with alpha = `delta` on the augmented features.
    `step` is one update and returns the prediction made *before* it: applied once per time step
    inside a closed loop this is the FORCE rule (Sussillo & Abbott 2009; P(0) = I / delta).
    """

    forgetting: float = 1.0
    delta: float = 1.0
    intercept: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_float("readout.forgetting", self.forgetting, positive=True, hi=1.0)
        check_float("readout.delta", self.delta, positive=True)

    def _aug(self, x):
        if not self.intercept:
            return x
        return jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)

    def init(self, features_dim, n_out, key=None):
        d = check_int("readout.features_dim", features_dim, minimum=1) + int(self.intercept)
        k = check_int("readout.n_out", n_out, minimum=1)
        dtype = jnp.result_type(float)
        return RLSState(
            P=jnp.eye(d, dtype=dtype) / jnp.asarray(self.delta, dtype),
            weight=jnp.zeros((d, k), dtype),
            count=jnp.zeros((), dtype),
        )

    def step(self, state: RLSState, x: Float[Array, " d"], y: Float[Array, " k"]) -> tuple[RLSState, Array]:
        """One RLS / FORCE update with the row (x, y); returns (new state, prediction before the update)."""
        dtype = state.P.dtype
        lam = jnp.asarray(self.forgetting, dtype)
        xa = self._aug(x.astype(dtype))
        y_prior = xa @ state.weight
        Px = state.P @ xa
        k = Px / (lam + xa @ Px)
        weight = state.weight + k[:, None] * (y.astype(dtype) - y_prior)[None, :]
        P = (state.P - k[:, None] * Px[None, :]) / lam
        P = 0.5 * (P + P.T)  # keep P symmetric against rounding drift
        return RLSState(P=P, weight=weight, count=state.count + 1), y_prior

    def update(self, state, X, Y):
        _check_xy(X, Y, state.weight.shape[0] - int(self.intercept), state.weight.shape[1])
        state, _ = jax.lax.scan(lambda s, xy: self.step(s, *xy), state, (X, Y))
        return state

    def predict(self, state, X):
        _check_xy(X, None, state.weight.shape[0] - int(self.intercept))
        return self._aug(X) @ state.weight


# ----------------------------------------------------------------------------------------------
# Gradient-trained readouts


class AbstractLoss(eqx.Module):
    """A training loss `loss(outputs, Y)`: mean over rows."""

    @abc.abstractmethod
    def __call__(self, outputs: Float[Array, "n k"], Y: Float[Array, "n k"]) -> Float[Array, ""]:
        """Mean loss over the rows."""


class MSE(AbstractLoss):
    """Mean over rows of the squared error summed over outputs (regression)."""

    def __call__(self, outputs, Y):
        return jnp.mean(jnp.sum((outputs - Y) ** 2, axis=1))


class CrossEntropy(AbstractLoss):
    """Mean over rows of -sum_k Y_k log softmax(outputs)_k; Y holds class probabilities (one-hot)."""

    def __call__(self, outputs, Y):
        return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(outputs, axis=1), axis=1))


def _optax_promotion():
    """Scoped standard dtype promotion around optax's own code, which mixes int32 step counts with
    floats (adam's bias correction, L-BFGS's memory index) and fails under strict promotion. Only the
    optimiser's internals are traced in this scope; the readout's own code stays strict-clean."""
    return jax.numpy_dtype_promotion("standard")


class GradientState(eqx.Module):
    """Layer parameters ((W, b), ...), the optimiser state, and the key for the next minibatches."""

    params: tuple
    opt_state: optax.OptState
    key: PRNGKeyArray


class GradientReadout(AbstractReadout):
    """A linear readout (`hidden=()`) or an MLP (`hidden=(64,)`, `activation` between layers)
    trained by an optax `optimizer` on `loss` (`MSE()` for regression, `CrossEntropy()` for
    classification on one-hot targets).

    Each `update` runs `n_epochs` epochs over the rows it is given, in minibatches of `batch_size`
    rows (None: full batch) drawn by a fresh permutation per epoch from the state's key (the
    remainder of an epoch is dropped, so shapes are static). The objective is
    loss + l2 / n_rows * sum of squared weights (biases are not penalised): for a linear readout with
    `MSE()` its minimum is the ridge solution with alpha = `l2`. Optimisers that need the objective
    (e.g. `optax.lbfgs()`) get it through `value_fn`.
    """

    hidden: tuple[int, ...] = eqx.field(static=True, default=())
    loss: AbstractLoss = MSE()
    optimizer: optax.GradientTransformation = eqx.field(static=True, default=optax.adam(1e-2))
    n_epochs: int = eqx.field(static=True, default=100)
    batch_size: int | None = eqx.field(static=True, default=None)
    l2: float = 0.0
    activation: Callable = eqx.field(static=True, default=jax.nn.tanh)
    seed: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        check_int("readout.n_epochs", self.n_epochs, minimum=1)
        if self.batch_size is not None:
            check_int("readout.batch_size", self.batch_size, minimum=1)
        check_float("readout.l2", self.l2, nonnegative=True)
        for h in self.hidden:
            check_int("readout.hidden[]", h, minimum=1)

    def init(self, features_dim, n_out, key=None):
        d = check_int("readout.features_dim", features_dim, minimum=1)
        k = check_int("readout.n_out", n_out, minimum=1)
        key = jax.random.key(self.seed) if key is None else key
        dtype = jnp.result_type(float)
        sizes = (d, *self.hidden, k)
        keys = jax.random.split(key, len(sizes))
        params = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            if i == len(sizes) - 2:  # the output layer starts at zero (a linear readout starts at W = 0)
                W = jnp.zeros((a, b), dtype)
            else:
                W = jax.random.normal(keys[i], (a, b), dtype) / jnp.sqrt(jnp.asarray(a, dtype))
            params.append((W, jnp.zeros(b, dtype)))
        params = tuple(params)
        with _optax_promotion():
            opt_state = self.optimizer.init(params)
        return GradientState(params=params, opt_state=opt_state, key=keys[-1])

    def _forward(self, params, X):
        h = X
        for W, b in params[:-1]:
            h = self.activation(h @ W + b[None, :])
        W, b = params[-1]
        return h @ W + b[None, :]

    def objective(self, params, X, Y, n_rows):
        """loss(forward(X), Y) + l2 / n_rows * sum of squared weights."""
        penalty = sum(jnp.sum(W**2) for W, _ in params)
        return self.loss(self._forward(params, X), Y) + jnp.asarray(self.l2, X.dtype) / n_rows * penalty

    def update(self, state, X, Y):
        d = state.params[0][0].shape[0]
        _check_xy(X, Y, d, state.params[-1][0].shape[1])
        n = X.shape[0]
        bs = n if self.batch_size is None else min(self.batch_size, n)
        n_batches = n // bs

        def batch_step(carry, idx):
            params, opt_state = carry
            Xb, Yb = X[idx], Y[idx]

            def value_fn(p):
                return self.objective(p, Xb, Yb, n)

            value, grad = jax.value_and_grad(value_fn)(params)
            with _optax_promotion():
                updates, opt_state = self.optimizer.update(
                    grad, opt_state, params, value=value, grad=grad, value_fn=value_fn
                )
            return (optax.apply_updates(params, updates), opt_state), value

        def epoch(carry, key):
            params, opt_state = carry
            if self.batch_size is None:
                order = jnp.arange(n)
            else:
                order = jax.random.permutation(key, n)
            idx = order[: n_batches * bs].reshape(n_batches, bs)
            carry, values = jax.lax.scan(batch_step, (params, opt_state), idx)
            return carry, values

        key, sub = jax.random.split(state.key)
        (params, opt_state), _ = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(sub, self.n_epochs)
        )
        return GradientState(params=params, opt_state=opt_state, key=key)

    def predict(self, state, X):
        _check_xy(X, None, state.params[0][0].shape[0])
        return self._forward(state.params, X)
