"""Benchmark: memory scaling of the S0 lattice, one process, and per-device memory when sharded.

Part 1 (one device): L x L periodic S0 lattices of 6-rings (n = 6 L^2 neurons), stepped by
`diffring.simulate` (DiscreteMap, MapScan) with `Record(every=n_steps, which="probes", fields=(),
phases=False)`, each size in a fresh process: XLA's compiled memory analysis (arguments, outputs,
temporaries), the process's peak RSS (ru_maxrss) against its RSS before building the lattice, and
neuron-steps per second (median of repeats, compile timed separately). The largest lattice that fits
a memory budget (default 20 GiB of this 24 GiB machine) is *extrapolated* from the measured bytes per
neuron of the largest size, not run: the machine is shared.

Part 2 (8 simulated CPU devices, one process): the same lattice on meshes 1x1, 2x1, 2x2, 2x4 via
`diffring.Sharded`: compiled memory per device (the SPMD program is one program per device) and
neuron-steps per second. The simulated devices share this machine's 2 cores, so part 2 measures
memory per device and the cost of the halo exchange, not a speed-up.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GIB = 1024**3


def _rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm():
    """Peak RSS (VmHWM) of this process in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_hwm():
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _mem(compiled):
    m = compiled.compiled.memory_analysis()  # equinox Compiled wraps the jax.stages.Compiled
    return {
        "arg": m.argument_size_in_bytes,
        "out": m.output_size_in_bytes,
        "temp": m.temp_size_in_bytes,
        "alias": m.alias_size_in_bytes,
        "code": m.generated_code_size_in_bytes,
    }


def worker(mode, L, n_steps, repeats, meshes):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    import diffring as dr
    from diffring._simulate import _run

    rss0 = _rss_now()
    net = dr.lattice([L, L], 6, scheme="S0", eps=0.05, boundary="periodic")
    n = net.n_neurons
    rng = np.random.default_rng(0)
    s0_host = dr.State(jnp.asarray(rng.random(n) * 0.5), jnp.asarray((rng.random(n) < 0.5).astype(np.float64)))
    model = dr.DiscreteMap(net)
    rec = dr.Record(every=n_steps, which="probes", fields=(), phases=False)
    t0 = jnp.asarray(0.0, jnp.float64)
    gc.collect()
    rss_built = _rss_now()
    reset = _reset_hwm()
    out = []
    methods = [("1 device", dr.MapScan(), None)] if mode == "single" else []
    for rows, cols in meshes:
        methods.append((f"mesh {rows}x{cols}", dr.Sharded(dr.lattice_mesh(rows, cols)), rows * cols))
    for name, method, devices in methods:
        s0 = s0_host
        if devices is not None:
            # The state arrives split in contiguous chunks over the mesh's devices (not replicated);
            # Sharded re-lays it out into lattice blocks inside the program.
            sharding = NamedSharding(method.mesh, P(dr._sharding.AXES))
            s0 = dr.State(jax.device_put(s0.v, sharding), jax.device_put(s0.o, sharding))
        method = method.resolve(model, s0, None)
        t = time.perf_counter()
        compiled = _run.lower(model, s0, None, None, t0, n_steps, rec, method).compile()
        compile_s = time.perf_counter() - t
        mem = _mem(compiled)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            sol = jax.block_until_ready(dr.simulate(model, s0, n_steps=n_steps, record=rec, method=method))
            times.append(time.perf_counter() - t)
        times.sort()
        med = times[len(times) // 2]
        out.append(
            {
                "name": name,
                "devices": devices,
                "L": L,
                "n": n,
                "n_steps": n_steps,
                "compile_s": compile_s,
                "median_s": med,
                "rate": n * n_steps / med,
                "mem": mem,
                "status": int(np.asarray(sol.status)),
            }
        )
    peak = _hwm()
    for o in out:
        o["rss0"], o["rss_built"], o["peak_rss"], o["hwm_reset"] = rss0, rss_built, peak, reset
    print("RESULT " + json.dumps(out), flush=True)


def spawn(mode, L, n_steps, repeats, devices, meshes=()):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    cmd = [sys.executable, __file__, "--worker", mode, str(L), str(n_steps), str(repeats), json.dumps(meshes)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if p.returncode:
        raise RuntimeError(p.stderr[-3000:])
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line.removeprefix("RESULT "))


def main():
    from _common import Report, fmt_rate, parser, table

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--budget-gib", type=float, default=20.0)
    args = p.parse_args()
    repeats = args.repeats or 3
    sizes = [32, 64] if args.quick else [128, 256, 512]
    target = 2e7 if args.quick else 2e8  # neuron-steps per timed run
    rep = Report("memory", "Memory scaling: largest S0 lattice one process can step; per-device memory sharded", args)
    rep.add(
        "Periodic S0 lattice of L x L 6-rings, DiscreteMap + MapScan, float64, "
        "`Record(every=n_steps, which='probes', fields=(), phases=False)`; each size in a fresh process. "
        f"Median of {repeats} runs; compile timed separately (lower + compile). "
        "XLA memory = compiled memory analysis: arguments + outputs + temporaries - aliased. "
        "build RSS = RSS growth while building the lattice and initial state on the host (JAX already imported); "
        "run peak RSS = peak RSS (VmHWM, reset after building) minus the RSS after building: compile + run."
    )
    rep.add()
    rows, per_neuron = [], []
    for L in sizes:
        n = 6 * L * L
        n_steps = max(20, int(target // n) // 10 * 10)
        (r,) = spawn("single", L, n_steps, repeats, 1)
        m = r["mem"]
        xla = m["arg"] + m["out"] + m["temp"] - m["alias"]
        build = r["rss_built"] - r["rss0"]
        run = r["peak_rss"] - (r["rss_built"] if r["hwm_reset"] else r["rss0"])
        grow = build + run
        per_neuron.append((n, xla / n, grow / n))
        rows.append(
            [
                f"{L} x {L}",
                f"{n:,}",
                n_steps,
                f"{xla / 2**20:.1f}",
                f"{xla / n:.1f}",
                f"{build / 2**20:.0f}",
                f"{run / 2**20:.0f}",
                f"{grow / n:.0f}",
                f"{r['compile_s']:.2f}",
                f"{r['median_s']:.3f}",
                fmt_rate(r["rate"]),
            ]
        )
    rep.add(
        table(
            [
                "lattice",
                "neurons",
                "steps",
                "XLA MiB",
                "XLA B/neuron",
                "build RSS MiB",
                "run peak RSS MiB",
                "(build + run) B/neuron",
                "compile s",
                "run s",
                "neuron-steps/s",
            ],
            rows,
        )
    )
    rep.add()
    (n1, _, g1), (n_big, xla_pn, g2) = per_neuron[-2], per_neuron[-1]
    grow1, grow2 = g1 * n1, g2 * n_big
    slope = max((grow2 - grow1) / (n_big - n1), xla_pn)  # marginal bytes per neuron
    fixed = max(grow2 - slope * n_big, 0.0)
    budget = args.budget_gib * GIB
    n_max = (budget - fixed) / slope
    L_max = int((n_max / 6) ** 0.5)
    rep.add(
        f"Extrapolation (not run): between the two largest sizes the process grows by {slope:.0f} B per extra "
        f"neuron (marginal; XLA's compiled buffers alone are {xla_pn:.1f} B per neuron), on top of "
        f"{fixed / 2**20:.0f} MiB fixed. A {args.budget_gib:.0f} GiB budget then holds about "
        f"{n_max / 1e6:.0f} million neurons, an S0 lattice of about {L_max} x {L_max} 6-rings, in one process. "
        "RSS growth includes building the network and the initial state on the host and the compiled program."
    )
    rep.add()
    L = sizes[-1]
    n = 6 * L * L
    n_steps = max(20, int(target // n) // 10 * 10)
    meshes = [[1, 1], [2, 1], [2, 2], [2, 4]]
    res = spawn("sharded", L, n_steps, repeats, 8, meshes)
    rep.add(
        f"Sharded, {L} x {L} lattice ({n:,} neurons, {n_steps} steps), 8 simulated CPU devices in one process "
        "(`XLA_FLAGS=--xla_force_host_platform_device_count=8`), `diffring.Sharded(lattice_mesh(rows, cols))`. "
        "The initial state is passed split in contiguous chunks over the devices. "
        "Memory per device from the compiled SPMD program; all devices share the same 2 cores."
    )
    rep.add()
    rows = []
    base = None
    for r in res:
        m = r["mem"]
        dev = m["arg"] + m["out"] + m["temp"] - m["alias"]
        base = base or dev
        rows.append(
            [
                r["name"],
                r["devices"],
                f"{m['arg'] / 2**20:.2f}",
                f"{m['out'] / 2**20:.2f}",
                f"{m['temp'] / 2**20:.2f}",
                f"{dev / 2**20:.2f}",
                f"{dev / base:.2f}",
                f"{r['compile_s']:.2f}",
                fmt_rate(r["rate"]),
            ]
        )
    rep.add(
        table(
            [
                "mesh",
                "devices",
                "args MiB/dev",
                "outputs MiB/dev",
                "temp MiB/dev",
                "total MiB/dev",
                "vs 1x1",
                "compile s",
                "neuron-steps/s (all devices)",
            ],
            rows,
        )
    )
    rep.add()
    last = res[-1]["mem"]
    ratio = (last["arg"] + last["out"] + last["temp"] - last["alias"]) / base
    rep.add(
        f"Acceptance: largest one-process S0 lattice within {args.budget_gib:.0f} GiB ~ {L_max} x {L_max} rings "
        f"({n_max / 1e6:.0f} M neurons, extrapolated from {n_big:,} neurons measured); "
        f"8-way sharding holds {ratio:.2f}x the 1-device memory per device."
    )
    rep.write()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), json.loads(sys.argv[6]))
    else:
        sys.path.insert(0, str(HERE))
        main()
