"""The smooth relaxation (spec 1.3) against its hard limit.

Independent answers: the hard model's one-pulse period T_1(N) from the spec's formula (solved with
brentq; `HardTrigger` matches it to 1e-5, see test_periods.py), and the bifurcation points of the
output equation located numerically with SciPy. The numbers behind the chosen default smoothing
are in docs/smooth_model.md (benchmarks/smooth_study.py).
"""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar
from scipy.special import expit

import diffring as dr

THETA_H, THETA_L = 0.49, 0.2
TRANSIENT = 20.0
SAMPLE_DT = 0.001  # sampling interval only; the adaptive solver picks its own steps
PROBES_O = dr.Record(which="probes", fields=("o",), phases=False)


def formula_period(N, theta_L=THETA_L, theta_H=THETA_H):
    """T_1(N) = N w_N with exp(w) = (1/theta_L)(1 - (1 - theta_L exp(-(N-2) w)) exp(-w)), w >= ln(theta_H/theta_L)."""

    def f(w):
        return np.exp(w) - (1 - (1 - theta_L * np.exp(-(N - 2) * w)) * np.exp(-w)) / theta_L

    return N * brentq(f, np.log(theta_H / theta_L), 10.0, xtol=1e-15, rtol=1e-15)


def smooth_periods(sol):
    """Mean interval between falls of each probe's output through 0.5 (linearly interpolated
    between samples), after the transient."""
    t, o = np.asarray(sol.t), np.asarray(sol.o)
    out = []
    for r in range(o.shape[1]):
        x = o[:, r]
        i = np.flatnonzero((x[:-1] >= 0.5) & (x[1:] < 0.5))
        ft = t[i] + (x[i] - 0.5) / (x[i] - x[i + 1]) * (t[i + 1] - t[i])
        ft = ft[ft >= TRANSIENT]
        assert ft.size >= 3, f"probe {r} fired {ft.size} times after the transient"
        out.append((ft[-1] - ft[0]) / (ft.size - 1))
    return np.array(out)


def test_default_smoothing_within_one_percent_of_hard_periods():
    sizes = list(range(2, 13))
    net = dr.rings(sizes)  # uncoupled rings: one solve measures every N
    model = dr.SmoothRelaxation(net, SAMPLE_DT)  # documented defaults
    T = np.array([formula_period(N) for N in sizes])
    sol = dr.simulate(model, dr.init.pulses(net, 1), t1=TRANSIENT + 4 * T.max(), record=PROBES_O)
    assert int(sol.status) == 0
    err = smooth_periods(sol) / T - 1
    np.testing.assert_array_less(np.abs(err), 0.01)


# Sequences towards the hard limit (beta -> inf, eps_o -> 0): eps_o alone, beta alone, and both.
SEQUENCES = {
    "eps_o -> 0 at beta 1000": [(1000.0, 0.01), (1000.0, 0.005), (1000.0, 0.002), (1000.0, 0.001)],
    "beta -> inf at eps_o 0.002": [(200.0, 0.002), (500.0, 0.002), (1000.0, 0.002), (2000.0, 0.002)],
    "both": [(200.0, 0.01), (500.0, 0.005), (1000.0, 0.002), (2000.0, 0.001)],
}


@pytest.fixture(scope="module")
def errors_by_smoothing():
    sizes = [2, 6]
    net = dr.rings(sizes)
    T = np.array([formula_period(N) for N in sizes])
    s0 = dr.init.pulses(net, 1)
    out = {}
    for beta, eps_o in sorted({p for seq in SEQUENCES.values() for p in seq}):
        # Array-valued beta and eps_o are traced: one compilation serves every point.
        model = dr.SmoothRelaxation(net, SAMPLE_DT, beta=jnp.asarray(beta), eps_o=jnp.asarray(eps_o))
        sol = dr.simulate(model, s0, t1=TRANSIENT + 4 * T.max(), record=PROBES_O)
        assert int(sol.status) == 0
        out[beta, eps_o] = smooth_periods(sol) / T - 1
    return out


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_period_error_shrinks_towards_hard_limit(errors_by_smoothing, name):
    errs = np.array([np.abs(errors_by_smoothing[p]) for p in SEQUENCES[name]])  # (steps, N)
    # Strictly decreasing along the sequence, for N = 2 and N = 6 alike, by clearly more than the
    # period measurement's resolution (~1e-5 relative).
    assert np.all(np.diff(errs, axis=0) < -2e-4), errs


def _switch_point(beta, lo, hi, branch):
    """The input d at which the output equation g(o) = sigmoid(beta (lo + (hi - lo) o - d)) - o
    loses its firing (o ~ 0, 'low') or resting (o ~ 1, 'high') equilibrium: the d where
    min over o in [0, 1/2] of g (resp. max over o in [1/2, 1]) crosses zero."""
    W = hi - lo

    def g(o, d):
        return expit(beta * (lo + W * o - d)) - o

    sign, grid = (1.0, np.linspace(0.0, 0.5, 5001)) if branch == "low" else (-1.0, np.linspace(0.5, 1.0, 5001))
    step = grid[1] - grid[0]

    def extremum(d):
        # Global search on a grid, then a bounded Brent refinement around the best grid point.
        k = int(np.argmin(sign * g(grid, d)))
        lo_o, hi_o = max(grid[0], grid[k] - step), min(grid[-1], grid[k] + step)
        res = minimize_scalar(lambda o: sign * g(o, d), bounds=(lo_o, hi_o), method="bounded", options={"xatol": 1e-15})
        return sign * min(res.fun, sign * g(grid[k], d))

    centre = THETA_L if branch == "low" else THETA_H
    return brentq(extremum, centre - 0.1, centre + 0.1, xtol=1e-14)


@pytest.mark.parametrize("beta", [50.0, 200.0, 1000.0, 5000.0])
def test_threshold_correction_puts_switches_at_hard_thresholds(beta):
    # Quasi-statically (eps_o -> 0) a firing neuron releases where its low equilibrium disappears
    # and a resting one fires where its high equilibrium disappears. With the correction these
    # saddle-nodes sit at theta_L and theta_H exactly; without it they are off by O(log(beta)/beta).
    net = dr.ring(3)
    model = dr.SmoothRelaxation(net, beta=beta)
    lo, hi = (float(x) for x in model.effective_thresholds())
    assert _switch_point(beta, lo, hi, "low") == pytest.approx(THETA_L, abs=1e-8)
    assert _switch_point(beta, lo, hi, "high") == pytest.approx(THETA_H, abs=1e-8)
    raw = dr.SmoothRelaxation(net, beta=beta, corrected=False)
    lo_r, hi_r = (float(x) for x in raw.effective_thresholds())
    assert (lo_r, hi_r) == pytest.approx((THETA_L, THETA_H), abs=1e-15)
    # The raw model releases early (at d above theta_L) and fires early (at d below theta_H), so
    # its pulses run fast and its periods come out short; both shifts exceed log(beta)/(2 beta).
    assert _switch_point(beta, lo_r, hi_r, "low") - THETA_L > 0.5 * np.log(beta) / beta
    assert THETA_H - _switch_point(beta, lo_r, hi_r, "high") > 0.5 * np.log(beta) / beta
