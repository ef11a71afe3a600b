"""Builder invariants per scheme and boundary, against independent constructions from the spec.

Each lattice builder's weight matrix is compared with a NumPy construction written from the spec
text (tests/_reference.py), and the spec's structural statements are checked directly: ring
membership (each ring is a directed cycle in position order), in/out-degrees, weights, neuron
counts, probes, S1 sharing geometry, S2 checkerboard edges, and the small-world reservoir's
seeding, degrees, resting inputs and input mask.
"""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from _reference import (
    grid_neighbours,
    s0_reference,
    s1_reference,
    s2_reference,
    watts_strogatz_edge_count,
)

import diffring


def dense(net):
    return net.coupling.to_scipy().toarray()


def ring_lists(net):
    members = np.asarray(net.rings.members)
    sizes = np.asarray(net.rings.sizes)
    return [list(members[r, : sizes[r]]) for r in range(len(sizes))]


def assert_rings_are_cycles(net, weight=None):
    """Every ring's members are distinct and form a directed cycle p-1 -> p of W in position order."""
    W = dense(net)
    for m in ring_lists(net):
        assert len(set(m)) == len(m) >= 2
        for p in range(len(m)):
            w = W[m[p], m[p - 1]]
            assert w > 0, (m, p)
            if weight is not None:
                assert w == weight[m[p]] if np.ndim(weight) else w == weight


def assert_coupling_matches(net, W, rng):
    """`to_scipy()` is W, and the coupling applies W to arbitrary vectors (fast path included)."""
    np.testing.assert_array_equal(dense(net), W)
    for _ in range(3):
        o = rng.random(W.shape[0])
        np.testing.assert_allclose(np.asarray(net.coupling(jnp.asarray(o))), W @ o, rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------- rings


def test_single_ring_and_uncoupled_rings(rng):
    net = diffring.ring(5)
    W = np.zeros((5, 5))
    for k in range(5):
        W[k, (k - 1) % 5] = 1.0
    assert_coupling_matches(net, W, rng)
    sizes = [2, 3, 7, 4]
    net = diffring.rings(sizes, probe=1)
    assert net.n_neurons == sum(sizes) and net.n_rings == len(sizes)
    starts = np.cumsum([0] + sizes[:-1])
    assert ring_lists(net) == [list(range(s0, s0 + s)) for s0, s in zip(starts, sizes, strict=True)]
    np.testing.assert_array_equal(np.asarray(net.rings.probes), starts + 1)
    assert_rings_are_cycles(net, weight=1.0)
    W = dense(net)
    # Uncoupled: no synapse between different rings; every neuron has in- and out-degree 1.
    ring_of = np.repeat(np.arange(len(sizes)), sizes)
    post, pre = np.nonzero(W)
    assert np.all(ring_of[post] == ring_of[pre])
    np.testing.assert_array_equal((W != 0).sum(axis=1), 1)
    np.testing.assert_array_equal((W != 0).sum(axis=0), 1)
    assert not np.any(np.diag(W))


# ----------------------------------------------------------------------------- S0


S0_CASES = [
    ([7], "periodic"),
    ([7], "open"),
    ([1], "open"),
    ([4, 5], "periodic"),
    ([3, 3], "periodic"),
    ([4, 5], "open"),
    ([1, 6], "open"),
]


@pytest.mark.parametrize("shape, boundary", S0_CASES)
@pytest.mark.parametrize("r_in, s_out", [(0, 1), (3, 5), (2, 2)])
def test_s0_lattice(shape, boundary, r_in, s_out, rng):
    N, eps = 6, 0.15
    periodic = boundary == "periodic"
    net = diffring.lattice(shape, N, scheme="S0", eps=eps, boundary=boundary, r_in=r_in, s_out=s_out, probe=2)
    R = int(np.prod(shape))
    assert net.n_neurons == N * R and net.n_rings == R and net.grid == tuple(shape)
    W_ref, members = s0_reference(shape, N, eps, periodic, r_in, s_out)
    assert ring_lists(net) == members
    np.testing.assert_array_equal(np.asarray(net.rings.probes), np.asarray(members)[:, 2])
    assert_coupling_matches(net, W_ref, rng)
    assert_rings_are_cycles(net, weight=1.0)
    W = dense(net)
    # Degrees: r_in gets one eps link per lattice neighbour, s_out sends one to each neighbour.
    n_nb = np.array([len(nb) for nb in grid_neighbours(shape, periodic)])
    if periodic:
        np.testing.assert_array_equal(n_nb, 2 * len(shape))
    ones = np.ones(R, int)
    indeg = (W != 0).sum(axis=1).reshape(N, R)
    outdeg = (W != 0).sum(axis=0).reshape(N, R)
    for p in range(N):
        np.testing.assert_array_equal(indeg[p], ones + (n_nb if p == r_in else 0))
        np.testing.assert_array_equal(outdeg[p], ones + (n_nb if p == s_out else 0))
    # Weights: 1 on ring synapses, eps on links; resting input 1 + eps * n_neighbours at r_in.
    assert set(np.unique(W[W != 0])) <= {1.0, eps}
    rest = (W @ np.ones(N * R)).reshape(N, R)
    np.testing.assert_allclose(rest[r_in], 1 + eps * n_nb, rtol=1e-15)
    # The sparse (non-fast) build is the same matrix; `mean` never rescales eps links.
    slow = diffring.lattice(shape, N, scheme="S0", eps=eps, boundary=boundary, r_in=r_in, s_out=s_out, fast=False)
    assert isinstance(slow.coupling, diffring.SparseCoupling)
    assert_coupling_matches(slow, W_ref, rng)
    assert_coupling_matches(diffring.as_sparse(net), W_ref, rng)
    mean = diffring.lattice(shape, N, scheme="S0", eps=eps, boundary=boundary, r_in=r_in, s_out=s_out, aggregate="mean")
    np.testing.assert_array_equal(dense(mean), W_ref)


# ----------------------------------------------------------------------------- S1


def s1_count(shape, N, s, periodic):
    """Neurons of an S1 lattice: N per ring minus s per adjacent pair (each pair shares s)."""
    R = int(np.prod(shape))
    if len(shape) == 1:
        pairs = shape[0] if periodic else shape[0] - 1
    else:
        rows, cols = shape
        pairs = 2 * R if periodic else rows * (cols - 1) + (rows - 1) * cols
    return N * R - s * pairs


S1_CASES = [
    ([6], 6, 1, "periodic"),
    ([6], 6, 3, "periodic"),
    ([5], 7, 2, "open"),
    ([3], 4, 2, "periodic"),
    ([4, 3], 8, 1, "periodic"),
    ([3, 4], 8, 2, "periodic"),
    ([3, 5], 4, 1, "open"),
    ([4, 4], 12, 3, "open"),
]


@pytest.mark.parametrize("shape, N, s, boundary", S1_CASES)
@pytest.mark.parametrize("aggregate", ["sum", "mean"])
def test_s1_lattice(shape, N, s, boundary, aggregate, rng):
    periodic = boundary == "periodic"
    net = diffring.lattice(shape, N, scheme="S1", shared=s, boundary=boundary, aggregate=aggregate)
    assert net.n_neurons == s1_count(shape, N, s, periodic)
    if len(shape) == 1 and periodic:
        assert net.n_neurons == shape[0] * (N - s)
    W_ref, members = s1_reference(shape, N, s, periodic, aggregate)
    assert ring_lists(net) == members
    assert_coupling_matches(net, W_ref, rng)
    assert_rings_are_cycles(net)
    W = dense(net)
    indeg = (W != 0).sum(axis=1)
    # Shared neurons belong to 2 rings, the rest to one; every neuron has a ring predecessor.
    rings_of = np.bincount(np.concatenate(members), minlength=net.n_neurons)
    assert set(np.unique(rings_of)) <= {1, 2}
    assert rings_of.sum() == N * net.n_rings
    assert np.all(indeg >= 1) and np.all(indeg <= 2)
    # A neuron has two predecessors exactly where its two rings enter it from different neurons.
    preds = [set() for _ in range(net.n_neurons)]
    for m in members:
        for p in range(N):
            preds[m[p]].add(m[p - 1])
    np.testing.assert_array_equal(indeg, [len(x) for x in preds])
    if aggregate == "sum":
        assert set(np.unique(W[W != 0])) == {1.0}
    else:
        np.testing.assert_allclose(W.sum(axis=1), 1.0, rtol=1e-15)
        np.testing.assert_array_equal(W[W != 0], 1.0 / np.repeat(indeg, indeg))


@pytest.mark.parametrize("boundary", ["periodic", "open"])
@pytest.mark.parametrize("m", [1, 2])
def test_s1_2d_sharing_geometry(boundary, m):
    """Spec 3: with N = 4m, positions 0, m, 2m, 3m are shared with the left, top, right, bottom rings."""
    rows, cols = 4, 5
    net = diffring.lattice([rows, cols], 4 * m, scheme="S1", shared=1, boundary=boundary)
    M = np.asarray(net.rings.members)
    periodic = boundary == "periodic"
    seen = 0
    for y, x in itertools.product(range(rows), range(cols)):
        me = y * cols + x
        for (dy, dx), mine, theirs in (
            ((0, -1), 0, 2 * m),
            ((-1, 0), m, 3 * m),
            ((0, 1), 2 * m, 0),
            ((1, 0), 3 * m, m),
        ):
            y2, x2 = y + dy, x + dx
            if periodic:
                y2, x2 = y2 % rows, x2 % cols
            elif not (0 <= y2 < rows and 0 <= x2 < cols):
                # At an open edge nothing is shared: that neuron belongs to this ring only.
                assert np.sum(M == M[me, mine]) == 1
                continue
            assert M[me, mine] == M[y2 * cols + x2, theirs]
            seen += 1
        # Non-corner positions are private to the ring.
        for p in range(4 * m):
            if p % m:
                assert np.sum(M == M[me, p]) == 1
    assert seen == (4 * rows * cols if periodic else 2 * (rows * (cols - 1) + (rows - 1) * cols))


# ----------------------------------------------------------------------------- S2


def orientation(coords):
    """Sign of the signed area of a plaquette given (y, x) vertex coordinates (unwrapped)."""
    y, x = coords[:, 0].astype(float), coords[:, 1].astype(float)
    return np.sign(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


S2_CASES = [
    ([4, 4], "periodic"),
    ([4, 6], "periodic"),
    ([6], "periodic"),
    ([4, 4], "open"),
    ([3, 5], "open"),
    ([2, 3], "open"),
    ([5], "open"),
    ([1], "open"),
]


@pytest.mark.parametrize("shape, boundary", S2_CASES)
@pytest.mark.parametrize("aggregate", ["sum", "mean"])
def test_s2_checkerboard(shape, boundary, aggregate, rng):
    periodic = boundary == "periodic"
    net = diffring.lattice(shape, 4, scheme="S2", boundary=boundary, aggregate=aggregate)
    rows, cols = (1, shape[0]) if len(shape) == 1 else shape
    vy = rows if (periodic and len(shape) == 2) else rows + 1
    vx = cols if periodic else cols + 1
    assert net.n_rings == rows * cols and net.n_neurons == vy * vx
    W_ref, members, coords = s2_reference(shape, periodic, aggregate)
    assert ring_lists(net) == members
    assert_coupling_matches(net, W_ref, rng)
    assert_rings_are_cycles(net)
    W = dense(net)
    # Every directed grid edge is used by each plaquette adjacent to it, in the same direction.
    uses = {}
    for m in members:
        for p in range(4):
            uses[(m[p - 1], m[p])] = uses.get((m[p - 1], m[p]), 0) + 1
    assert not any((b, a) in uses for (a, b) in uses), "an edge is used in both directions"
    pre, post = np.array(list(uses)).T
    np.testing.assert_array_equal(np.sort(post * net.n_neurons + pre), np.sort(np.flatnonzero(W.ravel())))
    # Grid geometry: edges join grid-adjacent vertices; an edge is interior iff two plaquettes use it.
    dy = np.abs(coords[post, 0] - coords[pre, 0])
    dx = np.abs(coords[post, 1] - coords[pre, 1])
    dy = np.minimum(dy, vy - dy) if (periodic and len(shape) == 2) else dy
    dx = np.minimum(dx, vx - dx) if periodic else dx
    np.testing.assert_array_equal(dy + dx, 1)
    count = np.array(list(uses.values()))
    if periodic and len(shape) == 2:
        assert np.all(count == 2) and len(uses) == 2 * rows * cols
        np.testing.assert_array_equal((W != 0).sum(axis=0), 2)
        np.testing.assert_array_equal((W != 0).sum(axis=1), 2)
    else:
        # open: rows (cols - 1) + (rows - 1) cols shared edges; periodic strip: its cols verticals
        interior = 2 * rows * cols - rows - cols if not periodic else cols
        assert np.sum(count == 2) == interior
        assert np.all((count == 1) | (count == 2))
    # Checkerboard: orientation alternates between edge-adjacent plaquettes.
    for i, j in itertools.product(range(rows), range(cols)):
        r = i * cols + j
        c = coords[members[r]].astype(float)
        # unwrap periodic coordinates: every vertex is 0 or +1 from the top-left one (position 0)
        for ax, size, wraps in ((0, vy, periodic and len(shape) == 2), (1, vx, periodic)):
            if wraps:
                c[:, ax] = c[0, ax] + (c[:, ax] - c[0, ax]) % size
        assert orientation(c) == (1 if (i + j) % 2 == 0 else -1) * orientation(
            np.array([[0, 0], [0, 1], [1, 1], [1, 0]], float)
        )
    # Weights: one synapse of weight 1 per edge (`sum`), or 1/in-degree (`mean`).
    indeg = (W != 0).sum(axis=1)
    if aggregate == "sum":
        assert set(np.unique(W[W != 0])) == {1.0}
    else:
        np.testing.assert_allclose(W.sum(axis=1), 1.0, rtol=1e-15)
        np.testing.assert_array_equal(W[W != 0], 1.0 / np.repeat(indeg, indeg))


# ----------------------------------------------------------------------------- small world


def ring_starts(net):
    return np.asarray(net.rings.members)[:, 0]


def test_small_world_seeded():
    a = diffring.small_world(80, (2, 8), eps=0.05, p=0.3, seed=5)
    b = diffring.small_world(80, (2, 8), eps=0.05, p=0.3, seed=5)
    c = diffring.small_world(80, (2, 8), eps=0.05, p=0.3, seed=6)
    assert (dense(a) != dense(b)).sum() == 0
    np.testing.assert_array_equal(np.asarray(a.win), np.asarray(b.win))
    np.testing.assert_array_equal(np.asarray(a.rings.members), np.asarray(b.rings.members))
    assert a.n_neurons != c.n_neurons or np.any(dense(a) != dense(c))
    assert np.asarray(a.win).shape != np.asarray(c.win).shape or np.any(np.asarray(a.win) != np.asarray(c.win))


@pytest.mark.parametrize(
    "n_rings, sizes, eps, p",
    [
        (200, (2, 8), 0.05, 0.1),
        (150, (3, 10), 0.25, 0.2),
        (50, (4, 4), 0.1, 0.0),
        (60, (2, 5), 0.2, 1.0),
        (2, (2, 3), 0.1, 0.5),
        (1, (3, 3), 0.1, 0.5),
    ],
)
def test_small_world_structure(n_rings, sizes, eps, p):
    net = diffring.small_world(n_rings, sizes, eps=eps, p=p, n_in=8, input_weight=0.7, input_density=0.5, seed=1)
    lo, hi = sizes
    sz = np.asarray(net.rings.sizes)
    assert net.n_rings == n_rings and net.n_neurons == sz.sum()
    assert sz.min() >= lo and sz.max() <= hi
    if n_rings >= 150:
        assert set(np.unique(sz)) == set(range(lo, hi + 1))  # uniform over the whole range
    starts = ring_starts(net)
    assert ring_lists(net) == [list(range(s0, s0 + s)) for s0, s in zip(starts, sz, strict=True)]
    np.testing.assert_array_equal(starts, np.concatenate([[0], np.cumsum(sz)[:-1]]))
    assert_rings_are_cycles(net, weight=1.0)
    W = dense(net)
    ring_of = np.repeat(np.arange(n_rings), sz)
    pos = np.arange(net.n_neurons) - starts[ring_of]
    post, pre = np.nonzero(W)
    link = ring_of[post] != ring_of[pre]
    # Links: eps, from neuron 1 of ring j to neuron 0 of ring i, symmetric in (i, j), no self-links.
    np.testing.assert_array_equal(W[post[link], pre[link]], eps)
    assert np.all(pos[post[link]] == 0) and np.all(pos[pre[link]] == 1)
    A = np.zeros((n_rings, n_rings), int)
    A[ring_of[post[link]], ring_of[pre[link]]] = 1
    np.testing.assert_array_equal(A, A.T)
    assert not np.any(np.diag(A))
    # Watts-Strogatz with k = 2 keeps the number of edges (n_rings) whatever p is.
    assert A.sum() // 2 == watts_strogatz_edge_count(n_rings)
    if p == 0.0:
        expected = np.zeros_like(A)
        i = np.arange(n_rings)
        expected[i, (i + 1) % n_rings] = expected[i, (i - 1) % n_rings] = 1
        np.testing.assert_array_equal(A, expected)
    # Resting input (all o = 1): 1 + eps * degree at neuron 0 of each ring, 1 elsewhere.
    rest = W @ np.ones(net.n_neurons)
    np.testing.assert_allclose(rest[starts], 1 + eps * A.sum(axis=1), rtol=1e-15)
    np.testing.assert_array_equal(np.delete(rest, starts), 1.0)
    # Input mask: 8 channels, only on neuron 0 of each ring, values in {0, input_weight}.
    win = np.asarray(net.win)
    assert win.shape == (net.n_neurons, 8)
    assert not np.any(np.delete(win, starts, axis=0))
    assert set(np.unique(win)) <= {0.0, 0.7}
    frac = np.mean(win[starts] != 0)
    assert abs(frac - 0.5) < 4 * np.sqrt(0.25 / win[starts].size)


def test_small_world_without_inputs_and_probes():
    net = diffring.small_world(20, (3, 6), n_in=0, probe=2, seed=0)
    assert net.win is None and net.n_inputs == 0
    np.testing.assert_array_equal(np.asarray(net.rings.probes), ring_starts(net) + 2)


def test_lattice_probe_and_dtype():
    net = diffring.lattice([3, 4], 8, scheme="S1", probe=5, dtype=jnp.float32)
    M = np.asarray(net.rings.members)
    np.testing.assert_array_equal(np.asarray(net.rings.probes), M[:, 5])
    assert net.dtype == jnp.float32 and net.coupling.weight.dtype == jnp.float32


def test_from_arrays_member_lists(rng):
    """Explicit member lists: ring synapses are whatever W says; membership is kept as given."""
    W = np.zeros((5, 5))
    for a, b in [(0, 1), (1, 2), (2, 0), (3, 2), (4, 3), (2, 4)]:  # two triangles sharing neuron 2
        W[b, a] = 1.0
    net = diffring.from_arrays(W, [[0, 1, 2], [2, 4, 3]], probe=1)
    assert ring_lists(net) == [[0, 1, 2], [2, 4, 3]]
    np.testing.assert_array_equal(np.asarray(net.rings.probes), [1, 4])
    # Membership order: 2 -> 4 -> 3 -> 2 is a cycle of W.
    net2 = diffring.from_arrays(W, [[0, 1, 2], [2, 3, 4]])
    with pytest.raises(AssertionError):
        assert_rings_are_cycles(net2)
    assert_rings_are_cycles(net)
    assert_coupling_matches(net, W, rng)
