"""Observables of ring networks (spec section 5): pure jnp functions, jit- and vmap-able, used the
same way on the fly (`Record(observe=lattice_observables(net))`) and post hoc on recorded data.

Every function is jitted (`eqx.filter_jit`: Python numbers, strings and flags are static).
Phase fields have shape (*batch, *grid): the last `ndim` axes are the ring grid (default: all axes).
`as_grid` turns the flat (..., n_rings) phases of a `Solution` into that shape (rings are numbered
row-major over `network.grid`). `valid` masks rings without a defined phase (fewer than two probe
fires); they take part in no average, bond or domain. `periodic` chooses the boundary. Ring phases
themselves come from `PhaseTracker` (`track_phases` runs it over a recorded probe raster).
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._errors import DiffringError, check_choice, check_float, check_int
from ._fusion import opaque_count
from ._network import Network, Rings
from ._phases import PhaseTracker, PhaseUnit, order_from_unit, order_parameter, phase_unit, sincos as _sincos

# Orbit classes of `classify_orbits`.
QUIESCENT = 0
PULSE = 1
CHATTER = 2
IRREGULAR = 3
ORBIT_NAMES = ("quiescent", "k-pulse", "chatter", "irregular")


# --- shapes -----------------------------------------------------------------------------------


def as_grid(x: Array, grid: tuple[int, ...]) -> Array:
    """Reshape per-ring values (..., n_rings) to (..., *grid) (ring r at row-major position r)."""
    grid = tuple(int(g) for g in grid)
    if x.shape[-1] != math.prod(grid):
        raise DiffringError("grid", grid, f"expected prod(grid) = n_rings = {x.shape[-1]}")
    return x.reshape(x.shape[:-1] + grid)


def _split(x, ndim):
    nd = x.ndim if ndim is None else check_int("ndim", ndim, minimum=1)
    if nd > x.ndim or nd < 1:
        raise DiffringError("ndim", ndim, f"expected 1 <= ndim <= {x.ndim} (the field has shape {x.shape})")
    return x.shape[: x.ndim - nd], x.shape[x.ndim - nd :]


def _weights(theta, valid):
    return jnp.ones(theta.shape, theta.dtype) if valid is None else valid.astype(theta.dtype)


def _unit(theta, w):
    """w exp(i theta) as a complex array (no implicit float -> complex promotion)."""
    sin, cos = _sincos(theta)
    return jax.lax.complex(w * cos, w * sin)


def _wrapped_abs(d, near=None):
    """|d| wrapped to [0, pi]: |remainder(d + pi, 2 pi) - pi|.

    For -2 pi < d + pi < 4 pi (always, for phases in [0, 2 pi)) the remainder is one add, bit for
    bit (fmod is exact there): `near=True` assumes that, `near=False` takes fmod, and `near=None`
    checks it and takes fmod only if some d is outside (one conditional).
    """
    x = d + jnp.pi
    two_pi = jnp.asarray(2 * jnp.pi, d.dtype)
    if near is None:
        inside = jnp.all((x > -two_pi) & (x < 2 * two_pi))
        return jax.lax.cond(inside, functools.partial(_wrapped_abs, near=True),
                            functools.partial(_wrapped_abs, near=False), d)
    rem = jnp.where(x < 0, x + two_pi, jnp.where(x >= two_pi, x - two_pi, x)) if near else jnp.remainder(x, two_pi)
    return jnp.abs(rem - jnp.pi)


def _check_max_delta(max_delta, grid, periodic):
    """Default: L_min // 2 (periodic), L_min - 1 (open); at most L_min - 1 (L over `grid`)."""
    if max_delta is None:
        return min(grid) // 2 if periodic else min(grid) - 1
    max_delta = check_int("max_delta", max_delta, minimum=0)
    if max_delta >= min(grid):
        raise DiffringError("max_delta", max_delta, f"expected 0 <= max_delta < min(grid) = {min(grid)}")
    return max_delta


def _lift(v, lead):
    """A 1-D array (D,) broadcast to (*lead, D) explicitly (rank promotion is an error)."""
    return jnp.broadcast_to(v.reshape((1,) * len(lead) + v.shape), lead + v.shape)


# --- phases and pulse counts ------------------------------------------------------------------


@eqx.filter_jit
def track_phases(
    t: Float[Array, " records"], o_probe: Float[Array, "records rings"], tracker: PhaseTracker | None = None
) -> tuple[Float[Array, "records rings"], Bool[Array, "records rings"], PhaseTracker]:
    """Ring phases post hoc from a recorded probe raster, with the same `PhaseTracker` the runs use.

    Record 0 initialises the tracker (or continues `tracker`). A raster recorded every step gives
    exactly the on-the-fly phases of `MapScan`; a coarser raster times fires at its own resolution.
    """
    if tracker is None:
        tracker = PhaseTracker.init(o_probe[0], t[0])
    else:
        tracker = tracker.update(o_probe[0], t[0])
    first = tracker.phase(t[0])

    def step(tr, x):
        tj, oj = x
        tr = tr.update(oj, tj)
        return tr, tr.phase(tj)

    tracker, (theta, valid) = jax.lax.scan(step, tracker, (t[1:], o_probe[1:]))
    theta = jnp.concatenate([first[0][None], theta])
    valid = jnp.concatenate([first[1][None], valid])
    return theta, valid, tracker


def _ring_tables(rings: Rings):
    """Members, predecessors (previous position around the ring) and the in-ring mask."""
    members = rings.members
    width = members.shape[1]
    pos = jnp.arange(width, dtype=jnp.int32)[None, :]
    sizes = rings.sizes[:, None].astype(jnp.int32)
    inside = pos < sizes
    prev_pos = jnp.remainder(pos - 1, jnp.maximum(sizes, 1))
    prev = jnp.take_along_axis(members, prev_pos, axis=1)
    return jnp.maximum(members, 0), jnp.maximum(prev, 0), inside


def _check_every_neuron(o, rings: Rings) -> None:
    """`o` must hold every neuron's output: JAX clamps out-of-range gather indices, so a probes-only
    record would give wrong ring statistics silently. Skipped when the tables are traced."""
    if isinstance(rings.members, jax.core.Tracer) or not hasattr(o, "shape"):
        return
    need = int(np.max(np.asarray(rings.members))) + 1
    if o.ndim == 0 or o.shape[-1] < need:
        raise DiffringError("o", f"shape {tuple(np.shape(o))}", f"expected every neuron's output on the last axis "
                            f"(>= {need}; a probes-only record will not do)")


def pulse_count(o: Float[Array, "*b n"], rings: Rings) -> Int[Array, "*b rings"]:
    """k_r: the number of maximal runs of low outputs (o < 0.5) around ring r, cyclically.

    A ring whose members are all low counts as one run. In the discrete map a pulse's hand-off to
    the next neuron leaves a one-step gap in which it is not low (see `classify_orbits`).
    """
    _check_every_neuron(o, rings)
    return _pulse_count(o, rings)


@eqx.filter_jit
def _pulse_count(o, rings):
    members, prev, inside = _ring_tables(rings)
    low = o[..., members] < 0.5
    return _count_runs(low, o[..., prev] < 0.5, jnp.broadcast_to(inside, low.shape), axis=-1)


def _count_runs(low, low_prev, inside, axis):
    """Runs of `low` along the ring `axis` (starts: low where the predecessor is not), counting a
    ring that is low everywhere (inside) as one run; `inside` None means every position is."""
    starts = low & ~low_prev if inside is None else low & ~low_prev & inside
    k = jnp.sum(starts, axis=axis, dtype=jnp.int32)
    all_low = jnp.all(low if inside is None else low | ~inside, axis=axis)
    return jnp.where(all_low, 1, k).astype(jnp.int32)


def _pulse_counter(rings: Rings) -> Callable:
    """`pulse_count(o, rings)` specialised to fixed ring tables (same integers, less work): when
    every ring is full-width the predecessor is a roll around the ring axis, and when neuron
    p * n_rings + r is member p of ring r (the S0 lattices) the gather is a reshape."""
    members, sizes = np.asarray(rings.members), np.asarray(rings.sizes)
    n_rings, width = members.shape
    if not np.all(sizes == width):
        return lambda o: pulse_count(o, rings)
    strided = np.array_equal(members, np.arange(members.size).reshape(width, n_rings).T)
    table = jnp.asarray(members.T, jnp.int32)

    def count(o):
        low = o < 0.5
        if strided and o.shape[-1] == members.size:
            low = low.reshape(o.shape[:-1] + (width, n_rings))
        else:
            low = low.at[..., table].get(mode="promise_in_bounds")  # (..., width, n_rings); in range
        return _count_runs(low, jnp.roll(low, 1, axis=-2), None, axis=-2)

    return count


# --- order parameters ---------------------------------------------------------------------------


@eqx.filter_jit
def global_order(
    theta: Float[Array, "*b *grid"], valid: Bool[Array, "*b *grid"] | None = None, *, ndim: int | None = None
) -> Float[Array, "*b"]:
    """Global Kuramoto R = |mean exp(i theta)| over the valid rings of the grid (`order_parameter`)."""
    lead, grid = _split(theta, ndim)
    flat = theta.reshape(lead + (-1,))
    return order_parameter(flat, None if valid is None else valid.reshape(lead + (-1,)))


def _box_sum(x, lead_nd, grid, radius, periodic):
    """Sum of x over the (2 radius + 1)^ndim box around every site (zero outside an open grid)."""
    for i, L in enumerate(grid):
        ax = lead_nd + i
        acc = x
        for s in range(1, radius + 1):
            if periodic:
                acc = acc + jnp.roll(x, s, axis=ax) + jnp.roll(x, -s, axis=ax)
            else:
                s_ = min(s, L)
                pad = [(0, 0)] * x.ndim
                pad[ax] = (s_, s_)
                xp = jnp.pad(x, pad)
                lo = jax.lax.slice_in_dim(xp, 0, L, axis=ax)
                hi = jax.lax.slice_in_dim(xp, 2 * s_, 2 * s_ + L, axis=ax)
                acc = acc + lo + hi
        x = acc
    return x


@eqx.filter_jit
def local_order(
    theta: Float[Array, "*b *grid"],
    valid: Bool[Array, "*b *grid"] | None = None,
    *,
    radius: int = 1,
    ndim: int | None = None,
    periodic: bool = True,
) -> Float[Array, "*b *grid"]:
    """Local R at every ring: |mean exp(i theta)| over the valid rings of the (2 radius + 1)^ndim
    box centred on it (itself included; 0 where the box holds no valid ring)."""
    radius = check_int("radius", radius, minimum=0)
    lead, grid = _split(theta, ndim)
    if periodic and any(2 * radius + 1 > L for L in grid):
        raise DiffringError("radius", radius, f"expected 2 radius + 1 <= every periodic side {grid}")
    w = _weights(theta, valid)
    sin, cos = _sincos(theta)
    return _local_order(w, w * cos, w * sin, len(lead), grid, radius, periodic)


def _local_order(w, wc, ws, lead_nd, grid, radius, periodic):
    """`local_order` from the weights w and the weighted unit vectors (w cos theta, w sin theta)."""
    zc = _box_sum(wc, lead_nd, grid, radius, periodic)
    zs = _box_sum(ws, lead_nd, grid, radius, periodic)
    n = _box_sum(w, lead_nd, grid, radius, periodic)
    return jnp.where(n > 0, jnp.sqrt(zc * zc + zs * zs) / jnp.maximum(n, 1), 0)


# --- correlations -------------------------------------------------------------------------------


@eqx.filter_jit
def correlation_axes(
    theta: Float[Array, "*b *grid"],
    valid: Bool[Array, "*b *grid"] | None = None,
    *,
    max_delta: int | None = None,
    ndim: int | None = None,
    periodic: bool = True,
    axis: int | None = None,
) -> Float[Array, "*b deltas"]:
    """C(Delta) = < cos(theta_r - theta_{r + Delta e_a}) > for Delta = 0 ... max_delta, over all
    pairs of valid rings Delta apart along grid axis `axis` (None: pooled over all axes).

    Pairs wrap around a periodic grid; an open grid has L - Delta pairs per line. Computed with a
    1-D FFT per axis (zero-padded to 2 L when open). Default max_delta: L_min // 2 (periodic),
    L_min - 1 (open), L_min over the axes used; Delta with no pair gives 0.
    """
    lead, grid = _split(theta, ndim)
    axes = range(len(grid)) if axis is None else [check_int("axis", axis, minimum=0)]
    if axis is not None and axis >= len(grid):
        raise DiffringError("axis", axis, f"expected a grid axis < {len(grid)}")
    max_delta = _check_max_delta(max_delta, tuple(grid[i] for i in axes), periodic)
    w = _weights(theta, valid)
    return _correlation_axes(_unit(theta, w), w, len(lead), grid, axes, max_delta, periodic)


def _correlation_axes(z, w, lead_nd, grid, axes, max_delta, periodic):
    """`correlation_axes` from z = w exp(i theta) and the weights w.

    Per axis: one batched FFT of z (and a real one of w) along it; |F|^2 summed over the other
    axes first (the inverse transform is linear), so one short inverse transform per axis gives
    the pooled pair sums sum_r z_{r+D} conj(z_r) and the pair counts.
    """
    lead = z.shape[:lead_nd]
    spatial = tuple(range(lead_nd, lead_nd + len(grid)))
    num = jnp.zeros(lead + (max_delta + 1,), w.dtype)
    den = jnp.zeros(lead + (max_delta + 1,), w.dtype)

    def pooled(P, ax, others):
        return jnp.moveaxis(jnp.sum(P, axis=others, keepdims=True), ax, -1).reshape(lead + (-1,))

    for i in axes:
        ax = lead_nd + i
        n = grid[i] if periodic else 2 * grid[i]
        others = tuple(a for a in spatial if a != ax)
        F = jnp.fft.fft(z, n=n, axis=ax)
        P = pooled(jnp.real(F) ** 2 + jnp.imag(F) ** 2, ax, others)
        S = jnp.real(jnp.fft.ifft(jax.lax.complex(P, jnp.zeros_like(P)), axis=-1))
        num = num + S[..., : max_delta + 1]
        G = jnp.fft.rfft(w, n=n, axis=ax)
        Q = pooled(jnp.real(G) ** 2 + jnp.imag(G) ** 2, ax, others)
        den = den + jnp.fft.irfft(Q, n=n, axis=-1)[..., : max_delta + 1]
    den = jnp.round(den)  # pair counts are integers; FFT rounding would otherwise leak into C
    return jnp.where(den > 0.5, num / jnp.maximum(den, 1), 0)


def _radial_bins(grid, periodic, max_delta):
    """Static (NumPy) radial bin of every FFT lag: round(|Delta|), -1 beyond max_delta."""
    comps = []
    for L in grid:
        j = np.arange(L if periodic else 2 * L)
        d = np.minimum(j, L - j) if periodic else np.where(j < L, j, j - 2 * L)
        comps.append(d.astype(np.float64))
    mesh = np.meshgrid(*comps, indexing="ij")
    r = np.sqrt(sum(m * m for m in mesh))
    b = np.rint(r).astype(np.int32)
    return np.where(b <= max_delta, b, max_delta + 1)


@eqx.filter_jit
def correlation_isotropic(
    theta: Float[Array, "*b *grid"],
    valid: Bool[Array, "*b *grid"] | None = None,
    *,
    max_delta: int | None = None,
    ndim: int | None = None,
    periodic: bool = True,
) -> Float[Array, "*b deltas"]:
    """Isotropic C(Delta): < cos(theta_r - theta_s) > over pairs of valid rings whose Euclidean
    distance rounds to Delta (minimum-image distance on a periodic grid), via the FFT of
    exp(i theta) (zero-padded to 2 L per axis when open)."""
    lead, grid = _split(theta, ndim)
    max_delta = _check_max_delta(max_delta, grid, periodic)
    w = _weights(theta, valid)
    z = _unit(theta, w)
    wz = jax.lax.complex(w, jnp.zeros_like(w))
    spatial = tuple(range(len(lead), len(lead) + len(grid)))
    shape = tuple(L if periodic else 2 * L for L in grid)
    bins = jnp.asarray(_radial_bins(grid, periodic, max_delta).reshape(-1))

    def radial(field):
        F = jnp.fft.fftn(field, s=shape, axes=spatial)
        S = jnp.real(jnp.fft.ifftn(F * jnp.conj(F), axes=spatial)).reshape(lead + (-1,))
        S = jnp.moveaxis(S, -1, 0)
        out = jax.ops.segment_sum(S, bins, num_segments=max_delta + 2)[: max_delta + 1]
        return jnp.moveaxis(out, 0, -1)

    num = radial(z)
    den = jnp.round(radial(wz))
    return jnp.where(den > 0.5, num / jnp.maximum(den, 1), 0)


# --- correlation length ---------------------------------------------------------------------------


class AbstractXi(eqx.Module):
    """A correlation-length estimator: C(Delta) for Delta = 0, 1, ... -> xi, capped at `xi_max`."""

    @abc.abstractmethod
    def __call__(self, C: Float[Array, "*b deltas"], xi_max: float = math.inf) -> Float[Array, "*b"]:
        """xi from C (last axis: Delta = 0, 1, ...)."""


class ExpFit(AbstractXi):
    """Fit C ~ exp(-Delta / xi): weighted least squares of log C against Delta over Delta = 1, 2, ...
    up to the first Delta where C <= `floor` (weights C^2 = 1 / var(log C) for a constant var(C),
    or uniform if not `weighted`). Through the origin (log C(0) = 0) unless `intercept`.

    A non-decreasing C gives `xi_max`; C(1) <= floor (no point to fit) gives xi = 0.
    """

    floor: float = eqx.field(static=True, default=0.05)
    intercept: bool = eqx.field(static=True, default=False)
    weighted: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_float("ExpFit.floor", self.floor, positive=True, hi=1.0)

    @eqx.filter_jit
    def __call__(self, C, xi_max=math.inf):
        lead = C.shape[:-1]
        dtype = C.dtype
        D = _lift(jnp.arange(C.shape[-1]).astype(dtype), lead)
        above = (C > self.floor) & (D > 0.5)
        # only the contiguous range from Delta = 1 (beyond the first drop below the floor is noise)
        above = jnp.cumprod(above | (D < 0.5), axis=-1).astype(bool) & (D > 0.5)
        y = jnp.log(jnp.where(above, C, 1))
        w = jnp.where(above, C * C if self.weighted else jnp.ones_like(C), 0)
        sw = jnp.sum(w, -1)
        sx, sy = jnp.sum(w * D, -1), jnp.sum(w * y, -1)
        sxx, sxy = jnp.sum(w * D * D, -1), jnp.sum(w * D * y, -1)
        slope0 = sxy / jnp.maximum(sxx, jnp.finfo(dtype).tiny)
        if self.intercept:
            npts = jnp.sum(above, -1)
            det = sw * sxx - sx * sx
            slope1 = (sw * sxy - sx * sy) / jnp.where(det > 0, det, 1)
            slope = jnp.where((npts >= 2) & (det > 0), slope1, slope0)
        else:
            slope = slope0
        xi = jnp.where(slope < 0, -1 / jnp.where(slope < 0, slope, -1), jnp.inf)
        xi = jnp.minimum(xi, jnp.asarray(xi_max, dtype))
        return jnp.where(sw > 0, xi, 0)


class Crossing(AbstractXi):
    """xi = the first Delta where C drops below `level` (default 1/e), interpolated between the
    neighbouring integers (log-linearly when both values are positive, which is exact for a pure
    exponential; linearly otherwise), or the integer itself if not `interpolate`. Never crossing
    gives `xi_max`.
    """

    level: float = eqx.field(static=True, default=math.exp(-1))
    interpolate: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_float("Crossing.level", self.level, positive=True, hi=1.0)

    @eqx.filter_jit
    def __call__(self, C, xi_max=math.inf):
        lead = C.shape[:-1]
        dtype = C.dtype
        n = C.shape[-1]
        D = _lift(jnp.arange(n).astype(dtype), lead)
        below = (C < self.level) & (D > 0.5)
        crossed = jnp.any(below, -1)
        j = jnp.argmax(below, axis=-1)  # first crossing (index >= 1 when crossed)
        j = jnp.maximum(j, 1)
        c1 = jnp.take_along_axis(C, j[..., None], -1)[..., 0]
        c0 = jnp.take_along_axis(C, (j - 1)[..., None], -1)[..., 0]
        jf = j.astype(dtype)
        if self.interpolate:
            lvl = jnp.asarray(self.level, dtype)
            pos = (c1 > 0) & (c0 > 0)
            frac_log = jnp.log(jnp.where(pos, c0, 1) / lvl) / jnp.log(jnp.where(pos, c0 / jnp.where(pos, c1, 1), 2))
            frac_lin = (c0 - lvl) / jnp.where(c0 > c1, c0 - c1, 1)
            frac = jnp.clip(jnp.where(pos, frac_log, frac_lin), 0, 1)
            x = jf - 1 + frac
        else:
            x = jf
        return jnp.where(crossed, jnp.minimum(x, jnp.asarray(xi_max, dtype)), jnp.asarray(xi_max, dtype))


CORRELATIONS = ("axes", "isotropic")
DEFAULT_FIT = ExpFit()
DEFAULT_CROSSING = Crossing()


@eqx.filter_jit
def correlation_length(
    theta: Float[Array, "*b *grid"],
    valid: Bool[Array, "*b *grid"] | None = None,
    *,
    estimator: AbstractXi = DEFAULT_FIT,
    correlation: str = "axes",
    max_delta: int | None = None,
    ndim: int | None = None,
    periodic: bool = True,
) -> Float[Array, "*b"]:
    """xi of a phase field: `estimator` (ExpFit or Crossing) applied to its C(Delta) ("axes" or
    "isotropic"), capped at the system size max(grid) (so an all-in-phase field has xi = L)."""
    check_choice("correlation", correlation, CORRELATIONS)
    _, grid = _split(theta, ndim)
    f = correlation_axes if correlation == "axes" else correlation_isotropic
    C = f(theta, valid, max_delta=max_delta, ndim=ndim, periodic=periodic)
    return estimator(C, float(max(grid)))


# --- domain walls and domains ---------------------------------------------------------------------


def _bonds(theta, valid, k, threshold, ndim, periodic):
    """(exists, wall) per bond r -> r + e_a, each of shape (*b, ndim, *grid).

    One conditional on the phases: all in [0, 2 pi) (the tracker's range while rings fire) makes
    every wrapped difference one add (`_wrapped_abs(near=True)`, bit for bit the remainder); otherwise fmod.
    The conditional also hands the bonds over as buffers (XLA CPU would otherwise recompute the
    rolls inside each consumer), which made them ~2x cheaper (measured on 128 x 128).
    """
    lead, grid = _split(theta, ndim)
    ok = jnp.ones(theta.shape, bool) if valid is None else valid
    two_pi = jnp.asarray(2 * jnp.pi, theta.dtype)

    def bonds(theta, ok, k, near):
        exists, wall = [], []
        for i, L in enumerate(grid):
            ax = len(lead) + i
            both = ok & jnp.roll(ok, -1, axis=ax)
            if not periodic:
                idx = jnp.arange(L).reshape((1,) * ax + (L,) + (1,) * (theta.ndim - ax - 1))
                both = both & jnp.broadcast_to(idx < L - 1, theta.shape)
            if periodic and L == 1:
                both = jnp.zeros_like(both)  # a ring is not its own neighbour
            w = _wrapped_abs(jnp.roll(theta, -1, axis=ax) - theta, near) > threshold
            if k is not None:
                w = w | (k != jnp.roll(k, -1, axis=ax))
            exists.append(both)
            wall.append(both & w)
        return jnp.stack(exists, axis=len(lead)), jnp.stack(wall, axis=len(lead))

    in_range = jnp.all((theta >= 0) & (theta < two_pi))
    return jax.lax.cond(
        in_range, functools.partial(bonds, near=True), functools.partial(bonds, near=False), theta, ok, k
    )


@eqx.filter_jit
def wall_bonds(
    theta: Float[Array, "*b *grid"],
    valid: Bool[Array, "*b *grid"] | None = None,
    *,
    k: Int[Array, "*b *grid"] | None = None,
    threshold: float = math.pi / 2,
    ndim: int | None = None,
    periodic: bool = True,
) -> Bool[Array, "*b ndim *grid"]:
    """Domain-wall bonds: `out[..., a, r]` is True when rings r and r + e_a (both valid; wrapping
    only if periodic) have a wrapped phase difference > `threshold`, or, if `k` is given, different
    pulse counts."""
    return _bonds(theta, valid, k, threshold, ndim, periodic)[1]


@eqx.filter_jit
def wall_density(
    theta: Float[Array, "*b *grid"],
    valid: Bool[Array, "*b *grid"] | None = None,
    *,
    k: Int[Array, "*b *grid"] | None = None,
    threshold: float = math.pi / 2,
    ndim: int | None = None,
    periodic: bool = True,
) -> Float[Array, "*b"]:
    """Fraction of nearest-neighbour bonds (between valid rings) that are wall bonds (0 if none)."""
    lead, _ = _split(theta, ndim)
    exists, wall = _bonds(theta, valid, k, threshold, ndim, periodic)
    axes = tuple(range(len(lead), exists.ndim))
    n = jnp.sum(exists, axis=axes).astype(theta.dtype)
    return jnp.sum(wall, axis=axes).astype(theta.dtype) / jnp.maximum(n, 1)


class Domains(eqx.Module):
    """Connected components of valid rings joined by non-wall bonds.

    `labels` (*b, *grid): the smallest row-major ring index in the ring's domain (-1: invalid ring).
    `sizes` (*b, n_rings): `sizes[..., j]` is the size of the domain labelled j (0 if j is no label),
    so `sizes[sizes > 0]` is the size distribution. `n_domains`, `largest`, `mean_size` (*b).
    """

    labels: Int[Array, "*b *grid"]
    sizes: Int[Array, "*b n"]
    n_domains: Int[Array, "*b"]
    largest: Int[Array, "*b"]
    mean_size: Float[Array, "*b"]


def _labels_one(connect, valid):
    """Connected-component labels on one grid; connect (ndim, *grid), valid (*grid).

    Min-label propagation with hooking and pointer jumping on the flat (row-major) ring index.
    Each sweep hooks every ring's current label onto the smallest label among the ring and its
    connected neighbours (a scatter-min, so whole label trees merge at once) and jumps twice
    (label = min(label, label[label])). Labels only decrease and stay inside their component; the
    loop stops when no ring has a connected neighbour with a smaller label, which (labels start at
    the ring's own index) leaves each ring holding its component's smallest index. About 5 sweeps
    on 128 x 128 lattice states (~ log of the domain diameter), not one per lattice step.

    Cheap on CPU: labels are int16 while the grid has fewer than 2^15 - 1 rings (half the bytes,
    twice the SIMD width), and the loop carries them with a halo of one outer-axis slice at each
    end, so every neighbour is a static slice (no gather, no concatenate inside the fused minimum;
    inner axes wrap by a select). The neighbour minimum of the new labels is both the stopping
    test and the next sweep's hook source, so the last sweep is only that minimum.
    """
    grid = valid.shape
    nd = len(grid)
    n = math.prod(grid)
    dtype = jnp.int16 if n < 2**15 - 1 else jnp.int32
    strides = [math.prod(grid[a + 1 :]) for a in range(nd)]
    s0 = strides[0]
    big = jnp.asarray(n, dtype)  # invalid rings; never a neighbour (no bond reaches them)
    vflat = valid.reshape(-1)
    coords = np.indices(grid).reshape(nd, -1)
    terms = []  # (bond mask, offset, wrap mask, wrap offset): a neighbour at flat offset `offset`
    for a in range(nd):
        L, s = grid[a], strides[a]
        fwd = connect[a].reshape(-1)
        bwd = jnp.roll(connect[a], 1, axis=a).reshape(-1)  # the bond r - e_a -> r
        if a == 0 or L == 1:  # the outer axis wraps through the halo
            terms += [(fwd, s, None, 0), (bwd, -s, None, 0)]
        else:  # only bonds that exist are read, so open grids need no special case
            terms += [(fwd, s, jnp.asarray(coords[a] == L - 1), s - L * s)]
            terms += [(bwd, -s, jnp.asarray(coords[a] == 0), L * s - s)]

    def at(ext, off):
        return jax.lax.slice(ext, (s0 + off,), (s0 + off + n,))

    def halo(lab):
        return jnp.concatenate([lab[n - s0 :], lab, lab[:s0]])

    def neighbour_min(ext):
        m = at(ext, 0)
        for bond, off, wrap, woff in terms:
            v = at(ext, off) if wrap is None else jnp.where(wrap, at(ext, woff), at(ext, off))
            m = jnp.minimum(m, jnp.where(bond, v, big))
        return m

    def index(x):  # labels as indices, clamped into [0, n) so XLA's bounds handling can be skipped
        return jnp.minimum(x, n - 1).astype(jnp.uint32)

    def jump(i, m):
        del i
        return jnp.minimum(m, m.at[index(m)].get(mode="promise_in_bounds"))

    # A loop of two trips (XLA cannot prove the count) keeps each jump's labels in a buffer: fused
    # jumps would recompute the previous jump's labels at every gathered index.
    two = opaque_count(2)

    def body(c):
        ext, m, _, i = c
        m = m.at[index(at(ext, 0))].min(m, mode="promise_in_bounds")  # hook: invalid rings are no-ops
        m = jnp.where(vflat, jax.lax.fori_loop(0, two, jump, m), big)
        ext = halo(m)
        nxt = neighbour_min(ext)
        return ext, nxt, jnp.any(nxt != m), i + 1

    lab0 = jnp.where(vflat, jnp.arange(n, dtype=dtype), big)
    ext0 = halo(lab0)
    m0 = neighbour_min(ext0)
    init = (ext0, m0, jnp.any(m0 != lab0), jnp.asarray(0, jnp.int32))
    ext, _, _, _ = jax.lax.while_loop(lambda c: c[2] & (c[3] < n + 1), body, init)
    lab = at(ext, 0).astype(jnp.int32)
    sizes = jax.ops.segment_sum(vflat.astype(jnp.int32), lab, num_segments=n + 1)[:n]
    return jnp.where(valid, lab.reshape(grid), -1), sizes


@eqx.filter_jit
def domains(
    theta: Float[Array, "*b *grid"],
    valid: Bool[Array, "*b *grid"] | None = None,
    *,
    k: Int[Array, "*b *grid"] | None = None,
    threshold: float = math.pi / 2,
    ndim: int | None = None,
    periodic: bool = True,
) -> Domains:
    """Phase domains: connected components of the grid graph without its wall bonds (`wall_bonds`),
    by iterative min-label propagation in a `lax.while_loop` (static shapes; jit/vmap-able)."""
    lead, grid = _split(theta, ndim)
    exists, wall = _bonds(theta, valid, k, threshold, ndim, periodic)
    ok = jnp.ones(theta.shape, bool) if valid is None else valid
    return _domains(exists & ~wall, ok, lead, grid, theta.dtype)


def _domains(connect, ok, lead, grid, dtype):
    """`domains` from the non-wall bonds `connect` (*lead, ndim, *grid) and the valid rings."""
    if lead:
        connect = connect.reshape((-1, len(grid)) + grid)
        labels, sizes = jax.vmap(_labels_one)(connect, ok.reshape((-1,) + grid))
        labels, sizes = labels.reshape(lead + grid), sizes.reshape(lead + (-1,))
    else:  # one grid (e.g. on the fly in a single run): a vmap of one would wrap the loop in selects
        labels, sizes = _labels_one(connect, ok)
    n_dom = jnp.sum(sizes > 0, axis=-1, dtype=jnp.int32)
    largest = jnp.max(sizes, axis=-1)
    n_valid = jnp.sum(sizes, axis=-1).astype(dtype)
    mean = jnp.where(n_dom > 0, n_valid / jnp.maximum(n_dom, 1).astype(dtype), 0)
    return Domains(labels, sizes, n_dom, largest, mean)


@eqx.filter_jit
def size_distribution(sizes: Int[Array, "*b n"]) -> Int[Array, "*b n1"]:
    """Number of domains of each size s = 0 ... n (entry 0 is always 0), from `Domains.sizes`."""
    n = sizes.shape[-1]
    flat = sizes.reshape((-1, n))
    hist = jax.vmap(lambda s: jnp.zeros(n + 1, jnp.int32).at[s].add((s > 0).astype(jnp.int32)))(flat)
    return hist.reshape(sizes.shape[:-1] + (n + 1,))


# --- orbits, firing rates, rasters ----------------------------------------------------------------


def classify_orbits(
    o: Float[Array, "*b T n"], rings: Rings, *, chatter_fraction: float = 0.5
) -> tuple[Int[Array, "*b rings"], Int[Array, "*b rings"]]:
    """Classify each ring's orbit over a window of outputs `o` (T >= 4 samples of *every step*).

    Returns (orbit, k): orbit is QUIESCENT (no member switches), CHATTER (some member flips on at
    least `chatter_fraction` of the steps: the period-2-step artefact of the discrete map), PULSE
    (a stable k >= 1: the largest pulse count in the first and in the second half of the window
    agree; maxima, because a discrete-map hand-off leaves one step with fewer low runs) or
    IRREGULAR (anything else: pulses created or annihilated, all members stuck low, ...).
    k is the largest pulse count in the second half of the window.
    """
    _check_every_neuron(o, rings)
    T = o.shape[-2]
    if T < 4:
        raise DiffringError("o", f"window of {T} samples", "expected at least 4 samples")
    return _classify_orbits(o, rings, check_float("chatter_fraction", chatter_fraction, positive=True, hi=1.0))


@eqx.filter_jit
def _classify_orbits(o, rings, chatter_fraction):
    T = o.shape[-2]
    members, _, inside = _ring_tables(rings)
    k_t = pulse_count(o, rings)  # (*b, T, rings)
    half = T // 2
    k_first = jnp.max(k_t[..., :half, :], axis=-2)
    k_last = jnp.max(k_t[..., half:, :], axis=-2)
    flips = (o[..., 1:, :] < 0.5) != (o[..., :-1, :] < 0.5)  # (*b, T-1, n)
    n_flip = jnp.sum(flips, axis=-2, dtype=jnp.int32)[..., members]  # (*b, rings, width)
    inside = jnp.broadcast_to(inside, n_flip.shape)
    n_flip = jnp.where(inside, n_flip, 0)
    switching = jnp.any(n_flip > 0, axis=-1)
    chatter = jnp.max(n_flip, axis=-1).astype(o.dtype) >= chatter_fraction * (T - 1)
    stable = (k_first == k_last) & (k_last >= 1)
    all_low = jnp.all((o[..., -1, :] < 0.5)[..., members] | ~inside, axis=-1)
    orbit = jnp.where(
        ~switching, QUIESCENT, jnp.where(chatter, CHATTER, jnp.where(stable & ~all_low, PULSE, IRREGULAR))
    )
    return orbit.astype(jnp.int32), k_last


def _per_ring_mean(x, rings):
    members, _, inside = _ring_tables(rings)
    vals = x[..., members]
    vals = jnp.where(jnp.broadcast_to(inside, vals.shape), vals, 0)
    return jnp.sum(vals, axis=-1) / jnp.broadcast_to(rings.sizes.astype(x.dtype), vals.shape[:-1])


def firing_fraction(o: Float[Array, "*b T n"], rings: Rings | None = None) -> Float[Array, "*b m"]:
    """Fraction of the window's samples each neuron is low (firing, o < 0.5); with `rings`, the
    mean over each ring's members."""
    if rings is not None:
        _check_every_neuron(o, rings)
    return _firing_fraction(o, rings)


@eqx.filter_jit
def _firing_fraction(o, rings):
    frac = jnp.mean((o < 0.5).astype(o.dtype), axis=-2)
    return frac if rings is None else _per_ring_mean(frac, rings)


def fire_counts(o: Float[Array, "*b T n"], rings: Rings | None = None) -> Int[Array, "*b m"]:
    """Raster summary: fires (falls through 0.5 between consecutive samples) per neuron in the
    window; with `rings`, per ring, the fires of its probe neuron (k per period for k pulses)."""
    if rings is not None:
        _check_every_neuron(o, rings)
    return _fire_counts(o, rings)


@eqx.filter_jit
def _fire_counts(o, rings):
    fell = (o[..., :-1, :] >= 0.5) & (o[..., 1:, :] < 0.5)
    c = jnp.sum(fell, axis=-2, dtype=jnp.int32)
    return c if rings is None else c[..., rings.probes]


# --- the on-the-fly / post-hoc bundle ----------------------------------------------------------------


def is_periodic(network: Network) -> bool:
    """Whether a builder made the network's grid periodic (from `network.kind`)."""
    return network.kind.endswith("-periodic")


def lattice_observables(
    network: Network,
    *,
    periodic: bool | None = None,
    max_delta: int | None = None,
    radius: int = 1,
    threshold: float = math.pi / 2,
    k_walls: bool = False,
    fit: AbstractXi = DEFAULT_FIT,
    crossing: AbstractXi = DEFAULT_CROSSING,
    isotropic: bool = False,
    domains: bool = True,
) -> Callable:
    """A function `fn(t, state, phase, valid) -> dict` for `Record(observe=fn)`, equally applied
    post hoc to recorded states and phases (`observe_records`).

    Keys: "R" (global), "k" (pulse count per ring, from `state.o`), "k_mean"; on a chain or
    lattice (`network.grid`) also "R_local" (mean local R, box `radius`), "C" (C(Delta) along
    axes), "C_iso" (if `isotropic`), "xi_fit", "xi_cross" (from "C", capped at max(grid)),
    "wall_density", "n_walls" (wall bonds), "n_domains", "largest_domain", "mean_domain_size"
    (unless `domains=False`: the connected components, about 20-30 % of the cost; they can be
    computed post hoc from the recorded phases with `diffring.domains`). `periodic=None` takes the
    boundary from the builder; `k_walls` also counts bonds between rings of different pulse count
    as walls (off by default: hand-off gaps of the discrete map flicker k). Cost:
    docs/observables.md and benchmarks/bench_observables.py.
    """
    grid = network.grid
    rings = network.rings
    if periodic is None:
        periodic = is_periodic(network)
    if grid is not None:
        radius = check_int("radius", radius, minimum=0)
        max_delta = _check_max_delta(max_delta, grid, periodic)
        xi_max = float(max(grid))
    threshold = check_float("threshold", threshold, nonnegative=True)

    count = _pulse_counter(rings)

    def from_unit(t, state, unit: PhaseUnit):
        """The observables from a record's `PhaseUnit` (its phases and their cos/sin, computed once
        into buffers and shared with the record's R: `MapScan` passes its own, `fn` makes one)."""
        del t
        k = count(state.o)
        phase, valid = unit.theta, unit.valid
        out = {"R": order_from_unit(unit), "k": k, "k_mean": jnp.mean(k.astype(phase.dtype), axis=-1)}
        if grid is None:
            return out
        # One pass: cos/sin of the phases, the bonds and the walls are computed once and shared by
        # the local order, the correlations and the domains (the cost is mostly these, not the FFTs).
        n = phase.shape[-1]
        th, ok, kg = as_grid(phase, grid), as_grid(valid, grid), as_grid(k, grid)
        nd = len(grid)
        lead_nd = th.ndim - nd
        w = ok.astype(phase.dtype)
        wc, ws = w * as_grid(unit.cos[..., :n], grid), w * as_grid(unit.sin[..., :n], grid)
        z = jax.lax.complex(wc, ws)
        spatial = tuple(range(lead_nd, th.ndim))
        rl = _local_order(w, wc, ws, lead_nd, grid, radius, periodic)
        out["R_local"] = jnp.sum(w * rl, axis=spatial) / jnp.maximum(jnp.sum(w, axis=spatial), 1)
        C = _correlation_axes(z, w, lead_nd, grid, range(nd), max_delta, periodic)
        out["C"] = C
        if isotropic:
            out["C_iso"] = correlation_isotropic(th, ok, max_delta=max_delta, ndim=nd, periodic=periodic)
        out["xi_fit"] = fit(C, xi_max)
        out["xi_cross"] = crossing(C, xi_max)
        kk = kg if k_walls else None
        exists, wall = _bonds(th, ok, kk, threshold, nd, periodic)
        wall_axes = tuple(range(lead_nd, wall.ndim))
        n_b = jnp.sum(exists, axis=wall_axes)
        n_w = jnp.sum(wall, axis=wall_axes, dtype=jnp.int32)
        out["n_walls"] = n_w
        out["wall_density"] = n_w.astype(phase.dtype) / jnp.maximum(n_b, 1).astype(phase.dtype)
        if domains:
            dom = _domains(exists & ~wall, ok, th.shape[:lead_nd], grid, phase.dtype)
            out["n_domains"] = dom.n_domains
            out["largest_domain"] = dom.largest
            out["mean_domain_size"] = dom.mean_size
        return out

    def fn(t, state, phase, valid):
        return from_unit(t, state, phase_unit(phase, valid))

    fn.from_unit = from_unit  # `MapScan` hands it the record's own `PhaseUnit` (one cos/sin for R and these)
    return fn


@functools.lru_cache(maxsize=8)
def _vmapped(fn):
    """One compiled vmap of `fn` per function, so repeated post-hoc calls do not recompile."""
    return jax.jit(jax.vmap(fn))


def observe_records(fn: Callable, solution) -> dict:
    """Apply an observe function post hoc to a `Solution` recorded with `which="all"` and fields
    ("o", "v"), over its records (and batch members): the post-hoc twin of `Record(observe=fn)`."""
    from ._models import State

    if solution.o is None or solution.v is None or solution.phase is None:
        raise DiffringError("solution", "without o, v or phases", "record fields ('o', 'v') of all neurons and phases")
    lead = solution.t.shape
    flat = lambda a: a.reshape((-1,) + a.shape[len(lead) :])  # noqa: E731
    t = solution.t.reshape(-1)
    state = State(flat(solution.v), flat(solution.o))
    out = _vmapped(fn)(t, state, flat(solution.phase), flat(solution.phase_valid))
    return jax.tree.map(lambda a: a.reshape(lead + a.shape[1:]), out)
