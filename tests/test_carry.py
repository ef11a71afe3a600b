"""MapScan's sign-packed carry: exact equality with the plain carry, and when it may be used.

The plain carry is itself checked against a NumPy loop of the spec's equations
(tests/test_discrete_reference.py), so equality here ties the packed path to that reference.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffring as dr
from diffring._simulate import _sign_packable


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


def test_packed_small_world_with_inputs_equals_plain(key):
    net = dr.small_world(12, ring_sizes=(2, 6), eps=0.1, p=0.3, seed=1)
    model = dr.DiscreteMap(net, dt=0.02)
    s0 = dr.init.random_phase(net, key)
    x = jax.random.uniform(jax.random.key(5), (800, net.n_inputs), dtype=net.dtype)
    assert _sign_packable(model, s0, x)
    rec = dr.Record(every=40, which="all", phases=True)
    a = dr.simulate(model, s0, n_steps=800, record=rec, inputs=x, method=dr.MapScan(pack=False))
    b = dr.simulate(model, s0, n_steps=800, record=rec, inputs=x, method=dr.MapScan())
    _same(a, b)


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
