"""Benchmark: the cost of on-the-fly lattice observables in the default run's lattice.

The lattice of `diffring run`'s default config: a 64 x 64 periodic S0 lattice of 6-rings, eps = 0.2,
the published warm-up, the discrete map at dt = 0.01, probes' o and v recorded every 100 steps.
Four variants of the same `diffring.simulate` run, timed interleaved (medians, compile separate):

- (c) bare: `Record(phases=False)` (no phase tracking, no observables);
- (a) phases: `Record(phases=True)` (ring phases and R(t) tracked on the fly);
- (b) observables: (a) plus `Record(observe=diffring.lattice_observables(net))` (R, k, local R,
  C(Delta), xi by fit and crossing, walls, domains at every record);
- (b') as (b) with `lattice_observables(net, domains=False)` (no connected components).

Reports the cost of the observables relative to (a) and of phase tracking relative to (c).
Target (issue 3): observables on the fly cost at most 20 % of the simulation time of the same run.
Also checks that the on-the-fly observables equal the post-hoc ones (`observe_records`) on the
recorded final state.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from _common import Report, fmt_s, parser, table, time_interleaved, verdict  # noqa: E402

import diffring as dr  # noqa: E402

EVERY = 100


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=None, help="lattice side L (default 64, quick 24)")
    p.add_argument("--steps", type=int, default=None, help="number of steps (default 20000, quick 2000)")
    args = p.parse_args()
    L = args.size or (24 if args.quick else 64)
    n_steps = args.steps or (2000 if args.quick else 20_000)
    repeats = args.repeats or (3 if args.quick else 5)
    n_rec = n_steps // EVERY
    rep = Report("observables", f"On-the-fly observables: {L} x {L} S0 lattice of 6-rings, {n_steps} steps", args)
    rep.add(
        f"{6 * L * L} neurons, eps = 0.2, dt = 0.01, published warm-up (`diffring.init.published`, seed 0), "
        f"probes' o and v recorded every {EVERY} steps ({n_rec} records), float64, `diffring.simulate` with "
        "`MapScan`. Times are medians of "
        f"{repeats} repeats, the variants interleaved round-robin; compile = first call of the same "
        "program with two record blocks. Per-record costs are differences of medians divided by the number "
        "of records."
    )
    rep.add()

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
    labels = {
        "bare": "(c) bare: phases=False",
        "phases": "(a) phases: phases=True",
        "observables": "(b) phases + lattice_observables",
        "no_domains": "(b') phases + lattice_observables(domains=False)",
    }
    fns, compile_fns = {}, {}
    for name, rec in records.items():

        def call(k, r=rec):
            return dr.simulate(model, s0, n_steps=k, record=r)

        fns[name] = lambda c=call: c(n_steps)
        compile_fns[name] = lambda c=call: c(2 * EVERY)
    res = time_interleaved(fns, repeats, compile_fns)

    rows = []
    for name, label in labels.items():
        comp, med, times, cpu = res[name]
        rows.append([label, fmt_s(comp), fmt_s(med), fmt_s(times[0]), fmt_s(cpu), fmt_s(med / n_rec)])
    rep.add(table(["variant", "compile", "run (median)", "run (min)", "CPU (median)", "per record"], rows))
    rep.add()

    t_c, t_a, t_b = (res[k][1] for k in ("bare", "phases", "observables"))
    c_c, c_a, c_b = (res[k][3] for k in ("bare", "phases", "observables"))
    obs_cost, obs_cpu = t_b / t_a - 1, c_b / c_a - 1
    ph_cost, ph_cpu = t_a / t_c - 1, c_a / c_c - 1
    rep.add(
        f"Observables vs (a): {100 * obs_cost:+.1f} % wall, {100 * obs_cpu:+.1f} % CPU; "
        f"{fmt_s((t_b - t_a) / n_rec)} per record against {fmt_s(t_a / n_rec)} of simulation per {EVERY}-step block."
    )
    t_d, c_d = res["no_domains"][1], res["no_domains"][3]
    rep.add(
        f"Observables without the domains (b') vs (a): {100 * (t_d / t_a - 1):+.1f} % wall, "
        f"{100 * (c_d / c_a - 1):+.1f} % CPU."
    )
    rep.add(
        f"Phase tracking vs (c): {100 * ph_cost:+.1f} % wall, {100 * ph_cpu:+.1f} % CPU "
        f"({fmt_s((t_a - t_c) / n_rec)} per record block)."
    )
    rep.add()

    # The same observables post hoc on the run's records equal those computed on the fly.
    sol = fns["observables"]()
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
    last = {k: np.asarray(sol.observed[k][-1]) for k in ("R", "xi_fit", "wall_density", "n_domains", "largest_domain")}
    rep.add(
        f"Final record: R = {float(last['R']):.3f}, xi_fit = {float(last['xi_fit']):.2f}, wall density = "
        f"{float(last['wall_density']):.3f}, {int(last['n_domains'])} domains, largest {int(last['largest_domain'])} "
        f"rings. On-the-fly observables equal post-hoc `observe_records` on the last record: {same} (integers "
        f"exactly, floats to {worst:.1e})."
    )
    rep.add()
    rep.add(
        f"Acceptance: on-the-fly observables cost {100 * obs_cost:+.1f} % of the phase-tracking run's wall time "
        f"({100 * obs_cpu:+.1f} % CPU) (<= 20 %) {verdict(obs_cost <= 0.20 and same)}; phase tracking costs "
        f"{100 * ph_cost:+.1f} % of the bare run."
    )
    rep.write()


if __name__ == "__main__":
    main()
