"""`AdaptiveRK`, diffring's own adaptive Runge-Kutta solver for the smooth model.

Independent answers: the exact solution of a linear ODE (the smooth model with its outputs frozen),
SciPy's `solve_ivp` (DOP853, tight) on a NumPy vector field of the same equations with the input held
over each sample (also for `ODESolve`'s adaptive route), diffrax's Dopri5/Tsit5 (`ODESolve`) at tight
tolerance, and single runs for batches.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import diffring as dr

TABLEAUS = {"dopri5": dr.DormandPrince54(), "tsit5": dr.Tsitouras54(), "dopri8": dr.DormandPrince87()}
ORDER = {"dopri5": 5, "tsit5": 5, "dopri8": 8}


def frozen_model(dt):
    """The smooth model with eps_o = 1e30: o stays at its initial value to 1e-30, so v relaxes
    linearly, tau_i dv_i/dt = u_i - v_i with constant u = W o, and v(t) = u + (v0 - u) exp(-t/tau)."""
    net = dr.rings([3, 4], tau=np.array([0.5, 0.7, 1.0, 1.3, 0.4, 2.0, 0.9]))
    return dr.SmoothRelaxation(net, dt, eps_o=1e30)


def frozen_exact(model, state0, t):
    net = model.network
    u = np.asarray(net.drive(state0.o, None))
    tau = np.asarray(net.tau)
    return u + (np.asarray(state0.v) - u) * np.exp(-np.asarray(t)[:, None] / tau)


def frozen_state(model):
    n = model.network.n_neurons
    return dr.State(jnp.linspace(0.1, 0.9, n), jnp.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_error_is_of_the_order_of_the_tolerance_on_a_linear_ode(name):
    model = frozen_model(2.0)
    s0 = frozen_state(model)
    errs, steps = [], []
    for tol in (1e-6, 1e-8, 1e-10, 1e-12):
        # Traced tolerances: one compilation for all four.
        method = dr.AdaptiveRK(TABLEAUS[name], rtol=jnp.asarray(tol), atol=jnp.asarray(tol))
        sol = dr.simulate(model, s0, n_steps=1, record=dr.Record(fields=("v",), phases=False), method=method)
        assert int(sol.status) == 0
        err = np.max(np.abs(np.asarray(sol.v) - frozen_exact(model, s0, sol.t)))
        assert err <= 10 * tol  # tolerance proportionality (the solution is O(1))
        errs.append(err)
        steps.append(int(sol.stats["num_steps"]))
    # 100x tighter tolerance costs about 100^(1/p) times the steps for an order-p pair (2.5x for p = 5).
    slope = np.polyfit(np.log(steps), np.log(errs), 1)[0]
    p = ORDER[name]
    assert slope < -(p - 0.5), (steps, errs)
    # The 8(7) pair takes 5 ... 16 steps here: whole step counts make its slope too coarse to bound below.
    assert p == 8 or slope > -(p + 1.2), (steps, errs)


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_order_of_convergence_at_fixed_steps(name):
    # A huge tolerance accepts every step and factor_max = 1 + 1e-12 keeps the step at dt0 (to 1e-10
    # relative over the run; the last step is clipped to the record time): the error of a 5th-order
    # method falls as dt0^5 (dt0^8 for the 8(7) pair, with longer steps to stay clear of round-off).
    # dt0 and factor_max are traced: one compilation for every step size.
    model = frozen_model(2.0)
    s0 = frozen_state(model)
    errs = []
    p = ORDER[name]
    hs = (0.1, 0.05, 0.025) if p == 5 else (0.4, 0.2, 0.1)
    for h in hs:
        method = dr.AdaptiveRK(
            TABLEAUS[name],
            rtol=jnp.asarray(1e10),
            atol=jnp.asarray(1e10),
            dt0=jnp.asarray(h),
            factor_max=jnp.asarray(1 + 1e-12),
        )
        sol = dr.simulate(model, s0, n_steps=1, record=dr.Record(fields=("v",), phases=False), method=method)
        assert int(sol.status) == 0
        assert int(sol.stats["num_steps"]) in (round(2.0 / h), round(2.0 / h) + 1)
        errs.append(np.max(np.abs(np.asarray(sol.v[-1]) - frozen_exact(model, s0, np.array([2.0]))[0])))
    orders = np.log(np.array(errs[:-1]) / np.array(errs[1:])) / np.log(2)
    assert np.all(orders > p - 0.4), orders
    # On a linear ODE only the stability polynomial counts; the 13-stage 8(7) pair's matches exp(z)
    # beyond z^8 (measured orders ~ 9.9), so it is bounded above for the 5(4) pairs only.
    assert p == 8 or np.all(orders < p + 1.0), orders


def numpy_field(model, x_table):
    """The smooth model's right-hand side in NumPy, on y = (v, o), with input row x_table[k] for
    t in [k dt, (k + 1) dt)."""
    net = model.network
    n = net.n_neurons
    W = net.coupling.to_scipy().tocsr()
    Win = np.asarray(net.win)
    lo, hi = (np.asarray(a) for a in model.effective_thresholds())
    beta, eps_o, tau = float(model.beta), float(model.eps_o), np.asarray(net.tau)

    def fun(k, y):
        v, o = y[:n], y[n:]
        d = W @ o + Win @ x_table[k] - v
        target = 1 / (1 + np.exp(-beta * (lo + (hi - lo) * o - d)))
        return np.concatenate([d / tau, (target - o) / eps_o])

    return fun


@pytest.mark.parametrize(
    "method",
    [dr.AdaptiveRK(rtol=1e-10, atol=1e-10), dr.ODESolve(rtol=1e-10, atol=1e-10),
     dr.ODESolve(solver=diffrax.Dopri5(), rtol=1e-10, atol=1e-10)],
    ids=["AdaptiveRK", "ODESolve-Tsit5", "ODESolve-Dopri5"],
)
def test_inputs_are_held_over_each_sample_interval(method):
    # ODESolve's adaptive route steps up to each sample time (diffrax jump_ts); before it did, its
    # steps straddled samples and it was only within 2e-6 here, with 2.5x the steps.
    net = dr.small_world(4, (3, 4), eps=0.1, p=0.2, n_in=2, seed=3)
    model = dr.SmoothRelaxation(net, 0.1, beta=20.0, eps_o=0.05)
    n_steps = 30
    x = np.random.default_rng(1).uniform(0.0, 0.6, (n_steps, 2))
    s0 = dr.init.random_phase(net, jax.random.key(2))
    sol = dr.simulate(model, s0, n_steps=n_steps, inputs=jnp.asarray(x), record=dr.Record(phases=False), method=method)
    assert int(sol.status) == 0
    fun = numpy_field(model, x)
    y = np.concatenate([np.asarray(s0.v), np.asarray(s0.o)])
    ref = [y]
    for k in range(n_steps):  # one solve per sample: the input is constant in each
        y = solve_ivp(lambda t, y, k=k: fun(k, y), (0.0, model.dt), y, method="DOP853", rtol=1e-12, atol=1e-12).y[:, -1]
        ref.append(y)
    ref = np.array(ref)
    n = net.n_neurons
    assert np.max(np.abs(np.asarray(sol.v) - ref[:, :n])) < 1e-8
    assert np.max(np.abs(np.asarray(sol.o) - ref[:, n:])) < 1e-8
    # The input matters at this accuracy: a constant input gives a different trajectory.
    other = dr.simulate(
        model,
        s0,
        n_steps=n_steps,
        inputs=jnp.asarray(np.broadcast_to(x[:1], x.shape)),
        record=dr.Record(phases=False),
        method=method,
    )
    assert np.max(np.abs(np.asarray(other.v) - ref[:, :n])) > 1e-3


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_agrees_with_diffrax_on_a_smooth_ring_at_tight_tolerance(name):
    import diffrax

    net = dr.ring(6)
    model = dr.SmoothRelaxation(net, 0.05)  # default smoothing: sharp switches
    s0 = dr.init.pulses(net, 1)
    rec = dr.Record(fields=("v", "o"), phases=False)
    solver = {"dopri5": diffrax.Dopri5(), "tsit5": diffrax.Tsit5(), "dopri8": diffrax.Dopri8()}[name]
    ref = dr.simulate(model, s0, t1=8.0, record=rec, method=dr.ODESolve(solver, rtol=1e-11, atol=1e-11))
    sol = dr.simulate(model, s0, t1=8.0, record=rec, method=dr.AdaptiveRK(TABLEAUS[name], rtol=1e-11, atol=1e-11))
    assert int(sol.status) == 0 and int(ref.status) == 0
    assert np.ptp(np.asarray(ref.o)) > 0.9  # the pulse travels: the outputs switch fully
    np.testing.assert_allclose(np.asarray(sol.v), np.asarray(ref.v), rtol=0, atol=1e-7)
    np.testing.assert_allclose(np.asarray(sol.o), np.asarray(ref.o), rtol=0, atol=1e-7)


def test_recording_controls_match_the_full_record_and_odesolve_phases():
    net = dr.rings([3, 5, 6])
    model = dr.SmoothRelaxation(net, 0.02)
    s0 = dr.init.pulses(net, 1)
    method = dr.AdaptiveRK(rtol=1e-10, atol=1e-10)
    full = dr.simulate(model, s0, t1=20.0, record=dr.Record(every=5, phases=False), method=method)
    rec = dr.Record(every=5, which="probes", fields=("o",), phases=True, reduce=lambda t, s: jnp.mean(s.v))
    part = dr.simulate(model, s0, t1=20.0, record=rec, method=method)
    probes = np.asarray(net.rings.probes)
    # Same steps (clipped to the same record times): bit-for-bit the same samples.
    np.testing.assert_array_equal(np.asarray(part.o), np.asarray(full.o)[:, probes])
    assert part.v is None
    np.testing.assert_allclose(np.asarray(part.reduced), np.mean(np.asarray(full.v), axis=1), rtol=1e-14)
    # Phases from the same probe samples as ODESolve's (tight tolerance on both).
    ode = dr.simulate(model, s0, t1=20.0, record=rec, method=dr.ODESolve(rtol=1e-10, atol=1e-10))
    assert np.asarray(part.phase_valid)[-1].all()
    np.testing.assert_array_equal(np.asarray(part.phase_valid), np.asarray(ode.phase_valid))
    np.testing.assert_allclose(np.asarray(part.phase), np.asarray(ode.phase), atol=1e-6)
    np.testing.assert_allclose(np.asarray(part.R), np.asarray(ode.R), atol=1e-6)


@pytest.mark.parametrize("case", ["lattice", "small-world", "small-world-input"])
def test_batch_equals_single_runs_bit_for_bit(case):
    # Without inputs the state is packed as one (2, n) array, with inputs it is not: both must hold.
    with_inputs = case.endswith("input")
    if case.startswith("small-world"):
        net = dr.small_world(6, (3, 5), eps=0.1, p=0.2, n_in=2, seed=0)
    else:
        net = dr.lattice([3, 3], 5, eps=0.1)
    model = dr.SmoothRelaxation(net, 0.05)
    states = jax.vmap(lambda k: dr.init.uniform(net, k))(jax.random.split(jax.random.key(5), 3))
    n_steps = 40
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 0.5, (3, n_steps, 2))) if with_inputs else None
    rec = dr.Record(every=4, phases=True)
    method = dr.AdaptiveRK(dr.Tsitouras54(), rtol=1e-7, atol=1e-9)
    batch = dr.simulate_batch(model, states, n_steps=n_steps, record=rec, inputs=x, method=method)
    steps = []
    for b in range(3):
        one = jax.tree.map(lambda a, b=b: a[b], states)
        single = dr.simulate(model, one, n_steps=n_steps, record=rec, inputs=None if x is None else x[b], method=method)
        member = jax.tree.map(lambda a, b=b: a[b], batch)
        for a, c in zip(jax.tree.leaves(single), jax.tree.leaves(member), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
        steps.append(int(single.stats["num_steps"]))
    assert len(set(steps)) > 1  # members took different step sequences, so lanes really diverged


def test_status_nan_parameter_and_max_steps():
    net = dr.ring(5)
    s0 = dr.init.pulses(net, 1)
    bad = dr.SmoothRelaxation(net, 0.05, beta=jnp.asarray(jnp.nan))
    sol = dr.simulate(bad, s0, n_steps=20, method=dr.AdaptiveRK())
    assert dr.STATUS_NAMES[int(sol.status)] == "non-finite"
    assert int(sol.stats["num_steps"]) == 0  # detected before stepping
    model = dr.SmoothRelaxation(net, 0.05)
    sol = dr.simulate(model, s0, n_steps=20, method=dr.AdaptiveRK(max_steps=10))
    assert dr.STATUS_NAMES[int(sol.status)] == "solver failure"
    assert int(sol.stats["num_steps"]) == 10


def test_float32_run_matches_float64():
    rec = dr.Record(fields=("v", "o"), phases=False)
    out = {}
    for dtype in ("float32", "float64"):
        net = dr.lattice([3, 3], 4, eps=0.1, dtype=dtype)
        model = dr.SmoothRelaxation(net, 0.05)
        s0 = dr.init.random_phase(net, jax.random.key(0))
        out[dtype] = dr.simulate(model, s0, t1=3.0, record=rec, method=dr.AdaptiveRK(rtol=1e-5, atol=1e-6))
    s32, s64 = out["float32"], out["float64"]
    assert int(s32.status) == 0 and s32.v.dtype == jnp.float32 and s32.t.dtype == jnp.float32
    assert np.max(np.abs(np.asarray(s32.v, np.float64) - np.asarray(s64.v))) < 1e-3
    assert np.max(np.abs(np.asarray(s32.o, np.float64) - np.asarray(s64.o))) < 1e-2


@pytest.mark.parametrize("name", ["dopri5", "dopri8"])
def test_float32_error_is_tolerance_plus_rounding_on_a_linear_ode(name):
    # The frozen model (exact solution known) solved in float32: the error must stay within what the
    # tolerance allows (as in float64 above) plus float32 rounding, at most about one unit of
    # eps32 (relative, on O(1) values) per step and stage sum; and the solve must not do better
    # than float32 can (the error is float32-sized at tight tolerance, not float64-sized).
    net = dr.rings([3, 4], tau=np.array([0.5, 0.7, 1.0, 1.3, 0.4, 2.0, 0.9]), dtype="float32")
    model = dr.SmoothRelaxation(net, 2.0, eps_o=1e30)
    s0 = dr.State(jnp.linspace(0.1, 0.9, 7, dtype=jnp.float32), jnp.array([1, 0, 1, 1, 0, 1, 1], jnp.float32))
    eps32 = float(np.finfo(np.float32).eps)
    s64 = dr.State(np.asarray(s0.v, np.float64), np.asarray(s0.o, np.float64))
    exact = frozen_exact(frozen_model(2.0), s64, np.array([2.0]))[0]
    for tol in (1e-3, 1e-4, 1e-5):
        method = dr.AdaptiveRK(TABLEAUS[name], rtol=jnp.asarray(tol, jnp.float32), atol=jnp.asarray(tol, jnp.float32))
        sol = dr.simulate(model, s0, n_steps=1, record=dr.Record(fields=("v",), phases=False), method=method)
        assert int(sol.status) == 0 and sol.v.dtype == jnp.float32
        steps = int(sol.stats["num_steps"])
        err = np.max(np.abs(np.asarray(sol.v[-1], np.float64) - exact))
        assert err <= 10 * tol + 4 * steps * eps32, (tol, steps, err)
    assert err > 1e-9  # float32 results, not float64 ones in disguise


def test_float32_rounding_does_not_accumulate_over_many_steps():
    # 20,000 fixed steps (huge tolerance, dt0 = 1e-4, factor_max = 1 + 1e-6) of the frozen linear model
    # in float32. Plain float32 sums of the state and of the time would accumulate rounding with the
    # number of steps (about 11 eps32 here); the solver's compensated sums keep the error at the
    # level of one rounding, independent of the number of steps.
    net = dr.rings([3, 4], tau=np.array([0.5, 0.7, 1.0, 1.3, 0.4, 2.0, 0.9]), dtype="float32")
    model = dr.SmoothRelaxation(net, 2.0, eps_o=1e30)
    s0 = dr.State(jnp.linspace(0.1, 0.9, 7, dtype=jnp.float32), jnp.array([1, 0, 1, 1, 0, 1, 1], jnp.float32))
    s64 = dr.State(np.asarray(s0.v, np.float64), np.asarray(s0.o, np.float64))
    exact = frozen_exact(frozen_model(2.0), s64, np.array([2.0]))[0]
    f32 = jnp.float32
    method = dr.AdaptiveRK(rtol=jnp.asarray(1e10, f32), atol=jnp.asarray(1e10, f32), dt0=jnp.asarray(1e-4, f32),
                           factor_max=jnp.asarray(1 + 1e-6, f32))
    sol = dr.simulate(model, s0, n_steps=1, record=dr.Record(fields=("v",), phases=False), method=method)
    assert int(sol.status) == 0 and int(sol.stats["num_steps"]) > 19_000
    err = np.max(np.abs(np.asarray(sol.v[-1], np.float64) - exact))
    assert err <= 2 * np.finfo(np.float32).eps, err


def test_bad_arguments_and_gradients_raise():
    net = dr.ring(4)
    with pytest.raises(dr.DiffringError, match="method.rtol"):
        dr.AdaptiveRK(rtol=0.0)
    with pytest.raises(dr.DiffringError, match="method.max_steps"):
        dr.AdaptiveRK(max_steps=0)
    with pytest.raises(dr.DiffringError, match="method.tableau"):
        dr.AdaptiveRK(tableau="dopri5")
    with pytest.raises(dr.DiffringError, match="SmoothRelaxation"):
        dr.simulate(dr.DiscreteMap(net), dr.init.pulses(net, 1), n_steps=3, method=dr.AdaptiveRK())
    model = dr.SmoothRelaxation(net, 0.05)
    s0 = dr.init.pulses(net, 1)

    def loss(v0):
        sol = dr.simulate(model, dr.State(v0, s0.o), n_steps=4, record=dr.Record(phases=False), method=dr.AdaptiveRK())
        return jnp.sum(sol.v)

    with pytest.raises(ValueError, match="Reverse-mode differentiation does not work for lax.while_loop"):
        jax.grad(loss)(s0.v)
