"""`ODESolve`: integrate the smooth relaxation with diffrax (adaptive or fixed steps), or with the
fixed-step `ScanAdjoint` route built for reverse mode. Shares records, status and phases with
`MapScan` through `_simulate.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._errors import DiffringError, check_float, check_int
from ._fusion import materialised_div, runtime_one
from ._phases import order_parameter
from ._simulate import (
    STATUS_NONFINITE,
    STATUS_OK,
    STATUS_SOLVER_FAILURE,
    AbstractMethod,
    _finite,
    _scan_records,
    _solution,
)
from ._smooth import SmoothRelaxation


class _LaneIndependentTerm(diffrax.ODETerm):
    """An `ODETerm` that turns off first-same-as-last (FSAL) reuse in diffrax's Runge-Kutta solvers.

    Under `vmap`, diffrax re-evaluates the first stage of *every* member while *any* member is still
    on its first step (`unvmap_any`), which changes members' rounding and hence their adaptive step
    sequences: a batch would no longer equal its single runs. Without FSAL every step evaluates all
    stages in every member (one extra vector-field call per step for Tsit5), so member b of a batch
    is bit-for-bit the single run of member b.
    """

    def is_vf_expensive(self, t0, t1, y, args) -> bool:
        return True


def _held(vector_field, jumps, t, y, inputs):
    """The field with input row i on [jumps[i - 1], jumps[i]): the row is found by comparing t with
    the very floats the solver steps to (`jump_ts`), so a stage just before a sample time reads
    that sample's own row (floor((t - t0) / dt) reads the next row at 9 % of sample times, dt 0.01)."""
    i = jnp.searchsorted(jumps, t, side="right", method="scan_unrolled")
    return vector_field(t, y, inputs[i][None])


def _weighted(coeffs, ks):
    """sum_j coeffs[j] ks[j] over the nonzero coefficients, leaf by leaf (a Runge-Kutta stage sum)."""
    terms = [(w, k) for w, k in zip(coeffs, ks, strict=False) if w != 0]
    return jax.tree.map(lambda *k: sum(w * kj for (w, _), kj in zip(terms, k, strict=True)), *[k for _, k in terms])


def steps_per_sample(dt: float, dt0: float | None, field: str = "method.dt0") -> int:
    """dt / dt0 (dt0 None: dt) as the whole number of fixed steps in one sampling interval; `field`
    names dt0 in the error (the config calls it model.dt0)."""
    dt0 = dt if dt0 is None else dt0
    m = int(round(dt / dt0))
    if m < 1 or abs(m * dt0 - dt) > 1e-9 * dt:
        raise DiffringError(field, dt0, f"the fixed-step route (ScanAdjoint) needs model.dt / dt0 to be a whole "
                                        f"number (model.dt = {dt})")
    return m


class ScanAdjoint(eqx.Module):
    """Fixed-step route of `ODESolve`, built for reverse mode (`ODESolve(adjoint=ScanAdjoint())`).

    The explicit Runge-Kutta tableau of `ODESolve.solver` is written out stage by stage inside a
    `lax.scan` of fixed steps `dt0` (diffrax runs stages in a checkpointed loop whose reverse pass
    costs about twice as much on CPU), the input is held over each sampling interval, and record
    blocks are rematerialised in segments of `segment` blocks as in `MapScan(checkpoint=True)`: the
    backward pass holds about n_blocks / segment + segment states plus one block's stages.
    Needs `stepsize_controller=diffrax.ConstantStepSize()`, `model.dt / dt0` a whole number and an
    explicit Runge-Kutta solver (Euler, Heun, Midpoint, Ralston, Bosh3, Tsit5, Dopri5, Dopri8).
    """

    segment: int = eqx.field(static=True, default=1000)

    def __check_init__(self):
        check_int("method.adjoint.segment", self.segment, minimum=1)


def _explicit_rk(solver):
    """The Butcher tableau (c, a_lower, b_sol) of an explicit Runge-Kutta solver, as Python floats."""
    if isinstance(solver, diffrax.Euler):
        return (), (), (1.0,)
    tab = getattr(solver, "tableau", None)
    if not isinstance(solver, diffrax.AbstractERK) or not isinstance(tab, diffrax.ButcherTableau):
        raise DiffringError("method.solver", type(solver).__name__,
                            "ScanAdjoint needs an explicit Runge-Kutta solver (Euler, Heun, Midpoint, Ralston, "
                            "Bosh3, Tsit5, Dopri5, Dopri8)")
    return (tuple(float(x) for x in tab.c), tuple(tuple(float(x) for x in row) for row in tab.a_lower),
            tuple(float(x) for x in tab.b_sol))


def _rk_step(f, tableau, h, y0, one=None):
    """One explicit Runge-Kutta step y0 -> y1 of size h, stages written out (no stage loop).

    Stages after the last one with a weight in y1 (the FSAL stage of Tsit5/Dopri5) are skipped.
    With `one = runtime_one(dtype)` every stage input and stage derivative is materialised
    (`materialised_div`), so XLA evaluates each once instead of inside every kernel that reads it;
    the reverse pass's cotangents go through the same divisions. The step is the same to rounding
    (XLA contracts multiply-adds differently across the new kernel boundaries). On a
    10 x 10 S0 lattice of 6-rings (Tsit5) this cuts the arithmetic per element and step from 424 to
    185 in the forward loop and from 2225 to 811 in the reverse loop (benchmarks/bench_gradient.py).
    """
    c, a, b = tableau

    def keep(x):
        return x if one is None else materialised_div(x, one)

    def combine(coeffs, ks):
        if not any(coeffs[: len(ks)]):  # a stage evaluated at y0 itself
            return y0
        return jax.tree.map(lambda y, k: y + h * k, y0, _weighted(coeffs, ks))

    last = max(i for i, w in enumerate(b) if w != 0)
    ks = [keep(f(y0))]
    for i in range(1, last + 1):
        ks.append(keep(f(keep(combine(a[i - 1], ks)))))
    return combine(b, ks)


def _hoist_thresholds(model):
    """The same model, rearranged for a cheap reverse pass; values are bitwise the same.

    `SmoothRelaxation.effective_thresholds` depends on parameters only: it is evaluated once here, not
    in every field evaluation (XLA hoists it out of the forward loop but not out of the reverse pass,
    where its scalar chain cost as much as the rest of the field). Scalar tau and thresholds are
    broadcast to per-neuron arrays, so that the reverse pass accumulates their cotangents elementwise
    and sums over neurons once, instead of reducing over neurons at every stage of every step.
    """
    net = model.network
    lo, hi = model.effective_thresholds()
    shape = (net.n_neurons,)
    net = eqx.tree_at(
        lambda n: (n.tau, n.theta_L, n.theta_H),
        net,
        (jnp.broadcast_to(net.tau, shape), jnp.broadcast_to(lo, shape), jnp.broadcast_to(hi, shape)),
    )
    return dataclasses.replace(model, network=net, corrected=False)


class ODESolve(AbstractMethod):
    """Integrate `SmoothRelaxation` with `diffrax.diffeqsolve`.

    `stepsize_controller=None` means `PIDController(rtol, atol)` (adaptive); pass
    `diffrax.ConstantStepSize()` with `dt0` for fixed steps. `adjoint` (how reverse mode is done)
    defaults to diffrax's `RecursiveCheckpointAdjoint(checkpoints)`, whose memory is bounded by
    `checkpoints` states (None: about sqrt(2 max_steps)); any diffrax adjoint may be passed; or
    `ScanAdjoint()` for fixed steps, which is several times faster in reverse mode (see its
    docstring and docs/gradients.md).
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    stepsize_controller: diffrax.AbstractStepSizeController | None = None
    dt0: float | None = eqx.field(static=True, default=None)
    rtol: float = eqx.field(static=True, default=1e-6)
    atol: float = eqx.field(static=True, default=1e-8)
    max_steps: int | None = eqx.field(static=True, default=None)
    checkpoints: int | None = eqx.field(static=True, default=None)
    adjoint: diffrax.AbstractAdjoint | ScanAdjoint | None = None

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise DiffringError("method.solver", self.solver, "expected a diffrax solver, e.g. diffrax.Tsit5()")
        if self.stepsize_controller is not None and not isinstance(
            self.stepsize_controller, diffrax.AbstractStepSizeController
        ):
            raise DiffringError("method.stepsize_controller", self.stepsize_controller,
                                "expected a diffrax step-size controller, e.g. diffrax.ConstantStepSize()")
        check_float("method.rtol", self.rtol, positive=True)
        check_float("method.atol", self.atol, positive=True)
        if self.dt0 is not None:
            check_float("method.dt0", self.dt0, positive=True)
        if self.max_steps is not None:
            check_int("method.max_steps", self.max_steps, minimum=1)
        if self.checkpoints is not None:
            check_int("method.checkpoints", self.checkpoints, minimum=1)
            if self.adjoint is not None:
                raise DiffringError("method.checkpoints", self.checkpoints,
                                    "applies to the default adjoint only; pass RecursiveCheckpointAdjoint(checkpoints)")
        if self.adjoint is not None and not isinstance(self.adjoint, diffrax.AbstractAdjoint | ScanAdjoint):
            raise DiffringError("method.adjoint", type(self.adjoint).__name__,
                                "expected a diffrax adjoint or diffring.ScanAdjoint()")

    def fixed_steps(self, model: SmoothRelaxation) -> int:
        """Checks that this method can take the fixed-step route (a `ConstantStepSize` controller, an
        explicit Runge-Kutta solver, `model.dt / dt0` whole) and returns the steps per sample."""
        if not isinstance(self.stepsize_controller, diffrax.ConstantStepSize):
            raise DiffringError("method.stepsize_controller", type(self.stepsize_controller).__name__,
                                "ScanAdjoint takes fixed steps: expected diffrax.ConstantStepSize()")
        _explicit_rk(self.solver)
        return steps_per_sample(model.dt, self.dt0)

    def sample_step(self, model: SmoothRelaxation):
        """The fixed-step route's step over one sampling interval, `step(state, x) -> (state, True)`:
        `model.dt / dt0` Runge-Kutta steps of the solver's tableau with the input `x` held. The
        `ScanAdjoint` route scans it; `Sharded` scans it on each device's block. Returns (step, m)."""
        m = self.fixed_steps(model)
        tableau = _explicit_rk(self.solver)
        net = model.network
        model = _hoist_thresholds(model)
        h = jnp.asarray(model.dt / m, net.dtype)
        zero = jnp.zeros((), net.dtype)

        def step(state, x):
            # A one-row input table: the field's time lookup then always returns x, i.e. the input
            # is held over the whole sampling interval, as in the discrete map.
            table = None if x is None else x[None]

            def f(y):
                return model.vector_field(zero, y, table)

            one = runtime_one(net.dtype)
            if m == 1:
                state = _rk_step(f, tableau, h, state, one)
            else:
                state, _ = jax.lax.scan(lambda y, _: (_rk_step(f, tableau, h, y, one), None), state, None, length=m)
            return state, jnp.asarray(True)

        return step, m

    def _run_scan(self, model, state0, inputs, tracker0, t0, n_steps, record):
        step, m = self.sample_step(model)
        t, recs, status, state, tracker = _scan_records(
            model.network, step, model.dt, state0, inputs, tracker0, t0, n_steps, record, 1, True, self.adjoint.segment
        )
        return _solution(t, recs, status, state, tracker, {"num_steps": jnp.asarray(n_steps * m)}, record)

    def run(self, model, state0, inputs, tracker0, t0, n_steps, record):
        if not isinstance(model, SmoothRelaxation):
            raise DiffringError("method", "ODESolve",
                                f"ODESolve integrates SmoothRelaxation, not {type(model).__name__}")
        if isinstance(self.adjoint, ScanAdjoint):
            return self._run_scan(model, state0, inputs, tracker0, t0, n_steps, record)
        net = model.network
        dtype = net.dtype
        every = record.every
        n_rec = n_steps // every + 1
        t0 = jnp.asarray(t0, dtype)
        ts = t0 + (every * jnp.arange(n_rec)).astype(dtype) * jnp.asarray(model.dt, dtype)
        t1 = ts[-1]
        controller = self.stepsize_controller
        if controller is None:
            controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
        # inputs[i] drives [t0 + i dt, t0 + (i + 1) dt). An adaptive solver steps to just before each
        # sample time and restarts just after it (diffrax's `jump_ts`), so no step straddles two
        # samples. ConstantStepSize is left alone: its last stage reads the next sample (ScanAdjoint
        # holds the input; docs/smooth_model.md).
        field = _hoist_thresholds(model).vector_field
        if inputs is not None:
            jumps = t0 + jnp.arange(1, n_steps).astype(dtype) * jnp.asarray(model.dt, dtype)
            field = eqx.Partial(_held, field, jumps)
            if n_steps > 1 and not isinstance(controller, diffrax.ConstantStepSize | diffrax.ClipStepSizeController):
                controller = diffrax.ClipStepSizeController(controller, jump_ts=jumps)
        dt0 = self.dt0 if self.dt0 is not None else model.dt
        max_steps = self.max_steps
        if max_steps is None:
            fixed = isinstance(controller, diffrax.ConstantStepSize)
            max_steps = int(np.ceil(n_steps * model.dt / dt0)) + 8 if fixed else max(16 * n_steps, 4096)
        adjoint = self.adjoint if self.adjoint is not None else diffrax.RecursiveCheckpointAdjoint(self.checkpoints)
        probes = net.rings.probes

        def fn(t, y, args):
            out = {f: record.select(net, getattr(y, f)) for f in record.fields}
            if record.phases:  # the phase tracker's input; not stored when phases are off
                out["probe_o"] = y.o[probes]
            if record.reduce is not None:
                out["reduced"] = record.reduce(t, y)
            if record.observe is not None:
                out["state"] = y
            return out

        saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts, fn=fn), diffrax.SubSaveAt(t1=True)])
        sol = diffrax.diffeqsolve(
            _LaneIndependentTerm(field),
            self.solver,
            t0,
            t1,
            jnp.asarray(dt0, dtype),
            state0,
            args=inputs,
            saveat=saveat,
            stepsize_controller=controller,
            adjoint=adjoint,
            max_steps=max_steps,
            throw=False,
        )
        saved, final = sol.ys
        state = jax.tree.map(lambda a: a[0], final)
        recs: dict[str, Any] = {f: saved[f] for f in record.fields}
        if record.reduce is not None:
            recs["reduced"] = saved["reduced"]
        tracker = tracker0
        if record.phases:

            def observe(t, y, theta, valid):
                return None if record.observe is None else record.observe(t, y, theta, valid)

            def track(tr, x):
                t, o, y = x
                tr = tr.update(o, t)
                theta, valid = tr.phase(t)
                return tr, (theta, valid, observe(t, y, theta, valid))

            # Record 0 is the initial state the tracker already holds.
            first = tracker0.phase(ts[0])
            ys = jax.tree.map(lambda a: a[1:], saved["state"]) if record.observe is not None else None
            tracker, (theta, valid, obs) = jax.lax.scan(track, tracker0, (ts[1:], saved["probe_o"][1:], ys))
            if record.observe is not None:
                obs0 = observe(ts[0], state0, *first)
                recs["observed"] = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), obs0, obs)
            theta = jnp.concatenate([first[0][None], theta])
            valid = jnp.concatenate([first[1][None], valid])
            recs.update(phase=theta, phase_valid=valid, R=order_parameter(theta, valid))
        finite = _finite(state)
        # A non-finite start (state or parameters) makes diffrax reject every step until max_steps;
        # report it as non-finite, not as a solver failure.
        finite0 = _finite(state0) & _finite(model.vector_field(t0, state0, inputs))
        ok = sol.result == diffrax.RESULTS.successful
        status = jnp.where(ok, jnp.where(finite, STATUS_OK, STATUS_NONFINITE), STATUS_SOLVER_FAILURE)
        status = jnp.where(finite0, status, STATUS_NONFINITE)
        stats = {"num_steps": sol.stats["num_steps"]}
        return _solution(ts, recs, status.astype(jnp.int32), state, tracker, stats, record)
