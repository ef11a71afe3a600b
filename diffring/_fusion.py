"""Keeping XLA CPU from recomputing cheap producers inside every consumer fusion.

Two barriers (measured; see each docstring). `materialised_div` (a division by a 1.0 XLA cannot
fold) costs one division per element and survives `vmap`: `AdaptiveRK`'s stage inputs.
`materialised_loop` (a one-trip loop XLA cannot prove is one trip) also survives `vmap`: a record's
phases and their cos/sin, shared by R and the lattice observables. (A conditional on a runtime predicate, measured in
benchmarks/smooth_step_cost.py, becomes a select under `vmap` and the barrier is gone.)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def runtime_one(dtype):
    """1.0 behind `lax.optimization_barrier`: a value XLA cannot fold into the computation, the same
    for every member of a batch. The divisor of `materialised_div`."""
    return jax.lax.optimization_barrier(jnp.ones((), dtype))


def materialised_div(x, one):
    """`x / one` with `one = runtime_one(dtype)`: bit for bit `x`, computed once into a buffer.

    XLA CPU never duplicates a division into several consumer fusions (a division counts as
    expensive), so the producer of `x` is evaluated once instead of inside every kernel that reads
    it. Used for `AdaptiveRK`'s stage inputs (lattice step 42-47 -> 22-27 us on 1,000 neurons,
    docs/smooth_model.md). Unlike a conditional barrier it survives `vmap`, and it costs one division.
    """
    return jax.tree.map(lambda a: a / one, x)


def opaque_count(k):
    """The trip count `k` as a runtime value XLA cannot prove (k plus a 0 behind
    `lax.optimization_barrier`): a loop with it stays a loop, and its body a boundary XLA does not
    fuse across. The count is the same for every member of a batch, so under `vmap` (and a batch
    sharded over devices) the loop stays a plain loop: no per-member predicate, no collective."""
    return jnp.asarray(k, jnp.int32) + jnp.minimum(jax.lax.optimization_barrier(jnp.zeros((), jnp.int32)), 0)


def materialised_loop(f):
    """f() computed once into buffers. XLA on CPU otherwise recomputes a cheap-looking producer
    (e.g. the phases' cos/sin that R and the lattice observables read) inside every fusion that
    reads it; a one-trip loop (`opaque_count`) is a boundary it does not fuse across."""
    out = jax.eval_shape(f)
    zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), out)
    return jax.lax.fori_loop(0, opaque_count(1), lambda i, _: f(), zeros)
