"""Checkpoint and resume: runs and sweeps killed (SIGKILL from the test, or the
`tests/kill_during_write.py` driver, which dies between a temporary write and its rename) resume to results
identical bit for bit to an uninterrupted run, and recompute no finished chunk (each manifest entry
records the session that computed it; the final summary counts computed / reused chunks).
Injected faults: a truncated checkpoint chunk is detected by its sha256 and recomputed; an
unwritable output directory fails before any work with one line naming --out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

import diffring as dr
from diffring._checkpoint import Checkpoint, check_writable
from diffring._cli import main
from diffring._config import build, resolve
from diffring._errors import DiffringError
from diffring._run import run, simulate_segments

REPO = os.path.dirname(os.path.dirname(os.path.abspath(dr.__file__)))
KILL_DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kill_during_write.py")

RUN = {
    "seed": 1,
    "network": {"kind": "lattice", "shape": [48, 48], "ring_size": 6, "scheme": "S0", "eps": 0.2},
    "model": {"kind": "discrete", "dt": 0.01},
    "init": {"kind": "uniform"},
    "run": {"n_steps": 16000, "segments": 20},
    "record": {"every": 100, "observables": False},
    "output": {"plots": False},
}

SWEEP = {
    "base": {
        "network": {"kind": "lattice", "shape": [24, 24], "ring_size": 6, "scheme": "S0", "eps": 0.1},
        "model": {"kind": "discrete", "dt": 0.01},
        "init": {"kind": "uniform"},
        "run": {"n_steps": 6000, "segments": 3},
        "record": {"every": 100, "observables": False},
        "output": {"plots": False},
    },
    "grid": {"network.eps": [0.05, 0.1, 0.15, 0.2, 0.25, 0.3]},
    "seeds": [0, 1],
    "chunk": 1,
}


def _start(args, cwd, kill_at=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    driver = ["-m", "diffring"] if kill_at is None else [KILL_DRIVER, str(kill_at)]
    return subprocess.Popen(
        [sys.executable, *driver, *args, "--quiet"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _manifest(ckpt_dir):
    try:
        with open(os.path.join(ckpt_dir, "manifest.json")) as f:
            return json.load(f)["chunks"]
    except (OSError, ValueError, KeyError):
        return {}


def _kill_chain(args, cwd, ckpt_dir, plan, timeout=240):
    """Run `args` once per kill point, then to the end. A kill point is ("hook", n): die during the
    n-th atomic write of that process (tests/kill_during_write.py); or ("sigkill", k): SIGKILL once
    k new chunks are finished. Checks after each invocation that no chunk finished before it was recomputed by it."""
    kills = 0
    for i, (kind, n) in enumerate([*plan, ("end", None)]):
        before = _manifest(ckpt_dir)
        first = args if i == 0 else [*args, "--resume"]
        p = _start(first, cwd, kill_at=n if kind == "hook" else None)
        deadline = time.monotonic() + timeout
        if kind == "sigkill":
            while p.poll() is None and len(_manifest(ckpt_dir)) < len(before) + n:
                assert time.monotonic() < deadline, "hung"
                time.sleep(0.01)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        try:
            _, err = p.communicate(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        if kind == "end":
            assert p.returncode == 0, err
        else:
            assert p.returncode in (137, -signal.SIGKILL), (kind, n, p.returncode, err)
            kills += 1
        after = _manifest(ckpt_dir)
        for name, entry in before.items():  # a finished chunk is never recomputed (nor rewritten)
            assert after.get(name, entry) == entry, name
    return kills, before


def _run_kills(tmp_path, plan):
    cfg = resolve(RUN)
    ref = tmp_path / "ref"
    run(cfg, str(ref), progress=False)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(RUN))
    out = tmp_path / "o"
    ckpt = str(out) + ".checkpoint"
    kills, before_last = _kill_chain(["run", "c.yaml", "--out", "o"], tmp_path, ckpt, plan)
    assert kills == len(plan)
    assert not os.path.exists(ckpt)  # removed once the output is written
    with open(out / "summary.json") as f:
        s = json.load(f)
    c = s["checkpoint"]
    assert c["chunks_reused"] == len(before_last) and c["chunks_computed"] == 20 - len(before_last)
    assert c["chunks_corrupted"] == 0
    with np.load(ref / "outputs.npz") as a, np.load(out / "outputs.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# Writes of a run: 1 (the empty manifest), then 2 per segment (chunk, manifest): with the hook, an
# odd n > 1 dies in the middle of a chunk write, an even n in the middle of a manifest write.


def test_run_killed_resumes_bit_for_bit(tmp_path):
    _run_kills(tmp_path, [("hook", 5), ("sigkill", 2), ("hook", 4)])


@pytest.mark.slow
def test_run_killed_five_times_resumes_bit_for_bit(tmp_path):
    rng = np.random.default_rng(7)
    plan = [
        ("hook", 2 * int(rng.integers(1, 5)) + 1),
        ("sigkill", int(rng.integers(1, 4))),
        ("hook", 2 * int(rng.integers(1, 4))),
        ("sigkill", int(rng.integers(1, 4))),
        ("sigkill", int(rng.integers(1, 4))),
    ]
    _run_kills(tmp_path, plan)


def _sweep_results(out):
    import zarr

    g = zarr.open_group(os.path.join(out, "results.zarr"), mode="r")
    return {k: np.asarray(g[k][...]) for k in g.array_keys()}


def _sweep_kills(tmp_path, plan):
    ref = tmp_path / "ref"
    from diffring._sweep import run_sweep

    run_sweep(SWEEP, str(ref), progress=False)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SWEEP))
    out = tmp_path / "o"
    kills, before_last = _kill_chain(["sweep", "s.yaml", "--out", "o"], tmp_path, str(out / "checkpoint"), plan)
    assert kills == len(plan)
    with open(out / "summary.json") as f:
        s = json.load(f)
    c = s["checkpoint"]
    assert c["chunks_reused"] == len(before_last) and c["chunks_computed"] == 12 - len(before_last)
    a, b = _sweep_results(ref), _sweep_results(out)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert np.all(a["status"] == 0) and len(_manifest(out / "checkpoint")) == 12


def test_sweep_killed_resumes_bit_for_bit(tmp_path):
    # sweep writes: sweep.yaml and the empty manifest (1-2), then per chunk 2: n = 6 dies writing chunk 2
    _sweep_kills(tmp_path, [("hook", 6), ("sigkill", 2)])


@pytest.mark.slow
def test_sweep_killed_five_times_resumes_bit_for_bit(tmp_path):
    rng = np.random.default_rng(11)
    plan = [
        ("hook", 2 * int(rng.integers(2, 4))),
        ("sigkill", int(rng.integers(1, 3))),
        ("hook", 2 * int(rng.integers(1, 3)) + 1),
        ("sigkill", int(rng.integers(1, 3))),
        ("sigkill", 1),
    ]
    _sweep_kills(tmp_path, plan)


@pytest.mark.parametrize("batch", [1, 3])
def test_truncated_run_checkpoint_is_recomputed(tmp_path, batch):
    run_ = {"n_steps": 1000, "segments": 5, "batch": batch}
    cfg = resolve({**RUN, "network": {"kind": "ring", "size": 6}, "run": run_})
    built = build(cfg)
    ref = simulate_segments(cfg, built, progress=False)
    d = str(tmp_path / "ck")
    ck = Checkpoint(d, "k", resume=False)
    simulate_segments(cfg, built, progress=False, checkpoint=ck)
    assert ck.counters() == {"chunks_computed": 5, "chunks_reused": 0, "chunks_corrupted": 0}
    path = os.path.join(d, "seg-00003.npz")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    ck = Checkpoint(d, "k", resume=True)
    again = simulate_segments(cfg, built, progress=False, checkpoint=ck)
    # segments 0-2 are loaded; 3 fails its sha256 and is recomputed, with 4 after it
    assert ck.counters() == {"chunks_computed": 2, "chunks_reused": 3, "chunks_corrupted": 1}
    for k in ref[0]:
        np.testing.assert_array_equal(ref[0][k], again[0][k], err_msg=k)
    np.testing.assert_array_equal(ref[1].v, again[1].v)
    with pytest.raises(DiffringError, match="different config"):
        Checkpoint(d, "other", resume=True)


def test_truncated_sweep_chunk_is_recomputed(tmp_path):
    from diffring._sweep import run_sweep

    raw = {**SWEEP, "base": {**SWEEP["base"], "network": {"kind": "ring", "size": 6}}, "seeds": [0]}
    raw["grid"] = {"model.theta_H": [0.45, 0.49]}
    out = str(tmp_path / "o")
    s1 = run_sweep(raw, out, progress=False)
    ref = _sweep_results(out)
    os.remove(os.path.join(out, "summary.json"))  # as if killed before the end
    chunk = os.path.join(out, "checkpoint", "chunk-000-00001.npz")
    with open(chunk, "r+b") as f:
        f.truncate(100)
    s2 = run_sweep(raw, out, resume=True, progress=False)
    assert s1["checkpoint"]["chunks_computed"] == 2
    assert s2["checkpoint"] == {"chunks_computed": 1, "chunks_reused": 1, "chunks_corrupted": 1}
    got = _sweep_results(out)
    for k in ref:
        np.testing.assert_array_equal(ref[k], got[k], err_msg=k)


def test_unwritable_out_dir_fails_before_work(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(RUN))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SWEEP))
    if os.geteuid() == 0:
        # root writes through permission bits: use a read-only file system instead
        target = "/proc/diffring-out"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = str(ro / "out")
    for args in (["run", str(tmp_path / "c.yaml")], ["sweep", str(tmp_path / "s.yaml")]):
        tic = time.perf_counter()
        rc = main([*args, "--out", target, "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "--out" in err and "cannot write" in err, err
        assert time.perf_counter() - tic < 5  # before building or simulating anything
        assert not os.path.exists(target)
    with pytest.raises(DiffringError, match="MiB free"):
        check_writable(str(tmp_path / "x"), need_bytes=2**62)
    assert sorted(os.listdir(tmp_path)) == ["c.yaml", "s.yaml"] + (["ro"] if os.geteuid() else [])
