"""Recording controls (every k, which neurons, fields, on-the-fly reductions, record 0, time grid)
checked against full every-step records of the same run; and per-member status reporting
(non-finite members flagged without touching the others, solver failures reported, not raised)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffring as dr


def member(tree, b):
    return jax.tree.map(lambda a: a[b], tree)


@pytest.fixture(scope="module")
def lattice_run():
    net = dr.lattice([3, 4], 6, eps=0.2)
    model = dr.DiscreteMap(net, 0.01)
    s0 = dr.init.random_phase(net, jax.random.key(0), 0.01)
    full = dr.simulate(model, s0, n_steps=600, record=dr.Record(every=1))
    return net, model, s0, full


@pytest.mark.parametrize("every", [1, 3, 25])
def test_every_k_is_the_every_1_run_subsampled(lattice_run, every):
    net, model, s0, full = lattice_run
    sol = dr.simulate(model, s0, n_steps=600, record=dr.Record(every=every))
    n_rec = 600 // every + 1
    assert sol.o.shape == (n_rec, net.n_neurons) and sol.R.shape == (n_rec,)
    for name in ("o", "v", "t", "R", "phase", "phase_valid"):
        np.testing.assert_array_equal(np.asarray(getattr(sol, name)), np.asarray(getattr(full, name))[::every])
    # Record 0 is the initial state; the time grid is k * every * dt.
    np.testing.assert_array_equal(np.asarray(sol.o[0]), np.asarray(s0.o))
    np.testing.assert_array_equal(np.asarray(sol.v[0]), np.asarray(s0.v))
    np.testing.assert_allclose(np.asarray(sol.t), np.arange(n_rec) * every * 0.01, rtol=1e-14, atol=0)
    # The final state is the last record.
    np.testing.assert_array_equal(np.asarray(sol.state.v), np.asarray(full.v[-1]))


def test_t1_gives_the_same_grid_and_t0_shifts_it(lattice_run):
    net, model, s0, full = lattice_run
    sol = dr.simulate(model, s0, t1=6.0, record=dr.Record(every=20))
    np.testing.assert_array_equal(np.asarray(sol.o), np.asarray(full.o)[::20])
    shifted = dr.simulate(model, s0, n_steps=600, record=dr.Record(every=20), t0=3.0)
    np.testing.assert_allclose(np.asarray(shifted.t), 3.0 + np.arange(31) * 0.2, rtol=1e-14)


def test_which_selects_neurons(lattice_run):
    net, model, s0, full = lattice_run
    probes = np.asarray(net.rings.probes)
    sol = dr.simulate(model, s0, n_steps=600, record=dr.Record(every=5, which="probes"))
    np.testing.assert_array_equal(np.asarray(sol.o), np.asarray(full.o)[::5][:, probes])
    np.testing.assert_array_equal(np.asarray(sol.v), np.asarray(full.v)[::5][:, probes])
    idx = [70, 3, 3, 41]
    for which in (tuple(idx), idx, np.array(idx)):
        sol = dr.simulate(model, s0, n_steps=600, record=dr.Record(every=5, which=which))
        np.testing.assert_array_equal(np.asarray(sol.v), np.asarray(full.v)[::5][:, idx])


def test_fields_subsets_and_no_phases(lattice_run):
    net, model, s0, full = lattice_run
    sol = dr.simulate(model, s0, n_steps=600, record=dr.Record(every=6, fields=("v",)))
    assert sol.o is None
    np.testing.assert_array_equal(np.asarray(sol.v), np.asarray(full.v)[::6])
    sol = dr.simulate(model, s0, n_steps=600, record=dr.Record(every=6, fields=(), phases=False))
    assert sol.o is None and sol.v is None and sol.phase is None and sol.R is None and sol.tracker is None
    np.testing.assert_array_equal(np.asarray(sol.state.o), np.asarray(full.o[-1]))
    np.testing.assert_array_equal(np.asarray(sol.t), np.asarray(full.t)[::6])


def firing_summary(t, state):
    return {"firing": jnp.mean(1 - state.o), "vmax": jnp.max(state.v), "t": t}


def test_reduce_equals_post_hoc_reduction(lattice_run):
    net, model, s0, full = lattice_run
    sol = dr.simulate(model, s0, n_steps=600, record=dr.Record(every=4, fields=(), reduce=firing_summary))
    o, v = np.asarray(full.o)[::4], np.asarray(full.v)[::4]
    np.testing.assert_allclose(np.asarray(sol.reduced["firing"]), np.mean(1 - o, axis=1), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(np.asarray(sol.reduced["vmax"]), v.max(axis=1))
    np.testing.assert_array_equal(np.asarray(sol.reduced["t"]), np.asarray(sol.t))
    assert 0 < float(np.mean(sol.reduced["firing"])) < 0.5


def test_smooth_model_recording_controls():
    """ODESolve: record 0 = initial state, every k = every 1 subsampled, probes, reduce, t grid."""
    net = dr.chain(3, 4, eps=0.2, boundary="open")
    model = dr.SmoothRelaxation(net, 0.05)
    s0 = dr.init.pulses(net, 1)
    full = dr.simulate(model, s0, n_steps=60, record=dr.Record(every=1))
    sub = dr.simulate(model, s0, n_steps=60, record=dr.Record(every=4, which="probes", reduce=firing_summary))
    probes = np.asarray(net.rings.probes)
    np.testing.assert_array_equal(np.asarray(full.v[0]), np.asarray(s0.v))
    np.testing.assert_allclose(np.asarray(sub.t), np.arange(16) * 4 * 0.05, rtol=1e-14, atol=0)
    np.testing.assert_allclose(np.asarray(sub.v), np.asarray(full.v)[::4][:, probes], rtol=0, atol=1e-13)
    np.testing.assert_allclose(
        np.asarray(sub.reduced["firing"]), np.mean(1 - np.asarray(full.o)[::4], axis=1), rtol=0, atol=1e-13
    )
    assert int(full.status) == 0 and int(sub.status) == 0


def test_record_errors_name_the_field(lattice_run):
    net, model, s0, _ = lattice_run
    with pytest.raises(dr.DiffringError, match="record.every"):
        dr.simulate(model, s0, n_steps=600, record=dr.Record(every=7))
    with pytest.raises(dr.DiffringError, match="record.which"):
        dr.simulate(model, s0, n_steps=600, record=dr.Record(which=(0, net.n_neurons)))
    with pytest.raises(dr.DiffringError, match="record.which"):
        dr.Record(which="rings")
    with pytest.raises(dr.DiffringError, match="record.which"):
        dr.Record(which=())
    with pytest.raises(dr.DiffringError, match="record.fields"):
        dr.Record(fields=("o", "u"))


# --- status -----------------------------------------------------------------------------------


def test_nan_initial_state_flags_only_that_member():
    net = dr.lattice([3, 3], 6, eps=0.2)
    model = dr.DiscreteMap(net, 0.01)
    s0 = dr.init.uniform(net, jax.random.split(jax.random.key(1), 3))
    rec = dr.Record(every=10)
    clean = dr.simulate_batch(model, s0, n_steps=300, record=rec)
    bad = dr.State(s0.v.at[1, 7].set(jnp.nan), s0.o)
    sol = dr.simulate_batch(model, bad, n_steps=300, record=rec)
    assert dr.STATUS_NAMES[1] == "non-finite"
    np.testing.assert_array_equal(np.asarray(sol.status), [0, 1, 0])
    np.testing.assert_array_equal(np.asarray(clean.status), [0, 0, 0])
    for b in (0, 2):
        for name in ("o", "v", "R", "phase"):
            np.testing.assert_array_equal(np.asarray(getattr(sol, name)[b]), np.asarray(getattr(clean, name)[b]))


def test_nan_swept_parameter_flags_only_that_member():
    base = dr.DiscreteMap(dr.lattice([3, 3], 6, eps=0.1), 0.01)
    model, axes = dr.batched_model(base, lambda m: m.network.coupling.eps, jnp.asarray([0.2, jnp.nan, 0.05]))
    s0 = dr.init.uniform(base.network, jax.random.split(jax.random.key(2), 3))
    sol = dr.simulate_batch(model, s0, n_steps=200, record=dr.Record(every=10), model_axes=axes)
    np.testing.assert_array_equal(np.asarray(sol.status), [0, 1, 0])
    for b, eps in ((0, 0.2), (2, 0.05)):
        single = dr.simulate(
            dr.DiscreteMap(dr.lattice([3, 3], 6, eps=eps), 0.01), member(s0, b), n_steps=200, record=dr.Record(every=10)
        )
        np.testing.assert_array_equal(np.asarray(sol.v[b]), np.asarray(single.v))


def test_hard_trigger_event_budget_exceeded_is_a_solver_failure():
    net = dr.ring(6)
    s0 = dr.init.pulses(net, 1)
    ok = dr.simulate(dr.HardTrigger(net, 0.05), s0, n_steps=200, record=dr.Record(every=10))
    starved = dr.simulate(dr.HardTrigger(net, 0.05, max_events=1), s0, n_steps=200, record=dr.Record(every=10))
    assert int(ok.status) == 0
    assert int(starved.status) == 2 and dr.STATUS_NAMES[2] == "solver failure"


def test_ode_solve_status_max_steps_and_nan_member():
    net = dr.chain(3, 4, eps=0.2, boundary="open")
    model = dr.SmoothRelaxation(net, 0.05)
    s0 = dr.init.uniform(net, jax.random.split(jax.random.key(3), 3))
    rec = dr.Record(every=5)
    short = dr.simulate(model, member(s0, 0), n_steps=40, record=rec, method=dr.ODESolve(max_steps=10))
    assert int(short.status) == 2
    method = dr.ODESolve(max_steps=2000)  # a non-finite member spends the whole step budget
    clean = dr.simulate_batch(model, s0, n_steps=40, record=rec, method=method)
    bad = dr.State(s0.v, s0.o.at[2, 0].set(jnp.inf))
    sol = dr.simulate_batch(model, bad, n_steps=40, record=rec, method=method)
    np.testing.assert_array_equal(np.asarray(clean.status), [0, 0, 0])
    np.testing.assert_array_equal(np.asarray(sol.status), [0, 0, 1])
    for b in (0, 1):
        np.testing.assert_array_equal(np.asarray(sol.v[b]), np.asarray(clean.v[b]))
