"""Statistics for the experiments: growth-law fits with a bootstrap over seeds, the growth window,
steady-state estimates with a plateau check, and ratios of means with bootstrap CIs (pure NumPy,
tested on synthetic data with known answers in tests/test_experiments.py)."""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import Float

from ._errors import DiffringError


def _boot_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def fit_power_law(
    t: Float[np.ndarray, " T"],  # noqa: F722
    y: Float[np.ndarray, "S T"],  # noqa: F722
    window: tuple[float, float],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """Fit y ~ A t^z to the seed mean of `y` (seeds x times) over t in `window` (least squares of
    log mean y on log t), with a bootstrap over seeds (resample rows, refit) for the uncertainty.

    Also fits the logarithmic law y = a + b ln t on the same points and reports both RMS residuals
    of log y, so the better law can be named. Returns z, z_err (bootstrap std), z_ci (2.5-97.5 %),
    A, rms_power, a, b, rms_log, better ('power' or 'log'), n_points, window.
    """
    t, y = np.asarray(t, float), np.atleast_2d(np.asarray(y, float))
    sel = (t >= window[0]) & (t <= window[1]) & (t > 0)
    if sel.sum() < 3:
        raise DiffringError("window", list(window), f"needs >= 3 record times inside (has {int(sel.sum())})")
    lt = np.log(t[sel])

    def power(m):
        if np.any(m <= 0):
            return np.nan, np.nan
        z, c = np.polyfit(lt, np.log(m), 1)
        return z, c

    m = y[:, sel].mean(0)
    z, c = power(m)
    boots = np.array([power(y[i][:, sel].mean(0))[0] for i in _boot_indices(y.shape[0], n_boot, seed)])
    boots = boots[np.isfinite(boots)]
    b, a = np.polyfit(lt, m, 1)
    pred_log = a + b * lt
    rms_power = float(np.sqrt(np.mean((np.log(m) - (c + z * lt)) ** 2))) if np.all(m > 0) else math.nan
    ok_log = np.all(pred_log > 0) and np.all(m > 0)
    rms_log = float(np.sqrt(np.mean((np.log(m) - np.log(pred_log)) ** 2))) if ok_log else math.inf
    return {
        "z": float(z),
        "z_err": float(np.std(boots, ddof=1)) if boots.size > 1 else math.nan,
        "z_ci": [float(q) for q in np.percentile(boots, [2.5, 97.5])] if boots.size else [math.nan, math.nan],
        "A": float(np.exp(c)),
        "rms_power": rms_power,
        "a": float(a),
        "b": float(b),
        "rms_log": rms_log,
        "better": "power" if rms_power <= rms_log else "log",
        "n_points": int(sel.sum()),
        "window": [float(t[sel][0]), float(t[sel][-1])],
    }


def growth_window(t, y_mean, *, t_min: float, y_min: float, y_max: float) -> tuple[float, float] | None:
    """The growth window: from the first record at t >= t_min with y >= y_min up to the last record
    before y first reaches y_max (saturation at the system size). None if under 3 points."""
    t, y = np.asarray(t, float), np.asarray(y_mean, float)
    ok = (t >= t_min) & (y >= y_min)
    if not ok.any():
        return None
    i0 = int(np.argmax(ok))
    over = np.flatnonzero((y >= y_max) & (np.arange(t.size) >= i0))
    i1 = int(over[0]) - 1 if over.size else t.size - 1
    if i1 - i0 + 1 < 3:
        return None
    return float(t[i0]), float(t[i1])


def steady_state(t, y, *, frac: float = 0.2, tol: float = 0.05) -> dict:
    """Steady-state value of y (seeds x times) = mean over the last `frac` of the run, per seed.

    Plateau check: the seed-mean over the last window is compared with the window before it (same
    length): `drift` = (last - previous) / |last|, with `drift_sem` its standard error from the
    per-seed differences; `plateau` is |drift| <= tol; `drift_significant` is |drift| > 2 drift_sem
    (a drift the seeds resolve, however small). Returns mean, sem (over seeds), per_seed, prev_mean,
    prev_per_seed, drift, drift_sem, plateau, drift_significant, window, prev_window.
    """
    t, y = np.asarray(t, float), np.atleast_2d(np.asarray(y, float))
    T = t.size
    n = max(1, int(round(frac * T)))
    last, prev = y[:, T - n :], y[:, max(0, T - 2 * n) : T - n]
    per_seed = last.mean(1)
    mu = float(per_seed.mean())
    prev_mu = float(prev.mean()) if prev.size else math.nan
    drift = (mu - prev_mu) / abs(mu) if mu != 0 else (0.0 if prev_mu == 0 else math.inf)
    S = per_seed.size
    prev_per_seed = prev.mean(1) if prev.size else None
    diff = per_seed - prev_per_seed if prev.size else np.full(S, math.nan)
    drift_sem = float(diff.std(ddof=1) / math.sqrt(S) / abs(mu)) if S > 1 and mu != 0 else math.nan
    return {
        "mean": mu,
        "sem": float(per_seed.std(ddof=1) / math.sqrt(S)) if S > 1 else math.nan,
        "per_seed": [float(v) for v in per_seed],
        "prev_mean": prev_mu,
        "prev_per_seed": None if prev_per_seed is None else [float(v) for v in prev_per_seed],
        "drift": float(drift),
        "drift_sem": drift_sem,
        "plateau": bool(abs(drift) <= tol),
        "drift_significant": bool(abs(drift) > 2 * drift_sem) if drift_sem > 0 else bool(drift != 0 and S > 1),
        "window": [float(t[T - n]), float(t[-1])],
        "prev_window": [float(t[max(0, T - 2 * n)]), float(t[T - n - 1])] if prev.size else None,
    }


def ratio_ci(a, b, *, n_boot: int = 4000, seed: int = 0, level: float = 0.95) -> dict:
    """Ratio of means mean(a) / mean(b) of two independent samples with a percentile bootstrap CI
    (`lo`, `hi`) and the bootstrap standard deviation (`err`)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    ra = a[rng.integers(0, a.size, (n_boot, a.size))].mean(1)
    rb = b[rng.integers(0, b.size, (n_boot, b.size))].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = ra / rb
    lo, hi = np.nanpercentile(r, [50 * (1 - level), 50 * (1 + level)])
    return {
        "ratio": float(a.mean() / b.mean()) if b.mean() != 0 else math.inf,
        "err": float(np.nanstd(r[np.isfinite(r)], ddof=1)) if np.isfinite(r).sum() > 1 else math.nan,
        "lo": float(lo),
        "hi": float(hi),
    }
