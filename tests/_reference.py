"""Plain NumPy/SciPy references written from the spec text, shared by the tests.

Nothing here imports diffring: these are independent constructions of the spec's equations
(section 1.1) and of the lattice wiring schemes (section 3), so tests can compare our code with
them. Conventions taken from docs/architecture.md (documented numbering, not code): S0 lattices
are numbered position-major (`p * n_rings + r`, rings in row-major grid order); S1/S2 lattices
number distinct neurons in order of first appearance, ring by ring, position by position.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# --------------------------------------------------------------------------------------------
# Spec 1.1: the discrete map, as a straightforward loop.
# --------------------------------------------------------------------------------------------


def numpy_discrete_map(W_csr, Win, x, v0, o0, n_steps, dt, tau, theta_H, theta_L):
    """Run spec 1.1 for `n_steps` steps; return (o, v) of shape (n_steps + 1, n) (row 0 = initial).

    u = W o + Win x;  v' = alpha v + (1 - alpha) u;  d = u - v';
    o' = 0 if d >= theta_H or (d >= theta_L and o == 0) else 1.
    `x` is (n_steps, n_in) or None; `tau`, `theta_H`, `theta_L` are scalars or (n,) arrays.
    """
    W_csr = sp.csr_matrix(W_csr)
    n = W_csr.shape[0]
    v = np.array(v0, dtype=np.float64).copy()
    o = np.array(o0, dtype=np.float64).copy()
    alpha = np.exp(-dt / np.asarray(tau, dtype=np.float64))
    thH = np.asarray(theta_H, dtype=np.float64)
    thL = np.asarray(theta_L, dtype=np.float64)
    Win = None if Win is None else np.asarray(Win, dtype=np.float64)
    os_ = np.empty((n_steps + 1, n))
    vs = np.empty((n_steps + 1, n))
    os_[0], vs[0] = o, v
    for t in range(n_steps):
        u = W_csr @ o
        if Win is not None and x is not None:
            u = u + Win @ x[t]
        v = alpha * v + (1.0 - alpha) * u
        d = u - v
        fire = (d >= thH) | ((d >= thL) & (o == 0.0))
        o = np.where(fire, 0.0, 1.0)
        os_[t + 1], vs[t + 1] = o, v
    return os_, vs


# --------------------------------------------------------------------------------------------
# Spec 2-3: expected weight matrices, built from the spec text.
# --------------------------------------------------------------------------------------------


def ring_edges(member_lists):
    """(post, pre) pairs of every ring synapse: position p-1 drives position p (mod size)."""
    pairs = []
    for m in member_lists:
        for p in range(len(m)):
            pairs.append((m[p], m[p - 1]))
    return pairs


def matrix_from_pairs(n, pairs, aggregate="sum", extra=()):
    """Dense W: one synapse per distinct (post, pre) ring pair, weight 1 (`sum`) or 1/in-degree
    (`mean`); `extra` are (post, pre, w) links added on top without rescaling."""
    W = np.zeros((n, n))
    distinct = sorted(set(pairs))
    for post, pre in distinct:
        W[post, pre] = 1.0
    if aggregate == "mean":
        deg = (W != 0).sum(axis=1)
        W = W / np.maximum(deg, 1)[:, None]
    for post, pre, w in extra:
        W[post, pre] += w
    return W


def grid_neighbours(shape, periodic):
    """For each ring (row-major index) the list of its lattice neighbours (1-D or 2-D)."""
    shape = tuple(shape)
    n = int(np.prod(shape))
    out = []
    for r in range(n):
        c = np.unravel_index(r, shape)
        nbs = []
        for axis in range(len(shape)):
            for step in (-1, 1):
                c2 = list(c)
                c2[axis] += step
                if periodic:
                    c2[axis] %= shape[axis]
                elif not (0 <= c2[axis] < shape[axis]):
                    continue
                nbs.append(int(np.ravel_multi_index(tuple(c2), shape)))
        out.append(nbs)
    return out


def s0_reference(shape, N, eps, periodic, r_in=0, s_out=1):
    """S0: rings keep their own neurons; position r_in of ring i receives eps * o(position s_out
    of ring j) for each lattice neighbour j. Returns (W dense, members)."""
    R = int(np.prod(shape))
    members = [[p * R + r for p in range(N)] for r in range(R)]
    links = []
    for i, nbs in enumerate(grid_neighbours(shape, periodic)):
        for j in nbs:
            links.append((members[i][r_in], members[j][s_out], eps))
    return matrix_from_pairs(N * R, ring_edges(members), extra=links), members


class _UnionFind:
    def __init__(self):
        self.parent = {}

    def find(self, a):
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _label_first_appearance(n_rings, N, uf):
    ids = {}
    members = []
    for r in range(n_rings):
        row = []
        for p in range(N):
            root = uf.find((r, p))
            if root not in ids:
                ids[root] = len(ids)
            row.append(ids[root])
        members.append(row)
    return members


def s1_reference(shape, N, s, periodic, aggregate="sum"):
    """S1: adjacent rings share s consecutive neurons.

    1-D: positions N//2 + k of ring i are positions k of ring i + 1 (k < s).
    2-D (N = 4m): positions 0, m, 2m, 3m face the left, top, right, bottom neighbours; the s
    neurons starting at my position 0 are the s starting at my left neighbour's position 2m, and
    the s starting at my position m are the s starting at my top neighbour's position 3m.
    Returns (W dense, members).
    """
    uf = _UnionFind()
    shape = tuple(shape)
    R = int(np.prod(shape))
    if len(shape) == 1:
        L = shape[0]
        for i in range(L):
            j = i + 1
            if j >= L:
                if not periodic:
                    continue
                j %= L
            for k in range(s):
                uf.union((i, N // 2 + k), (j, k))
    else:
        m = N // 4
        rows, cols = shape
        for y in range(rows):
            for x in range(cols):
                me = y * cols + x
                # right neighbour: my 2m.. == its 0..;  bottom neighbour: my 3m.. == its m..
                for dy, dx, mine, theirs in ((0, 1, 2 * m, 0), (1, 0, 3 * m, m)):
                    y2, x2 = y + dy, x + dx
                    if periodic:
                        y2, x2 = y2 % rows, x2 % cols
                    elif y2 >= rows or x2 >= cols:
                        continue
                    for k in range(s):
                        uf.union((me, mine + k), (y2 * cols + x2, theirs + k))
    members = _label_first_appearance(R, N, uf)
    n = 1 + max(max(m) for m in members)
    return matrix_from_pairs(n, ring_edges(members), aggregate), members


def s2_reference(shape, periodic, aggregate="sum"):
    """S2: neurons on grid vertices; plaquette (i, j) is a 4-ring starting at its top-left vertex,
    clockwise (tl, tr, br, bl) when i + j is even, counter-clockwise (tl, bl, br, tr) when odd.
    A chain `[L]` is a 1 x L strip (periodic along its length only). Returns (W dense, members,
    vertex coordinates (y, x) of each neuron)."""
    shape = tuple(shape)
    rows, cols = (1, shape[0]) if len(shape) == 1 else shape
    wrap_y = periodic and len(shape) == 2
    wrap_x = periodic

    def vertex(y, x):
        return (y % rows if wrap_y else y, x % cols if wrap_x else x)

    plaquettes = []
    for i in range(rows):
        for j in range(cols):
            tl, tr, br, bl = vertex(i, j), vertex(i, j + 1), vertex(i + 1, j + 1), vertex(i + 1, j)
            plaquettes.append([tl, tr, br, bl] if (i + j) % 2 == 0 else [tl, bl, br, tr])
    ids = {}
    members = []
    for plq in plaquettes:
        row = []
        for v in plq:
            if v not in ids:
                ids[v] = len(ids)
            row.append(ids[v])
        members.append(row)
    coords = np.array(sorted(ids, key=ids.get))
    n = len(ids)
    return matrix_from_pairs(n, ring_edges(members), aggregate), members, coords


def watts_strogatz_edge_count(n_rings):
    """Undirected edges of a k = 2 Watts-Strogatz ring graph (rewiring preserves the count)."""
    return {1: 0, 2: 1}.get(n_rings, n_rings)
