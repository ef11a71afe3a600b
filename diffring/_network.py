"""The network pytree: neuron parameters, recurrent coupling, input weights and ring membership."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._coupling import AbstractCoupling


class Rings(eqx.Module):
    """Ring-membership table.

    `members[r, p]` is the neuron at position p of ring r (padded with -1 past `sizes[r]`);
    positions follow the direction of pulse travel. `probes[r]` is the neuron whose firing times
    define ring r's phase.
    """

    members: Int[Array, "rings max_size"]
    sizes: Int[Array, " rings"]
    probes: Int[Array, " rings"]

    @property
    def n_rings(self) -> int:
        return int(self.members.shape[0])

    @classmethod
    def from_lists(cls, member_lists, probe_position: int = 0) -> Rings:
        sizes = np.array([len(m) for m in member_lists], dtype=np.int32)
        width = int(sizes.max()) if sizes.size else 1
        members = np.full((len(member_lists), width), -1, dtype=np.int32)
        for r, m in enumerate(member_lists):
            members[r, : len(m)] = m
        probes = members[np.arange(len(member_lists)), np.minimum(probe_position, sizes - 1)]
        return cls(jnp.asarray(members), jnp.asarray(sizes), jnp.asarray(probes))


class Network(eqx.Module):
    """A network of differentiating neurons.

    `tau`, `theta_H`, `theta_L` are scalars or per-neuron arrays of shape (n,). `win` is the input
    weight matrix (n, n_in) or None. `grid` is the shape of the ring grid for lattices and chains
    (used by plots and observables), `kind` a short label of how it was built.
    """

    coupling: AbstractCoupling
    rings: Rings
    tau: Float[Array, "*n"]
    theta_H: Float[Array, "*n"]
    theta_L: Float[Array, "*n"]
    win: Float[Array, "n n_in"] | None = None
    grid: tuple[int, ...] | None = eqx.field(static=True, default=None)
    kind: str = eqx.field(static=True, default="graph")

    @property
    def n_neurons(self) -> int:
        return self.coupling.n_neurons

    @property
    def n_rings(self) -> int:
        return self.rings.n_rings

    @property
    def n_inputs(self) -> int:
        return 0 if self.win is None else int(self.win.shape[1])

    @property
    def dtype(self):
        return self.tau.dtype

    def drive(self, o: Float[Array, " n"], x: Float[Array, " n_in"] | None) -> Float[Array, " n"]:
        """The total input u = W o + Win x."""
        u = self.coupling(o)
        if self.win is not None and x is not None:
            u = u + self.win @ x
        return u
