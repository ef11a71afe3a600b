"""Write docs/results/reservoir_tuning.md: gradient tuning of small ring reservoirs vs the untuned ones.

    python docs/results/make_tuning.py [--seeds 5] [--iters 30] [--beta 10] [--frozen win]
        [--tasks memory,narma10,digits]

For each task and seed: build a small-world reservoir (seeded), train the ridge readout on the
untuned reservoir's features and score the test split; then tune the parameters that are not
`--frozen` (by default the four global ones: log eps scale, log input gain, theta_H, theta_L) by Adam
on the validation loss of the closed-form ridge readout (diffring.reservoir.tune), keep the iterate
with the lowest validation loss, and score the tuned reservoir the same way: in the model it was tuned
in (the soft map) and, separately, transferred to the exact hard map. Tasks: memory capacity and
NARMA-10 (one series cut into windows that each start from the same state; per-step targets after a
washout) and the 8 x 8 digits (published image recipe at size 8, short runs).
"""

import argparse
import json
import os
import pathlib
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import diffring as dr  # noqa: E402
import diffring.reservoir as rs  # noqa: E402

DT = 0.05
ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
HIGHER_IS_BETTER = {"digits": True, "memory": True, "narma10": False, "mackey_glass": False}
METRIC = {
    "digits": "test accuracy",
    "memory": "test memory capacity (10 delays)",
    "narma10": "test NRMSE",
    "mackey_glass": "test NRMSE (h = 1, 5, 10 pooled)",
}


def model_for(net, route, beta):
    if route == "hard":
        return dr.DiscreteMap(net, dt=DT)
    if route == "surrogate":  # exact hard map forward, sigmoid surrogate backward
        return dr.DiscreteMap(net, dt=DT, threshold=dr.SigmoidSurrogate(beta))
    return dr.DiscreteMap(net, dt=DT, threshold=dr.SoftThreshold(beta))


def drives(encoder, samples, key):
    return jax.jit(jax.vmap(encoder))(jnp.asarray(samples), rs._encoders.sample_keys(key, len(samples)))


def digits_task(seed, a):
    data = rs.digits(seed=seed)
    enc = rs.ImageEncoder(size=8, window=8, hold=a.hold, steps=57 * a.hold, scale=a.image_scale, noise=0.0)
    x = np.asarray(drives(enc, data.inputs, jax.random.key(seed)))
    y = data.y
    test = data.test
    rest = np.flatnonzero(~test)
    rng = np.random.default_rng(seed)
    rng.shuffle(rest)
    n_val = len(rest) // 4
    val, train = rest[:n_val], rest[n_val:]
    Y = np.asarray(rs.one_vs_rest(jnp.asarray(y), 10))
    feats = rs.Features(items=(rs.Snapshots(), rs.Voltages()), n_times=a.n_times)
    return dict(
        name="digits",
        x=x,
        Y=Y,
        labels=y,
        train=train[: a.tune_train],  # the tuning loss fits on these and is measured on `val`
        val=val[: a.tune_val],
        trainval=rest,  # the scoring readout is fitted on all non-test samples
        test=np.flatnonzero(test),
        features=feats,
        per_step=False,
        washout=0,
        n_in=8,
        n_steps=enc.n_steps,
    )


def _windows(name, u, Y, wash, seed, a):
    """Consecutive windows of a series: train first, then validation, then test (60/20/20)."""
    n_win = u.shape[0]
    enc = rs.SeriesEncoder(length=a.window, channels=1, hold=a.hold, scale=a.series_scale)
    x = np.asarray(drives(enc, u, jax.random.key(seed)))
    n_test = n_val = n_win // 5
    idx = np.arange(n_win)
    n_tr = n_win - n_val - n_test
    return dict(
        name=name,
        x=x,
        Y=Y,
        labels=None,
        train=idx[:n_tr],
        val=idx[n_tr : n_tr + n_val],
        trainval=idx[: n_tr + n_val],
        test=idx[n_tr + n_val :],
        features=rs.Features(items=(rs.Snapshots(), rs.Voltages()), every=a.hold),
        per_step=True,
        washout=wash,
        n_in=1,
        n_steps=enc.n_steps,
    )


def narma_task(seed, a):
    W, n_win = a.window, a.series_windows
    data = rs.narma10(length=n_win * W + 10, seed=seed, washout=0)
    u = data.inputs[0, 10:, 0][: n_win * W].reshape(n_win, W, 1)
    y = data.y[0, 10:][: n_win * W].reshape(n_win, W)
    return _windows("narma10", u, y, W // 4, seed, a)


def mackey_task(seed, a):
    """Mackey-Glass (tau = 17) direct prediction of x(t + h), h = 1, 5, 10, from the state after x(t)."""
    W, n_win = a.window, a.series_windows
    data = rs.mackey_glass(length=n_win * W, horizons=(1, 5, 10), seed=seed, washout=0)
    u = data.inputs[0, :, 0].reshape(n_win, W, 1)
    y = data.y[0].reshape(n_win, W, 3)
    return _windows("mackey_glass", u, y, W // 4, seed, a)


def memory_task(seed, a):
    """Jaeger's memory capacity with delays 1..K: u ~ U[-0.5, 0.5], targets u(t - k); the first K
    inputs of each window are a washout (their targets reach back before the window's start)."""
    W, n_win, K = a.window, a.series_windows, a.delays
    u = np.random.default_rng(seed).uniform(-0.5, 0.5, n_win * W + K)
    y = np.stack([u[K - k : K - k + n_win * W] for k in range(1, K + 1)], -1).reshape(n_win, W, K)
    return _windows("memory", u[K:].reshape(n_win, W, 1), y, K, seed, a)


def _test_score(name, labels, P, Y):
    if name == "digits":
        return float(np.mean(P.argmax(1) == labels))
    if name == "memory":  # sum over delays of the squared correlation
        return float(sum(np.corrcoef(P[:, k], Y[:, k])[0, 1] ** 2 for k in range(Y.shape[1])))
    return float(rs.nrmse(jnp.asarray(Y), jnp.asarray(P)))


def score(task, problem, params):
    """Ridge readout (alpha by 5-fold CV on the training + validation rows) on the problem's features;
    the test score and the alpha chosen."""
    rows = eqx.filter_jit(problem.rows)
    trainval, test = task["trainval"], task["test"]
    Xtr = np.concatenate([np.asarray(rows(params, jnp.asarray(task["x"][c]))) for c in np.array_split(trainval, 4)])
    Xte = np.asarray(rows(params, jnp.asarray(task["x"][test])))
    Ytr = np.asarray(problem.targets(jnp.asarray(task["Y"][trainval])))
    Yte = np.asarray(problem.targets(jnp.asarray(task["Y"][test])))
    ridge = rs.Ridge(alphas=ALPHAS, standardize=False)
    st = jax.jit(ridge.fit)(jnp.asarray(Xtr), jnp.asarray(Ytr))
    P = np.asarray(ridge.predict(st, jnp.asarray(Xte)))
    labels = None if task["labels"] is None else task["labels"][test]
    return _test_score(task["name"], labels, P, Yte), float(st.alpha)


def run_one(task, seed, a):
    net = dr.small_world(
        a.rings, (3, 6), eps=a.eps, p=0.3, n_in=task["n_in"], input_weight=1.0, input_density=0.5, seed=seed
    )
    model = model_for(net, a.route, a.beta)
    s0 = dr.init.random_phase(net, jax.random.key(seed), dt=DT)
    frozen = tuple(f for f in a.frozen.split(",") if f)
    space = rs.TuningSpace.from_model(model, frozen=frozen)
    problem = rs.TuningProblem(
        model,
        s0,
        task["features"],
        space,
        n_steps=task["n_steps"],
        alpha=a.alpha or 1.0,
        per_step=task["per_step"],
        washout=task["washout"],
    )
    hard = eqx.tree_at(lambda q: q.model, problem, model_for(net, "hard", a.beta))
    p0 = space.init(model)
    before, alpha0 = score(task, problem, p0)
    hard_before, _ = score(task, hard, p0)
    if a.alpha == 0:  # the loss's ridge uses the alpha that cross-validation picked for the untuned reservoir
        problem = eqx.tree_at(lambda q: q.alpha, problem, alpha0)
    x, Y = task["x"], task["Y"]
    tr, va = task["train"], task["val"]
    data = (x[tr], Y[tr], x[va], Y[va])
    opt = optax.chain(optax.clip_by_global_norm(a.clip), optax.adam(a.lr))
    t0 = time.time()
    seen = [p0]  # seen[i] is the iterate whose loss is losses[i]

    def keep(i, params, loss):
        seen.append(params)

    params, losses = rs.tune(problem, p0, opt, a.iters, data, callback=keep)
    losses = np.append(losses, float(eqx.filter_jit(problem.loss)(params, *data)))
    best = int(np.argmin(losses))  # the iterate with the lowest validation loss (never the test score)
    params = seen[best]
    t_tune = time.time() - t0
    after, alpha1 = score(task, problem, params)
    hard_after, _ = score(task, hard, params)
    return dict(
        task=task["name"],
        seed=seed,
        before=before,
        after=after,
        hard_before=hard_before,
        hard_after=hard_after,
        alpha_before=alpha0,
        alpha_after=alpha1,
        tune_s=t_tune,
        eps_scale=float(np.exp(params.log_eps_scale)),
        gain=float(np.exp(params.log_win_scale)),
        theta_H=float(np.mean(params.theta_H)),
        theta_L=float(np.mean(params.theta_L)),
        n_neurons=net.n_neurons,
        losses=losses.tolist(),
        best_iter=best,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--route", choices=("surrogate", "soft"), default="soft")
    ap.add_argument("--beta", type=float, default=10.0)
    ap.add_argument("--frozen", default="win", help="comma-separated: eps, gain, thresholds, win ('' tunes all)")
    ap.add_argument("--rings", type=int, default=20)
    ap.add_argument("--eps", type=float, default=0.2)
    ap.add_argument("--hold", type=int, default=4)
    ap.add_argument("--n-times", type=int, default=5)
    ap.add_argument("--image-scale", type=float, default=0.3)
    ap.add_argument("--series-scale", type=float, default=1.0)
    ap.add_argument("--window", type=int, default=40)
    ap.add_argument("--series-windows", type=int, default=100)
    ap.add_argument("--delays", type=int, default=10)
    ap.add_argument("--alpha", type=float, default=0.0, help="ridge alpha inside the loss (0: CV choice, untuned)")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--tune-train", type=int, default=400, help="digits: training samples used by the tuning loss")
    ap.add_argument("--tune-val", type=int, default=200, help="digits: validation samples used by the tuning loss")
    ap.add_argument("--tasks", default="memory,narma10,digits")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).with_name("reservoir_tuning.md")))
    ap.add_argument("--merge", nargs="+", help="write one report from the .json files of separate runs (no runs)")
    ap.add_argument("--note", help="a paragraph added to the report (with --merge: replaces the runs' notes)")
    ap.add_argument("--scan", action="store_true", help="only write the gradient scan over log input gain")
    a = ap.parse_args()
    if a.scan:
        return scan(a)
    if a.merge:
        runs = [json.loads(pathlib.Path(f).read_text()) for f in a.merge]
        for key in ("beta", "lr", "iters", "frozen", "rings", "eps", "route"):
            if len({str(r["args"][key]) for r in runs}) > 1:
                raise SystemExit(f"--merge: runs differ in {key}")
        args = argparse.Namespace(**{**runs[0]["args"], "out": a.out, "merge": None, "note": a.note})
        rows = [row for r in runs for row in r["rows"]]
        cmds = "; ".join(f"`{r['command']}` ({r['elapsed']:.0f} s)" for r in runs)
        write(
            rows,
            args,
            sum(r["elapsed"] for r in runs),
            command=cmds + f"; merged by `python docs/results/make_tuning.py {_argv()}`",
        )
        return
    makers = {"digits": digits_task, "narma10": narma_task, "memory": memory_task, "mackey_glass": mackey_task}
    rows = []
    t_start = time.time()
    for name in a.tasks.split(","):
        for seed in range(a.seeds):
            task = makers[name](seed, a)
            r = run_one(task, seed, a)
            print(json.dumps({k: v for k, v in r.items() if k != "losses"}), flush=True)
            rows.append(r)
            write(rows, a, time.time() - t_start)  # after every run, so a stopped run keeps its results


def scan(a, betas=(100.0, 10.0), log_gains=(-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)):
    """Validation loss and its exact derivative in the log input gain along a line (memory task, seed 0,
    untuned otherwise): is the gradient a usable descent direction at this smoothing?"""
    task = memory_task(0, a)
    net = dr.small_world(a.rings, (3, 6), eps=a.eps, p=0.3, n_in=1, input_weight=1.0, input_density=0.5, seed=0)
    s0 = dr.init.random_phase(net, jax.random.key(0), dt=DT)
    x, Y, tr, va = task["x"], task["Y"], task["train"], task["val"]
    data = (x[tr], Y[tr], x[va], Y[va])
    L = [
        "# Gradient tuning: is the loss smooth enough to descend?",
        "",
        f"Produced by `python docs/results/make_tuning.py {' '.join(sys.argv[1:])}`: the memory task of "
        "reservoir_tuning.md, seed 0, untuned except for the input gain; validation loss of the ridge readout "
        "(alpha 0.1) and its exact derivative d loss / d log gain, through the soft map at two smoothings.",
        "",
        "| beta | log gain | validation loss | d loss / d log gain | d loss / d theta_H |",
        "| --- | --- | --- | --- | --- |",
    ]
    for beta in betas:
        model = model_for(net, "soft", beta)
        space = rs.TuningSpace.from_model(model, frozen=("win",))
        prob = rs.TuningProblem(
            model,
            s0,
            task["features"],
            space,
            n_steps=task["n_steps"],
            alpha=0.1,
            per_step=True,
            washout=task["washout"],
        )
        vg = eqx.filter_jit(eqx.filter_value_and_grad(prob.loss))
        p0 = space.init(model)
        for lg in log_gains:
            v, g = vg(eqx.tree_at(lambda q: q.log_win_scale, p0, jnp.asarray(lg)), *data)
            L.append(
                f"| {beta:g} | {lg:+.2f} | {float(v):.5f} | {float(g.log_win_scale):+.4f} | {float(g.theta_H):+.4f} |"
            )
            print(L[-1], flush=True)
    out = pathlib.Path(a.out).with_name("reservoir_tuning_scan.md")
    out.write_text("\n".join(L) + "\n")


def _argv():
    """The command-line arguments, with a --note's text elided (the note is in the report)."""
    args = sys.argv[1:]
    return " ".join("NOTE" if i > 0 and args[i - 1] == "--note" else x for i, x in enumerate(args))


def _se(v):
    """Standard error of the mean over seeds."""
    return float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def _verdict(d, better_sign):
    """d: paired differences tuned - untuned; better_sign +1 if higher is better."""
    g = better_sign * np.asarray(d)
    if g.mean() > 2 * _se(g):
        return "improves (beyond 2 SE)"
    if g.mean() < -2 * _se(g):
        return "worse (beyond 2 SE)"
    return "no significant change"


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for r in (r for r in rows if r["task"] == task):
            L = np.asarray(r["losses"])
            ax.plot(L / L[0], label=f"seed {r['seed']}")
            ax.plot(r["best_iter"], L[r["best_iter"]] / L[0], "k.")
        ax.set_title(task)
        ax.set_yscale("log")
        ax.set_xlabel("Adam iteration (dots: kept)")
        ax.set_ylabel("validation loss / untuned")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(rows, a, elapsed, load=None, command=None):
    cmd = "python docs/results/make_tuning.py " + _argv()
    load = os.getloadavg()[0] if load is None else load
    frozen = [f for f in a.frozen.split(",") if f]
    tuned = [
        n
        for f, n in (
            ("eps", "log eps scale"),
            ("gain", "log input gain"),
            ("thresholds", "theta_H, theta_L"),
            ("win", "each nonzero input weight"),
        )
        if f not in frozen
    ]
    out = pathlib.Path(a.out)
    th0 = dr.small_world(2, (3, 3), seed=0)  # the default thresholds every reservoir starts from
    L = [
        "# Gradient tuning of ring reservoirs",
        "",
        (f"Produced by {command}" if command else f"Produced by `{cmd.strip()}` ({elapsed:.0f} s in total")
        + f", float64, 2-core CPU shared with other jobs, load average {load:.1f} at the end; "
        f"diffring {dr.__version__}, jax {jax.__version__}).",
        "",
        f"Tuned: {', '.join(tuned)} (global scalars unless per-weight), by Adam (lr {a.lr}, updates clipped to "
        f"global norm {a.clip}) for {a.iters} iterations. The loss is the validation mean squared error of the "
        "closed-form ridge readout (alpha: the one 5-fold CV picks for the untuned reservoir, column alpha) fitted "
        "inside the loss on the training samples' features (`diffring.reservoir.TuningProblem`, `tune`); it is "
        "deterministic (full batch), and the iterate with the lowest validation loss is kept (column `kept`). "
        "The test split is never used for any choice.",
        "",
    ]
    if a.route == "surrogate":
        L.append(
            f"Route: `DiscreteMap(threshold=SigmoidSurrogate(beta={a.beta}))`: the exact hard map forward, the "
            "sigmoid surrogate backward."
        )
    else:
        L.append(
            f"Route: the soft map `DiscreteMap(threshold=SoftThreshold(beta={a.beta:g}))` (the trigger "
            f"H(x) = sigmoid({a.beta:g} x)), a smooth model with exact gradients. Columns *soft* score the "
            "untuned and the tuned parameters in this model (the one tuned); columns *hard* put the same "
            "parameters into the exact hard map (`DiscreteMap`, `HardThreshold`) and score that."
        )
    L += [
        "",
        f"Reservoir: `small_world({a.rings}, (3, 6), eps={a.eps}, p=0.3, input_weight=1, input_density=0.5, "
        f"seed=seed)`, dt = {DT}, `init.random_phase` with key(seed); features: all outputs and capacitor "
        "voltages (`Snapshots`, `Voltages`). Scores: test split, ridge readout with alpha chosen by 5-fold CV "
        f"from {list(ALPHAS)} on training + validation samples, the same for the untuned and the tuned reservoir.",
        "",
    ]
    present = set(r["task"] for r in rows)
    bullets = {
        "memory": f"- memory: u ~ U[-0.5, 0.5], targets u(t - k), k = 1..{a.delays}; one series cut into "
        f"{a.series_windows} consecutive windows of {a.window} inputs (each held {a.hold} steps, "
        f"`SeriesEncoder(scale={a.series_scale})`), every window starts from the same state, its first "
        f"{a.delays} inputs are a washout; windows split in time 60/20/20 (train/validation/test). Score: memory "
        f"capacity sum_k r_k^2 on the test steps (higher is better; at most {a.delays}).",
        "narma10": f"- narma10: one NARMA-10 series in {a.series_windows} windows of {a.window} inputs as above "
        f"(washout {a.window // 4} inputs). Score: test NRMSE (lower is better).",
        "mackey_glass": "- mackey_glass: the Mackey-Glass series (tau = 17, `diffring.reservoir.mackey_glass`, "
        f"seeded history, centred) in {a.series_windows} windows of {a.window} inputs as above (washout "
        f"{a.window // 4} inputs); targets x(t + h) for h = 1, 5, 10 from the state after x(t). Score: test "
        "NRMSE pooled over the three horizons (lower is better).",
        "digits": "- digits: scikit-learn 8 x 8 digits (1,797), seeded 80/20 test split, a quarter of the rest for "
        f"validation; `ImageEncoder(size=8, window=8, hold={a.hold}, steps={57 * a.hold}, scale={a.image_scale}, "
        f"noise=0)`; features at {a.n_times} equally spaced times; the tuning loss uses the first {a.tune_train} "
        f"training and {a.tune_val} validation images. Score: test accuracy.",
    }
    L += [b for t, b in bullets.items() if t in present]
    L += [
        "",
        "| task | seed | neurons | alpha | soft: untuned | soft: tuned | hard: untuned | hard: tuned | "
        "val loss: untuned -> kept (iteration) | eps scale | input gain | theta_H | theta_L | tune time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        L.append(
            f"| {r['task']} | {r['seed']} | {r['n_neurons']} | {r['alpha_before']:g} | {r['before']:.4f} | "
            f"{r['after']:.4f} | {r['hard_before']:.4f} | {r['hard_after']:.4f} | {r['losses'][0]:.5f} -> "
            f"{r['losses'][r['best_iter']]:.5f} ({r['best_iter']}) | {r['eps_scale']:.3f} | {r['gain']:.3f} | "
            f"{r['theta_H']:.3f} | {r['theta_L']:.3f} | {r['tune_s']:.0f} s |"
        )
    L += [
        "",
        "Summary: mean +- standard error over seeds; the paired difference is tuned - untuned per seed, and "
        "counts as a change only beyond twice its standard error. Untuned: theta_H, theta_L = "
        f"{th0.theta_H:g}, {th0.theta_L:g} (the network defaults), eps scale and input gain 1.",
        "",
        "| task | metric | model | untuned | tuned | paired difference | seeds better | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task in dict.fromkeys(r["task"] for r in rows):
        rr = [r for r in rows if r["task"] == task]
        sign = 1 if HIGHER_IS_BETTER[task] else -1
        for model, kb, ka in (("soft (tuned in)", "before", "after"), ("hard (transfer)", "hard_before", "hard_after")):
            b = np.array([r[kb] for r in rr])
            t = np.array([r[ka] for r in rr])
            d = t - b
            L.append(
                f"| {task} | {METRIC[task]} | {model} | {b.mean():.4f} +- {_se(b):.4f} | {t.mean():.4f} +- "
                f"{_se(t):.4f} | {d.mean():+.4f} +- {_se(d):.4f} | {int(np.sum(sign * d > 0))} / {len(rr)} | "
                f"{_verdict(d, sign)} |"
            )
    L += ["", "Verdict:", ""]
    for model, kb, ka in (
        ("soft map (the model tuned)", "before", "after"),
        ("hard map (transfer)", "hard_before", "hard_after"),
    ):
        verdicts = {}
        for task in dict.fromkeys(r["task"] for r in rows):
            rr = [r for r in rows if r["task"] == task]
            d = np.array([r[ka] - r[kb] for r in rr])
            verdicts[task] = f"{_verdict(d, 1 if HIGHER_IS_BETTER[task] else -1)} ({len(rr)} seeds)"
        n_up = sum(v.startswith("improves") for v in verdicts.values())
        L.append(
            f"- {model}: tuning improves the test score beyond 2 SE on {n_up} of {len(verdicts)} tasks: "
            + "; ".join(f"{t} {v}" for t, v in verdicts.items())
            + "."
        )
    if a.beta == 10.0:
        L += [
            "",
            f"Why beta = {a.beta:g}: tuning through the sharper soft map (beta = 100, the previous run of this "
            "script, in git history) found no significant change on digits and NARMA-10: there the validation loss "
            "is rough on the scale of one Adam step, and its exact derivative in the input gain changes sign and "
            "size between nearby points, so the descent follows noise; at beta = 10 the derivative follows the "
            "loss's trend (reservoir_tuning_scan.md). The price: the soft map at beta = 10 is far from the hard map "
            "(docs/gradients.md: at beta <= 50 pulses can die out), so the hard-map columns are reported separately.",
        ]
    else:
        L += ["", "Compare reservoir_tuning.md (beta = 10), and reservoir_tuning_scan.md for the loss's roughness."]
    if getattr(a, "note", None):
        L += ["", a.note]
    L += ["", "Validation loss of the kept iterate relative to the untuned one (the tuning loss):", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        rel = np.array([r["losses"][r["best_iter"]] / r["losses"][0] for r in rows if r["task"] == task])
        L.append(f"- {task}: {rel.mean():.3f} +- {_se(rel):.3f} (range {rel.min():.3f} - {rel.max():.3f})")
    if rows:
        png = out.with_suffix(".png")
        plot(rows, png)
        L += ["", f"![validation loss during tuning]({png.name})", ""]
    L.append("")
    out.write_text("\n".join(L) + "\n")
    record = {"command": cmd.strip(), "elapsed": elapsed, "args": vars(a), "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    print("\n".join(L[-20:]))


if __name__ == "__main__":
    main()
