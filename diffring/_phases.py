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

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


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


def order_parameter(
    theta: Float[Array, "*b rings"], valid: Bool[Array, "*b rings"] | None = None
) -> Float[Array, "*b"]:
    """Global Kuramoto order parameter R = |mean_r exp(i theta_r)| over valid rings (0 if none)."""
    if valid is None:
        valid = jnp.ones(theta.shape, bool)
    # Padded to whole 64-element chunks so that cos/sin run on whole SIMD vectors whether batched or
    # not: XLA CPU may evaluate a ragged tail with scalar code that rounds differently, and a batch
    # must equal its members. (`pairwise_sum` pads the zeros on to a power of two.)
    w = _pad_multiple(valid.astype(theta.dtype))
    theta = _pad_multiple(theta)
    # No product feeds an add (XLA CPU may contract a*b + c*d into an FMA on either product, differently
    # in different programs): select instead of multiply by the mask, and |c + i s| instead of c^2 + s^2.
    keep = w > 0
    n = jnp.maximum(pairwise_sum(w), 1)
    c = pairwise_sum(jnp.where(keep, jnp.cos(theta), 0)) / n
    s = pairwise_sum(jnp.where(keep, jnp.sin(theta), 0)) / n
    return jnp.abs(jax.lax.complex(c, s))


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
