"""How close is the smooth relaxation (`SmoothRelaxation`) to the hard-trigger limit, and at what cost?

Produces every number in docs/smooth_model.md:

    python benchmarks/smooth_study.py            # full study, about 5 minutes on a 2-core CPU
    python benchmarks/smooth_study.py --quick    # fewer grid points, for a smoke run

Reference: the one-pulse ring period of the hard model, T_1(N) = N w_N with
exp(w) = (1/theta_L) (1 - (1 - theta_L exp(-(N-2) w)) exp(-w)), solved here with brentq (the hard
model `HardTrigger` reproduces it to 1e-5, tests/test_periods.py). The smooth model's period is
the mean interval between falls of the probe output through 0.5 (linearly interpolated between
samples of step `dt`), after a transient of `--skip` fires. Cost is diffrax's accepted+rejected
step count (`Solution.stats["num_steps"]`) per unit time, and the wall time of a warm (compiled) run.
"""

from __future__ import annotations

import argparse
import json
import time

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import brentq  # noqa: E402

import diffring as dr  # noqa: E402

THETA_H, THETA_L = 0.49, 0.2


def hard_period(N: int, theta_L: float = THETA_L, theta_H: float = THETA_H) -> float:
    """T_1(N) of spec section 2. The physical root has w >= ln(theta_H/theta_L) (a neuron fires with
    d >= theta_H and releases at d = theta_L); for N > 5 there is a spurious small root below it."""

    def f(w):
        return np.exp(w) - (1 - (1 - theta_L * np.exp(-(N - 2) * w)) * np.exp(-w)) / theta_L

    return N * brentq(f, np.log(theta_H / theta_L), 10.0, xtol=1e-15, rtol=1e-15)


def fire_times(t, o):
    """Times where o falls through 0.5, linearly interpolated between samples."""
    t, o = np.asarray(t), np.asarray(o)
    i = np.flatnonzero((o[:-1] >= 0.5) & (o[1:] < 0.5))
    return t[i] + (o[i] - 0.5) / (o[i] - o[i + 1]) * (t[i + 1] - t[i])


def mean_period(t, o, skip):
    ft = fire_times(t, o)[skip:]
    if ft.size < 2:
        return float("nan")
    return float((ft[-1] - ft[0]) / (ft.size - 1))


class Runner:
    """One compiled smooth solve per (ring size, corrected, method); beta and eps_o are traced."""

    def __init__(self, t1, dt, skip):
        self.t1, self.dt, self.skip = t1, dt, skip
        self.record = dr.Record(which="probes", fields=("o",), phases=False)

    def run(self, N, beta, eps_o, corrected=True, method=None, repeat=True):
        net = dr.ring(N)
        model = dr.SmoothRelaxation(net, dt=self.dt, beta=jnp.asarray(beta), eps_o=jnp.asarray(eps_o),
                                    corrected=corrected)
        s0 = dr.init.pulses(net, 1)

        def go():
            t = time.perf_counter()
            sol = dr.simulate(model, s0, t1=self.t1, record=self.record, method=method)
            sol.o.block_until_ready()
            return sol, time.perf_counter() - t

        sol, wall = go()
        if repeat:  # the first call may include compilation
            sol, wall = go()
        P = mean_period(sol.t, np.asarray(sol.o)[:, 0], self.skip)
        ref = hard_period(N)
        return {
            "N": N, "beta": float(beta), "eps_o": float(eps_o), "corrected": corrected,
            "period": P, "hard": ref, "rel_err": (P - ref) / ref, "status": int(sol.status),
            "steps": int(sol.stats["num_steps"]), "steps_per_time": int(sol.stats["num_steps"]) / self.t1,
            "wall_s": wall,
        }


def fmt_err(e):
    return f"{100 * e:+.2f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--t1", type=float, default=120.0, help="simulated time per run")
    p.add_argument("--dt", type=float, default=0.002, help="sampling interval (fire times are interpolated)")
    p.add_argument("--skip", type=int, default=2, help="transient fires skipped")
    p.add_argument("--quick", action="store_true", help="small grid (smoke run)")
    p.add_argument("--json", default=None, help="also write all rows to this JSON file")
    args = p.parse_args(argv)
    R = Runner(args.t1, args.dt, args.skip)
    d = dr.SmoothRelaxation(dr.ring(2))
    default = (float(d.beta), float(d.eps_o))
    rows = []

    betas = [200.0, 1000.0] if args.quick else [200.0, 500.0, 1000.0, 2000.0, 5000.0]
    epss = [0.005, 0.002] if args.quick else [0.01, 0.005, 0.002, 0.001, 0.0005]
    grid_N = [2, 6] if args.quick else [2, 3, 6, 12]

    print(f"# smooth-model study: t1 = {args.t1}, sampling dt = {args.dt}, skip = {args.skip}, "
          f"default (beta, eps_o) = {default}; jax {jax.__version__}, diffrax {diffrax.__version__}")
    print("\nhard-model periods T_1(N): " + ", ".join(f"{N}: {hard_period(N):.6f}" for N in range(2, 13)))

    print("\n## 1. Relative period error (%) vs (beta, eps_o), corrected thresholds (the default)")
    print("| beta | eps_o | " + " | ".join(f"N = {N}" for N in grid_N) + " | steps per unit time |")
    print("|---|---|" + "---|" * len(grid_N) + "---|")
    for beta in betas:
        for eps in epss:
            rs = [R.run(N, beta, eps) for N in grid_N]
            rows += rs
            print(f"| {beta:g} | {eps:g} | " + " | ".join(fmt_err(r["rel_err"]) for r in rs)
                  + f" | {np.mean([r['steps_per_time'] for r in rs]):.0f} |", flush=True)

    print("\n## 2. Without the threshold correction (corrected=False)")
    unc_N = [2, 6]
    print("| beta | eps_o | " + " | ".join(f"N = {N}" for N in unc_N) + " |")
    print("|---|---|" + "---|" * len(unc_N))
    for beta in betas:
        for eps in epss:
            rs = [R.run(N, beta, eps, corrected=False) for N in unc_N]
            rows += rs
            print(f"| {beta:g} | {eps:g} | " + " | ".join(fmt_err(r["rel_err"]) for r in rs) + " |", flush=True)

    print(f"\n## 3. Default smoothing (beta, eps_o) = {default} for N = 2 ... 12")
    print("| N | T_1(N) hard | smooth | rel. error (%) | status | diffrax steps | steps per unit time | warm wall (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for N in range(2, 13):
        r = R.run(N, *default)
        rows.append(r)
        print(f"| {N} | {r['hard']:.5f} | {r['period']:.5f} | {fmt_err(r['rel_err'])} | {r['status']} | "
              f"{r['steps']} | {r['steps_per_time']:.0f} | {r['wall_s']:.2f} |", flush=True)

    print(f"\n## 4. Solvers at the default smoothing, N = 6 (t1 = {args.t1})")
    print("| solver | rtol / atol | rel. error (%) | diffrax steps | warm wall (s) |")
    print("|---|---|---|---|---|")
    solvers = [
        ("Tsit5 (default)", dr.ODESolve(), "1e-6 / 1e-8"),
        ("Tsit5", dr.ODESolve(rtol=1e-4, atol=1e-6), "1e-4 / 1e-6"),
        ("Tsit5", dr.ODESolve(rtol=1e-9, atol=1e-11), "1e-9 / 1e-11"),
        ("Dopri5", dr.ODESolve(solver=diffrax.Dopri5()), "1e-6 / 1e-8"),
    ]
    if not args.quick:
        solvers += [
            ("Kvaerno3 (implicit)", dr.ODESolve(solver=diffrax.Kvaerno3(), rtol=1e-5, atol=1e-7), "1e-5 / 1e-7"),
            ("Kvaerno5 (implicit)", dr.ODESolve(solver=diffrax.Kvaerno5()), "1e-6 / 1e-8"),
        ]
    for name, method, tol in solvers:
        r = R.run(6, *default, method=method)
        r["solver"] = f"{name} {tol}"
        rows.append(r)
        print(f"| {name} | {tol} | {100 * r['rel_err']:+.4f} | {r['steps']} | {r['wall_s']:.2f} |", flush=True)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
