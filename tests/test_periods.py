"""Ring periods of the continuous hard-trigger model and the discrete map (spec 1.2 and 2).

Independent answer: the one-pulse period T_1(N) = N w_N, where w_N solves
exp(w) = (1/theta_L) (1 - (1 - theta_L exp(-(N-2) w)) exp(-w)), solved here with brentq.
Also: the discrete map converges to it at first order in dt; T_k(N) = T_1(N/k) when k divides N;
on a coupled lattice the map's fire times are within O(dt) of the hard model's; and the
event-driven hard model is exact, so its samples do not depend on the sampling interval.

Fire times are read from outputs sampled every `dt`: a fall of o through 0.5 is seen at the first
sample at or after the true fire time, so a sampled fire time is late by [0, dt). A period measured
over m intervals of an exactly periodic orbit is therefore within dt/m of the true one; that is the
bound checked for the (exact) hard model.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import linregress

import diffring as dr

THETA_H, THETA_L = 0.49, 0.2
TRANSIENT = 20.0  # orbit memory decays like exp(-t / tau): e^-20 ~ 2e-9


def formula_period(N, theta_L=THETA_L, theta_H=THETA_H):
    """T_1(N) = N w_N. A firing neuron starts at d >= theta_H and releases at d = theta_L, so the
    physical root has w >= ln(theta_H / theta_L) (for N > 5 a spurious root lies below it)."""

    def f(w):
        return np.exp(w) - (1 - (1 - theta_L * np.exp(-(N - 2) * w)) * np.exp(-w)) / theta_L

    return N * brentq(f, np.log(theta_H / theta_L), 10.0, xtol=1e-15, rtol=1e-15)


def fire_samples(o):
    """Sample indices where o (n_records,) falls through 0.5."""
    o = np.asarray(o)
    return np.flatnonzero((o[:-1] >= 0.5) & (o[1:] < 0.5)) + 1


def probe_periods(t, o, skip_until=TRANSIENT):
    """Mean inter-fire interval of every probe (columns of o) after the transient, and the number
    of intervals it is measured over."""
    t, o = np.asarray(t), np.asarray(o)
    out = []
    for r in range(o.shape[1]):
        ft = t[fire_samples(o[:, r])]
        ft = ft[ft >= skip_until]
        assert ft.size >= 3, f"probe {r} fired {ft.size} times after the transient"
        out.append(((ft[-1] - ft[0]) / (ft.size - 1), ft.size - 1))
    return np.array([p for p, _ in out]), np.array([m for _, m in out])


PROBES_O = dr.Record(which="probes", fields=("o",), phases=False)


def concat_states(states):
    return dr.State(jnp.concatenate([s.v for s in states]), jnp.concatenate([s.o for s in states]))


def test_formula_reference_values():
    # Spec section 2: T_1(2) = 2 ln 4 (the quadratic x^2 - 5x + 4 = 0 in x = e^w) and
    # w_N -> ln((5 + sqrt 5)/2) as N grows (exp(-(N-2) w) -> 0 turns the equation into a quadratic).
    assert formula_period(2) == pytest.approx(2 * np.log(4.0), rel=1e-13)
    assert formula_period(60) / 60 == pytest.approx(np.log((5 + np.sqrt(5)) / 2), rel=1e-12)


def test_hard_trigger_one_pulse_periods_match_formula():
    sizes = list(range(2, 13))
    net = dr.rings(sizes)  # uncoupled rings: one run measures every N
    dt = 0.01
    sol = dr.simulate(dr.HardTrigger(net, dt), dr.init.pulses(net, 1), t1=300.0, record=PROBES_O)
    assert int(sol.status) == 0
    P, m = probe_periods(sol.t, sol.o)
    T = np.array([formula_period(N) for N in sizes])
    np.testing.assert_array_less(np.abs(P / T - 1), 1e-3)  # the acceptance
    # The model is exact: the only error is the sampling quantisation, |error| < dt / m.
    np.testing.assert_array_less(np.abs(P - T), dt / m + 1e-9 * T)


# (N, k): k equally spaced pulses on a ring of N, k | N; the probe fires every T_1(N/k).
K_CASES = [(4, 2), (6, 2), (8, 2), (10, 2), (12, 2), (6, 3), (9, 3), (12, 3), (8, 4), (12, 4), (10, 5), (12, 6)]


def _k_pulse_setup():
    net = dr.rings([N for N, _ in K_CASES])
    s0 = concat_states([dr.init.pulses(dr.ring(N), k) for N, k in K_CASES])
    return net, s0


def test_hard_trigger_k_pulse_periods():
    net, s0 = _k_pulse_setup()
    dt = 0.01
    sol = dr.simulate(dr.HardTrigger(net, dt), s0, t1=200.0, record=PROBES_O)
    assert int(sol.status) == 0
    P, m = probe_periods(sol.t, sol.o)
    T = np.array([formula_period(N // k) for N, k in K_CASES])
    np.testing.assert_array_less(np.abs(P / T - 1), 1e-3)
    np.testing.assert_array_less(np.abs(P - T), dt / m + 1e-9 * T)


def test_discrete_map_k_pulse_periods():
    # k equally spaced pulses on N are k rotated copies of one pulse on N/k: the map must give the
    # same integer step count as the N/k ring run alongside, and stay within O(dt) of the formula.
    _, s_k = _k_pulse_setup()
    base = [N // k for N, k in K_CASES]
    net = dr.rings([N for N, _ in K_CASES] + base)
    s0 = concat_states([s_k] + [dr.init.pulses(dr.ring(n), 1) for n in base])
    dt = 0.001
    sol = dr.simulate(dr.DiscreteMap(net, dt), s0, t1=100.0, record=PROBES_O)
    assert int(sol.status) == 0
    P, _ = probe_periods(sol.t, sol.o)
    Pk, P1 = P[: len(K_CASES)], P[len(K_CASES) :]
    np.testing.assert_allclose(Pk, P1, rtol=0, atol=1e-9)
    T = np.array([formula_period(n) for n in base])
    # |error| of at most two steps per neuron (one-step synaptic delay + release rounded up to a
    # step) over a per-neuron delay w >= ln(theta_H / theta_L); measured: below one step.
    np.testing.assert_array_less(np.abs(Pk / T - 1), 2 * dt / np.log(THETA_H / THETA_L))
    np.testing.assert_array_less(np.abs(Pk / T - 1), 1e-3)


def test_discrete_map_periods_converge_first_order():
    """Period error of the discrete map vs dt, for N = 2, 3, 6.

    The map's period is a whole number of steps, so its error is a sawtooth in dt of amplitude
    O(dt) rather than c dt: at each level dt0 we take the RMS relative error over 8 steps spread over
    an octave around dt0, and fit log RMS against log dt0 (slope 1 = first order).

    The map depends on dt only through dt / tau (alpha = exp(-dt / tau)), so all 40 step sizes run as one
    batch with dt = 0.01 and tau = 0.01 / h (time in units of tau); the exactness of that rescaling
    is checked below against a direct run at dt = h.
    """
    sizes = [2, 3, 6]
    net = dr.rings(sizes)
    levels = 0.002 * 2.0 ** np.arange(5)
    jitter = 2.0 ** (np.arange(8) / 8 - 0.5 + 1 / 16)
    h = (levels[:, None] * jitter[None, :]).ravel()
    DT = 0.01
    taus = DT / h
    T = np.array([formula_period(N) for N in sizes])
    n_steps = int(np.ceil((TRANSIENT + 3 * T.max()) / h.min()))
    model, axes = dr.batched_model(dr.DiscreteMap(net, DT), lambda m: m.network.tau, jnp.asarray(taus))
    s0 = dr.init.pulses(net, 1)
    B = h.size
    s0b = dr.State(jnp.broadcast_to(s0.v, (B, s0.v.shape[0])), jnp.broadcast_to(s0.o, (B, s0.o.shape[0])))
    sol = dr.simulate_batch(model, s0b, n_steps=n_steps, record=PROBES_O, model_axes=axes)
    assert np.all(np.asarray(sol.status) == 0)
    o = np.asarray(sol.o)

    # The rescaling is exact: member j equals DiscreteMap(net, dt=h_j) with tau = 1, sample by sample.
    j = 13
    direct = dr.simulate(dr.DiscreteMap(net, float(DT / taus[j])), s0, n_steps=4000, record=PROBES_O)
    np.testing.assert_array_equal(np.asarray(direct.o), o[j, :4001])

    err = np.zeros((B, len(sizes)))
    for b in range(B):
        P, _ = probe_periods(h[b] * np.arange(o.shape[1]), o[b])
        err[b] = P / T - 1
    E = err.reshape(levels.size, jitter.size, len(sizes))
    rms = np.sqrt(np.mean(E**2, axis=1))
    for r, N in enumerate(sizes):
        fit = linregress(np.log(levels), np.log(rms[:, r]))
        assert 0.8 < fit.slope < 1.2, (N, fit.slope, rms[:, r])
    # And the error is bounded by two steps per neuron, as above.
    assert np.all(np.abs(err) < 2 * h[:, None] / np.log(THETA_H / THETA_L))


def _lattice_fire_times(model, s0, t1):
    sol = dr.simulate(model, s0, t1=t1, record=dr.Record(fields=("o",), phases=False))
    assert int(sol.status) == 0
    t, o = np.asarray(sol.t), np.asarray(sol.o)
    return [t[fire_samples(o[:, i])] for i in range(o.shape[1])]


@pytest.fixture(scope="module")
def coupled():
    """A periodic 3 x 3 S0 lattice of 6-rings (eps = 0.1) with one pulse per ring at staggered
    positions and voltages, and the hard model's fire times sampled every 0.0005 up to t = 10.

    The state is built here (not by an initialiser) so that it stays fixed; it has no grazing
    events (a neuron that fires in one model but barely not in the other), which would make the
    comparison discontinuous: with eps = 0.2 and some states such events do occur at dt ~ 0.002.
    """
    net = dr.lattice((3, 3), 6, scheme="S0", eps=0.1, boundary="periodic")
    members = np.asarray(net.rings.members)
    v, o = np.full(net.n_neurons, 0.9), np.ones(net.n_neurons)
    for r in range(net.n_rings):
        low = members[r, (2 * r) % 6]
        v[low], o[low] = 0.1 + 0.01 * r, 0.0
    s0 = dr.State(jnp.asarray(v), jnp.asarray(o))
    ref = _lattice_fire_times(dr.HardTrigger(net, 0.0005), s0, 10.0)
    # Compare up to a time far from any reference fire, so that O(dt) shifts cannot move an event
    # across the cut.
    every = np.sort(np.concatenate(ref))
    cuts = np.linspace(8.0, 9.9, 1901)
    gap = np.min(np.abs(cuts[:, None] - every[None, :]), axis=1)
    t_cut = float(cuts[np.argmax(gap)])
    assert gap.max() > 0.1
    return net, s0, ref, t_cut


def _paired(a, b, t_cut):
    """Fire times of each neuron before t_cut in both runs; the counts must agree."""
    pairs = []
    for x, y in zip(a, b, strict=True):
        x, y = x[x < t_cut], y[y < t_cut]
        assert x.size == y.size
        pairs.append((x, y))
    return pairs


def test_discrete_map_tracks_hard_trigger_on_coupled_lattice(coupled):
    net, s0, ref, t_cut = coupled
    assert sum(r[r < t_cut].size for r in ref) > 100
    dts = np.array([0.004, 0.002, 0.001])
    dmax = []
    for dt in dts:
        fd = _lattice_fire_times(dr.DiscreteMap(net, float(dt)), s0, 10.0)
        dmax.append(max(np.max(np.abs(x - y), initial=0.0) for x, y in _paired(fd, ref, t_cut)))
    dmax = np.array(dmax)
    # O(dt): a step or two of delay per synaptic hop, accumulated over the ~7 hops up to t_cut
    # and modulated by the coupling (measured: 6 to 9 dt).
    assert np.all(dmax < 15 * dts)
    # First order: the largest fire-time difference scales like dt.
    assert 0.8 < linregress(np.log(dts), np.log(dmax)).slope < 1.2


def test_hard_trigger_is_independent_of_sampling(coupled):
    # Event-driven and exact: sampling every 0.002 instead of every 0.0005 only rounds each fire
    # time up to the coarser grid (the grids are nested), on a coupled lattice.
    net, s0, ref, t_cut = coupled
    coarse = _lattice_fire_times(dr.HardTrigger(net, 0.002), s0, 10.0)
    for x, y in _paired(coarse, ref, t_cut):
        assert np.all(x - y > -1e-9) and np.all(x - y < 0.002 + 1e-9)


def test_hard_trigger_status_and_event_budget():
    net = dr.ring(6)
    s0 = dr.init.pulses(net, 1)
    fine = dr.simulate(dr.HardTrigger(net, 0.01), s0, n_steps=3000, record=dr.Record(every=100, phases=False))
    assert int(fine.status) == 0
    # Sampling every 1.0 (several events per sample) gives the same states at the same times.
    coarse = dr.simulate(dr.HardTrigger(net, 1.0, max_events=64), s0, n_steps=30, record=dr.Record(phases=False))
    assert int(coarse.status) == 0
    np.testing.assert_array_equal(np.asarray(coarse.o), np.asarray(fine.o))
    np.testing.assert_allclose(np.asarray(coarse.v), np.asarray(fine.v), rtol=0, atol=1e-12)
    # A budget of one event per sample is exceeded: reported as a solver failure (status 2).
    starved = dr.simulate(dr.HardTrigger(net, 1.0, max_events=1), s0, n_steps=30, record=dr.Record(phases=False))
    assert int(starved.status) == 2 and dr.STATUS_NAMES[2] == "solver failure"
