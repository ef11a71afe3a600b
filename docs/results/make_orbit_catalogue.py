"""Write docs/results/orbit_catalogue.md: the k-pulse orbits of rings N = 2 ... 16 (diffring.catalogue).

    python docs/results/make_orbit_catalogue.py [--states 2000] [--dt 0.01] [--seed 0]
"""

import argparse
import pathlib
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

import diffring as dr  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--states", type=int, default=2000)
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--t-settle", type=float, default=200.0)
    ap.add_argument("--out", default=str(pathlib.Path(__file__).with_name("orbit_catalogue.md")))
    a = ap.parse_args()
    sizes = list(range(2, 17))
    t0 = time.time()
    rows, table = dr.catalogue(sizes, dt=a.dt, n_states=a.states, seed=a.seed, t_settle=a.t_settle)
    el = time.time() - t0
    cmd = "python docs/results/make_orbit_catalogue.py " + " ".join(sys.argv[1:])
    div = [r for r in rows if r["N"] % r["k"] == 0]
    rel_c = max(abs(r["T_cont"] / r["T_spec"] - 1) for r in div)
    rel_m = max(abs(r["T_map"] / r["T_spec"] - 1) for r in div)
    L = [
        "# Ring-orbit catalogue (uncoupled rings, theta_H = 0.49, theta_L = 0.2, tau = 1)",
        "",
        f"Produced by `{cmd.strip()}` ({el:.0f} s, float64, CPU; diffring {dr.__version__}).",
        "",
        "Columns: `T_spec` = T_1(N/k) from the spec formula (only when k | N); `T_cont` = period of the",
        "continuous hard model per probe fire (lap / k; the lap is found by shooting Newton on the exact",
        f"event-driven flow); `T_map` = mean probe inter-fire interval of the discrete map at dt = {a.dt}",
        "(k equally spaced pulses to start, t = 40 ... 300); `basin` = fraction of",
        f"{a.states} uniform random states (`init.uniform`, discrete map, dt = {a.dt}, t_settle = {a.t_settle})",
        "ending on the k-pulse orbit, +- binomial standard error; `|mu_2|, |mu_3|, |mu_4|` = largest",
        "Floquet multipliers after the one along the flow (monodromy over one lap, central differences of",
        "the exact hard flow); `|mu_1 - 1|` = distance of the flow multiplier from 1.",
        "",
        f"Max relative |T_cont / T_spec - 1| over k | N: {rel_c:.1e}; "
        f"max |T_map / T_spec - 1| (dt = {a.dt}): {rel_m:.1e}.",
        f"Max |mu_1 - 1| over smooth orbits (kink < 1e-3): {max(r['dist1'] for r in rows if r['ok']):.1e}; "
        f"Newton residual <= {max(r['residual'] for r in rows):.1e}.",
        f"Not smooth (no multipliers; see `diffring.floquet`): {[(r['N'], r['k']) for r in rows if not r['ok']]}.",
        "`kink` = max |phi(x+h) + phi(x-h) - 2 phi(x)| / h (h = 1e-6): O(h) where the lap map is smooth.",
        "",
        "| N | k | T_spec | T_cont | T_map | basin | abs mu_2 | abs mu_3 | abs mu_4 | abs(mu_1 - 1) | kink |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mu = r["multipliers"]
        rest = np.abs(np.delete(mu, np.argmin(np.abs(mu - 1))))
        m = [f"{x:.3g}" for x in rest[:3]] + [""] * (3 - min(3, rest.size))
        ts = "" if np.isnan(r["T_spec"]) else f"{r['T_spec']:.6f}"
        L.append(f"| {r['N']} | {r['k']} | {ts} | {r['T_cont']:.6f} | {r['T_map']:.4f} | "
                 f"{r['basin']:.3f} +- {r['basin_se']:.3f} | {m[0]} | {m[1]} | {m[2]} | "
                 f"{r['dist1']:.1e} | {r['kink']:.0e} |")
    L += ["", "Other final states per N (same random states):", "",
          "| N | quiescent | chatter | irregular |", "|---|---|---|---|"]
    for N, fr in table.items():
        cells = (f"{fr[x][0]:.3f} +- {fr[x][1]:.3f}" for x in ("quiescent", "chatter", "irregular"))
        L.append(f"| {N} | " + " | ".join(cells) + " |")
    pathlib.Path(a.out).write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
