"""Sharded lattices and batches: one lattice split over a device mesh, or a batch split over devices.

`Sharded(mesh)` is a method for `simulate`: it cuts a 2-D lattice's ring grid into (rows, cols)
blocks, one per device of a `("rows", "cols")` mesh, and runs the whole time loop of `MapScan`
(`_scan_records`, the same step function), or of `ODESolve`'s fixed-step `ScanAdjoint` route for the
smooth model (`ODESolve.sample_step`), inside one `jax.shard_map` program. Each device holds its
block's neurons; every step it receives the neighbouring blocks' boundary outputs with
`lax.ppermute` (S0: one row/column of `s_out` outputs; S1/S2 and any sparse coupling: the neurons its
in-neighbour table needs from other blocks), periodic meshes wrap and open edges receive zeros.
Records are produced per block and put back in global neuron order; `R`, `reduce` and `observe`
see the gathered global phases/state at record times only. Every neuron's update is the same
floating-point expression as on one device, so discrete-map results are bit for bit the
single-device ones (smooth-model results to rounding: XLA fuses the two programs differently).

`shard_batch(mesh, tree)` places the leading (batch) axis of arrays over all devices of a mesh;
`simulate_batch` on such arrays compiles to one program per device with no cross-device traffic.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jaxtyping import Array, Float, Int

from ._adaptive import AdaptiveRK
from ._coupling import AbstractCoupling, LatticeS0Coupling, SparseCoupling
from ._errors import DiffringError, check_int
from ._models import DiscreteMap, State
from ._network import Network, Rings
from ._odesolve import ODESolve, ScanAdjoint
from ._phases import order_parameter
from ._simulate import AbstractMethod, MapScan, Record, _scan_records, _solution
from ._smooth import SmoothRelaxation

AXES = ("rows", "cols")


def lattice_mesh(rows: int, cols: int, devices=None) -> Mesh:
    """A `("rows", "cols")` mesh of `rows * cols` devices (default: the first of `jax.devices()`).

    Under `jax.distributed.initialize`, `jax.devices()` lists every process's devices, so the same
    mesh spans hosts.
    """
    rows = check_int("run.mesh[0]", rows, minimum=1)
    cols = check_int("run.mesh[1]", cols, minimum=1)
    devices = jax.devices() if devices is None else list(devices)
    if rows * cols > len(devices):
        raise DiffringError(
            "run.mesh",
            [rows, cols],
            f"expected rows * cols <= the {len(devices)} available devices "
            "(simulated CPU devices: XLA_FLAGS=--xla_force_host_platform_device_count=K)",
        )
    return Mesh(np.asarray(devices[: rows * cols], dtype=object).reshape(rows, cols), AXES)


def _shift_perm(m: int, shift: int, wrap: bool):
    """ppermute pairs sending block i to block i + shift along an axis of m blocks."""
    pairs = []
    for i in range(m):
        j = i + shift
        if wrap:
            pairs.append((i, j % m))
        elif 0 <= j < m:
            pairs.append((i, j))
    return tuple(pairs)


class _HaloS0Coupling(AbstractCoupling):
    """`LatticeS0Coupling` on one (rows_l, cols_l) block, with the four neighbouring blocks' `s_out`
    edges received by `ppermute`. The neighbour sum is formed in the same order as
    `LatticeS0Coupling._neighbour_sum` (rows +1, rows -1, cols +1, cols -1), so it rounds the same."""

    eps: Float[Array, ""]
    ring_size: int = eqx.field(static=True)
    block: tuple[int, int] = eqx.field(static=True)
    mesh_shape: tuple[int, int] = eqx.field(static=True)
    r_in: int = eqx.field(static=True)
    s_out: int = eqx.field(static=True)
    periodic: bool = eqx.field(static=True)

    @property
    def n_neurons(self) -> int:
        return self.ring_size * self.block[0] * self.block[1]

    def _halo(self, edge, axis, shift):
        m = self.mesh_shape[axis]
        return lax.ppermute(edge, AXES[axis], _shift_perm(m, shift, self.periodic))

    def __call__(self, o: Float[Array, " n"]) -> Float[Array, " n"]:
        n, r = self.ring_size, self.r_in
        x = o.reshape((n,) + self.block)
        s = x[self.s_out]
        rl, cl = self.block
        # term[y] = s[y - 1]: the row above the block is the last row of the block above (shift +1).
        up = self._halo(s[rl - 1 :], 0, 1)
        down = self._halo(s[:1], 0, -1)
        left = self._halo(s[:, cl - 1 :], 1, 1)
        right = self._halo(s[:, :1], 1, -1)
        total = jnp.concatenate([up, s[: rl - 1]], axis=0)
        total = total + jnp.concatenate([s[1:], down], axis=0)
        total = total + jnp.concatenate([left, s[:, : cl - 1]], axis=1)
        total = total + jnp.concatenate([s[:, 1:], right], axis=1)
        src = jnp.concatenate([x[n - 1 :], x[: n - 1]], axis=0)
        head = src[r : r + 1] + self.eps * total[None]
        parts = [src[:r], head, src[r + 1 :]]
        return jnp.concatenate([q for q in parts if q.shape[0]], axis=0).reshape(-1)

    def edges(self):
        raise NotImplementedError("a block coupling lives inside a sharded program; use the global network's")


class _HaloSparseCoupling(AbstractCoupling):
    """A block's in-neighbour table over [own outputs, halo slots]; halo slots are filled by one
    `ppermute` per mesh displacement. Slot order is the global table's, so sums round the same."""

    local: SparseCoupling
    sends: tuple[Int[Array, " h"], ...]
    perms: tuple[tuple[tuple[int, int], ...], ...] = eqx.field(static=True)

    @property
    def n_neurons(self) -> int:
        return self.local.n_neurons

    def __call__(self, o: Float[Array, " n"]) -> Float[Array, " n"]:
        halos = [lax.ppermute(o[idx], AXES, perm) for idx, perm in zip(self.sends, self.perms, strict=True)]
        return self.local(jnp.concatenate([o] + halos) if halos else o)

    def edges(self):
        raise NotImplementedError("a block coupling lives inside a sharded program; use the global network's")


class ShardPlan(eqx.Module):
    """Where every neuron and ring of a network lives on a (rows, cols) mesh, and the halo tables.

    `neuron[d, l]` is the global neuron at local slot l of device d (-1: padding), `neuron_pos[j]`
    the flat position d * n_local + l of neuron j; `ring`, `ring_pos` the same for rings;
    `probe[d, q]` the local slot of the probe of local ring q. Sparse couplings add `index`
    (the local table over own + halo slots) and `sends` (per mesh displacement, what each device
    sends). Built once from the concrete network (`Sharded.resolve`); parameters (weights, tau,
    thresholds, eps) are read from the model at run time, so they may be traced or swept.
    """

    neuron: Int[Array, "D n_local"]
    neuron_pos: Int[Array, " n"]
    ring: Int[Array, "D r_local"]
    ring_pos: Int[Array, " rings"]
    probe: Int[Array, "D r_local"]
    index: Int[Array, "D n_local k"] | None
    sends: tuple[Int[Array, "D h"], ...]
    perms: tuple[tuple[tuple[int, int], ...], ...] = eqx.field(static=True)
    mesh_shape: tuple[int, int] = eqx.field(static=True)
    block: tuple[int, int] | None = eqx.field(static=True)  # S0 fast path: the ring block of a device


def _grid2(network, mesh_shape):
    grid = network.grid
    if grid is None or not network.kind.startswith("lattice"):
        raise DiffringError(
            "run.mesh", list(mesh_shape), f"sharding needs a lattice or chain network, not {network.kind!r}"
        )
    grid = tuple(grid) if len(grid) == 2 else (1, grid[0])
    R, C = mesh_shape
    if grid[0] % R or grid[1] % C:
        raise DiffringError(
            "run.mesh",
            list(mesh_shape),
            f"expected [rows, cols] dividing the ring grid {list(grid)} (one equal block per device)",
        )
    if network.n_rings != grid[0] * grid[1]:
        raise DiffringError("run.mesh", list(mesh_shape), f"network {network.kind!r} has no ring per grid cell")
    return grid


def _plan_s0(coupling: LatticeS0Coupling, grid, mesh_shape) -> ShardPlan:
    if len(coupling.grid) != 2:
        raise DiffringError("run.mesh", list(mesh_shape), "S0 sharding needs a 2-D lattice (shape [rows, cols])")
    (rows, cols), (R, C) = grid, mesh_shape
    rl, cl = rows // R, cols // C
    n_rings = rows * cols
    d = np.arange(R * C)
    yl, xl = np.divmod(np.arange(rl * cl), cl)
    ring = ((d[:, None] // C) * rl + yl[None]) * cols + (d[:, None] % C) * cl + xl[None]  # (D, r_local)
    p = np.arange(coupling.ring_size)
    neuron = (p[None, :, None] * n_rings + ring[:, None, :]).reshape(R * C, -1)
    return _plan_common(neuron, ring, ring, mesh_shape, block=(rl, cl))


def _plan_common(neuron, ring, probe_glob, mesh_shape, block=None, index=None, sends=(), perms=()):
    D, n_local = neuron.shape
    n = int(neuron.max()) + 1
    neuron_pos = np.zeros(n, np.int64)
    ok = neuron >= 0
    neuron_pos[neuron[ok]] = np.flatnonzero(ok.reshape(-1))
    ring_pos = np.zeros(int(ring.max()) + 1, np.int64)
    rok = ring >= 0
    ring_pos[ring[rok]] = np.flatnonzero(rok.reshape(-1))
    probe = np.where(rok, neuron_pos[np.maximum(probe_glob, 0)] - np.arange(D)[:, None] * n_local, 0)
    i32 = lambda a: jnp.asarray(a, jnp.int32)  # noqa: E731
    return ShardPlan(
        neuron=i32(neuron),
        neuron_pos=i32(neuron_pos),
        ring=i32(ring),
        ring_pos=i32(ring_pos),
        probe=i32(probe),
        index=None if index is None else i32(index),
        sends=tuple(i32(s) for s in sends),
        perms=tuple(perms),
        mesh_shape=tuple(mesh_shape),
        block=block,
    )


def _plan_sparse(network: Network, grid, mesh_shape) -> ShardPlan:
    (rows, cols), (R, C) = grid, mesh_shape
    rl, cl = rows // R, cols // C
    D = R * C
    n = network.n_neurons
    y, x = np.divmod(np.arange(rows * cols), cols)
    ring_dev = (y // rl) * C + x // cl
    members = np.asarray(network.rings.members)
    probes = np.asarray(network.rings.probes)
    # Owner: a probe lives with (the first) ring it probes, any other neuron with the first ring holding it.
    owner = np.full(n, -1, np.int64)
    uniq, first = np.unique(probes, return_index=True)
    owner[uniq] = ring_dev[first]
    flat = members.reshape(-1)
    valid = flat >= 0
    uniq, first = np.unique(flat[valid], return_index=True)
    ring_of = np.flatnonzero(valid)[first] // members.shape[1]
    owner[uniq] = np.where(owner[uniq] >= 0, owner[uniq], ring_dev[ring_of])
    owner[owner < 0] = 0
    if np.any(owner[probes] != ring_dev):
        r = int(np.flatnonzero(owner[probes] != ring_dev)[0])
        raise DiffringError("run.mesh", list(mesh_shape), f"ring {r}'s probe neuron is owned by another block")
    counts = np.bincount(owner, minlength=D)
    n_local = int(counts.max())
    neuron = np.full((D, n_local), -1, np.int64)
    order = np.argsort(owner, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lpos = np.empty(n, np.int64)
    lpos[order] = np.arange(n) - starts[owner[order]]
    neuron[owner, lpos] = np.arange(n)
    r_local = int(np.bincount(ring_dev, minlength=D).max())
    ring = np.full((D, r_local), -1, np.int64)
    ro = np.argsort(ring_dev, kind="stable")
    rstarts = np.concatenate([[0], np.cumsum(np.bincount(ring_dev, minlength=D))[:-1]])
    ring[ring_dev[ro], np.arange(ro.size) - rstarts[ring_dev[ro]]] = ro
    probe_glob = np.where(ring >= 0, probes[np.maximum(ring, 0)], -1)

    gidx = np.asarray(network.coupling.index)
    gw = network.coupling.weight
    # Traced weights (a gradient with respect to them): every slot counts, so that d u / d w reads
    # the right neuron for zero weights too; the extra halo entries carry values multiplied by 0.
    nonzero = np.ones(gidx.shape, bool) if isinstance(gw, jax.core.Tracer) else np.asarray(gw) != 0
    k = gidx.shape[1]
    dev_r, dev_c = np.divmod(np.arange(D), C)
    # Halo needs: (receiver d, neuron j) for every nonzero slot whose presynaptic neuron is remote.
    post = np.repeat(np.arange(n), k)
    pre = gidx.reshape(-1)
    live = nonzero.reshape(-1) & (owner[pre] != owner[post])
    need_d, need_j = owner[post[live]], pre[live]
    key = np.unique(need_d * n + need_j)
    need_d, need_j = key // n, key % n  # sorted by receiver, then neuron id
    e = owner[need_j]
    disp = ((dev_r[e] - dev_r[need_d]) % R) * C + (dev_c[e] - dev_c[need_d]) % C
    sends, perms = [], []
    slot_of = {}
    offset = n_local
    for delta in np.unique(disp):
        sel = disp == delta
        dd, jj = need_d[sel], need_j[sel]
        cnt = np.bincount(dd, minlength=D)
        h = int(cnt.max())
        pos = np.arange(dd.size) - np.concatenate([[0], np.cumsum(cnt)[:-1]])[dd]
        send = np.zeros((D, h), np.int64)
        send[owner[jj], pos] = lpos[jj]  # device e = d + delta sends these to d
        sends.append(send)
        dr, dc = divmod(int(delta), C)
        perms.append(tuple((int(((dev_r[d] + dr) % R) * C + (dev_c[d] + dc) % C), int(d)) for d in range(D)))
        for a, b, q in zip(dd, jj, pos, strict=True):
            slot_of[(int(a), int(b))] = offset + int(q)
        offset += h
    index = np.zeros((D, n_local, k), np.int64)
    for d in range(D):
        rows_d = neuron[d]
        okr = rows_d >= 0
        g = gidx[rows_d[okr]]
        wz = nonzero[rows_d[okr]]
        loc = np.where(owner[g] == d, lpos[g], 0)
        remote = wz & (owner[g] != d)
        for i, s in zip(*np.nonzero(remote), strict=True):
            loc[i, s] = slot_of[(d, int(g[i, s]))]
        index[d, okr] = np.where(wz, loc, 0)
    return _plan_common(neuron, ring, probe_glob, mesh_shape, index=index, sends=sends, perms=perms)


def shard_plan(network: Network, mesh_shape: tuple[int, int]) -> ShardPlan:
    """The `ShardPlan` of a lattice network on a (rows, cols) mesh (validated; NumPy, host side)."""
    mesh_shape = tuple(int(m) for m in mesh_shape)
    grid = _grid2(network, mesh_shape)
    if isinstance(network.coupling, LatticeS0Coupling):
        return _plan_s0(network.coupling, grid, mesh_shape)
    if isinstance(network.coupling, SparseCoupling):
        return _plan_sparse(network, grid, mesh_shape)
    raise DiffringError("run.mesh", list(mesh_shape), f"cannot shard a {type(network.coupling).__name__}")


def _take(a, idx, pad_value):
    """a[idx] over the leading axis with -1 entries replaced by `pad_value`."""
    out = a[jnp.maximum(idx, 0)]
    fill = jnp.asarray(pad_value, a.dtype)
    mask = (idx >= 0).reshape(idx.shape + (1,) * (out.ndim - idx.ndim))
    return jnp.where(mask, out, fill)


def _unshard(x, pos, axis):
    """(D, ..., m, ...) block-local values (device axis leading, local axis at `axis` + 1) -> global order."""
    x = jnp.moveaxis(x, 0, axis)
    x = x.reshape(x.shape[:axis] + (-1,) + x.shape[axis + 2 :])
    return jnp.take(x, pos, axis=axis)


class _Layout(eqx.Module):
    """Global <-> block-local order of neuron- or ring-indexed arrays.

    S0 (`block` set): a pure reshape/transpose of the position-major (p, rows, cols) layout, so a
    state sharded in contiguous chunks over the devices is re-laid out with all-to-all traffic and
    O(n / devices) memory per device. Sparse lattices: gathers through the plan's index tables.
    """

    plan: ShardPlan
    ring_size: int = eqx.field(static=True)
    grid: tuple[int, int] = eqx.field(static=True)

    def _dims(self, rings):
        (R, C), (rows, cols) = self.plan.mesh_shape, self.grid
        return (1 if rings else self.ring_size), R, C, rows // R, cols // C

    def local(self, a, rings=False, pad=0):
        """(m, ...) in global order -> (D, m_local, ...)."""
        if self.plan.block is None:
            return _take(a, self.plan.ring if rings else self.plan.neuron, pad)
        p, R, C, rl, cl = self._dims(rings)
        rest = a.shape[1:]
        x = a.reshape((p, R, rl, C, cl) + rest)
        x = jnp.transpose(x, (1, 3, 0, 2, 4) + tuple(range(5, 5 + len(rest))))
        return x.reshape((R * C, p * rl * cl) + rest)

    def glob(self, x, rings=False, axis=0, pos=None):
        """(D, ..., m_local, ...) with the local axis at `axis` + 1 -> global order at `axis`."""
        if self.plan.block is None:
            if pos is None:
                pos = self.plan.ring_pos if rings else self.plan.neuron_pos
            return _unshard(x, pos, axis)
        p, R, C, rl, cl = self._dims(rings)
        x = jnp.moveaxis(x, 0, axis)
        pre, post = x.shape[:axis], x.shape[axis + 2 :]
        x = x.reshape(pre + (R, C, p, rl, cl) + post)
        k = len(pre)
        order = tuple(range(k)) + (k + 2, k, k + 3, k + 1, k + 4) + tuple(range(k + 5, x.ndim))
        return jnp.transpose(x, order).reshape(pre + (p * R * rl * C * cl,) + post)

    def selection(self, which):
        """(owner device, local slot) of each neuron of a static index tuple."""
        if self.plan.block is None:
            pos = self.plan.neuron_pos[jnp.asarray(which, jnp.int32)]
            n_local = self.plan.neuron.shape[1]
            return pos // n_local, pos % n_local
        p, R, C, rl, cl = self._dims(False)
        rows, cols = self.grid
        q, r = np.divmod(np.asarray(which), rows * cols)
        y, x = np.divmod(r, cols)
        owner = (y // rl) * C + x // cl
        local = q * rl * cl + (y % rl) * cl + x % cl
        return jnp.asarray(owner, jnp.int32), jnp.asarray(local, jnp.int32)


class Sharded(AbstractMethod):
    """Run a lattice split over a `("rows", "cols")` device mesh (see `lattice_mesh`).

    Steps the model as `method` does on one device, inside one `shard_map` program with halo
    exchange at every evaluation of W o: `DiscreteMap` with a `MapScan`; `SmoothRelaxation` with the
    fixed-step, differentiable route `ODESolve(stepsize_controller=ConstantStepSize(),
    adjoint=ScanAdjoint())` (reverse mode goes through the halo exchange: the transpose of a
    `ppermute` is the opposite `ppermute`) or with `AdaptiveRK` (forward only; its error norm is
    summed over all devices, so every block takes the same steps). `simulate` calls `resolve`, which
    builds the `ShardPlan` from the concrete network (the plan depends on the connectivity only).
    The grid must divide into equal blocks; S0 lattices must be 2-D.
    """

    mesh: Mesh = eqx.field(static=True)
    method: MapScan | ODESolve | AdaptiveRK = MapScan()
    plan: ShardPlan | None = None

    def __check_init__(self):
        if not isinstance(self.mesh, Mesh) or tuple(self.mesh.axis_names) != AXES:
            raise DiffringError("method.mesh", self.mesh, f"expected a jax Mesh with axes {AXES} (lattice_mesh)")
        if isinstance(self.method, ODESolve):
            if not isinstance(self.method.adjoint, ScanAdjoint):
                raise DiffringError("method.method.adjoint", type(self.method.adjoint).__name__,
                                    "Sharded runs ODESolve's fixed-step route: expected adjoint=ScanAdjoint() "
                                    "with stepsize_controller=diffrax.ConstantStepSize()")
        elif not isinstance(self.method, MapScan | AdaptiveRK):
            raise DiffringError("method.method", type(self.method).__name__,
                                "Sharded wraps a MapScan (DiscreteMap), ODESolve(adjoint=ScanAdjoint()) or "
                                "AdaptiveRK (SmoothRelaxation)")

    def _check_model(self, model):
        want = DiscreteMap if isinstance(self.method, MapScan) else SmoothRelaxation
        if not isinstance(model, want):
            raise DiffringError("method", "Sharded", f"Sharded({type(self.method).__name__}) steps {want.__name__}, "
                                                     f"not {type(model).__name__}")

    def resolve(self, model, state0, inputs) -> Sharded:
        self._check_model(model)
        if state0.v.ndim != 1:
            raise DiffringError("method", "Sharded", "shards one lattice (simulate); for batches use shard_batch")
        method = self.method
        if isinstance(method, MapScan):
            method = method.resolve(model, state0, inputs)
        elif isinstance(method, ODESolve):
            method.fixed_steps(model)  # validates the controller, the solver and dt0 before any work
        plan = self.plan
        if plan is None:
            plan = shard_plan(model.network, tuple(self.mesh.devices.shape))
        return dataclasses.replace(self, method=method, plan=plan)

    def run(self, model, state0, inputs, tracker0, t0, n_steps, record):
        if self.plan is None:
            raise DiffringError("method", "Sharded", "unresolved: call through simulate, or method.resolve(model, ...)")
        self._check_model(model)
        plan, net, mesh = self.plan, model.network, self.mesh
        dev = P(AXES)
        rep = P()
        c = net.coupling
        grid = net.grid if len(net.grid) == 2 else (1, net.grid[0])
        lay = _Layout(plan, ring_size=getattr(c, "ring_size", 1), grid=tuple(grid))
        params = {"v": lay.local(state0.v, pad=0), "o": lay.local(state0.o, pad=1)}
        for name in ("tau", "theta_H", "theta_L"):
            a = getattr(net, name)
            params[name] = a if jnp.ndim(a) == 0 else lay.local(a, pad=a[0])
        if net.win is not None:
            params["win"] = lay.local(net.win, pad=0)
        if isinstance(c, SparseCoupling):
            params["weight"] = lay.local(c.weight, pad=0)
        specs = {k: (rep if jnp.ndim(v) == 0 else dev) for k, v in params.items()}
        tracker_l = None if tracker0 is None else jax.tree.map(lambda a: lay.local(a, True, a[0]), tracker0)
        tables = {"probe": plan.probe, "sends": plan.sends}
        if plan.index is not None:
            tables["index"] = plan.index
        which = record.which
        sel = None if isinstance(which, str) else which
        sel_owner, sel_local = (None, None) if sel is None else lay.selection(sel)
        glob = {"sel_owner": sel_owner, "sel_local": sel_local, "eps": getattr(c, "eps", None)}
        if plan.block is None:
            glob.update(ring_pos=plan.ring_pos, neuron_pos=plan.neuron_pos)
        need_global = record.reduce is not None or record.observe is not None

        def body(p, tr, tb, g, x, t0_):
            p = {k: (v if jnp.ndim(v) == 0 else v[0]) for k, v in p.items()}
            tr, tb = jax.tree.map(lambda a: a[0], (tr, tb))
            if plan.block is not None:
                coupling = _HaloS0Coupling(
                    eps=g["eps"],
                    ring_size=c.ring_size,
                    block=plan.block,
                    mesh_shape=plan.mesh_shape,
                    r_in=c.r_in,
                    s_out=c.s_out,
                    periodic=c.periodic,
                )
            else:
                local = SparseCoupling(index=tb["index"], weight=p["weight"], n_neurons=p["v"].shape[0])
                coupling = _HaloSparseCoupling(local=local, sends=tuple(tb["sends"]), perms=plan.perms)
            probes = tb["probe"]
            rings = Rings(members=probes[:, None], sizes=jnp.ones(probes.shape, jnp.int32), probes=probes)
            lnet = Network(
                coupling=coupling,
                rings=rings,
                tau=p["tau"],
                theta_H=p["theta_H"],
                theta_L=p["theta_L"],
                win=p.get("win"),
                grid=None,
                kind=net.kind,
            )
            lmodel = dataclasses.replace(model, network=lnet)

            def gather_rings(a):
                return lay.glob(lax.all_gather(a, AXES), True, 0, g.get("ring_pos"))

            def global_state(state):
                pos = g.get("neuron_pos")
                return State(*(lay.glob(lax.all_gather(a, AXES), False, 0, pos) for a in (state.v, state.o)))

            def fields(state):
                loc, glb = {}, {}
                for f in record.fields:
                    a = getattr(state, f)
                    if which == "all":
                        loc[f] = a
                    elif which == "probes":
                        loc[f] = a[probes]
                    else:
                        mine = lax.all_gather(a[g["sel_local"]], AXES)
                        glb[f] = mine[g["sel_owner"], jnp.arange(len(sel))]
                return loc, glb

            def observe(t, state, theta, valid):
                loc, glb = fields(state)
                th, va = gather_rings(theta), gather_rings(valid)
                glb["R"] = order_parameter(th, va)
                if need_global:
                    gs = global_state(state)
                    if record.observe is not None:
                        glb["observed"] = record.observe(t, gs, th, va)
                    if record.reduce is not None:
                        glb["reduced"] = record.reduce(t, gs)
                return {"loc": loc, "glb": glb}

            def reduce(t, state):
                loc, glb = fields(state)
                if record.reduce is not None:
                    glb["reduced"] = record.reduce(t, global_state(state))
                return {"loc": loc, "glb": glb}

            if record.phases:
                lrec = Record(every=record.every, fields=(), phases=True, observe=observe)
            else:
                lrec = Record(every=record.every, fields=(), phases=False, reduce=reduce)
            state0_l = State(p["v"], p["o"])
            t, recs, status, state, tracker = _block_loop(self.method, lmodel, state0_l, x, tr, t0_, n_steps, lrec)
            mine = recs["observed"] if record.phases else recs["reduced"]
            loc = dict(mine["loc"])
            if record.phases:
                loc["phase"], loc["phase_valid"] = recs["phase"], recs["phase_valid"]
            lead = lambda a: a[None]  # noqa: E731
            out_loc = jax.tree.map(lead, {"rec": loc, "state": state, "tracker": tracker, "status": status})
            return out_loc, {"t": t, "rec": mine["glb"]}

        in_specs = (
            specs,
            jax.tree.map(lambda _: dev, tracker_l),
            jax.tree.map(lambda _: dev, tables),
            jax.tree.map(lambda _: rep, glob),
            None if inputs is None else rep,
            rep,
        )
        out_specs = (dev, rep)
        fn = jax.shard_map(body, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
        loc, glb = fn(params, tracker_l, tables, glob, inputs, t0)
        recs = dict(glb["rec"])
        for f, a in loc["rec"].items():
            recs[f] = _spread(lay.glob(a, f in ("phase", "phase_valid") or which == "probes", 1), mesh, 1)
        state = State(*(_spread(lay.glob(a), mesh, 0) for a in (loc["state"].v, loc["state"].o)))
        tracker = None
        if record.phases:
            tracker = jax.tree.map(lambda a: lay.glob(a, True), loc["tracker"])
        s = loc["status"]
        status = jnp.where(jnp.any(s == 1), 1, jnp.where(jnp.any(s == 2), 2, 0)).astype(jnp.int32)
        return _solution(glb["t"], recs, status, state, tracker, {}, record)


def _block_loop(method, model, state0, x, tracker0, t0, n_steps, record):
    """One device's time loop inside `Sharded`'s `shard_map`, as `method` runs it on one device:
    (t, records, status, state, tracker). `model.network` is the block's network with halo coupling."""
    if isinstance(method, AdaptiveRK):  # the error norm summed over devices: every block takes the same steps
        out = method.integrate(model, state0, x, tracker0, t0, n_steps, record, allsum=lambda a: lax.psum(a, AXES))
        return out[:5]
    if isinstance(method, ODESolve):
        step, loop = method.sample_step(model)[0], (1, True, method.adjoint.segment)
    else:
        step, loop = model.make_step(), (method.unroll, method.checkpoint, method.segment)
    # The plain (v, o) carry: the sign-packed one needs the model's packed step over the coupling's
    # layout, which the per-block halo couplings do not have.
    return _scan_records(model.network, step, model.dt, state0, x, tracker0, t0, n_steps, record, *loop)


def _spread(x, mesh, axis):
    """Constrain a global-order output to contiguous chunks of `axis` over the mesh's devices (when it
    divides), so that no device holds a whole lattice-sized output; values are unchanged."""
    if x.shape[axis] % mesh.devices.size:
        return x
    spec = (None,) * axis + (AXES,)
    return lax.with_sharding_constraint(x, NamedSharding(mesh, P(*spec)))


def shard_batch(mesh: Mesh, tree):
    """Place every array of `tree` with its leading (batch) axis split over all devices of `mesh`.

    Pass the result (initial states, batched inputs, swept parameter values) to `simulate_batch`:
    the compiled program then runs B / n_devices members per device with no cross-device traffic,
    and member b equals `simulate` of member b bit for bit. B must be a multiple of the device count.
    """
    n_dev = mesh.devices.size
    sharding = NamedSharding(mesh, P(tuple(mesh.axis_names)))

    def put(a):
        a = jnp.asarray(a)
        if a.ndim == 0 or a.shape[0] % n_dev:
            raise DiffringError(
                "run.batch",
                a.shape[0] if a.ndim else a,
                f"expected a batch size that is a multiple of the {n_dev} devices of the mesh",
            )
        return jax.device_put(a, sharding)

    return jax.tree.map(put, tree)


def apply_mesh(mesh_shape, model, method, state0, inputs):
    """What `run.mesh: [rows, cols]` does to a built run: one member is sharded as a lattice
    (`Sharded`, wrapping `method`: a `MapScan`, or the smooth model's fixed-step `ODESolve`); a batch
    (state0 of shape (B, n)) is split over the same rows * cols devices (`shard_batch`).
    Returns (method, state0, inputs)."""
    if isinstance(mesh_shape, str) or not hasattr(mesh_shape, "__len__") or len(mesh_shape) != 2:
        raise DiffringError("run.mesh", mesh_shape, "expected [rows, cols]")
    mesh = lattice_mesh(*mesh_shape)
    if state0.v.ndim == 2:
        state0 = shard_batch(mesh, state0)
        if inputs is not None and jnp.ndim(inputs) == 3:
            inputs = shard_batch(mesh, inputs)
        return method, state0, inputs
    if isinstance(model, SmoothRelaxation):
        if not (isinstance(method, ODESolve) and isinstance(method.adjoint, ScanAdjoint)):
            raise DiffringError("run.mesh", list(mesh_shape), "a sharded smooth lattice takes fixed steps: set "
                                                              "model.adaptive: false")
    elif not isinstance(model, DiscreteMap):
        raise DiffringError("run.mesh", list(mesh_shape),
                            f"sharded lattices step model.kind discrete or smooth, not {type(model).__name__}")
    elif method is not None and not isinstance(method, MapScan):
        raise DiffringError("run.mesh", list(mesh_shape), f"sharded lattices wrap MapScan, not {type(method).__name__}")
    shard_plan(model.network, mesh_shape)  # validate now, before any work
    return Sharded(mesh, method=method or MapScan()), state0, inputs


__all__ = ["AXES", "ShardPlan", "Sharded", "apply_mesh", "lattice_mesh", "shard_batch", "shard_plan"]
