"""Recurrent connectivity: how the output vector o becomes the recurrent input W o.

Nothing here materialises an n x n matrix. `SparseCoupling` is an in-neighbour table (each neuron's
presynaptic indices and weights, padded to the largest in-degree); `LatticeS0Coupling` is the fast
path for S0 link coupling on a regular lattice of equal rings, stored position-major as
(ring_size, *grid) so one step is a handful of fused shifts; `RingCoupling` is the fast path for
rings numbered consecutively (ring, rings, small-world): one shift by one neuron plus a small table
of the few neurons that receive anything else.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, Int


class AbstractCoupling(eqx.Module):
    """Maps outputs `o` of shape (n,) to the recurrent input `W o` of shape (n,).

    Concrete couplings expose `n_neurons` (a static int). `packed_carry_helps` tells `MapScan`
    whether carrying (v, o) as one sign-packed array speeds this coupling up: it does for shifts
    (one fused loop per step), not for per-neuron gathers, which XLA CPU then recomputes inside
    that loop (measured 1.75x slower for `SparseCoupling`).
    """

    packed_carry_helps: ClassVar[bool] = False

    @property
    def layout(self) -> tuple[int, ...]:
        """The natural array shape of a neuron vector (row-major order = neuron order)."""
        return (self.n_neurons,)

    def in_layout(self, x: Array) -> Array:
        """W o with o and the result in the shape `layout`."""
        return self(x.reshape(-1)).reshape(self.layout)

    def folds_input(self, win: np.ndarray) -> bool:
        """Whether Win x reaches only the rows that `row_drive` covers, for this concrete `win`
        (n, n_in): then `MapScan` adds it there instead of a dense product per step. Base: no."""
        return False

    def row_drive(self, win: Array, x: Float[Array, "k n_in"]) -> Array:
        """Win x of the rows that `__call__(o, row_input=...)` takes, for each row of `x`, when
        `folds_input(win)`."""
        raise NotImplementedError(type(self).__name__)

    @abc.abstractmethod
    def __call__(self, o: Float[Array, " n"]) -> Float[Array, " n"]:
        """Return W o."""

    @abc.abstractmethod
    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (post, pre, weight) NumPy arrays of every synapse (for export and references)."""

    def to_scipy(self):
        """The weight matrix as a `scipy.sparse.csr_matrix` (row = receiver)."""
        import scipy.sparse as sp

        post, pre, w = self.edges()
        return sp.csr_matrix((w, (post, pre)), shape=(self.n_neurons, self.n_neurons))


class SparseCoupling(AbstractCoupling):
    """General sparse coupling as an in-neighbour table.

    `index[i, k]` is the k-th presynaptic neuron of neuron i and `weight[i, k]` its weight; unused
    slots have weight 0 (and index 0). `u_i = sum_k weight[i, k] * o[index[i, k]]`.
    """

    index: Int[Array, "n k"]
    weight: Float[Array, "n k"]
    n_neurons: int = eqx.field(static=True)

    def __call__(self, o: Float[Array, " n"]) -> Float[Array, " n"]:
        k = self.index.shape[1]
        if k > 32:
            return jnp.sum(self.weight * o[self.index], axis=1)
        # Slot by slot, left to right (the CSR order): on CPU this fuses into elementwise loops and
        # is several times faster than a gather + reduce, which XLA runs as a separate kernel.
        u = self.weight[:, 0] * o[self.index[:, 0]]
        for j in range(1, k):
            u = u + self.weight[:, j] * o[self.index[:, j]]
        return u

    def edges(self):
        idx = np.asarray(self.index)
        w = np.asarray(self.weight)
        post = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
        mask = w.reshape(-1) != 0
        return post[mask], idx.reshape(-1)[mask], w.reshape(-1)[mask]

    @classmethod
    def from_edges(cls, n_neurons: int, post, pre, weight, dtype) -> SparseCoupling:
        """Build the table from edge lists (duplicate (post, pre) pairs are summed)."""
        post = np.asarray(post, dtype=np.int64)
        pre = np.asarray(pre, dtype=np.int64)
        weight = np.asarray(weight, dtype=np.float64)
        if post.size:
            key = post * n_neurons + pre
            uniq, inv = np.unique(key, return_inverse=True)
            w = np.zeros(uniq.size)
            np.add.at(w, inv, weight)
            post, pre, weight = uniq // n_neurons, uniq % n_neurons, w
            keep = weight != 0
            post, pre, weight = post[keep], pre[keep], weight[keep]
        deg = np.bincount(post, minlength=n_neurons) if post.size else np.zeros(n_neurons, np.int64)
        k = max(int(deg.max()) if n_neurons else 0, 1)
        index = np.zeros((n_neurons, k), dtype=np.int32)
        table = np.zeros((n_neurons, k), dtype=np.float64)
        order = np.argsort(post, kind="stable")
        post, pre, weight = post[order], pre[order], weight[order]
        starts = np.concatenate([[0], np.cumsum(deg)[:-1]])
        slot = np.arange(post.size) - starts[post]
        index[post, slot] = pre
        table[post, slot] = weight
        return cls(index=jnp.asarray(index), weight=jnp.asarray(table, dtype=dtype), n_neurons=n_neurons)


class LatticeS0Coupling(AbstractCoupling):
    """S0 link coupling of equal rings on a 1-D or 2-D grid (fast path, no gather).

    Neurons are numbered position-major: neuron `p * n_rings + r` is position p of ring r, with
    rings in row-major grid order. Inside a ring, position p-1 drives position p with weight 1.
    Position `r_in` of each ring also receives `eps * o(position s_out)` from each grid neighbour
    (periodic wrap, or none past an open edge).
    """

    packed_carry_helps: ClassVar[bool] = True

    eps: Float[Array, ""]
    ring_size: int = eqx.field(static=True)
    grid: tuple[int, ...] = eqx.field(static=True)
    r_in: int = eqx.field(static=True)
    s_out: int = eqx.field(static=True)
    periodic: bool = eqx.field(static=True)

    @property
    def n_neurons(self) -> int:
        return self.ring_size * int(np.prod(self.grid))

    def _neighbour_sum(self, s: Array) -> Array:
        # Static slices and concatenates only (no gathers, no new axes), so XLA fuses the whole
        # coupling into the update and vmap keeps the batch axis leading.
        total = None
        for axis in range(s.ndim):
            m = s.shape[axis]
            for shift in (1, -1):
                if self.periodic:
                    k = shift % m
                    parts = [lax.slice_in_dim(s, m - k, m, axis=axis), lax.slice_in_dim(s, 0, m - k, axis=axis)]
                else:
                    zeros = jnp.zeros_like(lax.slice_in_dim(s, 0, 1, axis=axis))
                    if shift == 1:
                        parts = [zeros, lax.slice_in_dim(s, 0, m - 1, axis=axis)]
                    else:
                        parts = [lax.slice_in_dim(s, 1, m, axis=axis), zeros]
                term = jnp.concatenate([q for q in parts if q.shape[axis]], axis=axis)
                total = term if total is None else total + term
        return total

    @property
    def layout(self) -> tuple[int, ...]:
        """The natural shape of a neuron vector, (ring_size, *grid); row-major order = neuron order."""
        return (self.ring_size,) + tuple(self.grid)

    def in_layout(self, x: Array) -> Array:
        """W o on the (ring_size, *grid) layout (no reshapes: XLA then loops over the grid directly)."""
        n, r = self.ring_size, self.r_in
        src = jnp.concatenate([x[n - 1 :], x[: n - 1]], axis=0)  # src[p] = x[p - 1]
        head = src[r : r + 1] + self.eps * self._neighbour_sum(x[self.s_out])[None]
        parts = [src[:r], head, src[r + 1 :]]
        return jnp.concatenate([q for q in parts if q.shape[0]], axis=0)

    def __call__(self, o: Float[Array, " n"]) -> Float[Array, " n"]:
        return self.in_layout(o.reshape(self.layout)).reshape(-1)

    def edges(self):
        n = self.ring_size
        n_rings = int(np.prod(self.grid))
        rings = np.arange(n_rings)
        post, pre, w = [], [], []
        for p in range(n):
            post.append(p * n_rings + rings)
            pre.append(((p - 1) % n) * n_rings + rings)
            w.append(np.ones(n_rings))
        coords = np.stack(np.unravel_index(rings, self.grid), axis=1)
        eps = float(self.eps)
        for axis in range(len(self.grid)):
            for shift in (1, -1):
                nb = coords.copy()
                nb[:, axis] += shift
                if self.periodic:
                    nb[:, axis] %= self.grid[axis]
                    ok = np.ones(n_rings, bool)
                else:
                    ok = (nb[:, axis] >= 0) & (nb[:, axis] < self.grid[axis])
                j = np.ravel_multi_index(tuple(np.clip(nb, 0, np.array(self.grid) - 1).T), self.grid)
                post.append(self.r_in * n_rings + rings[ok])
                pre.append(self.s_out * n_rings + j[ok])
                w.append(np.full(int(ok.sum()), eps))
        post, pre, w = map(np.concatenate, (post, pre, w))
        # Duplicate links (two neighbours being the same ring) add up, as in the fast path.
        import scipy.sparse as sp

        m = sp.coo_matrix((w, (post, pre)), shape=(self.n_neurons, self.n_neurons)).tocsr()
        m.sum_duplicates()
        m = m.tocoo()
        return m.row, m.col, m.data


class RingCoupling(AbstractCoupling):
    """Rings numbered consecutively, plus a few extra synapses (the small-world reservoir's links).

    Most neurons are driven only by the previous neuron (`u_i = shift_weight[i] * o[i - 1]`, cyclic
    in i), which is one contiguous shift of `o`: no gather. The other neurons (`rows`: ring heads,
    whose predecessor is their ring's last neuron, and every neuron receiving a link) get their full
    in-neighbour row from a small table (`index`, `weight`, in the CSR order of `SparseCoupling`),
    written over the shifted vector. XLA CPU runs a gather one element at a time, so gathering
    len(rows) * k entries instead of n * k is what makes this path several times faster.
    `head0`: neuron 0 is a table row, so the shift need not wrap around. With `split` set, the table
    is two groups: rows[:split] (in-degree <= `k1`) read only their first `k1` slots (the zero
    slots after them are structural, never read), the rest all k; `from_edges` chooses this when
    it saves gathers (the small-world heads have in-degree 2-5, mostly 3). `W o` is bit for bit that
    of `SparseCoupling.from_edges` of the same edges (a row's slots are added in the same order;
    the slots dropped are zero weights at the end of a row, and a split table has no negative
    weight, so no -0.0 sum can meet a dropped +0.0 term).
    """

    packed_carry_helps: ClassVar[bool] = True

    shift_weight: Float[Array, " n"]
    rows: Int[Array, " m"]
    index: Int[Array, "m k"]
    weight: Float[Array, "m k"]
    n_neurons: int = eqx.field(static=True)
    split: int | None = eqx.field(static=True, default=None)
    k1: int = eqx.field(static=True, default=0)
    head0: bool = eqx.field(static=True, default=False)

    def _groups(self) -> list[tuple[int, int, int]]:
        """(first row, end row, slots) of each table group, in table order."""
        m, k = self.index.shape
        if self.split is None:
            return [(0, m, k)]
        return [(0, self.split, self.k1), (self.split, m, k)]

    def __call__(self, o: Float[Array, " n"], row_input: Float[Array, " m"] | None = None) -> Float[Array, " n"]:
        """W o, plus `row_input` (one value per table row, e.g. `row_drive`) on the table rows."""
        if self.head0:
            # Neuron 0 is a table row (written below), so the shift need not wrap: slightly faster.
            u = jnp.pad(self.shift_weight[1:] * o[:-1], (1, 0))
        else:
            u = self.shift_weight * jnp.concatenate([o[-1:], o[:-1]])
        if self.rows.shape[0] == 0:
            return u
        # Per group: the same additions in the same order as SparseCoupling, then one scatter. Two
        # scatters are cheaper than the gathers of zero slots they save; one concatenated group
        # is not (XLA CPU then runs the gathers' loop unvectorised).
        for lo, hi, k in self._groups():
            index, weight = self.index[lo:hi, :k], self.weight[lo:hi, :k]
            if k > 32:
                h = jnp.sum(weight * o[index], axis=1)
            else:
                h = weight[:, 0] * o[index[:, 0]]
                for j in range(1, k):
                    h = h + weight[:, j] * o[index[:, j]]
            if row_input is not None:
                h = h + row_input[lo:hi]
            u = u.at[self.rows[lo:hi]].set(h, indices_are_sorted=True, unique_indices=True, mode="promise_in_bounds")
        return u

    def folds_input(self, win: np.ndarray) -> bool:
        """True when every non-zero row of `win` is a table row (small-world inputs reach ring heads)."""
        outside = np.ones(self.n_neurons, bool)
        outside[np.asarray(self.rows)] = False
        return self.rows.shape[0] > 0 and not np.any(np.asarray(win)[outside] != 0)

    def row_drive(self, win: Array, x: Float[Array, "k n_in"]) -> Float[Array, "k m"]:
        """Win x on the table rows for each of k input rows: one (k, n_in) x (n_in, m) product.

        `MapScan` computes it once per record block and adds row t to the table rows at step t
        (`row_input`). One product per block is also what keeps a batch equal to its single runs:
        a per-step product, or an elementwise sum that XLA may contract into FMAs differently in
        batched and single programs, rounds differently in the last bit.
        """
        return x @ win[self.rows].T

    def edges(self):
        n = self.n_neurons
        rows = np.asarray(self.rows)
        plain = np.ones(n, bool)
        plain[rows] = False
        sw = np.asarray(self.shift_weight)
        post = np.flatnonzero(plain & (sw != 0))
        idx = np.asarray(self.index)
        w = np.asarray(self.weight)
        live = w != 0
        post = np.concatenate([post, np.repeat(rows, idx.shape[1])[live.reshape(-1)]])
        pre = np.concatenate([(np.flatnonzero(plain & (sw != 0)) - 1) % n, idx[live]])
        weight = np.concatenate([sw[plain & (sw != 0)], w[live]])
        order = np.lexsort((pre, post))
        return post[order], pre[order], weight[order]

    @classmethod
    def from_edges(cls, n_neurons: int, post, pre, weight, dtype, split: bool = True) -> RingCoupling:
        """Build from edge lists (duplicates summed, zeros dropped, as `SparseCoupling.from_edges`).

        Any graph is accepted; it pays when few neurons have other input than `o[i - 1]`.
        `split=False` keeps the table one group (`_split_degree` says when two are cheaper).
        """
        table = SparseCoupling.from_edges(n_neurons, post, pre, weight, dtype)
        idx, w = np.asarray(table.index), np.asarray(table.weight)
        n = n_neurons
        live = w != 0
        deg = live.sum(axis=1)
        prev = (np.arange(n) - 1) % n
        # Rows with at most one synapse, from the previous neuron, are plain (the table's slot 0).
        plain = (deg == 0) | ((deg == 1) & live[:, 0] & (idx[:, 0] == prev))
        shift_weight = np.where(plain, w[:, 0], 0.0)
        rows = np.flatnonzero(~plain)
        k = max(int(deg[rows].max()) if rows.size else 1, 1)
        k1 = _split_degree(deg[rows], k) if split and not np.any(w[rows] < 0) else None
        n_low = None
        if k1 is not None:
            low = deg[rows] <= k1
            rows, n_low = np.concatenate([rows[low], rows[~low]]), int(low.sum())
        return cls(
            shift_weight=jnp.asarray(shift_weight, dtype=dtype),
            rows=jnp.asarray(rows, dtype=jnp.int32),
            index=jnp.asarray(idx[rows, :k], dtype=jnp.int32),
            weight=jnp.asarray(w[rows, :k], dtype=dtype),
            n_neurons=n,
            split=n_low,
            k1=k1 or 0,
            head0=bool(rows.size and rows.min() == 0),
        )


# What a second table group costs (its kernel and scatter), in gathered slots. Measured on the
# small-world reservoir (XLA CPU, benchmarks/bench_small_world.py): 182 heads at 3 slots + 18 at 5
# take ~7 % less time per step than 200 at 5 (~0.1 us of ~1.4 us).
_GROUP_COST = 128


def _split_degree(deg: np.ndarray, k: int) -> int | None:
    """The slot count k1 < k for the low-degree group of table rows that gathers fewest slots,
    counting `_GROUP_COST` for the second group; None when one group of k slots is cheapest."""
    best, best_cost = None, deg.size * k
    for k1 in range(1, k):
        n_low = int((deg <= k1).sum())
        if 0 < n_low < deg.size:
            cost = n_low * k1 + (deg.size - n_low) * k + _GROUP_COST
            if cost < best_cost:
                best, best_cost = k1, cost
    return best
