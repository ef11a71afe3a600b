"""Generate docs/results/reservoir.md: ring reservoirs vs an equal-size ESN and a linear readout.

    python docs/results/make_reservoir.py                  # the sizes in reservoir.md (runs for a while)
    python docs/results/make_reservoir.py --quick          # smoke check, tiny sizes, writes to /tmp
    python docs/results/make_reservoir.py --report-only    # rebuild the markdown from the saved JSON

Every setting runs `--seeds` seeds (network, initial state, input noise and ESN drawn from the seed; the
train/test split is fixed). Each section is saved to docs/results/reservoir_data.json as soon as it is
done, so an interrupted run keeps what it measured; `--only digits_rings,narma` picks sections.
Digits use a reduced image recipe (16 x 16 resize, windows of 8 held 9 steps, 2,400 steps per image,
9 snapshots) so that all 1,797 images x 5 seeds x every setting fit on a shared 2-core machine;
benchmarks/bench_reservoir.py measures the published 32 x 32, 10,000-step recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # readouts in float64; reservoirs simulated in float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import diffring as dr  # noqa: E402
from diffring.reservoir import (  # noqa: E402
    EchoStateNetwork,
    Features,
    ImageEncoder,
    Ridge,
    SeriesEncoder,
    Snapshots,
    ValidationSplit,
    Voltages,
    complexity_sweep,
    digits,
    esn_features,
    evaluate,
    flipflop,
    mackey_glass,
    memory_capacity,
    narma10,
    raw_features,
    reservoir_features,
)

HERE = Path(__file__).resolve().parent
ALPHAS = (1e-6, 1e-4, 1e-2, 1.0, 10.0, 100.0)
SECTIONS = (
    "digits_rings",
    "digits_eps_p",
    "digits_published",
    "complexity",
    "narma",
    "mackey_glass",
    "memory",
    "flipflop",
)
MEASURES = ("neural_entropy", "pattern_entropy", "input_sensitivity", "effective_dim")


def readout(seed):
    return Ridge(alphas=ALPHAS, selection=ValidationSplit(0.2, seed=seed))


def ring_reservoir(n_rings, eps, p, seed, n_in, input_weight=1.0):
    net = dr.small_world(
        n_rings, (2, 8), eps=eps, p=p, n_in=n_in, input_weight=input_weight, seed=seed, dtype=jnp.float32
    )
    model = dr.DiscreteMap(net, 0.01)
    return model, dr.init.random_phase(net, jax.random.key(seed), 0.01)


def ms(xs):
    xs = [x for x in xs if x is not None]
    return (float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0)


def fmt(m, d=3):
    return f"{m[0]:.{d}f} ± {m[1]:.{d}f}"


# ----------------------------------------------------------------------------------------------
# Sections


def digits_run(data, enc, n_rings, eps, p, seed, esn=True):
    feats = Features((Snapshots(), Voltages()) if esn else (Snapshots(),), n_times=9)
    model, s0 = ring_reservoir(n_rings, eps, p, seed, enc.n_channels)
    F, st = reservoir_features(model, s0, enc, feats, data.inputs, jax.random.key(1000 + seed), chunk_size=128)
    n_o = 9 * model.network.n_neurons  # the published features (outputs) come first
    out = {
        "rings": evaluate(data, F[:, :n_o], readout(seed))["test_accuracy"],
        "n_neurons": model.network.n_neurons,
        "not_ok": int(np.sum(st != 0)),
    }
    if esn:
        out["rings_ov"] = evaluate(data, F, readout(seed))["test_accuracy"]
        e = EchoStateNetwork.random(
            model.network.n_neurons, enc.n_channels, spectral_radius=0.9, seed=seed, dtype=jnp.float32
        )
        E = esn_features(e, enc, feats, data.inputs, jax.random.key(1000 + seed), chunk_size=128)
        out["esn"] = evaluate(data, E, readout(seed))["test_accuracy"]
    return out


def sec_digits_rings(args, enc, data):
    rows = []
    lin = evaluate(data, raw_features(data.inputs, image_size=enc.size), readout(0))["test_accuracy"]
    for n_rings in args.rings:
        runs = [digits_run(data, enc, n_rings, args.eps, args.p, s) for s in range(args.seeds)]
        rows.append(
            {
                "n_rings": n_rings,
                "n_neurons": [r["n_neurons"] for r in runs],
                "rings": [r["rings"] for r in runs],
                "rings_ov": [r["rings_ov"] for r in runs],
                "esn": [r["esn"] for r in runs],
                "not_ok": sum(r["not_ok"] for r in runs),
            }
        )
        print(
            f"digits n_rings={n_rings}: rings {fmt(ms(rows[-1]['rings']))}, esn {fmt(ms(rows[-1]['esn']))}", flush=True
        )
        if args.save is not None:
            args.save("digits_rings", {"eps": args.eps, "p": args.p, "linear": lin, "rows": rows, "partial": True})
    return {"eps": args.eps, "p": args.p, "linear": lin, "rows": rows}


def sec_digits_eps_p(args, enc, data):
    grid = []
    for eps in args.eps_grid:
        for p in args.p_grid:
            acc = [digits_run(data, enc, args.heat_rings, eps, p, s, esn=False)["rings"] for s in range(args.seeds)]
            grid.append({"eps": eps, "p": p, "acc": acc})
            if args.save is not None:
                args.save("digits_eps_p", {"n_rings": args.heat_rings, "grid": grid, "partial": True})
            print(f"digits eps={eps} p={p}: {fmt(ms(acc))}", flush=True)
    return {"n_rings": args.heat_rings, "grid": grid}


def sec_digits_published(args, data):
    """The published recipe (32 x 32, 10,000 steps, 200 rings, eps 0.05, p 0.1) over seeds, with baselines."""
    enc = ImageEncoder() if not args.quick else ImageEncoder(steps=2000)
    n_rings = 200 if not args.quick else 20
    lin = evaluate(data, raw_features(data.inputs, image_size=enc.size), readout(0))["test_accuracy"]
    runs = []
    for s in range(args.seeds):
        tic = time.perf_counter()
        runs.append(digits_run(data, enc, n_rings, 0.05, 0.1, s))
        runs[-1]["wall_s"] = time.perf_counter() - tic
        print(f"digits published seed {s}: " + ", ".join(f"{k} {v:.4g}" for k, v in runs[-1].items()), flush=True)
        if args.save is not None:
            args.save("digits_published", {"n_rings": n_rings, "linear": lin, "runs": runs, "partial": True})
    return {"n_rings": n_rings, "steps": enc.steps, "size": enc.size, "linear": lin, "runs": runs}


def sec_complexity(args, enc, data):
    """Complexity measures and digits accuracy over eps x input weight (`complexity_sweep`), 5 seeds."""
    settings = [{"eps": e, "input_weight": w} for e in args.cx_eps for w in args.cx_weights]

    def build(setting, seed):
        return ring_reservoir(args.heat_rings, setting["eps"], args.p, seed, enc.n_channels, setting["input_weight"])

    rows = []
    for setting in settings:  # one setting at a time, so that an interrupted run keeps what it measured
        rows += complexity_sweep(
            [setting],
            build,
            data,
            enc,
            Features(n_times=9),
            seeds=range(args.seeds),
            readout=readout(0),
            n_probe=args.cx_probe,
            delta=args.cx_delta,
        )
        print(
            f"complexity {setting}: acc {fmt(ms([r['test_accuracy'] for r in rows[-args.seeds :]]))}, "
            + ", ".join(f"{m} {fmt(ms([r[m] for r in rows[-args.seeds :]]))}" for m in MEASURES),
            flush=True,
        )
        if args.save is not None:
            args.save("complexity", {"n_rings": args.heat_rings, "p": args.p, "rows": rows, "partial": True})
    return {"n_rings": args.heat_rings, "p": args.p, "probe": args.cx_probe, "delta": args.cx_delta, "rows": rows}


def complexity_stats(r, seeds):
    """Per setting: mean/sd of accuracy and measures; per measure: Pearson r with accuracy across settings
    for each seed (mean ± sd over seeds) and over all runs pooled."""
    rows = r["rows"]
    keys = sorted({(x["eps"], x["input_weight"]) for x in rows})
    per = [
        {
            "eps": e,
            "input_weight": w,
            **{
                m: ms([x[m] for x in rows if (x["eps"], x["input_weight"]) == (e, w)])
                for m in ("test_accuracy",) + MEASURES
            },
        }
        for e, w in keys
    ]
    corr = {}
    for m in MEASURES:
        rs = []
        for s in seeds:
            xs = [x for x in rows if x["seed"] == s]
            a, b = np.array([x[m] for x in xs]), np.array([x["test_accuracy"] for x in xs])
            if len(xs) > 2 and a.std() > 0 and b.std() > 0:
                rs.append(float(np.corrcoef(a, b)[0, 1]))
        a, b = np.array([x[m] for x in rows]), np.array([x["test_accuracy"] for x in rows])
        corr[m] = {"per_seed": ms(rs), "pooled": float(np.corrcoef(a, b)[0, 1]), "n_seeds": len(rs)}
    return per, corr


def series_run(data, n_rings, seed, hold, scale, eps, p, radii, delays):
    """Rings, ESN (each spectral radius) and linear-with-delays on one per-step task."""
    enc = SeriesEncoder(length=data.inputs.shape[1], channels=data.inputs.shape[2], hold=hold, scale=scale)
    feats = Features((Snapshots(), Voltages()), every=hold)
    model, s0 = ring_reservoir(n_rings, eps, p, seed, enc.n_channels)
    F, st = reservoir_features(
        model, s0, enc, feats, data.inputs, jax.random.key(1000 + seed), per_step=True, chunk_size=64
    )
    n = model.network.n_neurons
    out = {
        "rings": evaluate(data, F[:, 1:, :n], readout(seed)),
        "rings_ov": evaluate(data, F[:, 1:], readout(seed)),
        "n_neurons": model.network.n_neurons,
        "not_ok": int(np.sum(st != 0)),
    }
    for rho in radii:
        e = EchoStateNetwork.random(
            model.network.n_neurons, enc.n_channels, spectral_radius=rho, seed=seed, dtype=jnp.float32
        )
        E = esn_features(
            e, enc, feats, data.inputs, jax.random.key(1000 + seed), per_step=True, chunk_size=64, gain=1.0
        )
        out[f"esn_{rho}"] = evaluate(data, E[:, 1:], readout(seed))
    out["linear"] = evaluate(data, raw_features(data.inputs, delays=delays), readout(seed))
    for r in out.values():
        if isinstance(r, dict):
            r.pop("predictions", None)
    return out


def _series_section(args, make, key_metric, delays):
    runs = []
    for s in range(args.seeds):
        data = make(s)
        runs.append(series_run(data, args.series_rings, s, args.hold, 1.0, args.eps, args.p, args.radii, delays))
        print(
            f"{data.name} seed {s}: "
            + ", ".join(
                f"{k} {v[key_metric]:.3f}" for k, v in runs[-1].items() if isinstance(v, dict) and key_metric in v
            ),
            flush=True,
        )
    return {
        "n_rings": args.series_rings,
        "hold": args.hold,
        "eps": args.eps,
        "p": args.p,
        "radii": args.radii,
        "delays": delays,
        "runs": runs,
    }


def sec_narma(args):
    return _series_section(args, lambda s: narma10(args.length, seed=s), "test_nrmse", 10)


def sec_mackey_glass(args):
    return _series_section(
        args, lambda s: mackey_glass(args.length, horizons=tuple(args.horizons), seed=s), "test_nrmse", 10
    )


def sec_memory(args):
    return _series_section(
        args, lambda s: memory_capacity(args.length, max_delay=args.max_delay, seed=s), "memory_capacity", 0
    )


def sec_flipflop(args):
    return _series_section(
        args, lambda s: flipflop(args.ff_seq, args.ff_len, args.ff_period, seed=s), "test_accuracy", 0
    )


# ----------------------------------------------------------------------------------------------
# Report


def models(run):
    return [k for k in run if isinstance(run[k], dict)]


def series_table(sec, metric, label, d=3):
    names = models(sec["runs"][0])
    lines = ["| model | " + label + " |", "| --- | --- |"]
    for k in names:
        lines.append(f"| {k} | {fmt(ms([r[k][metric] for r in sec['runs']]), d)} |")
    return "\n".join(lines)


def report(res, args, path):
    args = argparse.Namespace(**{**vars(args), **res.get("args", {})})
    extra = res.get("merged", [])
    L = [
        "# Reservoir computing results",
        "",
        *[
            f"Sections {', '.join(m['sections'])} were run separately by `{m['command']}` ({m['created']}, load "
            f"average at start {m['load']}) and merged with `--merge`" + (f" ({m['note']})." if m.get("note") else ".")
            for m in extra
        ],
        "",
        f"Generated by `{res['command']}` ({res['created']}, load average at start {res['load']}). "
        f"Mean ± sample standard deviation over {args.seeds} seeds per setting (network, initial state, input "
        "noise and ESN from the seed; fixed train/test split). Readout everywhere: ridge with alpha chosen on a "
        f"seeded 20 % validation split of the training rows from {list(ALPHAS)} (float64), the same for "
        "rings, ESN and linear. "
        "Ring reservoirs: `diffring.small_world` (ring sizes 2-8), the discrete map in float32, dt = 0.01, "
        "clean random-phase start. ESN: non-leaky tanh ESN with as many units as the ring reservoir has "
        "neurons, 10 % dense, input weights U[-1, 1], bias U[-0.1, 0.1]. Linear: the raw input (digits: the "
        "resized image; series: the input and its last 10 values, or the input alone where noted). "
        "`rings` uses the published features (outputs o of every neuron at the records); `rings_ov` adds the "
        "capacitor voltages v at the same records (same simulation).",
        "",
    ]
    if "digits_rings" in res:
        r = res["digits_rings"]
        L += [
            "## Digits: accuracy vs number of rings",
            "",
            f"scikit-learn's 1,797 digits, seeded 80/20 split (359 test images), reduced recipe: 16 x 16 "
            f"resize, Hilbert curve, windows of 8 held 9 steps, 2,400 steps, 9 snapshots of all outputs; "
            f"eps = {r['eps']}, p = {r['p']}. ESN of equal size at spectral radius 0.9 on the same windows "
            f"(one step per window). Linear readout on the 16 x 16 image: **{r['linear']:.3f}**.",
            "",
            "| rings | neurons (mean) | rings: outputs (published) | rings: outputs + voltages | ESN (same size) |",
            "| --- | --- | --- | --- | --- |",
        ]
        if r.get("partial"):
            L += ["", "(Partial: the run was stopped after the sizes listed.)", ""]
        for row in r["rows"]:
            L.append(
                f"| {row['n_rings']} | {np.mean(row['n_neurons']):.0f} | {fmt(ms(row['rings']))} | "
                f"{fmt(ms(row['rings_ov']))} | {fmt(ms(row['esn']))} |"
            )
        L += [""]
    if "digits_eps_p" in res:
        r = res["digits_eps_p"]
        eps = sorted({g["eps"] for g in r["grid"]})
        ps = sorted({g["p"] for g in r["grid"]})
        L += [
            "## Digits: accuracy vs coupling eps and rewiring p (heatmap)",
            "",
            f"{r['n_rings']} rings, same recipe; rows eps, columns p; test accuracy (published features, outputs "
            "only). Differences between cells are about one to two standard deviations.",
            "",
            "| eps \\ p | " + " | ".join(str(p) for p in ps) + " |",
            "|" + " --- |" * (len(ps) + 1),
        ]
        for e in eps:
            cells = [fmt(ms(next(g["acc"] for g in r["grid"] if g["eps"] == e and g["p"] == p))) for p in ps]
            L.append(f"| {e} | " + " | ".join(cells) + " |")
        L += ["", "![eps-p heatmap](reservoir_eps_p.png)", ""]
    if "digits_published" in res:
        r = res["digits_published"]
        runs = r["runs"]
        L += [
            "## Digits: the published recipe",
            "",
            f"The reservoir paper's setting: {r['n_rings']} rings (ring sizes 2-8), eps = 0.05, p = 0.1; "
            f"{r.get('size', 32)} x {r.get('size', 32)} resize, Hilbert curve, windows of 8 held 9 steps, "
            f"{r.get('steps', 10000):,} steps, image scale 0.01 plus N(0, 0.001^2) pixel noise, 9 snapshots of "
            "all outputs; same split and ridge readout as above. ESN of equal size (spectral radius 0.9) on the "
            f"same windows; linear readout on the {r.get('size', 32)} x {r.get('size', 32)} image: "
            f"**{r['linear']:.3f}**. {len(runs)} seeds"
            + (" (partial: the run was stopped after these seeds)" if r.get("partial") else "")
            + f", {np.mean([x['wall_s'] for x in runs]):.0f} s per seed on the shared machine.",
            "",
            "| neurons (mean) | rings: outputs (published) | rings: outputs + voltages | ESN (same size) | linear |",
            "| --- | --- | --- | --- | --- |",
            f"| {np.mean([x['n_neurons'] for x in runs]):.0f} | {fmt(ms([x['rings'] for x in runs]))} | "
            f"{fmt(ms([x['rings_ov'] for x in runs]))} | {fmt(ms([x['esn'] for x in runs]))} | {r['linear']:.3f} |",
            "",
            "Per seed (rings, published features): "
            + ", ".join(f"{x['rings']:.3f}" for x in runs)
            + ". (The paper's 90.65 % is on MNIST; benchmarks/bench_reservoir.py ran seed 0 with 5-fold alpha "
            "selection and a different noise key: 0.908.)",
            "",
        ]
    if "complexity" in res:
        r = res["complexity"]
        per, corr = complexity_stats(r, sorted({x["seed"] for x in r["rows"]}))
        L += [
            "## Complexity measures vs accuracy",
            "",
            f"`diffring.reservoir.complexity_sweep` over coupling eps x input weight (the Win entries; the "
            f"encoder's pixel scale stays 0.01): {r['n_rings']} rings, p = {r['p']}, the reduced digits recipe "
            f"above, {len({x['seed'] for x in r['rows']})} seeds per setting"
            + (" (partial: the run was stopped after the settings listed)" if r.get("partial") else "")
            + ". Measures (definitions in diffring/reservoir/_complexity.py): neural entropy (mean binary "
            "entropy of each neuron's firing fraction, bits), pattern entropy (entropy of the whole output "
            "pattern over the records, bits; at most log2(266) = 8.06 for the 266 records), input sensitivity "
            f"(fraction of outputs that differ when the drive gets N(0, {r['delta']:g}^2) per step, i.e. about "
            "10 % of the largest pixel drive), both on the first "
            f"{r['probe']} images, sampled at every window (9 steps); effective dimensionality (participation "
            "ratio of the covariance of the readout features of all images). Mean ± sd over seeds (figure: points "
            "labelled by input weight):",
            "",
            "| eps | input weight | test accuracy | neural entropy | pattern entropy | input sensitivity | "
            "effective dim |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for x in per:
            L.append(
                f"| {x['eps']} | {x['input_weight']:g} | {fmt(x['test_accuracy'])} | {fmt(x['neural_entropy'])} | "
                f"{fmt(x['pattern_entropy'], 2)} | {fmt(x['input_sensitivity'])} | {fmt(x['effective_dim'], 1)} |"
            )
        L += [
            "",
            "Pearson correlation of each measure with test accuracy across the settings, computed per seed "
            "(mean ± sd over seeds), and over all runs pooled:",
            "",
            "| measure | r per seed | r pooled |",
            "| --- | --- | --- |",
        ]
        for m in MEASURES:
            c = corr[m]
            L.append(f"| {m.replace('_', ' ')} | {fmt(c['per_seed'], 2)} | {c['pooled']:.2f} |")
        best = max(MEASURES, key=lambda m: corr[m]["per_seed"][0])
        e0 = min(x["eps"] for x in per)
        lo = min((x for x in per if x["eps"] == e0), key=lambda x: x["input_weight"])
        hi = max((x for x in per if x["eps"] == e0), key=lambda x: x["input_weight"])
        L += [
            "",
            f"The measure that tracks accuracy best is {best.replace('_', ' ')} (r = "
            f"{fmt(corr[best]['per_seed'], 2)} per seed). The input weight moves accuracy most: at eps = {e0} it "
            f"goes from {lo['test_accuracy'][0]:.3f} (weight {lo['input_weight']:g}, the published drive "
            f"scale) to {hi['test_accuracy'][0]:.3f} (weight {hi['input_weight']:g}), while strong coupling "
            "(eps = 1) raises neural entropy towards 1 bit and input sensitivity but lowers accuracy: a "
            "reservoir that fires more, or reacts more to a small perturbation, is not a better one here.",
            "",
            "![complexity measures vs accuracy](reservoir_complexity.png)",
            "",
        ]
    if "narma" in res:
        r = res["narma"]
        L += [
            "## NARMA-10",
            "",
            f"One series of {args.length} steps (washout 200, last 20 % test), input u in [0, 0.5] held "
            f"{r['hold']} steps per sample; {r['n_rings']} rings, eps = {r['eps']}, p = {r['p']}; "
            f"ESN at spectral radii {r['radii']}. Test NRMSE (lower is better):",
            "",
            series_table(r, "test_nrmse", "test NRMSE"),
            "",
        ]
    if "mackey_glass" in res:
        r = res["mackey_glass"]
        hs = args.horizons
        names = models(r["runs"][0])
        L += [
            "## Mackey-Glass (tau = 17): error vs prediction horizon",
            "",
            f"Direct prediction of x(t + h) from the reservoir state after x(t); one series of {args.length} "
            "samples; test NRMSE per horizon:",
            "",
            "| model | " + " | ".join(f"h = {h}" for h in hs) + " |",
            "|" + " --- |" * (len(hs) + 1),
        ]
        for k in names:
            cells = [
                fmt(
                    ms(
                        [
                            run[k]["test_nrmse_per_output"][i] if len(hs) > 1 else run[k]["test_nrmse"]
                            for run in r["runs"]
                        ]
                    )
                )
                for i in range(len(hs))
            ]
            L.append(f"| {k} | " + " | ".join(cells) + " |")
        L += [""]
    if "memory" in res:
        r = res["memory"]
        L += [
            "## Memory capacity",
            "",
            f"Input u ~ U[-0.5, 0.5], targets u(t - k) for k = 1 ... {args.max_delay}; MC = sum_k r_k^2 "
            "on the test steps. The linear baseline sees only u(t), so its MC is the chance level of 40 r^2 values "
            "estimated on 360 test steps (about 40 / 360 = 0.11).",
            "",
            "The rings' low MC is not a bug in the feature path: the per-step features equal a direct "
            "`dr.simulate` of the held series bit for bit (outputs) and exactly (voltages), and row t holds the "
            "state after u(t) was applied, as the targets u(t - k) assume (tests/test_reservoir_features.py and "
            "test_reservoir_tasks.py). It is the mechanism: the input reaches only the head neuron of the rings "
            "that receive it (input density 0.5: 21 of 50 rings in seed 0), a differentiator that fires on an "
            "input jump of at least theta_H = 0.49 and can then stay firing for 90-160 steps (9-16 samples, while"
            " d = u - v decays from the jump, 0.49-1, to theta_L = 0.2 with tau = 100 steps) whatever comes next,"
            " so the binary outputs tell which rings saw a large jump recently, not the values u(t - k); the "
            "voltages add one low-pass trace of the input with the same tau = 10 samples in every ring, whose MC "
            "is at most b^2 (1 - b^80) = 0.82 for b = exp(-0.1) (`rings_ov`: 0.58). Input density 1 or input "
            "scale 2 raise the outputs' MC only to 0.13-0.18 (seed 0, one run each).",
            "",
            series_table(r, "memory_capacity", "memory capacity", 2),
            "",
        ]
    if "flipflop" in res:
        r = res["flipflop"]
        names = models(r["runs"][0])
        L += [
            "## Periodic temporal flip-flop (time-dependent accuracy)",
            "",
            f"{args.ff_seq} sequences of {args.ff_len} symbols, period P = {args.ff_period} (timed-automata "
            "spec 1.3: after `a` the state is the hidden clock Theta(t), after `b` it is 1), one-hot input held "
            f"{r['hold']} steps per symbol; every sequence starts from the same reservoir state. Thresholded "
            "test accuracy on time-dependent (TD, reading a) and time-independent (TI, reading b) steps. "
            "Chance on TD is 0.5; a reservoir that keeps time scores above it. The clock the rings provide is "
            "their free-running oscillation started in the same state at t = 0 in every sequence (the task has "
            "no clock input and every sequence starts at clock 0); the ESN also starts every sequence from "
            "h = 0, and its transient carries time only over the first period (figure).",
            "",
            "| model | TD accuracy | TI accuracy | all |",
            "| --- | --- | --- | --- |",
        ]
        for k in names:
            L.append(
                f"| {k} | {fmt(ms([x[k]['test_accuracy_TD'] for x in r['runs']]))} | "
                f"{fmt(ms([x[k]['test_accuracy_TI'] for x in r['runs']]))} | "
                f"{fmt(ms([x[k]['test_accuracy'] for x in r['runs']]))} |"
            )
        L += ["", "![flip-flop TD accuracy per time step](reservoir_flipflop.png)", ""]
    L += summary_lines(res)
    L += [
        "## What is not here",
        "",
        "- MNIST (the paper's 90.65 %) needs the user's local MNIST files (`task.kind: mnist_idx` or "
        "`mnist_npz`); nothing is downloaded, so it is not measured here.",
        "",
    ]
    path.write_text("\n".join(L))
    print(f"wrote {path}")


def summary_lines(res):
    """Best ring variant vs best ESN (over spectral radii) vs linear, per task, from the means above."""
    L = ["## Summary (means over seeds; the tables give the spread)", ""]
    spec = [
        ("flipflop", "test_accuracy_TD", "flip-flop TD accuracy", True),
        ("narma", "test_nrmse", "NARMA-10 test NRMSE", False),
        ("mackey_glass", "test_nrmse", "Mackey-Glass test NRMSE (all horizons pooled)", False),
        ("memory", "memory_capacity", "memory capacity", True),
    ]
    for name, metric, label, higher in spec:
        if name not in res:
            continue
        runs = res[name]["runs"]
        mean = {k: float(np.mean([r[k][metric] for r in runs])) for k in models(runs[0])}
        pick = max if higher else min
        ring = pick((k for k in mean if k.startswith("rings")), key=lambda k: mean[k])
        esn = pick((k for k in mean if k.startswith("esn")), key=lambda k: mean[k])
        best = pick(mean, key=lambda k: mean[k])
        L.append(
            f"- {label} ({'higher' if higher else 'lower'} is better): best ring features `{ring}` "
            f"{mean[ring]:.3f}, best ESN `{esn}` {mean[esn]:.3f}, linear {mean['linear']:.3f}; best: `{best}`."
        )
    if "digits_published" in res:
        r = res["digits_published"]
        a = {k: ms([x[k] for x in r["runs"]]) for k in ("rings", "rings_ov", "esn")}
        L.append(
            f"- digits, published recipe ({r['n_rings']} rings, {len(r['runs'])} seeds): "
            + ", ".join(f"`{k}` {fmt(v)}" for k, v in a.items())
            + f"; linear on the image {r['linear']:.3f}."
        )
    if "complexity" in res:
        _, corr = complexity_stats(res["complexity"], sorted({x["seed"] for x in res["complexity"]["rows"]}))
        L.append(
            "- complexity sweep: correlation with digits accuracy across settings (per seed, mean ± sd): "
            + ", ".join(f"{m.replace('_', ' ')} {fmt(c['per_seed'], 2)}" for m, c in corr.items())
            + "."
        )
    if "digits_rings" in res:
        r = res["digits_rings"]
        for row in r["rows"]:
            a = {k: float(np.mean(row[k])) for k in ("rings", "rings_ov", "esn") if k in row}
            L.append(
                f"- digits, {row['n_rings']} rings: "
                + ", ".join(f"`{k}` {v:.3f}" for k, v in a.items())
                + f"; linear on the image {r['linear']:.3f}."
            )
    L.append("")
    return L


def figures(res, args, outdir):
    from matplotlib.figure import Figure

    if "digits_eps_p" in res:
        r = res["digits_eps_p"]
        eps = sorted({g["eps"] for g in r["grid"]})
        ps = sorted({g["p"] for g in r["grid"]})
        A = np.array(
            [[np.mean(next(g["acc"] for g in r["grid"] if g["eps"] == e and g["p"] == p)) for p in ps] for e in eps]
        )
        fig = Figure(figsize=(4.5, 3.6), layout="constrained")
        ax = fig.add_subplot()
        im = ax.imshow(A, origin="lower", cmap="viridis")
        ax.set_xticks(range(len(ps)), [str(p) for p in ps])
        ax.set_yticks(range(len(eps)), [str(e) for e in eps])
        ax.set_xlabel("rewiring p")
        ax.set_ylabel("coupling eps")
        for (i, j), a in np.ndenumerate(A):
            ax.text(j, i, f"{a:.3f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_title(f"digits test accuracy, {r['n_rings']} rings")
        fig.colorbar(im, ax=ax)
        fig.savefig(outdir / "reservoir_eps_p.png", dpi=110)
    if "complexity" in res:
        per, _ = complexity_stats(res["complexity"], sorted({x["seed"] for x in res["complexity"]["rows"]}))
        fig = Figure(figsize=(10, 2.8), layout="constrained")
        axs = fig.subplots(1, len(MEASURES), sharey=True)
        eps = sorted({x["eps"] for x in per})
        for ax, m in zip(axs, MEASURES, strict=True):
            for e, c in zip(eps, ("C0", "C1", "C2", "C3", "C4", "C5"), strict=False):
                xs = [x for x in per if x["eps"] == e]
                ax.errorbar(
                    [x[m][0] for x in xs],
                    [x["test_accuracy"][0] for x in xs],
                    xerr=[x[m][1] for x in xs],
                    yerr=[x["test_accuracy"][1] for x in xs],
                    fmt="o",
                    color=c,
                    ms=4,
                    label=f"eps {e}",
                )
                for x in xs:
                    ax.annotate(f"{x['input_weight']:g}", (x[m][0], x["test_accuracy"][0]), fontsize=6)
            ax.set_xlabel(m.replace("_", " "))
        axs[0].set_ylabel("digits test accuracy")
        axs[0].legend(fontsize=7)
        fig.savefig(outdir / "reservoir_complexity.png", dpi=110)
    if "flipflop" in res:
        r = res["flipflop"]
        fig = Figure(figsize=(7, 3), layout="constrained")
        ax = fig.add_subplot()
        for k in models(r["runs"][0]):
            per = np.array([[np.nan if v is None else v for v in x[k]["test_accuracy_TD_per_step"]] for x in r["runs"]])
            ax.plot(np.nanmean(per, axis=0), label=k, lw=1)
        ax.axhline(0.5, color="k", lw=0.5, ls=":")
        ax.set_xlabel("time step t")
        ax.set_ylabel("TD accuracy")
        ax.legend(fontsize=7, ncol=3)
        fig.savefig(outdir / "reservoir_flipflop.png", dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rings", type=int, nargs="+", default=[25, 50, 100])
    ap.add_argument("--eps", type=float, default=0.25)
    ap.add_argument("--p", type=float, default=0.2)
    ap.add_argument("--heat-rings", type=int, default=25)
    ap.add_argument("--eps-grid", type=float, nargs="+", default=[0.05, 0.25, 0.5])
    ap.add_argument("--p-grid", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    ap.add_argument("--series-rings", type=int, default=50)
    ap.add_argument("--hold", type=int, default=10)
    ap.add_argument("--radii", type=float, nargs="+", default=[0.5, 0.9, 1.1])
    ap.add_argument("--length", type=int, default=2000)
    ap.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 10, 20])
    ap.add_argument("--max-delay", type=int, default=40)
    ap.add_argument("--ff-seq", type=int, default=200)
    ap.add_argument("--ff-len", type=int, default=60)
    ap.add_argument("--ff-period", type=int, default=10)
    ap.add_argument("--cx-eps", type=float, nargs="+", default=[0.05, 0.25, 1.0])
    ap.add_argument("--cx-weights", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    ap.add_argument("--cx-probe", type=int, default=64)
    ap.add_argument("--cx-delta", type=float, default=1e-3)
    ap.add_argument("--outdir", type=Path, default=None)
    ap.add_argument("--merge", type=Path, nargs="*", default=[], help="reservoir_data.json files to merge in")
    args = ap.parse_args()
    args.save = None
    if args.quick:
        args.seeds, args.rings, args.heat_rings, args.series_rings = 2, [10], 10, 10
        args.eps_grid, args.p_grid, args.length, args.ff_seq = [0.05, 0.25], [0.2], 400, 40
    outdir = args.outdir or (Path("/tmp/reservoir_quick") if args.quick else HERE)
    outdir.mkdir(parents=True, exist_ok=True)
    store = outdir / "reservoir_data.json"
    res = json.loads(store.read_text()) if store.exists() else {}
    for other in args.merge:  # sections run by another invocation (e.g. in parallel, with --outdir)
        o = json.loads(other.read_text())
        secs = [k for k in SECTIONS if k in o]
        cx_old = res.get("complexity")
        res.update({k: o[k] for k in secs})
        if "complexity" in secs:  # complexity rows from several invocations (settings run in parallel) add up
            rows = {(x["eps"], x["input_weight"], x["seed"]): x for x in (cx_old or {}).get("rows", [])}
            rows.update({(x["eps"], x["input_weight"], x["seed"]): x for x in o["complexity"]["rows"]})
            res["complexity"] = {
                **o["complexity"],
                "rows": sorted(
                    rows.values(), key=lambda x: tuple(map(float, (x["eps"], x["input_weight"], x["seed"])))
                ),
            }
            res["complexity"].pop("partial", None)  # the report lists the settings that were run
        res.setdefault("merged", []).append(
            {
                "sections": secs,
                "command": o["command"],
                "created": o["created"],
                "load": o["load"],
                "note": o.get("note"),
            }
        )
        store.write_text(json.dumps(res, indent=1))
    if not args.report_only:
        res["command"] = "python docs/results/make_reservoir.py " + " ".join(sys.argv[1:])
        res["created"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        res["load"] = "/".join(f"{x:.1f}" for x in os.getloadavg())
        res["args"] = {k: v for k, v in vars(args).items() if k not in ("only", "report_only", "outdir", "save")}
        enc = ImageEncoder(size=16, window=8, hold=9, steps=2400)
        data = digits(seed=0)
        if args.quick:
            import dataclasses

            data = dataclasses.replace(data, inputs=data.inputs[:200], y=data.y[:200], test=data.test[:200])
        todo = [s for s in args.only.split(",") if s]

        def save_partial(name, sec):
            res[name] = sec
            store.write_text(json.dumps(res, indent=1))

        args.save = save_partial
        for name in todo:
            tic = time.perf_counter()
            if name == "digits_rings":
                res[name] = sec_digits_rings(args, enc, data)
            elif name == "digits_eps_p":
                res[name] = sec_digits_eps_p(args, enc, data)
            elif name == "digits_published":
                res[name] = sec_digits_published(args, data)
            elif name == "complexity":
                res[name] = sec_complexity(args, enc, data)
            else:
                res[name] = {
                    "narma": sec_narma,
                    "mackey_glass": sec_mackey_glass,
                    "memory": sec_memory,
                    "flipflop": sec_flipflop,
                }[name](args)
            res[name]["wall_s"] = time.perf_counter() - tic
            store.write_text(json.dumps(res, indent=1))
            print(f"section {name}: {res[name]['wall_s']:.0f} s", flush=True)
    figures(res, args, outdir)
    report(res, args, outdir / "reservoir.md")


if __name__ == "__main__":
    main()
