"""Benchmark: the cost of on-the-fly lattice observables in the default run's lattice.

The lattice of `diffring run`'s default config: a 64 x 64 periodic S0 lattice of 6-rings, eps = 0.2,
the published warm-up, the discrete map at dt = 0.01, probes' o and v recorded every 100 steps.
Four variants of the same `diffring.simulate` run, timed interleaved (medians, compile separate):

- (c) bare: `Record(phases=False)` (no phase tracking, no observables);
- (a) phases: `Record(phases=True)` (ring phases and R(t) tracked on the fly);
- (b) observables: (a) plus `Record(observe=diffring.lattice_observables(net))` (R, k, local R,
  C(Delta), xi by fit and crossing, walls, domains at every record);
- (b') as (b) with `lattice_observables(net, domains=False)` (no connected components).

The acceptance figure (issue 3: "computing observables on the fly costs at most 20 % of the
simulation time of the same run") is (b) - (a) over (a): the same run without the observables, with
phase tracking on because the observables (and R(t)) need the phases; it must hold at both sizes.
The added time is also given as a fraction of the bare run (c), and the cost of phase tracking itself
as (a) - (c) over (c). A second, shorter run does the same at 128 x 128. The observe function is also
timed alone (jitted, on the final state; minimum over repeats). On-the-fly values are checked against post-hoc ones
(`observe_records`) on the recorded final state.
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from _common import Report, fmt_s, loadavg, parser, table, time_interleaved, verdict  # noqa: E402

import diffring as dr  # noqa: E402

EVERY = 100
LABELS = {
    "bare": "(c) bare: phases=False",
    "phases": "(a) phases: phases=True",
    "observables": "(b) phases + lattice_observables",
    "no_domains": "(b') phases + lattice_observables(domains=False)",
}


def alone(fn, state, phase, valid, repeats=200):
    """Minimum time of one jitted call of `fn` on one record (process CPU time is not used: one call
    is ~0.1-1 ms, and the minimum over many calls is the least load-sensitive figure)."""
    f = jax.jit(fn)
    jax.block_until_ready(f(0.0, state, phase, valid))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(0.0, state, phase, valid))
        best = min(best, time.perf_counter() - t0)
    return best


def measure(rep, L, n_steps, repeats, check):
    n_rec = n_steps // EVERY
    net = dr.lattice([L, L], 6, scheme="S0", eps=0.2, boundary="periodic")
    model = dr.DiscreteMap(net, 0.01)
    s0 = dr.init.published(net, jax.random.key(0), 0.01)
    obs = dr.lattice_observables(net)
    lean = dr.lattice_observables(net, domains=False)
    records = {
        "bare": dr.Record(every=EVERY, which="probes", fields=("o", "v"), phases=False),
        "phases": dr.Record(every=EVERY, which="probes", fields=("o", "v"), phases=True),
        "observables": dr.Record(every=EVERY, which="probes", fields=("o", "v"), phases=True, observe=obs),
        "no_domains": dr.Record(every=EVERY, which="probes", fields=("o", "v"), phases=True, observe=lean),
    }
    fns, compile_fns = {}, {}
    for name, rec in records.items():

        def call(k, r=rec):
            return dr.simulate(model, s0, n_steps=k, record=r)

        fns[name] = lambda c=call: c(n_steps)
        compile_fns[name] = lambda c=call: c(2 * EVERY)
    res = time_interleaved(fns, repeats, compile_fns)

    rep.add(
        f"### {L} x {L} ({6 * L * L} neurons), {n_steps} steps, a record every {EVERY} steps ({n_rec} records), "
        f"medians of {repeats} interleaved repeats"
    )
    rep.add()
    rows = []
    for name, label in LABELS.items():
        comp, med, times, cpu = res[name]
        rows.append([label, fmt_s(comp), fmt_s(med), fmt_s(times[0]), fmt_s(cpu), fmt_s(med / n_rec)])
    rep.add(table(["variant", "compile", "run (median)", "run (min)", "CPU (median)", "per record block"], rows))
    rep.add()

    t_c, t_a, t_b, t_d = (res[k][1] for k in ("bare", "phases", "observables", "no_domains"))
    c_c, c_a, c_b, c_d = (res[k][3] for k in ("bare", "phases", "observables", "no_domains"))
    added, added_cpu = t_b - t_a, c_b - c_a
    rep.add(
        f"- **Observables vs the same run without them** ((b) - (a)) / (a), phases on in both: "
        f"**{100 * added / t_a:+.1f} % wall**, {100 * added_cpu / c_a:+.1f} % CPU; "
        f"{fmt_s(added / n_rec)} per record against {fmt_s(t_a / n_rec)} of phase-tracked simulation per "
        f"{EVERY}-step block."
    )
    rep.add(
        f"- Observables vs the bare run ((b) - (a)) / (c), i.e. their added time as a fraction of a run without "
        f"phase tracking: {100 * added / t_c:+.1f} % wall, {100 * added_cpu / c_c:+.1f} % CPU."
    )
    rep.add(
        f"- Without the domains ((b') - (a)) / (a): {100 * (t_d - t_a) / t_a:+.1f} % wall, "
        f"{100 * (c_d - c_a) / c_a:+.1f} % CPU ({fmt_s((t_d - t_a) / n_rec)} per record)."
    )
    rep.add(
        f"- Phase tracking itself ((a) - (c)) / (c): {100 * (t_a / t_c - 1):+.1f} % wall, "
        f"{100 * (c_a / c_c - 1):+.1f} % CPU ({fmt_s((t_a - t_c) / n_rec)} per record block)."
    )

    sol = fns["observables"]()
    state, phase, valid = sol.state, sol.phase[-1], sol.phase_valid[-1]
    t_obs, t_lean = alone(obs, state, phase, valid), alone(lean, state, phase, valid)
    rep.add(
        f"- The observe function alone (jitted, on the final record; minimum of 200 calls; includes R, which "
        f"in a run is shared with the record's own R): {fmt_s(t_obs)} per record, {fmt_s(t_lean)} without "
        "the domains."
    )
    same = None
    if check:
        # The same observables post hoc on the run's final state equal those computed on the fly.
        full = dr.Record(every=n_steps, which="all", fields=("o", "v"), phases=True, observe=obs)
        sol_all = dr.simulate(model, s0, n_steps=n_steps, record=full)
        post = dr.observe_records(obs, sol_all)
        # integers exactly; floats to 1e-12 (a vmapped FFT may round differently in the last bit)
        same, worst = True, 0.0
        for k in post:
            for a in (sol.observed[k][-1], sol_all.observed[k][-1]):
                a, b = np.asarray(a), np.asarray(post[k][-1])
                if a.dtype.kind in "iub":
                    same = same and bool(np.array_equal(a, b))
                else:
                    worst = max(worst, float(np.max(np.abs(a - b))))
        same = same and worst <= 1e-12
        last = {k: np.asarray(sol.observed[k][-1]) for k in ("R", "xi_fit", "wall_density", "n_domains")}
        rep.add(
            f"- Final record: R = {float(last['R']):.3f}, xi_fit = {float(last['xi_fit']):.2f}, wall density = "
            f"{float(last['wall_density']):.3f}, {int(last['n_domains'])} domains, largest "
            f"{int(np.asarray(sol.observed['largest_domain'][-1]))} rings. On-the-fly observables equal post-hoc "
            f"`observe_records` on the last record: {same} (integers exactly, floats to {worst:.1e})."
        )
    rep.add()
    return added / t_a, added_cpu / c_a, added / n_rec, same


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=None, help="lattice side L (default 64, quick 24)")
    p.add_argument("--steps", type=int, default=None, help="number of steps (default 20000, quick 2000)")
    p.add_argument("--big", type=int, default=None, help="side of the second, shorter run (default 128, quick 32)")
    p.add_argument("--big-steps", type=int, default=None, help="its steps (default 5000, quick 1000)")
    args = p.parse_args()
    L = args.size or (24 if args.quick else 64)
    n_steps = args.steps or (2000 if args.quick else 20_000)
    big = args.big or (32 if args.quick else 128)
    big_steps = args.big_steps or (1000 if args.quick else 5000)
    repeats = args.repeats or (3 if args.quick else 5)
    rep = Report("observables", f"On-the-fly observables: {L} x {L} S0 lattice of 6-rings, {n_steps} steps", args)
    rep.add(
        "eps = 0.2, dt = 0.01, periodic, published warm-up (`diffring.init.published`, seed 0), probes' o and v "
        f"recorded every {EVERY} steps, float64, `diffring.simulate` with `MapScan`. Times are medians of "
        "interleaved repeats; compile = first call of the same program with two record blocks. Per-record "
        "costs are differences of medians divided by the number of records. The acceptance denominator is "
        "(a), the same run without the observables: phase tracking stays on, because R(t) and every lattice "
        "observable are functions of the ring phases."
    )
    rep.add()
    cost, cost_cpu, per_rec, same = measure(rep, L, n_steps, repeats, check=True)
    cost_b, cost_cpu_b, per_rec_b, _ = measure(rep, big, big_steps, max(3, repeats - 2), check=False)
    ok_cpu = max(cost_cpu, cost_cpu_b) <= 0.20 and bool(same)
    ok_wall = max(cost, cost_b) <= 0.20 and bool(same)
    rep.add(
        f"Acceptance: on-the-fly observables add {100 * cost:+.1f} % wall / {100 * cost_cpu:+.1f} % CPU time "
        f"({L} x {L}, {fmt_s(per_rec)} per record) and {100 * cost_b:+.1f} % wall / {100 * cost_cpu_b:+.1f} % CPU "
        f"({big} x {big}, {fmt_s(per_rec_b)} per record) to the same run without them (<= 20 % at both sizes; "
        f"on-the-fly == post hoc: {same}): {verdict(ok_cpu)} on CPU time, {verdict(ok_wall)} on wall time "
        f"(load average now {loadavg()}; the wall figure is the acceptance figure on a quiet machine, CPU time "
        "the one robust to other users)."
    )
    rep.write()


if __name__ == "__main__":
    main()
