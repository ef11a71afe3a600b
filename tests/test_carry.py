"""MapScan's sign-packed carry: exact equality with the plain carry, and when it may be used.

The plain carry is itself checked against a NumPy loop of the spec's equations
(tests/test_discrete_reference.py), so equality here ties the packed path to that reference.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import numpy_discrete_map

import diffring as dr
from diffring._simulate import SignPacked, _run, _sign_packable, _tracker0


def _same(a, b):
    for f in ("o", "v", "phase", "phase_valid", "R"):
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None) == (y is None), f
        if x is not None:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f)
    np.testing.assert_array_equal(np.asarray(a.state.v), np.asarray(b.state.v))
    np.testing.assert_array_equal(np.asarray(a.state.o), np.asarray(b.state.o))
    np.testing.assert_array_equal(np.asarray(a.status), np.asarray(b.status))
    for name in ("last", "prev", "o_prev", "count"):
        np.testing.assert_array_equal(np.asarray(getattr(a.tracker, name)), np.asarray(getattr(b.tracker, name)))


@pytest.mark.parametrize("boundary", ["periodic", "open"])
def test_packed_lattice_equals_plain(boundary):
    net = dr.lattice((6, 5), ring_size=5, scheme="S0", eps=0.2, boundary=boundary)
    model = dr.DiscreteMap(net, dt=0.05)
    s0 = dr.init.published(net, jax.random.key(3))
    assert _sign_packable(model, s0, None)
    rec = dr.Record(every=25, which="all", phases=True)
    a = dr.simulate(model, s0, n_steps=1500, record=rec, method=dr.MapScan(pack=False))
    b = dr.simulate(model, s0, n_steps=1500, record=rec, method=dr.MapScan(pack=True))
    _same(a, b)
    assert int(np.asarray(b.tracker.count).sum()) > 0  # the comparison saw fires


def _packed_run(model, s0, n_steps, record, inputs=None, plan=None):
    """The packed carry with a given `SignPacked` plan (bypassing `resolve`, which re-plans)."""
    method = dr.MapScan(pack=True, plan=plan)
    tracker = _tracker0(model, s0, record, jnp.asarray(0.0))
    return _run(model, s0, inputs, tracker, jnp.asarray(0.0), n_steps, record, method)


def _small_world_case(key):
    net = dr.small_world(12, ring_sizes=(2, 6), eps=0.1, p=0.3, seed=1)
    model = dr.DiscreteMap(net, dt=0.02)
    s0 = dr.init.random_phase(net, key)
    x = jax.random.uniform(jax.random.key(5), (800, net.n_inputs), dtype=net.dtype)
    return net, model, s0, x


def test_packed_small_world_with_dense_inputs_equals_plain(key):
    net, model, s0, x = _small_world_case(key)
    assert _sign_packable(model, s0, x)
    rec = dr.Record(every=40, which="all", phases=True)
    a = dr.simulate(model, s0, n_steps=800, record=rec, inputs=x, method=dr.MapScan(pack=False))
    b = _packed_run(model, s0, 800, rec, x, SignPacked(fold_inputs=False))
    _same(a, b)


def test_folded_inputs_plan_and_agreement_with_numpy(key):
    # Small-world inputs reach only ring heads, which are RingCoupling table rows: the plan folds
    # Win x into those rows. The (m, n_in) product may round differently in the last bit from the
    # dense (n, n_in) one, so the check is the acceptance's: NumPy reference outputs identical at
    # every step, v within 1e-12.
    net, model, s0, x = _small_world_case(key)
    assert dr.MapScan().resolve(model, s0, x).plan == SignPacked(probe_row=None, fold_inputs=True)
    assert dr.MapScan().resolve(model, s0, None).plan == SignPacked(probe_row=None, fold_inputs=False)
    rec = dr.Record(every=1, which="all", fields=("o", "v"), phases=False)
    sol = _packed_run(model, s0, 800, rec, x, SignPacked(fold_inputs=True))
    o_ref, v_ref = numpy_discrete_map(net.coupling.to_scipy(), np.asarray(net.win), np.asarray(x),
                                      np.asarray(s0.v), np.asarray(s0.o), 800, 0.02, 1.0, 0.49, 0.2)
    np.testing.assert_array_equal(np.asarray(sol.o), o_ref)
    np.testing.assert_array_less(np.abs(np.asarray(sol.v) - v_ref), 1e-12)
    assert np.abs(np.diff(o_ref, axis=0)).sum() > 100  # outputs switch: not a trivial comparison


def test_folded_inputs_batch_equals_single_runs(key):
    net, model, s0, _ = _small_world_case(key)
    keys = jax.random.split(key, 3)
    sB = dr.init.random_phase(net, keys)
    xB = jax.random.uniform(jax.random.key(7), (3, 400, net.n_inputs), dtype=net.dtype)
    rec = dr.Record(every=20, which="all", phases=True)
    assert dr.MapScan().resolve(model, sB, xB).plan.fold_inputs
    batch = dr.simulate_batch(model, sB, n_steps=400, record=rec, inputs=xB)
    for i in range(3):
        one = dr.simulate(model, jax.tree.map(lambda a, i=i: a[i], sB), n_steps=400, record=rec, inputs=xB[i])
        _same(jax.tree.map(lambda a, i=i: a[i], batch), one)


def test_folds_input_only_when_inputs_stay_on_table_rows():
    net = dr.small_world(12, ring_sizes=(2, 6), eps=0.1, p=0.3, seed=1)
    win = np.asarray(net.win)
    assert net.coupling.folds_input(win)
    other = np.zeros_like(win)
    other[1, 0] = 1.0  # neuron 1 is position 1 of ring 0: no table row
    assert not net.coupling.folds_input(other)
    assert not dr.lattice((3, 3), ring_size=4).coupling.folds_input(np.ones((36, 2)))


def test_probe_row_plan_reads_the_probes_as_a_slice():
    # S0 lattices are stored (ring_size, *grid): the probes at position p are the layout's row p
    # (probe 0, the default, runs in test_packed_lattice_equals_plain).
    probe = 2
    net = dr.lattice((5, 4), ring_size=5, scheme="S0", eps=0.2, probe=probe)
    model = dr.DiscreteMap(net, dt=0.05)
    s0 = dr.init.published(net, jax.random.key(3))
    assert dr.MapScan().resolve(model, s0, None).plan == SignPacked(probe_row=probe, fold_inputs=False)
    rec = dr.Record(every=25, which="probes", phases=True)
    a = dr.simulate(model, s0, n_steps=1500, record=rec, method=dr.MapScan(pack=False))
    b = _packed_run(model, s0, 1500, rec, plan=SignPacked(probe_row=probe))
    c = _packed_run(model, s0, 1500, rec, plan=SignPacked())  # the gather
    _same(a, b)
    _same(a, c)
    assert int(np.asarray(b.tracker.count).sum()) > 0
    # Probes not on one row (a general Rings table): the gather.
    rings = dr.Rings(net.rings.members, net.rings.sizes, net.rings.members[:, 1 + (np.arange(20) % 2)])
    mixed = dr.DiscreteMap(eqx.tree_at(lambda n: n.rings, net, rings), dt=0.05)
    assert dr.MapScan().resolve(mixed, s0, None).plan.probe_row is None


def test_packed_batch_equals_single_runs(key):
    net = dr.lattice((4, 4), ring_size=6, scheme="S0", eps=0.1)
    model = dr.DiscreteMap(net, dt=0.05)
    keys = jax.random.split(key, 3)
    s0 = dr.init.random_phase(net, keys)
    rec = dr.Record(every=50, which="probes", phases=True)
    batch = dr.simulate_batch(model, s0, n_steps=1000, record=rec)
    for i in range(3):
        one = dr.simulate(model, jax.tree.map(lambda a, i=i: a[i], s0), n_steps=1000, record=rec,
                          method=dr.MapScan(pack=False))
        _same(jax.tree.map(lambda a, i=i: a[i], batch), one)


def test_packable_only_when_exact(key):
    net = dr.lattice((3, 3), ring_size=4, scheme="S0", eps=0.1)
    s0 = dr.init.random_phase(net, key)
    hard = dr.DiscreteMap(net, dt=0.05)
    assert _sign_packable(hard, s0, None)
    # Negative coupling, negative voltages, fractional outputs, a soft trigger: the plain carry.
    neg = dr.DiscreteMap(dr.lattice((3, 3), ring_size=4, scheme="S0", eps=-0.1), dt=0.05)
    assert not _sign_packable(neg, s0, None)
    assert not _sign_packable(hard, dr.State(s0.v - 2.0, s0.o), None)
    assert not _sign_packable(hard, dr.State(s0.v, 0.5 * s0.o), None)
    assert not _sign_packable(dr.DiscreteMap(net, dt=0.05, threshold=dr.SigmoidSurrogate()), s0, None)
    # Traced values cannot be checked, so the plain carry is used under a caller's jit.
    seen = []
    jax.jit(lambda v: seen.append(_sign_packable(hard, dr.State(v, s0.o), None)) or v)(s0.v)
    assert seen == [False]


def test_negative_values_run_exactly_on_the_plain_carry(key):
    # Negative coupling and negative voltages: the auto choice must give what pack=False gives.
    net = dr.lattice((4, 4), ring_size=4, scheme="S0", eps=-0.1)
    model = dr.DiscreteMap(net, dt=0.05)
    s0 = dr.init.random_phase(dr.lattice((4, 4), ring_size=4, scheme="S0", eps=0.1), key)
    s0 = dr.State(s0.v - 0.15, s0.o)
    rec = dr.Record(every=20, which="all", phases=True)
    a = dr.simulate(model, s0, n_steps=600, record=rec)
    b = dr.simulate(model, s0, n_steps=600, record=rec, method=dr.MapScan(pack=False))
    assert float(jnp.min(a.v)) < 0  # the case the packed carry could not represent
    _same(a, b)


def test_packed_carry_flags_a_non_finite_member_like_the_plain_carry(key):
    # An infinite input passes the nonnegativity check, so the packed carry runs; v becomes
    # inf/NaN mid-run and the run must be marked non-finite, as with the plain carry (the packed
    # loop checks finiteness on its own carry, not on a decoded state).
    net, model, s0, x = _small_world_case(key)
    head = int(np.flatnonzero(np.asarray(net.win).any(axis=1))[0])
    channel = int(np.flatnonzero(np.asarray(net.win)[head])[0])
    x = x.at[300, channel].set(jnp.inf)
    assert _sign_packable(model, s0, x)
    rec = dr.Record(every=100, which="all", fields=("o",), phases=False)
    a = dr.simulate(model, s0, n_steps=800, record=rec, inputs=x, method=dr.MapScan(pack=False))
    b = dr.simulate(model, s0, n_steps=800, record=rec, inputs=x)
    assert int(a.status) == 1 and int(b.status) == 1
    clean = dr.simulate(model, s0, n_steps=800, record=rec, inputs=x.at[300, channel].set(0.0))
    assert int(clean.status) == 0
