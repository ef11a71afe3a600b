"""`diffring sweep`: every member equals its independent single run (the `diffring run` driver on the
member's own resolved config) bit for bit; grouping into programs; results.zarr read back with
xarray; validation errors that name `grid.<key>[i]`; per-member non-finite status."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

from diffring._cli import main
from diffring._config import build
from diffring._errors import DiffringError
from diffring._run import simulate_segments
from diffring._sweep import run_sweep, summary_table, validate_sweep

BASE = {
    "network": {"kind": "lattice", "shape": [4, 4], "ring_size": 6, "scheme": "S0", "eps": 0.1},
    "model": {"kind": "discrete", "dt": 0.01},
    "init": {"kind": "random_phase", "transient": 3.0},
    "run": {"n_steps": 2000, "segments": 2, "chunk_size": 2},
    "record": {"every": 100, "observables": False},  # the lattice observables: see test_sweep_observables
    "output": {"plots": False},
}


def _zarr(out):
    import zarr

    g = zarr.open_group(os.path.join(out, "results.zarr"), mode="r")
    return {k: np.asarray(g[k][...]) for k in g.array_keys()}


def _single(cfg, record=None):
    b = build(cfg)
    if record is not None:  # the same Record object (its observables closure): no recompilation per member
        b = b._replace(record=record)
    records, _, status, _, _ = simulate_segments(cfg, b, progress=False)
    return records, int(status)


def test_sweep_members_equal_single_runs(tmp_path):
    raw = {
        "base": BASE,
        "grid": {"network.eps": [0.05, 0.3], "network.shape": [[4, 4], [3, 5]]},
        "seeds": [0, 1, 2],
        "chunk": 4,
    }
    out = str(tmp_path / "sw")
    summary = run_sweep(raw, out, progress=False)
    # eps is a traced leaf (one program per shape); a shape change is a new program
    assert summary["n_programs"] == 2 and summary["n_members"] == 12
    assert summary["n_chunks"] == 4  # 6 members per program in chunks of 4 (+ a padded chunk of 2)
    assert summary["checkpoint"] == {"chunks_computed": 4, "chunks_reused": 0, "chunks_corrupted": 0}
    z = _zarr(out)
    assert z["status"].shape == (2, 2, 3) and "xi" not in z
    np.testing.assert_array_equal(z["network.eps"], [0.05, 0.3])
    np.testing.assert_array_equal(z["seed"], [0, 1, 2])
    sweep = validate_sweep(raw)
    for m in sweep.members:
        rec, st = _single(m.cfg)
        idx = (*m.point, m.seed_index)
        assert z["status"][idx] == st == 0
        np.testing.assert_array_equal(z["time"], rec["t"])
        np.testing.assert_array_equal(z["R"][idx], rec["R"])  # bit for bit
        assert z["R_final"][idx] == rec["R"][-1]
    # a member's seed is its own: two seeds of one point differ, and R has become defined
    assert not np.array_equal(z["R"][0, 0, 0], z["R"][0, 0, 1]) and np.all(z["R_final"] > 0)

    import xarray as xr

    ds = xr.open_zarr(os.path.join(out, "results.zarr"))
    assert ds["R"].dims == ("network.eps", "network.shape", "seed", "time")
    assert list(ds["network.shape"].values) == ["[4, 4]", "[3, 5]"]
    sel = ds["R_final"].sel({"network.eps": 0.3, "seed": 2}).values
    np.testing.assert_array_equal(sel, z["R_final"][1, :, 2])

    table = summary_table(out)
    lines = table.strip().splitlines()
    assert len(lines) == 1 + 4 + 1
    # the table's mean over seeds equals numpy's on the stored finals
    row = lines[1 + 3].split()  # eps 0.3, shape [3, 5]
    assert float(row[-3]) == pytest.approx(float(np.mean(z["R_final"][1, 1])), abs=5e-5)
    with open(os.path.join(out, "sweep.yaml")) as f:
        resolved = yaml.safe_load(f)
    assert resolved["grid"] == raw["grid"] and resolved["seeds"] == [0, 1, 2]


def test_sweep_observables_equal_single_runs(tmp_path):
    """xi(t), wall density(t) and C1(t) of the on-the-fly lattice observables, per member."""
    base = {**BASE, "record": {"every": 100}}
    raw = {"base": base, "grid": {"network.eps": [0.1, 0.3]}, "seeds": [5]}
    out = str(tmp_path / "sw")
    run_sweep(raw, out, progress=False)
    z = _zarr(out)
    members = validate_sweep(raw).members
    record = build(members[0].cfg).record
    for m in members:
        rec, st = _single(m.cfg, record)
        idx = (*m.point, m.seed_index)
        assert z["status"][idx] == st == 0
        for name, src in (("R", "R"), ("xi", "xi_fit"), ("xi_cross", "xi_cross"), ("wall_density", "wall_density")):
            np.testing.assert_array_equal(z[name][idx], rec[src])  # bit for bit
        np.testing.assert_array_equal(z["C1"][idx], rec["C"][:, 1])
        assert z["xi_final"][idx] == rec["xi_fit"][-1] and z["wall_density_final"][idx] == rec["wall_density"][-1]


def test_nan_parameter_in_one_member(tmp_path, monkeypatch):
    """Injected fault: the config loader rejects NaN (see test_fuzz_config), so a NaN tau is put into
    one grid point's network after validation. That point's members get status non-finite; every
    other member of the same program and chunk keeps its exact single-run results."""
    import equinox as eqx
    import jax.numpy as jnp

    import diffring._config as config

    real = config.build_network

    def poisoned(cfg):
        net = real(cfg)
        if cfg["model"]["theta_H"] == 0.45:
            net = eqx.tree_at(lambda n: n.tau, net, jnp.asarray(jnp.nan, net.dtype))
        return net

    raw = {
        "base": {**BASE, "network": {"kind": "ring", "size": 5}, "init": {"kind": "uniform"}},
        "grid": {"model.theta_H": [0.49, 0.45, 0.47]},
        "seeds": [3, 4],
        "chunk": 6,
    }
    out = str(tmp_path / "sw")
    monkeypatch.setattr(config, "build_network", poisoned)
    summary = run_sweep(raw, out, progress=False)
    monkeypatch.setattr(config, "build_network", real)
    z = _zarr(out)
    assert summary["n_programs"] == 1 and summary["n_chunks"] == 1  # the NaN member shares the program and chunk
    np.testing.assert_array_equal(z["status"], [[0, 0], [1, 1], [0, 0]])
    assert summary["status_counts"] == {"ok": 4, "non-finite": 2}
    for m in validate_sweep(raw).members:
        if m.point == (1,):
            continue
        rec, st = _single(m.cfg)
        np.testing.assert_array_equal(z["R"][(*m.point, m.seed_index)], rec["R"])


@pytest.mark.parametrize(
    "grid, field",
    [
        ({"network.eps": [0.1, "x"]}, "grid.network.eps[1]"),
        ({"network.shape": [[4, 4], [0, 4]]}, "grid.network.shape[1]"),
        ({"network.epz": [0.1]}, "grid.network.epz[0]"),
        ({"run.n_steps": [600, 601]}, "grid.run.n_steps[1]"),
        ({"network.eps": []}, "grid.network.eps"),
        ({"seed": [1, 2]}, "grid.seed"),
        ({"network.eps": [0.1, 0.2, 0.1]}, "grid.network.eps[2]"),  # a repeated value: a duplicated member
        ({"network.shape": [[4, 4], [4, 4]]}, "grid.network.shape[1]"),
    ],
)
def test_bad_grid_values_are_named_before_any_work(tmp_path, capsys, grid, field):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "grid": grid, "seeds": [0]}))
    rc = main(["sweep", str(path), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and field in err, err
    assert not (tmp_path / "o").exists()


def test_validation_of_top_level_keys():
    with pytest.raises(DiffringError, match=r"seeds\[1\]"):
        validate_sweep({"base": BASE, "seeds": [0, -1]})
    with pytest.raises(DiffringError, match="base.network.eps"):
        validate_sweep({"base": {**BASE, "network": {"kind": "lattice", "shape": [4], "eps": "a"}}})
    with pytest.raises(DiffringError, match="base.run.batch"):
        validate_sweep({"base": {**BASE, "run": {"n_steps": 600, "batch": 2}}})
    with pytest.raises(DiffringError, match="grids"):
        validate_sweep({"base": BASE, "grids": {}})
    with pytest.raises(DiffringError, match="chunk"):
        validate_sweep({"base": BASE, "chunk": 0})
    with pytest.raises(DiffringError, match=r"seeds\[0\].*9223372036854775807"):  # raised OverflowError
        validate_sweep({"base": BASE, "seeds": [2**64]})


def test_cli_sweep_and_summary(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    base = {**BASE, "network": {"kind": "ring", "size": 6}, "init": {"kind": "random_phase", "transient": 2.0}}
    path.write_text(yaml.safe_dump({"base": base, "grid": {"model.theta_L": [0.2, 0.25]}, "seeds": [0, 1]}))
    out = tmp_path / "o"
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["sweep", "--summary", str(out)]) == 0
    text = capsys.readouterr().out
    assert "model.theta_L" in text and "4 members" in text
    # a second plain run refuses to clobber; --resume finds it complete
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 2
    assert main(["sweep", str(path), "--out", str(out), "--quiet", "--resume"]) == 0
    assert "already complete" in capsys.readouterr().err
    with open(out / "summary.json") as f:
        s = json.load(f)
    assert s["status"] == ["ok"] * 4 and s["versions"]["jax"]

    # --resume with a different sweep is refused on a finished DIR too (it said "already complete")
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"base": base, "grid": {"model.theta_L": [0.2, 0.3]}, "seeds": [0, 1]}))
    capsys.readouterr()
    assert main(["sweep", str(other), "--out", str(out), "--quiet", "--resume"]) == 2
    assert "--resume" in capsys.readouterr().err
    # --summary takes only DIR, and a DIR that is not a finished sweep is one line, not an internal error
    assert main(["sweep", "--summary", str(out), "--out", str(tmp_path / "x")]) == 2
    run_dir = tmp_path / "a_run"
    assert main(["run", "--set", "network.kind=ring", "--set", "run.n_steps=20", "--set", "record.every=10",
                 "--set", "output.plots=false", "--out", str(run_dir), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["sweep", "--summary", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not a finished sweep directory" in err, err
