"""Seeded, validated network builders: rings, chains and lattices (S0/S1/S2), small-world, files.

Neurons of `ring`/`rings`/`small_world`/`from_files` are numbered consecutively ring by ring.
S0 lattices are numbered position-major (see `LatticeS0Coupling`); S1 and S2 lattices number the
distinct neurons in order of first appearance, ring by ring.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from ._coupling import LatticeS0Coupling, RingCoupling, SparseCoupling
from ._errors import DiffringError, check_choice, check_finite_array, check_float, check_int
from ._network import Network, Rings

SCHEMES = ("S0", "S1", "S2")
BOUNDARIES = ("periodic", "open")
AGGREGATES = ("sum", "mean")


def _dtype(dtype):
    try:
        out = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    except TypeError:
        out = None
    if out is None or not jnp.issubdtype(out, jnp.floating):
        shown = getattr(dtype, "__name__", str(dtype))
        raise DiffringError("dtype", shown, "expected a floating dtype (float32 or float64)")
    return out


def _check_probe(probe, sizes, where="network"):
    """The probe position must exist in every ring (no silent clamping)."""
    probe = check_int(f"{where}.probe", probe, minimum=0)
    smallest = int(min(sizes))
    if probe >= smallest:
        raise DiffringError(f"{where}.probe", probe, f"expected a ring position < the smallest ring size {smallest}")
    return probe


def _params(n, tau, theta_H, theta_L, dtype, where="network"):
    out = []
    for name, val in (("tau", tau), ("theta_H", theta_H), ("theta_L", theta_L)):
        try:
            arr = np.asarray(val, dtype=np.float64)
        except (TypeError, ValueError):
            raise DiffringError(f"{where}.{name}", val, f"expected a number or an array of shape ({n},)") from None
        if arr.ndim not in (0, 1) or (arr.ndim == 1 and arr.shape[0] != n):
            raise DiffringError(f"{where}.{name}", f"shape {arr.shape}", f"expected a scalar or shape ({n},)")
        check_finite_array(f"{where}.{name}", arr)
        out.append(arr)
    tau_a, th_a, tl_a = out
    if np.any(tau_a <= 0):
        raise DiffringError(f"{where}.tau", float(np.min(tau_a)), "expected tau > 0")
    if np.any(tl_a <= 0):
        raise DiffringError(f"{where}.theta_L", float(np.min(tl_a)), "expected theta_L > 0")
    bad = np.flatnonzero(np.broadcast_to(th_a < tl_a, (n,)))
    if bad.size:
        i = int(bad[0])
        h, lo = float(np.broadcast_to(th_a, (n,))[i]), float(np.broadcast_to(tl_a, (n,))[i])
        at = "" if th_a.ndim == 0 and tl_a.ndim == 0 else f" at neuron {i}"
        raise DiffringError(f"{where}.theta_H", h, f"expected theta_H >= theta_L = {lo}{at} (hysteresis)")
    return tuple(jnp.asarray(a, dtype=dtype) for a in out)


def _finish(coupling, rings, *, tau, theta_H, theta_L, dtype, win=None, grid=None, kind="graph"):
    t, h, low = _params(coupling.n_neurons, tau, theta_H, theta_L, dtype)
    if win is not None:
        win = jnp.asarray(win, dtype=dtype)
    return Network(coupling=coupling, rings=rings, tau=t, theta_H=h, theta_L=low, win=win, grid=grid, kind=kind)


def _ring_edges(member_lists):
    post, pre = [], []
    for m in member_lists:
        n = len(m)
        for p in range(n):
            post.append(m[p])
            pre.append(m[(p - 1) % n])
    return np.array(post, dtype=np.int64), np.array(pre, dtype=np.int64)


def _aggregate(n, post, pre, aggregate):
    """Ring-synapse weights: 1 each (`sum`) or 1/in-degree (`mean`); duplicates removed first."""
    key = np.unique(post * n + pre)
    post, pre = key // n, key % n
    w = np.ones(post.size)
    if aggregate == "mean":
        deg = np.bincount(post, minlength=n)
        w = w / deg[post]
    return post, pre, w


def rings(
    sizes: Sequence[int],
    *,
    probe: int = 0,
    fast: bool = True,
    tau=1.0,
    theta_H=0.49,
    theta_L=0.2,
    dtype=None,
) -> Network:
    """Uncoupled rings of the given sizes (each >= 2), numbered consecutively ring by ring.

    `fast=True` stores the coupling as a `RingCoupling` (a shift plus the ring heads' table),
    `fast=False` as the general `SparseCoupling`; both give the same W o bit for bit.
    """
    if isinstance(sizes, int | np.integer) or len(sizes) == 0:
        raise DiffringError("network.sizes", sizes, "expected a non-empty list of ring sizes >= 2")
    sizes = [check_int("network.sizes[]", s, minimum=2) for s in sizes]
    probe = _check_probe(probe, sizes)
    dtype = _dtype(dtype)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    members = [list(range(s0, s0 + s)) for s0, s in zip(starts, sizes, strict=True)]
    n = int(sum(sizes))
    post, pre = _ring_edges(members)
    coupling = (RingCoupling if fast else SparseCoupling).from_edges(n, post, pre, np.ones(post.size), dtype)
    return _finish(coupling, Rings.from_lists(members, probe), tau=tau, theta_H=theta_H, theta_L=theta_L,
                   dtype=dtype, kind="rings")


def ring(size: int, **kwargs) -> Network:
    """One ring of `size` neurons: neuron k-1 drives neuron k with weight 1."""
    size = check_int("network.size", size, minimum=2)
    return rings([size], **kwargs)


def lattice(
    shape: Sequence[int],
    ring_size: int = 6,
    *,
    scheme: str = "S0",
    eps: float = 0.05,
    boundary: str = "periodic",
    shared: int = 1,
    r_in: int = 0,
    s_out: int = 1,
    aggregate: str = "sum",
    probe: int = 0,
    fast: bool = True,
    tau=1.0,
    theta_H=0.49,
    theta_L=0.2,
    dtype=None,
) -> Network:
    """A 1-D chain (`shape=[n]`) or 2-D square lattice (`shape=[rows, cols]`) of rings.

    `scheme`: "S0" link coupling (position `r_in` of each ring receives `eps * o(s_out)` of each grid
    neighbour), "S1" `shared` consecutive neurons shared between adjacent rings, "S2" edge-sharing
    checkerboard plaquettes (4-rings; `ring_size` must be 4). `aggregate` is how a neuron with
    several ring predecessors combines them ("sum", or "mean" = each ring synapse weighs
    1/in-degree); S0 links of weight eps are never rescaled.
    """
    if isinstance(shape, int | np.integer):
        shape = [shape]
    shape = tuple(check_int("network.shape[]", s, minimum=1) for s in shape)
    if len(shape) not in (1, 2):
        raise DiffringError("network.shape", list(shape), "expected [n] (chain) or [rows, cols] (lattice)")
    scheme = check_choice("network.scheme", scheme, SCHEMES)
    boundary = check_choice("network.boundary", boundary, BOUNDARIES)
    aggregate = check_choice("network.aggregate", aggregate, AGGREGATES)
    ring_size = check_int("network.ring_size", ring_size, minimum=2)
    probe = check_int("network.probe", probe, minimum=0)
    if probe >= ring_size:
        raise DiffringError("network.probe", probe, f"expected a ring position < ring_size = {ring_size}")
    eps = check_float("network.eps", eps)  # checked for every scheme, used by S0
    periodic = boundary == "periodic"
    if periodic and scheme != "S2" and min(shape) < 3:
        raise DiffringError("network.shape", list(shape), "periodic chains/lattices need every side >= 3")
    dtype = _dtype(dtype)
    kw = dict(tau=tau, theta_H=theta_H, theta_L=theta_L, dtype=dtype, grid=shape)
    if scheme == "S0":
        r_in = check_int("network.r_in", r_in, minimum=0)
        s_out = check_int("network.s_out", s_out, minimum=0)
        for name, val in (("r_in", r_in), ("s_out", s_out)):
            if val >= ring_size:
                raise DiffringError(f"network.{name}", val, f"expected a ring position < ring_size = {ring_size}")
        coupling = LatticeS0Coupling(
            eps=jnp.asarray(eps, dtype=dtype),
            ring_size=ring_size,
            grid=shape,
            r_in=r_in,
            s_out=s_out,
            periodic=periodic,
        )
        n_rings = int(np.prod(shape))
        members = [[p * n_rings + r for p in range(ring_size)] for r in range(n_rings)]
        if not fast:
            post, pre, w = coupling.edges()
            coupling = SparseCoupling.from_edges(coupling.n_neurons, post, pre, w, dtype)
        return _finish(coupling, Rings.from_lists(members, probe), kind=f"lattice-S0-{boundary}", **kw)
    if scheme == "S1":
        members = _s1_members(shape, ring_size, check_int("network.shared", shared, minimum=1), periodic)
    else:
        if ring_size != 4:
            raise DiffringError("network.ring_size", ring_size, "S2 plaquettes are 4-rings: expected ring_size = 4")
        members = _s2_members(shape, periodic)
    n = int(max(max(m) for m in members)) + 1
    post, pre, w = _aggregate(n, *_ring_edges(members), aggregate)
    coupling = SparseCoupling.from_edges(n, post, pre, w, dtype)
    return _finish(coupling, Rings.from_lists(members, probe), kind=f"lattice-{scheme}-{boundary}", **kw)


def chain(n: int, ring_size: int = 6, **kwargs) -> Network:
    """A 1-D chain of `n` rings: `lattice([n], ring_size, ...)`."""
    return lattice([n], ring_size, **kwargs)


def _s1_members(shape, N, s, periodic):
    """Ring member lists for S1 sharing (canonical neuron = the copy on the right/bottom side)."""
    if len(shape) == 1:
        if s > N // 2:
            raise DiffringError("network.shared", s, f"S1 chains need shared <= ring_size // 2 = {N // 2}")
        offsets = {"left": (0, N // 2)}  # my positions 0.. == left ring's positions N/2..
    else:
        if N % 4:
            raise DiffringError("network.ring_size", N, "2-D S1 lattices need ring_size = 4 m")
        m = N // 4
        if s > m:
            raise DiffringError("network.shared", s, f"2-D S1 lattices need shared <= ring_size // 4 = {m}")
        offsets = {"left": (0, 2 * m), "top": (m, 3 * m)}
    grid = shape if len(shape) == 2 else (1, shape[0])
    rows, cols = grid
    ids: dict[tuple[int, int], int] = {}
    members = []

    def neighbour(y, x, side):
        dy, dx = (0, -1) if side == "left" else (-1, 0)
        y2, x2 = y + dy, x + dx
        if periodic:
            return y2 % rows, x2 % cols
        return (y2, x2) if (0 <= y2 < rows and 0 <= x2 < cols) else None

    def canonical(r, p):
        y, x = divmod(r, cols)
        for side, (mine, theirs) in offsets.items():
            if mine <= p < mine + s:
                nb = neighbour(y, x, side)
                if nb is not None:
                    return nb[0] * cols + nb[1], theirs + (p - mine)
        return r, p

    for r in range(rows * cols):
        row = []
        for p in range(N):
            key = canonical(r, p)
            if key not in ids:
                ids[key] = len(ids)
            row.append(ids[key])
        members.append(row)
    return members


def _s2_members(shape, periodic):
    """Plaquette member lists for S2: clockwise on even cells, counter-clockwise on odd cells."""
    rows, cols = shape if len(shape) == 2 else (1, shape[0])
    sides = shape if len(shape) == 2 else (cols,)
    if periodic and any(s % 2 or s < 4 for s in sides):
        raise DiffringError("network.shape", list(shape), "periodic S2 lattices need even sides >= 4")
    vy = rows if (periodic and len(shape) == 2) else rows + 1
    vx = cols if periodic else cols + 1

    def vid(y, x):
        if periodic:
            x %= vx
            if len(shape) == 2:
                y %= vy
        return y * vx + x

    members = []
    for i in range(rows):
        for j in range(cols):
            tl, tr, br, bl = vid(i, j), vid(i, j + 1), vid(i + 1, j + 1), vid(i + 1, j)
            members.append([tl, tr, br, bl] if (i + j) % 2 == 0 else [tl, bl, br, tr])
    relabel: dict[int, int] = {}  # first appearance, ring by ring (the documented numbering)
    for m in members:
        for v in m:
            relabel.setdefault(v, len(relabel))
    return [[relabel[v] for v in m] for m in members]


def _watts_strogatz(n, p, rng):
    """Watts-Strogatz ring graph with k = 2 (one neighbour per side), rewiring probability p."""
    adj = [set() for _ in range(n)]
    edges = []
    for u in range(n):
        v = (u + 1) % n
        if n > 1 and v != u and v not in adj[u]:
            adj[u].add(v)
            adj[v].add(u)
            edges.append((u, v))
    for u, v in list(edges):
        if rng.random() < p:
            choices = [w for w in range(n) if w != u and w not in adj[u]]
            if choices:
                w = choices[rng.integers(len(choices))]
                adj[u].discard(v)
                adj[v].discard(u)
                adj[u].add(w)
                adj[w].add(u)
    return adj


def small_world(
    n_rings: int = 200,
    ring_sizes: Sequence[int] = (2, 8),
    *,
    eps: float = 0.05,
    p: float = 0.1,
    n_in: int = 8,
    input_weight: float = 1.0,
    input_density: float = 0.5,
    seed: int = 0,
    probe: int = 0,
    fast: bool = True,
    tau=1.0,
    theta_H=0.49,
    theta_L=0.2,
    dtype=None,
) -> Network:
    """The reservoir paper's small-world graph of rings (spec section 4), fully seeded.

    Ring sizes are uniform on [ring_sizes[0], ring_sizes[1]]; rings form a Watts-Strogatz graph
    (k = 2, rewiring p); neuron 0 of ring i receives `eps * o(neuron 1 of ring j)` for each
    neighbour j. `Win[neuron 0 of ring i, m] = input_weight * Bernoulli(input_density)`.
    `fast=True` stores the coupling as a `RingCoupling` (a shift plus a table of the ring heads),
    `fast=False` as the general `SparseCoupling`; both give the same W o bit for bit.
    """
    n_rings = check_int("network.n_rings", n_rings, minimum=1)
    if isinstance(ring_sizes, str | int | np.integer) or len(ring_sizes) != 2:
        raise DiffringError("network.ring_sizes", ring_sizes, "expected [min, max]")
    lo = check_int("network.ring_sizes[0]", ring_sizes[0], minimum=2)
    hi = check_int("network.ring_sizes[1]", ring_sizes[1], minimum=lo)
    probe = _check_probe(probe, [lo])
    eps = check_float("network.eps", eps)
    p = check_float("network.p", p, lo=0.0, hi=1.0)
    n_in = check_int("network.n_in", n_in, minimum=0)
    input_weight = check_float("network.input_weight", input_weight)
    input_density = check_float("network.input_density", input_density, lo=0.0, hi=1.0)
    seed = check_int("seed", seed, minimum=0)
    dtype = _dtype(dtype)
    rng = np.random.default_rng(seed)
    sizes = rng.integers(lo, hi + 1, size=n_rings)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    members = [list(range(s0, s0 + s)) for s0, s in zip(starts, sizes, strict=True)]
    n = int(sizes.sum())
    post, pre = _ring_edges(members)
    w = [np.ones(post.size)]
    post, pre = [post], [pre]
    adj = _watts_strogatz(n_rings, p, rng)
    for i in range(n_rings):
        for j in sorted(adj[i]):
            post.append(np.array([starts[i]]))
            pre.append(np.array([starts[j] + 1]))
            w.append(np.array([eps]))
    post, pre, w = map(np.concatenate, (post, pre, w))
    coupling = (RingCoupling if fast else SparseCoupling).from_edges(n, post, pre, w, dtype)
    win = None
    if n_in:
        mask = rng.random((n_rings, n_in)) < input_density
        win = np.zeros((n, n_in))
        win[starts] = input_weight * mask
    return _finish(coupling, Rings.from_lists(members, probe), tau=tau, theta_H=theta_H, theta_L=theta_L,
                   dtype=dtype, win=win, kind="small_world")


def from_arrays(
    W,
    rings,
    *,
    Win=None,
    probe: int = 0,
    tau=1.0,
    theta_H=0.49,
    theta_L=0.2,
    dtype=None,
    where: str = "network",
) -> Network:
    """A network from a sparse or dense weight matrix (row = receiver) and ring membership.

    `rings` is a list of ring sizes (neurons numbered consecutively ring by ring) or a list of
    explicit member lists in pulse-travel order.
    """
    import scipy.sparse as sp

    W = sp.coo_matrix(W)
    if W.shape[0] != W.shape[1]:
        raise DiffringError(f"{where}.W", f"shape {W.shape}", "expected a square matrix (n_neurons x n_neurons)")
    n = W.shape[0]
    check_finite_array(f"{where}.W", W.data)
    if isinstance(rings, str | int | np.integer) or not hasattr(rings, "__len__") or len(rings) == 0:
        raise DiffringError(f"{where}.rings", rings, "expected a list of ring sizes or of member lists")
    if all(isinstance(r, int | np.integer) for r in rings):
        sizes = [check_int(f"{where}.rings[]", r, minimum=2) for r in rings]
        if sum(sizes) != n:
            raise DiffringError(
                f"{where}.rings", f"sizes summing to {sum(sizes)}", f"expected sizes summing to n_neurons = {n}"
            )
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        members = [list(range(int(s0), int(s0) + s)) for s0, s in zip(starts, sizes, strict=True)]
    else:
        members = []
        for m in rings:
            if isinstance(m, str) or not hasattr(m, "__len__") or not all(isinstance(i, int | np.integer) for i in m):
                raise DiffringError(f"{where}.rings", m, "expected all ring sizes, or all member lists of indices")
            members.append([int(i) for i in m])
        for m in members:
            if len(m) < 2 or min(m) < 0 or max(m) >= n:
                raise DiffringError(f"{where}.rings", m, f"expected member lists of >= 2 neuron indices in [0, {n})")
            if len(set(m)) != len(m):
                raise DiffringError(f"{where}.rings", m, "expected distinct neurons within a ring")
    probe = _check_probe(probe, [len(m) for m in members], where)
    dtype = _dtype(dtype)
    coupling = SparseCoupling.from_edges(n, W.row, W.col, W.data, dtype)
    win = None
    if Win is not None:
        Win = np.asarray(Win.toarray() if sp.issparse(Win) else Win, dtype=np.float64)
        if Win.ndim != 2 or Win.shape[0] != n:
            raise DiffringError(f"{where}.Win", f"shape {Win.shape}", f"expected shape ({n}, n_in)")
        check_finite_array(f"{where}.Win", Win)
        win = Win
    return _finish(coupling, Rings.from_lists(members, probe), tau=tau, theta_H=theta_H, theta_L=theta_L,
                   dtype=dtype, win=win, kind="file")


def from_files(W: str, rings, *, Win: str | None = None, **kwargs) -> Network:
    """A network from `W` (`scipy.sparse.save_npz`, row = receiver), optional `Win` (.npz or .npy)."""
    import scipy.sparse as sp

    from ._io import load_array_file

    try:
        Wm = sp.load_npz(W)
    except FileNotFoundError:
        raise DiffringError("network.W", W, "file not found") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error here
        raise DiffringError("network.W", W, f"expected a scipy.sparse.save_npz file ({type(e).__name__})") from None
    win = None
    if Win is not None:
        win = load_array_file("network.Win", Win, sparse_ok=True)
    return from_arrays(Wm, rings, Win=win, **kwargs)


def as_sparse(network: Network) -> Network:
    """The same network with its coupling converted to the general `SparseCoupling` table."""
    import equinox as eqx

    post, pre, w = network.coupling.edges()
    coupling = SparseCoupling.from_edges(network.n_neurons, post, pre, w, network.dtype)
    return eqx.tree_at(lambda net: net.coupling, network, coupling)
