"""The discrete map (spec 1.1) against a plain NumPy loop of the spec's equations, in float64.

Acceptance: outputs identical at every step and capacitor voltages within 1e-12 over >= 10,000
steps, on a seeded small-world reservoir with 8-channel inputs, an S1 chain, an S2 lattice and a
network loaded from files; and the S0 lattice fast path equals the sparse path and the NumPy loop.
"""

import jax
import numpy as np
import pytest
import scipy.sparse as sp
from _reference import numpy_discrete_map

import diffring

N_STEPS = 10_000
DT = 0.01
RECORD = diffring.Record(every=1, fields=("o", "v"), phases=False)


def _run_both(net, state, n_steps, inputs=None, tau=1.0, theta_H=0.49, theta_L=0.2):
    sol = diffring.simulate(diffring.DiscreteMap(net, DT), state, n_steps=n_steps, record=RECORD, inputs=inputs)
    assert int(sol.status) == 0
    o_ref, v_ref = numpy_discrete_map(
        net.coupling.to_scipy(),
        None if net.win is None else np.asarray(net.win),
        None if inputs is None else np.asarray(inputs),
        np.asarray(state.v),
        np.asarray(state.o),
        n_steps,
        DT,
        tau,
        theta_H,
        theta_L,
    )
    return np.asarray(sol.o), np.asarray(sol.v), o_ref, v_ref


def _assert_agree(o, v, o_ref, v_ref, min_switches):
    assert o.shape == o_ref.shape and v.shape == v_ref.shape
    mismatch = np.argwhere(o != o_ref)
    assert mismatch.size == 0, f"first output mismatch at (step, neuron) = {tuple(mismatch[0])}"
    np.testing.assert_array_less(np.abs(v - v_ref), 1e-12)
    switches = np.abs(np.diff(o_ref, axis=0)).sum(axis=0)
    # Not a trivial comparison: outputs switch many times, and the activity lasts to the end.
    assert switches.sum() >= min_switches, switches.sum()
    assert np.abs(np.diff(o_ref[-N_STEPS // 10 :], axis=0)).sum() > 0


def test_small_world_with_inputs():
    net = diffring.small_world(60, (2, 8), eps=0.05, p=0.1, n_in=8, input_weight=1.0, seed=7)
    assert net.n_inputs == 8
    state = diffring.init.random_phase(net, jax.random.key(3), DT)
    rng = np.random.default_rng(11)
    # Random 8-channel drive, each value held for 9 steps (as in the reservoir paper's windows).
    held = 0.3 * rng.random((N_STEPS // 9 + 1, 8))
    x = np.repeat(held, 9, axis=0)[:N_STEPS]
    o, v, o_ref, v_ref = _run_both(net, state, N_STEPS, inputs=x)
    _assert_agree(o, v, o_ref, v_ref, min_switches=20 * net.n_rings)
    # The inputs matter: without them the trajectory is different.
    o_free, _ = numpy_discrete_map(
        net.coupling.to_scipy(), None, None, np.asarray(state.v), np.asarray(state.o), N_STEPS, DT, 1.0, 0.49, 0.2
    )
    assert np.any(o_free != o_ref)


def test_small_world_split_table_with_inputs_and_batch():
    """The benchmark's reservoir (200 rings, seed 0), whose `RingCoupling` splits the heads' table
    into two in-degree groups: the NumPy loop over 10,000 steps with 8-channel inputs, and a batch of
    two input sequences equal to its single runs bit for bit."""
    net = diffring.small_world(200, (2, 8), eps=0.05, p=0.1, seed=0)
    c = net.coupling
    assert c.split is not None and 0 < c.split < c.rows.shape[0] and c.k1 < c.index.shape[1] and c.head0
    state = diffring.init.random_phase(net, jax.random.key(0), DT)
    rng = np.random.default_rng(1)
    x = np.repeat(0.5 * rng.random((2, N_STEPS // 9 + 1, 8)), 9, axis=1)[:, :N_STEPS]
    o, v, o_ref, v_ref = _run_both(net, state, N_STEPS, inputs=x[0])
    _assert_agree(o, v, o_ref, v_ref, min_switches=20 * net.n_rings)
    model = diffring.DiscreteMap(net, DT)
    states = jax.tree.map(lambda a: np.stack([a, a[::-1]]), state)
    rec = diffring.Record(every=100, fields=("o", "v"), phases=False)
    batch = diffring.simulate_batch(model, states, n_steps=2000, record=rec, inputs=x[:, :2000])
    for b in range(2):
        single = diffring.simulate(model, jax.tree.map(lambda a, b=b: a[b], states), n_steps=2000, record=rec,
                                   inputs=x[b, :2000])
        np.testing.assert_array_equal(np.asarray(batch.o[b]), np.asarray(single.o))
        np.testing.assert_array_equal(np.asarray(batch.v[b]), np.asarray(single.v))
    assert not np.array_equal(np.asarray(batch.o[0]), np.asarray(batch.o[1]))


def test_s1_chain():
    net = diffring.chain(10, 6, scheme="S1", shared=1, boundary="periodic")
    state = diffring.init.random_phase(net, jax.random.key(5), DT)
    o, v, o_ref, v_ref = _run_both(net, state, N_STEPS)
    _assert_agree(o, v, o_ref, v_ref, min_switches=1000)


def test_s2_lattice():
    net = diffring.lattice([4, 4], 4, scheme="S2", boundary="periodic")
    state = diffring.init.random_phase(net, jax.random.key(2), DT)
    o, v, o_ref, v_ref = _run_both(net, state, N_STEPS)
    _assert_agree(o, v, o_ref, v_ref, min_switches=500)


def test_network_from_files(tmp_path):
    """General graph from files, with per-neuron tau and thresholds and 3 input channels."""
    rng = np.random.default_rng(4)
    sizes = rng.integers(3, 8, size=25)
    n = int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    post, pre, w = [], [], []
    for s0, s in zip(starts, sizes, strict=True):
        for k in range(s):
            post.append(s0 + k)
            pre.append(s0 + (k - 1) % s)
            w.append(1.0)
    for _ in range(60):  # random inter-ring links of random positive weight
        i, j = rng.integers(n, size=2)
        if i != j:
            post.append(i)
            pre.append(j)
            w.append(rng.uniform(0.05, 0.3))
    W = sp.csr_matrix((w, (post, pre)), shape=(n, n))
    Win = np.where(rng.random((n, 3)) < 0.3, rng.uniform(0.1, 0.5, (n, 3)), 0.0)
    sp.save_npz(tmp_path / "W.npz", W)
    np.save(tmp_path / "Win.npy", Win)
    tau = rng.uniform(0.8, 1.25, n)
    theta_H = rng.uniform(0.45, 0.55, n)
    theta_L = rng.uniform(0.15, 0.25, n)
    net = diffring.from_files(
        str(tmp_path / "W.npz"),
        [int(s) for s in sizes],
        Win=str(tmp_path / "Win.npy"),
        tau=tau,
        theta_H=theta_H,
        theta_L=theta_L,
    )
    np.testing.assert_array_equal(net.coupling.to_scipy().toarray(), W.toarray())
    state = diffring.init.pulses(net, 1)
    x = 0.4 * rng.random((N_STEPS, 3))
    o, v, o_ref, v_ref = _run_both(net, state, N_STEPS, inputs=x, tau=tau, theta_H=theta_H, theta_L=theta_L)
    _assert_agree(o, v, o_ref, v_ref, min_switches=20 * len(sizes))


@pytest.mark.parametrize(
    "shape, boundary",
    [([12], "periodic"), ([12], "open"), ([5, 6], "periodic"), ([4, 5], "open")],
)
def test_s0_fast_path_equals_sparse_and_numpy(shape, boundary):
    n_steps = 4000
    net = diffring.lattice(shape, 6, scheme="S0", eps=0.2, boundary=boundary, r_in=2, s_out=4)
    assert isinstance(net.coupling, diffring.LatticeS0Coupling)
    sparse = diffring.as_sparse(net)
    assert isinstance(sparse.coupling, diffring.SparseCoupling)
    state = diffring.init.random_phase(net, jax.random.key(9), DT)
    o, v, o_ref, v_ref = _run_both(net, state, n_steps)
    _assert_agree(o, v, o_ref, v_ref, min_switches=10 * net.n_rings)
    sol = diffring.simulate(diffring.DiscreteMap(sparse, DT), state, n_steps=n_steps, record=RECORD)
    np.testing.assert_array_equal(np.asarray(sol.o), o)
    np.testing.assert_array_less(np.abs(np.asarray(sol.v) - v), 1e-12)
