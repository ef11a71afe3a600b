"""Baselines run through the same harness (same encoders, readouts and splits as the ring reservoir).

`EchoStateNetwork`: a leaky tanh echo state network h(t+1) = (1 - a) h(t) + a tanh(W h(t) + Win x(t) + b)
of a chosen size (use the ring reservoir's neuron count for an equal-size comparison), W sparse
Gaussian rescaled to a given spectral radius. It steps once per input sample (the encoder's drive
taken every `hold` steps), and its features are states at records, as for the rings.
`raw_features`: the linear baseline, the input itself (the resized image, or the series with delays).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._errors import check_float, check_int


class EchoStateNetwork(eqx.Module):
    """A leaky tanh ESN; `W` (n, n), `win` (n, n_in), `bias` (n,), leak rate `leak`."""

    W: Float[Array, "n n"]
    win: Float[Array, "n n_in"]
    bias: Float[Array, " n"]
    leak: float = eqx.field(static=True, default=1.0)

    @classmethod
    def random(
        cls,
        n: int,
        n_in: int,
        *,
        spectral_radius: float = 0.9,
        density: float = 0.1,
        input_scale: float = 1.0,
        bias_scale: float = 0.1,
        leak: float = 1.0,
        seed: int = 0,
        dtype=None,
    ) -> EchoStateNetwork:
        """W: Gaussian entries kept with probability `density`, rescaled so max |eig W| = `spectral_radius`;
        Win: U[-input_scale, input_scale]; bias: U[-bias_scale, bias_scale]; all from `seed`."""
        n = check_int("esn.n", n, minimum=1)
        n_in = check_int("esn.n_in", n_in, minimum=1)
        check_float("esn.spectral_radius", spectral_radius, nonnegative=True)
        check_float("esn.density", density, lo=0.0, hi=1.0)
        check_float("esn.leak", leak, lo=0.0, hi=1.0)
        rng = np.random.default_rng(seed)
        W = rng.standard_normal((n, n)) * (rng.random((n, n)) < density)
        rho = np.max(np.abs(np.linalg.eigvals(W))) if n > 1 else abs(W[0, 0])
        W = W * (spectral_radius / rho) if rho > 0 else W
        win = rng.uniform(-input_scale, input_scale, (n, n_in))
        bias = rng.uniform(-bias_scale, bias_scale, n)
        dtype = jnp.result_type(float) if dtype is None else dtype
        return cls(jnp.asarray(W, dtype), jnp.asarray(win, dtype), jnp.asarray(bias, dtype), leak)

    @property
    def n_neurons(self) -> int:
        return int(self.W.shape[0])

    def run(self, inputs: Float[Array, "T n_in"], every: int = 1) -> Float[Array, "K n"]:
        """States h(0) = 0, h(every), h(2 every), ... (K = T / every + 1 records) of one input sequence."""
        T = inputs.shape[0]
        x = inputs.reshape((T // every, every) + inputs.shape[1:])
        a = jnp.asarray(self.leak, self.W.dtype)

        def step(h, xt):
            return (1 - a) * h + a * jnp.tanh(self.W @ h + self.win @ xt + self.bias), None

        def block(h, xb):
            h, _ = jax.lax.scan(step, h, xb)
            return h, h

        h0 = jnp.zeros(self.n_neurons, self.W.dtype)
        _, hs = jax.lax.scan(block, h0, x)
        return jnp.concatenate([h0[None], hs])


def raw_features(
    samples: Array, *, image_size: int | None = None, delays: int = 0, method: str = "linear"
) -> Float[Array, "n ..."]:
    """The linear baseline's features: images resized to `image_size` and flattened ((n, size**2));
    series (n, T, ch) with `delays` delayed copies stacked ((n, T, ch (delays + 1)), zeros before t = 0)."""
    samples = jnp.asarray(samples)
    if image_size is not None:
        r = jax.vmap(lambda im: jax.image.resize(im, (image_size, image_size), method=method))(samples)
        return r.reshape(r.shape[0], -1)
    parts = [samples]
    for d in range(1, delays + 1):
        pad = jnp.zeros(samples.shape[:1] + (d,) + samples.shape[2:], samples.dtype)
        parts.append(jnp.concatenate([pad, samples[:, :-d]], axis=1))
    return jnp.concatenate(parts, axis=-1)
