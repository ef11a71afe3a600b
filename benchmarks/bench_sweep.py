"""Benchmark: `diffring sweep` (members grouped into batched programs) against a loop of single runs,
and the cost of checkpointing every segment of a run.

1. Sweep: an eps x seed grid of one lattice (one program) through `diffring._sweep.run_sweep`
   against the same members run one by one through the `diffring run` driver
   (`simulate_segments(cfg, build(cfg))`, in the same process, so compiled programs are reused
   across members). Wall time of the whole thing, median of repeats (interleaved), including
   building, compilation and (for the sweep) checkpoint and zarr writes; results equal bit for bit.
2. Checkpoint overhead: one run through `simulate_segments` with and without a `Checkpoint`
   (every segment's records, state and tracker written atomically with fsync), median of repeats.

Target (issue 5): the sweep is faster per member than single runs; checkpointing costs < 10 % of a run.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import Report, _median, fmt_s, loadavg, parser, table, verdict  # noqa: E402

from diffring._checkpoint import Checkpoint  # noqa: E402
from diffring._config import build  # noqa: E402
from diffring._run import simulate_segments  # noqa: E402
from diffring._sweep import run_sweep, validate_sweep  # noqa: E402


def main():
    p = parser(__doc__.splitlines()[0])
    args = p.parse_args()
    L = 8 if args.quick else 24
    n_eps, seeds = (4, [0, 1]) if args.quick else (8, [0, 1, 2, 3])
    n_steps = 1000 if args.quick else 5000
    repeats = args.repeats or (1 if args.quick else 3)
    rep = Report("sweep", "Sweeps and checkpoints", args)
    base = {
        "network": {"kind": "lattice", "shape": [L, L], "ring_size": 6, "scheme": "S0", "eps": 0.1},
        "model": {"kind": "discrete", "dt": 0.01},
        "init": {"kind": "random_phase", "transient": 10.0},
        "run": {"n_steps": n_steps, "segments": 5, "chunk_size": 8},
        "record": {"every": 100, "fields": [], "observables": False},
        "output": {"plots": False},
    }
    eps = [round(0.05 * (i + 1), 3) for i in range(n_eps)]
    raw = {"base": base, "grid": {"network.eps": eps}, "seeds": seeds, "chunk": 16}
    members = validate_sweep(raw).members
    M = len(members)
    n = 6 * L * L
    rep.add(
        f"### Sweep: {L} x {L} S0 lattice ({n} neurons), {n_steps} steps, eps x seeds = {n_eps} x {len(seeds)} = {M} "
        f"members; `run.chunk_size` 8, sweep `chunk` 16; observables off, probes' phases and R on"
    )
    rep.add()
    tmp = tempfile.mkdtemp(prefix="bench_sweep-")

    def sweep():
        out = os.path.join(tmp, "sweep")
        shutil.rmtree(out, ignore_errors=True)
        run_sweep(raw, out, progress=False)
        return out

    def singles():
        return [simulate_segments(m.cfg, build(m.cfg), progress=False)[0]["R"] for m in members]

    times = {"sweep": [], "singles": []}
    cold = {}
    for name, fn in (("sweep", sweep), ("singles", singles)):
        t0 = time.perf_counter()
        fn()
        cold[name] = time.perf_counter() - t0
    for _ in range(repeats):
        for name, fn in (("sweep", sweep), ("singles", singles)):
            t0 = time.perf_counter()
            res = fn()
            times[name].append(time.perf_counter() - t0)
            if name == "singles":
                single_R = res
    import zarr

    g = zarr.open_group(os.path.join(tmp, "sweep", "results.zarr"), mode="r")
    R = np.asarray(g["R"][...])
    diffs = [R[m.point + (m.seed_index,)] - r for m, r in zip(members, single_R, strict=True)]
    equal = all(not np.any(d) for d in diffs)
    max_diff = max(float(np.max(np.abs(d))) for d in diffs)
    n_diff = sum(bool(np.any(d)) for d in diffs)
    med = {k: _median(v) for k, v in times.items()}
    rows = [
        [
            "diffring sweep (run_sweep: 1 program, chunks of 16)",
            fmt_s(cold["sweep"]),
            fmt_s(med["sweep"]),
            fmt_s(med["sweep"] / M),
            f"{n * n_steps * M / med['sweep']:.3g}",
        ],
        [
            "loop of single runs (simulate_segments per member)",
            fmt_s(cold["singles"]),
            fmt_s(med["singles"]),
            fmt_s(med["singles"] / M),
            f"{n * n_steps * M / med['singles']:.3g}",
        ],
    ]
    rep.add(table(["variant", "first (cold, with compile)", "median warm", "per member", "neuron-steps/s"], rows))
    rep.add()
    rep.add(
        f"Every member's R(t) from the sweep equals its single run bit for bit: {equal} ({n_diff} of {M} members "
        f"differ, max |dR| = {max_diff:.3g}). States and phases of `simulate_batch` members equal their single runs; "
        "R sums over rings in a fixed pairwise order (`order_parameter`), so the batched program adds as the "
        "single one does (see docs/sweeps.md)."
    )
    speedup = med["singles"] / med["sweep"]
    rep.add(f"Speed-up of the sweep over single runs (warm, median of {repeats}): {speedup:.2f}x.")
    rep.add()

    # checkpoint overhead of one run
    Lr = 16 if args.quick else 64
    steps_r = 2000 if args.quick else 20000
    cfg = (
        validate_sweep(
            {"base": {**base, "network": {**base["network"], "shape": [Lr, Lr]}, "run": {"n_steps": steps_r}}}
        )
        .members[0]
        .cfg
    )
    built = build(cfg)
    nr = 6 * Lr * Lr
    rep.add(
        f"### Checkpoint overhead: one {Lr} x {Lr} lattice run ({nr} neurons, {steps_r} steps, "
        f"{cfg['run']['segments']} segments)"
    )
    rep.add()

    def plain():
        return simulate_segments(cfg, built, progress=False)

    def ckpt():
        d = os.path.join(tmp, "ck")
        c = Checkpoint(d, "bench", resume=False)
        r = simulate_segments(cfg, built, progress=False, checkpoint=c)
        c.remove()
        return r

    plain()
    ckpt()
    tt = {"plain": [], "ckpt": []}
    for _ in range(repeats):
        for name, fn in (("plain", plain), ("ckpt", ckpt)):
            t0 = time.perf_counter()
            fn()
            tt[name].append(time.perf_counter() - t0)
    mp, mc = _median(tt["plain"]), _median(tt["ckpt"])
    rep.add(
        table(
            ["variant", "median wall (incl. the duplicate first segment for compile timing)"],
            [["no checkpoint", fmt_s(mp)], ["checkpoint every segment", fmt_s(mc)]],
        )
    )
    over = mc / mp - 1
    rep.add()
    rep.add(f"Checkpoint overhead: {100 * over:+.1f} % (load average now {loadavg()}).")
    rep.add()
    rep.add(
        f"Acceptance: sweep {speedup:.2f}x single runs per member, bit-for-bit equal {equal} "
        f"{verdict(speedup >= 1 and equal)}; checkpoint overhead {100 * over:+.1f} % {verdict(over < 0.10)}"
    )
    shutil.rmtree(tmp, ignore_errors=True)
    rep.write()


if __name__ == "__main__":
    main()
