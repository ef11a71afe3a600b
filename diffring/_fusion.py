"""Keeping XLA CPU from recomputing cheap producers inside every consumer fusion.

Two barriers, for two situations (measured; see each docstring):
`materialised_cond` (a conditional on a runtime predicate) is the cheaper of the two, but under
`vmap` it becomes a select and the barrier is gone; `materialised_loop` (a one-trip loop XLA
cannot prove is one trip) survives `vmap` but costs more: about 2x on a Dormand-Prince 8(7) step
of 1,000 neurons (110-130 against 54-62 us per step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def materialised_cond(k, h):
    """`k` itself, computed once into a buffer: XLA does not fuse across a conditional's boundary.

    Without it, XLA CPU fuses the cheap stage combinations y + h sum_j a_ij k_j (and the v derivative)
    into every consumer and recomputes them there, which grows with the square of the stage count: a
    written-out Dormand-Prince 8(7) step emits 4-5x the arithmetic it needs and costs 330-355 instead
    of 49-59 us on a 1,000-neuron lattice (benchmarks/smooth_step_cost.py). `lax.optimization_barrier` does
    not stop it. Used for the 8(7) pair only: on the 5(4) pairs the buffer copies cost what the
    recomputation saves (measured within +-10 %). The predicate h > 0 is a runtime value, so XLA cannot
    fold the conditional; it holds for every step taken, and for h = 0 the zeros give the same step
    (y + 0 k). Under `vmap` (batched h) it becomes a select, the barrier is gone and XLA fuses (and
    rounds) differently: a batch then equals its single runs only to rounding, amplified by the
    adaptive step sequence (measured with the barrier on the 5(4) pair in tests/test_adaptive.py's batch
    test: up to 2e-3), not bit for bit.
    """
    return jax.lax.cond(h > 0, lambda a: a, lambda a: jax.tree.map(jnp.zeros_like, a), k)


def materialised_loop(f, ok):
    """f() computed once into buffers. XLA on CPU otherwise recomputes a cheap-looking producer
    (e.g. the lattice observables' cos/sin of 4096 phases) inside every fusion that reads it; a loop whose trip count it
    cannot prove (one iteration: a boolean is never negative) is a boundary it does not fuse across."""
    out = jax.eval_shape(f)
    zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), out)
    once = jnp.asarray(1, jnp.int32) + jnp.minimum(ok.reshape(-1)[0].astype(jnp.int32), 0)  # == 1 at run time
    return jax.lax.fori_loop(0, once, lambda i, _: f(), zeros)
