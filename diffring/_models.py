"""Three dynamics of one network: the published discrete map, the continuous hard-trigger flow
(event-driven, exact between switches) and the smooth relaxation used for gradients.

A model holds the network and its time step `dt`; `dt` is the map's step, and for the continuous
models the sampling (recording and input) interval. How a model is advanced lives in
`_simulate.py`, not here.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._errors import DiffringError, check_float, check_int
from ._network import Network
from ._threshold import AbstractThreshold, HardThreshold


class State(eqx.Module):
    """Network state: capacitor voltages `v` and outputs `o` (1 = rest, 0 = firing), each (n,)."""

    v: Float[Array, "*batch n"]
    o: Float[Array, "*batch n"]


def _theta(o, net):
    # Exact for o in {0, 1}: 1*theta_H + 0*theta_L == theta_H bit for bit.
    return o * net.theta_H + (1 - o) * net.theta_L


class AbstractModel(eqx.Module):
    """Dynamics of a `Network` sampled every `dt` time units."""

    network: eqx.AbstractVar[Network]
    dt: eqx.AbstractVar[float]

    @property
    def default_method(self):
        from ._simulate import MapScan

        return MapScan()


class AbstractSteppedModel(AbstractModel):
    """A model advanced one `dt` at a time by `make_step()`."""

    @abc.abstractmethod
    def make_step(self):
        """Return `step(state, x) -> (state, ok)` advancing by dt with input x (or None)."""


class DiscreteMap(AbstractSteppedModel):
    """The published discrete map (spec 1.1), reproduced exactly in float64.

    `threshold` selects the trigger: `HardThreshold()` (exact, the default),
    `SigmoidSurrogate(beta)` (exact forward, surrogate gradient) or `SoftThreshold(beta)`.
    """

    network: Network
    dt: float = eqx.field(static=True, default=0.01)
    threshold: AbstractThreshold = HardThreshold()

    def __check_init__(self):
        check_float("model.dt", self.dt, positive=True)

    def make_step(self):
        net, H = self.network, self.threshold
        alpha = jnp.exp(-jnp.asarray(self.dt, net.dtype) / net.tau)

        def step(state: State, x):
            u = net.drive(state.o, x)
            # = alpha v + (1 - alpha) u. One product only: XLA CPU contracts a*b + c*d into an FMA on
            # either product depending on fusion, so batched and single programs would round
            # differently; with one product the rounding is the same in every program.
            v = u + alpha * (state.v - u)
            d = u - v
            o = 1 - H(d - _theta(state.o, net))
            return State(v, o), jnp.asarray(True)

        return step

    def make_sign_packed_step(self, fold_inputs: bool = False):
        """`step(w, x) -> (w, ok)` on the sign-packed state w = v (o = 1) or -v (o = 0), shaped
        `network.coupling.layout`; only for `HardThreshold` with v >= 0 (see `MapScan(pack=...)`).

        The same arithmetic as `make_step`, so the results are identical: 1 - H(d - theta(o)) is
        `fire = d >= theta(o)` exactly (d - theta >= 0 iff d >= theta for floats), written as a
        comparison and in the coupling's own layout because XLA CPU then emits a vectorised loop.
        `fold_inputs` (only when `coupling.folds_input(win)`): x is then the step's precomputed
        input drive of the coupling's table rows (`coupling.row_drive`), the only rows Win reaches,
        added there instead of a dense Win x per step.
        """
        if not isinstance(self.threshold, HardThreshold):
            raise DiffringError("method.pack", True, "the sign-packed carry needs the hard threshold")
        net = self.network
        layout = net.coupling.layout

        def shaped(a):
            return a if jnp.ndim(a) == 0 else a.reshape(layout)

        alpha = shaped(jnp.exp(-jnp.asarray(self.dt, net.dtype) / net.tau))
        th_hi, th_lo = shaped(net.theta_H), shaped(net.theta_L)
        zero, one = jnp.zeros((), net.dtype), jnp.ones((), net.dtype)

        def step(w, x):
            resting = ~jnp.signbit(w)
            v = jnp.abs(w)
            o = jnp.where(resting, one, zero)
            if fold_inputs and x is not None:
                u = net.coupling(o.reshape(-1), row_input=x).reshape(layout)
            else:
                u = net.coupling.in_layout(o)
                if net.win is not None and x is not None:
                    u = u + (net.win @ x).reshape(layout)
            v = u + alpha * (v - u)
            d = u - v
            # One comparison against the selected threshold: selecting between two comparisons
            # makes XLA CPU blend boolean vectors, measured 20-30 % slower per step on the lattice.
            fire = d >= jnp.where(resting, th_hi, th_lo)
            return jnp.where(fire, -v, v), jnp.asarray(True)

        return step


class HardTrigger(AbstractSteppedModel):
    """Continuous time with the hard Schmitt trigger (spec 1.2), integrated event by event.

    Between switches every d = u - v decays as exp(-t/tau), so the only spontaneous events are firing
    neurons releasing when d falls to theta_L (at t = tau ln(d/theta_L)); rising input edges fire
    successors instantly and cascades are resolved at the event time. Exact up to rounding.
    Cost is O(n) per event, so it is a reference model for small and medium networks.
    `max_events` bounds the events per `dt` (0: 4 n + 16; exceeding it marks the run as failed,
    status 2). `dt` only sets the sampling (and input) interval: samples are exact, so a fire time read
    from them is late by [0, dt), and a period measured over m periods is within dt / m
    (tests/test_periods.py measures N = 2 ... 12 to 1e-5 this way).

    Derivatives: forward mode (`jax.jvp`, `jax.jacfwd`) differentiates through the event times and
    matches central differences of the flow (tests/test_gradients.py), also where several releases
    fall at the same instant (every pulse of a symmetric k | N orbit, or rings started from the same
    phase): the tangent rule steps them one release per event, so each keeps its own time tangent,
    while the plain run releases them together (faster; the same values to rounding). Reverse mode
    is not available (the event loop is a while loop); for gradients use `SmoothRelaxation` or a
    `DiscreteMap` with a surrogate threshold.
    """

    network: Network
    dt: float = eqx.field(static=True, default=0.01)
    max_events: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        check_float("model.dt", self.dt, positive=True)
        check_int("model.max_events", self.max_events, minimum=0)

    @property
    def default_method(self):
        from ._simulate import MapScan

        return MapScan()

    def make_step(self):
        net, dt = self.network, self.dt  # a Python float: the tangent rule must not close over arrays
        max_events = self.max_events or 4 * net.n_neurons + 16

        @jax.custom_jvp
        def events(net, state, x):
            return _hard_events(net, state, x, dt, max_events, one_at_a_time=False)

        @events.defjvp
        def events_jvp(primals, tangents):
            # Tangents from the one-release-per-event loop: the same flow (values within rounding),
            # but each of several simultaneous releases keeps its own time tangent.
            return jax.jvp(lambda *a: _hard_events(*a, dt, max_events, one_at_a_time=True), primals, tangents)

        return lambda state, x: events(net, state, x)


def _hard_settle(net, v, o, x, released, u, hold_due):
    """Resolve instantaneous switching at fixed v until the outputs stop changing (`u` is the drive of
    the outputs `o` on entry). With `hold_due`, a firing neuron whose d is below theta_L only by
    rounding (due to release now, by decay) is held for an event of its own, unless its input drops."""
    n = net.n_neurons
    d0 = u - v
    if hold_due:
        slack = 64 * jnp.finfo(v.dtype).eps * (1 + jnp.abs(d0) + jnp.abs(v))
        hold = (o == 0) & ~released & (d0 < net.theta_L) & (d0 >= net.theta_L - slack)

    def rule(o, d):
        theta = _theta(o, net)
        if hold_due:
            theta = jnp.where(hold & (o == 0), net.theta_L - slack, theta)
        fire = (d >= theta) & ~(released & (o == 0))
        return jnp.where(fire, jnp.zeros((), o.dtype), jnp.ones((), o.dtype))

    def cond(c):
        o, o_prev, i = c
        return (i < n + 2) & jnp.any(o != o_prev)

    def body(c):
        o, _, i = c
        return rule(o, net.drive(o, x) - v), o, i + 1

    o1 = rule(o, d0)
    o_final, o_prev, _ = jax.lax.while_loop(cond, body, (o1, o, jnp.asarray(0)))
    return o_final, jnp.all(o_final == o_prev)


def _hard_events(net, state, x, dt, max_events, one_at_a_time):
    """`HardTrigger`'s step: the event-driven flow over one `dt`. By default the neurons whose
    release times agree to 1e-12 (relative) release together in one event; `one_at_a_time` releases
    them one per event (in index order, at zero delay), which gives the same flow but lets each keep
    its own forward-mode time tangent (the tangent rule of `HardTrigger.make_step`)."""
    n = net.n_neurons
    tau = jnp.broadcast_to(net.tau, (n,))
    inf = jnp.asarray(jnp.inf, state.v.dtype)
    u0 = net.drive(state.o, x)
    o0, settled = _hard_settle(net, state.v, state.o, x, jnp.zeros(state.o.shape, bool), u0, one_at_a_time)

    def cond(c):
        v, o, t_left, k, ok = c
        return (t_left > 0) & (k < max_events) & ok

    def body(c):
        v, o, t_left, k, ok = c
        u = net.drive(o, x)
        d = u - v
        firing = o == 0
        above = firing & (d > net.theta_L)
        safe = jnp.where(firing & (d > 0), d, 2 * net.theta_L)
        delay = tau * jnp.log(safe / net.theta_L)
        # due now (d at theta_L up to rounding): delay 0; the tangent rule keeps the formula's tangent
        due = delay - jax.lax.stop_gradient(delay) if one_at_a_time else 0
        s_i = jnp.where(above, delay, jnp.where(firing, due, inf))
        if one_at_a_time:
            i = jnp.argmin(s_i)
            s = s_i[i]
            group = jnp.arange(n) == i
        else:
            s = jnp.min(s_i)
            group = firing & (s_i <= s * (1 + 1e-12))
        adv = jnp.minimum(s, t_left)
        v = u - d * jnp.exp(-adv / tau)
        event = s <= t_left
        o_new, settled = _hard_settle(net, v, o, x, event & group, u, one_at_a_time)
        o = jnp.where(event, o_new, o)
        t_left = jnp.where(event, t_left - adv, 0)
        return v, o, t_left, k + 1, ok & settled

    t_left = jnp.asarray(dt, state.v.dtype)
    v, o, t_left, _, ok = jax.lax.while_loop(cond, body, (state.v, o0, t_left, jnp.asarray(0), settled))
    return State(v, o), ok & (t_left <= 0)


def validate_state(network: Network, state: State, where: str = "init") -> State:
    """Check shapes, finiteness and the range of the outputs (o in [0, 1]) of a user-supplied state."""
    import numpy as np

    n = network.n_neurons
    for name in ("v", "o"):
        a = np.asarray(getattr(state, name))
        if a.shape[-1:] != (n,):
            raise DiffringError(f"{where}.{name}", f"shape {a.shape}", f"expected (..., {n}) for this network")
        if not np.all(np.isfinite(a)):
            raise DiffringError(f"{where}.{name}", "non-finite values", "expected finite values only")
    o = np.asarray(state.o)
    if np.any((o < 0) | (o > 1)):
        bad = float(o[(o < 0) | (o > 1)].flat[0])
        raise DiffringError(f"{where}.o", bad, "expected outputs in [0, 1] (1 at rest, 0 firing)")
    return state
