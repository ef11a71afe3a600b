"""Plots of ring networks: probe raster, ring-phase maps with domain walls, kymographs of chains,
order parameters, log-log growth curves (xi(t), R(t), with a band over seeds), and a GIF of the
phase map over time. Reachable as `diffring.plot`.

Every function takes NumPy (or JAX) arrays and returns `(fig, ax)` (`animate_phase_maps` returns the
path it wrote). Figures are made with `matplotlib.figure.Figure` (no pyplot, no global backend
switch), so saving uses the Agg canvas and works headless; pass `ax=` to draw into an existing axes.
Phases use the cyclic colormap "twilight" on [0, 2 pi); rings without a phase are grey. Domain walls
are the bonds of `diffring.wall_bonds`, drawn as the cell edge between the two rings.
"""

from __future__ import annotations

import math
import os
import shutil

import numpy as np

from ._errors import DiffringError, check_float, check_int

TWO_PI = 2 * np.pi
WALL_STYLE = dict(colors="k", linewidths=1.2)


def _axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def raster(t, o, *, max_rows: int = 256, ax=None, title: str = "recorded outputs (black = firing)"):
    """Outputs `o` (n_records, n_neurons) as an image, time along x; at most `max_rows` neurons
    (evenly subsampled) so that large networks stay readable."""
    t, o = np.asarray(t), np.asarray(o)
    fig, ax = _axes(ax, (8, 4))
    rows = np.unique(np.linspace(0, o.shape[1] - 1, min(max_rows, o.shape[1])).round().astype(int))
    t_lo, t_hi = (float(t[0]), float(t[-1])) if t.size > 1 else (float(t[0]), float(t[0]) + 1.0)
    ax.imshow(
        o[:, rows].T,
        aspect="auto",
        cmap="gray",
        vmin=0,
        vmax=1,
        interpolation="nearest",
        extent=(t_lo, t_hi, len(rows) - 0.5, -0.5),
    )
    ax.set_xlabel("t")
    ax.set_ylabel("recorded neuron" + (f" (every {o.shape[1] // len(rows)}th)" if len(rows) < o.shape[1] else ""))
    ax.set_title(title)
    return fig, ax


def _as_float(field, x, ndims):
    a = np.asarray(x, dtype=float)
    if a.ndim not in ndims:
        raise DiffringError(field, f"array of shape {a.shape}", f"expected {' or '.join(f'{d}-D' for d in ndims)}")
    return a


def _grid_of(phase, grid):
    """The phase field's grid as a tuple (1-D: (n,)); checks that it matches the field's size."""
    if grid is None:
        return (phase.size,)
    grid = tuple(int(check_int("grid[]", g, minimum=1)) for g in grid)
    if len(grid) not in (1, 2) or math.prod(grid) != phase.size:
        raise DiffringError("grid", grid, f"expected a 1-D or 2-D grid with prod(grid) = {phase.size} rings")
    return grid


def _mask(valid, shape, field="valid"):
    if valid is None:
        return np.zeros(shape, bool)
    v = np.asarray(valid)
    if v.size != math.prod(shape):
        raise DiffringError(field, f"array of shape {v.shape}", f"expected {math.prod(shape)} entries (one per ring)")
    return ~v.astype(bool).reshape(shape)


def wall_segments(phase, grid=None, valid=None, *, k=None, threshold: float = np.pi / 2, periodic: bool = True):
    """Line segments (n_walls, 2, 2) in (x, y) data coordinates of the domain walls of a phase field:
    one per wall bond of `diffring.wall_bonds`, the cell edge between the two rings (x = column,
    y = row on a 2-D grid; on a 1-D grid x = ring index and y spans [0, 2 pi]). Wrapping bonds of a
    periodic grid are drawn on the far edge."""
    import jax.numpy as jnp

    from ._observables import wall_bonds

    phase = _as_float("phase", phase, (1, 2))
    grid = _grid_of(phase, phase.shape if grid is None and phase.ndim == 2 else grid)
    threshold = check_float("threshold", threshold, nonnegative=True)
    th = jnp.asarray(phase.reshape(grid))
    ok = None if valid is None else jnp.asarray(~_mask(valid, grid))
    kk = None if k is None else jnp.asarray(np.asarray(k).reshape(grid), jnp.int32)
    walls = np.asarray(wall_bonds(th, ok, k=kk, threshold=threshold, ndim=len(grid), periodic=bool(periodic)))
    if len(grid) == 1:
        x = np.flatnonzero(walls[0]) + 0.5
        return np.stack([np.stack([x, 0 * x], -1), np.stack([x, 0 * x + TWO_PI], -1)], 1)
    i, j = np.nonzero(walls[0])  # bond (i, j) -> (i + 1, j): the horizontal edge below ring (i, j)
    rows = np.stack([np.stack([j - 0.5, i + 0.5], -1), np.stack([j + 0.5, i + 0.5], -1)], 1)
    i, j = np.nonzero(walls[1])  # bond (i, j) -> (i, j + 1): the vertical edge right of ring (i, j)
    cols = np.stack([np.stack([j + 0.5, i - 0.5], -1), np.stack([j + 0.5, i + 0.5], -1)], 1)
    return np.concatenate([rows, cols]).astype(float).reshape(-1, 2, 2)


def _phase_cmap():
    import matplotlib

    return matplotlib.colormaps["twilight"].with_extremes(bad="0.6")


def phase_map(
    phase,
    grid=None,
    valid=None,
    *,
    walls: bool = False,
    k=None,
    threshold: float = np.pi / 2,
    periodic: bool = True,
    ax=None,
    title: str = "final ring phases",
):
    """Ring phases on the lattice grid (cyclic colormap; grey = no phase yet), optionally with the
    domain walls (`walls=True`: `wall_segments`, black lines; `k` also marks pulse-count walls).

    With a 2-D `grid` the phases are drawn as an image (rings in row-major grid order); otherwise
    as phase against ring index, walls as vertical lines. The walls are in `ax.collections[-1]`.
    """
    from matplotlib.collections import LineCollection

    phase = _as_float("phase", phase, (1, 2))
    grid = _grid_of(phase, phase.shape if grid is None and phase.ndim == 2 else grid)
    phase = phase.reshape(-1)
    mask = _mask(valid, (phase.size,))
    if len(grid) == 2:
        fig, ax = _axes(ax, (6, 5))
        img = np.ma.masked_array(phase, mask).reshape(grid)
        im = ax.imshow(img, cmap=_phase_cmap(), vmin=0.0, vmax=TWO_PI, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, ticks=[0, np.pi, TWO_PI])
        cb.ax.set_yticklabels(["0", "π", "2π"])
        ax.set_xlabel("ring column")
        ax.set_ylabel("ring row")
    else:
        fig, ax = _axes(ax, (8, 3.5))
        idx = np.arange(phase.size)
        ax.scatter(idx[~mask], phase[~mask], s=8, c=phase[~mask], cmap="twilight", vmin=0.0, vmax=TWO_PI)
        ax.set_ylim(0, TWO_PI)
        ax.set_yticks([0, np.pi, TWO_PI], ["0", "π", "2π"])
        ax.set_xlabel("ring index")
        ax.set_ylabel("phase")
    if walls:
        segs = wall_segments(phase, grid, valid, k=k, threshold=threshold, periodic=periodic)
        ax.add_collection(LineCollection(segs, **WALL_STYLE, label=f"domain walls ({len(segs)} bonds)"))
    ax.set_title(title)
    return fig, ax


def kymograph(t, phases, valid=None, *, ax=None, title: str = "ring phases (kymograph)"):
    """Phases of a 1-D chain over time as an image: ring index along x, time t along y (upwards),
    cyclic colormap, grey where a ring has no phase. `phases` (n_records, n_rings), `t` (n_records,)."""
    t = _as_float("t", t, (1,))
    phases = _as_float("phases", phases, (2,))
    if phases.shape[0] != t.shape[0]:
        raise DiffringError(
            "phases", f"array of shape {phases.shape}", f"expected {t.shape[0]} rows, one per time in t"
        )
    img = np.ma.masked_array(phases, _mask(valid, phases.shape))
    fig, ax = _axes(ax, (7, 4.5))
    t_lo, t_hi = (float(t[0]), float(t[-1])) if t.size > 1 else (float(t[0]), float(t[0]) + 1.0)
    im = ax.imshow(
        img,
        aspect="auto",
        origin="lower",
        cmap=_phase_cmap(),
        vmin=0.0,
        vmax=TWO_PI,
        interpolation="nearest",
        extent=(-0.5, phases.shape[1] - 0.5, t_lo, t_hi),
    )
    cb = fig.colorbar(im, ax=ax, ticks=[0, np.pi, TWO_PI])
    cb.ax.set_yticklabels(["0", "π", "2π"])
    ax.set_xlabel("ring index")
    ax.set_ylabel("t")
    ax.set_title(title)
    return fig, ax


def log_series(t, ys: dict, *, ax=None, ylabel: str = "", band: bool = True, title: str = ""):
    """Curves y(t) on log-log axes, one per `ys` label. A (T,) array is one curve; an (S, T) array
    (S seeds) is drawn as its mean over seeds and, with `band`, a shaded mean +- one standard
    deviation. Points with t <= 0 or y <= 0 are left out (they have no place on log axes); if that
    leaves nothing (e.g. R = 0 at every record of a short run), the axes stay linear and say so."""
    t = _as_float("t", t, (1,))
    if not isinstance(ys, dict) or not ys:
        raise DiffringError("ys", type(ys).__name__, "expected a non-empty dict label -> (T,) or (S, T) array")
    fig, ax = _axes(ax, (6, 4))
    keep = t > 0
    drawn = False
    for i, (label, y) in enumerate(ys.items()):
        y = _as_float(f"ys[{label!r}]", y, (1, 2))
        if y.shape[-1] != t.shape[0]:
            raise DiffringError(
                f"ys[{label!r}]", f"array of shape {y.shape}", f"expected last axis {t.shape[0]} = len(t)"
            )
        color = f"C{i % 10}"
        if y.ndim == 1:
            mean, lo, hi, name = y, None, None, str(label)
        else:
            mean, sd = y.mean(axis=0), y.std(axis=0)
            lo, hi, name = mean - sd, mean + sd, f"{label} (mean of {y.shape[0]})"
        pos = lambda a: np.where(a > 0, a, np.nan)  # noqa: E731
        drawn |= bool(np.any(np.isfinite(pos(mean[keep]))))
        ax.plot(t[keep], pos(mean[keep]), color=color, lw=1.8, label=name)
        if band and lo is not None:
            ax.fill_between(t[keep], pos(np.maximum(lo[keep], 0)), pos(hi[keep]), color=color, alpha=0.25, lw=0)
    if drawn:
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no positive values at t > 0: nothing to draw on log axes", transform=ax.transAxes,
                ha="center", va="center")
    ax.set_xlabel("t")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig, ax


def animate_phase_maps(
    frames,
    t,
    path: str,
    *,
    valid=None,
    fps: int = 10,
    walls: bool = True,
    periodic: bool = True,
    threshold: float = np.pi / 2,
    dpi: int = 80,
    title: str = "ring phases",
) -> str:
    """Write an animation of 2-D phase maps `frames` (F, rows, cols) at times `t` (F,) to `path`:
    a GIF (matplotlib's PillowWriter) or, if ffmpeg is installed, an MP4. Domain walls as in
    `phase_map`; `valid` (F, rows, cols) greys out rings without a phase. Returns `path`.
    (GIF readers may merge identical consecutive frames.)"""
    from matplotlib import animation
    from matplotlib.collections import LineCollection

    frames = _as_float("frames", frames, (3,))
    t = _as_float("t", t, (1,))
    if frames.shape[0] != t.shape[0] or frames.shape[0] < 1:
        raise DiffringError("t", f"{t.shape[0]} times", f"expected one time per frame ({frames.shape[0]} frames)")
    fps = check_int("fps", fps, minimum=1)
    dpi = check_int("dpi", dpi, minimum=10)
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in (".gif", ".mp4"):
        raise DiffringError("path", str(path), "expected a file name ending in .gif or .mp4")
    if ext == ".mp4":
        if shutil.which("ffmpeg") is None:
            raise DiffringError("path", str(path), "MP4 needs ffmpeg on PATH (not found): write a .gif instead")
        writer = animation.FFMpegWriter(fps=fps)
    else:
        writer = animation.PillowWriter(fps=fps)
    F, grid = frames.shape[0], frames.shape[1:]
    masks = _mask(valid, frames.shape, "valid") if valid is not None else np.zeros(frames.shape, bool)
    fig, ax = phase_map(frames[0].reshape(-1), grid, ~masks[0].reshape(-1), title=f"{title}, t = {t[0]:g}")
    im = ax.images[0]
    lc = LineCollection(np.zeros((0, 2, 2)), **WALL_STYLE)
    ax.add_collection(lc)
    with writer.saving(fig, str(path), dpi):
        for f in range(F):
            im.set_data(np.ma.masked_array(frames[f], masks[f]))
            if walls:
                lc.set_segments(wall_segments(frames[f], grid, ~masks[f], threshold=threshold, periodic=periodic))
            ax.set_title(f"{title}, t = {t[f]:g}")
            writer.grab_frame()
    return str(path)


def order_parameter(t, R, C1=None, *, ax=None, title: str = "order parameters"):
    """Global Kuramoto R(t) and, if given, the nearest-neighbour phase correlation C1(t); with a
    batch (B, n_records) one thin line per member and a thick line for their mean."""
    t = np.asarray(t)
    fig, ax = _axes(ax, (7, 3.5))
    for y, name, color in ((R, "global R", "C0"), (C1, "neighbour correlation C1", "C3")):
        if y is None:
            continue
        y = np.asarray(y)
        if y.ndim == 2:
            for m in y:
                ax.plot(t, m, lw=0.6, alpha=0.35, color=color)
            ax.plot(t, y.mean(axis=0), lw=2, color=color, label=f"{name} (mean of {y.shape[0]})")
        else:
            ax.plot(t, y, lw=1.5, color=color, label=name)
    ax.set_ylim(min(0.0, float(np.min(C1)) if C1 is not None else 0.0), 1.02)
    ax.axhline(0, color="0.7", lw=0.5)
    ax.legend(loc="upper right", fontsize="small")
    ax.set_xlabel("t")
    ax.set_ylabel("order")
    ax.set_title(title)
    return fig, ax


def save_run_plots(
    outputs: dict, grid, directory: str, *, max_rows: int = 256, periodic: bool = True, animation: bool = True
) -> list[str]:
    """Write the PNGs of a run's outputs (member 0 of a batch for maps): raster.png, phase_map.png
    (final phases with domain walls), R.png (R and C1, linear), growth.png (R(t) and xi(t) on log-log
    axes; a batch as mean and band), kymograph.png (chains), and with `animation` phase_maps.gif
    (2-D grids recorded at >= 2 records; at most 40 frames, evenly spaced). Returns the file names."""
    written = []
    batched = outputs["final_v"].ndim == 2
    first = (lambda a: a[0]) if batched else (lambda a: a)
    member = ", member 0" if batched else ""

    def save(fig, name):
        path = os.path.join(directory, name)
        fig.savefig(path, dpi=110)
        written.append(name)

    t = outputs["t"]
    if "o" in outputs:
        save(
            raster(t, first(outputs["o"]), max_rows=max_rows, title="recorded outputs (black = firing)" + member)[0],
            "raster.png",
        )
    if "phase" not in outputs:
        return written
    phase, valid = first(outputs["phase"]), first(outputs["phase_valid"])
    title = f"ring phases at t = {float(t[-1]):g}" + member
    fig, _ = phase_map(phase[-1], grid, valid[-1], walls=grid is not None, periodic=periodic, title=title)
    save(fig, "phase_map.png")
    save(order_parameter(t, outputs["R"], outputs.get("C1"))[0], "R.png")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    log_series(t, {"global R": outputs["R"]}, ax=ax1, ylabel="R", title="order parameter (log-log)")
    if "xi" in outputs:
        log_series(t, {"xi (exp. fit)": outputs["xi"]}, ax=ax2, ylabel="xi (rings)", title="correlation length")
    else:
        ax2.set_axis_off()
    save(fig, "growth.png")
    if grid is not None and len(grid) == 1:
        save(kymograph(t, phase, valid, title="ring phases" + member)[0], "kymograph.png")
    if animation and grid is not None and len(grid) == 2 and t.shape[0] >= 2:
        idx = np.unique(np.linspace(0, t.shape[0] - 1, min(t.shape[0], 40)).round().astype(int))
        frames = phase[idx].reshape((len(idx),) + tuple(grid))
        animate_phase_maps(
            frames,
            t[idx],
            os.path.join(directory, "phase_maps.gif"),
            valid=valid[idx].reshape(frames.shape),
            periodic=periodic,
            title="ring phases" + member,
        )
        written.append("phase_maps.gif")
    return written
