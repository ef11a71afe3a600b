"""Ring phases from probe firing times, and the Kuramoto order parameter.

The tracker is causal so the same code runs on the fly (every step) and post hoc (over recorded
probe outputs): after the n-th fire at t_n, the phase is 2 pi (t - t_n) / (t_n - t_{n-1}) mod 2 pi,
i.e. the last completed inter-fire interval stands in for the current one. A ring is `valid` once
its probe has fired twice. For a k-pulse orbit this is k times the ring phase (mod 2 pi).

Fire times have the resolution of the samples the tracker is fed: `MapScan` feeds it every step of
dt whatever `Record.every` is; `ODESolve` feeds it the recorded samples (every * dt), so choose a
small `every` there when phases matter.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._fusion import materialised_loop


class PhaseTracker(eqx.Module):
    """Per ring: last and previous fire times, the probe's previous output, and the fire count."""

    last: Float[Array, "*b rings"]
    prev: Float[Array, "*b rings"]
    o_prev: Float[Array, "*b rings"]
    count: Int[Array, "*b rings"]

    @classmethod
    def init(cls, o_probe: Float[Array, " rings"], t0=0.0) -> PhaseTracker:
        t = jnp.full(o_probe.shape, t0, o_probe.dtype)
        return cls(t, t, o_probe, jnp.zeros(o_probe.shape, jnp.int32))

    def update(self, o_probe: Float[Array, " rings"], t) -> PhaseTracker:
        """Register the probe outputs at time t (a fire is a fall through 0.5)."""
        fell = (self.o_prev >= 0.5) & (o_probe < 0.5)
        t = jnp.asarray(t, self.last.dtype)
        return PhaseTracker(
            jnp.where(fell, t, self.last),
            jnp.where(fell, self.last, self.prev),
            o_probe,
            self.count + fell.astype(jnp.int32),
        )

    def phase(self, t) -> tuple[Float[Array, " rings"], Bool[Array, " rings"]]:
        """Phases in [0, 2 pi) at time t, and which rings have a defined phase."""
        valid = self.count >= 2
        period = jnp.where(valid, self.last - self.prev, 1)
        frac = (jnp.asarray(t, self.last.dtype) - self.last) / period
        theta = 2 * jnp.pi * (frac - jnp.floor(frac))
        return jnp.where(valid, theta, 0), valid


# fdlibm's __kernel_sin / __kernel_cos polynomials (|r| <= pi/4) and pi/2 split into 33 + 33 + 53 bits.
_PIO2 = (1.57079632673412561417e00, 6.07710050630396597660e-11, 2.02226624871116645580e-21)
_SIN = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
        2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)  # fmt: skip
_COS = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
        -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)  # fmt: skip
_HUGE = 2.0**40  # beyond this, float64 phases are first reduced by fmod(theta, 2 pi)


def _horner(z, coeffs):
    p = coeffs[-1]
    for a in coeffs[-2::-1]:
        p = a + z * p
    return p


def sincos(theta, in_range: bool = False):
    """(sin theta, cos theta) from plain vectorisable arithmetic: within 2 ulp of the correctly
    rounded values in float64 (XLA's CPU sin and cos are ~2-4x slower and dominated R and the
    lattice observables).

    Cody-Waite reduction to |r| <= pi/4 with the quadrant index split in two 20-bit halves (exact
    for |theta| < 2^40); larger phases, which carry no sub-milliradian information in float64, are
    reduced by fmod first (one conditional; `in_range=True` promises |theta| < 2^40 and skips it).
    Other dtypes use jnp.sin / jnp.cos.
    """
    if theta.dtype != jnp.float64:
        return jnp.sin(theta), jnp.cos(theta)
    if not in_range:
        theta = jax.lax.cond(jnp.any(jnp.abs(theta) >= _HUGE), lambda x: jnp.fmod(x, 2 * math.pi), lambda x: x, theta)
    q = jnp.round(theta * (2 / math.pi))
    q_hi = jnp.round(q * 2.0**-20) * 2.0**20
    q_lo = q - q_hi
    p1, p2, p3 = _PIO2
    r = ((((theta - q_hi * p1) - q_lo * p1) - q_hi * p2) - q_lo * p2) - q * p3
    z = r * r
    s = r + (r * z) * _horner(z, _SIN)
    c = (1 - 0.5 * z) + (z * z) * _horner(z, _COS)
    quad = (q - 4 * jnp.floor(q * 0.25)).astype(jnp.int32)  # q mod 4
    sin = jnp.where(quad == 0, s, jnp.where(quad == 1, c, jnp.where(quad == 2, -s, -c)))
    cos = jnp.where(quad == 0, c, jnp.where(quad == 1, -s, jnp.where(quad == 2, -c, s)))
    return sin, cos


class PhaseUnit(NamedTuple):
    """A record's phases and mask, and w = valid, cos and sin of the phases zero-padded to whole
    64-element chunks (`phase_unit`): what R and the lattice observables read."""

    theta: Float[Array, "*b rings"]
    valid: Bool[Array, "*b rings"]
    w: Float[Array, "*b padded"]
    cos: Float[Array, "*b padded"]
    sin: Float[Array, "*b padded"]


def _padded_unit(theta, valid, in_range=False):
    # Padded to whole 64-element chunks so that cos/sin run on whole SIMD vectors whether batched or
    # not: XLA CPU may evaluate a ragged tail with scalar code that rounds differently, and a batch
    # must equal its members. (`pairwise_sum` pads the zeros on to a power of two.)
    sin, cos = sincos(_pad_multiple(theta), in_range)
    return _pad_multiple(valid.astype(theta.dtype)), cos, sin


def phase_unit(theta, valid, in_range: bool = False) -> PhaseUnit:
    """`PhaseUnit` computed once into buffers (`materialised_loop`): a record's R and its lattice
    observables share one cos/sin of the phases, which XLA would otherwise re-evaluate inside every
    fusion that reads them. `in_range`: the phases are the tracker's, in [0, 2 pi] (see `sincos`)."""
    return PhaseUnit(*materialised_loop(lambda: (theta, valid, *_padded_unit(theta, valid, in_range))))


def order_from_unit(unit: PhaseUnit) -> Float[Array, "*b"]:
    """R = |mean exp(i theta)| over the valid rings, from a `PhaseUnit` (0 if no ring is valid)."""
    # No product feeds an add (XLA CPU may contract a*b + c*d into an FMA on either product, differently
    # in different programs): select instead of multiply by the mask, and |c + i s| instead of c^2 + s^2.
    keep = unit.w > 0
    n = jnp.maximum(pairwise_sum(unit.w), 1)
    c = pairwise_sum(jnp.where(keep, unit.cos, 0)) / n
    s = pairwise_sum(jnp.where(keep, unit.sin, 0)) / n
    return jnp.abs(jax.lax.complex(c, s))


def order_parameter(
    theta: Float[Array, "*b rings"], valid: Bool[Array, "*b rings"] | None = None
) -> Float[Array, "*b"]:
    """Global Kuramoto order parameter R = |mean_r exp(i theta_r)| over valid rings (0 if none).

    The same arithmetic as a run's R(t) (`phase_unit` + `order_from_unit`), as one plain expression."""
    if valid is None:
        valid = jnp.ones(theta.shape, bool)
    return order_from_unit(PhaseUnit(theta, valid, *_padded_unit(theta, valid)))


def _pad_multiple(x, multiple: int = 64):
    n = x.shape[-1]
    size = max(-(-n // multiple), 1) * multiple
    if size == n:
        return x
    return jnp.concatenate([x, jnp.zeros(x.shape[:-1] + (size - n,), x.dtype)], axis=-1)


def _pad_pow2(x, minimum: int = 64):
    n = x.shape[-1]
    size = max(1 << max(n - 1, 0).bit_length(), minimum)
    if size == n:
        return x
    return jnp.concatenate([x, jnp.zeros(x.shape[:-1] + (size - n,), x.dtype)], axis=-1)


def pairwise_sum(x: Float[Array, "*b n"]) -> Float[Array, "*b"]:
    """Sum over the last axis in a fixed pairwise order (zero-padded to a power of two).

    XLA's reductions may add in a different order for a batched array than for one member, so a
    batch would differ from its single runs in the last bit; elementwise adds of halves do not.
    """
    x = _pad_pow2(x, minimum=1)
    while x.shape[-1] > 1:
        h = x.shape[-1] // 2
        x = x[..., :h] + x[..., h:]
    return x[..., 0]
