"""Sharded lattices and batches (diffring.Sharded, shard_batch) against single-device runs.

jax reads the device count once, at start-up, and conftest.py has already imported it, so the
multi-device cases run in subprocesses (tests/_sharding_worker.py) with
XLA_FLAGS=--xla_force_host_platform_device_count=K and a timeout; each prints one JSON line per case.
The in-process tests check the shard plan against a NumPy reference of W o and the validation.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import diffrax
import jax
import numpy as np
import pytest

import diffring as dr
from diffring._errors import DiffringError

WORKER = Path(__file__).with_name("_sharding_worker.py")
ROOT = WORKER.parent.parent
TIMEOUT = 900  # seconds per subprocess; generous because the machine is shared (load ~10 on 2 cores)


def _env(devices, extra_flags=""):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices} {extra_flags}".strip()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("JAX_PLATFORMS", None)
    return env


def _cases(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _run_worker(args, devices, extra_flags=""):
    out = subprocess.run(
        [sys.executable, str(WORKER), *args],
        env=_env(devices, extra_flags),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return _cases(out.stdout)


def _hlo_modules(dump_dir):
    return {p.name: p.read_text() for p in Path(dump_dir).glob("*after_optimizations.txt")}


COLLECTIVES = ("all-gather", "all-reduce", "collective-permute", "all-to-all", "reduce-scatter")


@pytest.mark.slow
def test_sharded_lattices_equal_single_device(tmp_path):
    """S0/S1/S2 x periodic/open on 2, 4 and 8 simulated devices: every record, the final state and
    the phase tracker bit for bit; the sharded programs do exchange halos (collective-permute)."""
    _check_lattice_cases(tmp_path, quick=False)


def test_sharded_lattices_equal_single_device_one_mesh_each(tmp_path):
    """The CI subset: each scheme and boundary on one mesh, 2, 4 and 8 devices in turn."""
    _check_lattice_cases(tmp_path, quick=True)


def _check_lattice_cases(tmp_path, quick):
    mode = "lattices-quick" if quick else "lattices"
    cases = _run_worker([mode], 8, f"--xla_dump_to={tmp_path} --xla_dump_hlo_pass_re=^$")
    lattice = [c for c in cases if not c["case"].startswith("record-")]
    assert len(lattice) == (6 if quick else 18)
    counts = []
    for scheme in ("S0", "S1", "S2"):
        for boundary in ("periodic", "open"):
            devices = sorted(
                int(np.prod([int(x) for x in c["case"].split("-")[2].split("x")]))
                for c in lattice
                if c["case"].startswith(f"{scheme}-{boundary}-")
            )
            counts += devices
            if not quick:
                assert devices == [2, 4, 8], (scheme, boundary, devices)
    assert sorted(set(counts)) == [2, 4, 8]
    for c in cases:
        assert all(c["equal"].values()), c
    # The runs are not trivial: neurons fire and (periodic) rings lock partially.
    assert all(0.05 < c["fired"] < 0.95 for c in lattice)
    assert {c["case"] for c in cases} >= {"record-probes", "record-which", "record-reduce"}
    modules = _hlo_modules(tmp_path)
    sharded = [t for t in modules.values() if "num_partitions=8" in t.split("\n", 1)[0]]
    assert sharded and all("collective-permute" in t for t in sharded)


def test_sharded_batch_equal_unsharded_without_traffic(tmp_path):
    """simulate_batch on shard_batch'ed states (and a sharded eps sweep) equals the unsharded batch
    bit for bit, and the compiled 8-way programs contain no collective at all. `run.mesh` through
    the `diffring run` build path (one lattice; a batch) equals the run without it (bit for bit; the
    smooth model's fixed-step route to rounding)."""
    cases = _run_worker(["batch"], 8, f"--xla_dump_to={tmp_path} --xla_dump_hlo_pass_re=^$")
    assert [c["case"] for c in cases] == [
        "batch", "batch-sweep", "config-lattice", "config-batch", "config-smooth", "config-errors"
    ]
    for c in cases[:-1]:
        assert all(c["equal"].values()), c
    # run.mesh in a config: validated when built, with one-line errors naming the field.
    errors = cases[-1]["errors"]
    assert errors["[3, 1]"].startswith("run.mesh") and "dividing the ring grid" in errors["[3, 1]"]
    assert errors["[4, 4]"].startswith("run.mesh") and "available devices" in errors["[4, 4]"]
    modules = _hlo_modules(tmp_path)
    batch = {n: t for n, t in modules.items() if "run_batch" in n and "num_partitions=8" in t.split("\n", 1)[0]}
    assert batch, sorted(modules)
    for name, text in batch.items():
        assert not any(op in text for op in COLLECTIVES), name


def test_sharded_smooth_and_surrogate_values_and_gradients(tmp_path):
    """SmoothRelaxation through `Sharded(mesh, ODESolve(..., adjoint=ScanAdjoint()))` on 4 and 2
    simulated devices (S0 periodic, S1 open; and `AdaptiveRK`, forward, at rtol 1e-10, the S1 case
    driven by inputs: equal to one device to 1e-7): records and loss equal the one-device run to rounding,
    the reverse-mode gradient with respect to every model parameter (eps, tau, thresholds, sparse
    weights) too, and on S0 the sharded gradient in eps matches a central difference of the sharded
    run. The sharded programs (forward and reverse) exchange halos. The discrete map with
    `SigmoidSurrogate` (S0 periodic 2 x 2, S2 open 2 x 1): the sharded run equals one device bit for
    bit and its surrogate gradient in every parameter equals the one-device gradient to rounding."""
    cases = _run_worker(["smooth"], 4, f"--xla_dump_to={tmp_path} --xla_dump_hlo_pass_re=^$")
    assert [c["case"] for c in cases] == [
        "smooth-S0-periodic-2x2", "adaptive-S0-periodic-2x2", "smooth-S1-open-2x1", "adaptive-S1-open-2x1",
        "surrogate-S0-periodic-2x2", "surrogate-S2-open-2x1",
    ]
    surrogate = [c for c in cases if c["case"].startswith("surrogate")]
    for c in surrogate:
        assert all(c["equal"].values()), c  # the forward run is the exact map, bit for bit
        assert 0.05 < c["fired"] < 0.95, c  # neurons fire: the surrogate path is exercised
        assert c["loss"][0] == c["loss"][1], c
        assert len(c["grad_rel"]) == 4 and max(c["grad_rel"].values()) < 1e-12, c
        assert min(c["grad_scale"].values()) > 1e-3, c  # every parameter gets a gradient
    adaptive = [c for c in cases if c["case"].startswith("adaptive")]
    cases = [c for c in cases if c["case"].startswith("smooth")]
    for c in adaptive:  # AdaptiveRK at rtol = atol = 1e-10: equal to one device to the tolerance
        assert c["status"] == [0, 0] and c["steps"] > 100 and c["max_diff"] < 1e-7, c
    assert adaptive[1]["inputs_matter"] > 1e-3, adaptive[1]  # the S1 case is driven by its inputs
    for c in cases:
        assert c["v_range"] > 0.5, c  # the run is not trivial: v moves over the run
        assert all(c["equal"].values()), c
        assert c["records_rel"] < 1e-11, c
        assert abs(c["loss"][0] - c["loss"][1]) <= 1e-12 * abs(c["loss"][0]), c
        assert len(c["grad_rel"]) == 4 and max(c["grad_rel"].values()) < 1e-9, c
    eps = cases[0]["eps"]
    assert abs(eps["grad_sharded"] - eps["fd_sharded"]) <= 1e-5 * abs(eps["fd_sharded"]), eps
    modules = _hlo_modules(tmp_path).items()
    runs = [t for n, t in modules if "jit__run" in n and "num_partitions=" in t.split("\n", 1)[0]]
    assert len(runs) >= 4 and all("collective-permute" in t for t in runs)  # forward and reverse, 2 cases


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_process_run_equals_single_device():
    """2 processes x 2 CPU devices (jax.distributed, gloo collectives) on a 2 x 2 mesh: equal to one
    device bit for bit, on both processes. Both are killed if either hangs."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "multihost", str(port), str(i)],
            env=_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=TIMEOUT))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
    cases = [c for stdout, _ in outs for c in _cases(stdout)]
    assert len(cases) == 8  # S0, S2 x periodic, open x 2 processes
    for c in cases:
        assert c["processes"] == 2 and all(c["equal"].values()), c


def _block_wo(plan, network, o):
    """NumPy reference of what each block computes: its table over [own outputs, received halos]."""
    neuron = np.asarray(plan.neuron)
    index = np.asarray(plan.index)
    weight = np.asarray(network.coupling.weight)
    D = neuron.shape[0]
    o_loc = np.where(neuron >= 0, o[np.maximum(neuron, 0)], 1.0)
    u = np.zeros(network.n_neurons)
    for d in range(D):
        ext = [o_loc[d]]
        for send, perm in zip(plan.sends, plan.perms, strict=True):
            src = [s for s, t in perm if t == d][0]
            ext.append(o_loc[src][np.asarray(send)[src]])
        ext = np.concatenate(ext)
        ok = neuron[d] >= 0
        w = weight[neuron[d][ok]]
        u[neuron[d][ok]] = np.sum(w * ext[index[d][ok]], axis=1)
    return u


@pytest.mark.parametrize("scheme", ["S1", "S2"])
@pytest.mark.parametrize("boundary", ["periodic", "open"])
@pytest.mark.parametrize("mesh", [(2, 2), (1, 4), (4, 2)])
def test_shard_plan_reproduces_coupling(scheme, boundary, mesh, rng):
    """The per-block tables with halo slots give W o of the global network (scipy) for random o, and
    every neuron and ring is placed exactly once; probes live with their ring."""
    net = dr.lattice((8, 8), 4, scheme=scheme, boundary=boundary)
    plan = dr.shard_plan(net, mesh)
    neuron = np.asarray(plan.neuron)
    assert np.array_equal(np.sort(neuron[neuron >= 0]), np.arange(net.n_neurons))
    ring = np.asarray(plan.ring)
    assert np.array_equal(np.sort(ring[ring >= 0]), np.arange(net.n_rings))
    n_local = neuron.shape[1]
    probes = np.asarray(net.rings.probes)
    for d in range(neuron.shape[0]):
        ok = ring[d] >= 0
        assert np.array_equal(neuron[d][np.asarray(plan.probe)[d][ok]], probes[ring[d][ok]])
    assert np.array_equal(neuron.reshape(-1)[np.asarray(plan.neuron_pos)], np.arange(net.n_neurons))
    assert np.asarray(plan.neuron_pos).max() < neuron.shape[0] * n_local
    o = rng.random(net.n_neurons)
    np.testing.assert_allclose(_block_wo(plan, net, o), net.coupling.to_scipy() @ o, rtol=1e-14, atol=1e-14)


def test_one_device_mesh_equals_simulate():
    """A 1 x 1 mesh (periodic halos sent to itself) in-process: bit for bit the plain run."""
    for scheme in ("S0", "S2"):
        net = dr.lattice((4, 4), 6 if scheme == "S0" else 4, scheme=scheme, eps=0.3)
        model = dr.DiscreteMap(net, dt=0.02)
        s0 = dr.init.random_phase(net, jax.random.key(0))
        rec = dr.Record(every=10)
        a = dr.simulate(model, s0, n_steps=100, record=rec)
        b = dr.simulate(model, s0, n_steps=100, record=rec, method=dr.Sharded(dr.lattice_mesh(1, 1)))
        for f in ("o", "v", "phase", "R", "status"):
            np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)))


def test_sharding_validation():
    net = dr.lattice((6, 6), 6)
    with pytest.raises(DiffringError, match=r"run\.mesh.*dividing the ring grid"):
        dr.shard_plan(net, (4, 1))
    with pytest.raises(DiffringError, match=r"run\.mesh.*available devices"):
        dr.lattice_mesh(len(jax.devices()) + 1, 1)
    with pytest.raises(DiffringError, match=r"run\.mesh.*lattice or chain"):
        dr.shard_plan(dr.ring(5), (1, 1))
    with pytest.raises(DiffringError, match=r"run\.mesh.*2-D lattice"):
        dr.shard_plan(dr.chain(6, 6), (1, 1))
    mesh = dr.lattice_mesh(1, 1)
    s0 = dr.init.random_phase(net, jax.random.key(0))
    with pytest.raises(DiffringError, match=r"method.*Sharded\(MapScan\) steps DiscreteMap, not HardTrigger"):
        dr.simulate(dr.HardTrigger(net), s0, n_steps=10, method=dr.Sharded(mesh))
    ode = dr.ODESolve(stepsize_controller=diffrax.ConstantStepSize(), adjoint=dr.ScanAdjoint())
    with pytest.raises(DiffringError, match=r"method.*Sharded\(ODESolve\) steps SmoothRelaxation, not DiscreteMap"):
        dr.simulate(dr.DiscreteMap(net), s0, n_steps=10, method=dr.Sharded(mesh, method=ode))
    with pytest.raises(DiffringError, match=r"method\.method\.adjoint.*ScanAdjoint"):
        dr.Sharded(mesh, method=dr.ODESolve())
    with pytest.raises(DiffringError, match=r"method\.method.*Sharded wraps a MapScan"):
        dr.Sharded(mesh, method=dr.Record())
    with pytest.raises(DiffringError, match=r"method.*Sharded\(AdaptiveRK\) steps SmoothRelaxation, not DiscreteMap"):
        dr.simulate(dr.DiscreteMap(net), s0, n_steps=10, method=dr.Sharded(mesh, method=dr.AdaptiveRK()))
    with pytest.raises(DiffringError, match=r"method\.stepsize_controller"):
        dr.simulate(dr.SmoothRelaxation(net), s0, n_steps=10,
                    method=dr.Sharded(mesh, method=dr.ODESolve(adjoint=dr.ScanAdjoint())))
    with pytest.raises(DiffringError, match=r"method\.mesh"):
        dr.Sharded("2x2")
    with pytest.raises(DiffringError, match=r"run\.batch.*multiple"):
        dr.shard_batch(mesh, np.float64(1.0))
