"""Experiments runner (diffring._experiments): statistics on synthetic data with known answers, and
one small experiment end to end whose reported numbers are recomputed independently from data.npz."""

import json
import math

import numpy as np
import pytest

from diffring._cli import main
from diffring._experiments import (
    EXPERIMENTS,
    E4Sharing,
    fit_power_law,
    growth_window,
    load_experiment_config,
    ratio_ci,
    staggered_gauge,
    steady_state,
)


def _power_data(rng, z, S=12, amp_sd=0.15, noise=0.05):
    t = np.geomspace(1.0, 200.0, 40)
    amp = np.exp(rng.normal(0.0, amp_sd, (S, 1)))  # seed-to-seed amplitude and exponent scatter
    zs = z + rng.normal(0.0, 0.03, (S, 1))
    y = 1.5 * amp * t**zs * np.exp(rng.normal(0.0, noise, (S, t.size)))
    return t, y


def test_power_law_fit_recovers_exponent_and_its_uncertainty_covers_it(rng):
    z_true = 0.45
    covered, errs, zs = 0, [], []
    n = 40
    for _ in range(n):
        t, y = _power_data(rng, z_true)
        f = fit_power_law(t, y, (2.0, 150.0), n_boot=400, seed=int(rng.integers(1 << 30)))
        zs.append(f["z"])
        errs.append(f["z_err"])
        covered += f["z_ci"][0] <= z_true <= f["z_ci"][1]
        assert f["better"] == "power"
    zs, errs = np.array(zs), np.array(errs)
    assert abs(zs.mean() - z_true) < 3 * zs.std(ddof=1) / math.sqrt(n)
    # the bootstrap error is the actual scatter of the estimate across independent data sets
    assert 0.6 < errs.mean() / zs.std(ddof=1) < 1.6
    assert covered >= 0.8 * n  # nominal 95 % CI; seed bootstraps with 12 seeds are a little narrow


def test_log_law_is_preferred_for_logarithmic_growth(rng):
    t = np.geomspace(1.0, 500.0, 50)
    y = (2.0 + 3.0 * np.log(t)) * np.exp(rng.normal(0.0, 0.01, (8, t.size)))
    f = fit_power_law(t, y, (1.0, 500.0), n_boot=100)
    assert f["better"] == "log"
    assert f["b"] == pytest.approx(3.0, rel=0.03)
    assert f["a"] == pytest.approx(2.0, abs=0.15)


def test_growth_window_stops_before_saturation():
    t = np.arange(0.0, 100.0)
    y = np.minimum(0.5 * t, 20.0)
    assert growth_window(t, y, t_min=3.0, y_min=2.0, y_max=16.0) == (4.0, 31.0)
    assert growth_window(t, np.zeros_like(t), t_min=3.0, y_min=1.0, y_max=16.0) is None


def test_steady_state_on_synthetic_plateau(rng):
    t = np.linspace(0.0, 1000.0, 501)
    S, y_inf = 10, 12.0
    y = y_inf * (1 - np.exp(-t / 50.0)) + rng.normal(0.0, 0.5, (S, t.size))
    s = steady_state(t, y, frac=0.2, tol=0.05)
    n = round(0.2 * t.size)
    per_seed = y[:, -n:].mean(1)
    assert s["mean"] == pytest.approx(per_seed.mean(), rel=1e-12)
    assert s["sem"] == pytest.approx(per_seed.std(ddof=1) / math.sqrt(S), rel=1e-12)
    assert abs(s["mean"] - y_inf) < 4 * s["sem"]
    assert s["plateau"]
    assert s["window"] == [t[-n], t[-1]]
    grow = 3.0 * np.sqrt(t + 1)[None, :] * np.ones((S, 1))
    g = steady_state(t, grow, frac=0.2, tol=0.05)
    assert not g["plateau"] and g["drift"] > 0.05


def test_steady_state_drift_error_is_the_scatter_of_the_drift(rng):
    # slowly growing y per seed (drift ~ 0.09 between the last two 20 % windows) with seed-to-seed
    # offsets: drift_sem must match the spread of the drift over independent data sets
    t = np.linspace(0.0, 1000.0, 201)
    drifts, errs = [], []
    for _ in range(200):
        S = 8
        y = 10.0 + 0.005 * t + rng.normal(0.0, 1.0, (S, 1)) + rng.normal(0.0, 0.5, (S, t.size))
        s = steady_state(t, y, frac=0.2, tol=0.05)
        n = 40
        last, prev = y[:, -n:].mean(), y[:, -2 * n : -n].mean()
        assert s["drift"] == pytest.approx((last - prev) / last, rel=1e-12)
        assert s["prev_mean"] == pytest.approx(prev, rel=1e-12)
        drifts.append(s["drift"])
        errs.append(s["drift_sem"])
    true = 0.005 * 200 / (10.0 + 0.005 * 900)  # (mean of the last window - previous) / last
    assert abs(np.mean(drifts) - true) < 3 * np.std(drifts) / math.sqrt(len(drifts))
    assert 0.8 < np.mean(errs) / np.std(drifts, ddof=1) < 1.25


def test_drift_significance_flags_a_resolved_trend_and_rarely_noise(rng):
    # |drift| > 2 drift_sem: on a flat signal a false alarm at about the two-sided t_7 rate (8.6 %),
    # on a trend 10 standard errors above 0 always
    t = np.linspace(0.0, 1000.0, 201)
    flat = [
        steady_state(t, 10.0 + rng.normal(0.0, 1.0, (8, 1)) + rng.normal(0.0, 0.5, (8, t.size)))["drift_significant"]
        for _ in range(400)
    ]
    assert 0.04 < np.mean(flat) < 0.14
    y = 10.0 + 0.005 * t + rng.normal(0.0, 0.5, (8, t.size))
    s = steady_state(t, y)
    assert s["drift"] > 10 * s["drift_sem"] and s["drift_significant"]
    assert not steady_state(t, np.full((8, t.size), 3.0))["drift_significant"]


def test_ratio_ci_error_matches_the_delta_method(rng):
    a, b = rng.normal(6.0, 1.0, 40), rng.normal(3.0, 0.5, 40)
    r = ratio_ci(a, b, n_boot=4000, seed=1)
    q = a.mean() / b.mean()
    delta = q * math.hypot(a.std(ddof=1) / a.mean() / math.sqrt(a.size), b.std(ddof=1) / b.mean() / math.sqrt(b.size))
    assert r["err"] == pytest.approx(delta, rel=0.15)


def _e4_synthetic(cfg, rng, xi_s0, s0_ordered=False):
    """E4 data for the small config with known steady states: S0 fluctuates around xi_s0 per seed
    (or, `s0_ordered`, is one domain too), the shared schemes fill the lattice (xi = L, one domain)."""
    Lsys, n = max(cfg["network"]["shape"]), int(np.prod(cfg["network"]["shape"]))
    t = np.linspace(0.0, cfg["t1"], 41)
    S = cfg["seeds"]
    data = {}
    for c in E4Sharing()._conditions(cfg):
        key = E4Sharing._label(c)
        full = c["scheme"] != "S0" or s0_ordered
        xi = np.full((S, t.size), float(Lsys)) if full else xi_s0[:, None] + rng.normal(0.0, 0.01, (S, t.size))
        data |= {
            f"{key}/t": t,
            f"{key}/xi_cross": xi,
            f"{key}/xi_fit": xi,
            f"{key}/mean_domain_size": np.full((S, t.size), float(n if full else 5.0)),
            f"{key}/largest_domain": np.full((S, t.size), float(n if full else 20.0)),
            f"{key}/wall_density": np.full((S, t.size), 0.0 if full else 0.3),
            f"{key}/C1": np.full((S, t.size), 1.0 if full else 0.3),
            f"{key}/valid_frac": np.ones((S, 3)),
            f"{key}/status": np.zeros(S, int),
            f"{key}/snap_phase": np.zeros(n),
        }
    return data


def test_e4_answer_on_synthetic_data_with_a_known_factor(rng):
    cfg = load_experiment_config("E4_sharing", small=True)
    cfg["pairs"] = [["S1 N=8 s=1 sum", "S0 N=8 eps=0.2"]]
    S, Lsys = cfg["seeds"], max(cfg["network"]["shape"])
    xi_s0 = rng.uniform(1.5, 2.5, S)
    exp = E4Sharing()
    res = exp.analyse(_e4_synthetic(cfg, rng, xi_s0), cfg)
    by = {r["label"]: r for r in res["conditions"]}
    s0 = by["S0 N=8 eps=0.2"]["xi_cross"]
    assert s0["plateau"] and abs(s0["drift"]) < 0.05
    q = res["pairs"][0]["xi_cross"]
    assert q["ratio"] == pytest.approx(Lsys / np.mean(s0["per_seed"]), rel=1e-12)
    assert abs(np.mean(s0["per_seed"]) - xi_s0.mean()) < 0.01
    assert by["S1 N=8 s=1 sum"]["xi_capped"] and not by["S0 N=8 eps=0.2"]["xi_capped"]
    # domain structure: the shared scheme is one domain in every seed; S0 has n / 5 domains per seed, the
    # largest of 20 rings, so the other n / 5 - 1 share n - 20 rings
    n = int(np.prod(cfg["network"]["shape"]))
    s1, s0r = by["S1 N=8 s=1 sum"], by["S0 N=8 eps=0.2"]
    assert (s1["seeds_xi_L"], s1["seeds_one_domain"], s1["largest_frac"]) == (S, S, 1.0)
    assert (s0r["seeds_xi_L"], s0r["seeds_one_domain"]) == (0, 0)
    assert s0r["domains"] == pytest.approx(n / 5.0, rel=1e-12)
    assert s0r["island_size"] == pytest.approx((n - 20.0) / (n / 5.0 - 1.0), rel=1e-12)
    assert not s1["xi_cross"]["drift_significant"] and not s1["mean_domain_size"]["drift_significant"]
    assert s1["t_one_domain"] == [0.0] * S and s0r["t_one_domain"] == [None] * S
    meta = {
        "command": "test",
        "created": "now",
        "simulate_s": 0.0,
        "total_s": 0.0,
        "loadavg_start": [0.0],
        "versions": {"diffring": "x", "jax": "y"},
        "data": "d",
        "summary": "s",
        "analyse": "a",
        "config_file": "c",
    }
    text = exp.report(res, cfg, meta)
    assert "Yes, it depends on the scheme." in text
    assert f"a factor at least **{q['ratio']:.1f} +- {q['err']:.1f}**" in text
    # the same lattice everywhere: no dependence, and the report says so
    res2 = exp.analyse(_e4_synthetic(cfg, rng, xi_s0, s0_ordered=True), cfg)
    assert "No, it does not depend" in exp.report(res2, cfg, meta)


def test_ratio_ci_covers_true_ratio(rng):
    hits = 0
    for _ in range(40):
        a, b = rng.normal(6.0, 1.0, 10), rng.normal(3.0, 0.5, 10)
        r = ratio_ci(a, b, n_boot=1000, seed=int(rng.integers(1 << 30)))
        assert r["ratio"] == pytest.approx(a.mean() / b.mean())
        hits += r["lo"] <= 2.0 <= r["hi"]
    assert hits >= 32


def test_staggered_gauge_maps_a_checkerboard_locked_field_to_a_uniform_one(rng):
    grid = (6, 8)
    ii = np.indices(grid).sum(0) % 2
    theta = (1.3 + np.pi * ii).reshape(-1)
    g = np.mod(theta + staggered_gauge(grid), 2 * np.pi)
    np.testing.assert_allclose(np.cos(g - g[0]), 1.0, atol=1e-12)


def test_every_experiment_has_a_full_and_a_small_config():
    for name in EXPERIMENTS:
        full, small = load_experiment_config(name), load_experiment_config(name, small=True)
        assert full["size"] == "full" and small["size"] == "small"
        assert "small" not in full


def _np_walls_C1(theta, valid):
    """NumPy reference on a periodic 2-D grid: wall density (|wrapped d theta| > pi/2) and C(1)
    pooled over both axes, over bonds between valid rings."""
    n_w = n_b = 0
    c_sum = 0.0
    for ax in (0, 1):
        d = np.angle(np.exp(1j * (np.roll(theta, -1, ax) - theta)))
        ok = valid & np.roll(valid, -1, ax)
        n_b += ok.sum()
        n_w += (ok & (np.abs(d) > np.pi / 2)).sum()
        c_sum += np.cos(d)[ok].sum()
    return n_w / max(n_b, 1), c_sum / max(n_b, 1)


def test_cli_experiment_small_outputs_are_consistent(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["experiment", "E3", "--small", "--out", str(out), "--quiet"]) == 0
    d = dict(np.load(out / "E3_domains" / "data.npz"))
    summary = json.loads((out / "E3_domains" / "summary.json").read_text())
    report = (out / "E3_domains.md").read_text()
    cfg = load_experiment_config("E3_domains", small=True)
    assert summary["config"]["network"] == cfg["network"]
    assert "diffring experiment E3 --small" in report
    for png in summary["figures"]:
        assert (out / "E3_domains" / png).stat().st_size > 1000
    t = d["t"]
    assert t[0] == 0.0 and t[-1] == pytest.approx(cfg["t1"])
    # reported numbers = direct recomputation from data.npz
    for row, tq in zip(summary["results"]["rows"], cfg["report_times"], strict=True):
        i = int(np.argmin(np.abs(t - tq)))
        assert row["wall_density"] == pytest.approx(d["wall_density"][:, i].astype(float).mean(), rel=1e-12)
        assert row["xi_fit"] == pytest.approx(d["xi_fit"][:, i].astype(float).mean(), rel=1e-12)
        assert f"| {t[i]:g} | {row['wall_density']:.4f} +- " in report
    # the on-the-fly wall density and C(1) of seed 0 equal a NumPy recomputation from its phase snapshots
    grid = tuple(cfg["network"]["shape"])
    checked = 0
    for j, ts in enumerate(d["snap_t"]):
        valid = d["snap_valid"][j].reshape(grid)
        if valid.sum() < 2:
            continue
        i = int(np.flatnonzero(np.isclose(t, ts))[0])
        w, c1 = _np_walls_C1(d["snap_phase"][j].astype(float).reshape(grid), valid)
        n_bonds = 2 * valid.size
        assert abs(d["wall_density"][0, i] - w) <= 1.0 / n_bonds + 1e-12
        assert d["C1"][0, i] == pytest.approx(c1, abs=1e-6)
        checked += 1
    assert checked >= 1


def test_cli_experiment_bad_name_is_one_line_exit_2(capsys):
    assert main(["experiment", "E9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "E9" in err and "E2" in err
    assert main(["experiment"]) == 2
    assert main(["experiment", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in EXPERIMENTS)


def test_cli_experiment_bad_out_and_bad_summary_are_one_line(tmp_path, capsys):
    """--out naming a file, and --report-only over a summary.json that is not a finished run's,
    were internal errors (NotADirectoryError, KeyError, JSONDecodeError)."""
    (tmp_path / "afile").write_text("x")
    d = tmp_path / "fake" / "E2_xi_growth"
    d.mkdir(parents=True)
    np.savez(d / "data.npz", a=np.zeros(3))
    cases = [(["E1", "--small", "--out", str(tmp_path / "afile"), "--quiet"], "--out", None)]
    cases += [(["E2", "--report-only", "--out", str(tmp_path / "fake")], "--report-only", text) for text in ("{}", "{")]
    for args, field, summary in cases:
        if summary is not None:
            (d / "summary.json").write_text(summary)
        capsys.readouterr()
        assert main(["experiment", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith(f"diffring: error: {field}"), err
