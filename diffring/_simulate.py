"""One simulation entry point for every model: `simulate` (one member) and `simulate_batch`.

The model says what the dynamics are; the method says how they are advanced: `MapScan` steps a
stepped model (`DiscreteMap`, `HardTrigger`) with `lax.scan`; `ODESolve` (`_odesolve.py`)
integrates the smooth model with diffrax. `Record` says what is kept: every k-th sample, all neurons or probes, chosen
fields, ring phases and R(t), or an on-the-fly reduction. The initial state is record 0.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PyTree

from ._errors import DiffringError, check_choice, check_int
from ._models import AbstractModel, AbstractSteppedModel, DiscreteMap, State
from ._phases import PhaseTracker, order_from_unit, phase_unit
from ._threshold import HardThreshold

STATUS_OK = 0
STATUS_NONFINITE = 1
STATUS_SOLVER_FAILURE = 2
STATUS_NAMES = ("ok", "non-finite", "solver failure")


def _as_which(which):
    if isinstance(which, str):
        return which
    valid = "expected 'all', 'probes' or a flat list of integer neuron indices"
    try:
        a = np.asarray(which)
    except (TypeError, ValueError):
        raise DiffringError("record.which", which, valid) from None
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        raise DiffringError("record.which", which, valid)
    return tuple(int(i) for i in a)


def _as_fields(fields):
    return (fields,) if isinstance(fields, str) else tuple(fields)


class Record(eqx.Module):
    """What a run keeps, sampled every `every` steps (record 0 is the initial state).

    `which`: "all", "probes" (one neuron per ring) or a tuple of neuron indices. `fields`: any of
    "o", "v". `phases`: track ring phases and R(t) from probe firing times. `reduce`: an optional
    function `(t, state) -> pytree` evaluated at every record (e.g. a mean rate), so that nothing
    large need be stored. `observe`: an optional function `(t, state, phase, valid) -> pytree` that
    also sees the ring phases at the record (needs `phases`; e.g. `lattice_observables(network)`).
    An `observe` with a `from_unit(t, state, unit)` attribute (`lattice_observables`) gets the record's
    `PhaseUnit` instead: the phases and their cos/sin computed once, shared with R(t).
    """

    every: int = eqx.field(static=True, default=1)
    which: str | tuple[int, ...] = eqx.field(static=True, default="all", converter=_as_which)
    fields: tuple[str, ...] = eqx.field(static=True, default=("o", "v"), converter=_as_fields)
    phases: bool = eqx.field(static=True, default=True)
    reduce: Callable | None = eqx.field(static=True, default=None)
    observe: Callable | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_int("record.every", self.every, minimum=1)
        if self.observe is not None and not self.phases:
            raise DiffringError("record.observe", self.observe, "needs record.phases = True")
        if isinstance(self.which, str):
            check_choice("record.which", self.which, ("all", "probes"))
        elif len(self.which) == 0:
            raise DiffringError("record.which", [], "expected at least one neuron index")
        for f in self.fields:
            check_choice("record.fields[]", f, ("o", "v"))

    def select(self, network, a):
        if self.which == "all":
            return a
        if self.which == "probes":
            return a[..., network.rings.probes]
        return a[..., jnp.asarray(self.which, jnp.int32)]


class Solution(eqx.Module):
    """The result of `simulate`: record times `t` (n_records,), recorded fields `o`, `v`
    (n_records, n_selected) or None, `phase` and `phase_valid` (n_records, n_rings), `R`
    (n_records,), `reduced` and `observed` (the reduction's / observation's outputs, stacked),
    `status` (0 ok, 1 non-finite, 2 solver failure; see `STATUS_NAMES`), and the final `state` and
    `tracker` to continue from.
    With `simulate_batch` every field has a leading batch axis.
    """

    t: Float[Array, "*b records"]
    o: Float[Array, "*b records k"] | None
    v: Float[Array, "*b records k"] | None
    phase: Float[Array, "*b records rings"] | None
    phase_valid: Array | None
    R: Float[Array, "*b records"] | None
    reduced: PyTree | None
    status: Int[Array, "*b"]
    state: State
    tracker: PhaseTracker | None
    stats: dict
    observed: PyTree | None = None


class AbstractMethod(eqx.Module):
    """How a model is advanced in time."""

    @abc.abstractmethod
    def run(self, model, state0, inputs, tracker0, t0, n_steps, record) -> Solution:
        """Advance `model` from `state0` by `n_steps` samples of `model.dt`."""

    def resolve(self, model, state0, inputs) -> AbstractMethod:
        """Settle choices that depend on concrete values, before tracing (`simulate` calls this)."""
        return self


def _records(record, network, t, state, tracker):
    out: dict[str, Any] = {}
    for f in record.fields:
        out[f] = record.select(network, getattr(state, f))
    if record.phases:
        # The phases and their cos/sin once into buffers, shared by R and an observe function that
        # takes them (`lattice_observables`' `from_unit`); the tracker's phases are in [0, 2 pi].
        unit = phase_unit(*tracker.phase(t), in_range=True)
        out["phase"], out["phase_valid"] = unit.theta, unit.valid
        out["R"] = order_from_unit(unit)
        if record.observe is not None:
            from_unit = getattr(record.observe, "from_unit", None)
            out["observed"] = (record.observe(t, state, unit.theta, unit.valid) if from_unit is None
                               else from_unit(t, state, unit))
    if record.reduce is not None:
        out["reduced"] = record.reduce(t, state)
    return out


def _finite(state):
    return jnp.all(jnp.isfinite(state.v)) & jnp.all(jnp.isfinite(state.o))


def _solution(t, recs, status, state, tracker, stats, record):
    return Solution(
        t=t,
        o=recs.get("o"),
        v=recs.get("v"),
        phase=recs.get("phase"),
        phase_valid=recs.get("phase_valid"),
        R=recs.get("R"),
        reduced=recs.get("reduced"),
        status=status,
        state=state,
        tracker=tracker if record.phases else None,
        stats=stats,
        observed=recs.get("observed"),
    )


def _block_scan(block, c0, xs, n_blocks, checkpoint, segment):
    """`lax.scan(block, c0, xs, length=n_blocks)`, optionally with two-level rematerialisation.

    With `checkpoint`, the blocks are cut into segments of `segment` blocks; reverse mode stores one
    carry per segment, recomputes a segment's block carries when it reaches it, and recomputes each
    block's internals when it differentiates that block. Memory: about n_blocks / segment + segment
    carries plus the internals of one block, instead of the internals of every block.
    """
    if not checkpoint:
        return jax.lax.scan(block, c0, xs, length=n_blocks)
    block = jax.checkpoint(block, prevent_cse=False)  # prevent_cse=False is safe inside scan bodies
    g = min(segment, n_blocks)
    n_seg, tail = divmod(n_blocks, g)

    def seg(c, x):
        return jax.lax.scan(block, c, x, length=g)

    def cut(lo, hi, shape):
        return None if xs is None else jax.tree.map(lambda a: a[lo:hi].reshape(shape + a.shape[1:]), xs)

    c, ys = jax.lax.scan(jax.checkpoint(seg, prevent_cse=False), c0, cut(0, n_seg * g, (n_seg, g)), length=n_seg)
    ys = jax.tree.map(lambda a: a.reshape((n_seg * g,) + a.shape[2:]), ys)
    if tail:
        rest = jax.checkpoint(lambda c, x: jax.lax.scan(block, c, x, length=tail))
        c, ys_tail = rest(c, cut(n_seg * g, n_blocks, (tail,)))
        ys = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ys, ys_tail)
    return c, ys


class _PlainCarry:
    """The loop carries the `State` itself."""

    @staticmethod
    def encode(state):
        return state

    @staticmethod
    def decode(carry):
        return carry

    @staticmethod
    def finite(carry):
        return _finite(carry)

    @staticmethod
    def outputs(carry, index):
        return carry.o[..., index]

    @staticmethod
    def probe_flags(carry, probes):
        """(o >= 0.5, o < 0.5) of the probes; a fall is the first then the second (NaN is neither)."""
        o = carry.o[..., probes]
        return o >= 0.5, o < 0.5


@dataclasses.dataclass(frozen=True)
class SignPacked:
    """How `MapScan` runs the sign-packed carry; `MapScan.resolve` settles it from concrete values.

    `probe_row`: the row of the coupling's layout that holds exactly the ring probes, in ring order
    (an S0 lattice's probe position), so the phase tracker reads them every step as one static slice
    of the carry instead of a gather (None: gather `network.rings.probes`). `fold_inputs`: every
    non-zero row of `network.win` is one of the coupling's table rows (`AbstractCoupling.folds_input`),
    so Win x is computed for those rows only, for a whole record block in one product
    (`AbstractCoupling.row_drive`), and each step adds its row where the coupling writes the table
    rows, instead of a dense (n, n_in) product per step (the small-world reservoir's inputs reach
    only ring heads). The block product may round differently from the per-step one in the last
    bit (both agree with the NumPy reference; a batch still equals its single runs bit for bit).
    """

    probe_row: int | None = None
    fold_inputs: bool = False

    @classmethod
    def plan(cls, model, inputs) -> SignPacked:
        """The plan for this model, from concrete values (traced ones give the general plan)."""
        net = model.network
        if any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves((net.coupling, net.rings, net.win))):
            return cls()
        layout = net.coupling.layout
        probes = np.asarray(net.rings.probes)
        probe_row = None
        width = int(np.prod(layout[1:]))  # neurons per layout row
        if len(layout) > 1 and probes.size == width:
            p = int(probes[0]) // width
            if np.array_equal(probes, p * width + np.arange(width)):
                probe_row = p
        fold = inputs is not None and net.win is not None and net.coupling.folds_input(np.asarray(net.win))
        return cls(probe_row=probe_row, fold_inputs=bool(fold))


class _SignPackedCarry:
    """The loop carries one array w = v where o = 1 and -v where o = 0 (-0.0 for v = 0), in the
    coupling's layout, stepped by `DiscreteMap.make_sign_packed_step`.

    Exact when v >= 0 and o is 0 or 1 throughout, which holds for the hard map when the weights, the
    inputs and v0 are nonnegative (v is then a convex combination of nonnegative numbers). With one
    array instead of two, XLA CPU emits the step as one fused loop instead of one per output array
    (benchmarks/bench_lattice.py measures the gain).
    """

    def __init__(self, layout, probe_row=None):
        self.layout = tuple(layout)
        self.probe_row = probe_row

    def encode(self, state):
        w = jnp.where(state.o == 0, -jnp.abs(state.v), jnp.abs(state.v))
        return w.reshape(w.shape[:-1] + self.layout)

    def _flat(self, w):
        return w.reshape(w.shape[: w.ndim - len(self.layout)] + (-1,))

    def decode(self, w):
        w = self._flat(w)
        return State(jnp.abs(w), jnp.where(jnp.signbit(w), jnp.zeros((), w.dtype), jnp.ones((), w.dtype)))

    def finite(self, w):
        """Whether v and o are finite: o is 0 or 1 by construction, v = |w|."""
        return jnp.all(jnp.isfinite(w))

    def outputs(self, w, index):
        w = self._flat(w)[..., index]
        return jnp.where(jnp.signbit(w), jnp.zeros((), w.dtype), jnp.ones((), w.dtype))

    def probe_flags(self, w, probes):
        """(o >= 0.5, o < 0.5) of the probes: o = 0 exactly where the sign bit is set. A static
        slice of the layout with a `probe_row`, else a gather."""
        if self.probe_row is None:
            s = jnp.signbit(self._flat(w)[..., probes])
        else:
            row = jax.lax.index_in_dim(w, self.probe_row, axis=w.ndim - len(self.layout), keepdims=False)
            s = jnp.signbit(row.reshape(row.shape[: w.ndim - len(self.layout)] + (-1,)))
        return ~s, s


def _scan_records(net, step, dt, state0, inputs, tracker0, t0, n_steps, record, unroll, checkpoint, segment,
                  carry=_PlainCarry, prepare=None):
    """Run `step(state, x) -> (state, ok)` n_steps times in record blocks; the loop of `MapScan`.

    `carry` says how the state is held inside the inner loop (`_PlainCarry` or `_SignPackedCarry`);
    records, phases and status always see the decoded `State`. `prepare`, if given, maps a block's
    inputs (every, n_in) to what the step receives (e.g. the block's input drive in one product).
    """
    every = record.every
    n_blocks = n_steps // every
    dtype = net.dtype
    dt = jnp.asarray(dt, dtype)
    t0 = jnp.asarray(t0, dtype)
    probes = net.rings.probes
    xs = None if inputs is None else inputs.reshape((n_blocks, every) + inputs.shape[1:])

    def inner(c, x):
        # k (the step count) rides in the loop only for the tracker's fire times: without phases it
        # would be one more tiny kernel per step (the block adds `every` instead).
        w, trk, ok, k = c
        w_new, ok_step = step(w, x)
        if record.phases:
            # A fall of a probe between the state before and after step k is a fire at t_{k+1}
            # (`PhaseTracker.update` semantics). The tracker rides as (last, prev, count, resting):
            # `resting` (o >= 0.5 before the step) is carried so that the step's input state is
            # not read again after the step (XLA would copy it to update it in place), and every
            # array updates elementwise in place.
            last, prev, count, resting = trk
            resting_new, firing_new = carry.probe_flags(w_new, probes)
            fell = resting & firing_new
            t = t0 + (k + 1).astype(dtype) * dt
            trk = (jnp.where(fell, t, last), jnp.where(fell, last, prev), count + fell.astype(count.dtype), resting_new)
            k = k + 1
        return (w_new, trk, ok & ok_step, k), None

    def block(c_outer, x):
        # The outer loop carries the inner loop's own form (`carry.encode(state)`), so that a block
        # decodes the state only for what its records read (XLA drops the rest): re-encoding and
        # checking the decoded state every block cost ~15 % of a 100-step lattice block.
        w, tracker, ok, k, finite = c_outer
        trk = None
        if record.phases:
            # No-op unless the caller's tracker has not seen state0 (its o_prev differs).
            tracker = tracker.update(carry.outputs(w, probes), t0 + k.astype(dtype) * dt)
            trk = (tracker.last, tracker.prev, tracker.count, tracker.o_prev >= 0.5)
        if prepare is not None:
            x = prepare(x)
        (w, trk, ok, k_end), _ = jax.lax.scan(inner, (w, trk, ok, k), x, length=every, unroll=unroll)
        k = k_end if record.phases else k + every
        state = carry.decode(w)
        t = t0 + k.astype(dtype) * dt
        if record.phases:
            tracker = PhaseTracker(trk[0], trk[1], carry.outputs(w, probes), trk[2])
        finite = finite & carry.finite(w)  # sticky: a transient NaN/inf still marks the member
        return (w, tracker, ok, k, finite), _records(record, net, t, state, tracker)

    c0 = (carry.encode(state0), tracker0, jnp.asarray(True), jnp.asarray(0, jnp.int32), _finite(state0))
    (w, tracker, ok, _, finite), recs = _block_scan(block, c0, xs, n_blocks, checkpoint, segment)
    state = carry.decode(w)
    rec0 = _records(record, net, t0, state0, tracker0)
    recs = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), rec0, recs)
    t = t0 + (every * jnp.arange(n_blocks + 1)).astype(dtype) * dt
    status = jnp.where(finite, jnp.where(ok, STATUS_OK, STATUS_SOLVER_FAILURE), STATUS_NONFINITE)
    return t, recs, status.astype(jnp.int32), state, tracker


class MapScan(AbstractMethod):
    """Step a stepped model with nested `lax.scan`s (outer: records, inner: `every` steps).

    `unroll` unrolls the inner scan. `checkpoint=True` bounds the memory of reverse mode (for
    surrogate or soft gradients of long runs): record blocks are rematerialised, in segments of
    `segment` blocks, so the backward pass holds about n_blocks / segment + segment carries plus one
    block's internals (`every` steps), instead of every step's internals. It costs about one extra
    forward pass.

    `pack`: carry (v, o) as one sign-packed array in the coupling's layout (`_SignPackedCarry`; exact,
    and faster where the coupling is shifts); "auto" uses it when it is exact (`_sign_packable`).
    `plan`: how the packed carry runs (`SignPacked`); `resolve` (re)plans it from concrete values,
    None runs the general plan.
    """

    unroll: int = eqx.field(static=True, default=1)
    checkpoint: bool = eqx.field(static=True, default=False)
    segment: int = eqx.field(static=True, default=1000)
    pack: bool | str = eqx.field(static=True, default="auto")
    plan: SignPacked | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_int("method.unroll", self.unroll, minimum=1)
        check_int("method.segment", self.segment, minimum=1)
        check_choice("method.pack", self.pack, ("auto", True, False))

    def resolve(self, model, state0, inputs) -> MapScan:
        pack = _sign_packable(model, state0, inputs) if self.pack == "auto" else self.pack
        # Always re-planned: a plan made for another network or input could misread this one.
        plan = SignPacked.plan(model, inputs) if pack is True and isinstance(model, DiscreteMap) else None
        return dataclasses.replace(self, pack=pack, plan=plan)

    def run(self, model, state0, inputs, tracker0, t0, n_steps, record):
        if not isinstance(model, AbstractSteppedModel):
            raise DiffringError("method", "MapScan",
                                f"MapScan steps DiscreteMap/HardTrigger, not {type(model).__name__}")
        net = model.network
        # "auto" left unresolved (run called directly, e.g. under a caller's jit): the plain carry.
        prepare = None
        if self.pack is True:
            plan = self.plan or SignPacked()
            carry = _SignPackedCarry(net.coupling.layout, plan.probe_row)
            fold = plan.fold_inputs and inputs is not None
            step = model.make_sign_packed_step(fold_inputs=fold)
            if fold:
                prepare = lambda xb: net.coupling.row_drive(net.win, xb)  # noqa: E731
        else:
            carry, step = _PlainCarry, model.make_step()
        t, recs, status, state, tracker = _scan_records(
            net, step, model.dt, state0, inputs, tracker0, t0, n_steps, record,
            self.unroll, self.checkpoint, self.segment, carry, prepare,
        )
        return _solution(t, recs, status, state, tracker, {}, record)


def _sign_packable(model, state0, inputs) -> bool:
    """Whether `_SignPackedCarry` is exact (the hard map with nonnegative weights, inputs and v0, and
    outputs exactly 0 or 1; checked on concrete values, traced ones mean no) and helps this coupling."""
    net = model.network if isinstance(model, DiscreteMap) else None
    if net is None or not isinstance(model.threshold, HardThreshold) or not net.coupling.packed_carry_helps:
        return False
    weights = jax.tree.leaves(eqx.filter(net.coupling, eqx.is_inexact_array))
    drive = [inputs, net.win] if inputs is not None and net.win is not None else []
    arrays = [*weights, *drive, state0.v, net.tau, state0.o]
    if any(isinstance(a, jax.core.Tracer) for a in arrays):
        return False
    *nonneg, tau, o = (np.asarray(a) for a in arrays)
    return all(bool(np.all(a >= 0)) for a in nonneg) and bool(np.all(tau > 0)) and bool(np.all((o == 0) | (o == 1)))


def _check_run(model, state0, inputs, n_steps, t1, record, batched=False, method=None, t0=0.0):
    if not isinstance(model, AbstractModel):
        raise DiffringError("model", type(model).__name__, "expected a DiscreteMap, HardTrigger or SmoothRelaxation")
    if not isinstance(state0, State) or not all(hasattr(a, "shape") for a in (state0.v, state0.o)):
        raise DiffringError("init", type(state0).__name__, "expected a diffring.State(v, o) of arrays")
    if not isinstance(record, Record):
        raise DiffringError("record", type(record).__name__, "expected a diffring.Record(...)")
    if method is not None and not isinstance(method, AbstractMethod):
        raise DiffringError("method", type(method).__name__, "expected a diffring method (MapScan, ODESolve, ...)")
    # A JAX array (a previous Solution's t, possibly still being computed, or a tracer) is checked
    # by shape and dtype only: reading its value would wait for it and end asynchronous dispatch.
    t0a = t0 if isinstance(t0, jax.Array) else np.asarray(t0)
    if t0a.shape != () or t0a.dtype.kind not in "iuf" or (t0a is not t0 and not np.isfinite(t0a)):
        raise DiffringError("run.t0", t0, "expected a finite number (the time of the initial state)")
    if (n_steps is None) == (t1 is None):
        raise DiffringError("run", {"n_steps": n_steps, "t1": t1}, "give exactly one of n_steps or t1")
    if n_steps is None:
        from ._errors import check_float

        t1 = check_float("run.t1", t1, positive=True)
        n_steps = int(round(t1 / model.dt))
        if n_steps < 1:
            raise DiffringError("run.t1", t1, f"expected t1 >= dt = {model.dt}")
    n_steps = check_int("run.n_steps", n_steps, minimum=1)
    if n_steps % record.every:
        raise DiffringError("record.every", record.every, f"expected a divisor of n_steps = {n_steps}")
    n = model.network.n_neurons
    lead = state0.v.shape[:-1]
    if state0.v.shape[-1:] != (n,) or state0.o.shape != state0.v.shape:
        raise DiffringError("init", f"v {state0.v.shape}, o {state0.o.shape}",
                            f"expected matching shapes ending in ({n},)")
    if len(lead) != (1 if batched else 0):
        raise DiffringError("init", f"shape {state0.v.shape}",
                            "expected (batch, n) for simulate_batch, (n,) for simulate")
    if not isinstance(record.which, str) and not all(0 <= i < n for i in record.which):
        raise DiffringError("record.which", list(record.which), f"expected neuron indices in [0, {n})")
    if inputs is not None:
        if not hasattr(inputs, "shape"):
            raise DiffringError("input", type(inputs).__name__, "expected an array of shape (n_steps, n_in)")
        if inputs.ndim != 2:
            raise DiffringError("input", f"shape {inputs.shape}", "expected (n_steps, n_in)")
        if model.network.n_inputs == 0:
            raise DiffringError("input", f"shape {inputs.shape}", "this network has no input weights (Win)")
        want = (n_steps, model.network.n_inputs)
        if inputs.shape[-2:] != want:
            raise DiffringError("input", f"shape {inputs.shape}", f"expected (n_steps, n_in) = {want}")
    return n_steps


def _in_network_dtype(model, state0):
    """`state0` in the network's dtype: a float32 state for a float64 network (or an integer one)
    would otherwise meet the float64 update in the scan's carry and fail there."""
    dtype = model.network.dtype
    if state0.v.dtype == dtype and state0.o.dtype == dtype:
        return state0
    return State(jnp.asarray(state0.v, dtype), jnp.asarray(state0.o, dtype))


def _filter_jit_async(fn):
    """`eqx.filter_jit` semantics (array leaves traced, every other leaf static), keeping JAX's
    asynchronous dispatch: `eqx.filter_jit` blocks until each call's result is ready (to surface its
    runtime errors, which diffring does not use). Asynchronous, a caller can dispatch the next segment
    of a run while the host copies and checkpoints the last one (`diffring._run.simulate_segments`)."""

    def traced(dynamic, static_leaves, static_def):
        return fn(*eqx.combine(dynamic, jax.tree.unflatten(static_def, static_leaves)))

    traced.__name__ = traced.__qualname__ = fn.__name__  # the compiled module's name (profiles, HLO dumps)
    jitted = jax.jit(traced, static_argnums=(1, 2))

    def call(*args):
        dynamic, static = eqx.partition(args, eqx.is_array)
        leaves, static_def = jax.tree.flatten(static)
        return jitted(dynamic, tuple(leaves), static_def)

    call.__wrapped__ = fn
    return call


@_filter_jit_async
def _run(model, state0, inputs, tracker0, t0, n_steps, record, method):
    return method.run(model, state0, inputs, tracker0, t0, n_steps, record)


def _tracker0(model, state0, record, t0):
    if not record.phases:
        return None
    return PhaseTracker.init(state0.o[..., model.network.rings.probes], t0)


def simulate(
    model: AbstractModel,
    state0: State,
    *,
    n_steps: int | None = None,
    t1: float | None = None,
    record: Record = Record(),  # noqa: B008 (an immutable module)
    inputs: Float[Array, "n_steps n_in"] | None = None,
    method: AbstractMethod | None = None,
    t0: float = 0.0,
    tracker: PhaseTracker | None = None,
) -> Solution:
    """Simulate one member for `n_steps` samples of `model.dt` (or up to time `t1`).

    `inputs[t]` drives step t (u = W o + Win x). Pass the `state`/`tracker`/`t` of a previous
    `Solution` (as `state0`, `tracker`, `t0`) to continue a run in segments.
    """
    n_steps = _check_run(model, state0, inputs, n_steps, t1, record, method=method, t0=t0)
    state0 = _in_network_dtype(model, state0)
    method = (model.default_method if method is None else method).resolve(model, state0, inputs)
    t0 = jnp.asarray(t0, model.network.dtype)  # traced, not static: continuing a run does not recompile
    if tracker is None:
        tracker = _tracker0(model, state0, record, t0)
    return _run(model, state0, inputs, tracker, t0, n_steps, record, method)


def batched_model(model: AbstractModel, where: Callable, values) -> tuple[AbstractModel, Any]:
    """Replace the leaf `where(model)` by `values` (leading batch axis) for a parameter sweep.

    Returns the model and the `model_axes` tree to pass to `simulate_batch`.
    """
    model = eqx.tree_at(where, model, values)
    axes = jax.tree.map(lambda _: None, model)
    axes = eqx.tree_at(where, axes, 0, is_leaf=lambda x: x is None)
    return model, axes


def simulate_batch(
    model: AbstractModel,
    state0: State,
    *,
    n_steps: int | None = None,
    t1: float | None = None,
    record: Record = Record(),  # noqa: B008 (an immutable module)
    inputs=None,
    method: AbstractMethod | None = None,
    model_axes=None,
    chunk_size: int | None = None,
    t0: float = 0.0,
    tracker: PhaseTracker | None = None,
) -> Solution:
    """Simulate a batch: `state0` has a leading batch axis B; `inputs` may too (B, n_steps, n_in).

    `model_axes` (from `batched_model`) marks model leaves that carry the batch axis (a parameter
    sweep). `chunk_size` bounds memory: members run `chunk_size` at a time inside one program.
    Member b equals `simulate` of member b alone, bit for bit (tested for every model, chunks,
    sweeps and batched inputs; it relies on the models' updates rounding identically in batched
    and single programs, see `DiscreteMap.make_step` and `ODESolve`). Pass a previous batched
    `Solution`'s `tracker` (with its `state` and `t`) to continue a batch in segments.
    """
    n_steps = _check_run(model, state0, None, n_steps, t1, record, batched=True, method=method, t0=t0)
    state0 = _in_network_dtype(model, state0)
    B = state0.v.shape[0]
    if inputs is not None:
        inputs = jnp.asarray(inputs)
        if inputs.ndim not in (2, 3):
            raise DiffringError("input", f"shape {inputs.shape}", "expected (n_steps, n_in) or (batch, n_steps, n_in)")
        if inputs.ndim == 3 and inputs.shape[0] != B:
            raise DiffringError("input", f"shape {inputs.shape}",
                                f"expected (batch = {B}, n_steps, n_in) or (n_steps, n_in)")
        _check_run(model, jax.tree.map(lambda a: a[0], state0), inputs[0] if inputs.ndim == 3 else inputs,
                   n_steps, None, record)
    method = (model.default_method if method is None else method).resolve(model, state0, inputs)
    if chunk_size is not None:
        chunk_size = check_int("run.chunk_size", chunk_size, minimum=1)
    if model_axes is None:
        model_axes = jax.tree.map(lambda _: None, model)
    spec = jax.tree.map(lambda ax: ax is not None, model_axes, is_leaf=lambda x: x is None)
    m_batched, m_rest = eqx.partition(model, spec)
    for leaf in jax.tree.leaves(m_batched):
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != B:
            raise DiffringError("model_axes", f"a swept parameter of shape {jnp.shape(leaf)}",
                                f"expected a leading batch axis of size {B} (the batch size of state0)")
    input_batched = inputs is not None and inputs.ndim == 3
    t0 = jnp.asarray(t0, model.network.dtype)  # traced, not static: continuing a batch does not recompile
    if tracker is None and not jax.tree.leaves(m_batched):
        tracker = _tracker0(model, state0, record, t0)  # as in `simulate`, so a continued batch reuses the program
    return _run_batch(m_batched, m_rest, state0, inputs, input_batched, t0, n_steps, record, method, chunk_size, B,
                      tracker)


@_filter_jit_async
def _run_batch(m_batched, m_rest, state0, inputs, input_batched, t0, n_steps, record, method, chunk_size, B,
               tracker=None):
    def one(xs):
        mb, s0, x, tr = xs
        model = eqx.combine(mb, m_rest)
        x = x if input_batched else inputs
        tr = _tracker0(model, s0, record, t0) if tr is None else tr
        return method.run(model, s0, x, tr, t0, n_steps, record)

    xs = (m_batched, state0, inputs if input_batched else None, tracker)
    if chunk_size is None or chunk_size >= B:
        return jax.vmap(one)(xs)
    return jax.lax.map(one, xs, batch_size=chunk_size)
