"""Initial conditions against independent constructions: pulses at the right ring members, random
phases that lie on the isolated ring orbit (checked with a NumPy loop of the spec 1.1 map) and are
uniformly spread, the published recipe and warm-up of spec section 4, uniform random states, files.
"""

import jax
import numpy as np
import pytest
from scipy import optimize, stats

import diffring as dr

DT = 0.01


def np_isolated_rings(v, o, net, n_steps, dt=DT, factors=None, theta_H=0.49, theta_L=0.2, tau=1.0, bias=0.0):
    """Plain NumPy loop of the spec 1.1 map on the network's rings with all other coupling removed
    (each position driven by its ring predecessor with weight 1, plus a constant `bias` per neuron).
    `factors` (per ring) rescale dt. Returns o and v histories, shape (n_steps + 1, n)."""
    members, sizes = np.asarray(net.rings.members), np.asarray(net.rings.sizes)
    n = v.size
    pre = np.arange(n)
    a = np.full(n, np.exp(-dt / tau))
    for r in range(members.shape[0]):
        m = members[r, : sizes[r]]
        pre[m] = np.roll(m, 1)
        if factors is not None:
            a[m] = np.exp(-dt * factors[r] / tau)
    v, o = np.array(v, float), np.array(o, float)
    O, V = [o], [v]
    for _ in range(n_steps):
        u = o[pre] + bias
        v = a * v + (1 - a) * u
        d = u - v
        o = np.where((d >= theta_H) | ((d >= theta_L) & (o == 0)), 0.0, 1.0)
        O.append(o)
        V.append(v)
    return np.array(O), np.array(V)


def fire_steps(o_hist):
    """Steps at which each column's output falls 1 -> 0."""
    falls = (o_hist[:-1] >= 0.5) & (o_hist[1:] < 0.5)
    return [np.flatnonzero(falls[:, j]) + 1 for j in range(o_hist.shape[1])]


def T1(N, theta_L=0.2):
    """Continuous one-pulse ring period of spec section 2: T_1(N) = N w_N."""
    f = lambda w: np.exp(w) - (1 - (1 - theta_L * np.exp(-(N - 2) * w)) * np.exp(-w)) / theta_L  # noqa: E731
    return N * optimize.brentq(f, 1.0, 3.0)


# --- pulses -----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3])
def test_pulses_equally_spaced_at_the_right_members(k):
    net = dr.rings([6, 7, 9])
    s = dr.init.pulses(net, k, v_low=0.15, v_rest=0.85)
    v, o = np.asarray(s.v), np.asarray(s.o)
    for r, N in enumerate([6, 7, 9]):
        start = sum([6, 7, 9][:r])
        ring_o, ring_v = o[start : start + N], v[start : start + N]
        low = np.flatnonzero(ring_o == 0)
        assert low.tolist() == [int(np.floor(j * N / k)) for j in range(k)]
        assert np.all(ring_v[low] == 0.15)
        assert np.all(np.delete(ring_v, low) == 0.85) and np.all(np.delete(ring_o, low) == 1.0)


def test_pulses_at_given_positions_on_a_position_major_lattice():
    net = dr.lattice([3, 4], 8, eps=0.1)  # S0: neuron p * n_rings + r
    s = dr.init.pulses(net, positions=[1, 5])
    o, v = np.asarray(s.o), np.asarray(s.v)
    expected_low = sorted(p * 12 + r for p in (1, 5) for r in range(12))
    assert np.flatnonzero(o == 0).tolist() == expected_low
    assert np.all(v[expected_low] == 0.1) and np.all(np.delete(v, expected_low) == 0.9)


def test_pulses_errors_name_the_field():
    net = dr.rings([4, 6])
    with pytest.raises(dr.DiffringError, match="init.k"):
        dr.init.pulses(net, 3)  # ring of 4 holds at most 2 pulses
    with pytest.raises(dr.DiffringError, match="init.positions"):
        dr.init.pulses(net, positions=[0, 4])
    with pytest.raises(dr.DiffringError, match="init.positions"):
        dr.init.pulses(net, positions=[1, 1])


# --- random_phase -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rp_net():
    return dr.rings([6] * 150 + [3] * 50)


@pytest.fixture(scope="module")
def rp_run(rp_net):
    s = dr.init.random_phase(rp_net, jax.random.key(0), DT)
    O, V = np_isolated_rings(np.asarray(s.v), np.asarray(s.o), rp_net, 2400)
    return s, O, V


def test_random_phase_states_lie_on_the_isolated_orbit(rp_net, rp_run):
    """From the returned state every isolated ring is periodic immediately, with one common period
    per ring size that matches the continuous period T_1(N) to first order in dt."""
    _, O, V = rp_run
    members, sizes = np.asarray(rp_net.rings.members), np.asarray(rp_net.rings.sizes)
    probes = np.asarray(rp_net.rings.probes)
    fires = fire_steps(O[:, probes])
    for N in (6, 3):
        rows = np.flatnonzero(sizes == N)
        gaps = np.concatenate([np.diff(fires[r]) for r in rows])
        assert gaps.size >= 2 * rows.size
        P = int(gaps[0])
        assert np.all(gaps == P)  # no transient: the very first interval is already the period
        assert abs(P * DT - T1(N)) < N * DT
        m = members[rows, :N]
        # The whole ring state repeats after one period (to rounding): it is on the limit cycle.
        assert np.max(np.abs(V[P][m] - V[0][m])) < 1e-10
        assert np.array_equal(O[P][m], O[0][m])


def test_random_phase_phases_are_uniform(rp_net, rp_run):
    """Phase of ring r = 1 - (steps to its next probe fire) / P: uniform on [0, 1) (KS test) and
    with a Kuramoto order parameter of order 1/sqrt(n)."""
    _, O, _ = rp_run
    sizes = np.asarray(rp_net.rings.sizes)
    probes = np.asarray(rp_net.rings.probes)
    fires = fire_steps(O[:, probes])
    rows = np.flatnonzero(sizes == 6)
    P = int(np.diff(fires[rows[0]])[0])
    phase = np.array([1 - fires[r][0] / P for r in rows])
    assert stats.kstest(phase, "uniform").pvalue > 0.01
    R = abs(np.mean(np.exp(2j * np.pi * phase)))
    assert R < 3 / np.sqrt(rows.size)


def test_random_phase_on_a_coupled_lattice_starts_without_spurious_switching():
    """On an S0 lattice a ring's receiver rests at input 1 + eps * degree. random_phase samples the
    orbit of each ring with its neighbours at rest, so (a) every ring is periodic immediately under
    the NumPy map with that constant link input, and (b) in the coupled run the rings' first fires
    are spread uniformly over a period instead of all receivers firing at the first step."""
    eps, L = 0.2, 12
    net = dr.lattice([L, L], 6, eps=eps, r_in=0, s_out=1)  # periodic: degree 4 everywhere
    s = dr.init.random_phase(net, jax.random.key(5), DT)
    n_rings = L * L
    bias = np.zeros(net.n_neurons)
    bias[:n_rings] = 4 * eps  # position 0 (neurons 0 .. n_rings-1, position-major) receives the links
    O, V = np_isolated_rings(np.asarray(s.v), np.asarray(s.o), net, 1800, bias=bias)
    probes = np.asarray(net.rings.probes)
    fires = fire_steps(O[:, probes])
    gaps = np.concatenate([np.diff(f) for f in fires])
    P = int(gaps[0])
    assert np.all(gaps == P) and np.max(np.abs(V[P] - V[0])) < 1e-10
    first_iso = np.array([f[0] for f in fires])
    assert stats.kstest(first_iso / P, "uniform").pvalue > 0.01
    # The coupled network: first fires of the probes are still spread over the period.
    sol = dr.simulate(dr.DiscreteMap(net, DT), s, n_steps=P + 10, record=dr.Record(which="probes", fields=("o",)))
    first = np.array([f[0] if f.size else P + 10 for f in fire_steps(np.asarray(sol.o))])
    assert np.mean(first <= 3) < 0.05
    assert stats.kstest(first / P, "uniform").pvalue > 0.01


def test_random_phase_k_pulses_without_equal_gaps():
    """k = 2 pulses on 5-rings (unequal gaps): the state lies on the full 2-pulse orbit, whose period
    spans two unequal inter-fire intervals, and each ring carries exactly two pulses."""
    net = dr.rings([5] * 8)
    s = dr.init.random_phase(net, jax.random.key(3), DT, k=2)
    O, V = np_isolated_rings(np.asarray(s.v), np.asarray(s.o), net, 2000)
    fires = fire_steps(O[:, np.asarray(net.rings.probes)])
    gaps = np.diff(fires[0])
    assert gaps[0] != gaps[1] and np.all(gaps[2:] == np.resize(gaps[:2], gaps.size - 2))
    P = int(gaps[0] + gaps[1])
    assert np.max(np.abs(V[P] - V[0])) < 1e-10
    # Two maximal runs of low outputs per ring at some time in the first period.
    o = O[: P + 1].reshape(P + 1, 8, 5)
    runs = np.sum((o == 0) & (np.roll(o, 1, axis=2) == 1), axis=2)
    assert runs.max() == 2


# --- published --------------------------------------------------------------------------------


def test_published_recipe_without_warmup():
    """warmup_steps=0 gives exactly the recipe: v = 0.9, o = 1, except one neuron per ring, never
    the last position, with v in [0.1, 0.11) and o = 0."""
    sizes = [2, 3, 5, 8] * 25
    net = dr.rings(sizes)
    s = dr.init.published(net, jax.random.key(4), DT, warmup_steps=0)
    v, o = np.asarray(s.v), np.asarray(s.o)
    members = np.asarray(net.rings.members)
    positions = []
    for r, N in enumerate(sizes):
        rv, ro = v[members[r, :N]], o[members[r, :N]]
        low = np.flatnonzero(ro == 0)
        assert low.size == 1 and low[0] != N - 1
        assert 0.1 <= rv[low[0]] < 0.11
        assert np.all(np.delete(rv, low) == 0.9) and np.all(np.delete(ro, low) == 1.0)
        positions.append((N, low[0]))
    # Positions are drawn over all non-last positions (e.g. each of 0..6 occurs for the 8-rings).
    assert {p for N, p in positions if N == 8} == set(range(7))


def test_published_warmup_runs_each_ring_alone_with_its_step_factor():
    """With the factors fixed, the warm-up equals a NumPy loop of each isolated ring from the recipe
    state with step dt * factor_r."""
    net = dr.lattice([4], 6, eps=0.3, boundary="open")  # coupling must be ignored during warm-up
    key = jax.random.key(8)
    factors = np.array([0.5, 1.0, 2.5, 7.0])
    recipe = dr.init.published(net, key, DT, warmup_steps=0)
    warm = dr.init.published(net, key, DT, warmup_steps=300, factors=factors)
    O, V = np_isolated_rings(np.asarray(recipe.v), np.asarray(recipe.o), net, 300, factors=factors)
    np.testing.assert_array_equal(np.asarray(warm.o), O[-1])
    np.testing.assert_allclose(np.asarray(warm.v), V[-1], rtol=0, atol=1e-12)
    # Random factors: reproducible per key, different across keys, and the rings did move.
    a = dr.init.published(net, key, DT)
    b = dr.init.published(net, key, DT)
    c = dr.init.published(net, jax.random.key(9), DT)
    assert np.array_equal(a.v, b.v) and np.array_equal(a.o, b.o)
    assert not np.array_equal(a.v, c.v)
    assert not np.array_equal(a.v, recipe.v)


# --- uniform, files, keys ---------------------------------------------------------------------


def test_uniform_distribution():
    net = dr.rings([10] * 100)
    s = dr.init.uniform(net, jax.random.key(2))
    v, o = np.asarray(s.v), np.asarray(s.o)
    assert np.all((v >= 0) & (v < 1)) and set(np.unique(o)) == {0.0, 1.0}
    assert stats.kstest(v, "uniform").pvalue > 0.01
    assert stats.binomtest(int(np.sum(o == 0)), o.size, 0.5).pvalue > 0.01


@pytest.mark.parametrize("kind", ["uniform", "random_phase", "published"])
def test_keys_reproducible_different_and_batchable(kind):
    net = dr.rings([4, 5, 6] * 4)
    init = getattr(dr.init, kind)
    k1, k2 = jax.random.key(10), jax.random.key(11)
    a, b, c = init(net, k1), init(net, k1), init(net, k2)
    assert np.array_equal(a.v, b.v) and np.array_equal(a.o, b.o)
    assert not (np.array_equal(a.v, c.v) and np.array_equal(a.o, c.o))
    # A 1-D array of keys gives the batch of the per-key states.
    keys = jax.random.split(jax.random.key(12), 3)
    batch = init(net, keys)
    assert batch.v.shape == (3, net.n_neurons)
    for i in range(3):
        single = init(net, keys[i])
        assert np.array_equal(batch.v[i], single.v) and np.array_equal(batch.o[i], single.o)


def test_from_file_round_trip(tmp_path):
    net = dr.rings([3, 4])
    s = dr.init.uniform(net, jax.random.key(5))
    np.savez(tmp_path / "s.npz", v=np.asarray(s.v), o=np.asarray(s.o))
    t = dr.init.from_file(net, str(tmp_path / "s.npz"))
    assert np.array_equal(t.v, s.v) and np.array_equal(t.o, s.o) and t.v.dtype == net.dtype
    sb = dr.init.uniform(net, jax.random.split(jax.random.key(6), 2))
    np.savez(tmp_path / "b.npz", v=np.asarray(sb.v), o=np.asarray(sb.o))
    tb = dr.init.from_file(net, str(tmp_path / "b.npz"))
    assert np.array_equal(tb.v, sb.v) and np.array_equal(tb.o, sb.o)
    with pytest.raises(dr.DiffringError, match="init.v"):
        dr.init.from_file(dr.rings([3, 5]), str(tmp_path / "s.npz"))
