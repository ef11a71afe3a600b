"""Shared helpers for the benchmark scripts: timing, machine description and markdown output.

Timing hygiene (cf. diffrax's benchmark FAQ): every JAX call is wrapped in `jax.block_until_ready`;
the first call (trace + compile + run) is timed separately from the steady-state runs; steady-state
times are medians of several repeats; compilation is estimated as first call minus the median run.
The machine may be shared, so every result file records `os.getloadavg()` before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--quick", action="store_true", help="small sizes for a smoke check (results are not the acceptance numbers)"
    )
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (median is reported)")
    p.add_argument(
        "--out", type=Path, default=None, help="markdown file to write (default benchmarks/results/<name>.md)"
    )
    return p


def command_line() -> str:
    """The exact command that produced a result, relative to the repository root, with the XLA_FLAGS
    it ran under (they change the compiled code, e.g. `--xla_cpu_prefer_vector_width=512`)."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(Path(__file__).resolve().parent.parent)
    except ValueError:
        pass
    env = [f"XLA_FLAGS={shlex.quote(os.environ['XLA_FLAGS'])}"] if os.environ.get("XLA_FLAGS") else []
    return " ".join(env + ["python", shlex.quote(str(script))] + [shlex.quote(a) for a in sys.argv[1:]])


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def block(x):
    import jax

    return jax.block_until_ready(x)


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def time_interleaved(fns: dict, repeats: int, compile_fns: dict | None = None):
    """Time several callables in round-robin order (fairer under a fluctuating load).

    Returns {name: (compile_s, median_s, sorted_times, median_cpu_s)}. `compile_fns[name]`, if given,
    is the same call at a trivial size that compiles the same program (e.g. one record block): its
    first-call time is the compile estimate. Otherwise compile = first call - median run (noisy for
    long runs on a loaded machine). CPU time is the process's (all threads) and is less sensitive
    than wall time to other users of a shared machine.
    """
    compiles = {}
    for name, fn in fns.items():
        if compile_fns is not None and name in compile_fns:
            t0 = time.perf_counter()
            block(compile_fns[name]())
            compiles[name] = time.perf_counter() - t0
        t0 = time.perf_counter()
        block(fn())
        first = time.perf_counter() - t0
        compiles.setdefault(name, -first)  # resolved below once the median is known
    times = {name: [] for name in fns}
    cpus = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0 = time.process_time()
            t0 = time.perf_counter()
            block(fn())
            times[name].append(time.perf_counter() - t0)
            cpus[name].append(time.process_time() - c0)
    out = {}
    for name in fns:
        med = _median(times[name])
        comp = compiles[name] if compiles[name] >= 0 else max(-compiles[name] - med, 0.0)
        out[name] = (comp, med, sorted(times[name]), _median(cpus[name]))
    return out


def time_python(fn, repeats: int, max_s: float = float("inf")):
    """Time a plain Python/NumPy callable: (median wall s, median CPU s, last result).

    Stops repeating once a run took longer than `max_s` (at least one run)."""
    times, cpus, result = [], [], None
    for _ in range(max(1, repeats)):
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        if times[-1] > max_s:
            break
    return _median(times), _median(cpus), result


def machine() -> str:
    import jax
    import numpy as np
    import scipy

    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import diffrax

        dfx = diffrax.__version__
    except Exception:  # pragma: no cover
        dfx = "?"
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, jax {jax.__version__} "
        f"({jax.default_backend()}), diffrax {dfx}, numpy {np.__version__}, scipy {scipy.__version__}"
    )


def fmt_s(t: float | None) -> str:
    if t is None:
        return "-"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.0f} us"


def fmt_rate(x: float) -> str:
    return f"{x:.3g}"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


class Report:
    """Collects a markdown result file: title, exact command, machine and load, then sections."""

    def __init__(self, name: str, title: str, args):
        self.name = name
        # Quick (smoke) runs never overwrite the committed full-size results.
        self.path = args.out or (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR) / f"{name}.md"
        self.quick = args.quick
        self.lines = [f"## {title}", "", f"Command: `{command_line()}`", ""]
        self.lines.append(f"Machine: {machine()}.")
        self.lines.append(f"Load average (1/5/15 min) at start: {loadavg()}.")
        if args.quick:
            self.lines.append("")
            self.lines.append("**QUICK MODE: reduced sizes, smoke check only; not the acceptance numbers.**")
        self.lines.append("")
        self.t_start = time.perf_counter()

    def add(self, text: str = ""):
        self.lines.append(text)
        print(text, flush=True)

    def write(self):
        self.lines.append("")
        self.lines.append(
            f"Load average at end: {loadavg()}; wall time of this script {time.perf_counter() - self.t_start:.0f} s."
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.lines) + "\n")
        print(f"wrote {self.path}", flush=True)
