"""Benchmark 2: a 100 x 100 periodic S0 lattice of 6-rings (60,000 neurons), 10,000 steps.

Measured through the public API, `diffring.simulate(DiscreteMap(net), ..., record=Record(every=100,
which="probes", fields=(), phases=...))`, against a SciPy-sparse (CSR) loop of the same equations in
the same process (float64; its final outputs must equal diffring's exactly). Reports neuron-steps
per second in float64 and float32, the cost of on-the-fly phase tracking (phases=True vs False), and
a bare fused `lax.scan` of the same map as a yardstick for the API's overhead.

Targets (issue 2): >= 5x the SciPy loop in float64; >= 1e9 neuron-steps/s in float64 and >= 2.5e9
in float32 on a 2-core CPU.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import Report, fmt_rate, fmt_s, parser, table, time_interleaved, time_python, verdict  # noqa: E402

import diffring as dr  # noqa: E402

EVERY = 100


def scipy_loop(W, v, o, n_steps, alpha, theta_H, theta_L):
    """The discrete map (spec 1.1) with a SciPy CSR matrix: u = W o, v' = a v + (1-a) u, d = u - v'."""
    beta = 1.0 - alpha
    for _ in range(n_steps):
        u = W @ o
        v = alpha * v + beta * u
        d = u - v
        o = np.where((d >= theta_H) | ((d >= theta_L) & (o == 0.0)), 0.0, 1.0)
    return v, o


def bare_scan(net, n_steps):
    """A hand-written fused scan of the same map over the (N, L, L) position-major layout."""
    c = net.coupling
    N, grid = c.ring_size, c.grid
    dtype = net.dtype
    alpha = jnp.exp(-jnp.asarray(0.01, dtype) / net.tau)
    beta = 1 - alpha
    th, tl, eps = net.theta_H, net.theta_L, c.eps
    zero, one = jnp.zeros((), dtype), jnp.ones((), dtype)

    def shift(s, k, axis):
        n = s.shape[axis]
        a = jax.lax.slice_in_dim(s, (n - k) % n, n, axis=axis)
        b = jax.lax.slice_in_dim(s, 0, (n - k) % n, axis=axis)
        return jnp.concatenate([a, b], axis=axis)

    def step(carry, _):
        v, o = carry
        s = o[c.s_out]
        nb = shift(s, 1, 0) + shift(s, -1, 0) + shift(s, 1, 1) + shift(s, -1, 1)
        rows = [o[(p - 1) % N] for p in range(N)]
        rows[c.r_in] = rows[c.r_in] + eps * nb
        u = jnp.stack(rows)
        v2 = alpha * v + beta * u
        d = u - v2
        fire = (d >= th) | ((d >= tl) & (o == zero))
        return (v2, jnp.where(fire, zero, one)), None

    @jax.jit
    def run(v, o):
        shape = (N,) + grid
        (v, o), _ = jax.lax.scan(step, (v.reshape(shape), o.reshape(shape)), None, length=n_steps)
        return v.reshape(-1), o.reshape(-1)

    return run


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=None, help="lattice side L (default 100, quick 20)")
    p.add_argument("--steps", type=int, default=None, help="number of steps (default 10000, quick 1000)")
    args = p.parse_args()
    L = args.size or (20 if args.quick else 100)
    n_steps = args.steps or (1000 if args.quick else 10_000)
    repeats = args.repeats or (3 if args.quick else 5)
    rep = Report("lattice", f"Lattice: {L} x {L} periodic S0 lattice of 6-rings, {n_steps} steps", args)
    n = 6 * L * L
    work = n * n_steps
    rep.add(
        f"{n} neurons, eps = 0.05, dt = 0.01, clean random phases (`diffring.init.random_phase`), "
        f"record every {EVERY} steps, probes only, no fields "
        f"(`Record(every={EVERY}, which='probes', fields=(), phases=...)`). "
        f"Times are medians of {repeats} repeats (JAX runs interleaved round-robin); "
        "compile = first call of the same program with two record blocks (bare scan: first call minus median). "
        "Rate = neurons x steps / median time."
    )
    rep.add()

    nets = {
        dt: dr.lattice([L, L], 6, scheme="S0", eps=0.05, boundary="periodic", dtype=dt) for dt in ("float64", "float32")
    }
    key = jax.random.key(0)
    s0 = {dt: dr.init.random_phase(nets[dt], key) for dt in nets}

    fns, labels, compile_fns = {}, {}, {}
    for dt in ("float64", "float32"):
        model = dr.DiscreteMap(nets[dt])
        for phases in (False, True):
            rec = dr.Record(every=EVERY, which="probes", fields=(), phases=phases)
            name = f"api-{dt}-{'phases' if phases else 'nophases'}"

            def call(k, m=model, s=s0[dt], r=rec):
                return dr.simulate(m, s, n_steps=k, record=r)

            fns[name] = lambda c=call: c(n_steps)
            compile_fns[name] = lambda c=call: c(2 * EVERY)  # the same program, two record blocks
            labels[name] = (f"diffring.simulate, {dt}, phases={phases}", dt)
        bare = bare_scan(nets[dt], n_steps)
        name = f"bare-{dt}"
        fns[name] = lambda b=bare, s=s0[dt]: b(s.v, s.o)
        labels[name] = (f"bare fused lax.scan (yardstick), {dt}", dt)

    res = time_interleaved(fns, repeats, compile_fns)

    # Reference: SciPy CSR loop in float64, timed in the same process; must agree exactly.
    net64 = nets["float64"]
    W = net64.coupling.to_scipy().tocsr()
    v0 = np.asarray(s0["float64"].v, np.float64)
    o0 = np.asarray(s0["float64"].o, np.float64)
    alpha = float(np.exp(-0.01 / 1.0))
    t_sp, c_sp, (v_ref, o_ref) = time_python(lambda: scipy_loop(W, v0, o0, n_steps, alpha, 0.49, 0.2), min(3, repeats))
    sol = fns["api-float64-nophases"]()
    o_same = bool(np.array_equal(np.asarray(sol.state.o), o_ref))
    v_err = float(np.max(np.abs(np.asarray(sol.state.v) - v_ref)))
    vb, ob = fns["bare-float64"]()
    bare_same = bool(np.array_equal(np.asarray(ob), o_ref))
    n_fire = int(np.sum(o_ref == 0))

    rows = [["SciPy CSR loop, float64 (reference)", "-", fmt_s(t_sp), fmt_s(c_sp), fmt_rate(work / t_sp), "1.0", "1.0"]]
    for name, (label, _) in labels.items():
        comp, med, _, cpu = res[name]
        rows.append(
            [
                label,
                fmt_s(comp),
                fmt_s(med),
                fmt_s(cpu),
                fmt_rate(work / med),
                f"{t_sp / med:.1f}",
                f"{c_sp / cpu:.1f}",
            ]
        )
    rep.add(
        table(
            [
                "method",
                "compile",
                "run (median)",
                "CPU time (median)",
                "neuron-steps/s",
                "speed-up vs SciPy",
                "CPU-time ratio vs SciPy",
            ],
            rows,
        )
    )
    rep.add()
    rep.add(
        f"Agreement after {n_steps} steps (float64): diffring outputs identical to the SciPy loop: {o_same}; "
        f"bare scan identical: {bare_same}; max |v - v_ref| = {v_err:.2e}; firing neurons at the end: {n_fire}."
    )
    rep.add()

    ph = {
        dt: (
            res[f"api-{dt}-phases"][1] / res[f"api-{dt}-nophases"][1] - 1,
            res[f"api-{dt}-phases"][3] / res[f"api-{dt}-nophases"][3] - 1,
        )
        for dt in ("float64", "float32")
    }
    rep.add(
        "Cost of on-the-fly phase tracking (phases=True vs False; next issue's budget <= 20 %), wall / CPU time: "
        + ", ".join(f"{dt}: {100 * w:+.0f} % / {100 * c:+.0f} %" for dt, (w, c) in ph.items())
        + "."
    )
    api_vs_bare = {
        dt: (res[f"api-{dt}-nophases"][1] / res[f"bare-{dt}"][1], res[f"api-{dt}-nophases"][3] / res[f"bare-{dt}"][3])
        for dt in ("float64", "float32")
    }
    rep.add(
        "API vs the bare scan (time ratio API / bare, phases=False), wall / CPU: "
        + ", ".join(f"{dt}: {w:.2f} / {c:.2f}" for dt, (w, c) in api_vs_bare.items())
        + "."
    )
    rep.add()
    r64 = work / res["api-float64-nophases"][1]
    r32 = work / res["api-float32-nophases"][1]
    sp = t_sp / res["api-float64-nophases"][1]
    rep.add(
        f"Acceptance: lattice float64 speed-up vs SciPy {sp:.1f}x (>= 5x) {verdict(sp >= 5 and o_same)}; "
        f"float64 {r64:.3g} neuron-steps/s (>= 1e9) {verdict(r64 >= 1e9)}; "
        f"float32 {r32:.3g} neuron-steps/s (>= 2.5e9) {verdict(r32 >= 2.5e9)}."
    )
    rep.write()


if __name__ == "__main__":
    main()
