"""The reservoir pipeline: encode -> simulate -> features -> readout -> evaluate.

`reservoir_features` runs a dataset through a ring reservoir as a few calls of one compiled program:
each call encodes a chunk of samples (inside the program, so the (n, n_steps, channels) drive is
never materialised), simulates them as one `simulate_batch` and returns only their features.
`esn_features` does the same for the echo state network baseline. `evaluate` fits a readout on the
training rows and scores both splits. The CLI (`diffring reservoir`), the notebook and
docs/results/make_reservoir.py all go through these functions.
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import DiffringError, check_int
from .._simulate import simulate_batch
from ._encoders import AbstractEncoder, sample_keys
from ._features import Features
from ._metrics import nrmse, one_vs_rest, predict_labels
from ._readouts import AbstractReadout, Ridge
from ._tasks import Dataset


@eqx.filter_jit
def _reservoir_chunk(model, state0, encoder, features, samples, keys, method, per_step):
    inputs = jax.vmap(encoder)(samples, keys).astype(model.network.dtype)
    c = samples.shape[0]
    s0 = jax.tree.map(lambda a: jnp.broadcast_to(a, (c,) + a.shape), state0)
    sol = simulate_batch(
        model, s0, n_steps=encoder.n_steps, record=features.record(encoder.n_steps), inputs=inputs, method=method
    )
    return (features.series(sol) if per_step else features.pooled(sol)), sol.status


def _chunks(n, chunk_size):
    chunk_size = check_int("run.chunk_size", chunk_size, minimum=1)
    return [(i, min(i + chunk_size, n)) for i in range(0, n, chunk_size)], min(chunk_size, n)


def _pad(a, size):
    """Pad the leading axis to `size` by repeating the last row (one program for every chunk)."""
    if a.shape[0] == size:
        return a
    return jnp.concatenate([a, jnp.repeat(a[-1:], size - a.shape[0], axis=0)])


def reservoir_features(
    model,
    state0,
    encoder: AbstractEncoder,
    features: Features,
    samples,
    key,
    *,
    chunk_size: int = 128,
    method=None,
    per_step: bool = False,
    timings: dict | None = None,
):
    """Features of every sample: (n, F) pooled, or with `per_step` (n, K, F) per record; and status (n,).

    All samples start from `state0` (one state, shape (n_neurons,)); sample i's noise comes from
    `fold_in(key, i)`. `timings`, if given, receives `compile_s` (first call minus a re-run) and
    `simulate_s` (all chunks after compilation).
    """
    samples = jnp.asarray(samples)
    n = samples.shape[0]
    if model.network.n_inputs != encoder.n_channels:
        raise DiffringError(
            "network.n_in", model.network.n_inputs, f"expected the encoder's channel count {encoder.n_channels}"
        )
    method = model.default_method if method is None else method
    # The drive is made inside the program, where `simulate_batch` cannot inspect it: resolve the
    # method (e.g. MapScan's sign-packed carry, exact only for nonnegative drives) here, on a
    # concrete stand-in with the drive's sign.
    sign = 0.0 if encoder.nonnegative(samples) else -1.0
    method = method.resolve(model, state0, jnp.full((1, encoder.n_channels), sign, model.network.dtype))
    keys = sample_keys(key, n)
    spans, size = _chunks(n, chunk_size)
    feats, status = [], []
    sim = 0.0
    for j, (a, b) in enumerate(spans):
        xs, ks = _pad(samples[a:b], size), _pad(keys[a:b], size)
        tic = time.perf_counter()
        f, s = jax.block_until_ready(_reservoir_chunk(model, state0, encoder, features, xs, ks, method, per_step))
        dt = time.perf_counter() - tic
        if j == 0 and timings is not None:
            tic = time.perf_counter()
            jax.block_until_ready(_reservoir_chunk(model, state0, encoder, features, xs, ks, method, per_step))
            dt2 = time.perf_counter() - tic
            timings["compile_s"] = max(dt - dt2, 0.0)
            dt = dt2
        sim += dt
        feats.append(np.asarray(f[: b - a]))
        status.append(np.asarray(s[: b - a]))
    if timings is not None:
        timings["simulate_s"] = sim
    return np.concatenate(feats), np.concatenate(status)


@eqx.filter_jit
def _esn_chunk(esn, encoder, samples, keys, every, n_times, per_step, gain):
    drive = jax.vmap(encoder)(samples, keys)[:, :: encoder.hold] * gain
    T = drive.shape[1]
    step = every if every is not None else T // (n_times - 1)
    hs = jax.vmap(lambda x: esn.run(x[: (T // step) * step], step))(drive.astype(esn.W.dtype))
    return hs if per_step else hs.reshape(hs.shape[0], -1)


def esn_features(
    esn,
    encoder: AbstractEncoder,
    features: Features,
    samples,
    key,
    *,
    chunk_size: int = 128,
    per_step: bool = False,
    gain: float | None = None,
):
    """Echo-state-network features on the same drive: the encoder's drive sampled once per held item
    (every `encoder.hold` steps) times `gain` (default 1 / encoder.scale: the unscaled input), states
    at `features.n_times` equally spaced records (or every `features.every / hold` samples with
    `per_step`); (n, K n_esn) pooled or (n, K, n_esn)."""
    samples = jnp.asarray(samples)
    n = samples.shape[0]
    gain = (1.0 / encoder.scale if encoder.scale else 1.0) if gain is None else gain
    every = None if features.every is None else max(features.every // encoder.hold, 1)
    keys = sample_keys(key, n)
    spans, size = _chunks(n, chunk_size)
    out = []
    for a, b in spans:
        f = _esn_chunk(
            esn, encoder, _pad(samples[a:b], size), _pad(keys[a:b], size), every, features.n_times, per_step, gain
        )
        out.append(np.asarray(f[: b - a]))
    return np.concatenate(out)


# ----------------------------------------------------------------------------------------------
# Readout and scores


def _rows(data: Dataset, T: int):
    """Boolean (n, T) train and test masks of the per-step rows."""
    n = data.y.shape[0]
    t = np.arange(T)[None, :]
    live = np.broadcast_to(t >= data.washout, (n, T))
    if data.test_from is not None:
        test = live & (t >= data.test_from)
        train = live & (t < data.test_from)
    else:
        test = live & data.test[:, None]
        train = live & ~data.test[:, None]
    return train, test


def evaluate(data: Dataset, feats, readout: AbstractReadout | None = None) -> dict:
    """Fit `readout` (default: the published ridge, alpha 1e-4) on the training rows and score.

    Per-sample classification: one-vs-rest targets, argmax; returns train/test accuracy, the test
    confusion matrix and predicted labels. Regression: train/test NRMSE (and per output column); per-step
    targets are fitted on (sample, time) rows after the washout. With 0/1 targets and `masks`
    (the flip-flop) also thresholded accuracy per mask and per time step; for the memory task the
    memory capacity sum_k r_k^2 on the test steps.
    """
    readout = Ridge() if readout is None else readout
    # The readout runs in the widest float available: a float32 ridge on ~10^4 binary features is
    # ill-conditioned (digits: 8 % instead of 70 % test accuracy on the same float32 features).
    feats = jnp.asarray(feats, jnp.result_type(float))
    out: dict = {}
    if not data.per_step:
        tr = ~data.test
        X = feats
        if data.classification:
            n_cls = int(data.y.max()) + 1
            Y = one_vs_rest(jnp.asarray(data.y), n_cls, dtype=feats.dtype)
            state = readout.fit(X[tr], Y[tr])
            pred = np.asarray(predict_labels(readout.predict(state, X)))
            out["train_accuracy"] = float(np.mean(pred[tr] == data.y[tr]))
            out["test_accuracy"] = float(np.mean(pred[~tr] == data.y[~tr]))
            cm = np.zeros((n_cls, n_cls), np.int64)
            np.add.at(cm, (data.y[~tr], pred[~tr]), 1)
            out["confusion"] = cm
            out["predictions"] = pred
            return out
        Y = jnp.asarray(data.y, feats.dtype)[:, None]
        state = readout.fit(X[tr], Y[tr])
        P = np.asarray(readout.predict(state, X))[:, 0]
        out["train_nrmse"] = float(nrmse(data.y[tr], P[tr]))
        out["test_nrmse"] = float(nrmse(data.y[~tr], P[~tr]))
        out["predictions"] = P
        return out
    n, T = data.y.shape[:2]
    if feats.shape[:2] != (n, T):
        raise DiffringError("features", f"shape {feats.shape}", f"expected per-step features (n, T) = ({n}, {T}, F)")
    Yf = data.y if data.y.ndim == 3 else data.y[..., None]
    train, test = _rows(data, T)
    Xr, Yr = feats.reshape(n * T, -1), jnp.asarray(Yf, feats.dtype).reshape(n * T, -1)
    state = readout.fit(Xr[train.reshape(-1)], Yr[train.reshape(-1)])
    P = np.asarray(readout.predict(state, Xr)).reshape(Yf.shape)
    out["train_nrmse"] = float(nrmse(Yf[train], P[train]))
    out["test_nrmse"] = float(nrmse(Yf[test], P[test]))
    if Yf.shape[-1] > 1:
        out["test_nrmse_per_output"] = [float(nrmse(Yf[test][:, k], P[test][:, k])) for k in range(Yf.shape[-1])]
    if data.name == "memory_capacity":
        r2 = [float(np.corrcoef(Yf[test][:, k], P[test][:, k])[0, 1] ** 2) for k in range(Yf.shape[-1])]
        out["memory_r2"] = r2
        out["memory_capacity"] = float(np.sum(r2))
    if data.masks is not None:
        hit = (P[..., 0] >= 0.5) == (Yf[..., 0] >= 0.5)
        out["train_accuracy"] = float(np.mean(hit[train]))
        out["test_accuracy"] = float(np.mean(hit[test]))
        for name, m in data.masks.items():
            out[f"test_accuracy_{name}"] = float(np.mean(hit[test & m]))
            per_t = [
                float(np.mean(hit[:, t][test[:, t] & m[:, t]])) if np.any(test[:, t] & m[:, t]) else None
                for t in range(T)
            ]
            out[f"test_accuracy_{name}_per_step"] = per_t
    out["predictions"] = P
    return out
