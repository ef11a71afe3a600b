"""Plots (`diffring.plot`): domain-wall segments against a NumPy count of wall bonds and their exact
positions for a straight wall, the kymograph image against its input, log-log curves against the
NumPy mean over seeds, the GIF's frame count read back with Pillow, `diffring run`'s plot files and
the `output.animation` option, and bad arguments."""

import math

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import LineCollection
from PIL import Image

import diffring as dr
from diffring import plot


def np_wall_count(theta, valid, periodic, threshold=np.pi / 2):
    """Wall bonds counted directly: wrapped phase difference > threshold between valid neighbours."""
    n = 0
    for a, L in enumerate(theta.shape):
        d = np.roll(theta, -1, axis=a) - theta
        w = np.abs((d + np.pi) % (2 * np.pi) - np.pi) > threshold
        both = valid & np.roll(valid, -1, axis=a)
        if not periodic:
            idx = np.arange(L).reshape([-1 if i == a else 1 for i in range(theta.ndim)])
            both = both & (idx < L - 1)
        n += int((w & both).sum())
    return n


def walls_of(ax):
    cols = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(cols) == 1
    return np.asarray(cols[0].get_segments()).reshape(-1, 2, 2)


@pytest.mark.parametrize("periodic", [True, False])
def test_straight_wall_segments_lie_between_the_two_domains(periodic, rng):
    rows, cols, x0 = 9, 14, 5
    theta = np.where(np.arange(cols)[None] < x0, 0.4, 0.4 + np.pi) + rng.uniform(-0.4, 0.4, (rows, cols))
    theta = np.mod(theta, 2 * np.pi)
    _, ax = plot.phase_map(theta.reshape(-1), (rows, cols), walls=True, periodic=periodic)
    segs = walls_of(ax)
    n_expected = 2 * rows if periodic else rows  # the periodic seam is a second wall
    assert len(segs) == n_expected == np_wall_count(theta, np.ones_like(theta, bool), periodic)
    # every segment is a vertical unit edge at x = x0 - 1/2 (or the seam at cols - 1/2), one per row
    assert np.all(segs[:, 0, 0] == segs[:, 1, 0]) and np.all(segs[:, 1, 1] - segs[:, 0, 1] == 1)
    xs = sorted(set(segs[:, 0, 0].tolist()))
    assert xs == ([x0 - 0.5, cols - 0.5] if periodic else [x0 - 0.5])
    assert sorted(segs[segs[:, 0, 0] == x0 - 0.5][:, 0, 1].tolist()) == [r - 0.5 for r in range(rows)]


@pytest.mark.parametrize("periodic", [True, False])
def test_wall_segments_equal_a_numpy_count_of_wall_bonds(periodic, rng):
    shape = (11, 13)
    theta = rng.uniform(0, 2 * np.pi, shape)
    valid = rng.uniform(size=shape) > 0.2
    _, ax = plot.phase_map(theta, None, valid, walls=True, periodic=periodic)
    segs = walls_of(ax)
    assert len(segs) == np_wall_count(theta, valid, periodic) > 0
    # invalid rings are masked (grey) in the image
    img = ax.images[0].get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(img), ~valid)
    # no segment touches an invalid ring: each edge's two rings are valid
    for (xa, ya), (xb, yb) in segs:
        if xa == xb:  # vertical edge between columns x - 1/2 and x + 1/2 on row y
            r, c = int(round((ya + yb) / 2)), int(xa - 0.5)
            assert valid[r, c] and valid[r, (c + 1) % shape[1]]
        else:
            r, c = int(ya - 0.5), int(round((xa + xb) / 2))
            assert valid[r, c] and valid[(r + 1) % shape[0], c]


def test_chain_walls_are_vertical_lines_between_rings():
    theta = np.array([0.1, 0.2, 0.1 + np.pi, 0.2 + np.pi, 0.15, 0.1])
    _, ax = plot.phase_map(theta, (6,), walls=True, periodic=False)
    segs = walls_of(ax)
    np.testing.assert_array_equal(sorted(segs[:, 0, 0]), [1.5, 3.5])
    assert np.all(segs[:, 0, 1] == 0) and np.allclose(segs[:, 1, 1], 2 * np.pi)


def test_kymograph_image_equals_its_input(rng):
    t = np.linspace(0, 50, 26)
    phases = rng.uniform(0, 2 * np.pi, (26, 17))
    valid = rng.uniform(size=phases.shape) > 0.1
    _, ax = plot.kymograph(t, phases, valid)
    img = ax.images[0].get_array()
    np.testing.assert_array_equal(np.ma.getdata(img), phases)
    np.testing.assert_array_equal(np.ma.getmaskarray(img), ~valid)
    assert ax.images[0].get_extent() == [-0.5, 16.5, 0.0, 50.0]  # rings along x, t along y
    assert ax.images[0].origin == "lower"


def test_log_series_plots_the_mean_over_seeds_on_log_axes(rng):
    t = np.arange(0.0, 40.0)
    xi = np.exp(rng.normal(0, 0.1, (5, 40))) * np.sqrt(t + 1)
    R = np.linspace(0.1, 0.9, 40)
    _, ax = plot.log_series(t, {"xi": xi, "R": R}, ylabel="xi")
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    line_xi, line_R = ax.get_lines()
    np.testing.assert_array_equal(line_xi.get_xdata(), t[1:])  # t = 0 has no place on log axes
    np.testing.assert_allclose(line_xi.get_ydata(), xi.mean(axis=0)[1:], rtol=0, atol=1e-15)
    np.testing.assert_allclose(line_R.get_ydata(), R[1:], rtol=0, atol=0)
    # one band (the seeds' mean +- std), bounded by the NumPy values
    (band,) = ax.collections
    ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
    sd = xi.std(axis=0)[1:]
    assert ys.min() == pytest.approx((xi.mean(axis=0)[1:] - sd).min())
    assert ys.max() == pytest.approx((xi.mean(axis=0)[1:] + sd).max())


def test_log_series_with_nothing_positive_keeps_linear_axes_and_says_so():
    """R = 0 at every record (a run too short for a ring phase) has no point on log axes: the
    curve has no finite point, the axes stay linear (log scaling would raise) and a note says why."""
    _, ax = plot.log_series(np.arange(0.0, 5.0), {"R": np.zeros(5)})
    assert ax.get_xscale() == "linear" and ax.get_yscale() == "linear"
    assert not np.isfinite(ax.get_lines()[0].get_ydata()).any()
    assert any("nothing to draw" in text.get_text() for text in ax.texts)


@pytest.mark.parametrize(
    "name, over",
    [
        ("ring_20_steps", ["network.kind=ring", "run.n_steps=20", "record.every=10"]),
        ("open_chain_of_one", ["network.kind=chain", "network.n=1", "network.boundary=open", "run.n_steps=200",
                               "record.every=10"]),
    ],
)
def test_short_or_one_ring_runs_write_every_plot(tmp_path, name, over):
    """A 20-step ring run has R = 0 at every record; an open chain of one ring has C(Delta) at
    Delta = 0 only, so no nearest-neighbour correlation C1. Both runs finish and write their plots."""
    from diffring._config import apply_overrides, resolve
    from diffring._run import run

    summary = run(resolve(apply_overrides(dict(resolve()), over)), str(tmp_path / name), progress=False)
    outputs = dict(np.load(tmp_path / name / "outputs.npz"))
    assert summary["status"] == "ok"
    assert {"R.png", "growth.png", "phase_map.png"} <= set(summary["plots"])
    if name == "ring_20_steps":
        assert np.all(outputs["R"] == 0)
    else:
        assert outputs["C"].shape[-1] == 1 and "C1" not in outputs and summary["C1_final"] is None


def test_gif_has_one_frame_per_phase_map(tmp_path, rng):
    F, shape = 7, (10, 12)
    frames = np.stack([np.mod(rng.uniform(0, 2 * np.pi, shape) + f, 2 * np.pi) for f in range(F)])
    valid = np.ones(frames.shape, bool)
    valid[0, :3] = False
    path = plot.animate_phase_maps(frames, np.arange(F) * 10.0, str(tmp_path / "maps.gif"), valid=valid, fps=5)
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == F
        assert im.info["duration"] == 200  # 5 frames per second


def test_mp4_without_ffmpeg_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(dr.DiffringError, match="ffmpeg"):
        plot.animate_phase_maps(np.zeros((2, 4, 4)), np.arange(2.0), str(tmp_path / "a.mp4"))


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: plot.phase_map(np.zeros(12), (5, 3)), "grid"),
        (lambda: plot.phase_map(np.zeros(12), (3, 4), np.ones(5, bool)), "valid"),
        (lambda: plot.phase_map(np.zeros(12), (3, 4), walls=True, threshold=-1.0), "threshold"),
        (lambda: plot.kymograph(np.arange(3.0), np.zeros((4, 5))), "phases"),
        (lambda: plot.kymograph(np.arange(4.0), np.zeros(5)), "phases"),
        (lambda: plot.log_series(np.arange(4.0), {}), "ys"),
        (lambda: plot.log_series(np.arange(4.0), {"xi": np.ones(5)}), "ys['xi']"),
        (lambda: plot.animate_phase_maps(np.zeros((3, 4)), np.arange(3.0), "a.gif"), "frames"),
        (lambda: plot.animate_phase_maps(np.zeros((3, 4, 4)), np.arange(2.0), "a.gif"), "t"),
        (lambda: plot.animate_phase_maps(np.zeros((3, 4, 4)), np.arange(3.0), "a.png"), "path"),
        (lambda: plot.animate_phase_maps(np.zeros((3, 4, 4)), np.arange(3.0), "a.gif", fps=0), "fps"),
    ],
)
def test_bad_arguments_raise_diffring_errors(call, field):
    with pytest.raises(dr.DiffringError) as e:
        call()
    assert e.value.field == field


def test_run_writes_walls_growth_and_gif(tmp_path):
    """A small `diffring run` with `output.animation: false` writes no GIF; its outputs drawn by
    `save_run_plots` give a phase_maps.gif with one frame per record (<= 60), and the walls drawn
    on the final phase map are the ones the on-the-fly observables counted."""
    from diffring._config import apply_overrides, resolve
    from diffring._plot import save_run_plots
    from diffring._run import run

    over = ["network.shape=[8,8]", "run.n_steps=1200", "record.every=100", "run.segments=1", "output.animation=false"]
    cfg = resolve(apply_overrides(dict(resolve()), over))
    summary = run(cfg, str(tmp_path / "a"), progress=False)
    assert {"phase_map.png", "growth.png", "R.png"} <= set(summary["plots"])
    assert "phase_maps.gif" not in summary["plots"] and not (tmp_path / "a" / "phase_maps.gif").exists()
    outputs = dict(np.load(tmp_path / "a" / "outputs.npz"))
    (tmp_path / "b").mkdir()
    written = save_run_plots(outputs, (8, 8), str(tmp_path / "b"), animation=True)
    assert "phase_maps.gif" in written
    with Image.open(tmp_path / "b" / "phase_maps.gif") as im:
        assert im.n_frames == summary["n_records"] == 13
    theta, valid = outputs["phase"][-1].reshape(8, 8), outputs["phase_valid"][-1].reshape(8, 8)
    _, ax = plot.phase_map(theta, None, valid, walls=True)  # what phase_map.png draws
    n_bonds = sum(int((valid & np.roll(valid, -1, axis=a)).sum()) for a in range(2))
    assert len(walls_of(ax)) == np_wall_count(theta, valid, True)
    assert summary["wall_density_final"] == pytest.approx(len(walls_of(ax)) / n_bonds, abs=1e-12)
    with pytest.raises(dr.DiffringError) as e:
        resolve(apply_overrides(dict(cfg), ["output.animation=maybe"]))
    assert "animation" in e.value.field


def test_phase_map_uses_a_cyclic_colormap():
    _, ax = plot.phase_map(np.linspace(0, 2 * np.pi, 16, endpoint=False), (4, 4))
    cmap = ax.images[0].get_cmap()
    assert np.allclose(cmap(0.0), cmap(1.0), atol=0.02)  # the two ends of the phase circle match
    assert matplotlib.colors.same_color(cmap.get_bad(), "0.6")
    assert math.isclose(ax.images[0].norm.vmax, 2 * np.pi)
