"""Gradient-based reservoir tuning: differentiate a task loss through the reservoir with respect to
its coupling strength eps, an input gain, its thresholds and its input weights; descend it with optax.

The outer loss is the validation error of the *optimal* readout: the ridge readout is fitted in
closed form on the training rows inside the loss (a Cholesky solve, differentiable), so the gradient
says how the reservoir should change for the best linear readout of its features to improve.

    space = TuningSpace.from_model(model)            # what is tuned, and how it enters the model
    problem = TuningProblem(model, state0, features, n_steps=..., alpha=1e-3, space=space)
    params = space.init(model)
    loss = problem.loss(params, x_train, y_train, x_val, y_val)     # drives (B, n_steps, n_in)
    params, history = tune(problem, params, optax.adam(1e-2), n_iter, data)

Which model to differentiate through (docs/gradients.md): the smooth model or the soft map
(`DiscreteMap(threshold=SoftThreshold(beta))`) give exact gradients; `SigmoidSurrogate(beta)` keeps
the exact hard map forward with a heuristic backward. Exact is not enough: through the soft map at
beta = 100 the loss is rough on the scale of one optimiser step (its gradient changes sign between
nearby points), so descent follows noise. docs/results/reservoir_tuning.md tunes the four global
quantities (`TuningSpace.from_model(model, frozen=("win",))`) through the soft map at beta = 10, where
the loss is smooth, and records what that gives in the soft map and transferred to the hard map.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from .._coupling import LatticeS0Coupling
from .._errors import DiffringError, check_float, check_int
from .._simulate import simulate_batch
from ._features import Features
from ._readouts import Ridge


class TunedParams(eqx.Module):
    """The tuned quantities: `log_eps_scale` (the eps links are multiplied by exp of it; 0 = as built),
    `log_win_scale` (one input gain: all input weights are multiplied by exp of it), `theta_H`,
    `theta_L` (as in the network: scalars or per-neuron) and the input weights `win` (only entries
    that are nonzero in the built network are used)."""

    log_eps_scale: Float[Array, ""]
    log_win_scale: Float[Array, ""]
    theta_H: Float[Array, "*n"]
    theta_L: Float[Array, "*n"]
    win: Float[Array, "n n_in"]


def _eps_mask(net) -> np.ndarray:
    """(n, k) mask of the in-neighbour table entries that are not ring synapses (the eps links)."""
    c = net.coupling
    index, weight = np.asarray(c.index), np.asarray(c.weight)
    rows = np.asarray(getattr(c, "rows", np.arange(index.shape[0])))  # a RingCoupling's table covers `rows` only
    members, sizes = np.asarray(net.rings.members), np.asarray(net.rings.sizes)
    ring = set()
    for m, s in zip(members, sizes, strict=True):
        for p in range(int(s)):
            ring.add((int(m[p]), int(m[(p - 1) % int(s)])))
    mask = np.zeros(index.shape)
    for i in range(index.shape[0]):
        for j in range(index.shape[1]):
            if weight[i, j] != 0 and (int(rows[i]), int(index[i, j])) not in ring:
                mask[i, j] = 1.0
    return mask


class TuningSpace(eqx.Module):
    """How `TunedParams` enter a model. `frozen` names parameters held at their initial values
    (any of "eps", "gain", "thresholds", "win"; frozen=("win",) tunes only the four global
    quantities eps scale, input gain, theta_H and theta_L); the eps links of a `SparseCoupling` are the in-neighbour
    entries that are not ring synapses (for a `RingCoupling`: entries of its table of extra rows), and
    of a `LatticeS0Coupling` its `eps`."""

    eps_mask: Float[Array, "n k"] | None
    win_mask: Float[Array, "n n_in"]
    frozen: tuple[str, ...] = eqx.field(static=True, default=())

    def __check_init__(self):
        for f in self.frozen:
            if f not in ("eps", "gain", "thresholds", "win"):
                raise DiffringError("tuning.frozen[]", f, "expected 'eps', 'gain', 'thresholds' or 'win'")

    @classmethod
    def from_model(cls, model, frozen: tuple[str, ...] = ()) -> TuningSpace:
        net = model.network
        if net.win is None:
            raise DiffringError("network.n_in", 0, "tuning needs a network with input weights (n_in >= 1)")
        if isinstance(net.coupling, LatticeS0Coupling):
            eps_mask = None
        elif hasattr(net.coupling, "index") and hasattr(net.coupling, "weight"):  # SparseCoupling, RingCoupling
            eps_mask = jnp.asarray(_eps_mask(net), net.dtype)
        else:
            raise DiffringError(
                "network.coupling",
                type(net.coupling).__name__,
                "expected a coupling with an in-neighbour table (SparseCoupling, RingCoupling) or LatticeS0Coupling",
            )
        win_mask = (net.win != 0).astype(net.dtype)
        return cls(eps_mask=eps_mask, win_mask=win_mask, frozen=tuple(frozen))

    def init(self, model) -> TunedParams:
        net = model.network
        zero = jnp.zeros((), net.dtype)
        return TunedParams(
            log_eps_scale=zero, log_win_scale=zero, theta_H=net.theta_H, theta_L=net.theta_L, win=net.win
        )

    def apply(self, params: TunedParams, model):
        """The model with the tuned values in place (frozen ones taken from `model`)."""
        net = model.network
        p = params
        scale = jnp.ones((), net.dtype) if "eps" in self.frozen else jnp.exp(p.log_eps_scale)
        th_H, th_L = (net.theta_H, net.theta_L) if "thresholds" in self.frozen else (p.theta_H, p.theta_L)
        win = net.win if "win" in self.frozen else p.win * self.win_mask
        if "gain" not in self.frozen:
            win = win * jnp.exp(p.log_win_scale)
        if self.eps_mask is None:
            coupling = eqx.tree_at(lambda c: c.eps, net.coupling, net.coupling.eps * scale)
        else:
            w = net.coupling.weight
            coupling = eqx.tree_at(lambda c: c.weight, net.coupling, w + (scale - 1) * self.eps_mask * w)
        net = eqx.tree_at(lambda n: (n.coupling, n.theta_H, n.theta_L, n.win), net, (coupling, th_H, th_L, win))
        return eqx.tree_at(lambda m: m.network, model, net)


class TuningProblem(eqx.Module):
    """A task loss of a reservoir, differentiable in `TunedParams`.

    Every sample (a drive of shape (n_steps, n_in)) is run from `state0` with `simulate_batch`;
    `features` says what is kept (its `pooled` vector per sample, or with `per_step` its `series`
    per record with the first `washout` records dropped, one row per remaining record). The ridge
    readout (alpha `alpha`, intercept, features standardised if `standardize`: off by default, since
    near-constant features of a tuned reservoir make the standardised loss jumpy) is fitted on the
    training rows and the loss is its mean squared error on the validation rows.
    """

    model: eqx.Module
    state0: eqx.Module
    features: Features = eqx.field(static=True)
    space: TuningSpace
    n_steps: int = eqx.field(static=True)
    alpha: float = 1e-3
    per_step: bool = eqx.field(static=True, default=False)
    washout: int = eqx.field(static=True, default=0)
    method: eqx.Module | None = None
    chunk_size: int | None = eqx.field(static=True, default=None)
    standardize: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_int("tuning.n_steps", self.n_steps, minimum=1)
        check_float("tuning.alpha", self.alpha, positive=True)
        check_int("tuning.washout", self.washout, minimum=0)

    def rows(self, params: TunedParams, inputs: Float[Array, "B n_steps n_in"]) -> Float[Array, "rows F"]:
        """Readout feature rows of a batch of drives under the tuned parameters."""
        if inputs.ndim != 3 or inputs.shape[1] != self.n_steps:
            raise DiffringError("inputs", f"shape {inputs.shape}", f"expected (B, n_steps = {self.n_steps}, n_in)")
        model = self.space.apply(params, self.model)
        B = inputs.shape[0]
        s0 = jax.tree.map(lambda a: jnp.broadcast_to(a, (B,) + a.shape), self.state0)
        sol = simulate_batch(
            model,
            s0,
            n_steps=self.n_steps,
            record=self.features.record(self.n_steps),
            inputs=inputs.astype(model.network.dtype),
            method=self.method,
            chunk_size=self.chunk_size,
        )
        if not self.per_step:
            return self.features.pooled(sol)
        series = self.features.series(sol)[:, 1 + self.washout :]  # record 0 is the common initial state
        return series.reshape(-1, series.shape[-1])

    def targets(self, Y):
        """Targets as rows: (B, k) per sample, or per record (B, K[, k]) -> ((K - washout) B, k), where
        K = n_steps / every counts the records after the initial state (record 0)."""
        Y = jnp.asarray(Y)
        if not self.per_step:
            return Y if Y.ndim == 2 else Y[:, None]
        Y = Y[:, self.washout :]
        return Y.reshape(-1, 1) if Y.ndim == 2 else Y.reshape(-1, Y.shape[-1])

    def readout(self) -> Ridge:
        return Ridge(alphas=(self.alpha,), standardize=self.standardize)

    def fit_predict(self, params, x_train, y_train, x_eval):
        """Fit the ridge readout on the training drives, predict the rows of `x_eval`."""
        ridge = self.readout()
        X = self.rows(params, x_train)
        state = ridge.fit(X, self.targets(y_train).astype(X.dtype))
        return ridge.predict(state, self.rows(params, x_eval))

    def loss(self, params, x_train, y_train, x_val, y_val) -> Float[Array, ""]:
        """Validation mean squared error of the ridge readout fitted on the training rows."""
        P = self.fit_predict(params, x_train, y_train, x_val)
        return jnp.mean((P - self.targets(y_val).astype(P.dtype)) ** 2)


def tune(
    problem: TuningProblem,
    params: TunedParams,
    optimizer: optax.GradientTransformation,
    n_iter: int,
    data: tuple,
    *,
    key=None,
    batch: int | None = None,
    callback: Callable | None = None,
):
    """Run `n_iter` optimiser steps on `problem.loss`; returns (params, losses (n_iter,)).

    `data = (x_train, y_train, x_val, y_val)`. With `batch`, each step uses `batch` random training
    and validation samples drawn from `key` (the loss is then stochastic); otherwise all of them.
    One compiled step (value and gradient, optimiser update) is called from a Python loop, so
    `callback(i, params, loss)` can log or stop. The thresholds are kept ordered
    (theta_L <= theta_H, both > 0) by projection after each step.
    """
    n_iter = check_int("tuning.n_iter", n_iter, minimum=1)
    x_tr, y_tr, x_val, y_val = (jnp.asarray(a) for a in data)
    key = jax.random.key(0) if key is None else key
    with jax.numpy_dtype_promotion("standard"):  # optax's step counters (see _readouts._optax_promotion)
        opt_state = optimizer.init(params)

    @eqx.filter_jit
    def step(params, opt_state, k):
        if batch is None:
            xt, yt, xv, yv = x_tr, y_tr, x_val, y_val
        else:
            k1, k2 = jax.random.split(k)
            it = jax.random.choice(k1, x_tr.shape[0], (min(batch, x_tr.shape[0]),), replace=False)
            iv = jax.random.choice(k2, x_val.shape[0], (min(batch, x_val.shape[0]),), replace=False)
            xt, yt, xv, yv = x_tr[it], y_tr[it], x_val[iv], y_val[iv]
        value, grad = eqx.filter_value_and_grad(problem.loss)(params, xt, yt, xv, yv)
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grad, opt_state, params)
        params = optax.apply_updates(params, updates)
        tiny = jnp.asarray(1e-3, params.theta_L.dtype)
        th_L = jnp.maximum(params.theta_L, tiny)
        params = eqx.tree_at(lambda p: (p.theta_L, p.theta_H), params, (th_L, jnp.maximum(params.theta_H, th_L)))
        return params, opt_state, value

    losses = []
    for i in range(n_iter):
        params, opt_state, value = step(params, opt_state, jax.random.fold_in(key, i))
        value = float(value)
        if not np.isfinite(value):
            raise DiffringError(
                "tuning.loss",
                value,
                f"non-finite loss at iteration {i}; lower the learning rate or the surrogate beta, or shorten the runs",
            )
        losses.append(value)
        if callback is not None and callback(i, params, value):
            break
    return params, np.asarray(losses)
