"""`AdaptiveRK`: diffring's own adaptive explicit Runge-Kutta solver for `SmoothRelaxation`, forward only.

diffrax's general loop costs about 15 us per step on CPU whatever the vector field (its step
bookkeeping, saving and event machinery), which dominates a 1,000-neuron smooth-model step. Here the
whole step (all stages, the error estimate and the step-size control) is one `lax.while_loop` body,
the loop runs from one record time to the next (steps are clipped so that every record is sampled
exactly, without dense output), and with external inputs steps are also clipped to the sampling
times, so that no step straddles a change of the piecewise-constant input.

No reverse mode: `lax.while_loop` has no transpose, so `jax.grad` through `AdaptiveRK` raises. Use
`ODESolve` (diffrax `RecursiveCheckpointAdjoint`) or `ODESolve(adjoint=ScanAdjoint())` for gradients.
Forward-mode (`jax.jvp`) derivatives work but differentiate the step-size control too.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from diffrax import Dopri8 as _DiffraxDopri8, Tsit5 as _DiffraxTsit5

from ._errors import DiffringError, check_float, check_int
from ._fusion import materialised_div, runtime_one
from ._models import State
from ._odesolve import _hoist_thresholds, _weighted
from ._simulate import (
    STATUS_NONFINITE,
    STATUS_OK,
    STATUS_SOLVER_FAILURE,
    AbstractMethod,
    _records,
    _solution,
)
from ._smooth import SmoothRelaxation


class AbstractTableau(eqx.Module):
    """An explicit Runge-Kutta pair with the first-same-as-last property.

    `c` (stage times, c[0] = 0), `a` (row i: the weights of stages 0 ... i-1 in stage i), `b_error`
    (b - b_hat: the error estimate is h sum_i b_error[i] k_i) and `error_order` (the order q + 1 of
    the error estimate's leading term, used in the step-size exponent). The last stage must be
    evaluated at the new solution (last row of `a` = b, c[-1] = 1), so the new solution is that
    stage's input and its derivative is the next step's first stage.
    """

    c: eqx.AbstractClassVar[tuple[float, ...]]
    a: eqx.AbstractClassVar[tuple[tuple[float, ...], ...]]
    b_error: eqx.AbstractClassVar[tuple[float, ...]]
    error_order: eqx.AbstractClassVar[int]


class DormandPrince54(AbstractTableau):
    """Dormand and Prince's 5(4) pair (Hairer's DOPRI5, SciPy's RK45, diffrax's Dopri5 solution),
    with the standard embedded 4th-order error estimate (as in SciPy)."""

    c: ClassVar[tuple[float, ...]] = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
    a: ClassVar[tuple[tuple[float, ...], ...]] = (
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    )
    b_error: ClassVar[tuple[float, ...]] = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)
    error_order: ClassVar[int] = 5


def _from_diffrax(tableau):
    c = (0.0,) + tuple(float(x) for x in tableau.c)
    a = ((),) + tuple(tuple(float(x) for x in row) for row in tableau.a_lower)
    return c, a, tuple(float(x) for x in tableau.b_error)


_TSIT5 = _from_diffrax(_DiffraxTsit5().tableau)


class Tsitouras54(AbstractTableau):
    """Tsitouras' 5(4) pair (diffrax's `Tsit5`; coefficients taken from diffrax)."""

    c: ClassVar[tuple[float, ...]] = _TSIT5[0]
    a: ClassVar[tuple[tuple[float, ...], ...]] = _TSIT5[1]
    b_error: ClassVar[tuple[float, ...]] = _TSIT5[2]
    error_order: ClassVar[int] = 5


_DOPRI8 = _from_diffrax(_DiffraxDopri8().tableau)


class DormandPrince87(AbstractTableau):
    """Dormand and Prince's 8(7) pair (Prince and Dormand 1981; diffrax's `Dopri8`, coefficients taken
    from diffrax): 13 new stages per step against 6 for the 5(4) pairs, fewer steps at tight
    tolerances (docs/smooth_model.md, "Cost of a solve")."""

    c: ClassVar[tuple[float, ...]] = _DOPRI8[0]
    a: ClassVar[tuple[tuple[float, ...], ...]] = _DOPRI8[1]
    b_error: ClassVar[tuple[float, ...]] = _DOPRI8[2]
    error_order: ClassVar[int] = 8


def _rows(y):
    """The v and o parts of a state, packed ((2, n) array) or not (`State`)."""
    return (y.v, y.o) if isinstance(y, State) else (y[0], y[1])


def _rms(e, scale, allsum=None):
    """Root mean square of `e / scale` over every element. Summed part by part (v, then o): XLA
    reduces a (2, n) array in a different order under vmap, which would break the bit-for-bit
    equality of a batch and its single runs. `allsum`: a sum over the devices of a sharded lattice
    (`Sharded`), so every device takes the same steps."""
    r = _rows(jax.tree.map(lambda a, b: a / b, e, scale))
    squares, size = jnp.sum(r[0] * r[0]) + jnp.sum(r[1] * r[1]), r[0].size + r[1].size
    if allsum is not None:  # one collective for both
        squares, size = allsum(jnp.stack([squares, jnp.asarray(size, squares.dtype)]))
    return jnp.sqrt(squares / size)


def _is_number(x):
    return isinstance(x, int | float) and not isinstance(x, bool)


class AdaptiveRK(AbstractMethod):
    """Adaptive explicit Runge-Kutta integration of `SmoothRelaxation` in one `lax.while_loop` per record.

    `tableau`: `DormandPrince54()` (default, SciPy's RK45 pair), `Tsitouras54()` or the 8(7) pair
    `DormandPrince87()` (13 evaluations per step, fewer steps at tight tolerances; XLA fuses its
    batches differently from single runs, so they agree only to rounding). Error control as
    in SciPy/diffrax: a step is accepted when the RMS over all of (v, o) of err / (atol + rtol
    max(|y0|, |y1|)) is <= 1; the next step is h * clip(safety e^(-(icoeff + pcoeff)/q)
    e_prev^(pcoeff/q), factor_min, factor_max) with q = the tableau's error order (pcoeff = 0,
    icoeff = 1: the I controller of SciPy and diffrax's default; after a rejection the factor is at
    most 1). `dt0=None` picks the first step as SciPy does (Hairer's estimate).
    Steps are clipped to the record times (every `record.every * model.dt`) and, when there are
    inputs, to every sample time, so records are exact samples and the input is constant in each
    step. Without inputs the last stage of a step is reused as the next step's first (FSAL); with
    inputs the first stage is re-evaluated every step (the input may have changed).
    `max_steps` (None: no limit) bounds accepted + rejected steps over the run; exceeding it, or the
    step falling below 16 float eps of the record (or sample) interval, ends the run with status 2
    (solver failure); a non-finite initial state or field gives status 1 without stepping.
    `rtol`, `atol`, `dt0` and the controller coefficients may be JAX arrays (traced: one
    compilation serves all values). Forward only; see the module docstring for gradients.
    `Solution.stats`: `num_steps` (accepted + rejected) and `num_accepted`. Works in the network's
    dtype: a float32 network gives a float32 solve (about 2x cheaper per step on CPU). The new state
    (without inputs) and the time within a record interval are compensated (Kahan) sums, so float32
    rounding does not accumulate with the number of steps (docs/smooth_model.md, "Float32").
    """

    tableau: AbstractTableau = DormandPrince54()
    rtol: float = 1e-6
    atol: float = 1e-8
    dt0: float | None = None
    max_steps: int | None = eqx.field(static=True, default=None)
    safety: float = 0.9
    factor_min: float = 0.2
    factor_max: float = 10.0
    pcoeff: float = 0.0
    icoeff: float = 1.0

    def __check_init__(self):
        if not isinstance(self.tableau, AbstractTableau):
            raise DiffringError(
                "method.tableau", type(self.tableau).__name__,
                "expected DormandPrince54(), Tsitouras54() or DormandPrince87()"
            )
        for name in ("rtol", "atol", "safety", "factor_max", "icoeff"):
            if _is_number(getattr(self, name)):
                check_float(f"method.{name}", getattr(self, name), positive=True)
        for name in ("factor_min", "pcoeff"):
            if _is_number(getattr(self, name)):
                check_float(f"method.{name}", getattr(self, name), nonnegative=True)
        if _is_number(self.dt0):
            check_float("method.dt0", self.dt0, positive=True)
        if self.max_steps is not None:
            check_int("method.max_steps", self.max_steps, minimum=1)
        if _is_number(self.factor_min) and self.factor_min >= 1:
            raise DiffringError("method.factor_min", self.factor_min, "expected a number in [0, 1)")
        if _is_number(self.factor_max) and self.factor_max <= 1:
            raise DiffringError("method.factor_max", self.factor_max, "expected a number > 1")

    def run(self, model, state0, inputs, tracker0, t0, n_steps, record):
        return _solution(*self.integrate(model, state0, inputs, tracker0, t0, n_steps, record), record)

    def integrate(self, model, state0, inputs, tracker0, t0, n_steps, record, allsum=None):
        """`run` before packing: (t, records, status, state, tracker, stats). `allsum` (a sum over
        devices) makes the error norm and the finiteness checks global: `Sharded` runs this on each
        block of a lattice, and every device then takes the same steps."""
        if not isinstance(model, SmoothRelaxation):
            raise DiffringError(
                "method", "AdaptiveRK", f"AdaptiveRK integrates SmoothRelaxation, not {type(model).__name__}"
            )
        net = model.network
        dtype = net.dtype
        every = record.every
        n_blocks = n_steps // every
        probes = net.rings.probes
        tab = self.tableau
        fsal = inputs is None
        # Steps never cross an interval boundary: the record interval, or with inputs the sample interval.
        m = every if inputs is not None else 1  # intervals per record block
        length = jnp.asarray(model.dt * (every // m), dtype)  # dt, or every * dt without inputs
        xs = None if inputs is None else inputs.reshape((n_blocks, every) + inputs.shape[1:])

        def cast(x):
            return jnp.asarray(x, dtype)

        rtol, atol = cast(self.rtol), cast(self.atol)
        safety, fmin, fmax = cast(self.safety), cast(self.factor_min), cast(self.factor_max)
        q = float(tab.error_order)
        b1, b2 = (cast(self.icoeff) + cast(self.pcoeff)) / q, cast(self.pcoeff) / q
        h_min = 16 * jnp.finfo(dtype).eps * length
        hmodel = _hoist_thresholds(model)
        zero = jnp.zeros((), dtype)

        # Without inputs the state rides as one (2, n) array, rows v and o: each stage is then one
        # fused evaluation of both derivatives and one stage combination (lattice: 42-47 -> 22-24 us
        # per 1,000-neuron step). With inputs (no FSAL) it stays a `State`: packed, XLA fuses a batch
        # differently from its single runs and they no longer agree bit for bit.
        packed = fsal

        def f(y, x):
            if not packed:
                return hmodel.vector_field(zero, y, None if x is None else x[None])
            k = hmodel.vector_field(zero, State(*_rows(y)), None)
            return jnp.stack([k.v, k.o])

        def stage(y, h, coeffs, ks, one):
            # Each stage input computed once into a buffer, not recomputed inside the coupling's and
            # the field's kernels (bit for bit y + h sum_j a_j k_j).
            return materialised_div(jax.tree.map(lambda a, b: a + h * b, y, _weighted(coeffs, ks)), one)

        one = runtime_one(dtype)

        def scale(y0, y1):
            return jax.tree.map(lambda a, b: atol + rtol * jnp.maximum(jnp.abs(a), jnp.abs(b)), y0, y1)

        def finite(y):
            ok = jnp.all(jnp.isfinite(_rows(y)[0])) & jnp.all(jnp.isfinite(_rows(y)[1]))
            return ok if allsum is None else allsum((~ok).astype(jnp.int32)) == 0

        def rms(e, sc):
            return _rms(e, sc, allsum)

        y0 = jnp.stack([state0.v, state0.o]) if packed else state0
        x_first = None if xs is None else xs[0, 0]
        k0 = f(y0, x_first)
        finite0 = finite(y0) & finite(k0)
        if self.dt0 is None:
            # Hairer, Norsett and Wanner (II.4), as scipy.integrate's select_initial_step.
            sc = scale(y0, y0)
            d0, d1 = rms(y0, sc), rms(k0, sc)
            h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), cast(1e-6), 0.01 * d0 / d1)
            k1 = f(jax.tree.map(lambda a, b: a + h0 * b, y0, k0), x_first)
            d2 = rms(jax.tree.map(lambda a, b: a - b, k1, k0), sc) / h0
            dmax = jnp.maximum(d1, d2)
            h1 = jnp.where(dmax <= 1e-15, jnp.maximum(cast(1e-6), h0 * 1e-3), (0.01 / dmax) ** (1 / q))
            h_start = jnp.minimum(100 * h0, h1)
        else:
            h_start = cast(self.dt0)
        h_start = jnp.where(jnp.isfinite(h_start), h_start, length)
        max_steps = self.max_steps

        def step(c, x_block):
            y, comp, k1, h_prop, e_prev, rejected, j, s, n_all, n_acc, failed = c
            x = None if x_block is None else x_block[j]
            s, s_comp = s  # time into the interval, with its Kahan compensation
            rem = (length - s) + s_comp
            clipped = h_prop >= rem
            h = jnp.where(clipped, rem, h_prop)
            if not fsal:
                k1 = f(y, x)
            ks = [k1]
            yi = y
            for i in range(1, len(tab.c)):
                if packed and i == len(tab.c) - 1:
                    # The new solution, with compensated (Kahan) summation of the increments: the
                    # rounding of y + increment would otherwise accumulate over thousands of steps.
                    inc = h * _weighted(tab.a[i], ks) - comp
                    yi = (y + inc) / one
                    comp1 = (yi - y) - inc
                else:
                    yi = stage(y, h, tab.a[i], ks, one)
                ks.append(f(yi, x))
            y1 = yi  # the last stage is evaluated at the new solution
            e = rms(jax.tree.map(lambda a: h * a, _weighted(tab.b_error, ks)), scale(y, y1))
            ok_e = jnp.isfinite(e)
            accept = e <= 1  # False for NaN
            e_pos = jnp.maximum(e, jnp.finfo(dtype).tiny)
            grow = safety * e_pos ** (-b1) * e_prev**b2
            shrink = jnp.where(ok_e, safety * e_pos ** (-1 / q), fmin)
            # As SciPy and Hairer's DOPRI5: no growth right after a rejection (damps accept/reject cycles).
            fmax_now = jnp.where(rejected, jnp.ones((), dtype), fmax)
            factor = jnp.where(accept, jnp.clip(grow, fmin, fmax_now), jnp.clip(shrink, fmin, 1))
            h_next = h * factor
            # A step clipped to a boundary says little about the step size: keep the earlier proposal.
            h_next = jnp.where(accept & clipped, jnp.maximum(h_next, h_prop), h_next)
            y = jax.tree.map(lambda a, b: jnp.where(accept, a, b), y1, y)
            if packed:
                comp = jnp.where(accept, comp1, comp)
            if fsal:
                k1 = jnp.where(accept, ks[-1], k1)
            e_prev = jnp.where(accept, e_pos, e_prev)
            s_inc = h - s_comp
            s_new = s + s_inc
            s_comp = jnp.where(accept, jnp.where(clipped, zero, (s_new - s) - s_inc), s_comp)
            s = (jnp.where(accept, jnp.where(clipped, zero, s_new), s), s_comp)
            j = jnp.where(accept & clipped, j + 1, j)
            failed = failed | (h_next < h_min)
            return y, comp, k1, h_next, e_prev, ~accept, j, s, n_all + 1, n_acc + accept.astype(jnp.int32), failed

        def block(carry, x_block):
            y, comp, k1, h, e_prev, rejected, n_all, n_acc, failed, ok, tracker, b = carry

            def cond(c):
                go = (c[6] < m) & ~c[10]
                if max_steps is not None:
                    go = go & (c[8] < max_steps)
                return go

            c = (y, comp, k1, h, e_prev, rejected, jnp.asarray(0, jnp.int32), (zero, zero), n_all, n_acc, failed)
            y, comp, k1, h, e_prev, rejected, j, _, n_all, n_acc, failed = jax.lax.while_loop(
                cond, lambda c: step(c, x_block), c
            )
            failed = failed | (j < m)  # stopped early: max_steps
            b = b + 1
            t = t0 + (b * every).astype(dtype) * jnp.asarray(model.dt, dtype)
            state = State(*_rows(y))
            if record.phases:
                tracker = tracker.update(state.o[probes], t)
            ok = ok & finite(y)
            out = (y, comp, k1, h, e_prev, rejected, n_all, n_acc, failed, ok, tracker, b)
            return out, _records(record, net, t, state, tracker)

        i32 = jnp.asarray(0, jnp.int32)
        comp0 = jnp.zeros_like(y0) if packed else None
        c0 = (y0, comp0, k0, h_start, jnp.ones((), dtype), jnp.asarray(False), i32, i32, ~finite0, finite0, tracker0,
              i32)
        c, recs = jax.lax.scan(block, c0, xs, length=n_blocks)
        y, _, _, _, _, _, n_all, n_acc, failed, ok, tracker, _ = c
        state = State(*_rows(y))
        rec0 = _records(record, net, t0, state0, tracker0)
        recs = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), rec0, recs)
        t = t0 + (every * jnp.arange(n_blocks + 1)).astype(dtype) * jnp.asarray(model.dt, dtype)
        status = jnp.where(ok, jnp.where(failed, STATUS_SOLVER_FAILURE, STATUS_OK), STATUS_NONFINITE)
        status = jnp.where(finite0, status, STATUS_NONFINITE).astype(jnp.int32)
        stats = {"num_steps": n_all, "num_accepted": n_acc}
        return t, recs, status, state, tracker, stats
