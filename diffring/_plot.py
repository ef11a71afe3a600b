"""Plots of a run: probe raster, ring-phase map, order parameter R(t).

Every function takes NumPy arrays and returns `(fig, ax)`. Figures are made with
`matplotlib.figure.Figure` (no pyplot, no global backend switch), so saving to PNG uses the Agg
canvas and works headless; pass `ax=` to draw into an existing axes instead.
"""

from __future__ import annotations

import os

import numpy as np


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


def phase_map(phase, grid=None, valid=None, *, ax=None, title: str = "final ring phases"):
    """Ring phases on the lattice grid (cyclic colormap 'twilight'; grey = no phase yet).

    With a 2-D `grid` the phases are drawn as an image (rings in row-major grid order); otherwise
    as phase against ring index.
    """
    phase = np.asarray(phase, dtype=float)
    mask = np.zeros(phase.shape, bool) if valid is None else ~np.asarray(valid, bool)
    if grid is not None and len(grid) == 2:
        import matplotlib

        fig, ax = _axes(ax, (6, 5))
        cmap = matplotlib.colormaps["twilight"].with_extremes(bad="0.6")
        img = np.ma.masked_array(phase, mask).reshape(tuple(grid))
        im = ax.imshow(img, cmap=cmap, vmin=0.0, vmax=2 * np.pi, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, ticks=[0, np.pi, 2 * np.pi])
        cb.ax.set_yticklabels(["0", "π", "2π"])
        ax.set_xlabel("ring column")
        ax.set_ylabel("ring row")
    else:
        fig, ax = _axes(ax, (8, 3.5))
        idx = np.arange(phase.size)
        ax.scatter(idx[~mask], phase[~mask], s=8, c=phase[~mask], cmap="twilight", vmin=0.0, vmax=2 * np.pi)
        ax.set_ylim(0, 2 * np.pi)
        ax.set_yticks([0, np.pi, 2 * np.pi], ["0", "π", "2π"])
        ax.set_xlabel("ring index")
        ax.set_ylabel("phase")
    ax.set_title(title)
    return fig, ax


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


def save_run_plots(outputs: dict, grid, directory: str, *, max_rows: int = 256) -> list[str]:
    """Write raster.png, phase_map.png and R.png of a run's outputs (member 0 of a batch)."""
    written = []
    batched = outputs["final_v"].ndim == 2
    first = (lambda a: a[0]) if batched else (lambda a: a)

    def save(fig, name):
        path = os.path.join(directory, name)
        fig.savefig(path, dpi=110)
        written.append(name)

    t = outputs["t"]
    if "o" in outputs:
        title = "recorded outputs (black = firing)" + (", member 0" if batched else "")
        save(raster(t, first(outputs["o"]), max_rows=max_rows, title=title)[0], "raster.png")
    if "phase" in outputs:
        title = f"ring phases at t = {float(t[-1]):g}" + (", member 0" if batched else "")
        save(
            phase_map(first(outputs["phase"])[-1], grid, first(outputs["phase_valid"])[-1], title=title)[0],
            "phase_map.png",
        )
        save(order_parameter(t, outputs["R"], outputs.get("C1"))[0], "R.png")
    return written
