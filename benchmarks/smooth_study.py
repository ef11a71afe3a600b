"""How close is the smooth relaxation (`SmoothRelaxation`) to the hard-trigger limit, and at what cost?

Produces every number in docs/smooth_model.md:

    python benchmarks/smooth_study.py            # full study, about 30 minutes on a 2-core CPU
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
        model = dr.SmoothRelaxation(
            net, dt=self.dt, beta=jnp.asarray(beta), eps_o=jnp.asarray(eps_o), corrected=corrected
        )
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
            "N": N,
            "beta": float(beta),
            "eps_o": float(eps_o),
            "corrected": corrected,
            "period": P,
            "hard": ref,
            "rel_err": (P - ref) / ref,
            "status": int(sol.status),
            "steps": int(sol.stats["num_steps"]),
            "steps_per_time": int(sol.stats["num_steps"]) / self.t1,
            "wall_s": wall,
        }


def gradient_section(quick):
    """Reverse-mode gradient (diffrax RecursiveCheckpointAdjoint through adaptive Tsit5) of
    L = mean over records (every 0.1) of v^2 on a 6-ring, with respect to theta_L, at ODESolve's
    default tolerances and at rtol 1e-10, against central differences at rtol 1e-10 with h = 1e-4,
    1e-5 (the reference for the error column) and 1e-6, whose spread shows the FD noise."""
    import equinox as eqx

    net = dr.ring(6)
    s0 = dr.init.pulses(net, 1)
    record = dr.Record(every=10, fields=("v",), phases=False)
    configs = [(200.0, 0.005), (1000.0, 0.002), (2000.0, 0.002)]
    horizons = [20.0] if quick else [20.0, 60.0]
    tight = dr.ODESolve(rtol=1e-10, atol=1e-12)

    def loss(theta_L, beta, eps_o, t1, method):
        n = eqx.tree_at(lambda n: n.theta_L, net, theta_L)
        m = dr.SmoothRelaxation(n, dt=0.01, beta=beta, eps_o=eps_o)
        return jnp.mean(dr.simulate(m, s0, t1=t1, record=record, method=method).v ** 2)

    print("\n## 5. Gradient of a trajectory loss vs central differences (6-ring, d/d theta_L)")
    print(
        "| t1 | beta | eps_o | grad, rtol 1e-6 (default) | grad, rtol 1e-10 | central FD h = 1e-4 / 1e-5 / 1e-6 "
        "| rel. error of default vs FD 1e-5 |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = []
    x = jnp.asarray(THETA_L)
    for t1 in horizons:
        for beta, eps in configs:
            b, e = jnp.asarray(beta), jnp.asarray(eps)
            g_def = float(jax.grad(loss)(x, b, e, t1, dr.ODESolve()))
            g_tight = float(jax.grad(loss)(x, b, e, t1, tight))
            fds = [
                float((loss(x + h, b, e, t1, tight) - loss(x - h, b, e, t1, tight)) / (2 * h))
                for h in (1e-4, 1e-5, 1e-6)
            ]
            fd = fds[1]
            rows.append({"t1": t1, "beta": beta, "eps_o": eps, "grad_default": g_def, "grad_tight": g_tight, "fd": fds})
            print(
                f"| {t1:g} | {beta:g} | {eps:g} | {g_def:.5f} | {g_tight:.5f} | "
                + " / ".join(f"{v:.5f}" for v in fds)
                + f" | {abs(g_def - fd) / abs(fd):.1e} |",
                flush=True,
            )
    return rows


def fmt_err(e):
    return f"{100 * e:+.2f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--t1", type=float, default=120.0, help="simulated time per run")
    p.add_argument("--dt", type=float, default=0.002, help="sampling interval (fire times are interpolated)")
    p.add_argument("--skip", type=int, default=2, help="transient fires skipped")
    p.add_argument("--quick", action="store_true", help="small grid (smoke run)")
    p.add_argument("--json", default=None, help="also write all rows to this JSON file")
    p.add_argument("--sections", default="12345", help="which sections to run (digits 1-5)")
    args = p.parse_args(argv)
    R = Runner(args.t1, args.dt, args.skip)
    d = dr.SmoothRelaxation(dr.ring(2))
    default = (float(d.beta), float(d.eps_o))
    betas = [200.0, 1000.0] if args.quick else [200.0, 500.0, 1000.0, 2000.0, 5000.0]
    epss = [0.005, 0.002] if args.quick else [0.01, 0.005, 0.002, 0.001, 0.0005]

    print(
        f"# smooth-model study: t1 = {args.t1}, sampling dt = {args.dt}, skip = {args.skip}, "
        f"default (beta, eps_o) = {default}; jax {jax.__version__}, diffrax {diffrax.__version__}"
    )
    print("\nhard-model periods T_1(N): " + ", ".join(f"{N}: {hard_period(N):.6f}" for N in range(2, 13)))
    sections = {
        "1": lambda: grid_section(R, betas, epss, [2, 6] if args.quick else [2, 3, 6, 12], True),
        "2": lambda: grid_section(R, betas, epss, [2, 6], False),
        "3": lambda: default_section(R, default),
        "4": lambda: solver_section(R, default, args.quick),
        "5": lambda: gradient_section(args.quick),
    }
    rows = []
    for k in sorted(set(args.sections)):
        rows += sections[k]()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def grid_section(R, betas, epss, Ns, corrected):
    if corrected:
        print("\n## 1. Relative period error (%) vs (beta, eps_o), corrected thresholds (the default)")
    else:
        print("\n## 2. Relative period error (%) without the threshold correction (corrected=False)")
    print("| beta | eps_o | " + " | ".join(f"N = {N}" for N in Ns) + " | steps per unit time |")
    print("|---|---|" + "---|" * len(Ns) + "---|")
    rows = []
    for beta in betas:
        for eps in epss:
            rs = [R.run(N, beta, eps, corrected=corrected) for N in Ns]
            rows += rs
            print(
                f"| {beta:g} | {eps:g} | "
                + " | ".join(fmt_err(r["rel_err"]) for r in rs)
                + f" | {np.mean([r['steps_per_time'] for r in rs]):.0f} |",
                flush=True,
            )
    return rows


def default_section(R, default):
    print(f"\n## 3. Default smoothing (beta, eps_o) = {default} for N = 2 ... 12 (t1 = {R.t1})")
    print(
        "| N | T_1(N) hard | smooth | rel. error (%) | status | diffrax steps | steps per unit time | warm wall (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for N in range(2, 13):
        r = R.run(N, *default)
        rows.append(r)
        print(
            f"| {N} | {r['hard']:.5f} | {r['period']:.5f} | {fmt_err(r['rel_err'])} | {r['status']} | "
            f"{r['steps']} | {r['steps_per_time']:.0f} | {r['wall_s']:.2f} |",
            flush=True,
        )
    # Many rings switching at different times in one solve (the setting of tests/test_smooth.py).
    net = dr.rings(list(range(2, 13)))
    model = dr.SmoothRelaxation(net, dt=R.dt, beta=jnp.asarray(default[0]), eps_o=jnp.asarray(default[1]))
    sol = dr.simulate(model, dr.init.pulses(net, 1), t1=R.t1, record=R.record)
    T = np.array([hard_period(N) for N in range(2, 13)])
    P = np.array([mean_period(sol.t, np.asarray(sol.o)[:, r], R.skip) for r in range(11)])
    steps = int(sol.stats["num_steps"])
    print(
        f"\nAll eleven rings in one 77-neuron solve: max |rel. error| {100 * np.max(np.abs(P / T - 1)):.2f} %, "
        f"status {int(sol.status)}, {steps} steps ({steps / R.t1:.0f} per unit time)."
    )
    rows.append({"combined": True, "rel_err": (P / T - 1).tolist(), "steps": steps})
    return rows


def solver_section(R, default, quick):
    print(f"\n## 4. Solvers at the default smoothing, N = 6 (t1 = {R.t1})")
    print("| solver | rtol / atol | rel. error (%) | status | diffrax steps | warm wall (s) |")
    print("|---|---|---|---|---|---|")
    solvers = [
        ("Tsit5 (default)", dr.ODESolve(), "1e-6 / 1e-8"),
        ("Tsit5", dr.ODESolve(rtol=1e-4, atol=1e-6), "1e-4 / 1e-6"),
        ("Tsit5", dr.ODESolve(rtol=1e-9, atol=1e-11), "1e-9 / 1e-11"),
        ("Dopri5", dr.ODESolve(solver=diffrax.Dopri5()), "1e-6 / 1e-8"),
    ]
    if not quick:
        solvers += [
            ("Kvaerno3 (implicit)", dr.ODESolve(solver=diffrax.Kvaerno3(), rtol=1e-5, atol=1e-7), "1e-5 / 1e-7"),
            ("Kvaerno5 (implicit)", dr.ODESolve(solver=diffrax.Kvaerno5()), "1e-6 / 1e-8"),
        ]
    rows = []
    for name, method, tol in solvers:
        r = R.run(6, *default, method=method)
        r["solver"] = f"{name} {tol}"
        rows.append(r)
        print(
            f"| {name} | {tol} | {100 * r['rel_err']:+.4f} | {r['status']} | {r['steps']} | {r['wall_s']:.2f} |",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
