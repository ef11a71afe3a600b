"""Benchmark 3: a batch of 16 initial conditions of the 100 x 100 S0 lattice via `simulate_batch`.

Throughput per neuron-step of `diffring.simulate_batch` (16 clean random-phase initial conditions,
vmapped in one program) against single runs through `diffring.simulate` in the same process, in
float64 and float32, with the lattice benchmark's recording (`Record(every=100, which="probes",
fields=(), phases=False)`), without and with `chunk_size` (members run a few at a time inside
one program, which keeps the working set in cache). Also checks that batch member 0 equals its single
run exactly, and reports the SciPy-sparse loop's throughput on one member for scale.

Target (issue 2): batched throughput per neuron-step at least that of a single run.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import Report, fmt_rate, fmt_s, parser, table, time_interleaved, time_python, verdict  # noqa: E402
from bench_lattice import EVERY, scipy_loop  # noqa: E402

import diffring as dr  # noqa: E402


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--chunk", type=int, default=4, help="also time simulate_batch(chunk_size=...); 0 = skip")
    args = p.parse_args()
    L = 20 if args.quick else 100
    n_steps = 1000 if args.quick else 10_000
    B = args.batch
    repeats = args.repeats or 3
    rep = Report("batch", f"Batch: {B} initial conditions of the {L} x {L} S0 lattice, {n_steps} steps", args)
    n = 6 * L * L
    rep.add(
        f"{n} neurons x {B} members; `Record(every={EVERY}, which='probes', fields=(), phases=False)`. "
        f"Median of {repeats} repeats, runs interleaved round-robin; "
        "compile = first call of the same program with two record blocks."
    )
    rep.add()
    keys = jax.random.split(jax.random.key(1), B)
    rec = dr.Record(every=EVERY, which="probes", fields=(), phases=False)
    fns, meta, compile_fns = {}, {}, {}
    states = {}
    for dt in ("float64", "float32"):
        net = dr.lattice([L, L], 6, scheme="S0", eps=0.05, boundary="periodic", dtype=dt)
        model = dr.DiscreteMap(net)
        sB = jax.tree.map(lambda *a: jnp.stack(a), *[dr.init.random_phase(net, k) for k in keys])
        s0 = jax.tree.map(lambda a: a[0], sB)
        states[dt] = (net, s0, sB)
        variants = [
            (
                f"single-{dt}",
                f"diffring.simulate, single run, {dt}",
                1,
                lambda k, m=model, s=s0: dr.simulate(m, s, n_steps=k, record=rec),
            ),
            (
                f"batch-{dt}",
                f"diffring.simulate_batch, B = {B}, {dt}",
                B,
                lambda k, m=model, s=sB: dr.simulate_batch(m, s, n_steps=k, record=rec),
            ),
        ]
        if args.chunk:
            variants.append(
                (
                    f"chunk-{dt}",
                    f"diffring.simulate_batch, B = {B}, chunk_size = {args.chunk}, {dt}",
                    B,
                    lambda k, m=model, s=sB: dr.simulate_batch(m, s, n_steps=k, record=rec, chunk_size=args.chunk),
                )
            )
        for name, label, b, call in variants:
            fns[name] = lambda c=call: c(n_steps)
            compile_fns[name] = lambda c=call: c(2 * EVERY)  # same program, two record blocks
            meta[name] = (label, b)
    res = time_interleaved(fns, repeats, compile_fns)

    net, s0, sB = states["float64"]
    W = net.coupling.to_scipy().tocsr()
    t_sp, c_sp, (v_ref, o_ref) = time_python(
        lambda: scipy_loop(W, np.asarray(s0.v), np.asarray(s0.o), n_steps, float(np.exp(-0.01)), 0.49, 0.2), 1
    )

    rows = [
        [
            "SciPy CSR loop, one member, float64 (scale)",
            "-",
            fmt_s(t_sp),
            fmt_s(c_sp),
            fmt_rate(n * n_steps / t_sp),
            "-",
            "-",
        ]
    ]
    rate, crate = {}, {}
    for name, (label, b) in meta.items():
        comp, med, _, cpu = res[name]
        rate[name] = b * n * n_steps / med
        crate[name] = b * n * n_steps / cpu
        rows.append([label, fmt_s(comp), fmt_s(med), fmt_s(cpu), fmt_rate(rate[name]), "-", "-"])
    for i, name in enumerate(meta):
        dt = name.split("-")[-1]
        rows[i + 1][5] = f"{rate[name] / rate[f'single-{dt}']:.2f}"
        rows[i + 1][6] = f"{crate[name] / crate[f'single-{dt}']:.2f}"
    rep.add(
        table(
            [
                "method",
                "compile",
                "run (median)",
                "CPU time (median)",
                "neuron-steps/s",
                "vs single run (wall)",
                "vs single run (CPU time)",
            ],
            rows,
        )
    )
    rep.add()
    solB = fns["batch-float64"]()
    sol1 = fns["single-float64"]()
    same = bool(
        np.array_equal(np.asarray(solB.state.o[0]), np.asarray(sol1.state.o))
        and np.array_equal(np.asarray(solB.state.v[0]), np.asarray(sol1.state.v))
    )
    ref_same = bool(np.array_equal(np.asarray(sol1.state.o), o_ref))
    rep.add(
        f"Batch member 0 equals its single run bit for bit (v and o, float64): {same}; "
        f"single run outputs equal the SciPy loop's: {ref_same}."
    )
    rep.add()
    r = {dt: rate[f"batch-{dt}"] / rate[f"single-{dt}"] for dt in ("float64", "float32")}
    rc = {dt: crate[f"batch-{dt}"] / crate[f"single-{dt}"] for dt in ("float64", "float32")}
    text = ", ".join(f"{dt} {x:.2f}" for dt, x in r.items())
    best = dict(r)
    if args.chunk:
        rk = {dt: rate[f"chunk-{dt}"] / rate[f"single-{dt}"] for dt in ("float64", "float32")}
        text += f"; with chunk_size = {args.chunk}: " + ", ".join(f"{dt} {x:.2f}" for dt, x in rk.items())
        best = {dt: max(r[dt], rk[dt]) for dt in r}
    ok = all(x >= 1.0 for x in best.values()) and same
    rep.add(
        "Acceptance: batch throughput per neuron-step / single run (wall): "
        + text
        + f" (>= 1 for the better setting) {verdict(ok)}; default setting by CPU time: "
        + ", ".join(f"{dt} {x:.2f}" for dt, x in rc.items())
        + "."
    )
    rep.write()


if __name__ == "__main__":
    main()
