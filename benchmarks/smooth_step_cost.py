"""Where the time of one adaptive smooth-model step goes (1,000 neurons, float64, CPU).

Prints the per-step cost breakdown of docs/smooth_model.md ("Cost of a solve"): process CPU time per
step (all threads; robust on a shared machine) of the pieces of a step, minimum over repeats, and the
arithmetic XLA actually emits for a fixed Runge-Kutta step (counted in the compiled HLO), on the two
networks of benchmarks/bench_smooth.py; and SciPy's cost per RK45 step for comparison.

    python benchmarks/smooth_step_cost.py            # about 2 minutes on a quiet 2-core CPU
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from bench_smooth import networks, numpy_field  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import diffring as dr  # noqa: E402
from diffring._adaptive import DormandPrince87  # noqa: E402
from diffring._odesolve import _explicit_rk, _hoist_thresholds, _rk_step  # noqa: E402


def materialised_cond(k, h):
    """The conditional barrier AdaptiveRK used before `diffring._fusion.materialised_div` (kept here
    for the 'stages materialised' rows). `k` itself, computed once into a buffer: XLA does not fuse
    across a conditional's boundary.

    Without it, XLA CPU fuses the cheap stage combinations y + h sum_j a_ij k_j (and the v derivative)
    into every consumer and recomputes them there, which grows with the square of the stage count: a
    written-out Dormand-Prince 8(7) step emits 4-5x the arithmetic it needs and costs 330-355 instead
    of 49-59 us on a 1,000-neuron lattice (benchmarks/smooth_step_cost.py). `lax.optimization_barrier` does
    not stop it. Used for the 8(7) pair only: on the 5(4) pairs the buffer copies cost what the
    recomputation saves (measured within +-10 %). The predicate h > 0 is a runtime value, so XLA cannot
    fold the conditional; it holds for every step taken, and for h = 0 the zeros give the same step
    (y + 0 k). Under `vmap` (batched h) it becomes a select, the barrier is gone and XLA fuses (and
    rounds) differently: a batch then equals its single runs only to rounding, amplified by the
    adaptive step sequence (measured with the barrier on the 5(4) pair in tests/test_adaptive.py's batch
    test: up to 2e-3), not bit for bit.
    """
    return jax.lax.cond(h > 0, lambda a: a, lambda a: jax.tree.map(jnp.zeros_like, a), k)


LOOP = 1000  # iterations per timed call
N_STEPS = 200  # sampling intervals of the adaptive runs (t1 = 2)
RECORD = dr.Record(every=50, which="all", fields=("v", "o"), phases=False)


def cpu_per_call(fn, *args, repeats=7):
    """Minimum process CPU time of `fn(*args)` (after a warm-up call), in seconds."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        c0 = time.process_time()
        jax.block_until_ready(fn(*args))
        best = min(best, time.process_time() - c0)
    return best


def looped(body):
    """`body` applied LOOP times in one compiled `fori_loop` (no Python dispatch per iteration)."""
    return jax.jit(lambda y: jax.lax.fori_loop(0, LOOP, lambda i, y: body(y), y))


def arithmetic(fn, *args):
    """(multiplies + adds + subtracts, concatenates) per element in the compiled program's fusions."""
    text = fn.lower(*args).compile().as_text()
    ops = Counter()
    for comp in re.split(r"\n(?=%|ENTRY)", text):
        if comp.startswith("%fused") or comp.startswith("%wrapped"):
            ops.update(re.findall(r"= \S+ ([a-z-]+)\(", comp))
    return ops["multiply"] + ops["add"] + ops["subtract"], ops["concatenate"]


def fixed_steps(f, tab, materialise):
    """LOOP fixed Runge-Kutta steps of size h; with `materialise`, every stage derivative goes through
    `AdaptiveRK`'s materialising conditional (its predicate h > 0 must be a runtime value: h is an argument)."""

    def run(y, h):
        g = (lambda z: materialised_cond(f(z), h)) if materialise else f
        return jax.lax.fori_loop(0, LOOP, lambda i, y: _rk_step(g, tab, h, y), y)

    return jax.jit(run)


def us(seconds, per=LOOP):
    return f"{seconds / per * 1e6:.1f}"


def main():
    quick = "--quick" in sys.argv
    x = jnp.linspace(-1.0, 1.0, 1000)
    print("# Per-step cost of the smooth model, 1,000 neurons, float64 (process CPU time, min of 7)")
    print(f"jax {jax.__version__}, diffrax {diffrax.__version__}")
    print()
    print("Elementwise on 1,000 values, per evaluation (in a compiled loop):")
    for name, f, a in (
        ("tanh, float64", lambda y: y + 1e-9 * jnp.tanh(500.0 * y), x),
        ("tanh, float32", lambda y: y + 1e-9 * jnp.tanh(500.0 * y), x.astype(jnp.float32)),
        ("logistic (jax.nn.sigmoid), float64", lambda y: y + 1e-9 * jax.nn.sigmoid(500.0 * y), x),
        ("multiply-add, float64", lambda y: 1.0000001 * y + 1e-9, x),
    ):
        print(f"- {name}: {us(cpu_per_call(looped(f), a))} us")
    print()
    head = "| network | piece | CPU per step | evaluations | +, -, x per element | concatenates |"
    print(head)
    print("|---|---|---|---|---|---|")
    for (label, net), (_, net32) in zip(networks(quick), networks(quick, "float32"), strict=True):
        label = label.split(" (")[0]
        model = dr.SmoothRelaxation(net)
        hm = _hoist_thresholds(model)
        s0 = dr.init.random_phase(net, jax.random.key(0))
        zero = jnp.zeros((), net.dtype)

        def f(y, hm=hm, zero=zero):
            return hm.vector_field(zero, y, None)

        coupling = looped(lambda y, net=net: 0.5 * y + 1e-3 * net.coupling(y))
        o_test = jnp.linspace(-1.0, 1.0, net.n_neurons)
        print(f"| {label} | W o alone | {us(cpu_per_call(coupling, o_test))} us | - | - | - |")
        euler = looped(lambda y, f=f: jax.tree.map(lambda a, b: a + 1e-4 * b, y, f(y)))
        ar, cc = arithmetic(euler, s0)
        print(f"| {label} | one field evaluation (Euler step) | {us(cpu_per_call(euler, s0))} us | 1 | {ar} | {cc} |")
        for sname, solver, evals in (("Tsit5", diffrax.Tsit5(), 6), ("Dopri8", diffrax.Dopri8(), 12)):
            tab = _explicit_rk(solver)
            for materialise in (False, True):
                step = fixed_steps(f, tab, materialise)
                args = (s0, jnp.asarray(1e-4))
                ar, cc = arithmetic(step, *args)
                how = ", stages materialised" if materialise else ""
                cost = us(cpu_per_call(step, *args, repeats=3))
                print(f"| {label} | fixed {sname} step, stages written out{how} | {cost} us | {evals} | {ar} | {cc} |",
                      flush=True)
        pid = diffrax.PIDController(rtol=1e-7, atol=1e-7)
        for mname, method in (
            ("AdaptiveRK(DormandPrince54)", dr.AdaptiveRK(dr.DormandPrince54(), rtol=1e-7, atol=1e-7)),
            ("AdaptiveRK(Tsitouras54)", dr.AdaptiveRK(dr.Tsitouras54(), rtol=1e-7, atol=1e-7)),
            ("AdaptiveRK(DormandPrince87)", dr.AdaptiveRK(DormandPrince87(), rtol=1e-7, atol=1e-7)),
            ("ODESolve(Tsit5) (diffrax)", dr.ODESolve(stepsize_controller=pid)),
            ("ODESolve(Dopri8) (diffrax)", dr.ODESolve(diffrax.Dopri8(), stepsize_controller=pid)),
        ):
            run = jax.jit(lambda s, method=method, model=model: dr.simulate(model, s, n_steps=N_STEPS, record=RECORD,
                                                                             method=method))
            steps = int(run(s0).stats["num_steps"])
            cost = us(cpu_per_call(run, s0, repeats=3), steps)
            print(f"| {label} | adaptive step, {mname}, rtol 1e-7 | {cost} us | - | - | - |", flush=True)
        # The same solve in float32 (network and initial state rounded; rtol 1e-5, about float32's floor here).
        model32 = dr.SmoothRelaxation(net32)
        s32 = dr.State(s0.v.astype(jnp.float32), s0.o.astype(jnp.float32))
        method = dr.AdaptiveRK(dr.DormandPrince54(), rtol=1e-5, atol=1e-5)
        run = jax.jit(lambda s, method=method, model=model32: dr.simulate(model, s, n_steps=N_STEPS, record=RECORD,
                                                                           method=method))
        steps = int(run(s32).stats["num_steps"])
        cost = us(cpu_per_call(run, s32, repeats=3), steps)
        print(f"| {label} | adaptive step, AdaptiveRK(DormandPrince54), float32, rtol 1e-5 | {cost} us | - | - | - |",
              flush=True)
        fun = numpy_field(model)
        y0 = np.concatenate([np.asarray(s0.v), np.asarray(s0.o)])
        c0 = time.process_time()
        for _ in range(200):
            fun(0.0, y0)
        print(f"| {label} | SciPy: NumPy/CSR field evaluation | {(time.process_time() - c0) / 200 * 1e6:.1f} us | 1 "
              "| - | - |")
        c0 = time.process_time()
        r = solve_ivp(fun, (0.0, N_STEPS * model.dt), y0, method="RK45", rtol=1e-7, atol=1e-7)
        cpu = time.process_time() - c0
        print(f"| {label} | SciPy: solve_ivp RK45 step, rtol 1e-7 | {cpu / (r.nfev / 6) * 1e6:.1f} us | 6 | - | - |",
              flush=True)


if __name__ == "__main__":
    main()
