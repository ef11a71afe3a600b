"""Feature extraction on the fly: what a run keeps of the reservoir for the readout.

A `Features` bundle samples the state at `n_times` equally spaced records (record 0 is the initial
state; the published recipe is 9 times over the run: t = 0, 12.5, ..., 100) or every `every` steps,
and each item reduces one record to a vector inside the simulation (`Record(reduce=...)` /
`Record(observe=...)`), so nothing stores the full history. Items: `Snapshots` (all outputs, the
published features), `Voltages` (capacitor voltages), `Phases` (cos and sin of every ring's phase
from its probe's firing times, zero until the ring has fired twice), `MeanFiring` (each neuron's
firing fraction averaged over the records, i.e. sampled every `n_steps / (n_times - 1)` steps).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._errors import DiffringError, check_int
from .._simulate import Record


class AbstractFeature(eqx.Module):
    """One kind of feature: `at_record` reduces a record to (f,), `pool` turns (K, f) into a vector."""

    needs_phases: bool = eqx.field(static=True, default=False)

    @abc.abstractmethod
    def at_record(self, state, phase, valid) -> Float[Array, " f"]:
        """The record's vector (phase/valid are None unless `needs_phases`)."""

    def pool(self, recs: Float[Array, "*b K f"]) -> Float[Array, "*b F"]:
        """Per-sample features from the stacked records: all of them, flattened."""
        return recs.reshape(recs.shape[:-2] + (-1,))


class Snapshots(AbstractFeature):
    """All outputs o (1 = rest, 0 = firing) at every record (the published features)."""

    def at_record(self, state, phase, valid):
        return state.o


class Voltages(AbstractFeature):
    """All capacitor voltages v at every record."""

    def at_record(self, state, phase, valid):
        return state.v


class Phases(AbstractFeature):
    """cos and sin of each ring's phase at every record (0 where the phase is not yet defined)."""

    needs_phases: bool = eqx.field(static=True, default=True)

    def at_record(self, state, phase, valid):
        w = valid.astype(phase.dtype)
        return jnp.concatenate([jnp.cos(phase) * w, jnp.sin(phase) * w])


class MeanFiring(AbstractFeature):
    """Each neuron's firing fraction (o < 0.5) averaged over the records."""

    def at_record(self, state, phase, valid):
        return (state.o < 0.5).astype(state.o.dtype)

    def pool(self, recs):
        return jnp.mean(recs, axis=-2)


class _Reduce(eqx.Module):
    """The `Record.reduce` / `Record.observe` callable of a `Features` bundle (hashable: no arrays)."""

    items: tuple[AbstractFeature, ...] = eqx.field(static=True)

    def __call__(self, t, state, phase=None, valid=None):
        return tuple(f.at_record(state, phase, valid) for f in self.items)


class Features(eqx.Module):
    """A bundle of feature items sampled at the same records.

    `n_times` equally spaced records over the run (including t = 0), or, with `every`, a record every
    `every` steps (for per-step targets: `every` = the encoder's hold, one record per input sample).
    """

    items: tuple[AbstractFeature, ...] = eqx.field(static=True, default=(Snapshots(),))
    n_times: int = eqx.field(static=True, default=9)
    every: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not self.items:
            raise DiffringError("features.items", [], "expected at least one feature")
        for f in self.items:
            if not isinstance(f, AbstractFeature):
                raise DiffringError("features.items[]", f, "expected Snapshots, Voltages, Phases or MeanFiring")
        check_int("features.n_times", self.n_times, minimum=2)
        if self.every is not None:
            check_int("features.every", self.every, minimum=1)

    @property
    def needs_phases(self) -> bool:
        return any(f.needs_phases for f in self.items)

    def record_every(self, n_steps: int) -> int:
        if self.every is not None:
            if n_steps % self.every:
                raise DiffringError("features.every", self.every, f"expected a divisor of n_steps = {n_steps}")
            return self.every
        if n_steps % (self.n_times - 1):
            raise DiffringError("features.n_times", self.n_times, f"expected n_times - 1 to divide n_steps = {n_steps}")
        return n_steps // (self.n_times - 1)

    def record(self, n_steps: int) -> Record:
        """The `Record` that computes the items at each record, storing nothing else."""
        fn = _Reduce(self.items)
        every = self.record_every(n_steps)
        if self.needs_phases:
            return Record(every=every, fields=(), phases=True, observe=fn)
        return Record(every=every, fields=(), phases=False, reduce=fn)

    def per_record(self, sol) -> tuple[Array, ...]:
        """The items' stacked records (*b, K, f_i) from a `Solution` run with `record(...)`."""
        out = sol.observed if self.needs_phases else sol.reduced
        return tuple(out)

    def pooled(self, sol) -> Float[Array, "*b F"]:
        """Per-sample feature vectors: each item pooled over its records, concatenated."""
        return jnp.concatenate([f.pool(r) for f, r in zip(self.items, self.per_record(sol), strict=True)], axis=-1)

    def series(self, sol) -> Float[Array, "*b K F"]:
        """Per-record feature vectors (items concatenated), for per-step targets."""
        return jnp.concatenate(self.per_record(sol), axis=-1)
