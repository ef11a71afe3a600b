"""`diffring run` end to end on small configs: the written files against independent answers
(a plain NumPy loop of the spec's map, independently built initial states, direct library calls)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import scipy.sparse as sp
import yaml
from _reference import numpy_discrete_map, s0_reference

import diffring as dr
from diffring._cli import main
from diffring._config import resolve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(tmp_path, text, *extra, name="out"):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(textwrap.dedent(text))
    out = tmp_path / name
    rc = main(["run", str(cfg), "--out", str(out), "--quiet", *extra])
    return rc, out


def _load(out):
    with open(out / "summary.json") as f:
        summary = json.load(f)
    with open(out / "config.yaml") as f:
        config = yaml.safe_load(f)
    with np.load(out / "outputs.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return summary, config, arrays


LATTICE = """
    seed: 0
    network: {kind: lattice, shape: [8, 8], ring_size: 6, scheme: S0, eps: 0.2, boundary: periodic}
    model: {kind: discrete, dt: 0.01}
    init: {kind: pulses, k: 1}
    run: {n_steps: 300}
    record: {every: 10, which: all, fields: [o, v]}
    output: {plots: false}
"""


def test_lattice_run_files_match_independent_answers(tmp_path):
    rc, out = _run(tmp_path, LATTICE)
    assert rc == 0
    assert sorted(os.listdir(out)) == ["config.yaml", "outputs.npz", "summary.json"]
    summary, config, z = _load(out)

    # config.yaml is fully resolved and round-trips
    assert resolve(config) == config
    assert config["network"]["shape"] == [8, 8] and config["network"]["r_in"] == 0 and config["run"]["t1"] == 3.0

    # summary: sizes of an 8 x 8 lattice of 6-rings, run length, versions
    assert summary["n_neurons"] == 6 * 64 and summary["n_rings"] == 64
    assert summary["n_steps"] == 300 and summary["dt"] == 0.01 and summary["dtype"] == "float64"
    assert summary["seed"] == 0 and summary["status"] == "ok" and summary["n_records"] == 31
    assert summary["jax_version"] == jax.__version__ and summary["diffring_version"] == dr.__version__
    # provenance: the backend and the XLA flags that compiled the run (they change the compiled code)
    assert summary["versions"]["jax_backend"] == jax.default_backend()
    assert summary["versions"]["xla_flags"] == os.environ.get("XLA_FLAGS", "")
    t = summary["timings"]
    assert all(t[k] >= 0 for k in ("build_s", "compile_s", "simulate_s", "write_s", "total_s"))
    assert t["total_s"] >= t["build_s"] + t["simulate_s"]

    # shapes: n_records = n_steps / every + 1
    assert z["t"].shape == (31,) and np.allclose(z["t"], 0.1 * np.arange(31), atol=1e-12)
    assert z["o"].shape == z["v"].shape == (31, 384)
    assert z["R"].shape == (31,) and z["phase"].shape == (31, 64) and z["final_v"].shape == (384,)
    np.testing.assert_array_equal(z["recorded"], np.arange(384))

    # record 0 is the initial state, built here from the spec: S0 numbering p * n_rings + r, one
    # pulse at position 0 of every ring (v_low 0.1, o 0), everything else at rest (0.9, 1)
    v0, o0 = np.full(384, 0.9), np.ones(384)
    v0[:64], o0[:64] = 0.1, 0.0
    np.testing.assert_array_equal(z["v"][0], v0)
    np.testing.assert_array_equal(z["o"][0], o0)

    # the whole trajectory equals a plain NumPy loop of spec 1.1 on the spec's S0 wiring
    W, _ = s0_reference((8, 8), 6, 0.2, True)
    o_ref, v_ref = numpy_discrete_map(W, None, None, v0, o0, 300, 0.01, 1.0, 0.49, 0.2)
    np.testing.assert_array_equal(z["o"], o_ref[::10])
    np.testing.assert_allclose(z["v"], v_ref[::10], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(z["final_o"], o_ref[-1])
    np.testing.assert_allclose(z["final_v"], v_ref[-1], rtol=0, atol=1e-12)

    # phases and R (run in segments by the CLI) equal one direct library call
    net = dr.lattice([8, 8], 6, eps=0.2)
    sol = dr.simulate(
        dr.DiscreteMap(net, 0.01), dr.init.pulses(net), n_steps=300, record=dr.Record(every=10, which="all")
    )
    assert summary["segments"] > 1
    np.testing.assert_array_equal(z["phase_valid"], np.asarray(sol.phase_valid))
    np.testing.assert_allclose(z["phase"], np.asarray(sol.phase), atol=1e-9)
    np.testing.assert_allclose(z["R"], np.asarray(sol.R), atol=1e-9)
    assert summary["R_final"] == pytest.approx(float(sol.R[-1]), abs=1e-9)


def _numpy_c1(phase, valid, grid):
    """< cos(theta_r - theta_r') > over periodic nearest-neighbour pairs with both phases defined."""
    th = phase.reshape(phase.shape[:-1] + grid)
    ok = valid.reshape(valid.shape[:-1] + grid)
    num = np.zeros(phase.shape[:-1])
    den = np.zeros(phase.shape[:-1])
    for axis in (-2, -1):
        both = ok & np.roll(ok, 1, axis=axis)
        num += np.sum(np.where(both, np.cos(th - np.roll(th, 1, axis=axis)), 0.0), axis=(-2, -1))
        den += np.sum(both, axis=(-2, -1))
    return np.where(den > 0, num / np.maximum(den, 1), 0.0)


def test_embedded_default_with_overrides_and_plots(tmp_path):
    out = tmp_path / "default"
    rc = main(
        [
            "run",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "network.shape=[8,8]",
            "--set",
            "run.t1=3.0",
            "--set",
            "record.every=50",
        ]
    )
    assert rc == 0
    summary, config, z = _load(out)
    assert config["network"]["eps"] == 0.2 and config["init"]["kind"] == "published"
    assert summary["n_neurons"] == 384 and summary["n_steps"] == 300 and z["o"].shape == (7, 64)
    # record 0 is the published warm-up from jax.random.key(seed), built here with the library directly
    net = dr.lattice([8, 8], 6, eps=0.2)
    s0 = dr.init.published(net, jax.random.key(0), 0.01)
    probes = np.asarray(net.rings.probes)
    np.testing.assert_array_equal(z["recorded"], probes)
    np.testing.assert_array_equal(z["v"][0], np.asarray(s0.v)[probes])
    np.testing.assert_array_equal(z["o"][0], np.asarray(s0.o)[probes])
    sol = dr.simulate(dr.DiscreteMap(net, 0.01), s0, n_steps=300, record=dr.Record(every=50, which="probes"))
    np.testing.assert_array_equal(z["o"], np.asarray(sol.o))
    np.testing.assert_array_equal(z["final_o"], np.asarray(sol.state.o))
    # on-the-fly observables share the time base; C1 equals an independent NumPy computation
    for name in ("xi", "xi_cross", "wall_density", "C1", "largest_domain"):
        assert z[name].shape == z["t"].shape, name
    np.testing.assert_allclose(z["C1"], _numpy_c1(z["phase"], z["phase_valid"], (8, 8)), atol=1e-12)
    np.testing.assert_array_equal(z["final_phase_map"], z["phase"][-1].reshape(8, 8))
    assert summary["xi_final"] == z["xi"][-1] and summary["wall_density_final"] == z["wall_density"][-1]
    # the three plots are real PNG files
    for name in ("raster.png", "phase_map.png", "R.png"):
        with open(out / name, "rb") as f:
            head = f.read(8)
        assert head == PNG_MAGIC and os.path.getsize(out / name) > 5000, name
    assert summary["plots"] == ["raster.png", "phase_map.png", "R.png", "growth.png", "phase_maps.gif"]


def test_batch_members_equal_single_runs_from_split_keys(tmp_path):
    rc, out = _run(
        tmp_path,
        """
        seed: 3
        network: {kind: lattice, shape: [4, 4], ring_size: 5, eps: 0.1}
        init: {kind: uniform}
        run: {n_steps: 200, batch: 3, chunk_size: 2}
        record: {every: 20, which: probes, fields: [o, v]}
        output: {plots: false}
    """,
    )
    assert rc == 0
    summary, config, z = _load(out)
    assert summary["batch"] == 3 and summary["status"] == ["ok"] * 3 and len(summary["R_final"]) == 3
    assert z["t"].shape == (11,) and z["o"].shape == z["v"].shape == (3, 11, 16)
    assert z["R"].shape == (3, 11) and z["final_v"].shape == (3, 80) and z["status"].shape == (3,)
    net = dr.lattice([4, 4], 5, eps=0.1)
    model = dr.DiscreteMap(net, 0.01)
    keys = jax.random.split(jax.random.key(3), 3)
    for b in range(3):
        s0 = dr.init.uniform(net, keys[b])
        sol = dr.simulate(model, s0, n_steps=200, record=dr.Record(every=20, which="probes"))
        np.testing.assert_array_equal(z["o"][b], np.asarray(sol.o))
        np.testing.assert_array_equal(z["v"][b], np.asarray(sol.v))
        np.testing.assert_array_equal(z["final_v"][b], np.asarray(sol.state.v))
        np.testing.assert_allclose(z["R"][b], np.asarray(sol.R), atol=1e-9)
    assert not np.array_equal(z["final_v"][0], z["final_v"][1])


def _file_network(d, rng):
    """Three rings (3, 4, 5 neurons) with a few cross links, 2 input channels, initial state."""
    n = 12
    W = np.zeros((n, n))
    starts = [0, 3, 7]
    for s0, size in zip(starts, (3, 4, 5), strict=True):
        for p in range(size):
            W[s0 + p, s0 + (p - 1) % size] = 1.0
    W[0, 4], W[3, 8], W[7, 1] = 0.1, 0.1, 0.1
    sp.save_npz(d / "W.npz", sp.csr_matrix(W))
    Win = np.zeros((n, 2))
    Win[[0, 3, 7], 0] = 1.0
    Win[[3, 7], 1] = 0.8
    np.save(d / "Win.npy", Win)
    v0, o0 = np.full(n, 0.9), np.ones(n)
    v0[[1, 5, 9]], o0[[1, 5, 9]] = 0.1, 0.0
    np.savez(d / "init.npz", v=v0, o=o0)
    return W, Win, v0, o0


def test_input_file_drives_the_run(tmp_path, rng):
    d = tmp_path / "data"
    d.mkdir()
    W, Win, v0, o0 = _file_network(d, rng)
    n_steps = 400
    xs = {}
    for name in ("a", "b"):
        x = rng.uniform(0.3, 0.7, (n_steps, 2)) * (rng.random((n_steps, 2)) < 0.05)
        np.save(d / f"x_{name}.npy", x)
        xs[name] = x
    runs = {}
    for name in ("a", "b"):
        rc, out = _run(
            d,
            f"""
            network: {{kind: file, W: W.npz, Win: Win.npy, rings: [3, 4, 5]}}
            model: {{kind: discrete, dt: 0.01}}
            init: {{kind: file, path: init.npz}}
            input: {{kind: file, path: x_{name}.npy}}
            record: {{every: 4, which: all, fields: [o, v]}}
            output: {{plots: false}}
        """,
            name=f"out_{name}",
        )
        assert rc == 0
        summary, config, z = _load(out)
        assert summary["n_steps"] == n_steps  # taken from the input table
        assert summary["n_inputs"] == 2 and summary["n_rings"] == 3
        o_ref, v_ref = numpy_discrete_map(W, Win, xs[name], v0, o0, n_steps, 0.01, 1.0, 0.49, 0.2)
        np.testing.assert_array_equal(z["o"], o_ref[::4])
        np.testing.assert_allclose(z["v"], v_ref[::4], rtol=0, atol=1e-12)
        runs[name] = z
    assert not np.array_equal(runs["a"]["o"], runs["b"]["o"])
    # the same network without input is yet another trajectory: the input really is applied
    o_free, _ = numpy_discrete_map(W, None, None, v0, o0, n_steps, 0.01, 1.0, 0.49, 0.2)
    assert not np.array_equal(runs["a"]["o"], o_free[::4])


BAD = [
    ("network: {kind: lattice, shap: [8, 8]}\n", "network.shap"),
    ("network: {kind: lattice, shape: [8, 8]\n", "invalid YAML"),
    ("network: {kind: ring}\nmodel: {dt: fast}\n", "model.dt"),
    ("network: {kind: ring}\ninit: {kind: file, path: missing.npz}\n", "init.path"),
    ("network: {kind: lattice, shape: [4, 4], ring_size: 4, probe: 5}\n", "network.probe"),
    ("network: {kind: ring}\nrun: {n_steps: 105}\nrecord: {every: 10}\n", "record.every"),
    ("network: {kind: ring}\nrun: {n_steps: 100, batch: 2}\ninit: {kind: pulses}\n", "run.batch"),
    (
        "network: {kind: file, W: W.npz, Win: Win.npy, rings: [3, 4, 5]}\ninput: {kind: file, path: x.npy}\n"
        "run: {n_steps: 100}\n",
        "input.path",
    ),
    ("network: {kind: file, W: W.npz, rings: [3, 4]}\n", "network.rings"),
    ("network: {kind: ring, size: 6}\nmodel: {dt: 0.01}\nmodel: {dt: 0.02}\n", "'model' appears twice"),
    ("network: {kind: ring, size: 6}\nmodel: {theta_H: 0.2, theta_L: 0.4}\n", "model.theta_H"),
    ("network: {kind: ring, size: 6}\nmodel: {tau: 0}\n", "model.tau"),
    ("network: {kind: ring, size: 6}\ninput: {kind: file, path: text.npy}\n", "not a .npy array file"),
    ("network: {kind: ring, size: 6}\ninit: {kind: file, path: o_is_3.npz}\n", "init.o: got 3.0"),
    ("network: {kind: ring, size: 6}\ninit: {kind: file, path: runs}\n", "is a directory"),
]


@pytest.mark.parametrize("text, field", BAD, ids=[f for _, f in BAD])
def test_bad_config_one_line_and_nothing_written(tmp_path, rng, capsys, text, field):
    _file_network(tmp_path, rng)
    np.save(tmp_path / "x.npy", np.zeros((50, 2)))  # wrong length for n_steps = 100
    (tmp_path / "text.npy").write_text("not an array")  # NumPy alone would call it pickled data
    np.savez(tmp_path / "o_is_3.npz", v=np.full(6, 0.5), o=np.full(6, 3.0))
    (tmp_path / "config.yaml").write_text(text)
    parent = tmp_path / "runs"
    parent.mkdir()
    capsys.readouterr()
    rc = main(["run", str(tmp_path / "config.yaml"), "--out", str(parent / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in err, err
    assert os.listdir(parent) == []


def test_config_that_is_a_directory_is_named_as_such(tmp_path, capsys):
    capsys.readouterr()
    rc = main(["run", str(tmp_path), "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "CONFIG" in err and "is a directory" in err, err
    assert os.listdir(tmp_path) == []


def test_out_directory_is_not_clobbered_and_failures_leave_nothing(tmp_path, capsys, monkeypatch):
    ring = """
        network: {kind: ring, size: 4}
        init: {kind: pulses}
        run: {n_steps: 100}
        output: {plots: false}
    """
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, _ = _run(tmp_path, ring)
    assert rc == 2 and "--out" in capsys.readouterr().err
    assert os.listdir(out) == ["keep.txt"]
    rc, _ = _run(tmp_path, ring, "--overwrite")
    assert rc == 0 and "keep.txt" not in os.listdir(out) and "summary.json" in os.listdir(out)
    capsys.readouterr()

    # a failure while writing leaves neither the output nor its temporary sibling behind
    def boom(*a, **k):
        raise OSError("disk full")

    import diffring._run

    monkeypatch.setattr(diffring._run.np, "savez_compressed", boom)
    rc, _ = _run(tmp_path, ring, name="failed")
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "disk full" in err
    assert sorted(os.listdir(tmp_path)) == ["config.yaml", "out"]


def _subprocess(args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    return subprocess.run(
        [sys.executable, "-m", "diffring", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fresh_process_dtype(tmp_path, dtype):
    (tmp_path / "c.yaml").write_text(
        f"dtype: {dtype}\nnetwork: {{kind: ring, size: 5}}\ninit: {{kind: pulses}}\n"
        "run: {n_steps: 200}\nrecord: {every: 100}\noutput: {plots: false}\n"
    )
    p = _subprocess(["run", "c.yaml", "--out", "o", "--quiet"], tmp_path)
    assert p.returncode == 0, p.stderr
    summary, config, z = _load(tmp_path / "o")
    # float64 needs JAX's x64 switch, which the CLI flips in a fresh process before building
    assert z["final_v"].dtype == np.dtype(dtype) and z["v"].dtype == np.dtype(dtype)
    assert summary["dtype"] == dtype


def test_fresh_process_bad_config(tmp_path):
    (tmp_path / "c.yaml").write_text("network: {kind: ring, sise: 5}\n")
    p = _subprocess(["run", "c.yaml", "--out", "o"], tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "network.sise" in p.stderr and "size" in p.stderr
    assert not (tmp_path / "o").exists() and sorted(os.listdir(tmp_path)) == ["c.yaml"]


def test_smooth_model_with_inputs(tmp_path, rng):
    """Fixed-step smooth solve driven by an input file: the solver options and inputs reach the solve
    (one segment equals one library solve with `ODESolve(adjoint=ScanAdjoint())`, the route the CLI
    takes for fixed steps), and the CLI's segments (t0 > 0, inputs sliced per segment) follow the same
    trajectory: each input sample is held over its interval, so cutting the run changes no step."""
    d = tmp_path
    W, Win, v0, o0 = _file_network(d, rng)
    x = rng.uniform(0.3, 0.7, (300, 2)) * (rng.random((300, 2)) < 0.05)
    np.save(d / "x.npy", x)
    text = """
        network: {kind: file, W: W.npz, Win: Win.npy, rings: [3, 4, 5]}
        model: {kind: smooth, dt: 0.01, beta: 100.0, eps_o: 0.01, solver: heun, adaptive: false, dt0: 0.005}
        init: {kind: file, path: init.npz}
        input: {kind: file, path: x.npy}
        record: {every: 10, which: all, fields: [o, v]}
        output: {plots: false}
    """
    rc, out1 = _run(d, text, "--set", "run.segments=1", name="one")
    rc2, outs = _run(d, text, name="segmented")
    assert rc == rc2 == 0
    (s1, _, z1), (ss, _, zs) = _load(out1), _load(outs)
    assert s1["segments"] == 1 and ss["segments"] > 1 and s1["status"] == ss["status"] == "ok"
    import diffrax

    net = dr.from_files(str(d / "W.npz"), [3, 4, 5], Win=str(d / "Win.npy"))
    model = dr.SmoothRelaxation(net, 0.01, beta=100.0, eps_o=0.01)
    method = dr.ODESolve(solver=diffrax.Heun(), stepsize_controller=diffrax.ConstantStepSize(), dt0=0.005,
                         adjoint=dr.ScanAdjoint())
    s0 = dr.init.from_file(net, str(d / "init.npz"))
    rec = dr.Record(every=10, which="all")
    sol = dr.simulate(model, s0, n_steps=300, inputs=np.asarray(x), method=method, record=rec)
    np.testing.assert_allclose(z1["v"], np.asarray(sol.v), rtol=0, atol=1e-12)
    np.testing.assert_allclose(z1["o"], np.asarray(sol.o), rtol=0, atol=1e-12)
    np.testing.assert_allclose(zs["v"], z1["v"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(zs["o"], z1["o"], rtol=0, atol=1e-12)
    # the inputs matter: the same solve without them is far off
    free = dr.simulate(model, s0, n_steps=300, method=method, record=rec)
    assert np.max(np.abs(np.asarray(free.v) - z1["v"])) > 0.1


def test_continuous_model_equals_library_run(tmp_path):
    rc, out = _run(
        tmp_path,
        """
        network: {kind: rings, sizes: [3, 5]}
        model: {kind: continuous, dt: 0.05}
        init: {kind: pulses}
        run: {t1: 20.0}
        record: {every: 4, which: probes, fields: [o]}
        output: {plots: false}
    """,
    )
    assert rc == 0
    summary, config, z = _load(out)
    assert summary["n_steps"] == 400 and z["o"].shape == (101, 2) and "v" not in z
    net = dr.rings([3, 5])
    sol = dr.simulate(
        dr.HardTrigger(net, 0.05),
        dr.init.pulses(net),
        n_steps=400,
        record=dr.Record(every=4, which="probes", fields=("o",)),
    )
    np.testing.assert_array_equal(z["o"], np.asarray(sol.o))
    np.testing.assert_array_equal(z["final_v"], np.asarray(sol.state.v))
