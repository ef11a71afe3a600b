"""Benchmark 5: reverse-mode gradient through a long smooth solve (issue 2, item 9).

Target (issue 2): the gradient of a loss over a 10,000-step smooth solve costs at most 6x the
forward solve, and the peak memory for 1e5 steps is within 2x of that for 1e4 steps.

Set-up: `SmoothRelaxation` (default smoothing beta = 1000, eps_o = 0.002) on a 10 x 10 periodic S0
lattice of 6-rings (600 neurons, eps 0.1) from clean random phases; fixed Tsit5 steps dt0 = dt =
0.002 through `diffring.simulate(..., method=ODESolve(stepsize_controller=ConstantStepSize(), ...))`;
loss L = sum_t w(t) mean_i v_i(t) over every step (a `Record.reduce`, so nothing large is stored);
gradient with respect to every float leaf of (model, initial state) with `eqx.filter_grad`.
Two reverse-mode routes of `ODESolve`:

- `adjoint=ScanAdjoint()`: explicit RK stages written out in a `lax.scan`, record blocks
  rematerialised in segments of 1000 (memory ~ n/1000 + 1000 states);
- the default `RecursiveCheckpointAdjoint()` of diffrax (checkpoints ~ sqrt(2 n)).

Every case runs in its own subprocess (so compilation caches and freed memory of one case cannot
flatter another). Times: the same compiled loss with and without the gradient, interleaved, median
of repeats; compile = first call minus the median run. Memory, two honest measures per case:
(1) the process's peak resident set while the compiled gradient runs (Linux VmHWM, reset through
/proc/self/clear_refs after compilation, minus the resident set before the run) and, for
reference, the whole process's `ru_maxrss` (dominated by JAX, XLA and compilation); (2) XLA's own
buffer assignment for the compiled gradient (`memory_analysis().temp_size_in_bytes`). A control
case (one segment, i.e. one stored state per step) shows that both measures do see linear growth.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

CHILD_FLAG = "--child"


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def child(spec):
    """One case in a fresh process; prints a JSON line of measurements."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import diffrax
    import equinox as eqx
    import jax.numpy as jnp
    from _common import time_interleaved

    import diffring as dr

    L, n_steps, route = spec["L"], spec["n_steps"], spec["route"]
    net = dr.lattice([L, L], 6, eps=0.1, boundary="periodic", dtype=jnp.float64)
    dt = 0.002
    model = dr.SmoothRelaxation(net, dt=dt)
    s0 = dr.init.random_phase(net, jax.random.key(0))
    if route == "scan":
        adjoint = dr.ScanAdjoint(segment=spec.get("segment", 1000))
    else:
        adjoint = None  # diffrax.RecursiveCheckpointAdjoint(checkpoints=None)
    method = dr.ODESolve(solver=diffrax.Tsit5(), stepsize_controller=diffrax.ConstantStepSize(), dt0=dt,
                         adjoint=adjoint)
    record = dr.Record(every=1, fields=(), phases=False, reduce=lambda t, s: jnp.mean(s.v))

    def loss(params):
        sol = dr.simulate(params[0], params[1], n_steps=n_steps, record=record, method=method)
        w = 1.0 + 0.5 * jnp.cos(jnp.arange(sol.reduced.shape[0], dtype=jnp.float64) * (6.0 / n_steps))
        return jnp.sum(w * sol.reduced) / n_steps

    fwd = eqx.filter_jit(loss)
    grad = eqx.filter_jit(eqx.filter_grad(loss))
    params = (model, s0)
    out = {"n_neurons": net.n_neurons}
    if spec["mode"] == "time":
        res = time_interleaved({"fwd": lambda: fwd(params), "grad": lambda: grad(params)}, spec["repeats"])
        for k, (comp, med, times, cpu) in res.items():
            out[k] = {"compile_s": comp, "median_s": med, "times": times, "cpu_s": cpu}
        sol = dr.simulate(model, s0, n_steps=n_steps, record=dr.Record(every=n_steps // 10, which="probes",
                                                                      fields=("o",)), method=method)
        out["status"] = int(sol.status)
        out["R_final"] = float(sol.R[-1])
    else:
        t0 = time.perf_counter()
        compiled = grad.lower(params).compile()
        out["compile_s"] = time.perf_counter() - t0
        ma = compiled.compiled.memory_analysis()
        out["xla_temp_bytes"] = int(ma.temp_size_in_bytes)
        out["xla_arg_out_bytes"] = int(ma.argument_size_in_bytes + ma.output_size_in_bytes)
        rss_before = _status_kb("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS counter (VmHWM) to the current RSS
        t0 = time.perf_counter()
        g = jax.block_until_ready(compiled(params))
        out["run_s"] = time.perf_counter() - t0
        out["run_peak_kb"] = _status_kb("VmHWM")
        out["rss_before_kb"] = rss_before
        out["ru_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        leaves = jax.tree.leaves(eqx.filter(g, eqx.is_array))
        out["grad_finite"] = bool(all(bool(jnp.all(jnp.isfinite(x))) for x in leaves))
    print("RESULT " + json.dumps(out), flush=True)


def run_case(spec):
    env = dict(os.environ)
    cmd = [sys.executable, os.path.abspath(__file__), CHILD_FLAG, json.dumps(spec)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=os.path.dirname(os.path.abspath(__file__)))
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"case {spec} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")


def main():
    from _common import Report, fmt_s, parser, table, verdict

    args = parser(__doc__.splitlines()[0]).parse_args()
    quick = args.quick
    L = 4 if quick else 10
    n_short, n_long = (1_000, 10_000) if quick else (10_000, 100_000)
    repeats = args.repeats or (2 if quick else 5)
    rep = Report("gradient", "Reverse-mode gradient through a long smooth solve", args)
    rep.add(__doc__.split("\n\n", 1)[1].split("Every case")[0].strip())
    rep.add("")

    # --- time ----------------------------------------------------------------------------------
    rows, ratios = [], {}
    for route, name in (("scan", "ScanAdjoint()"), ("diffrax", "RecursiveCheckpointAdjoint() (diffrax default)")):
        r = run_case({"mode": "time", "route": route, "L": L, "n_steps": n_short, "repeats": repeats})
        f, g = r["fwd"], r["grad"]
        ratios[route] = (g["median_s"] / f["median_s"], g["cpu_s"] / f["cpu_s"])
        rows.append([name, f"{r['n_neurons']}", f"{n_short:,}", fmt_s(f["median_s"]), fmt_s(g["median_s"]),
                     f"**{ratios[route][0]:.2f}x**", f"{ratios[route][1]:.2f}x", fmt_s(f["compile_s"]),
                     fmt_s(g["compile_s"]), "ok" if r["status"] == 0 else f"status {r['status']}"])
        print(route, r, flush=True)
    rep.add(f"### Time: gradient vs forward, {n_short:,} fixed steps (median of {repeats}, interleaved)")
    rep.add("")
    rep.add(table(["route", "neurons", "steps", "forward", "gradient", "ratio (wall)", "ratio (CPU)",
                   "compile fwd", "compile grad", "solve"], rows))
    rep.add("")
    ok_time = ratios["scan"][0] <= 6.0
    rep.add(f"Target gradient <= 6x forward with `ScanAdjoint`: {verdict(ok_time)} "
            f"({ratios['scan'][0]:.2f}x wall, {ratios['scan'][1]:.2f}x process CPU time). "
            f"diffrax's own loop: {ratios['diffrax'][0]:.2f}x (its reverse pass runs the Runge-Kutta stages "
            f"in a checkpointed while loop and the diffeqsolve step machinery per step; see docs/gradients.md).")
    rep.add("")

    # --- memory --------------------------------------------------------------------------------
    cases = [("scan", "ScanAdjoint()", {}), ("diffrax", "RecursiveCheckpointAdjoint()", {}),
             ("scan", "control: ScanAdjoint(segment=n) (one state per step)", {"segment": 10**9})]
    rows, mem = [], {}
    for route, name, extra in cases:
        for n in (n_short, n_long):
            r = run_case({"mode": "mem", "route": route, "L": L, "n_steps": n, **extra})
            print(route, name, n, r, flush=True)
            run_mb = (r["run_peak_kb"] - r["rss_before_kb"]) / 1024
            mem[(name, n)] = (run_mb, r["xla_temp_bytes"] / 2**20, r["ru_maxrss_kb"] / 1024)
            rows.append([name, f"{n:,}", f"{run_mb:.1f} MB", f"{r['xla_temp_bytes'] / 2**20:.1f} MB",
                         f"{r['ru_maxrss_kb'] / 1024:.0f} MB", fmt_s(r["run_s"]), fmt_s(r["compile_s"]),
                         "yes" if r["grad_finite"] else "NO"])
    rep.add(f"### Memory: one gradient evaluation at {n_short:,} and {n_long:,} steps")
    rep.add("")
    rep.add(table(["route", "steps", "peak RSS increase during the run", "XLA temp buffers", "process ru_maxrss",
                   "gradient run", "compile", "finite"], rows))
    rep.add("")
    lines, ok_mem, scan_mem = [], True, None
    for _, name, _ in cases:
        a, b = mem[(name, n_short)], mem[(name, n_long)]
        r_run, r_xla = b[0] / max(a[0], 1e-9), b[1] / max(a[1], 1e-9)
        r_max = b[2] / a[2]
        lines.append(f"- {name}: {n_long:,} / {n_short:,} steps = {r_run:.2f}x (run peak RSS), "
                     f"{r_xla:.2f}x (XLA temp), {r_max:.2f}x (process ru_maxrss)")
        if name == "ScanAdjoint()":
            ok_mem = r_run <= 2.0 and r_xla <= 2.0 and r_max <= 2.0
            scan_mem = (r_xla, r_run, r_max)
    rep.add("\n".join(lines))
    rep.add("")
    rep.add(f"Target memory({n_long:,} steps) <= 2x memory({n_short:,} steps) with `ScanAdjoint`, on every measure: "
            f"{verdict(ok_mem)}.")
    rep.add("")
    rep.add("Peak RSS increase: VmHWM after the compiled gradient ran (counter reset after compilation) minus "
            "the RSS before the run; XLA temp: `compiled.memory_analysis().temp_size_in_bytes` (the buffers "
            "XLA assigns for intermediates, scan carries and saved states, excluding arguments and outputs); "
            "ru_maxrss: whole child process, including JAX, XLA and compilation. The run peak RSS can "
            "under-count buffers that reuse pages freed after compilation; XLA temp is the precise figure.")
    rep.add("")
    rep.add(f"Acceptance: gradient / forward over {n_short:,} smooth steps with ScanAdjoint {ratios['scan'][0]:.2f}x "
            f"(<= 6x) {verdict(ok_time)}; reverse-mode memory {n_long:,} / {n_short:,} steps "
            f"{scan_mem[0]:.2f}x XLA temp, "
            f"{scan_mem[1]:.2f}x run peak RSS, {scan_mem[2]:.2f}x ru_maxrss (<= 2x) {verdict(ok_mem)} "
            f"(diffrax RecursiveCheckpointAdjoint: {ratios['diffrax'][0]:.2f}x time).")
    rep.write()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == CHILD_FLAG:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        child(json.loads(sys.argv[2]))
    else:
        main()
