"""Reservoir tasks, generated locally or shipped by a package (nothing is downloaded).

A task is a `Dataset`: samples (images (n, H, W) in [0, 1], or series (n, T, channels)), targets,
and a train/test split. Classification has integer labels y (n,); regression has float targets
y (n,), (n, T) or (n, T, k), scored per sample or per time step. A single long series (NARMA-10,
Mackey-Glass, memory capacity) is split in time at `test_from`; several samples are split by the
boolean `test` mask (explicit, or a seeded 80/20 split).
"""

from __future__ import annotations

import dataclasses
import gzip
import os

import numpy as np

from .._errors import DiffringError, check_float, check_int
from .._io import check_file_kind


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A task's data (NumPy arrays; see the module docstring).

    `washout` leading time steps of a series are not scored; `masks` optionally names (n, T) boolean
    scoring masks (e.g. the flip-flop's time-dependent "TD" and time-independent "TI" steps);
    `is_image` marks image samples.
    """

    name: str
    inputs: np.ndarray
    y: np.ndarray
    test: np.ndarray | None = None
    test_from: int | None = None
    washout: int = 0
    masks: dict | None = None
    is_image: bool = False  # images (n, H, W) for an image encoder, rather than series (n, T, channels)

    @property
    def classification(self) -> bool:
        return np.issubdtype(self.y.dtype, np.integer)

    @property
    def per_step(self) -> bool:
        """Targets per time step ((n, T) or (n, T, k)) rather than per sample."""
        return self.y.ndim >= 2


def split_mask(n: int, seed: int, test_fraction: float = 0.2) -> np.ndarray:
    """A seeded random test mask with round(test_fraction * n) test samples."""
    rng = np.random.default_rng(seed)
    test = np.zeros(n, bool)
    test[rng.permutation(n)[: int(round(test_fraction * n))]] = True
    return test


# ----------------------------------------------------------------------------------------------
# Generated tasks


def digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8 x 8 handwritten digits (1,797 images shipped with the package), scaled to
    [0, 1] (pixel / 16), with a seeded test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.float64) / 16.0
    test = split_mask(len(images), seed, test_fraction)
    return Dataset("digits", images, d.target.astype(np.int64), test=test, is_image=True)


def narma10(length: int = 2000, seed: int = 0, *, u=None, washout: int = 200, test_fraction: float = 0.2) -> Dataset:
    """NARMA-10: u(t) ~ U[0, 0.5] and
    y(t+1) = 0.3 y(t) + 0.05 y(t) sum_{i=0..9} y(t-i) + 1.5 u(t-9) u(t) + 0.1   (y = 0 before t = 0).
    Input u(t), target y(t+1) (both at step t), one series of `length` steps split in time."""
    length = check_int("task.length", length, minimum=20)
    if u is None:
        u = np.random.default_rng(seed).uniform(0.0, 0.5, length)
    u = np.asarray(u, dtype=np.float64).reshape(-1)
    y = np.zeros(length + 1)
    for t in range(length):
        past = y[max(t - 9, 0) : t + 1].sum()
        u9 = u[t - 9] if t >= 9 else 0.0
        y[t + 1] = 0.3 * y[t] + 0.05 * y[t] * past + 1.5 * u9 * u[t] + 0.1
    return Dataset(
        "narma10", u[None, :, None], y[None, 1:], washout=washout, test_from=_test_from(length, washout, test_fraction)
    )


def _test_from(length, washout, test_fraction):
    check_float("task.test_fraction", test_fraction, lo=0.0, hi=0.9)
    return int(washout + round((1 - test_fraction) * (length - washout)))


def mackey_glass_series(
    length: int,
    *,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    n: float = 10.0,
    dt: float = 0.1,
    sample: float = 1.0,
    x0: float = 1.2,
    seed: int | None = 0,
    transient: float = 500.0,
) -> np.ndarray:
    """Mackey-Glass dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x(t), Heun steps of `dt`
    (tau / dt and sample / dt must be whole numbers, so the delayed value is always a grid point),
    sampled every `sample` after `transient`. History: x0 plus 0.01 U[-1, 1] from `seed` (None: constant)."""
    m = int(round(tau / dt))
    k = int(round(sample / dt))
    if abs(m * dt - tau) > 1e-9 or abs(k * dt - sample) > 1e-9:
        raise DiffringError("task.dt", dt, "expected tau / dt and sample / dt to be whole numbers")
    n_skip = int(round(transient / dt))
    steps = n_skip + length * k
    x = np.empty(m + 1 + steps)
    hist = np.full(m + 1, x0)
    if seed is not None:
        hist = hist + 0.01 * np.random.default_rng(seed).uniform(-1, 1, m + 1)
    x[: m + 1] = hist

    def f(xt, xd):
        return beta * xd / (1.0 + xd**n) - gamma * xt

    for i in range(m, m + steps):
        k1 = f(x[i], x[i - m])
        k2 = f(x[i] + dt * k1, x[i - m + 1])
        x[i + 1] = x[i] + 0.5 * dt * (k1 + k2)
    return x[m + 1 + n_skip :: k][:length]


def mackey_glass(
    length: int = 2000,
    horizons=(1,),
    seed: int = 0,
    *,
    tau: float = 17.0,
    washout: int = 200,
    test_fraction: float = 0.2,
) -> Dataset:
    """Mackey-Glass prediction: input x(t) (centred: x - 1), targets x(t + h) - 1 for each horizon h
    (one-step: (1,); multi-step: e.g. (1, 5, 10, 20)), shape (1, T, len(horizons))."""
    horizons = tuple(check_int("task.horizons[]", h, minimum=1) for h in horizons)
    hmax = max(horizons)
    x = mackey_glass_series(length + hmax, tau=tau, seed=seed) - 1.0
    y = np.stack([x[h : h + length] for h in horizons], axis=-1)
    return Dataset(
        "mackey_glass",
        x[None, :length, None],
        y[None],
        washout=washout,
        test_from=_test_from(length, washout, test_fraction),
    )


def memory_capacity(
    length: int = 2000, max_delay: int = 40, seed: int = 0, *, washout: int = 200, test_fraction: float = 0.2
) -> Dataset:
    """Memory capacity (Jaeger): input u(t) ~ U[-0.5, 0.5], targets u(t - k) for k = 1..max_delay,
    shape (1, T, max_delay). MC = sum_k r^2(prediction_k, u(t - k)) on the test steps."""
    max_delay = check_int("task.max_delay", max_delay, minimum=1)
    u = np.random.default_rng(seed).uniform(-0.5, 0.5, length + max_delay)
    y = np.stack([u[max_delay - k : max_delay - k + length] for k in range(1, max_delay + 1)], axis=-1)
    washout = max(washout, max_delay)
    return Dataset(
        "memory_capacity",
        u[None, max_delay:, None],
        y[None],
        washout=washout,
        test_from=_test_from(length, washout, test_fraction),
    )


def flipflop(
    n_seq: int = 200,
    length: int = 60,
    period: int = 10,
    seed: int = 0,
    *,
    duty: float = 0.5,
    b_target: int = 1,
    test_fraction: float = 0.2,
) -> Dataset:
    """The periodic temporal flip-flop (timed-automata spec 1.3): symbols a, b i.i.d. uniform; the hidden
    clock Theta(t) = 1 if (t mod period) < duty * period else 0; the state after `a` is Theta(t), after
    `b` it is `b_target`. Inputs one-hot (n, T, 2) (a = channel 0), targets y (n, T) in {0, 1}, and
    masks "TD" (steps reading a: time-dependent) and "TI" (steps reading b)."""
    n_seq = check_int("task.n_seq", n_seq, minimum=2)
    length = check_int("task.length", length, minimum=1)
    period = check_int("task.period", period, minimum=1)
    check_float("task.duty", duty, lo=0.0, hi=1.0)
    sym = np.random.default_rng(seed).integers(0, 2, (n_seq, length))  # 0 = a, 1 = b
    return _flipflop_from(sym, period, duty, b_target, split_mask(n_seq, seed, test_fraction))


def _flipflop_from(sym, period, duty, b_target, test):
    t = np.arange(sym.shape[1])
    theta = ((t % period) < duty * period).astype(np.float64)
    y = np.where(sym == 0, theta[None, :], float(b_target))
    onehot = np.stack([sym == 0, sym == 1], axis=-1).astype(np.float64)
    return Dataset("flipflop", onehot, y, test=test, masks={"TD": sym == 0, "TI": sym == 1})


# ----------------------------------------------------------------------------------------------
# Files: MNIST (IDX or .npz) and user datasets

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read(field, path):
    if not os.path.isfile(path):
        raise DiffringError(field, str(path), "file not found")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except OSError as e:
            raise DiffringError(field, str(path), f"could not decompress it ({e})") from None
    return raw


def load_idx(path: str, field: str = "task.path") -> np.ndarray:
    """An array from an IDX file (the MNIST format), gzip-compressed or not."""
    raw = _read(field, path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DiffringError(field, str(path), "not an IDX file (expected magic 0x0000 then a type byte 08-0E)")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DiffringError(field, str(path), "truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:head], dtype=">u4"))
    dt = np.dtype(_IDX_TYPES[raw[2]])
    want = int(np.prod(shape)) * dt.itemsize
    if len(raw) - head != want:
        raise DiffringError(field, str(path), f"IDX data has {len(raw) - head} bytes; header {shape} needs {want}")
    return np.frombuffer(raw[head:], dtype=dt).reshape(shape).astype(dt.newbyteorder("="))


def _check_images_labels(field, images, labels):
    if images.ndim != 3:
        raise DiffringError(field, f"images of shape {images.shape}", "expected (n, H, W)")
    if labels.shape != (images.shape[0],):
        raise DiffringError(field, f"labels of shape {labels.shape}", f"expected ({images.shape[0]},)")


def mnist_idx(
    train_images: str, train_labels: str, test_images: str | None = None, test_labels: str | None = None, seed: int = 0
) -> Dataset:
    """MNIST from local IDX files (e.g. train-images-idx3-ubyte.gz); pixels / 255. With test files the
    split is MNIST's own; otherwise a seeded 80/20 split of the training files."""
    xs = [load_idx(train_images, "task.train_images")]
    ys = [load_idx(train_labels, "task.train_labels")]
    if (test_images is None) != (test_labels is None):
        raise DiffringError("task.test_images", test_images, "give both test_images and test_labels, or neither")
    if test_images is not None:
        xs.append(load_idx(test_images, "task.test_images"))
        ys.append(load_idx(test_labels, "task.test_labels"))
    for x, y in zip(xs, ys, strict=True):
        _check_images_labels("task.train_images", x, y)
    test = (
        np.concatenate([np.zeros(len(ys[0]), bool), np.ones(len(ys[1]), bool)])
        if len(xs) == 2
        else split_mask(len(ys[0]), seed)
    )
    images = np.concatenate(xs).astype(np.float64) / 255.0
    return Dataset("mnist", images, np.concatenate(ys).astype(np.int64), test=test, is_image=True)


def mnist_npz(path: str, seed: int = 0) -> Dataset:
    """MNIST from an .npz with `x_train`, `y_train`, `x_test`, `y_test` (the Keras `mnist.npz` layout);
    pixels / 255, MNIST's own split."""
    from .._io import load_npz_arrays

    a = load_npz_arrays("task.path", path, ("x_train", "y_train", "x_test", "y_test"))
    _check_images_labels("task.path", a["x_train"], a["y_train"])
    _check_images_labels("task.path", a["x_test"], a["y_test"])
    images = np.concatenate([a["x_train"], a["x_test"]]).astype(np.float64) / 255.0
    y = np.concatenate([a["y_train"], a["y_test"]]).astype(np.int64)
    test = np.concatenate([np.zeros(len(a["y_train"]), bool), np.ones(len(a["y_test"]), bool)])
    return Dataset("mnist", images, y, test=test, is_image=True)


def load_npz(path: str, seed: int = 0) -> Dataset:
    """A user dataset: `X` (n, T, channels) or `images` (n, H, W) (values in [0, 1]), `y` (n,) integer
    labels (classification) or float targets (n,) / (n, T) (regression), optional `test` (n,) booleans
    (otherwise a seeded 80/20 split)."""
    check_file_kind("task.path", path, npz=True)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            arrs = {k: np.asarray(z[k]) for k in files & {"X", "images", "y", "test"}}
    except Exception as e:  # noqa: BLE001 - unreadable user file
        raise DiffringError(
            "task.path", str(path), f"could not read it as an .npz archive ({type(e).__name__})"
        ) from None
    if ("X" in arrs) == ("images" in arrs):
        raise DiffringError(
            "task.path", str(path), f"expected exactly one of arrays 'X' or 'images'; found {sorted(files)}"
        )
    if "y" not in arrs:
        raise DiffringError("task.path", str(path), f"expected an array 'y'; found {sorted(files)}")
    x = arrs.get("X", arrs.get("images"))
    y = arrs["y"]
    name = "X" if "X" in arrs else "images"
    if x.dtype.kind not in "biuf" or not np.all(np.isfinite(x)):
        raise DiffringError(f"task.path[{name}]", str(path), "expected finite numbers")
    if name == "X" and x.ndim != 3:
        raise DiffringError("task.path[X]", f"shape {x.shape}", "expected (n, T, channels)")
    if name == "images" and x.ndim != 3:
        raise DiffringError("task.path[images]", f"shape {x.shape}", "expected (n, H, W)")
    n = x.shape[0]
    if n < 2:
        raise DiffringError(f"task.path[{name}]", f"{n} samples", "expected at least 2 (a train and a test sample)")
    if y.dtype.kind in "biu":
        if y.shape != (n,):
            raise DiffringError("task.path[y]", f"integer labels of shape {y.shape}", f"expected ({n},)")
        y = y.astype(np.int64)
        if y.min() < 0:
            raise DiffringError("task.path[y]", int(y.min()), "expected labels >= 0")
    elif y.dtype.kind == "f":
        ok = y.shape == (n,) or (name == "X" and y.shape == (n, x.shape[1]))
        if not ok or not np.all(np.isfinite(y)):
            raise DiffringError(
                "task.path[y]",
                f"float targets of shape {y.shape}",
                f"expected finite ({n},) or, with X, ({n}, T = {x.shape[1] if name == 'X' else 'T'})",
            )
        y = y.astype(np.float64)
    else:
        raise DiffringError("task.path[y]", str(y.dtype), "expected integer labels or float targets")
    if "test" in arrs:
        test = arrs["test"]
        if test.dtype != bool or test.shape != (n,):
            raise DiffringError(
                "task.path[test]", f"{test.dtype} array of shape {test.shape}", f"expected ({n},) booleans"
            )
        if test.all() or not test.any():
            raise DiffringError("task.path[test]", int(test.sum()), "expected both train and test samples")
    else:
        test = split_mask(n, seed)
    prefix = "images" if name == "images" else "series"
    return Dataset(f"{prefix}:{os.path.basename(path)}", x.astype(np.float64), y, test=test, is_image=name == "images")
