"""Run every benchmark script and assemble benchmarks/RESULTS.md.

    python benchmarks/run.py            # full sizes (the acceptance numbers; about 10 min on 2 cores)
    python benchmarks/run.py --quick    # small sizes, smoke check -> benchmarks/results/quick/RESULTS.md
    python benchmarks/run.py --only lattice,batch   # a subset (RESULTS.md is still assembled from all files)

Each `bench_*.py` runs in its own process (fresh JAX, no cross-talk) and writes
`benchmarks/results/<name>.md`; this script concatenates those files, in a fixed order, under a
summary of their "Acceptance:" lines.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ORDER = ["small_world", "lattice", "batch", "smooth", "gradient", "reservoir", "sweep", "observables", "memory"]


def scripts() -> list[Path]:
    found = {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    return [found[n] for n in names]


def assemble(results_dir: Path, out: Path, command: str, log: list[str]):
    files = {p.stem: p for p in results_dir.glob("*.md") if p.name != "RESULTS.md"}
    names = [n for n in ORDER if n in files] + sorted(n for n in files if n not in ORDER)
    sections, summary = [], []
    for name in names:
        text = files[name].read_text().rstrip()
        sections.append(text)
        for line in text.splitlines():
            if line.startswith("Acceptance:"):
                summary.append(f"- `{name}`: {line.removeprefix('Acceptance:').strip()}")
    head = [
        "# Benchmark results",
        "",
        f"Command: `{command}` (each script's own command is at the top of its section).",
        "",
        f"Assembled {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} from `{results_dir.relative_to(ROOT)}/*.md`. "
        "CPU only; the machine may have been shared, see each section's load average. Timings are medians "
        "of repeats; compilation is reported separately.",
        "",
        "## Summary",
        "",
        *(summary or ["(no results yet)"]),
        "",
    ]
    if log:
        head += ["Scripts run in this invocation: " + ", ".join(log) + ".", ""]
    out.write_text("\n".join(head) + "\n" + "\n\n".join(sections) + "\n")
    print(f"wrote {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke check), results under results/quick/")
    p.add_argument("--only", default=None, help="comma-separated names to run (e.g. lattice,batch)")
    p.add_argument("--assemble-only", action="store_true", help="do not run anything, just rebuild RESULTS.md")
    args = p.parse_args()
    results_dir = HERE / "results" / "quick" if args.quick else HERE / "results"
    out = results_dir / "RESULTS.md" if args.quick else HERE / "RESULTS.md"
    command = (
        "python benchmarks/run.py" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
    )
    only = set(args.only.split(",")) if args.only else None
    log, failed = [], []
    if not args.assemble_only:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
        for script in scripts():
            name = script.stem.removeprefix("bench_")
            if only is not None and name not in only:
                continue
            cmd = [sys.executable, str(script.relative_to(ROOT))] + (["--quick"] if args.quick else [])
            print(f"== {' '.join(cmd)}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.call(cmd, cwd=ROOT, env=env)
            dt = time.perf_counter() - t0
            log.append(f"{name} ({dt:.0f} s{'' if rc == 0 else f', exit {rc}'})")
            if rc != 0:
                failed.append(name)
    results_dir.mkdir(parents=True, exist_ok=True)
    assemble(results_dir, out, command, log)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
