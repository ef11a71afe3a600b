"""Bad inputs raise `DiffringError` with a one-line message naming the field, the value and what is valid.

Each case is a violation of a stated rule (spec or issue): ring size < 2, dt <= 0, unknown scheme,
impossible lattice sizes, mismatched file shapes, NaN parameters, theta_H < theta_L, tau <= 0.
"""

import math

import jax
import numpy as np
import pytest
import scipy.sparse as sp

import diffring as dr

NAN = float("nan")


def expect_error(field, fn, *, value_shown=None):
    """`fn()` raises DiffringError for `field`; the message is one line naming the field (and value)."""
    with pytest.raises(dr.DiffringError) as info:
        fn()
    err = info.value
    msg = str(err)
    assert err.field == field, msg
    assert msg.startswith(f"{field}:"), msg
    assert "\n" not in msg and err.valid and err.valid in msg
    if value_shown is not None:
        assert value_shown in msg, msg
    assert isinstance(err, ValueError)  # callers catching ValueError keep working
    return err


def ring_path(tmp_path, n=4):
    """W of one ring of n neurons, saved with save_npz."""
    W = sp.csr_matrix((np.ones(n), (np.arange(n), (np.arange(n) - 1) % n)), shape=(n, n))
    path = tmp_path / "W.npz"
    sp.save_npz(path, W)
    return str(path)


# ----------------------------------------------------------------------------- ring sizes


@pytest.mark.parametrize(
    "field, fn",
    [
        ("network.size", lambda: dr.ring(1)),
        ("network.size", lambda: dr.ring(0)),
        ("network.sizes[]", lambda: dr.rings([3, 1, 4])),
        ("network.sizes", lambda: dr.rings([])),
        ("network.ring_size", lambda: dr.lattice([4], 1)),
        ("network.ring_size", lambda: dr.chain(4, 1, scheme="S1")),
        ("network.ring_sizes[0]", lambda: dr.small_world(10, (1, 4))),
        ("network.ring_sizes[1]", lambda: dr.small_world(10, (5, 4))),
        ("network.ring_sizes", lambda: dr.small_world(10, (2, 4, 8))),
        ("network.rings[]", lambda: dr.from_arrays(np.eye(4), [1, 3])),
        ("network.rings", lambda: dr.from_arrays(np.eye(4), [[0], [1, 2, 3]])),
    ],
)
def test_ring_size_below_two(field, fn):
    expect_error(field, fn)


# ----------------------------------------------------------------------------- time step


@pytest.mark.parametrize("model", [dr.DiscreteMap, dr.HardTrigger, dr.SmoothRelaxation])
@pytest.mark.parametrize("dt", [0.0, -0.01, NAN, math.inf])
def test_bad_dt(model, dt):
    net = dr.ring(4)
    expect_error("model.dt", lambda: model(net, dt))


@pytest.mark.parametrize(
    "field, kw",
    [
        ("model.beta", {"beta": NAN}),
        ("model.beta", {"beta": -1.0}),
        ("model.eps_o", {"eps_o": 0.0}),
        ("model.eps_o", {"eps_o": NAN}),
    ],
)
def test_bad_smoothing(field, kw):
    expect_error(field, lambda: dr.SmoothRelaxation(dr.ring(4), 0.01, **kw))


# ----------------------------------------------------------------------------- lattices


@pytest.mark.parametrize(
    "field, kwargs, shown",
    [
        ("network.scheme", dict(shape=[4], scheme="S3"), "S3"),
        ("network.scheme", dict(shape=[4], scheme="s0"), "s0"),
        ("network.boundary", dict(shape=[4], boundary="twisted"), "twisted"),
        ("network.aggregate", dict(shape=[4], aggregate="max"), "max"),
    ],
)
def test_unknown_choices(field, kwargs, shown):
    err = expect_error(field, lambda: dr.lattice(**kwargs), value_shown=shown)
    assert "S0" in err.valid or "periodic" in err.valid or "sum" in err.valid  # lists what is valid


@pytest.mark.parametrize(
    "field, kwargs",
    [
        # periodic sides < 3 would make a ring its own neighbour twice (S0, S1)
        ("network.shape", dict(shape=[2], ring_size=6)),
        ("network.shape", dict(shape=[5, 2], ring_size=6)),
        ("network.shape", dict(shape=[1, 4], ring_size=8, scheme="S1")),
        ("network.shape", dict(shape=[2], ring_size=6, scheme="S1")),
        # a checkerboard needs even periodic sides (and >= 4 to avoid doubled edges)
        ("network.shape", dict(shape=[4, 5], ring_size=4, scheme="S2")),
        ("network.shape", dict(shape=[5], ring_size=4, scheme="S2")),
        ("network.shape", dict(shape=[2, 2], ring_size=4, scheme="S2")),
        ("network.ring_size", dict(shape=[4, 4], ring_size=6, scheme="S2")),
        # 2-D S1: N = 4m, and the s shared neurons of the 4 sides must not overlap
        ("network.ring_size", dict(shape=[4, 4], ring_size=6, scheme="S1")),
        ("network.ring_size", dict(shape=[3, 3], ring_size=10, scheme="S1", boundary="open")),
        ("network.shared", dict(shape=[4, 4], ring_size=4, scheme="S1", shared=2)),
        ("network.shared", dict(shape=[4, 4], ring_size=8, scheme="S1", shared=3)),
        # 1-D S1: positions N//2 .. N//2 + s - 1 must not overlap positions 0 .. s - 1
        ("network.shared", dict(shape=[4], ring_size=6, scheme="S1", shared=4)),
        ("network.shared", dict(shape=[4], ring_size=7, scheme="S1", shared=4)),
        ("network.shared", dict(shape=[4], ring_size=6, scheme="S1", shared=0)),
        # shapes
        ("network.shape", dict(shape=[3, 3, 3])),
        ("network.shape", dict(shape=[])),
        ("network.shape[]", dict(shape=[0])),
        ("network.shape[]", dict(shape=[4.0])),
        # positions inside a ring
        ("network.r_in", dict(shape=[4], ring_size=6, r_in=6)),
        ("network.s_out", dict(shape=[4], ring_size=6, s_out=-1)),
        ("network.probe", dict(shape=[4], ring_size=6, probe=6)),
    ],
)
def test_impossible_lattices(field, kwargs):
    expect_error(field, lambda: dr.lattice(**kwargs))


def test_probe_must_exist_in_every_ring():
    expect_error("network.probe", lambda: dr.rings([3, 4], probe=3), value_shown="3")
    expect_error("network.probe", lambda: dr.small_world(10, (2, 8), probe=2))
    expect_error("network.probe", lambda: dr.from_arrays(np.eye(4), [2, 2], probe=2))


# ----------------------------------------------------------------------------- files


def test_file_w_not_square(tmp_path):
    sp.save_npz(tmp_path / "W.npz", sp.csr_matrix(np.ones((3, 4))))
    expect_error("network.W", lambda: dr.from_files(str(tmp_path / "W.npz"), [3]), value_shown="(3, 4)")


def test_file_w_missing_or_unreadable(tmp_path):
    expect_error("network.W", lambda: dr.from_files(str(tmp_path / "nope.npz"), [4]), value_shown="nope.npz")
    np.save(tmp_path / "dense.npy", np.eye(4))
    expect_error("network.W", lambda: dr.from_files(str(tmp_path / "dense.npy"), [4]))


def test_file_ring_sizes_not_summing_to_n(tmp_path):
    W = ring_path(tmp_path, 5)
    err = expect_error("network.rings", lambda: dr.from_files(W, [2, 2]))
    assert "5" in err.valid
    expect_error("network.rings", lambda: dr.from_files(W, [3, 3]))
    expect_error("network.rings", lambda: dr.from_files(W, 5))
    expect_error("network.rings", lambda: dr.from_files(W, [2, [2, 3, 4]]))
    expect_error("network.rings", lambda: dr.from_files(W, [[0, 1, 7]]))  # index out of range
    expect_error("network.rings", lambda: dr.from_files(W, [[0, 1, 1]]))  # repeated neuron


def test_file_win_rows(tmp_path):
    W = ring_path(tmp_path, 4)
    np.save(tmp_path / "Win.npy", np.ones((3, 2)))
    expect_error("network.Win", lambda: dr.from_files(W, [4], Win=str(tmp_path / "Win.npy")), value_shown="(3, 2)")
    np.save(tmp_path / "Win1.npy", np.ones(4))
    expect_error("network.Win", lambda: dr.from_files(W, [4], Win=str(tmp_path / "Win1.npy")))
    sp.save_npz(tmp_path / "Win.npz", sp.csr_matrix(np.ones((5, 2))))
    expect_error("network.Win", lambda: dr.from_files(W, [4], Win=str(tmp_path / "Win.npz")))
    expect_error("network.Win", lambda: dr.from_files(W, [4], Win=str(tmp_path / "missing.npy")))
    np.save(tmp_path / "Winstr.npy", np.array([["a", "b"]] * 4))
    expect_error("network.Win", lambda: dr.from_files(W, [4], Win=str(tmp_path / "Winstr.npy")))
    # The valid counterparts load (so the errors above are about the shapes, not the format).
    np.save(tmp_path / "ok.npy", np.ones((4, 2)))
    assert dr.from_files(W, [4], Win=str(tmp_path / "ok.npy")).n_inputs == 2
    sp.save_npz(tmp_path / "ok.npz", sp.csr_matrix(np.ones((4, 3))))
    assert dr.from_files(W, [4], Win=str(tmp_path / "ok.npz")).n_inputs == 3


def test_init_file_wrong_shape(tmp_path):
    net = dr.ring(4)
    np.savez(tmp_path / "s.npz", v=np.zeros(5), o=np.ones(5))
    expect_error("init.v", lambda: dr.init.from_file(net, str(tmp_path / "s.npz")), value_shown="(5,)")
    np.savez(tmp_path / "t.npz", v=np.zeros(4))
    expect_error("init.path", lambda: dr.init.from_file(net, str(tmp_path / "t.npz")), value_shown="t.npz")
    np.savez(tmp_path / "u.npz", v=np.array([0.0, NAN, 0.0, 0.0]), o=np.ones(4))
    expect_error("init.path[v]", lambda: dr.init.from_file(net, str(tmp_path / "u.npz")))
    expect_error("init.path", lambda: dr.init.from_file(net, str(tmp_path / "missing.npz")))
    np.savez(tmp_path / "ok.npz", v=np.zeros(4), o=np.ones(4))
    np.testing.assert_array_equal(np.asarray(dr.init.from_file(net, str(tmp_path / "ok.npz")).o), 1.0)


def test_input_array_wrong_shape():
    net = dr.small_world(6, (3, 4), n_in=8, seed=0)
    model = dr.DiscreteMap(net, 0.01)
    s0 = dr.init.pulses(net)
    rec = dr.Record(phases=False)
    expect_error(
        "input", lambda: dr.simulate(model, s0, n_steps=10, inputs=np.zeros((10, 7)), record=rec), value_shown="(10, 7)"
    )
    expect_error("input", lambda: dr.simulate(model, s0, n_steps=10, inputs=np.zeros((9, 8)), record=rec))
    plain = dr.DiscreteMap(dr.ring(4), 0.01)
    expect_error(
        "input",
        lambda: dr.simulate(plain, dr.init.pulses(plain.network), n_steps=10, inputs=np.zeros((10, 8)), record=rec),
    )
    expect_error("init", lambda: dr.simulate(model, dr.State(s0.v[:-1], s0.o[:-1]), n_steps=10, record=rec))


def test_input_file_wrong_content(tmp_path):
    from diffring._io import load_array_file

    np.save(tmp_path / "x.npy", np.array([[0.0, NAN]]))
    expect_error("input.path", lambda: load_array_file("input.path", str(tmp_path / "x.npy")))
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 2)))
    expect_error("input.path", lambda: load_array_file("input.path", str(tmp_path / "x.npz")))
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    expect_error("input.path", lambda: load_array_file("input.path", str(tmp_path / "junk.npy")))


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "field, fn",
    [
        ("network.eps", lambda: dr.lattice([4], 6, eps=NAN)),
        ("network.eps", lambda: dr.lattice([4, 4], 6, eps=math.inf)),
        ("network.eps", lambda: dr.lattice([4], 6, scheme="S1", eps=NAN)),
        ("network.eps", lambda: dr.small_world(10, eps=NAN)),
        ("network.eps", lambda: dr.lattice([4], 6, eps="0.1")),
        ("network.p", lambda: dr.small_world(10, p=NAN)),
        ("network.p", lambda: dr.small_world(10, p=1.5)),
        ("network.input_weight", lambda: dr.small_world(10, input_weight=NAN)),
        ("network.tau", lambda: dr.ring(4, tau=NAN)),
        ("network.tau", lambda: dr.lattice([4], 6, tau=NAN)),
        ("network.tau", lambda: dr.ring(4, tau=np.array([1.0, NAN, 1.0, 1.0]))),
        ("network.tau", lambda: dr.ring(4, tau="one")),
        ("network.theta_H", lambda: dr.ring(4, theta_H=NAN)),
        ("network.theta_L", lambda: dr.ring(4, theta_L=NAN)),
        ("network.theta_L", lambda: dr.small_world(10, theta_L=NAN)),
        ("network.W", lambda: dr.from_arrays(np.array([[0.0, 1.0], [NAN, 0.0]]), [2])),
        ("network.W", lambda: dr.from_arrays(np.array([[0.0, 1.0], [math.inf, 0.0]]), [2])),
        ("network.Win", lambda: dr.from_arrays(np.array([[0.0, 1.0], [1.0, 0.0]]), [2], Win=np.array([[NAN], [0]]))),
        ("dtype", lambda: dr.ring(4, dtype=np.int32)),
        ("dtype", lambda: dr.ring(4, dtype="float33")),
    ],
)
def test_nan_and_bad_parameters(field, fn):
    expect_error(field, fn)


def test_nan_w_entries_from_file(tmp_path):
    W = sp.csr_matrix(np.array([[0.0, 1.0], [NAN, 0.0]]))
    sp.save_npz(tmp_path / "W.npz", W)
    expect_error("network.W", lambda: dr.from_files(str(tmp_path / "W.npz"), [2]))


@pytest.mark.parametrize(
    "kw, shown",
    [
        (dict(theta_H=0.1, theta_L=0.2), "0.1"),
        (dict(theta_H=np.array([0.5, 0.5, 0.15, 0.5]), theta_L=0.2), "neuron 2"),
        (dict(theta_H=0.3, theta_L=np.array([0.2, 0.2, 0.2, 0.31])), "neuron 3"),
    ],
)
def test_theta_H_below_theta_L(kw, shown):
    err = expect_error("network.theta_H", lambda: dr.ring(4, **kw), value_shown=shown)
    assert "theta_L" in err.valid
    dr.ring(4, theta_H=0.2, theta_L=0.2)  # equal thresholds (no hysteresis) are allowed


@pytest.mark.parametrize("tau", [0.0, -1.0, np.array([1.0, 1.0, 0.0, 1.0])])
def test_tau_not_positive(tau):
    expect_error("network.tau", lambda: dr.ring(4, tau=tau))
    expect_error("network.tau", lambda: dr.lattice([3, 3], 4, scheme="S1", tau=tau if np.ndim(tau) == 0 else -1.0))


def test_per_neuron_parameter_shape():
    expect_error("network.tau", lambda: dr.ring(4, tau=np.ones(3)), value_shown="(3,)")
    expect_error("network.theta_L", lambda: dr.ring(4, theta_L=np.full((4, 1), 0.2)))


def _two_rings():
    net = dr.rings([4, 6])
    return net, dr.init.pulses(net), dr.DiscreteMap(net)


def _simulate_two_rings(**kw):
    net, s0, m = _two_rings()
    state0 = kw.pop("state0", s0)
    return dr.simulate(m, state0, n_steps=kw.pop("n_steps", 10), **kw)


def _probes_record():
    net, s0, m = _two_rings()
    return net, dr.simulate(m, s0, n_steps=40, record=dr.Record(which="probes")).o


@pytest.mark.parametrize(
    "field, fn",
    [
        ("init", lambda: _simulate_two_rings(state0=(_two_rings()[1].v, _two_rings()[1].o))),
        ("record", lambda: _simulate_two_rings(record="all")),
        ("method", lambda: _simulate_two_rings(method="rk45")),
        ("run.t0", lambda: _simulate_two_rings(t0=NAN)),
        ("run.t0", lambda: _simulate_two_rings(t0="0")),
        ("input", lambda: dr.simulate(dr.DiscreteMap(dr.small_world(3, n_in=2)),
                                      dr.init.pulses(dr.small_world(3, n_in=2)), n_steps=10,
                                      inputs=np.zeros((2, 10, 2)))),
        ("record.which", lambda: dr.Record(which=[0.5, 1.7])),
        ("record.which", lambda: dr.Record(which=[[0, 1], [2, 3]])),
        ("method.rtol", lambda: dr.ODESolve(rtol=-1.0)),
        ("method.atol", lambda: dr.ODESolve(atol=NAN)),
        ("method.dt0", lambda: dr.ODESolve(dt0=0.0)),
        ("method.max_steps", lambda: dr.ODESolve(max_steps=0)),
        ("method.solver", lambda: dr.ODESolve(solver="tsit5")),
        ("model.threshold_beta", lambda: dr.SoftThreshold(beta=0.0)),
        ("model.threshold_beta", lambda: dr.SigmoidSurrogate(beta=NAN)),
        ("init.transient", lambda: dr.init.random_phase(dr.ring(4), jax.random.key(0), transient=NAN)),
        ("o", lambda: dr.classify_orbits(_probes_record()[1], _probes_record()[0].rings)),
        ("o", lambda: dr.pulse_count(_probes_record()[1][-1], _probes_record()[0].rings)),
        ("o", lambda: dr.firing_fraction(_probes_record()[1], _probes_record()[0].rings)),
        ("o", lambda: dr.fire_counts(_probes_record()[1], _probes_record()[0].rings)),
    ],
)
def test_python_api_boundary(field, fn):
    """Wrong types and values at the Python API (not through a config) are named at the call: no
    error from deep inside JAX, no NaN time axis, and no ring statistics from a probes-only record
    (JAX clamps the out-of-range member indices, which gave wrong counts silently)."""
    expect_error(field, fn)


def test_a_state_of_another_dtype_runs_in_the_network_dtype():
    """A float32 state on a float64 network runs as the same state cast to float64 (it failed in
    the scan's carry); the records are float64 and equal bit for bit."""
    net, s0, m = _two_rings()
    s32 = dr.State(s0.v.astype(np.float32), s0.o.astype(np.float32))
    a = dr.simulate(m, s32, n_steps=200)
    b = dr.simulate(m, dr.State(s32.v.astype(np.float64), s32.o.astype(np.float64)), n_steps=200)
    assert a.v.dtype == np.float64 and int(a.status) == 0
    np.testing.assert_array_equal(np.asarray(a.v), np.asarray(b.v))
    np.testing.assert_array_equal(np.asarray(a.o), np.asarray(b.o))


@pytest.mark.filterwarnings("ignore:A JAX array is being set as static")  # equinox, before the check
def test_an_array_where_a_number_is_expected_is_called_an_array():
    """A 0-d array for a static number (here dt) was reported as 'expected a finite number'."""
    err = expect_error("model.dt", lambda: dr.DiscreteMap(dr.ring(4), dt=np.asarray(0.01)))
    assert "not an array" in str(err)
