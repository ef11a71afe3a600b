"""The run driver behind `diffring run`: build from a resolved config, compile, simulate in equal
segments (one compilation, a progress bar), and write the output directory atomically.

Output directory (written to a temporary sibling and renamed at the end, so a failed run leaves
nothing that looks valid):

- `config.yaml`: the fully resolved config (feeding it back in reproduces the run);
- `summary.json`: versions, seed, sizes, n_steps, dt, dtype, per-member `status`, final `R`, `C1`,
  `xi` (`xi_final`, `xi_cross_final`), `wall_density_final`, `largest_domain_final`, and
  `timings` (build_s, compile_s, simulate_s, write_s, total_s; see `run`);
- `outputs.npz`: `t` (n_records,), recorded `o`, `v` (n_records, n_selected) with a leading batch
  axis when batched (record 0 is the initial state), `recorded` (indices of the recorded neurons),
  `R`, `phase`, `phase_valid` when phases are tracked; for chains and lattices with
  `record.observables` the on-the-fly observables of `diffring.lattice_observables` on the same
  time base (`xi` = `xi_fit`, `xi_cross`, `wall_density`, `C` (C(Delta) along axes), `C1` (its
  Delta = 1 value), `R_local`, `k_mean`, `n_domains`, `largest_domain`, `mean_domain_size`) and
  `final_phase_map` (the last record's ring phases on the grid); `final_v`, `final_o`, `probes`,
  `status`;
- `raster.png`, `phase_map.png` (with domain walls), `R.png`, `growth.png` (R and xi on log axes),
  `kymograph.png` (chains) and, with `output.animation`, `phase_maps.gif` (see `diffring._plot`).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping

import numpy as np

from ._config import Built, build, dump_yaml, jax_dtype
from ._errors import DiffringError
from ._io import check_out_path

RECORD_KEYS = ("t", "o", "v", "phase", "phase_valid", "R")
#: On-the-fly observables kept as time series (see `diffring.lattice_observables`).
OBSERVED_KEYS = ("xi_fit", "xi_cross", "wall_density", "C", "R_local", "k_mean", "n_domains", "largest_domain",
                 "mean_domain_size")


def default_out_dir() -> str:
    """`runs/<YYYYmmdd-HHMMSS>` under the current directory (with a suffix if it exists)."""
    base = os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    out, i = base, 1
    while os.path.exists(out):
        out, i = f"{base}-{i}", i + 1
    return out


def check_out_dir(out: str, overwrite: bool = False) -> None:
    """Refuse to write into an existing non-empty directory (unless `overwrite`) or onto a file."""
    check_out_path(out)
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise DiffringError("--out", out, "directory exists and is not empty: choose another or pass --overwrite")


def _segments(n_blocks: int, max_segments: int) -> int:
    """The largest number of equal segments <= max_segments that divides the record blocks."""
    return max(s for s in range(1, min(max_segments, n_blocks) + 1) if n_blocks % s == 0)


def _versions() -> dict:
    """Package versions, and the JAX backend and XLA_FLAGS the run was compiled under (flags such as
    `--xla_cpu_prefer_vector_width` change the compiled code): the provenance stored with results."""
    import importlib.metadata as md

    import jax

    out = {"python": platform.python_version()}
    for name in ("diffring", "jax", "jaxlib", "equinox", "diffrax", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    out["jax_backend"] = jax.default_backend()
    out["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    return out


def simulate_segments(
    cfg: Mapping,
    built: Built,
    *,
    progress: bool = True,
    checkpoint=None,
    model_axes=None,
    time_compile: bool = True,
    desc: str = "",
):
    """Run `built` for run.n_steps in equal segments; return (records dict, final state, status, timings).

    The first segment computed is run twice: the first call includes tracing and XLA compilation,
    the second is pure execution; compile_s is their difference and simulate_s is the wall time of
    the segment loop after it (device-to-host copies included). Segment s + 1 is dispatched before
    segment s is copied to the host and checkpointed, so the writes overlap the computation
    (`checkpoint_s`: the host time spent writing checkpoints; only what is not hidden counts in
    simulate_s). A kill during a write loses only the unfinished next segment.

    With a `diffring._checkpoint.Checkpoint`, every finished segment (its records, the state, the
    phase tracker and the status so far) is saved as chunk `seg-<s>`; the longest run of valid
    saved segments from the start is loaded instead of recomputed, and the run continues from the
    last one's state and tracker, so a resumed run is bit for bit the uninterrupted one.
    `model_axes` (from `batched_model`) marks swept model leaves of a batched `built` (sweeps); the
    phase tracker then starts outside the program, so that every segment runs one compiled program.
    `time_compile=False` skips the duplicate first segment (compile_s is then not measured).
    """
    import jax
    import jax.numpy as jnp
    from tqdm.auto import tqdm

    import diffring as dr

    run, rec = cfg["run"], built.record
    n_steps, every, dt, B = run["n_steps"], rec.every, cfg["model"]["dt"], built.batch
    n_seg = _segments(n_steps // every, run["segments"])
    seg = n_steps // n_seg
    dtype = jax_dtype(cfg)
    batched = B > 1 or built.state0.v.ndim == 2
    axis = 1 if batched else 0

    def solve(s, state, tracker):
        t0 = jnp.asarray(s * seg * dt, dtype)  # an array, so every segment reuses one compilation
        x = None
        if built.inputs is not None:
            x = built.inputs[..., s * seg : (s + 1) * seg, :]
        kw = dict(n_steps=seg, record=rec, inputs=x, method=built.method, t0=t0, tracker=tracker)
        if batched:
            return dr.simulate_batch(built.model, state, chunk_size=run["chunk_size"], model_axes=model_axes, **kw)
        return dr.simulate(built.model, state, **kw)

    def to_host(sol):
        host = {k: np.asarray(getattr(sol, k)) for k in RECORD_KEYS if getattr(sol, k) is not None}
        if sol.observed is not None:
            host.update({k: np.asarray(sol.observed[k]) for k in OBSERVED_KEYS if k in sol.observed})
        return host

    parts, status = [], None
    timings = {"compile_s": 0.0}
    state, tracker = built.state0, None
    if model_axes is not None and rec.phases:
        tracker = dr.PhaseTracker.init(state.o[..., built.network.rings.probes], jnp.asarray(0.0, dtype))
    start = 0
    if checkpoint is not None:
        start, state, tracker, status, parts = _load_segments(checkpoint, n_seg, state, lambda st: solve(0, st, None))
    bar = tqdm(
        total=n_steps,
        initial=start * seg,
        unit="step",
        unit_scale=True,
        desc=f"{desc}compiling" if time_compile else f"{desc}simulating",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    sim = ckpt_s = 0.0
    try:
        first = 0.0
        if start < n_seg and time_compile:
            tic = time.perf_counter()
            to_host(solve(start, state, tracker))
            first = time.perf_counter() - tic
            bar.set_description(f"{desc}simulating")
            bar.reset(total=n_steps)  # restart the clock: the rate shown excludes compilation
            bar.update(start * seg)
        tic = time.perf_counter()
        pending = solve(start, state, tracker) if start < n_seg else None
        for s in range(start, n_seg):
            sol = pending
            if s == start and time_compile:
                jax.block_until_ready(sol)
                timings["compile_s"] = max(first - (time.perf_counter() - tic), 0.0)
            state, tracker = sol.state, sol.tracker
            # dispatch the next segment first: the host work below overlaps its computation
            pending = solve(s + 1, state, tracker) if s + 1 < n_seg else None
            host = to_host(sol)
            st = np.asarray(sol.status)
            status = st if status is None else np.where(status == 0, st, status)  # keep the first failure
            if s > 0:  # drop the duplicated first record (the previous segment's last one)
                host = {k: np.take(a, np.arange(1, a.shape[axis]), axis=axis) for k, a in host.items()}
            parts.append(host)
            if checkpoint is not None:
                c0 = time.perf_counter()
                _save_segment(checkpoint, s, host, state, tracker, status)
                ckpt_s += time.perf_counter() - c0
            bar.update(seg)
            if "R" in host:
                r = host["R"][..., -1]
                bar.set_postfix(R=f"{float(np.mean(r)):.3f}")
        sim = time.perf_counter() - tic
    finally:
        bar.close()
    timings["simulate_s"] = sim
    if checkpoint is not None:
        timings["checkpoint_s"] = ckpt_s
    records = {k: np.concatenate([p[k] for p in parts], axis=axis) for k in parts[0]}
    if batched:
        records["t"] = records["t"][0]  # every member shares the record times
    return records, state, status, timings, n_seg


def _save_segment(checkpoint, s, host, state, tracker, status) -> None:
    import jax

    arrays = {f"rec/{k}": a for k, a in host.items()}
    arrays["state/v"], arrays["state/o"] = np.asarray(state.v), np.asarray(state.o)
    for i, leaf in enumerate(jax.tree.leaves(tracker)):
        arrays[f"tracker/{i}"] = np.asarray(leaf)
    arrays["status"] = np.asarray(status)
    checkpoint.save(f"seg-{s:05d}", arrays)


def _load_segments(checkpoint, n_seg, state0, solve0):
    """The longest run of valid saved segments from the start: (next segment, state, tracker, status,
    records per segment). The tracker's structure comes from tracing (not running) one segment."""
    import jax
    import jax.numpy as jnp

    from ._models import State

    parts, chunk = [], None
    s = 0
    while s < n_seg:
        z = checkpoint.load(f"seg-{s:05d}")
        if z is None:
            break
        chunk = z
        parts.append({k[4:]: a for k, a in z.items() if k.startswith("rec/")})
        s += 1
    if chunk is None:
        return 0, state0, None, None, []
    like = jax.eval_shape(solve0, state0).tracker
    leaves, treedef = jax.tree.flatten(like)
    tracker = jax.tree.unflatten(treedef, [jnp.asarray(chunk[f"tracker/{i}"]) for i in range(len(leaves))])
    state = State(jnp.asarray(chunk["state/v"]), jnp.asarray(chunk["state/o"]))
    return s, state, tracker, chunk["status"], parts


def checkpoint_dir(out: str) -> str:
    """Where `run` keeps its checkpoint while `out` is not finished: `<out>.checkpoint`."""
    return os.path.abspath(out).rstrip(os.sep) + ".checkpoint"


def _estimate_bytes(cfg: Mapping, built: Built) -> int:
    """A generous estimate of what a run writes (checkpoint + outputs), for the free-space check."""
    net, rec = built.network, cfg["record"]
    which = rec["which"]
    n_sel = net.n_neurons if which == "all" else net.n_rings if which == "probes" else len(which)
    per_record = n_sel * len(rec["fields"]) + (2 * net.n_rings + 16 if rec["phases"] else 0) + 8
    n_records = cfg["run"]["n_steps"] // rec["every"] + 1
    itemsize = 8 if cfg["dtype"] == "float64" else 4
    return int(2 * cfg["run"]["batch"] * (n_records * per_record + 4 * net.n_neurons) * itemsize) + 2**20


def run(cfg: Mapping, out: str, *, progress: bool = True, overwrite: bool = False, resume: bool = False) -> dict:
    """Build, simulate and write one run of a resolved config into `out`; returns the summary.

    Raises `DiffringError` for a bad config, a bad file or an unwritable `out` (or too little free
    space for it) before any work starts and before anything is written. Every finished segment is
    checkpointed in `checkpoint_dir(out)`; after a crash or `kill -9`, `resume=True` continues from
    it (bit for bit the uninterrupted run) and, if `out` is already complete, returns its summary.
    The checkpoint is removed when `out` is written, and also when the run fails with a Python
    exception (so a failed run leaves nothing behind); a kill, a crash of the process or Ctrl-C
    keeps it.
    """
    import jax

    import diffring as dr

    from ._checkpoint import Checkpoint, check_writable, fingerprint

    t_start = time.perf_counter()
    if resume and os.path.isfile(os.path.join(out, "summary.json")):
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
        summary["already_complete"] = True
        return summary
    check_out_dir(out, overwrite)
    check_writable(out)
    tic = time.perf_counter()
    built = build(cfg)
    jax.block_until_ready(built.state0)
    build_s = time.perf_counter() - tic
    check_writable(out, _estimate_bytes(cfg, built))

    key = fingerprint({"config": dict(cfg), "diffring": dr.__version__})
    ckpt = Checkpoint(checkpoint_dir(out), key, resume=resume)
    try:
        summary = _run_and_write(cfg, out, built, ckpt, progress, overwrite, t_start, build_s)
    except Exception:
        ckpt.remove()
        raise
    ckpt.remove()
    return summary


def _run_and_write(cfg, out, built, ckpt, progress, overwrite, t_start, build_s):
    import jax

    import diffring as dr

    records, state, status, timings, n_seg = simulate_segments(cfg, built, progress=progress, checkpoint=ckpt)
    net = built.network
    batched = status.ndim == 1
    outputs = dict(records)
    outputs["final_v"] = np.asarray(state.v)
    outputs["final_o"] = np.asarray(state.o)
    outputs["probes"] = np.asarray(net.rings.probes)
    which = built.record.which
    outputs["recorded"] = (
        np.arange(net.n_neurons) if which == "all" else outputs["probes"] if which == "probes" else np.asarray(which)
    )
    outputs["status"] = status.astype(np.int32)
    names = [dr.STATUS_NAMES[int(s)] for s in np.atleast_1d(status)]
    R_final = C1_final = None
    final = {}
    if "R" in records:
        R_final = records["R"][..., -1].tolist()
    if "C" in records:
        # C(Delta) is along the grid axes, averaged over them: C1 is the nearest-neighbour correlation
        # (none on a grid of one ring, where C has only Delta = 0).
        if records["C"].shape[-1] > 1:
            outputs["C1"] = records["C"][..., 1]
            C1_final = outputs["C1"][..., -1].tolist()
        outputs["xi"] = records["xi_fit"]
        final = {
            "xi_final": records["xi_fit"][..., -1].tolist(),
            "xi_cross_final": records["xi_cross"][..., -1].tolist(),
            "wall_density_final": records["wall_density"][..., -1].tolist(),
            "largest_domain_final": records["largest_domain"][..., -1].tolist(),
        }
    if "phase" in records and net.grid is not None:
        outputs["final_phase_map"] = records["phase"][..., -1, :].reshape(records["phase"].shape[:-2] + tuple(net.grid))

    n_steps = cfg["run"]["n_steps"]
    summary = {
        "diffring_version": dr.__version__,
        "jax_version": jax.__version__,
        "versions": _versions(),
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "seed": cfg["seed"],
        "dtype": cfg["dtype"],
        "network_kind": cfg["network"]["kind"],
        "model_kind": cfg["model"]["kind"],
        "init_kind": cfg["init"]["kind"],
        "n_neurons": int(net.n_neurons),
        "n_rings": int(net.n_rings),
        "n_inputs": int(net.n_inputs),
        "grid": list(net.grid) if net.grid is not None else None,
        "n_steps": n_steps,
        "dt": cfg["model"]["dt"],
        "t1": cfg["run"]["t1"],
        "batch": int(status.shape[0]) if batched else 1,
        "record_every": cfg["record"]["every"],
        "n_records": int(records["t"].shape[-1]),
        "segments": n_seg,
        "status": names if batched else names[0],
        "R_final": R_final,
        "C1_final": C1_final,
        **final,
        "checkpoint": ckpt.counters(),
        "timings": {"build_s": build_s, **timings},
        "timings_note": "compile_s = first call of segment 1 minus a re-run of it (tracing + XLA compilation); "
        "simulate_s = all segments after compilation, including copying records to the host; "
        "build_s includes building the initial state (random_phase simulates isolated rings)",
    }
    members = summary["batch"]
    summary["neuron_steps_per_s"] = net.n_neurons * n_steps * members / max(timings["simulate_s"], 1e-12)
    if any(n != "ok" for n in names):
        print(f"diffring: warning: status {names}; see summary.json", file=sys.stderr)

    tic = time.perf_counter()
    _write_atomic(out, cfg, summary, outputs, net.grid, overwrite=overwrite, t_start=t_start, tic=tic)
    return summary


@contextlib.contextmanager
def atomic_out_dir(out: str, overwrite: bool = False):
    """Yield a temporary sibling of `out` to fill; when the block succeeds it replaces `out` in one
    rename, and on any error it is removed, so nothing half-written is ever found at `out`."""
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the final directory should not be
    try:
        yield tmp
        check_out_dir(out, overwrite)
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def _write_atomic(out, cfg, summary, outputs, grid, *, overwrite, t_start, tic):
    from ._plot import save_run_plots

    with atomic_out_dir(out, overwrite) as tmp:
        with open(os.path.join(tmp, "config.yaml"), "w") as f:
            f.write(dump_yaml(cfg))
        np.savez_compressed(os.path.join(tmp, "outputs.npz"), **outputs)
        if cfg["output"]["plots"]:
            summary["plots"] = save_run_plots(
                outputs,
                grid,
                tmp,
                max_rows=cfg["output"]["raster_rows"],
                periodic=cfg["network"].get("boundary", "periodic") == "periodic",
                animation=cfg["output"]["animation"],
            )
        summary["timings"]["write_s"] = time.perf_counter() - tic
        summary["timings"]["total_s"] = time.perf_counter() - t_start
        write_json(os.path.join(tmp, "summary.json"), summary)
