"""Input encoders: turn a sample (an image or a multichannel series) into the drive `inputs[t]` of a run.

An encoder is a strategy object with `n_steps` and `n_channels` and a pure, vmappable
`__call__(sample, key) -> (n_steps, n_channels)`, so a dataset is encoded inside the compiled
simulation program, chunk by chunk, and never held as a (n_samples, n_steps, channels) array.

`ImageEncoder` is the reservoir paper's recipe (spec section 4): resize, scale plus Gaussian pixel
noise, read along a Hilbert curve, sliding window of width 8, each window held for `hold` steps,
the remainder filled by repeating the first rows. `SeriesEncoder` holds each sample of a series for
`hold` steps and scales it.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DiffringError, check_choice, check_float, check_int


def hilbert_order(size: int) -> np.ndarray:
    """The (row, col) cells of a `size` x `size` grid in Hilbert-curve order, shape (size**2, 2).

    `size` must be a power of two. The classic `d2xy` construction (Wikipedia, "Hilbert curve"),
    with x the row and y the column: the curve starts at the top-left cell (0, 0), ends at the
    bottom-left cell (size - 1, 0), and consecutive cells are grid neighbours.
    """
    size = check_int("encoder.size", size, minimum=1)
    if size & (size - 1):
        raise DiffringError("encoder.size", size, "expected a power of two (the Hilbert curve fills 2^k x 2^k grids)")
    out = np.zeros((size * size, 2), dtype=np.int64)
    for d in range(size * size):
        x = y = 0
        t = d
        s = 1
        while s < size:
            rx = 1 & (t // 2)
            ry = 1 & (t ^ rx)
            if ry == 0:  # rotate the quadrant
                if rx == 1:
                    x, y = s - 1 - x, s - 1 - y
                x, y = y, x
            x += s * rx
            y += s * ry
            t //= 4
            s *= 2
        out[d] = (x, y)
    return out


def hold_index(n_items: int, hold: int, n_steps: int) -> np.ndarray:
    """Which item drives each step: item i is held for `hold` steps; past `n_items * hold` steps the
    sequence repeats from its first rows (the published fill), before that it is cut at `n_steps`."""
    return (np.arange(n_steps) % (n_items * hold)) // hold


class AbstractEncoder(eqx.Module):
    """Maps one sample to the run's drive `(n_steps, n_channels)`; pure and vmappable."""

    @property
    @abc.abstractmethod
    def n_steps(self) -> int:
        """Length of the drive in model steps."""

    @property
    @abc.abstractmethod
    def n_channels(self) -> int:
        """Number of input channels (the network's `n_in`)."""

    @abc.abstractmethod
    def __call__(self, sample: Array, key: PRNGKeyArray | None) -> Float[Array, "n_steps channels"]:
        """The drive of one sample; `key` draws its noise (None: no noise)."""

    def nonnegative(self, samples) -> bool:
        """Whether the drive of these (concrete) samples is provably >= 0 (lets `MapScan` use its
        sign-packed carry inside the pipeline's program); False when unsure."""
        return False


class ImageEncoder(AbstractEncoder):
    """The published image recipe (spec section 4), for images (H, W) with values in [0, 1].

    The image is resized to `size` x `size` with `jax.image.resize(method)` (the published code uses
    a SciPy spline zoom: values differ slightly, the recipe is the same), multiplied by `scale` and
    given `noise` * N(0, 1) per pixel from the key, read along the Hilbert curve (`size`**2 values),
    cut into sliding windows of width `window` (`size**2 - window + 1` rows), and each row is held
    for `hold` steps; the drive is `steps` long (published: 32, 8, 9, 10000, 0.01, 0.001).
    """

    size: int = eqx.field(static=True, default=32)
    window: int = eqx.field(static=True, default=8)
    hold: int = eqx.field(static=True, default=9)
    steps: int = eqx.field(static=True, default=10000)
    scale: float = eqx.field(static=True, default=0.01)
    noise: float = eqx.field(static=True, default=0.001)
    method: str = eqx.field(static=True, default="linear")

    def __check_init__(self):
        hilbert_order(self.size)  # validates size
        check_int("encoder.window", self.window, minimum=1)
        if self.window > self.size * self.size:
            raise DiffringError("encoder.window", self.window, f"expected at most size**2 = {self.size**2}")
        check_int("encoder.hold", self.hold, minimum=1)
        check_int("encoder.steps", self.steps, minimum=1)
        check_float("encoder.scale", self.scale)
        check_float("encoder.noise", self.noise, nonnegative=True)
        check_choice("encoder.method", self.method, ("nearest", "linear", "cubic", "lanczos3", "lanczos5"))

    @property
    def n_steps(self) -> int:
        return self.steps

    @property
    def n_channels(self) -> int:
        return self.window

    def nonnegative(self, samples) -> bool:
        # linear / nearest resizing are convex combinations of pixels; the other kernels can overshoot
        return (
            self.noise == 0
            and self.scale >= 0
            and self.method in ("linear", "nearest")
            and bool(np.min(np.asarray(samples)) >= 0)
        )

    def rows(self) -> int:
        """Number of sliding-window rows."""
        return self.size * self.size - self.window + 1

    def sequence(self, image: Float[Array, "H W"], key: PRNGKeyArray | None) -> Float[Array, " L"]:
        """The resized, scaled, noisy image read along the Hilbert curve, shape (size**2,)."""
        image = jnp.asarray(image)
        if image.ndim != 2:
            raise DiffringError("images", f"shape {image.shape}", "expected one image of shape (H, W)")
        dtype = image.dtype if jnp.issubdtype(image.dtype, jnp.floating) else jnp.result_type(float)
        image = image.astype(dtype)
        if image.shape != (self.size, self.size):
            image = jax.image.resize(image, (self.size, self.size), method=self.method)
        image = image * jnp.asarray(self.scale, dtype)
        if key is not None and self.noise > 0:
            image = image + jnp.asarray(self.noise, dtype) * jax.random.normal(key, image.shape, dtype)
        order = hilbert_order(self.size)
        return image[order[:, 0], order[:, 1]]

    def __call__(self, image, key):
        seq = self.sequence(image, key)
        # hold_index computed in the program (iota arithmetic) rather than embedded as a constant
        t = jnp.arange(self.steps, dtype=jnp.int32)
        item = (t % (self.rows() * self.hold)) // self.hold
        cols = item[:, None] + jnp.arange(self.window, dtype=jnp.int32)[None, :]
        return seq[cols]


class SeriesEncoder(AbstractEncoder):
    """A multichannel series (T, channels): sample t drives steps [t hold, (t + 1) hold), times
    `scale` plus `offset`, with optional `noise` * N(0, 1) per step from the key."""

    length: int = eqx.field(static=True)
    channels: int = eqx.field(static=True, default=1)
    hold: int = eqx.field(static=True, default=10)
    scale: float = eqx.field(static=True, default=1.0)
    offset: float = eqx.field(static=True, default=0.0)
    noise: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        check_int("encoder.length", self.length, minimum=1)
        check_int("encoder.channels", self.channels, minimum=1)
        check_int("encoder.hold", self.hold, minimum=1)
        check_float("encoder.scale", self.scale)
        check_float("encoder.offset", self.offset)
        check_float("encoder.noise", self.noise, nonnegative=True)

    @property
    def n_steps(self) -> int:
        return self.length * self.hold

    @property
    def n_channels(self) -> int:
        return self.channels

    def nonnegative(self, samples) -> bool:
        a = np.asarray(samples)
        lo = min(self.scale * float(a.min()), self.scale * float(a.max())) + self.offset
        return self.noise == 0 and lo >= 0

    def __call__(self, series, key):
        series = jnp.asarray(series)
        if series.shape != (self.length, self.channels):
            raise DiffringError(
                "X", f"sample of shape {series.shape}", f"expected (T, channels) = ({self.length}, {self.channels})"
            )
        dtype = series.dtype
        x = jnp.repeat(series, self.hold, axis=0) * jnp.asarray(self.scale, dtype) + jnp.asarray(self.offset, dtype)
        if key is not None and self.noise > 0:
            x = x + jnp.asarray(self.noise, dtype) * jax.random.normal(key, x.shape, dtype)
        return x


def sample_keys(key: PRNGKeyArray, n: int):
    """One noise key per sample, `fold_in(key, i)`: a sample's noise does not depend on the chunking."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n))
