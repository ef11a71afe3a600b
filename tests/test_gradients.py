"""Gradients of trajectory losses (issue item 9), checked against independent answers.

- Smooth model (`SmoothRelaxation`) through `ODESolve` with fixed steps, both reverse-mode routes
  (diffrax's `RecursiveCheckpointAdjoint` and `ScanAdjoint`): central finite differences of the
  same discrete solve, for every parameter (coupling weights, the eps links, eps of an S0 lattice,
  theta_H, theta_L, tau, input weights Win with an input drive, and the initial state v0, o0).
- Discrete map with `SoftThreshold` (smooth forward): central finite differences, with and without
  `MapScan(checkpoint=True)`.
- Discrete map with `SigmoidSurrogate` (hard forward, surrogate backward): finite differences of the
  hard map are meaningless (its outputs are piecewise constant), so the JAX reverse-mode gradient
  is checked against a hand-written NumPy forward-mode (tangent) propagation of the same surrogate.
- Memory: the compiled reverse pass of long runs stays bounded (XLA's `memory_analysis`).
- Continuous hard model (`HardTrigger`), forward mode only: jax.jvp through the event times against
  central finite differences of the exact flow.

Losses weight the trajectory smoothly in time (mean v, and o at the probe neurons), parameters keep
the rings oscillating, and finite differences use relative steps h = 1e-6 and 5e-7 (Richardson
extrapolation) in float64.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffring as dr

H_FD = 1e-6


def _weights(n, rate):
    return jnp.cos(rate * jnp.arange(n, dtype=jnp.float64)) + 1.5


def _trajectory_loss(sol):
    """sum_t w(t) mean v(t) + sum_t w'(t) . o_probes(t): depends on the whole trajectory."""
    n_rec = sol.reduced.shape[0]
    w_o = _weights(n_rec, 0.07)[:, None] * jnp.linspace(0.5, 1.5, sol.o.shape[1], dtype=jnp.float64)[None, :]
    return jnp.sum(_weights(n_rec, 0.05) * sol.reduced) + jnp.sum(w_o * sol.o)


RECORD = dr.Record(every=2, which="probes", fields=("o",), phases=False, reduce=lambda t, s: jnp.mean(s.v))


def _make_loss(n_steps, method, inputs):
    def loss(params):
        model, s0 = params
        sol = dr.simulate(model, s0, n_steps=n_steps, record=RECORD, method=method, inputs=inputs)
        return _trajectory_loss(sol)

    return loss


def _fd_check(loss, params, checks, rtol, seed=0):
    """Compare grad . d with central differences D(h) = (L(p + h d) - L(p - h d)) / 2h, Richardson-
    extrapolated to (4 D(h/2) - D(h)) / 3, whose error is O(h^4) (sharp switches curve L strongly).

    `checks` maps a name to `where(params) -> leaf`, or to `(where, d)` with an explicit direction;
    by default d is a random normal direction of the leaf's shape scaled by the leaf's magnitude,
    so that h is a relative step. One compiled loss and one compiled gradient serve all checks.
    """
    f = eqx.filter_jit(loss)
    grads = eqx.filter_jit(eqx.filter_grad(loss))(params)
    rng = np.random.default_rng(seed)
    report = {}
    for name, check in checks.items():
        where, d = check if isinstance(check, tuple) else (check, None)
        leaf = where(params)
        if d is None:
            scale = max(float(jnp.max(jnp.abs(leaf))), 1e-3)
            d = jnp.asarray(rng.normal(size=leaf.shape) * scale, leaf.dtype)
        g = float(jnp.sum(where(grads) * d))

        def central(h, where=where, leaf=leaf, d=d):
            lp = f(eqx.tree_at(where, params, leaf + h * d))
            lm = f(eqx.tree_at(where, params, leaf - h * d))
            return float(lp - lm) / (2 * h)

        fd = (4 * central(H_FD / 2) - central(H_FD)) / 3  # Richardson: the h^2 error cancels
        report[name] = (g, fd)
    bad = {k: v for k, v in report.items() if not abs(v[0] - v[1]) <= rtol * abs(v[1])}
    assert not bad, f"gradient != finite differences: {bad} (all: {report})"
    return report, grads


def _small_world():
    # SparseCoupling: `_eps_links` reads its table (tests/test_coupling.py checks that RingCoupling,
    # the default, has the same gradients)
    return dr.small_world(6, (3, 5), eps=0.05, p=0.3, n_in=2, seed=1, dtype=jnp.float64, fast=False)


def _drive(n_steps):
    t = jnp.arange(n_steps, dtype=jnp.float64)[:, None]
    return 0.1 * jnp.sin(t * jnp.array([[0.31, 0.73]])) + 0.05


def _oscillating(sol_o, fires=2):
    """Every probe neuron fires anew (o falls through 0.5) at least `fires` times after record 0."""
    low = np.asarray(sol_o) < 0.5
    return bool(np.all(np.sum(~low[:-1] & low[1:], axis=0) >= fires))


SMOOTH_CHECKS = {
    "W": lambda p: p[0].network.coupling.weight,
    "theta_H": lambda p: p[0].network.theta_H,
    "theta_L": lambda p: p[0].network.theta_L,
    "tau": lambda p: p[0].network.tau,
    "Win": lambda p: p[0].network.win,
    "v0": lambda p: p[1].v,
    "o0": lambda p: p[1].o,
}


def _eps_links(network):
    """The small-world's eps links as a mask on the weight table: W_eps -> (1 + s) W_eps is the
    direction W * mask (into neuron 0 of a ring from another ring; ring synapses stay in-ring)."""
    weight = np.asarray(network.coupling.weight)
    index = np.asarray(network.coupling.index)
    sizes = np.asarray(network.rings.sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ring_of = np.repeat(np.arange(sizes.size), sizes)
    mask = np.zeros(weight.shape, bool)
    mask[starts] = ring_of[index[starts]] != ring_of[starts][:, None]
    mask &= weight != 0
    assert mask.sum() >= 6 and np.allclose(weight[mask], 0.05)
    return jnp.asarray(weight * mask)


# --- smooth model -------------------------------------------------------------------------------

SMOOTH_STEPS = 150


@pytest.fixture(scope="module")
def smooth_setup():
    net = _small_world()
    model = dr.SmoothRelaxation(net, dt=0.1, beta=50.0, eps_o=0.02)
    return model, dr.init.pulses(net), _drive(SMOOTH_STEPS)


FIXED = dict(stepsize_controller=diffrax.ConstantStepSize(), dt0=0.005)


@pytest.mark.parametrize(
    "method",
    [dr.ODESolve(**FIXED), dr.ODESolve(**FIXED, adjoint=dr.ScanAdjoint(segment=25))],
    ids=["RecursiveCheckpointAdjoint", "ScanAdjoint"],
)
def test_smooth_gradients_match_finite_differences(smooth_setup, method):
    model, s0, xs = smooth_setup
    sol = dr.simulate(model, s0, n_steps=SMOOTH_STEPS, record=RECORD, method=method, inputs=xs)
    assert int(sol.status) == 0 and _oscillating(sol.o)
    loss = _make_loss(SMOOTH_STEPS, method, xs)
    checks = dict(SMOOTH_CHECKS, eps_links=(SMOOTH_CHECKS["W"], _eps_links(model.network)))
    report, _ = _fd_check(loss, (model, s0), checks, rtol=1e-5)
    assert abs(report["eps_links"][0]) > 1e-2  # the eps links matter for this loss


def test_smooth_lattice_eps_gradient_and_routes_agree():
    """eps of a small periodic S0 lattice (the `LatticeS0Coupling` fast path), through diffrax; and
    without inputs `ScanAdjoint` differentiates the same discrete solve (same tableau, same steps),
    so its gradient equals the diffrax route's."""
    net = dr.lattice([3, 3], 4, eps=0.1, boundary="periodic", dtype=jnp.float64)
    model = dr.SmoothRelaxation(net, dt=0.1, beta=50.0, eps_o=0.02)
    members = np.asarray(net.rings.members)
    v, o = np.full(net.n_neurons, 0.9), np.ones(net.n_neurons)
    stagger = members[np.arange(members.shape[0]), np.arange(members.shape[0]) % 4]  # one pulse per ring
    v[stagger], o[stagger] = 0.1, 0.0
    s0 = dr.State(jnp.asarray(v), jnp.asarray(o))
    method = dr.ODESolve(**FIXED)
    n_steps = 160
    sol = dr.simulate(model, s0, n_steps=n_steps, record=RECORD, method=method)
    assert int(sol.status) == 0 and _oscillating(sol.o)
    checks = {"eps": lambda p: p[0].network.coupling.eps, "tau": lambda p: p[0].network.tau}
    report, grads = _fd_check(_make_loss(n_steps, method, None), (model, s0), checks, rtol=1e-5)
    assert abs(report["eps"][0]) > 1e-3
    scan = dr.ODESolve(**FIXED, adjoint=dr.ScanAdjoint(segment=20))
    grads_scan = eqx.filter_grad(_make_loss(n_steps, scan, None))((model, s0))
    leaves, leaves_scan = jax.tree.leaves(grads), jax.tree.leaves(grads_scan)
    assert len(leaves) == len(leaves_scan) >= 6
    for a, b in zip(leaves, leaves_scan, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-9, atol=1e-12)


# --- discrete map: soft threshold (smooth forward) -----------------------------------------------

MAP_STEPS = 160


@pytest.fixture(scope="module")
def map_setup():
    net = _small_world()
    return net, dr.init.pulses(net), _drive(MAP_STEPS)


def test_soft_map_gradients_match_finite_differences(map_setup):
    net, s0, xs = map_setup
    model = dr.DiscreteMap(net, dt=0.1, threshold=dr.SoftThreshold(beta=100.0))
    method = dr.MapScan()
    sol = dr.simulate(model, s0, n_steps=MAP_STEPS, record=RECORD, method=method, inputs=xs)
    assert _oscillating(sol.o, fires=1)  # the inputs make some rings irregular
    loss = _make_loss(MAP_STEPS, method, xs)
    checks = dict(SMOOTH_CHECKS, eps_links=(SMOOTH_CHECKS["W"], _eps_links(net)))
    _, grads = _fd_check(loss, (model, s0), checks, rtol=1e-6)
    # the rematerialised scan differentiates the same program
    ckpt = eqx.filter_grad(_make_loss(MAP_STEPS, dr.MapScan(checkpoint=True, segment=6), xs))((model, s0))
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ckpt), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-14)


# --- discrete map: straight-through surrogate ---------------------------------------------------


def _numpy_surrogate_tangent(net, s0, xs, dt, beta, n_steps, every, dparams):
    """Forward-mode (tangent) propagation of the surrogate map, written from the spec in NumPy.

    Forward: u = W o + Win x; v' = u + alpha (v - u), alpha = exp(-dt / tau); d = u - v';
    o' = 1 - H(d - theta(o)), theta(o) = o theta_H + (1 - o) theta_L (hard step H).
    Tangent: the same chain rule, with dH/dz replaced by the surrogate beta s (1 - s),
    s = sigmoid(beta z). Returns the loss and its directional derivative along `dparams`.
    """
    index = np.asarray(net.coupling.index)
    W = np.asarray(net.coupling.weight)
    Win = np.asarray(net.win)
    tau, tH, tL = (float(net.tau), float(net.theta_H), float(net.theta_L))
    probes = np.asarray(net.rings.probes)
    x = np.asarray(xs)
    v, o = np.asarray(s0.v).copy(), np.asarray(s0.o).copy()
    dW, dWin, dtau, dtH, dtL, dv, do = (dparams[k] for k in ("W", "Win", "tau", "tH", "tL", "v0", "o0"))
    alpha = np.exp(-dt / tau)
    dalpha = alpha * dt / tau**2 * dtau
    n_rec = n_steps // every + 1
    wv = 1.5 + np.cos(0.05 * np.arange(n_rec))
    wo = (1.5 + np.cos(0.07 * np.arange(n_rec)))[:, None] * np.linspace(0.5, 1.5, probes.size)[None, :]
    loss, dloss = 0.0, 0.0

    def record(r, v, o, dv, do):
        return wv[r] * v.mean() + wo[r] @ o[probes], wv[r] * dv.mean() + wo[r] @ do[probes]

    L, dL = record(0, v, o, dv, do)
    loss, dloss = loss + L, dloss + dL
    for t in range(n_steps):
        u = (W * o[index]).sum(1) + Win @ x[t]
        du = (dW * o[index]).sum(1) + (W * do[index]).sum(1) + dWin @ x[t]
        v_new = u + alpha * (v - u)
        dv_new = du + dalpha * (v - u) + alpha * (dv - du)
        d, dd = u - v_new, du - dv_new
        z = d - (o * tH + (1 - o) * tL)
        dz = dd - (do * (tH - tL) + o * dtH + (1 - o) * dtL)
        s = 1 / (1 + np.exp(-beta * z))
        o_new = np.where(z >= 0, 0.0, 1.0)
        do_new = -beta * s * (1 - s) * dz
        v, o, dv, do = v_new, o_new, dv_new, do_new
        if (t + 1) % every == 0:
            L, dL = record((t + 1) // every, v, o, dv, do)
            loss, dloss = loss + L, dloss + dL
    return loss, dloss


def test_surrogate_map_gradient_matches_numpy_tangent_propagation(map_setup):
    """Straight-through surrogate: JAX reverse mode == an independent NumPy forward-mode pass."""
    net, s0, xs = map_setup
    beta = 10.0
    model = dr.DiscreteMap(net, dt=0.1, threshold=dr.SigmoidSurrogate(beta=beta))
    hard = dr.DiscreteMap(net, dt=0.1)
    method = dr.MapScan()
    sol = dr.simulate(model, s0, n_steps=MAP_STEPS, record=RECORD, method=method, inputs=xs)
    sol_hard = dr.simulate(hard, s0, n_steps=MAP_STEPS, record=RECORD, method=method, inputs=xs)
    assert _oscillating(sol.o, fires=1)  # the inputs make some rings irregular
    # hard forward: the trajectory is the exact discrete map's, bit for bit
    np.testing.assert_array_equal(np.asarray(sol.o), np.asarray(sol_hard.o))
    np.testing.assert_array_equal(np.asarray(sol.reduced), np.asarray(sol_hard.reduced))

    loss = _make_loss(MAP_STEPS, method, xs)
    grads = eqx.filter_jit(eqx.filter_grad(loss))((model, s0))
    g_hard = eqx.filter_grad(_make_loss(MAP_STEPS, method, xs))((hard, s0))
    # why a surrogate is needed: through the hard step the thresholds have no gradient at all
    assert float(g_hard[0].network.theta_H) == 0.0 and float(g_hard[0].network.theta_L) == 0.0

    rng = np.random.default_rng(1)
    zeros = dict(W=np.zeros(net.coupling.weight.shape), Win=np.zeros(net.win.shape), tau=0.0, tH=0.0, tL=0.0,
                 v0=np.zeros(net.n_neurons), o0=np.zeros(net.n_neurons))
    net_g, s0_g = grads[0].network, grads[1]
    directions = {
        "W": ("W", rng.normal(size=zeros["W"].shape) * (np.asarray(net.coupling.weight) != 0), net_g.coupling.weight),
        "eps_links": ("W", np.asarray(_eps_links(net)), net_g.coupling.weight),
        "Win": ("Win", rng.normal(size=zeros["Win"].shape), net_g.win),
        "tau": ("tau", 1.0, net_g.tau),
        "theta_H": ("tH", 1.0, net_g.theta_H),
        "theta_L": ("tL", 1.0, net_g.theta_L),
        "v0": ("v0", rng.normal(size=net.n_neurons), s0_g.v),
        "o0": ("o0", rng.normal(size=net.n_neurons), s0_g.o),
    }
    for name, (key, d, g) in directions.items():
        L_np, dL_np = _numpy_surrogate_tangent(net, s0, xs, 0.1, beta, MAP_STEPS, RECORD.every, dict(zeros, **{key: d}))
        dL_jax = float(np.sum(np.asarray(g) * d))
        assert L_np == pytest.approx(float(loss((model, s0))), rel=1e-12)
        assert abs(dL_np) > 1e-6, name  # a nontrivial surrogate gradient
        assert dL_jax == pytest.approx(dL_np, rel=1e-9, abs=1e-12), name


# --- memory of long reverse passes ---------------------------------------------------------------


def _grad_temp_bytes(model, s0, n_steps, method):
    rec = dr.Record(every=10, fields=(), phases=False, reduce=lambda t, s: jnp.mean(s.v) + jnp.mean(s.o))

    def loss(params):
        sol = dr.simulate(params[0], params[1], n_steps=n_steps, record=rec, method=method)
        return jnp.sum(_weights(sol.reduced.shape[0], 0.01) * sol.reduced)

    compiled = eqx.filter_jit(eqx.filter_grad(loss)).lower((model, s0)).compile()
    return compiled.compiled.memory_analysis().temp_size_in_bytes


def test_long_surrogate_scan_has_bounded_reverse_memory(map_setup):
    """XLA's buffer assignment for the compiled gradient: with `checkpoint=True` the reverse pass of a
    10x longer run needs < 2x the memory; without it, ~10x (so the measurement can see growth)."""
    net, s0, _ = map_setup
    model = dr.DiscreteMap(net, dt=0.01, threshold=dr.SigmoidSurrogate())
    plain = [_grad_temp_bytes(model, s0, n, dr.MapScan()) for n in (2_000, 20_000)]
    ckpt = [_grad_temp_bytes(model, s0, n, dr.MapScan(checkpoint=True, segment=50)) for n in (2_000, 20_000)]
    assert plain[1] > 5 * plain[0]
    assert ckpt[1] < 2 * ckpt[0]
    assert ckpt[1] < plain[1] / 5


def test_scan_adjoint_rejects_what_it_cannot_do():
    """ScanAdjoint needs fixed steps dividing dt and an explicit Runge-Kutta tableau."""
    net = dr.ring(4, dtype=jnp.float64)
    model, s0 = dr.SmoothRelaxation(net, dt=0.1), dr.init.pulses(net)
    fixed = diffrax.ConstantStepSize()
    bad = [
        (dr.ODESolve(adjoint=dr.ScanAdjoint()), "method.stepsize_controller"),  # adaptive
        (dr.ODESolve(stepsize_controller=fixed, dt0=0.03, adjoint=dr.ScanAdjoint()), "method.dt0"),
        (dr.ODESolve(solver=diffrax.Kvaerno3(), stepsize_controller=fixed, dt0=0.01, adjoint=dr.ScanAdjoint()),
         "method.solver"),
    ]
    for method, field in bad:
        with pytest.raises(dr.DiffringError, match=field):
            dr.simulate(model, s0, n_steps=10, method=method)
    with pytest.raises(dr.DiffringError, match="method.checkpoints"):
        dr.ODESolve(checkpoints=10, adjoint=diffrax.RecursiveCheckpointAdjoint())


# --- hard trigger: forward mode -------------------------------------------------------------------


HARD_CASES = {
    # generic: random phases on a coupled lattice, no two releases at the same instant
    "lattice": (lambda: dr.lattice([3, 3], 5, scheme="S0", eps=0.15, boundary="periodic", dtype=jnp.float64),
                lambda net: dr.init.random_phase(net, jax.random.key(3))),
    # symmetric k-pulse orbits: the k pulses release at the same instant (ties in the event loop)
    "ring 6, 2 pulses": (lambda: dr.ring(6, dtype=jnp.float64), lambda net: dr.init.pulses(net, k=2)),
    "ring 12, 3 pulses": (lambda: dr.ring(12, dtype=jnp.float64), lambda net: dr.init.pulses(net, k=3)),
}


@pytest.mark.parametrize("case", HARD_CASES)
def test_hard_trigger_forward_mode_matches_finite_differences(case):
    """`HardTrigger` is differentiable in forward mode through its event times: jax.jvp of the state
    after many events equals central differences of the exact event-driven flow, for theta_L, tau,
    eps and the initial v, also where several releases fall at the same instant (the tangent rule
    releases them one per event, so each keeps its own time tangent; a random v0 direction splits
    the tie).
    Reverse mode is not available (its event loop is a while loop) and raises."""
    make_net, make_state = HARD_CASES[case]
    net = make_net()
    s0 = make_state(net)
    n_steps, dt = 1500, 0.01  # t = 15: every probe fires twice or more (T_1(5) = 6.4; T_1(3) = 4.0, T_1(4) = 5.2)

    def final(params):
        network, v0 = params
        sol = dr.simulate(dr.HardTrigger(network, dt=dt), dr.State(v0, s0.o), n_steps=n_steps,
                          record=dr.Record(every=n_steps, which="all", fields=("v", "o"), phases=False))
        return sol.v[-1], sol.o[-1]

    f = jax.jit(final)
    params = (net, s0.v)
    fires = np.asarray(dr.simulate(dr.HardTrigger(net, dt=dt), s0, n_steps=n_steps,
                                   record=dr.Record(every=1, which="probes", fields=("o",), phases=False)).o)
    assert np.all(np.sum((fires[:-1] >= 0.5) & (fires[1:] < 0.5), axis=0) >= 2)  # every probe fired twice
    rng = np.random.default_rng(0)
    checks = {  # not theta_H: here every fire is a predecessor's release, whose input edge lifts d
        # past theta_H at once, so nothing depends on it
        "theta_L": lambda p: p[0].theta_L,
        "tau": lambda p: p[0].tau,
        "v0": lambda p: p[1],
    }
    if case == "lattice":
        checks["eps"] = lambda p: p[0].coupling.eps
    for name, where in checks.items():
        leaf = where(params)
        d = jnp.asarray(rng.normal(size=jnp.shape(leaf)) * 0.1 * np.max(np.abs(leaf)), jnp.float64)
        _, (tv, to) = jax.jvp(lambda x, where=where: f(eqx.tree_at(where, params, x)), (leaf,), (d,))

        def central(h, where=where, leaf=leaf, d=d):
            plus, minus = f(eqx.tree_at(where, params, leaf + h * d)), f(eqx.tree_at(where, params, leaf - h * d))
            return (plus[0] - minus[0]) / (2 * h)

        fd = (4 * central(H_FD / 2) - central(H_FD)) / 3
        assert np.all(np.asarray(to) == 0), name  # outputs are piecewise constant
        scale = float(jnp.max(jnp.abs(fd)))
        assert scale > 1e-2, (name, scale)
        np.testing.assert_allclose(tv, fd, rtol=0, atol=1e-6 * max(scale, 1.0), err_msg=name)
    with pytest.raises(ValueError):  # JAX: reverse mode does not run through while loops
        jax.grad(lambda v0: f((net, v0))[0].sum())(s0.v)
