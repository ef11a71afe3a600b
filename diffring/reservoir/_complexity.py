"""Complexity measures of a reservoir (reservoir paper, later version) and a sweep relating them to
task performance.

Definitions (the paper gives them in words only; these are diffring's precise choices):

- **Neural entropy** `neural_entropy(o)`: each neuron's firing fraction p_i over the records
  (firing = output below 0.5), its binary entropy H(p_i) = -p log2 p - (1 - p) log2 (1 - p), averaged
  over neurons: 0 bits when every neuron is always at rest or always firing, 1 bit when every neuron
  fires half the time (the "activity balance" of the paper).
- **Pattern entropy** `pattern_entropy(o)`: the Shannon entropy in bits of the empirical
  distribution of the whole n-bit output pattern over the T records; at most min(n, log2 T).
- **Input sensitivity** `input_sensitivity(...)`: run each input x and x + delta * xi (xi ~ N(0, 1)
  per step and channel, from a key) from the same initial state and take the normalised Hamming
  distance of the binary outputs, averaged over records (after `skip` records) and neurons:
  0 for identical runs, about 2 p (1 - p) for unrelated runs with firing fraction p.
- **Effective dimensionality** `effective_dimensionality(F)`: the participation ratio
  (sum lambda)^2 / sum lambda^2 of the covariance spectrum of the features F (n_samples, d), computed
  as tr(C)^2 / ||C||_F^2 without an eigendecomposition: d for isotropic data, 1 for rank-1 data, and
  0 for features that do not vary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DiffringError, check_float, check_int
from .._simulate import Record, simulate_batch


def _bits(o):
    o = jnp.asarray(o)
    if o.ndim < 2:
        raise DiffringError("outputs", f"shape {o.shape}", "expected (..., T, n) outputs over time")
    return o < 0.5  # firing (o = 0) is True


def _xlog2x(p):
    safe = jnp.where(p > 0, p, jnp.ones((), p.dtype))
    return jnp.where(p > 0, p * jnp.log2(safe), jnp.zeros((), p.dtype))


def neural_entropy(o: Float[Array, "*b T n"]) -> Float[Array, "*b"]:
    """Mean over neurons of the binary entropy (bits) of each neuron's firing fraction over T records."""
    b = _bits(o)
    dtype = jnp.result_type(float)
    p = jnp.mean(b.astype(dtype), axis=-2)
    return -jnp.mean(_xlog2x(p) + _xlog2x(1 - p), axis=-1)


def _pattern_entropy_one(b):
    T, n = b.shape
    words = -(-n // 32)
    pad = jnp.zeros((T, words * 32 - n), bool)
    bits = jnp.concatenate([b, pad], axis=1).reshape(T, words, 32).astype(jnp.uint32)
    packed = jnp.sum(bits << jnp.arange(32, dtype=jnp.uint32)[None, None, :], axis=2, dtype=jnp.uint32)
    order = jnp.lexsort(tuple(packed[:, w] for w in range(words)))
    s = packed[order]
    new = jnp.concatenate([jnp.ones((1,), bool), jnp.any(s[1:] != s[:-1], axis=1)])
    run = jnp.cumsum(new.astype(jnp.int32)) - 1
    dtype = jnp.result_type(float)
    counts = jax.ops.segment_sum(jnp.ones(T, dtype), run, num_segments=T)
    return -jnp.sum(_xlog2x(counts / T))


def pattern_entropy(o: Float[Array, "*b T n"]) -> Float[Array, "*b"]:
    """Shannon entropy (bits) of the distribution of the n-bit output patterns over the T records.

    Patterns are packed into 32-bit words and sorted (jit- and vmap-safe, static shapes).
    """
    b = _bits(o)
    lead = b.shape[:-2]
    flat = b.reshape((-1,) + b.shape[-2:])
    return jax.vmap(_pattern_entropy_one)(flat).reshape(lead)


def hamming_distance(o_a: Float[Array, "*b T n"], o_b: Float[Array, "*b T n"]) -> Float[Array, "*b"]:
    """Fraction of (record, neuron) entries whose binary outputs differ."""
    dtype = jnp.result_type(float)
    return jnp.mean((_bits(o_a) != _bits(o_b)).astype(dtype), axis=(-2, -1))


def effective_dimensionality(features: Float[Array, "n d"]) -> Float[Array, ""]:
    """Participation ratio tr(C)^2 / tr(C^2) of the feature covariance C (uses the smaller Gram); 0 when
    the features do not vary over samples (a reservoir that ignores its input)."""
    F = jnp.asarray(features)
    if F.ndim != 2 or F.shape[0] < 2:
        raise DiffringError("features", f"shape {F.shape}", "expected (n_samples >= 2, d)")
    Fc = F - jnp.mean(F, axis=0, keepdims=True)
    G = Fc.T @ Fc if F.shape[1] <= F.shape[0] else Fc @ Fc.T  # same nonzero spectrum
    g2 = jnp.sum(G * G)
    return jnp.where(g2 > 0, jnp.trace(G) ** 2 / jnp.where(g2 > 0, g2, 1), 0)


def _paired_outputs(model, state0, inputs, key, delta, every, skip, method, chunk_size):
    """Outputs (B, K, n) driven by `inputs` and by `inputs + delta * xi`, as one batch of 2B runs."""
    delta = check_float("complexity.delta", delta, nonnegative=True)
    skip = check_int("complexity.skip", skip, minimum=0)
    inputs = jnp.asarray(inputs)
    if inputs.ndim != 3:
        raise DiffringError("inputs", f"shape {inputs.shape}", "expected (B, n_steps, n_in)")
    B, n_steps = inputs.shape[:2]
    if skip + 1 > n_steps // check_int("complexity.every", every, minimum=1):
        raise DiffringError("complexity.skip", skip, f"expected fewer than n_steps / every = {n_steps // every}")
    xi = jax.random.normal(key, inputs.shape, inputs.dtype)
    both = jnp.concatenate([inputs, inputs + jnp.asarray(delta, inputs.dtype) * xi])
    s0 = state0 if state0.v.ndim == 2 else jax.tree.map(lambda a: jnp.broadcast_to(a, (B,) + a.shape), state0)
    s0 = jax.tree.map(lambda a: jnp.concatenate([a, a]), s0)
    record = Record(every=every, fields=("o",), phases=False)
    sol = simulate_batch(model, s0, n_steps=n_steps, record=record, inputs=both, method=method, chunk_size=chunk_size)
    o = sol.o[:, 1 + skip :]
    return o[:B], o[B:]


def input_sensitivity(
    model,
    state0,
    inputs: Float[Array, "B n_steps n_in"],
    key: PRNGKeyArray,
    *,
    delta: float = 1e-3,
    every: int = 1,
    skip: int = 0,
    method=None,
    chunk_size: int | None = None,
) -> Float[Array, " B"]:
    """Normalised Hamming distance between the outputs driven by `inputs` and by `inputs + delta * xi`.

    All runs start from `state0` (one state (n,), or (B, n)); xi ~ N(0, 1) per sample, step and channel
    from `key`. Outputs are compared every `every` steps, after dropping the first `skip` records
    (record 0, the common initial state, is always dropped). Returns one value per sample.
    """
    return hamming_distance(*_paired_outputs(model, state0, inputs, key, delta, every, skip, method, chunk_size))


def complexity_sweep(
    settings: Sequence[dict],
    build: Callable[[dict, int], tuple],
    data,
    encoder,
    features,
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    readout=None,
    n_probe: int = 64,
    delta: float = 1e-3,
    every: int | None = None,
    key: PRNGKeyArray | None = None,
    chunk_size: int = 128,
) -> list[dict]:
    """Complexity measures and task scores for every (setting, seed).

    `build(setting, seed) -> (model, state0)` makes one reservoir (e.g. `dr.small_world(**setting,
    seed=seed)` plus an initial state). For each: the task is run through the pipeline
    (`reservoir_features` + `evaluate` with `readout`), and on the first `n_probe` samples the outputs
    are recorded every `every` steps (default: the encoder's hold) to compute `neural_entropy`,
    `pattern_entropy` (mean over samples) and `input_sensitivity` (perturbation `delta`); the
    effective dimensionality is that of the readout features of all samples. Returns one dict per
    run: the setting, `seed`, the scores of `evaluate` (accuracy or NRMSE; arrays dropped) and the
    four measures. docs/results/reservoir.md plots accuracy against them.
    """
    from ._encoders import sample_keys
    from ._pipeline import evaluate, reservoir_features

    key = jax.random.key(0) if key is None else key
    every = getattr(encoder, "hold", 1) if every is None else every
    n_probe = min(check_int("complexity.n_probe", n_probe, minimum=1), int(np.shape(data.inputs)[0]))
    rows = []
    for setting in settings:
        for seed in seeds:
            model, state0 = build(setting, seed)
            k_feat, k_sens = jax.random.split(jax.random.fold_in(key, seed))
            feats, status = reservoir_features(
                model, state0, encoder, features, data.inputs, k_feat, chunk_size=chunk_size
            )
            scores = {k: v for k, v in evaluate(data, feats, readout).items() if np.ndim(v) == 0}
            probe = jnp.asarray(data.inputs[:n_probe])
            drive = jax.vmap(encoder)(probe, sample_keys(k_feat, n_probe)).astype(model.network.dtype)
            n_steps = (drive.shape[1] // every) * every
            drive = drive[:, :n_steps]
            # the unperturbed half of the sensitivity runs is the probe whose entropies are measured
            o, o_pert = _paired_outputs(model, state0, drive, k_sens, delta, every, 0, None, chunk_size)
            sens = hamming_distance(o, o_pert)
            rows.append(
                {
                    **setting,
                    "seed": seed,
                    **scores,
                    "neural_entropy": float(jnp.mean(neural_entropy(o))),
                    "pattern_entropy": float(jnp.mean(pattern_entropy(o))),
                    "input_sensitivity": float(jnp.mean(sens)),
                    "effective_dim": float(effective_dimensionality(jnp.asarray(feats))),
                    "failed_runs": int(np.sum(np.asarray(status) != 0)),
                }
            )
    return rows
