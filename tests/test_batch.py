"""Batching: a batch of B runs is exactly the B single runs (every recorded field, final state,
tracker, status), for every model and batching route (vmap, lax.map chunks, parameter sweeps,
batched inputs); and seeds/keys make networks and trajectories reproducible."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffring as dr


def member(tree, b):
    return jax.tree.map(lambda a: a[b], tree)


def assert_tree_array_equal(single, batched_member):
    """Every leaf of the two pytrees is bit-for-bit equal (same structure, same shapes)."""
    ls, ts = jax.tree.flatten(single)
    lb, tb = jax.tree.flatten(batched_member)
    assert ts == tb
    for a, b in zip(ls, lb, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape
        assert np.array_equal(a, b), np.max(np.abs(a.astype(float) - b.astype(float)))


def batch_of_states(net, keys):
    return jax.vmap(lambda k: dr.init.uniform(net, k))(keys)


def check_batch_equals_singles(model, states, sol, **kw):
    B = states.v.shape[0]
    assert sol.status.shape == (B,)
    for b in range(B):
        single = dr.simulate(model, member(states, b), **kw)
        assert_tree_array_equal(single, member(sol, b))


REC = dr.Record(every=3, fields=("o", "v"), phases=True)


@pytest.fixture(scope="module")
def lattice_net():
    return dr.lattice([4, 4], 6, eps=0.2)


@pytest.fixture(scope="module")
def lattice_states(lattice_net):
    return batch_of_states(lattice_net, jax.random.split(jax.random.key(7), 5))


@pytest.mark.parametrize("fast", [True, False], ids=["lattice-fast-path", "sparse"])
def test_discrete_map_batch_equals_single_runs(fast, lattice_net, lattice_states):
    net = lattice_net if fast else dr.as_sparse(lattice_net)
    assert isinstance(net.coupling, dr.LatticeS0Coupling if fast else dr.SparseCoupling)
    model = dr.DiscreteMap(net, 0.01)
    states = member(lattice_states, slice(0, 3))
    sol = dr.simulate_batch(model, states, n_steps=300, record=REC)
    assert sol.o.shape == (3, 101, net.n_neurons)
    # The members really differ (otherwise equality would be vacuous).
    assert not np.array_equal(sol.o[0], sol.o[1])
    check_batch_equals_singles(model, states, sol, n_steps=300, record=REC)


@pytest.mark.parametrize("chunk_size", [2, 5])
def test_chunked_batch_equals_single_runs(chunk_size, lattice_net, lattice_states):
    """lax.map chunks, including B = 5 not a multiple of chunk_size = 2 (a remainder chunk)."""
    model = dr.DiscreteMap(lattice_net, 0.01)
    sol = dr.simulate_batch(model, lattice_states, n_steps=120, record=REC, chunk_size=chunk_size)
    check_batch_equals_singles(model, lattice_states, sol, n_steps=120, record=REC)


def test_hard_trigger_batch_equals_single_runs():
    net = dr.chain(3, 4, eps=0.2, boundary="open")
    model = dr.HardTrigger(net, 0.05)
    # One low neuron per ring (the published recipe without warm-up): consistent hard-trigger states.
    keys = jax.random.split(jax.random.key(3), 3)
    states = dr.init.published(net, keys, warmup_steps=0)
    sol = dr.simulate_batch(model, states, n_steps=60, record=REC, chunk_size=2)
    assert np.all(np.asarray(sol.status) == 0)
    check_batch_equals_singles(model, states, sol, n_steps=60, record=REC)


def test_smooth_relaxation_batch_equals_single_runs():
    """Adaptive diffrax solves: members take different step sequences; each still equals its single run."""
    net = dr.lattice([3, 3], 4, eps=0.2)
    model = dr.SmoothRelaxation(net, 0.05)
    states = batch_of_states(net, jax.random.split(jax.random.key(1), 3))
    rec = dr.Record(every=2)
    sol = dr.simulate_batch(model, states, n_steps=40, record=rec)
    steps = np.asarray(sol.stats["num_steps"])
    assert len(set(steps.tolist())) > 1  # genuinely different adaptive step sequences
    check_batch_equals_singles(model, states, sol, n_steps=40, record=rec)


def test_eps_sweep_equals_networks_built_with_each_eps(lattice_states):
    eps = [0.05, 0.2, 0.35]
    base = dr.DiscreteMap(dr.lattice([4, 4], 6, eps=0.1), 0.01)
    model, axes = dr.batched_model(base, lambda m: m.network.coupling.eps, jnp.asarray(eps))
    states = member(lattice_states, slice(0, 3))
    sol = dr.simulate_batch(model, states, n_steps=150, record=REC, model_axes=axes)
    for b, e in enumerate(eps):
        single_model = dr.DiscreteMap(dr.lattice([4, 4], 6, eps=e), 0.01)
        single = dr.simulate(single_model, member(states, b), n_steps=150, record=REC)
        assert_tree_array_equal(single, member(sol, b))
    # Same initial state, different eps: the sweep members genuinely differ.
    same = jax.tree.map(lambda a: jnp.broadcast_to(a[0], (3,) + a.shape[1:]), states)
    sol_same = dr.simulate_batch(model, same, n_steps=150, record=REC, model_axes=axes)
    assert not np.array_equal(sol_same.v[0], sol_same.v[2])


def test_batched_and_shared_inputs_equal_single_runs():
    net = dr.small_world(12, (2, 5), eps=0.1, p=0.3, n_in=3, input_weight=0.6, seed=4)
    model = dr.DiscreteMap(net, 0.01)
    assert isinstance(net.coupling, dr.RingCoupling)
    B, n_steps = 3, 120
    states = batch_of_states(net, jax.random.split(jax.random.key(2), B))
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.uniform(0.0, 1.0, size=(B, n_steps, 3)))
    sol = dr.simulate_batch(model, states, n_steps=n_steps, record=REC, inputs=x)
    for b in range(B):
        single = dr.simulate(model, member(states, b), n_steps=n_steps, record=REC, inputs=x[b])
        assert_tree_array_equal(single, member(sol, b))
    # Shared (n_steps, n_in) inputs drive every member.
    sol_shared = dr.simulate_batch(model, states, n_steps=n_steps, record=REC, inputs=x[0])
    single = dr.simulate(model, member(states, 2), n_steps=n_steps, record=REC, inputs=x[0])
    assert_tree_array_equal(single, member(sol_shared, 2))
    # The inputs matter: member 2 under its own input differs from member 2 under input 0.
    assert not np.array_equal(sol.v[2], sol_shared.v[2])


def test_same_seed_same_network_and_trajectory_different_seed_differs():
    a = dr.small_world(30, (2, 8), eps=0.05, p=0.3, seed=11)
    b = dr.small_world(30, (2, 8), eps=0.05, p=0.3, seed=11)
    c = dr.small_world(30, (2, 8), eps=0.05, p=0.3, seed=12)
    assert bool(eqx.tree_equal(a, b))
    sa = a.coupling.to_scipy()
    sc = c.coupling.to_scipy()
    assert sa.shape != sc.shape or (sa != sc).nnz > 0 or not np.array_equal(np.asarray(a.win), np.asarray(c.win))
    k = jax.random.key(5)
    s_a, s_b = dr.init.uniform(a, k), dr.init.uniform(b, k)
    ra = dr.simulate(dr.DiscreteMap(a), s_a, n_steps=240, record=REC)
    rb = dr.simulate(dr.DiscreteMap(b), s_b, n_steps=240, record=REC)
    assert_tree_array_equal(ra, rb)
    # Different initial keys on the same network give different trajectories.
    s_2 = dr.init.uniform(a, jax.random.key(6))
    r2 = dr.simulate(dr.DiscreteMap(a), s_2, n_steps=240, record=REC)
    assert not np.array_equal(ra.o, r2.o)


def test_batch_argument_errors(lattice_net, lattice_states):
    model = dr.DiscreteMap(lattice_net, 0.01)
    with pytest.raises(dr.DiffringError, match="model_axes"):
        m, axes = dr.batched_model(model, lambda m: m.network.coupling.eps, jnp.asarray([0.1, 0.2]))
        dr.simulate_batch(m, lattice_states, n_steps=10, model_axes=axes)
    with pytest.raises(dr.DiffringError, match="run.chunk_size"):
        dr.simulate_batch(model, lattice_states, n_steps=10, chunk_size=0)
    with pytest.raises(dr.DiffringError, match="init"):
        dr.simulate_batch(model, member(lattice_states, 0), n_steps=10)
