"""The driver behind `diffring reservoir`: build from a resolved config, run the pipeline, write DIR.

Output directory (written to a temporary sibling and renamed at the end):
- `config.yaml`: the resolved config (feeding it back in reproduces the run);
- `summary.json`: `metrics` (`train_accuracy`/`test_accuracy` for classification, `train_nrmse`/
  `test_nrmse` for regression, plus task extras: memory capacity, flip-flop TD/TI accuracy),
  `timings` (build_s, compile_s, simulate_s, readout_s, total_s), seeds, sizes, versions;
- `predictions.npz`: `y`, `predictions`, `test` (and `confusion` for classification);
- `confusion.png` (classification) or `predictions.png` (regression traces).
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Mapping

import numpy as np

from .._config import dump_yaml


def run_reservoir(cfg: Mapping, out: str, *, overwrite: bool = False) -> dict:
    """Run a resolved reservoir config and write `out`; returns the summary."""
    import jax

    import diffring as dr

    from .._config import build_init, build_model, build_network
    from .._run import _versions, check_out_dir
    from ._config import build_encoder, build_features, build_readout, load_task
    from ._pipeline import evaluate, reservoir_features

    t_start = time.perf_counter()
    check_out_dir(out, overwrite)
    tic = time.perf_counter()
    data = load_task(cfg)
    network = build_network(cfg)
    model, method = build_model(cfg, network)
    state0 = build_init({**cfg, "run": {"batch": 1}}, network)
    encoder = build_encoder(cfg, data)
    features = build_features(cfg, encoder, data)
    readout = build_readout(cfg)
    jax.block_until_ready(state0)
    timings = {"build_s": time.perf_counter() - tic}
    noise_key = jax.random.fold_in(jax.random.key(cfg["seed"]), 1)
    feats, status = reservoir_features(
        model,
        state0,
        encoder,
        features,
        data.inputs,
        noise_key,
        chunk_size=cfg["run"]["chunk_size"],
        method=method,
        per_step=data.per_step,
        timings=timings,
    )
    if data.per_step:
        feats = feats[:, 1:]  # record k + 1 has read input sample k: align with the targets
    tic = time.perf_counter()
    res = evaluate(data, feats, readout)
    timings["readout_s"] = time.perf_counter() - tic
    metrics = {k: v for k, v in res.items() if k not in ("predictions", "confusion")}
    n_bad = int(np.sum(status != 0))
    summary = {
        "diffring_version": dr.__version__,
        "versions": _versions(),
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "seed": cfg["seed"],
        "network_seed": cfg["network"].get("seed"),
        "dtype": cfg["dtype"],
        "task": cfg["task"]["kind"],
        "classification": bool(data.classification),
        "n_samples": int(data.inputs.shape[0]),
        "n_test": int(data.test.sum()) if data.test is not None else None,
        "n_neurons": int(network.n_neurons),
        "n_rings": int(network.n_rings),
        "n_steps_per_sample": int(encoder.n_steps),
        "n_features": int(feats.shape[-1]),
        "members_not_ok": n_bad,
        "metrics": metrics,
        "timings": timings,
        "timings_note": "compile_s = first chunk minus a re-run of it; simulate_s = every chunk after compilation "
        "(encoding, simulation and feature extraction run in one program)",
    }
    _write(out, cfg, summary, data, res, overwrite=overwrite, t_start=t_start)
    return summary


def _plots(tmp, data, res):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4.5) if "confusion" in res else (9, 3.5), layout="constrained")
    ax = fig.add_subplot()
    if "confusion" in res:
        cm = res["confusion"]
        im = ax.imshow(cm, cmap="Blues")
        for (i, j), c in np.ndenumerate(cm):
            ax.text(j, i, str(c), ha="center", va="center", fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"test confusion matrix (accuracy {res['test_accuracy']:.3f})")
        fig.colorbar(im, ax=ax)
        name = "confusion.png"
    else:
        P = np.asarray(res["predictions"])
        if data.per_step:
            y = data.y if data.y.ndim == 3 else data.y[..., None]
            i = int(np.flatnonzero(data.test)[0]) if data.test_from is None else 0
            t0 = data.test_from if data.test_from is not None else data.washout
            t = np.arange(t0, min(t0 + 300, y.shape[1]))
            ax.plot(t, y[i, t, 0], label="target", lw=1.2)
            ax.plot(t, P[i, t, 0], label="prediction", lw=1.0)
            ax.set_xlabel("input sample t")
        else:
            test = data.test
            ax.plot(data.y[test], P[test], ".", ms=3)
            ax.set_xlabel("target")
        ax.set_title(f"test predictions (NRMSE {res['test_nrmse']:.3f})")
        ax.legend() if data.per_step else None
        name = "predictions.png"
    fig.savefig(os.path.join(tmp, name), dpi=110)
    return [name]


def _write(out, cfg, summary, data, res, *, overwrite, t_start):
    from .._run import atomic_out_dir, write_json

    with atomic_out_dir(out, overwrite) as tmp:
        with open(os.path.join(tmp, "config.yaml"), "w") as f:
            f.write(dump_yaml(cfg))
        arrays = {"y": data.y, "predictions": np.asarray(res["predictions"])}
        if data.test is not None:
            arrays["test"] = data.test
        if "confusion" in res:
            arrays["confusion"] = res["confusion"]
        np.savez_compressed(os.path.join(tmp, "predictions.npz"), **arrays)
        if cfg["output"]["plots"]:
            summary["plots"] = _plots(tmp, data, res)
        summary["timings"]["total_s"] = time.perf_counter() - t_start
        write_json(os.path.join(tmp, "summary.json"), summary)
