"""Ring-orbit catalogue (diffring._catalogue): periods, Floquet multipliers and basins.

Independent answers: the spec's T_1(N) (brentq, written here), a plain NumPy event-driven
integrator of the hard ring (spec 1.2) for the monodromy by central finite differences, and the
NumPy discrete-map loop of tests/_reference.py for the basin classification.
"""

import jax
import numpy as np
import pytest
import scipy.sparse as sp
from _reference import numpy_discrete_map
from scipy.optimize import brentq

import diffring as dr
from diffring import _catalogue as cat

TH_H, TH_L = 0.49, 0.2


def T1(N):
    def f(w):
        return np.exp(w) - (1 - (1 - TH_L * np.exp(-(N - 2) * w)) * np.exp(-w)) / TH_L

    return N * brentq(f, np.log(TH_H / TH_L), 10.0, xtol=1e-15, rtol=1e-15)


def hard_ring_flow(v, o, T):
    """NumPy event-driven hard ring (neuron i-1 drives i, tau = 1) for time T."""
    v, o = v.copy(), o.copy()
    t_left = T
    while True:
        u = np.roll(o, 1)
        d = u - v
        firing = o == 0
        s_i = np.full(v.size, np.inf)
        s_i[firing] = np.log(np.maximum(d[firing], TH_L) / TH_L)
        s = s_i.min()
        if s > t_left:
            return u - d * np.exp(-t_left), o
        v = u - d * np.exp(-s)
        t_left -= s
        o[s_i <= s * (1 + 1e-12)] = 1.0
        while True:  # cascade of rising edges
            d = np.roll(o, 1) - v
            new = np.where(d >= np.where(o == 1, TH_H, TH_L), 0.0, 1.0)
            if np.array_equal(new, o):
                break
            o = new


FLOQUET_CASES = [(2, 1), (3, 1), (5, 1), (8, 1), (6, 2), (9, 3), (5, 2)]


@pytest.fixture(scope="module")
def floquet_results():
    return {c: cat.floquet(*c) for c in FLOQUET_CASES}


def test_floquet_period_matches_spec_formula(floquet_results):
    # T_k(N) = T_1(N/k) for k | N, from the Newton-refined periodic orbit of the hard model.
    for (N, k), fl in floquet_results.items():
        assert fl["ok"] and fl["residual"] < 1e-12
        if N % k == 0:
            assert fl["period"] == pytest.approx(T1(N // k), rel=1e-9)


def test_floquet_multiplier_one_along_the_flow(floquet_results):
    for (N, k), fl in floquet_results.items():
        assert fl["dist1"] < 1e-6, (N, k, fl["multipliers"][:3])  # the acceptance
        # the phase direction is the only neutral one: all others strictly inside the unit circle
        mu = fl["multipliers"]
        others = np.delete(mu, np.argmin(np.abs(mu - 1)))
        assert np.all(np.abs(others) < 1 - 1e-6)


@pytest.mark.parametrize("case", [(5, 1), (6, 2), (5, 2)])
def test_monodromy_matches_numpy_finite_differences(case, floquet_results):
    N, k = case
    fl = floquet_results[case]
    # the catalogue's orbit point returns to itself after one lap under the NumPy integrator
    v, o = fl["x0"], fl["o0"]
    v1, o1 = hard_ring_flow(v, o, fl["lap"])
    np.testing.assert_array_equal(o1, o)
    np.testing.assert_allclose(v1, v, atol=1e-12)
    h = 1e-6
    M = np.empty((N, N))
    for j in range(N):
        e = np.zeros(N)
        e[j] = h
        M[:, j] = (hard_ring_flow(v + e, o, fl["lap"])[0] - hard_ring_flow(v - e, o, fl["lap"])[0]) / (2 * h)
    mu = np.linalg.eigvals(M)
    mu = np.sort_complex(mu[np.argsort(-np.abs(mu))][: min(N, 3)])
    ref = np.sort_complex(fl["multipliers"][: min(N, 3)])
    np.testing.assert_allclose(mu, ref, atol=1e-6)


def test_map_periods_against_formula_and_T_k():
    orb = [(4, 1), (2, 1), (6, 2), (3, 1), (9, 3), (8, 4), (8, 1), (12, 3), (4, 1)]
    dt = 0.005
    P = cat.measured_periods(orb, dr.DiscreteMap, dt, t1=150.0)
    for (N, k), p in zip(orb, P, strict=True):
        T = T1(N // k)
        assert abs(p / T - 1) < 2 * dt / np.log(TH_H / TH_L)
    # T_k(N) = T_1(N/k) holds exactly (whole steps) in the map: (6,2)=(3,1), (8,4)=(2,1), (12,3)=(4,1)
    assert P[2] == pytest.approx(P[3], abs=1e-9)
    assert P[5] == pytest.approx(P[1], abs=1e-9)
    assert P[7] == pytest.approx(P[0], abs=1e-9)


def test_basins_match_numpy_map_and_sum_to_one():
    sizes = [2, 3, 5, 8]
    B, dt, t_settle, window = 24, 0.01, 30.0, 200
    key = jax.random.PRNGKey(3)
    orbit, k = cat.basins(sizes, key, B, dt=dt, t_settle=t_settle, window=window, chunk=16)
    table = cat.basin_table(orbit, k, sizes)
    for fr in table.values():
        assert sum(p for p, _ in fr.values()) == pytest.approx(1.0, abs=1e-12)
        for p, se in fr.values():
            assert se == pytest.approx(np.sqrt(p * (1 - p) / B), abs=1e-15)
    net = dr.rings(sizes)
    keys = jax.random.split(key, B)
    n_settle = int(round(t_settle / dt))
    members = [np.arange(sum(sizes[:r]), sum(sizes[: r + 1])) for r in range(len(sizes))]
    post = np.concatenate(members)
    pre = np.concatenate([np.roll(m, 1) for m in members])  # spec 2: position p-1 drives p
    W = sp.csr_matrix((np.ones(post.size), (post, pre)), shape=(post.size, post.size))
    for b in range(0, B, 4):
        s0 = dr.init.uniform(net, keys[b])
        os_, _ = numpy_discrete_map(W, None, None, np.asarray(s0.v), np.asarray(s0.o), n_settle + window, dt, 1.0,
                                    TH_H, TH_L)
        win = os_[n_settle:]
        for r, m in enumerate(members):
            low = win[:, m] < 0.5
            switches = np.any(low[1:] != low[:-1])
            runs = np.sum(low & ~np.roll(low, 1, axis=1), axis=1)  # starts of low runs around the ring
            runs = np.where(low.all(axis=1), 1, runs)
            if not switches:
                assert orbit[b, r] == dr.QUIESCENT
            elif orbit[b, r] == dr.PULSE:
                assert k[b, r] == runs[window // 2 :].max()


def test_every_other_neuron_orbit_is_a_corner_of_the_flow():
    # N / k = 2, k >= 3: the release of one pulse cascades into the next (its successor is the next
    # pulse's input), so the exact flow map has a corner on the orbit. The NumPy integrator shows
    # the one-sided Jacobians differ by O(1); the catalogue flags the orbit (kink ~ 1, not ok).
    fl = cat.floquet(6, 3)
    assert not fl["ok"] and fl["kink"] > 0.1
    assert fl["period"] == pytest.approx(T1(2), rel=1e-9)
    v, o, T, h = fl["x0"], fl["o0"], fl["lap"], 1e-6
    y = hard_ring_flow(v, o, T)[0]
    np.testing.assert_allclose(y, v, atol=1e-12)
    Jp = np.stack([(hard_ring_flow(v + h * e, o, T)[0] - y) / h for e in np.eye(6)], 1)
    Jm = np.stack([(y - hard_ring_flow(v - h * e, o, T)[0]) / h for e in np.eye(6)], 1)
    assert np.abs(Jp - Jm).max() > 0.1


def test_newton_period_matches_core_hard_trigger_run(floquet_results):
    # k not dividing N (no formula): the shooting period agrees with the core's event-driven run
    # (mean probe interval; sampling error < dt / m, plus unequal intervals averaged over m).
    P = cat.measured_periods([(5, 2), (5, 1)], dr.HardTrigger, 0.01, t1=300.0)
    assert P[0] == pytest.approx(floquet_results[(5, 2)]["period"], rel=1e-3)
    assert P[1] == pytest.approx(T1(5), rel=1e-4)
