"""Heaviside strategies for the trigger: exact, straight-through surrogate, or soft.

`H(x) = 1 where x >= 0 else 0`. The discrete map's output is `o' = 1 - H(d - theta(o))`.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._errors import check_float


class AbstractThreshold(eqx.Module):
    """A Heaviside function H(x) with a chosen forward value and derivative."""

    @abc.abstractmethod
    def __call__(self, x: Float[Array, "*n"]) -> Float[Array, "*n"]:
        """Return H(x) in the dtype of x."""


class HardThreshold(AbstractThreshold):
    """The exact step: H(x) = [x >= 0]; its derivative is zero almost everywhere."""

    def __call__(self, x):
        return jnp.where(x >= 0, jnp.ones((), x.dtype), jnp.zeros((), x.dtype))


@jax.custom_jvp
def _straight_through(x, beta):
    return jnp.where(x >= 0, jnp.ones((), x.dtype), jnp.zeros((), x.dtype))


@_straight_through.defjvp
def _straight_through_jvp(primals, tangents):
    x, beta = primals
    dx, dbeta = tangents
    s = jax.nn.sigmoid(beta * x)
    return _straight_through(x, beta), beta * s * (1 - s) * dx


def _check_beta(beta):
    """A Python or NumPy number is checked (> 0); an array may be a traced or swept parameter."""
    if not hasattr(beta, "shape") or isinstance(beta, np.number):
        check_float("model.threshold_beta", beta, positive=True)


class SigmoidSurrogate(AbstractThreshold):
    """Exact step forward; derivative of sigmoid(beta x) backward (straight-through surrogate)."""

    beta: float = 20.0

    def __check_init__(self):
        _check_beta(self.beta)

    def __call__(self, x):
        return _straight_through(x, jnp.asarray(self.beta, x.dtype))


class SoftThreshold(AbstractThreshold):
    """H(x) = sigmoid(beta x) forward and backward: a smooth discrete map whose gradients are exact.

    The forward differs from the hard map: outputs are continuous and pulses are weakened at every
    hop. With the default beta = 100 rings keep oscillating (one-pulse periods about 10-25 % short
    of the hard map's at dt = 0.01-0.1); at beta <= 50 pulses can die out (measured: a one-pulse
    6-ring falls silent at beta 20 and 50, dt 0.1). See docs/gradients.md.
    """

    beta: float = 100.0

    def __check_init__(self):
        _check_beta(self.beta)

    def __call__(self, x):
        return jax.nn.sigmoid(jnp.asarray(self.beta, x.dtype) * x)
