"""`RingCoupling` (shift + table of the few neurons with other inputs) against independent answers.

References: a dense NumPy weight matrix built here from the edge list (W o by matrix product), the
general `SparseCoupling` of the same edges (W o bit for bit: same additions in the same order), its
`to_scipy()`, the NumPy loop of the discrete map, and `SparseCoupling` gradients (which
tests/test_gradients.py checks against finite differences).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import numpy_discrete_map

import diffring as dr


def random_ring_graph(rng, n_rings, sizes=(2, 8), n_links=None, link_weight=None):
    """Rings of random sizes numbered consecutively, plus random links between any positions.

    Returns (n, post, pre, weight, starts, sizes). Ring synapses (p-1 -> p) have weight 1, or a
    random weight for a random subset; links go from any neuron to any neuron (self-links and
    duplicates of ring synapses included), with random signed weights.
    """
    lo, hi = sizes
    sz = rng.integers(lo, hi + 1, size=n_rings)
    starts = np.concatenate([[0], np.cumsum(sz)[:-1]])
    n = int(sz.sum())
    post, pre = [], []
    for s0, s in zip(starts, sz, strict=True):
        for p in range(s):
            post.append(s0 + p)
            pre.append(s0 + (p - 1) % s)
    post, pre = np.array(post), np.array(pre)
    w = np.where(rng.random(n) < 0.2, rng.uniform(0.5, 2.0, n), 1.0)
    m = n_rings if n_links is None else n_links
    lp, lq = rng.integers(0, n, m), rng.integers(0, n, m)
    lw = rng.normal(size=m) if link_weight is None else np.full(m, link_weight)
    return n, np.concatenate([post, lp]), np.concatenate([pre, lq]), np.concatenate([w, lw]), starts, sz


def dense_from_edges(n, post, pre, w):
    W = np.zeros((n, n))
    np.add.at(W, (post, pre), w)
    return W


def test_ring_coupling_equals_sparse_and_dense_on_random_ring_graphs():
    rng = np.random.default_rng(0)
    seen_sizes, link_positions = set(), set()
    for _ in range(12):
        n_rings = int(rng.integers(1, 40))
        n_links = int(rng.integers(0, 3 * n_rings + 1))
        n, post, pre, w, starts, sz = random_ring_graph(rng, n_rings, n_links=n_links)
        seen_sizes |= set(sz.tolist())
        ring_of = np.repeat(np.arange(n_rings), sz)
        link_positions |= set((np.arange(n) - starts[ring_of])[post[n:]].tolist())
        ring = dr.RingCoupling.from_edges(n, post, pre, w, jnp.float64)
        sparse = dr.SparseCoupling.from_edges(n, post, pre, w, jnp.float64)
        W = dense_from_edges(n, post, pre, w)
        np.testing.assert_array_equal(ring.to_scipy().toarray(), W)
        np.testing.assert_array_equal(ring.to_scipy().toarray(), sparse.to_scipy().toarray())
        for o in (rng.random(n), (rng.random(n) < 0.5).astype(float), rng.normal(size=n)):
            oj = jnp.asarray(o)
            u = np.asarray(ring(oj))
            np.testing.assert_array_equal(u, np.asarray(sparse(oj)))  # bit for bit
            np.testing.assert_allclose(u, W @ o, rtol=0, atol=1e-13)
            np.testing.assert_allclose(u, ring.to_scipy() @ o, rtol=0, atol=1e-13)
        # The table holds only the neurons that need it: ring heads of rings with a non-cyclic
        # predecessor, plus neurons with links or with a non-default predecessor.
        assert ring.rows.shape[0] <= n_rings + n_links
    assert seen_sizes == set(range(2, 9))
    assert link_positions >= set(range(8))  # links into every ring position


def test_edges_round_trip_and_edge_cases():
    # A single ring needs no table at all: the cyclic shift is its whole coupling.
    one = dr.ring(7).coupling
    assert isinstance(one, dr.RingCoupling) and one.rows.shape[0] == 0
    o = jnp.arange(7.0)
    np.testing.assert_array_equal(np.asarray(one(o)), np.roll(np.arange(7.0), 1))
    # Duplicate ring synapses add up (weight 2 stays on the shift path); a neuron without any
    # input is a zero row; a self-link and a link into a non-head position use the table.
    n = 6
    post = np.array([1, 1, 0, 4, 4, 3, 5, 5])
    pre = np.array([0, 0, 2, 3, 4, 5, 4, 0])
    w = np.array([1.0, 1.0, 1.0, 1.0, 0.3, 1.0, 1.0, -0.25])
    c = dr.RingCoupling.from_edges(n, post, pre, w, jnp.float64)
    W = dense_from_edges(n, post, pre, w)
    assert W[1, 0] == 2.0 and not W[2].any()
    np.testing.assert_array_equal(np.asarray(c.rows), [0, 3, 4, 5])  # 1 (weight 2), 2 (no input) plain
    rng = np.random.default_rng(1)
    o = rng.normal(size=n)
    np.testing.assert_allclose(np.asarray(c(jnp.asarray(o))), W @ o, rtol=0, atol=1e-15)
    post2, pre2, w2 = c.edges()
    np.testing.assert_array_equal(dense_from_edges(n, post2, pre2, w2), W)
    keys = post2 * n + pre2
    assert np.all(np.diff(keys) > 0)  # sorted, no duplicates
    # Edges that cancel are dropped, as in SparseCoupling.
    z = dr.RingCoupling.from_edges(3, [1, 1, 2, 0], [0, 0, 1, 2], [1.0, -1.0, 1.0, 1.0], jnp.float64)
    assert dense_from_edges(3, *z.edges())[1, 0] == 0 and z.edges()[0].size == 2


def test_vmap_and_float32():
    rng = np.random.default_rng(2)
    n, post, pre, w, _, _ = random_ring_graph(rng, 25, link_weight=0.05)
    ring = dr.RingCoupling.from_edges(n, post, pre, np.abs(w), jnp.float64)
    o = jnp.asarray(rng.random((5, n)))
    batched = jax.vmap(ring)(o)
    for b in range(5):
        np.testing.assert_array_equal(np.asarray(batched[b]), np.asarray(ring(o[b])))
    r32 = dr.RingCoupling.from_edges(n, post, pre, np.abs(w), jnp.float32)
    s32 = dr.SparseCoupling.from_edges(n, post, pre, np.abs(w), jnp.float32)
    o32 = o[0].astype(jnp.float32)
    assert r32.shift_weight.dtype == r32.weight.dtype == jnp.float32
    assert r32(o32).dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(r32(o32)), np.asarray(s32(o32)))


@pytest.mark.parametrize(
    "build",
    [
        lambda fast: dr.small_world(120, (2, 8), eps=0.05, p=0.1, seed=3, fast=fast),
        lambda fast: dr.rings([2, 3, 4, 5, 6, 7, 8], fast=fast),
        lambda fast: dr.ring(6, fast=fast),
    ],
    ids=["small_world", "rings", "ring"],
)
def test_builders_default_to_ring_coupling_with_the_same_matrix(build):
    fast, slow = build(True), build(False)
    assert isinstance(fast.coupling, dr.RingCoupling) and isinstance(slow.coupling, dr.SparseCoupling)
    np.testing.assert_array_equal(fast.coupling.to_scipy().toarray(), slow.coupling.to_scipy().toarray())
    converted = dr.as_sparse(fast)
    assert isinstance(converted.coupling, dr.SparseCoupling)
    np.testing.assert_array_equal(np.asarray(converted.coupling.index), np.asarray(slow.coupling.index))
    np.testing.assert_array_equal(np.asarray(converted.coupling.weight), np.asarray(slow.coupling.weight))
    # Only ring heads are in the table (the small-world links all go into ring heads).
    heads = np.asarray(fast.rings.members)[:, 0]
    rows = np.asarray(fast.coupling.rows)
    assert set(rows.tolist()) <= set(heads.tolist())
    assert rows.size == (0 if fast.n_rings == 1 else fast.n_rings)


def test_small_world_trajectory_equals_sparse_and_numpy_loop():
    """The map with inputs, RingCoupling vs SparseCoupling (identical arrays on the same carry and
    input path) and the NumPy loop (the default path: packed carry, inputs folded into the ring
    heads' rows, whose block product may round differently in the last bit)."""
    net = dr.small_world(50, (2, 8), eps=0.05, p=0.2, n_in=4, input_weight=0.8, seed=9)
    slow = dr.small_world(50, (2, 8), eps=0.05, p=0.2, n_in=4, input_weight=0.8, seed=9, fast=False)
    state = dr.init.random_phase(net, jax.random.key(4), 0.01)
    n_steps = 3000
    x = np.repeat(0.3 * np.random.default_rng(5).random((n_steps // 9 + 1, 4)), 9, axis=0)[:n_steps]
    rec = dr.Record(every=1, fields=("o", "v"), phases=False)
    plain = dr.MapScan(pack=False)
    a = dr.simulate(dr.DiscreteMap(net, 0.01), state, n_steps=n_steps, record=rec, inputs=jnp.asarray(x), method=plain)
    b = dr.simulate(dr.DiscreteMap(slow, 0.01), state, n_steps=n_steps, record=rec, inputs=jnp.asarray(x), method=plain)
    np.testing.assert_array_equal(np.asarray(a.o), np.asarray(b.o))
    np.testing.assert_array_equal(np.asarray(a.v), np.asarray(b.v))
    a = dr.simulate(dr.DiscreteMap(net, 0.01), state, n_steps=n_steps, record=rec, inputs=jnp.asarray(x))
    o_ref, v_ref = numpy_discrete_map(
        slow.coupling.to_scipy(),
        np.asarray(net.win),
        x,
        np.asarray(state.v),
        np.asarray(state.o),
        n_steps,
        0.01,
        1.0,
        0.49,
        0.2,
    )
    np.testing.assert_array_equal(np.asarray(a.o), o_ref)
    np.testing.assert_array_less(np.abs(np.asarray(a.v) - v_ref), 1e-12)
    assert np.abs(np.diff(o_ref, axis=0)).sum() >= 10 * net.n_rings  # the outputs do switch


def test_gradients_equal_sparse_coupling_gradients():
    """Soft map (smooth forward): d loss / d weights through RingCoupling equals the SparseCoupling
    gradient entry by entry (the same function of the same weights)."""
    fast = dr.small_world(8, (3, 5), eps=0.05, p=0.3, n_in=2, seed=1)
    slow = dr.as_sparse(fast)
    s0 = dr.init.pulses(fast)
    n_steps = 120
    t = jnp.arange(n_steps, dtype=jnp.float64)[:, None]
    xs = 0.1 * jnp.sin(t * jnp.array([[0.31, 0.73]])) + 0.05
    rec = dr.Record(every=4, fields=("v",), phases=False)

    def loss(net):
        model = dr.DiscreteMap(net, dt=0.1, threshold=dr.SoftThreshold(beta=100.0))
        sol = dr.simulate(model, s0, n_steps=n_steps, record=rec, inputs=xs)
        return jnp.sum(jnp.cos(0.3 * jnp.arange(sol.v.shape[0], dtype=jnp.float64))[:, None] * sol.v)

    assert float(loss(fast)) == pytest.approx(float(loss(slow)), rel=1e-14)
    g_fast = eqx.filter_grad(loss)(fast).coupling
    g_slow = eqx.filter_grad(loss)(slow).coupling
    rows = np.asarray(fast.coupling.rows)
    k = fast.coupling.index.shape[1]
    plain = np.setdiff1d(np.arange(fast.n_neurons), rows)
    gs_w = np.asarray(g_slow.weight)
    np.testing.assert_allclose(np.asarray(g_fast.weight), gs_w[rows, :k], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(np.asarray(g_fast.shift_weight)[plain], gs_w[plain, 0], rtol=1e-10, atol=1e-14)
    assert np.abs(np.asarray(g_fast.weight)).max() > 1e-3  # a nontrivial gradient


def test_split_table_groups_are_exact_and_chosen_by_gather_count():
    """Two table groups (rows of in-degree <= k1 gather k1 slots, the rest k): W o bit for bit that
    of SparseCoupling and of the one-group table, on random nonnegative ring graphs; the split
    degree is the brute-force minimum of the documented gather count; signed weights keep one group."""
    from diffring._coupling import _GROUP_COST, _split_degree

    rng = np.random.default_rng(11)
    graphs = [random_ring_graph(rng, int(rng.integers(20, 60)), n_links=int(rng.integers(60, 120)))[:4]
              for _ in range(3)]
    graphs += [(c.n_neurons, *c.edges()) for c in (dr.small_world(80, (2, 8), eps=0.05, p=p, seed=s).coupling
                                                   for p, s in ((0.1, 1), (0.4, 2)))]
    n_split = 0
    for n, post, pre, w in graphs:
        w = np.abs(w)
        ring = dr.RingCoupling.from_edges(n, post, pre, w, jnp.float64)
        one = dr.RingCoupling.from_edges(n, post, pre, w, jnp.float64, split=False)
        sparse = dr.SparseCoupling.from_edges(n, post, pre, w, jnp.float64)
        assert one.split is None
        np.testing.assert_array_equal(np.sort(np.asarray(ring.rows)), np.asarray(one.rows))
        # The split degree against a brute-force count of gathered slots.
        deg = (np.asarray(one.weight) != 0).sum(axis=1)
        k = one.index.shape[1]
        costs = {None: deg.size * k}
        for k1 in range(1, k):
            low = int((deg <= k1).sum())
            if 0 < low < deg.size:
                costs[k1] = low * k1 + (deg.size - low) * k + _GROUP_COST
        assert _split_degree(deg, k) == min(costs, key=lambda c: (costs[c], c is not None))
        assert ring.split == (None if ring.k1 == 0 else int((deg <= ring.k1).sum()))
        if ring.split is not None:
            n_split += 1
            rows = np.asarray(ring.rows)
            low = (np.asarray(ring.weight)[:, ring.k1:] == 0).all(axis=1)
            assert low[: ring.split].all() and not low[ring.split :].any()
            assert np.all(np.diff(rows[: ring.split]) > 0) and np.all(np.diff(rows[ring.split :]) > 0)
        for o in ((rng.random(n) < 0.5).astype(float),):
            oj = jnp.asarray(o)
            u = np.asarray(ring(oj))
            np.testing.assert_array_equal(u, np.asarray(sparse(oj)))
            np.testing.assert_array_equal(u, np.asarray(one(oj)))
            x = jnp.asarray(rng.random(ring.rows.shape[0]))
            # row_input lands on the same neurons in either table order.
            by_neuron = np.zeros(n)
            by_neuron[np.asarray(ring.rows)] = np.asarray(x)
            np.testing.assert_array_equal(
                np.asarray(one(oj, row_input=jnp.asarray(by_neuron[np.asarray(one.rows)]))),
                np.asarray(ring(oj, row_input=x)),
            )
    assert n_split >= 2
    # The small-world reservoir's heads (in-degree 2-5, mostly 3) are split at k1 = 3.
    sw = dr.small_world(200, (2, 8), eps=0.05, p=0.1, seed=0).coupling
    deg = (np.asarray(sw.weight) != 0).sum(axis=1)
    assert sw.k1 == 3 and sw.split == int((deg <= 3).sum()) and deg.max() == sw.index.shape[1] > 3
    # Signed weights: one group (a dropped +0 slot could turn a -0.0 sum into +0.0).
    n, post, pre, w, _, _ = random_ring_graph(rng, 30, n_links=60)
    assert np.any(w < 0) and dr.RingCoupling.from_edges(n, post, pre, w, jnp.float64).split is None


def test_shift_without_wrap_only_when_neuron_zero_is_a_table_row():
    """`head0` (the shift skips the wrap-around) exactly when neuron 0 is a table row; W o matches
    the dense matrix either way (a single ring with a link elsewhere keeps the wrap)."""
    rng = np.random.default_rng(12)
    n, post, pre, w, _, _ = random_ring_graph(rng, 6, n_links=4)
    cases = {
        "rings": dr.rings([3, 4, 5]).coupling,
        "ring": dr.ring(6).coupling,
        "ring + link into 3": dr.RingCoupling.from_edges(6, [1, 2, 3, 4, 5, 0, 3], [0, 1, 2, 3, 4, 5, 0],
                                                         [1, 1, 1, 1, 1, 1, 0.5], jnp.float64),
        "random weights": dr.RingCoupling.from_edges(n, post, pre, w, jnp.float64),
    }
    assert [c.head0 for c in cases.values()] == [True, False, False, True]
    for c in cases.values():
        assert c.head0 == (0 in np.asarray(c.rows).tolist())
        W = c.to_scipy().toarray()
        o = rng.random(c.n_neurons)
        np.testing.assert_allclose(np.asarray(c(jnp.asarray(o))), W @ o, rtol=0, atol=1e-15)
