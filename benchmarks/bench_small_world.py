"""Benchmark 1: the small-world reservoir (spec section 4) with an 8-channel input drive.

`diffring.small_world(200, (2, 8), eps=0.05, p=0.1)`, 10,000 steps of the discrete map in float64,
driven by 8 input channels (uniform values in [0, 0.5), each held for 9 steps as in the published
image task), recording all outputs at 9 equally spaced times (the reservoir's features). Compared
with a NumPy loop of the same equations using a SciPy CSR matrix for W in the same process; the
final outputs must be identical.

Target (issue 2): >= 10x faster than the NumPy loop, compilation excluded and reported separately.
Also reported: the builder's default `RingCoupling` against the general `SparseCoupling` of the same
network (`diffring.as_sparse`) and against session 4's `RingCoupling` (one table group, a wrapping
shift; also in warm pairs, `time_warm`), the same run without inputs (JAX and NumPy: what the input drive
costs), the cost of phase tracking, and a batch of 16 input sequences (the reservoir's real
workload) against a batched NumPy loop.
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import Report, block, fmt_s, parser, table, time_interleaved, time_python, verdict  # noqa: E402

import diffring as dr  # noqa: E402


def numpy_loop(W, Win, X, v, o, alpha, theta_H, theta_L, every, n_steps=None):
    """u = W o + Win x (W a SciPy CSR matrix), v' = a v + (1-a) u, d = u - v', trigger with hysteresis.

    Works for a single state (n,) or a batch of states as columns (n, B) with X (steps, n_in, B).
    Records o every `every` steps (record 0 = initial state). `X=None`: no input term, `n_steps` steps.
    """
    beta = 1.0 - alpha
    recs = [o]
    for t in range(X.shape[0] if X is not None else n_steps):
        u = W @ o if X is None else W @ o + Win @ X[t]
        v = alpha * v + beta * u
        d = u - v
        o = np.where((d >= theta_H) | ((d >= theta_L) & (o == 0.0)), 0.0, 1.0)
        if (t + 1) % every == 0:
            recs.append(o)
    return v, o, np.stack(recs)


def time_warm(fns: dict, repeats: int) -> dict:
    """{name: (wall s, CPU s) arrays, one per round}, each timed call right after an untimed call of
    the same program (steady state, as the NumPy loop's back-to-back repeats); programs alternate
    round-robin, in reverse order every other round.

    `time_interleaved` times each call right after a different program, and on this machine such
    a call runs slower for its whole 10,000 steps (the single run right after the batch run vs
    right after itself: +25-50 % CPU time in session 5, at load 2-4); warm pairs compare two
    programs without that order effect.
    """
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for r in range(repeats):
        for name in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            block(fns[name]())
            c0, t0 = time.process_time(), time.perf_counter()
            block(fns[name]())
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {k: (np.array(wall[k]), np.array(cpu[k])) for k in fns}


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16, help="batch size of the reservoir-workload rows")
    args = p.parse_args()
    n_rings = 40 if args.quick else 200
    n_steps = 1000 if args.quick else 10_000
    every = n_steps // 8
    repeats = args.repeats or (3 if args.quick else 7)
    B = args.batch
    rep = Report(
        "small_world",
        f"Small-world reservoir: {n_rings} rings of 2-8 neurons, {n_steps} steps, float64, 8 inputs",
        args,
    )

    net = dr.small_world(n_rings, (2, 8), eps=0.05, p=0.1, seed=0, dtype="float64")
    n = net.n_neurons
    rng = np.random.default_rng(1)
    n_hold = -(-n_steps // 9)
    X = np.repeat(0.5 * rng.random((n_hold, 8)), 9, axis=0)[:n_steps]
    XB = np.repeat(0.5 * rng.random((B, n_hold, 8)), 9, axis=1)[:, :n_steps]
    keys = jax.random.split(jax.random.key(0), B)
    s0 = dr.init.random_phase(net, keys[0])
    sB = jax.tree.map(lambda *a: jnp.stack(a), *[dr.init.random_phase(net, k) for k in keys])
    rep.add(
        f"{n} neurons in {n_rings} rings (seed 0), {int(np.asarray(net.win != 0).sum())} non-zero input weights; "
        f"record all outputs every {every} steps ({n_steps // every + 1} records incl. the initial state). "
        f"Times are medians of {repeats} repeats (JAX runs interleaved round-robin); "
        "compile = first call of the same program with two record blocks."
    )
    rep.add()

    model = dr.DiscreteMap(net)
    rec = dr.Record(every=every, which="all", fields=("o",), phases=False)
    rec_ph = dr.Record(every=every, which="all", fields=("o",), phases=True)
    Xj, XBj = jnp.asarray(X), jnp.asarray(XB)

    def single(k, r):
        return dr.simulate(model, s0, n_steps=k, inputs=Xj[:k], record=r)

    def batch(k):
        return dr.simulate_batch(model, sB, n_steps=k, inputs=XBj[:, :k], record=rec)

    model_sparse = dr.DiscreteMap(dr.as_sparse(net))
    assert isinstance(net.coupling, dr.RingCoupling)

    def sparse(k):
        return dr.simulate(model_sparse, s0, n_steps=k, inputs=Xj[:k], record=rec)

    # The RingCoupling of session 4 (one table group of k slots, a wrapping shift), for an in-run
    # comparison with the default (two degree groups, no wrap: `RingCoupling.split`, `head0`).
    c = net.coupling
    post, pre, w = c.edges()
    one = dr.RingCoupling.from_edges(n, post, pre, w, net.dtype, split=False)
    one = dr.RingCoupling(shift_weight=one.shift_weight, rows=one.rows, index=one.index, weight=one.weight,
                          n_neurons=one.n_neurons)
    model_one = dr.DiscreteMap(eqx.tree_at(lambda m: m.coupling, net, one))

    def single_one(k):
        return dr.simulate(model_one, s0, n_steps=k, inputs=Xj[:k], record=rec)

    def free(k):
        return dr.simulate(model, s0, n_steps=k, record=rec)

    fns = {
        "single": lambda: single(n_steps, rec),
        "single-one": lambda: single_one(n_steps),
        "single-sparse": lambda: sparse(n_steps),
        "single-free": lambda: free(n_steps),
        "single-phases": lambda: single(n_steps, rec_ph),
        "batch": lambda: batch(n_steps),
    }
    # The same programs with two record blocks: their first call estimates the compile time.
    compile_fns = {
        "single": lambda: single(2 * every, rec),
        "single-one": lambda: single_one(2 * every),
        "single-sparse": lambda: sparse(2 * every),
        "single-free": lambda: free(2 * every),
        "single-phases": lambda: single(2 * every, rec_ph),
        "batch": lambda: batch(2 * every),
    }
    res = time_interleaved(fns, repeats, compile_fns)
    warm = time_warm({k: fns[k] for k in ("single", "single-one", "single-free")}, 3 * repeats)

    W = net.coupling.to_scipy().tocsr()
    Win = np.asarray(net.win)
    alpha = float(np.exp(-0.01))
    v0, o0 = np.asarray(s0.v), np.asarray(s0.o)
    t_np, c_np, (v_ref, o_ref, rec_ref) = time_python(
        lambda: numpy_loop(W, Win, X, v0, o0, alpha, 0.49, 0.2, every), max(3, min(repeats, 5))
    )
    t_np0, c_np0, (v_free, _, rec_free) = time_python(
        lambda: numpy_loop(W, None, None, v0, o0, alpha, 0.49, 0.2, every, n_steps), max(3, min(repeats, 5))
    )
    XBt = np.ascontiguousarray(np.transpose(XB, (1, 2, 0)))  # (steps, n_in, B)
    vB0, oB0 = np.asarray(sB.v).T.copy(), np.asarray(sB.o).T.copy()
    t_npb, c_npb, (vB_ref, oB_ref, recB_ref) = time_python(
        lambda: numpy_loop(W, Win, XBt, vB0, oB0, alpha, 0.49, 0.2, every), 3
    )

    sol = fns["single"]()
    same = bool(np.array_equal(np.asarray(sol.o), rec_ref))
    same_one = bool(np.array_equal(np.asarray(fns["single-one"]().o), rec_ref))
    same_sparse = bool(np.array_equal(np.asarray(fns["single-sparse"]().o), rec_ref))
    same_free = bool(np.array_equal(np.asarray(fns["single-free"]().o), rec_free))
    v_err = float(np.max(np.abs(np.asarray(sol.state.v) - v_ref)))
    solB = fns["batch"]()
    sameB = bool(np.array_equal(np.asarray(solB.o), np.transpose(recB_ref, (2, 0, 1))))

    def row(label, comp, wall, cpu, b=1, ref=(t_np, c_np)):
        return [
            label,
            "-" if comp is None else fmt_s(comp),
            fmt_s(wall / b),
            fmt_s(cpu / b),
            f"{wall / b / n_steps * 1e6:.2f} us",
            f"{ref[0] / (wall / b):.1f}",
            f"{ref[1] / (cpu / b):.1f}",
        ]

    def jrow(label, name):
        return row(label, res[name][0], res[name][1], res[name][3])

    t1, c1 = res["single"][1], res["single"][3]
    rows = [
        row("NumPy loop (SciPy CSR W), single run", None, t_np, c_np),
        jrow("diffring.simulate, phases=False (RingCoupling, the default)", "single"),
        jrow("diffring.simulate, phases=False, RingCoupling of session 4 (one table group, wrapping shift)",
             "single-one"),
        jrow("diffring.simulate, phases=False, SparseCoupling (as_sparse)", "single-sparse"),
        row(
            "diffring.simulate, phases=True", res["single-phases"][0], res["single-phases"][1], res["single-phases"][3]
        ),
        row("NumPy loop without inputs (speed-up column: vs itself)", None, t_np0, c_np0, ref=(t_np0, c_np0)),
        row(
            "diffring.simulate without inputs (speed-up vs the NumPy loop without inputs)",
            res["single-free"][0],
            res["single-free"][1],
            res["single-free"][3],
            ref=(t_np0, c_np0),
        ),
        row(f"NumPy loop, batch of {B} input sequences (per member)", None, t_npb, c_npb, B),
        row(f"diffring.simulate_batch, B = {B} (per member)", res["batch"][0], res["batch"][1], res["batch"][3], B),
    ]
    rep.add(
        table(
            [
                "method",
                "compile",
                "run (median)",
                "CPU time (median)",
                "per step",
                "speed-up vs NumPy single",
                "CPU-time ratio",
            ],
            rows,
        )
    )
    rep.add()
    rep.add(
        f"Agreement: recorded outputs identical to the NumPy loop: single {same}, session-4 RingCoupling {same_one}, "
        f"SparseCoupling {same_sparse}, "
        f"without inputs {same_free}, batch {sameB}; final max |v - v_ref| = {v_err:.2e}."
    )
    rep.add(
        f"RingCoupling vs SparseCoupling (wall / CPU): {res['single-sparse'][1] / t1:.2f}x / "
        f"{res['single-sparse'][3] / c1:.2f}x faster. Cost of the input drive (`Win` reaches only the "
        f"{int(np.asarray(net.win).any(axis=1).sum())} ring heads, RingCoupling table rows: "
        f"`MapScan` computes their drive once per record block and adds it in the heads' gather, "
        f"`SignPacked.fold_inputs`): {(t1 - res['single-free'][1]) / n_steps * 1e6:+.2f} us/step wall, "
        f"{(c1 - res['single-free'][3]) / n_steps * 1e6:+.2f} us/step CPU."
    )
    def us(x):
        return f"{x / n_steps * 1e6:.2f}"

    (w_new, wc_new), (w_one, wc_one), (w_free, _) = (tuple(np.median(a) for a in warm[k])
                                                     for k in ("single", "single-one", "single-free"))
    # The median of per-round ratios: robust to a load that drifts between rounds.
    r_wall = float(np.median(warm["single"][0] / warm["single-one"][0]))
    r_cpu = float(np.median(warm["single"][1] / warm["single-one"][1]))
    rep.add(
        f"Warm runs (each timed call right after an untimed call of the same program, like the NumPy "
        f"loop's repeats; `time_warm`): default RingCoupling {us(w_new)} us/step wall ({us(wc_new)} CPU), "
        f"speed-up vs the NumPy loop {t_np / w_new:.1f}x; without inputs {us(w_free)} us/step "
        f"({t_np0 / w_free:.1f}x its NumPy loop). The interleaved table times each call right after a "
        f"different program (the `single` row right after the batch run): {us(t1)} us/step, "
        f"{100 * (t1 / w_new - 1):+.0f} % on the warm run (`time_warm` on this order effect)."
    )
    groups = " + ".join(f"{hi - lo} heads x {k} slots" for lo, hi, k in c._groups())
    rep.add(
        f"Default RingCoupling (table groups {groups}, "
        f"one scatter each; wrap-free shift: {c.head0}) vs the session-4 "
        f"one ({c.rows.shape[0]} x {c.index.shape[1]} slots, one scatter, wrapping shift), warm pairs in the "
        f"same run ({3 * repeats} rounds): {us(w_one)} -> {us(w_new)} us/step wall, {us(wc_one)} -> {us(wc_new)} "
        f"CPU (medians); median per-round ratio new / old {r_wall:.3f} wall, {r_cpu:.3f} CPU."
    )
    rep.add(
        f"Phase tracking cost (wall / CPU): {100 * (res['single-phases'][1] / t1 - 1):+.0f} % / "
        f"{100 * (res['single-phases'][3] / c1 - 1):+.0f} %. "
        f"Batch vs batched NumPy (per member): {t_npb / res['batch'][1]:.1f}x."
    )
    rep.add()
    sp = t_np / t1
    rep.add(f"Acceptance: small-world float64 speed-up vs NumPy loop {sp:.1f}x (>= 10x) {verdict(sp >= 10 and same)}.")
    rep.write()


if __name__ == "__main__":
    main()
