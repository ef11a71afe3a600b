"""Ring phases and the Kuramoto order parameter R(t): the causal on-the-fly tracker against an
independent NumPy computation from a recorded probe raster, and R in the two limits that are known
exactly (identical uncoupled rings: R = 1; independent uniform phases: n R^2 ~ Exp(1))."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffring as dr

TWO_PI = 2 * np.pi


def numpy_phases(t, o_probe):
    """Post-hoc causal phases from a probe raster o_probe (n_records, n_rings) sampled at times t.

    A fire is a fall of the probe output (>= 0.5 before, < 0.5 now), timed at the later sample. At
    record j with fires t_1 < ... < t_n so far (n >= 2): theta = 2 pi (t_j - t_n) / (t_n - t_{n-1})
    mod 2 pi. Rings with fewer than two fires are invalid. Returns theta, valid, R."""
    t = np.asarray(t)
    o = np.asarray(o_probe)
    n_rec, n_rings = o.shape
    theta = np.zeros((n_rec, n_rings))
    valid = np.zeros((n_rec, n_rings), bool)
    for r in range(n_rings):
        f = np.flatnonzero((o[:-1, r] >= 0.5) & (o[1:, r] < 0.5)) + 1
        n_fired = np.searchsorted(f, np.arange(n_rec), side="right")
        ok = n_fired >= 2
        tn = t[f[np.maximum(n_fired - 1, 0)]] if f.size else np.zeros(n_rec)
        tp = t[f[np.maximum(n_fired - 2, 0)]] if f.size else np.zeros(n_rec)
        frac = np.where(ok, (t - tn) / np.where(ok, tn - tp, 1.0), 0.0)
        theta[:, r] = np.where(ok, TWO_PI * np.mod(frac, 1.0), 0.0)
        valid[:, r] = ok
    z = np.where(valid, np.exp(1j * theta), 0)
    R = np.abs(z.sum(1)) / np.maximum(valid.sum(1), 1)
    return theta, valid, R


def assert_phases_close(theta, theta_ref, valid, atol=1e-9):
    d = np.angle(np.exp(1j * (np.asarray(theta) - theta_ref)))  # wrapped difference
    assert np.max(np.abs(np.where(valid, d, 0.0))) < atol


CASES = {
    "discrete-lattice": lambda: (dr.DiscreteMap(dr.lattice([4, 4], 6, eps=0.2), 0.01), 3000),
    "discrete-smallworld": lambda: (dr.DiscreteMap(dr.small_world(25, (2, 7), eps=0.1, p=0.3, seed=2), 0.01), 3000),
    "hard-trigger": lambda: (dr.HardTrigger(dr.chain(4, 5, eps=0.2, boundary="open"), 0.02), 1500),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tracker_equals_numpy_post_hoc_every_1_and_every_k(case):
    model, n_steps = CASES[case]()
    net = model.network
    s0 = dr.init.random_phase(net, jax.random.key(1), 0.01)
    full = dr.simulate(model, s0, n_steps=n_steps, record=dr.Record(every=1, which="probes", fields=("o",)))
    assert int(full.status) == 0
    theta, valid, R = numpy_phases(full.t, full.o)
    # (A coupled ring can lose its pulse, so not every ring need fire twice; most do.)
    assert valid[-1].mean() > 0.8 and not valid[0].any()
    np.testing.assert_array_equal(np.asarray(full.phase_valid), valid)
    assert_phases_close(full.phase, theta, valid)
    np.testing.assert_allclose(np.asarray(full.R), R, rtol=0, atol=1e-12)
    # Recording every k: the tracker still sees every step, so records equal the every-1 values.
    k = 10
    sub = dr.simulate(model, s0, n_steps=n_steps, record=dr.Record(every=k, fields=()))
    np.testing.assert_array_equal(np.asarray(sub.phase_valid), valid[::k])
    assert_phases_close(sub.phase, theta[::k], valid[::k])
    np.testing.assert_allclose(np.asarray(sub.R), R[::k], rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["lattice-packed-float64", "rings-packed-float32", "rings-plain-float64"])
def test_tracker_fire_times_and_counts_equal_numpy_for_any_every(case):
    """The stepped loop's tracker (several fires per record block at dt = 0.3): its fire times and
    counts equal the NumPy ones from the every-step raster exactly, and so do its phases, whatever
    `every`, on the sign-packed carry (a lattice's probe row, rings' gather) and the plain one."""
    kind, carry, dtype = case.split("-")
    if kind == "lattice":
        net = dr.lattice([3, 3], 3, eps=0.2, dtype=dtype)
    else:
        net = dr.rings([2, 3, 4, 5, 6, 7], dtype=dtype)
    model = dr.DiscreteMap(net, 0.3)
    s0 = dr.init.random_phase(net, jax.random.key(1), 0.01)
    method = dr.MapScan(pack="auto" if carry == "packed" else False)
    full = dr.simulate(model, s0, n_steps=600, record=dr.Record(every=1, which="probes", fields=("o",)),
                       method=method)
    t, o = np.asarray(full.t), np.asarray(full.o)
    theta, valid, _ = numpy_phases(t, o)
    for every in (5, 100, 131):
        n = (600 // every) * every
        sol = dr.simulate(model, s0, n_steps=n, record=dr.Record(every=every, fields=()), method=method)
        for r in range(net.n_rings):
            f = np.flatnonzero((o[:n, r] >= 0.5) & (o[1 : n + 1, r] < 0.5)) + 1
            assert int(sol.tracker.count[r]) == f.size
            assert sol.tracker.last[r] == (t[f[-1]] if f.size else 0)
            assert sol.tracker.prev[r] == (t[f[-2]] if f.size > 1 else 0)  # both start at t0
        rows = slice(0, n + 1, every)
        np.testing.assert_array_equal(np.asarray(sol.phase_valid), valid[rows])
        assert_phases_close(sol.phase, theta[rows], valid[rows], atol=1e-9 if dtype == "float64" else 1e-4)
    fell = (o[:-1] >= 0.5) & (o[1:] < 0.5)
    assert fell.sum() > 100 and min(np.diff(np.flatnonzero(f)).min() for f in fell.T if f.sum() > 1) < 16


def test_ode_solve_tracker_equals_numpy_on_its_samples():
    """The smooth model's tracker registers fires on the recorded samples (every * dt)."""
    net = dr.chain(3, 4, eps=0.2, boundary="open")
    model = dr.SmoothRelaxation(net, 0.02)
    s0 = dr.init.random_phase(net, jax.random.key(2), 0.01)
    for every in (1, 4):
        sol = dr.simulate(model, s0, n_steps=800, record=dr.Record(every=every, which="probes", fields=("o",)))
        assert int(sol.status) == 0
        theta, valid, R = numpy_phases(sol.t, sol.o)
        assert valid[-1].all()
        np.testing.assert_array_equal(np.asarray(sol.phase_valid), valid)
        assert_phases_close(sol.phase, theta, valid)
        np.testing.assert_allclose(np.asarray(sol.R), R, rtol=0, atol=1e-12)


def test_identical_uncoupled_rings_have_R_one():
    net = dr.rings([6] * 12)
    sol = dr.simulate(
        dr.DiscreteMap(net, 0.01),
        dr.init.pulses(net, 1),
        n_steps=2500,
        record=dr.Record(every=5, which="probes", fields=("o",)),
    )
    valid = np.asarray(sol.phase_valid)
    ready = valid.all(axis=1)
    assert ready[-1] and not ready[0]
    # All rings become valid together (identical), and from then on R = 1 exactly up to rounding.
    assert np.array_equal(valid.any(axis=1), ready)
    np.testing.assert_allclose(np.asarray(sol.R)[ready], 1.0, rtol=0, atol=1e-12)
    assert np.all(np.asarray(sol.R)[~ready] == 0.0)


def test_independent_random_phases_give_R_of_order_one_over_sqrt_n():
    """n uncoupled rings at independent uniform phases: n R^2 is Exp(1) distributed (mean 1); the
    phases of identical uncoupled rings keep their differences, so R is constant in time."""
    n = 300
    net = dr.rings([6] * n)
    keys = jax.random.split(jax.random.key(3), 8)
    s0 = dr.init.random_phase(net, keys, 0.01)
    sol = dr.simulate_batch(dr.DiscreteMap(net, 0.01), s0, n_steps=2400, record=dr.Record(every=40, fields=()))
    ready = np.asarray(sol.phase_valid).all(axis=2)
    assert ready[:, -1].all()
    R = np.asarray(sol.R)
    Rlate = R[:, -10:]
    np.testing.assert_allclose(Rlate, Rlate[:, :1] * np.ones((1, 10)), rtol=0, atol=1e-9)
    nR2 = n * Rlate[:, -1] ** 2
    assert 0.3 < nR2.mean() < 2.5, nR2
    assert np.all(Rlate[:, -1] < 4 / np.sqrt(n))


def test_order_parameter_against_numpy(rng):
    theta = rng.uniform(0, TWO_PI, size=(3, 5, 40))
    valid = rng.random((3, 5, 40)) < 0.6
    valid[0, 0] = False
    R = dr.order_parameter(jnp.asarray(theta), jnp.asarray(valid))
    z = np.where(valid, np.exp(1j * theta), 0)
    ref = np.abs(z.sum(-1)) / np.maximum(valid.sum(-1), 1)
    np.testing.assert_allclose(np.asarray(R), ref, rtol=0, atol=1e-13)
    assert float(R[0, 0]) == 0.0
    # No mask: all rings count; identical phases give exactly R = 1.
    np.testing.assert_allclose(np.asarray(dr.order_parameter(jnp.full((7,), 1.3))), 1.0, atol=1e-15)


def test_run_R_is_order_parameter_of_its_phases_bit_for_bit():
    """A run's R(t) comes from the record's shared cos/sin buffers (`phase_unit`), the lattice
    observables' "R" too: both equal the plain `order_parameter` of the recorded phases bit for bit
    (400 rings: not a whole number of 64-element chunks), single and batched, and NumPy to 1e-13."""
    net = dr.lattice([20, 20], 6, eps=0.2, dtype="float64")
    model = dr.DiscreteMap(net, 0.01)
    rec = dr.Record(every=50, which="probes", fields=(), observe=dr.lattice_observables(net, domains=False))
    states = dr.init.random_phase(net, jax.random.split(jax.random.key(2), 2), 0.01)
    batch = dr.simulate_batch(model, states, n_steps=1500, record=rec)
    one = dr.simulate(model, jax.tree.map(lambda a: a[1], states), n_steps=1500, record=rec)
    for sol in (one, jax.tree.map(lambda a: a[0], batch), jax.tree.map(lambda a: a[1], batch)):
        theta, valid = np.asarray(sol.phase), np.asarray(sol.phase_valid)
        assert valid[-1].mean() > 0.5
        plain = np.asarray(jax.jit(dr.order_parameter)(jnp.asarray(theta), jnp.asarray(valid)))
        np.testing.assert_array_equal(np.asarray(sol.R), plain)
        np.testing.assert_array_equal(np.asarray(sol.observed["R"]), plain)
        ref = np.abs(np.where(valid, np.exp(1j * theta), 0).sum(-1)) / np.maximum(valid.sum(-1), 1)
        np.testing.assert_allclose(plain, ref, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(np.asarray(batch.R[1]), np.asarray(one.R))


def test_segmented_run_continues_the_tracker():
    """Running in two segments (passing state, tracker and t0 on) equals one run."""
    net = dr.lattice([3, 3], 6, eps=0.2)
    model = dr.DiscreteMap(net, 0.01)
    s0 = dr.init.random_phase(net, jax.random.key(4), 0.01)
    rec = dr.Record(every=20, fields=("o",))
    whole = dr.simulate(model, s0, n_steps=2000, record=rec)
    a = dr.simulate(model, s0, n_steps=1000, record=rec)
    b = dr.simulate(model, a.state, n_steps=1000, record=rec, t0=a.t[-1], tracker=a.tracker)
    np.testing.assert_array_equal(np.asarray(b.o), np.asarray(whole.o)[50:])
    np.testing.assert_allclose(np.asarray(b.t), np.asarray(whole.t)[50:], rtol=1e-14)
    np.testing.assert_array_equal(np.asarray(b.phase_valid), np.asarray(whole.phase_valid)[50:])
    assert_phases_close(b.phase, np.asarray(whole.phase)[50:], np.asarray(whole.phase_valid)[50:], atol=1e-9)


def test_order_parameter_batch_equals_single_members_bit_for_bit():
    # jnp.sum over a batched array may add in another order than over one member; R must not.
    from diffring._phases import pairwise_sum

    rng = np.random.default_rng(1)
    for n in (1, 3, 576, 1000):
        theta = jnp.asarray(rng.uniform(0, 2 * np.pi, (8, n)))
        valid = jnp.asarray(rng.uniform(size=(8, n)) < 0.8)
        batched = np.asarray(jax.jit(jax.vmap(dr.order_parameter))(theta, valid))
        mapped = np.asarray(jax.lax.map(lambda a: dr.order_parameter(*a), (theta, valid), batch_size=3))
        single = np.array([float(jax.jit(dr.order_parameter)(theta[i], valid[i])) for i in range(8)])
        np.testing.assert_array_equal(batched, single)
        np.testing.assert_array_equal(mapped, single)
        z = np.where(np.asarray(valid), np.exp(1j * np.asarray(theta)), 0).sum(1)
        np.testing.assert_allclose(single, np.abs(z) / np.maximum(np.asarray(valid).sum(1), 1), atol=1e-14)
        x = rng.normal(size=(2, n))
        np.testing.assert_allclose(np.asarray(pairwise_sum(jnp.asarray(x))), x.sum(1), rtol=1e-13, atol=1e-13)

