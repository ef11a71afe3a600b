"""The lattice study of issue 3 as runnable experiments E1 ... E6 (`diffring experiment NAME`).

Each experiment is a YAML config in `configs/experiments/` (full size; its `small` section is the
documented reduction used by `--small` for smoke tests and CI) and a final `AbstractExperiment`
class with three steps kept apart: `simulate` (public core only: builders, `init.*`,
`simulate_batch` over seeds in segments with `chunk_size`, `Record(which="probes",
observe=lattice_observables(...))`) -> `data` (NumPy arrays, saved as `data.npz`); `analyse(data,
cfg)` -> `results` (plain numbers, saved in `summary.json`); `figures` and `report` (markdown whose
numbers are read from `results`, so every number traces back to `data.npz` and the command).

Output of `run_experiment(name, out)`: `out/<name>.md` and `out/<name>/` holding `data.npz`,
`summary.json` (config, command, versions, seeds, timings, load average, results) and PNGs.
"""

from __future__ import annotations

import abc
import json
import math
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import equinox as eqx
import numpy as np
import yaml

from ._errors import DiffringError, check_choice
from ._statistics import (
    fit_power_law as fit_power_law,
    growth_window as growth_window,
    ratio_ci as ratio_ci,
    steady_state as steady_state,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs" / "experiments"
TWO_PI = 2 * math.pi


# ----------------------------------------------------------------------------------------------
# Configs


def _set_dotted(d: dict, key: str, value) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def load_experiment_config(name: str, small: bool = False) -> dict:
    """The experiment's YAML (full size), with its `small` overrides (dotted keys) applied if asked."""
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise DiffringError("experiment config", str(path), "missing: expected configs/experiments/<NAME>.yaml")
    cfg = yaml.safe_load(path.read_text())
    small_over = cfg.pop("small", {}) or {}
    if small:
        for k, v in small_over.items():
            _set_dotted(cfg, k, v)
    cfg["size"] = "small" if small else "full"
    return cfg


def _dtype(cfg):
    import jax
    import jax.numpy as jnp

    dt = check_choice("dtype", cfg.get("dtype", "float64"), ("float64", "float32"))
    if dt == "float64" and not jax.config.jax_enable_x64:
        raise DiffringError("dtype", dt, "needs jax_enable_x64 (the CLI sets it; or use float32)")
    return jnp.float64 if dt == "float64" else jnp.float32


# ----------------------------------------------------------------------------------------------
# The lattice driver: a batch of seeds (x an eps sweep on S0) in equal segments, probes only


def _drop_k(fn: Callable, gauge=None) -> Callable:
    """`lattice_observables` without the per-ring pulse counts (large), optionally on phases
    shifted by a fixed per-ring `gauge` (S2 plaquettes: neighbours lock pi apart, see E4)."""
    import jax.numpy as jnp

    def observe(t, state, phase, valid):
        if gauge is not None:
            phase = jnp.mod(phase + gauge.astype(phase.dtype), TWO_PI)
        out = fn(t, state, phase, valid)
        out.pop("k")
        return out

    return observe


def staggered_gauge(grid: Sequence[int]) -> np.ndarray:
    """pi on the odd cells of a checkerboard, 0 elsewhere (per ring, row-major)."""
    ii = np.indices(tuple(grid)).sum(0) % 2
    return (math.pi * ii).reshape(-1)


def run_batch(
    network,
    states,
    *,
    dt: float,
    n_steps: int,
    every: int,
    segments: int,
    chunk_size: int | None,
    eps: Sequence[float] | None = None,
    gauge: np.ndarray | None = None,
    observe: Callable | None = None,
    progress: bool = True,
    label: str = "",
    keep_phases: bool = False,
) -> dict:
    """Simulate the discrete map on `network` from `states` (B, n); with `eps` (one per member) the
    S0 coupling strength is swept over the batch. Records every `every` steps the on-the-fly
    lattice observables (no outputs stored), and the ring phases at the end of each of `segments`
    equal segments (snapshots, record 0 included). Returns NumPy arrays: t, every observable
    (B, n_records[, ...]), snap_t, snap_phase/snap_valid (B, segments + 1, n_rings), final_o,
    status, and timings (first segment = compile + run, then per-segment simulate time).
    """
    import jax
    import jax.numpy as jnp
    from tqdm.auto import tqdm

    import diffring as dr

    if n_steps % segments or (n_steps // segments) % every:
        raise DiffringError(
            "run",
            f"n_steps={n_steps}, segments={segments}, every={every}",
            "n_steps / segments must be a multiple of record every",
        )
    seg = n_steps // segments
    model = dr.DiscreteMap(network, dt=dt)
    axes = None
    if eps is not None:
        model, axes = dr.batched_model(model, lambda m: m.network.coupling.eps, jnp.asarray(eps, network.dtype))
    g = None if gauge is None else jnp.asarray(gauge, network.dtype)
    fn = _drop_k(observe if observe is not None else dr.lattice_observables(network), g)
    rec = dr.Record(every=every, which="probes", fields=(), phases=True, observe=fn)
    probes = network.rings.probes
    state = states
    tracker = dr.PhaseTracker.init(states.o[..., probes], jnp.asarray(0.0, network.dtype))
    parts, snaps, valids, snap_t, phase0 = [], [], [], [], []
    times = []
    status = None
    bar = tqdm(total=segments, desc=label or "simulating", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    t_parts = []
    for s in range(segments):
        tic = time.perf_counter()
        sol = dr.simulate_batch(
            model,
            state,
            n_steps=seg,
            record=rec,
            model_axes=axes,
            chunk_size=chunk_size,
            t0=s * seg * dt,
            tracker=tracker,
        )
        jax.block_until_ready(sol)
        times.append(time.perf_counter() - tic)
        host = {k: np.asarray(v) for k, v in sol.observed.items()}
        ph = np.asarray(sol.phase)
        va = np.asarray(sol.phase_valid)
        tt = np.asarray(sol.t)[0]
        if s == 0:
            snaps.append(ph[:, 0])
            valids.append(va[:, 0])
            snap_t.append(float(tt[0]))
        else:
            host = {k: a[:, 1:] for k, a in host.items()}
            tt = tt[1:]
        if keep_phases:  # member 0's ring phases at every record (NaN where not yet defined)
            phase0.append(np.where(va[0], ph[0], np.nan)[(0 if s == 0 else 1) :])
        snaps.append(ph[:, -1])
        valids.append(va[:, -1])
        snap_t.append(float(tt[-1]))
        parts.append(host)
        t_parts.append(tt)
        st = np.asarray(sol.status)
        status = st if status is None else np.where(status == 0, st, status)
        state, tracker = sol.state, sol.tracker
        bar.update(1)
        bar.set_postfix(xi=f"{float(np.mean(host['xi_fit'][:, -1])):.2f}")
    bar.close()
    out = {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}
    out.update(
        t=np.concatenate(t_parts),
        snap_t=np.asarray(snap_t),
        snap_phase=np.stack(snaps, 1),
        snap_valid=np.stack(valids, 1),
        final_o=np.asarray(state.o),
        final_v=np.asarray(state.v),
        status=status,
    )
    if keep_phases:
        out["phase0"] = np.concatenate(phase0)
    n_members = int(states.v.shape[0])
    run_s = float(np.sum(times[1:])) if segments > 1 else float(times[0])
    per_seg = run_s / max(segments - 1, 1)
    out["timings"] = {
        "first_segment_s": times[0],
        "compile_s_est": max(times[0] - per_seg, 0.0) if segments > 1 else math.nan,
        "simulate_s": float(np.sum(times)),
        "neuron_steps_per_s": network.n_neurons * seg * max(segments - 1, 1) * n_members / max(run_s, 1e-12)
        if segments > 1
        else math.nan,
    }
    return out


def _init_states(network, kind: str, seed: int, n_seeds: int, dt: float):
    """n_seeds initial states from jax.random.split(key(seed), n_seeds) (the same for every eps)."""
    import jax

    import diffring as dr

    keys = jax.random.split(jax.random.key(seed), n_seeds)
    kind = check_choice("init", kind, ("published", "random_phase", "uniform"))
    if kind == "published":
        return dr.init.published(network, keys, dt)
    if kind == "random_phase":
        return dr.init.random_phase(network, keys, dt)
    return dr.init.uniform(network, keys)


def _tile(states, n: int):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda a: jnp.tile(a, (n, 1)), states)


def _lattice(cfg_net: Mapping, dtype, **over):
    import diffring as dr

    kw = {**cfg_net, **over}
    shape = kw.pop("shape")
    ring_size = kw.pop("ring_size", 6)
    return dr.lattice(shape, ring_size, dtype=dtype, **kw)


def _sweep(
    cfg,
    network,
    init_kind,
    eps_list,
    *,
    progress,
    label,
    gauge=None,
    timings=None,
    t1=None,
    every=None,
    keep_phases=False,
):
    """Run seeds x eps (S0) or seeds (eps_list = [None]) and return the data with a (E, S, ...) split."""
    import jax
    import jax.numpy as jnp

    dt, S = cfg["dt"], cfg["seeds"]
    E = len(eps_list)
    if eps_list[0] is not None and init_kind == "random_phase":
        # random_phase samples each ring's orbit under its resting link input eps * degree: one per eps
        per = [
            _init_states(
                eqx.tree_at(lambda n: n.coupling.eps, network, jnp.asarray(e, network.dtype)),
                init_kind,
                cfg["seed"],
                S,
                dt,
            )
            for e in eps_list
        ]
        states = jax.tree.map(lambda *a: jnp.concatenate(a), *per)
    else:
        states = _init_states(network, init_kind, cfg["seed"], S, dt)
        states = _tile(states, E) if E > 1 else states
    t1 = cfg["t1"] if t1 is None else t1
    n_steps = int(round(t1 / dt))
    eps = None if eps_list[0] is None else np.repeat(np.asarray(eps_list, float), S)
    d = run_batch(
        network,
        states,
        dt=dt,
        n_steps=n_steps,
        every=cfg["every"] if every is None else every,
        segments=cfg["segments"],
        chunk_size=cfg.get("chunk_size"),
        eps=eps,
        gauge=gauge,
        progress=progress,
        label=label,
        keep_phases=keep_phases,
    )
    if timings is not None:
        timings[label] = d.pop("timings")
    else:
        d.pop("timings")
    return {k: (v if k in ("t", "snap_t", "phase0") else v.reshape((E, S) + v.shape[1:])) for k, v in d.items()}


# ----------------------------------------------------------------------------------------------
# Experiments


class AbstractExperiment(eqx.Module):
    """One experiment: `simulate` (config -> data arrays), `analyse` (data -> numbers), `figures`
    and `report` (numbers -> PNGs and markdown)."""

    name: ClassVar[str]
    title: ClassVar[str]

    @abc.abstractmethod
    def simulate(self, cfg: dict, progress: bool, timings: dict) -> dict[str, np.ndarray]:
        """Run the simulations; return NumPy arrays (saved as data.npz)."""

    @abc.abstractmethod
    def analyse(self, data: Mapping[str, np.ndarray], cfg: dict) -> dict:
        """Numbers for the report, computed from `data` only (JSON-able)."""

    @abc.abstractmethod
    def figures(self, data: Mapping[str, np.ndarray], results: dict, cfg: dict, directory: str) -> list[str]:
        """Write PNGs into `directory`; return their file names."""

    @abc.abstractmethod
    def report(self, results: dict, cfg: dict, meta: dict) -> str:
        """The markdown report (numbers from `results`)."""


def _fig(ncols=1, nrows=1, size=(6, 4)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axs = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axs


def _band(ax, t, y, label, color=None, log=True):
    """Seed mean with a +- 1 sem band; y is (S, T)."""
    m = y.mean(0)
    se = y.std(0, ddof=1) / math.sqrt(y.shape[0]) if y.shape[0] > 1 else np.zeros_like(m)
    sel = (t > 0) if log else slice(None)
    (ln,) = ax.plot(t[sel], m[sel], label=label, color=color)
    ax.fill_between(t[sel], (m - se)[sel], (m + se)[sel], color=ln.get_color(), alpha=0.25, lw=0)
    return ln


def _at(t, y, t_query):
    """Value of the seed mean of y (S, T) at the record nearest to t_query, and that time."""
    i = int(np.argmin(np.abs(np.asarray(t) - t_query)))
    return float(np.asarray(y)[:, i].mean()), float(t[i])


def _pm(m, e, fmt=".3g"):
    return f"{m:{fmt}} +- {e:{fmt}}"


def _head(cfg, meta, title):
    lines = [
        f"# {title}",
        "",
        f"Generated by `{meta['command']}` on {meta['created']} ({cfg['size']} size; simulate "
        f"{meta['simulate_s']:.0f} s, total {meta['total_s']:.0f} s, load average at start "
        f"{meta['loadavg_start'][0]:.1f} on {os.cpu_count()} CPUs; diffring {meta['versions']['diffring']}, "
        f"jax {meta['versions']['jax']}).",
        f"Every number below is computed from `{meta['data']}` by `{meta['analyse']}` and stored in "
        f"`{meta['summary']}`; config: `{meta['config_file']}`.",
        "",
    ]
    return lines


class E1Catalogue(AbstractExperiment):
    """E1: the ring-orbit catalogue (wraps docs/results/make_orbit_catalogue.py)."""

    name: ClassVar[str] = "E1_orbit_catalogue"
    title: ClassVar[str] = "E1: periodic orbits of uncoupled rings"

    def simulate(self, cfg, progress, timings):
        script = REPO / "docs" / "results" / "make_orbit_catalogue.py"
        out_md = cfg["_dir"] / "orbit_catalogue.md"
        cmd = [
            sys.executable,
            str(script),
            "--states",
            str(cfg["states"]),
            "--dt",
            str(cfg["dt"]),
            "--seed",
            str(cfg["seed"]),
            "--out",
            str(out_md),
        ]
        tic = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        timings["catalogue"] = {"simulate_s": time.perf_counter() - tic}
        return {"table": np.asarray(out_md.read_text())}

    def analyse(self, data, cfg):
        rows = [r for r in str(data["table"]).splitlines() if r.startswith("| ") and r[2].isdigit()]
        return {"n_table_rows": len(rows)}

    def figures(self, data, results, cfg, directory):
        return []

    def report(self, results, cfg, meta):
        return "\n".join(
            _head(cfg, meta, self.title)
            + [
                f"The table ({results['n_table_rows']} rows) is `{self.name}/orbit_catalogue.md`, written by "
                "`docs/results/make_orbit_catalogue.py` (the committed full-size table is "
                "`docs/results/orbit_catalogue.md`).",
                "",
            ]
        )


class E2Growth(AbstractExperiment):
    """E2: growth of xi(t), C(1, t) and R(t) on periodic S0 lattices at several eps, two initialisers."""

    name: ClassVar[str] = "E2_xi_growth"
    title: ClassVar[str] = "E2: growth of the correlation length on 2-D S0 lattices"

    def simulate(self, cfg, progress, timings):
        dtype = _dtype(cfg)
        net = _lattice(cfg["network"], dtype)
        out = {}
        for init, eps in cfg["eps"].items():
            d = _sweep(cfg, net, init, eps, progress=progress, label=f"{init}", timings=timings)
            out["t"] = d["t"]
            for k in ("xi_fit", "xi_cross", "R", "R_local", "wall_density"):
                out[f"{init}/{k}"] = d[k]
            out[f"{init}/C"] = d["C"][..., : cfg.get("keep_delta", 9)]
            out[f"{init}/status"] = d["status"]
            out[f"{init}/snap_t"] = d["snap_t"]
            out[f"{init}/eps"] = np.asarray(eps, float)
        return out

    ESTIMATORS: ClassVar[tuple[str, ...]] = ("xi_cross", "xi_fit")

    def analyse(self, data, cfg):
        t, L = data["t"], max(cfg["network"]["shape"])
        g = cfg["growth"]
        res = {"L": L, "inits": {}}
        for init, eps_list in cfg["eps"].items():
            per = []
            for i, eps in enumerate(eps_list):
                C1 = data[f"{init}/C"][i][..., 1]
                R = data[f"{init}/R"][i]
                r = {"eps": eps, "n_seeds": int(C1.shape[0]), "status_ok": bool(np.all(data[f"{init}/status"][i] == 0))}
                r["C1_final"] = float(C1[:, -1].mean())
                r["C1_final_sem"] = float(C1[:, -1].std(ddof=1) / math.sqrt(C1.shape[0]))
                for tq in cfg["report_times"]:
                    r[f"C1@{tq:g}"], r[f"C1@{tq:g}_t"] = _at(t, C1, tq)
                    r[f"R@{tq:g}"], _ = _at(t, R, tq)
                for est in self.ESTIMATORS:
                    xi = data[f"{init}/{est}"][i]
                    for tq in cfg["report_times"]:
                        r[f"{est}@{tq:g}"], _ = _at(t, xi, tq)
                    r[f"{est}_final"] = float(xi[:, -1].mean())
                    r[f"{est}_final_sem"] = float(xi[:, -1].std(ddof=1) / math.sqrt(xi.shape[0]))
                    win = growth_window(t, xi.mean(0), t_min=g["t_min"], y_min=g["xi_min"], y_max=g["xi_max_frac"] * L)
                    fit = None if win is None else fit_power_law(t, xi, win, n_boot=g["n_boot"], seed=cfg["seed"])
                    r[f"{est}_fit"] = fit
                per.append(r)
            res["inits"][init] = per
        return res

    def figures(self, data, results, cfg, directory):
        t, names = data["t"], []
        inits = list(cfg["eps"])
        fig, axs = _fig(len(inits), len(self.ESTIMATORS), (5.5 * len(inits), 4.0 * len(self.ESTIMATORS)))
        for k, est in enumerate(self.ESTIMATORS):
            for j, init in enumerate(inits):
                ax = axs[k, j]
                for i, eps in enumerate(cfg["eps"][init]):
                    ln = _band(ax, t, data[f"{init}/{est}"][i], f"eps = {eps:g}")
                    f = results["inits"][init][i][f"{est}_fit"]
                    if f is not None:
                        tt = np.geomspace(*f["window"], 20)
                        ax.plot(tt, f["A"] * tt ** f["z"], "--", color=ln.get_color(), lw=1.5)
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.axhline(results["L"], color="0.5", lw=0.6, ls=":")
                ax.set_ylim(0.1, 1.5 * results["L"])
                ax.axvline(cfg["growth"]["t_min"], color="0.5", lw=0.6, ls=":")
                ax.set_xlabel("t")
                ax.set_ylabel(f"{est} (rings)")
                ax.set_title(f"{est}(t), init = {init} (mean +- sem; dashed: power-law fit)", fontsize=9)
                ax.legend(fontsize=8)
        fig.savefig(os.path.join(directory, "xi_loglog.png"), dpi=110)
        names.append("xi_loglog.png")
        fig, axs = _fig(2, len(inits), (11, 3.6 * len(inits)))
        for j, init in enumerate(inits):
            for i, eps in enumerate(cfg["eps"][init]):
                _band(axs[j, 0], t, data[f"{init}/C"][i][..., 1], f"eps = {eps:g}")
                _band(axs[j, 1], t, data[f"{init}/R"][i], f"eps = {eps:g}")
            for ax, yl in zip(axs[j], ("C(Delta = 1)", "global R"), strict=True):
                ax.set_xscale("log")
                ax.axvline(cfg["growth"]["t_min"], color="0.5", lw=0.6, ls=":")
                ax.set_xlabel("t")
                ax.set_ylabel(yl)
                ax.set_title(f"{yl}, init = {init}", fontsize=9)
            axs[j, 0].legend(fontsize=8)
        fig.savefig(os.path.join(directory, "C1_R.png"), dpi=110)
        names.append("C1_R.png")
        return names

    def report(self, results, cfg, meta):
        n, g = cfg["network"], cfg["growth"]
        L = _head(cfg, meta, self.title)
        L += [
            f"Setup: periodic {n['shape'][0]} x {n['shape'][1]} S0 lattice of {n['ring_size']}-rings, discrete map "
            f"dt = {cfg['dt']}, t = 0 ... {cfg['t1']:g}, {cfg['seeds']} seeds per eps (the same keys for every eps), "
            f"observables every {cfg['every']} steps. C1 = C(Delta = 1) along the axes. Two correlation lengths "
            "from the same C(Delta): `xi_cross` = first Delta where C < 1/e (interpolated), `xi_fit` = weighted "
            "exponential fit through C(0) = 1 (`ExpFit`); both capped at L. Means +- standard error over seeds.",
            f"Before t = {g['t_min']:g} (about 2.5 periods of a 6-ring, T_1(6) = 7.72) the numbers are not "
            "meaningful: a ring's phase is defined only after its probe fired twice, and the first rings to qualify "
            "have all just fired, so the few valid phases are spuriously aligned (C1 about 0.8 and xi = L at t = 10 "
            "for every eps, visible in the figures).",
            f"Growth law: least squares of log <xi> on log t over the growth window (t >= {g['t_min']:g}, "
            f"<xi> >= {g['xi_min']:g}, up to the last record before <xi> reaches {g['xi_max_frac']:g} L); "
            f"uncertainty = bootstrap over seeds ({g['n_boot']} resamples; error = std, CI = 2.5-97.5 %). The "
            "logarithmic law xi = a + b ln t is fitted on the same points; 'better' = smaller RMS residual of log xi.",
            "",
        ]
        tq = cfg["report_times"]
        for init, rows in results["inits"].items():
            L += [f"## init = `{init}`", ""]
            L += [
                "| eps | "
                + " | ".join(f"C1(t={x:g})" for x in tq)
                + " | "
                + " | ".join(f"R(t={x:g})" for x in tq)
                + " |",
                "|---" * (1 + 2 * len(tq)) + "|",
            ]
            for r in rows:
                L.append(
                    f"| {r['eps']:g} | "
                    + " | ".join(f"{r[f'C1@{x:g}']:.3f}" for x in tq)
                    + " | "
                    + " | ".join(f"{r[f'R@{x:g}']:.3f}" for x in tq)
                    + " |"
                )
            L += [
                "",
                "| eps | estimator | "
                + " | ".join(f"xi(t={x:g})" for x in tq)
                + " | z +- err | 95 % CI | window | rms power / log | better |",
                "|---" * (2 + len(tq) + 5) + "|",
            ]
            for r in rows:
                for est in self.ESTIMATORS:
                    f = r[f"{est}_fit"]
                    fit = (
                        ("no window", "", "", "", "")
                        if f is None
                        else (
                            _pm(f["z"], f["z_err"], ".2f"),
                            f"[{f['z_ci'][0]:.2f}, {f['z_ci'][1]:.2f}]",
                            f"{f['window'][0]:g}-{f['window'][1]:g}",
                            f"{f['rms_power']:.3f} / {f['rms_log']:.3f}",
                            f["better"],
                        )
                    )
                    L.append(
                        f"| {r['eps']:g} | {est} | "
                        + " | ".join(f"{r[f'{est}@{x:g}']:.2f}" for x in tq)
                        + " | "
                        + " | ".join(fit)
                        + " |"
                    )
            L.append("")
        L += [
            "'no window': fewer than 3 records between <xi> >= the floor (after t_min) and <xi> = "
            f"{g['xi_max_frac']:g} L: either xi stays below the floor or it has already saturated by t_min.",
            "",
        ]
        L += self._findings(results, cfg)
        L += [
            "",
            "Figures: `E2_xi_growth/xi_loglog.png` (xi(t) for both estimators, log-log, with the fits), "
            "`E2_xi_growth/C1_R.png` (C(1, t) and R(t)).",
            "",
        ]
        return "\n".join(L)

    @staticmethod
    def _findings(results, cfg):
        out = ["## Findings", ""]
        pub = {r["eps"]: r for r in results["inits"].get("published", [])}
        rp = {r["eps"]: r for r in results["inits"].get("random_phase", [])}
        Lsys = results["L"]
        tq = cfg["report_times"]
        t_lo, t_hi = tq[0], tq[-1]
        if 0.2 in pub:
            r = pub[0.2]
            out.append(
                "- Spec reference (published warm-up, eps = 0.2, 64 x 64: C1 about 0.2 -> 0.75 by t = 380, xi from "
                f"1 to the system size): here C1 = {r[f'C1@{t_lo:g}']:.3f} at t = {r[f'C1@{t_lo:g}_t']:g} and "
                f"{r[f'C1@{t_hi:g}']:.3f} at t = {r[f'C1@{t_hi:g}_t']:g}; xi_cross = {r[f'xi_cross@{t_lo:g}']:.2f} -> "
                f"{r[f'xi_cross@{t_hi:g}']:.1f} (xi_fit {r[f'xi_fit@{t_hi:g}']:.1f}) of L = {Lsys}."
            )
        if 0.05 in pub:
            r = pub[0.05]
            out.append(
                f"- Spec reference eps = 0.05 (C1 0 -> 0.3): here C1 = {r[f'C1@{t_lo:g}']:.3f} -> "
                f"{r[f'C1@{t_hi:g}']:.3f} (t = {t_lo:g} -> {t_hi:g})."
            )
        for eps in sorted(set(pub) & set(rp)):
            a, b = pub[eps], rp[eps]
            out.append(
                f"- Initialiser, eps = {eps:g}: final C1 published {_pm(a['C1_final'], a['C1_final_sem'], '.3f')} vs "
                f"random_phase {_pm(b['C1_final'], b['C1_final_sem'], '.3f')}; final xi_cross "
                f"{_pm(a['xi_cross_final'], a['xi_cross_final_sem'], '.2f')} vs "
                f"{_pm(b['xi_cross_final'], b['xi_cross_final_sem'], '.2f')}."
            )
        return out


class E3Domains(AbstractExperiment):
    """E3: domain structure: phase maps with walls over time, wall density and domain sizes vs t."""

    name: ClassVar[str] = "E3_domains"
    title: ClassVar[str] = "E3: domain structure on a 2-D S0 lattice"

    def simulate(self, cfg, progress, timings):
        net = _lattice(cfg["network"], _dtype(cfg))
        d = _sweep(cfg, net, cfg["init"], [None], progress=progress, label="E3", timings=timings)
        out = {
            k: d[k][0]
            for k in ("xi_fit", "wall_density", "mean_domain_size", "largest_domain", "n_domains", "R_local", "status")
        }
        out["C1"] = d["C"][0][..., 1]
        out["t"] = d["t"]
        # seed 0 at the snapshot times only (float32: small, and exact enough to recompute walls from)
        idx = sorted({int(np.argmin(np.abs(d["snap_t"] - float(w)))) for w in cfg["snapshot_times"]})
        out["snap_t"] = d["snap_t"][idx]
        out["snap_phase"] = d["snap_phase"][0, 0, idx].astype(np.float32)
        out["snap_valid"] = d["snap_valid"][0, 0, idx]
        return out

    def analyse(self, data, cfg):
        t = data["t"]
        res = {"n_rings": int(np.prod(cfg["network"]["shape"])), "rows": []}
        for tq in cfg["report_times"]:
            row = {"t": _at(t, data["wall_density"], tq)[1]}
            for k in ("wall_density", "mean_domain_size", "largest_domain", "n_domains", "xi_fit", "C1"):
                y = data[k].astype(float)
                i = int(np.argmin(np.abs(t - tq)))
                row[k] = float(y[:, i].mean())
                row[k + "_sem"] = float(y[:, i].std(ddof=1) / math.sqrt(y.shape[0])) if y.shape[0] > 1 else math.nan
            res["rows"].append(row)
        g = cfg["growth"]
        sel = (t >= g["t_min"]) & (t <= g["t_max"])
        if sel.sum() >= 3:
            w = [float(t[sel][0]), float(t[sel][-1])]
            res["wall_fit"] = fit_power_law(t, data["wall_density"], w, n_boot=g["n_boot"], seed=cfg["seed"])
            res["size_fit"] = fit_power_law(t, data["mean_domain_size"], w, n_boot=g["n_boot"], seed=cfg["seed"])
        res["status_ok"] = bool(np.all(data["status"] == 0))
        res["defects"] = [self._defects(data, j, cfg) for j in range(len(data["snap_t"]))]
        return res

    @staticmethod
    def _defects(data, j, cfg):
        """Seed 0, snapshot j: wall bonds and how many of them surround an isolated ring (a ring whose
        four bonds are all walls), i.e. point defects rather than boundaries between large regions."""
        grid = tuple(cfg["network"]["shape"])
        th = data["snap_phase"][j].astype(float).reshape(grid)
        ok = data["snap_valid"][j].reshape(grid)
        wall = []
        for ax in (0, 1):  # bond r -> r + e_ax (periodic, as the run)
            d = np.angle(np.exp(1j * (np.roll(th, -1, ax) - th)))
            wall.append(ok & np.roll(ok, -1, ax) & (np.abs(d) > np.pi / 2))
        w0, w1 = wall[0].astype(int), wall[1].astype(int)
        iso = (w0 + w1 + np.roll(w0, 1, 0) + np.roll(w1, 1, 1)) == 4
        n_w = int(wall[0].sum() + wall[1].sum())
        return {
            "t": float(data["snap_t"][j]),
            "wall_bonds": n_w,
            "isolated_rings": int(iso.sum()),
            "wall_bonds_around_isolated": int(4 * iso.sum()),
            "frac_isolated": float(4 * iso.sum() / n_w) if n_w else 0.0,
        }

    def figures(self, data, results, cfg, directory):
        from . import _plot

        grid = tuple(cfg["network"]["shape"])
        periodic = cfg["network"]["boundary"] == "periodic"
        st = data["snap_t"]
        fig, axs = _fig(len(st), 1, (3.4 * len(st), 3.4))
        for ax, i in zip(axs[0], range(len(st)), strict=True):
            _plot.phase_map(
                data["snap_phase"][i].astype(float),
                grid,
                data["snap_valid"][i],
                walls=True,
                periodic=periodic,
                ax=ax,
                title=f"t = {st[i]:g}",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("")
            ax.set_ylabel("")
        fig.savefig(os.path.join(directory, "phase_maps.png"), dpi=80)
        _plot.animate_phase_maps(
            data["snap_phase"].astype(float).reshape((-1, *grid)),
            st,
            os.path.join(directory, "phase_maps.gif"),
            valid=data["snap_valid"].reshape((-1, *grid)),
            fps=2,
            walls=True,
            periodic=periodic,
        )
        t = data["t"]
        fig2, ax2 = _fig(3, 1, (14, 3.8))
        _plot.log_series(t, {"wall density": data["wall_density"]}, ax=ax2[0, 0], ylabel="wall density")
        _plot.log_series(
            t,
            {
                "mean domain size": data["mean_domain_size"].astype(float),
                "largest domain": data["largest_domain"].astype(float),
            },
            ax=ax2[0, 1],
            ylabel="rings",
        )
        _plot.log_series(t, {"xi (ExpFit)": data["xi_fit"]}, ax=ax2[0, 2], ylabel="xi (rings)")
        for ax in ax2[0]:
            ax.axvline(cfg["growth"]["t_min"], color="0.5", lw=0.6, ls=":")
        fig2.savefig(os.path.join(directory, "walls_domains.png"), dpi=110)
        return ["phase_maps.png", "phase_maps.gif", "walls_domains.png"]

    def report(self, results, cfg, meta):
        n = cfg["network"]
        L = _head(cfg, meta, self.title)
        L += [
            f"Setup: {n['boundary']} {n['shape'][0]} x {n['shape'][1]} S0 lattice of {n['ring_size']}-rings, eps = "
            f"{n['eps']}, init `{cfg['init']}`, discrete map dt = {cfg['dt']}, t = 0 ... {cfg['t1']:g}, "
            f"{cfg['seeds']} seeds. A wall bond joins neighbours whose wrapped phase difference exceeds pi/2; domains "
            "are connected components of non-wall bonds (`diffring.domains`); mean domain size = rings / domains. "
            "Means +- standard error over seeds.",
            "",
            "| t | wall density | mean domain size | largest domain | domains | xi | C1 |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in results["rows"]:
            L.append(
                f"| {r['t']:g} | {_pm(r['wall_density'], r['wall_density_sem'], '.4f')} | "
                f"{_pm(r['mean_domain_size'], r['mean_domain_size_sem'], '.1f')} | "
                f"{_pm(r['largest_domain'], r['largest_domain_sem'], '.0f')} | "
                f"{_pm(r['n_domains'], r['n_domains_sem'], '.0f')} | "
                f"{_pm(r['xi_fit'], r['xi_fit_sem'], '.2f')} | {_pm(r['C1'], r['C1_sem'], '.3f')} |"
            )
        L.append("")
        if "wall_fit" in results:
            w, s = results["wall_fit"], results["size_fit"]
            L += [
                f"Power-law fits over t = {w['window'][0]:g} ... {w['window'][1]:g} (bootstrap over seeds): "
                f"wall density ~ t^({w['z']:.3f} +- {w['z_err']:.3f}) (better law: {w['better']}), "
                f"mean domain size ~ t^({s['z']:.3f} +- {s['z_err']:.3f}) (better law: {s['better']}).",
                "",
            ]
        L += [
            "Wall structure (seed 0, NumPy recount from the stored phase maps): wall bonds that surround an "
            "isolated ring (all four of its bonds are walls: a single ring out of phase with its neighbours) vs all "
            "wall bonds:",
            "",
            "| t | wall bonds | isolated rings | fraction of wall bonds around isolated rings |",
            "|---|---|---|---|",
        ]
        L += [
            f"| {d['t']:g} | {d['wall_bonds']} | {d['isolated_rings']} | {d['frac_isolated']:.3f} |"
            for d in results.get("defects", [])
        ]
        L += [""]
        L += [
            "Figures: `E3_domains/phase_maps.png` and the animation `E3_domains/phase_maps.gif` (seed 0; black "
            "lines = wall bonds), `E3_domains/walls_domains.png` (log-log, mean +- sd over seeds).",
            "",
        ]
        return "\n".join(L)


class E4Sharing(AbstractExperiment):
    """E4: steady-state xi and domain size vs sharing scheme, coupling and aggregation."""

    name: ClassVar[str] = "E4_sharing"
    title: ClassVar[str] = "E4: steady-state correlation size vs neuron-sharing scheme"

    @staticmethod
    def _label(c):
        if c["scheme"] == "S0":
            return f"S0 N={c['ring_size']} eps={c['eps']:g}"
        s = f" s={c['shared']}" if c["scheme"] == "S1" else ""
        return f"{c['scheme']} N={c['ring_size']}{s} {c['aggregate']}"

    def _conditions(self, cfg):
        out = []
        for c in cfg["conditions"]:
            if c["scheme"] == "S0":
                for e in c["eps"]:
                    out.append({**c, "eps": e, "aggregate": "sum"})
            else:
                for a in c["aggregate"]:
                    out.append({**c, "aggregate": a, "eps": 0.0})
        return out

    def simulate(self, cfg, progress, timings):
        dtype = _dtype(cfg)
        base = {"shape": cfg["network"]["shape"], "boundary": cfg["network"]["boundary"]}
        out = {}
        for c in cfg["conditions"]:
            kw = {k: v for k, v in c.items() if k in ("scheme", "ring_size", "shared")}
            if c["scheme"] == "S0":
                groups = [({}, c["eps"])]
            else:
                groups = [({"aggregate": a}, [None]) for a in c["aggregate"]]
            for extra, eps in groups:
                net = _lattice(base, dtype, **kw, **extra, eps=0.0 if eps[0] is None else eps[0])
                gauge = staggered_gauge(base["shape"]) if c["scheme"] == "S2" else None
                lab = self._label({**c, **extra, "eps": eps[0] if eps[0] is not None else 0.0})
                d = _sweep(cfg, net, cfg["init"], eps, progress=progress, label=lab, gauge=gauge, timings=timings)
                for i, e in enumerate(eps):
                    cond = {**c, **extra, "eps": e if e is not None else 0.0}
                    key = self._label(cond)
                    out["t"] = d["t"]
                    for k in ("xi_fit", "xi_cross", "mean_domain_size", "largest_domain", "wall_density", "R"):
                        out[f"{key}/{k}"] = d[k][i]
                    out[f"{key}/C1"] = d["C"][i][..., 1]
                    out[f"{key}/valid_frac"] = d["snap_valid"][i].mean(-1)  # (S, snaps)
                    out[f"{key}/status"] = d["status"][i]
                    out[f"{key}/snap_phase"] = d["snap_phase"][i, 0, -1].astype(np.float16)
        return out

    def analyse(self, data, cfg):
        t = data["t"]
        ss = cfg["steady"]
        res = {"conditions": [], "L": max(cfg["network"]["shape"])}
        for c in self._conditions(cfg):
            key = self._label(c)
            r = {
                "label": key,
                "scheme": c["scheme"],
                "ring_size": c["ring_size"],
                "eps": c["eps"],
                "aggregate": c["aggregate"],
                "shared": c.get("shared"),
                "status_ok": bool(np.all(data[f"{key}/status"] == 0)),
                "active_final": float(data[f"{key}/valid_frac"][:, -1].mean()),
            }
            for k in ("xi_fit", "xi_cross", "mean_domain_size", "largest_domain", "wall_density", "C1"):
                r[k] = steady_state(t, data[f"{key}/{k}"].astype(float), frac=ss["frac"], tol=ss["tol"])
            m = data[f"{key}/xi_fit"].astype(float).mean(0)
            below = np.flatnonzero(m < 0.95 * res["L"])  # <xi> >= 0.95 L from t_xi_L to the end of the run
            r["t_xi_L"] = (
                None if below.size and below[-1] == t.size - 1 else float(t[below[-1] + 1 if below.size else 0])
            )
            res["conditions"].append(r)
        for r in res["conditions"]:
            if r["scheme"] == "S2" and r["active_final"] >= 0.5:
                # raw (ungauged) probe phases of seed 0 at the end: the locked offset between neighbours
                ph = data[f"{r['label']}/snap_phase"].astype(float).reshape(tuple(cfg["network"]["shape"]))
                r["raw_C1_seed0"] = float(np.mean([np.cos(np.roll(ph, -1, a) - ph).mean() for a in (0, 1)]))
        by = {r["label"]: r for r in res["conditions"]}
        res["pairs"] = []
        for a, b in cfg.get("pairs", []):
            if a in by and b in by:
                p = {"a": a, "b": b}
                for k in ("xi_fit", "mean_domain_size"):
                    p[k] = ratio_ci(by[a][k]["per_seed"], by[b][k]["per_seed"], seed=cfg["seed"])
                    p[k + "_capped"] = bool(by[a][k]["mean"] >= 0.95 * (res["L"] if k == "xi_fit" else res["L"] ** 2))
                res["pairs"].append(p)
        ref = next((r for r in res["conditions"] if r["label"] == cfg["reference"]), None)
        if ref is not None:
            res["reference"] = cfg["reference"]
            for r in res["conditions"]:
                for k in ("xi_fit", "mean_domain_size"):
                    r[f"{k}_ratio"] = ratio_ci(r[k]["per_seed"], ref[k]["per_seed"], seed=cfg["seed"])
        return res

    def figures(self, data, results, cfg, directory):
        conds = results["conditions"]
        fig, axs = _fig(2, 1, (13, 4.5))
        x = np.arange(len(conds))
        for ax, k, yl in (
            (axs[0, 0], "xi_fit", "steady-state xi (rings)"),
            (axs[0, 1], "mean_domain_size", "steady-state mean domain size (rings)"),
        ):
            m = [c[k]["mean"] for c in conds]
            e = [c[k]["sem"] for c in conds]
            colors = ["C0" if c["scheme"] == "S0" else "C1" if c["scheme"] == "S1" else "C2" for c in conds]
            hatch = ["//" if c["active_final"] < 0.5 else "" for c in conds]  # silent lattices
            ax.bar(x, m, yerr=e, color=colors, capsize=3, hatch=hatch)
            for xi, c in zip(x, conds, strict=True):
                ax.plot(np.full(len(c[k]["per_seed"]), xi), c[k]["per_seed"], "k.", ms=2)
            ax.set_xticks(x, [c["label"] for c in conds], rotation=60, ha="right", fontsize=7)
            ax.set_ylabel(yl)
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.1 if k == "xi_fit" else 0.5)
        fig.suptitle("steady state (last 20 % of the run); blue S0, orange S1, green S2; hatched = silent", fontsize=9)
        fig.savefig(os.path.join(directory, "steady_state.png"), dpi=110)
        t = data["t"]
        fig2, ax2 = _fig(2, 1, (12, 4.5))
        for c in conds:
            if c["active_final"] < 0.5:
                continue  # silent lattices (mean aggregation) have no phases to correlate
            ax = ax2[0, 0] if c["scheme"] == "S0" else ax2[0, 1]
            _band(ax, t, data[f"{c['label']}/xi_fit"], c["label"])
        for ax, title in zip(ax2[0], ("S0 (link coupling)", "S1 / S2 (shared neurons), sum"), strict=True):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("t")
            ax.set_ylabel("xi (ExpFit)")
            ax.set_ylim(0.1, 1.5 * results["L"])
            ax.set_title(title + "; mean +- sem over seeds", fontsize=9)
            ax.legend(fontsize=7)
        fig2.savefig(os.path.join(directory, "xi_t.png"), dpi=110)
        return ["steady_state.png", "xi_t.png"]

    def report(self, results, cfg, meta):
        n, ss = cfg["network"], cfg["steady"]
        L = _head(cfg, meta, self.title)
        L += [
            f"Setup: {n['boundary']} {n['shape'][0]} x {n['shape'][1]} lattices, init `{cfg['init']}`, discrete map "
            f"dt = {cfg['dt']}, t = 0 ... {cfg['t1']:g}, {cfg['seeds']} seeds per condition. S1/S2 have no eps (shared "
            "neurons couple the rings with the ring weights; `aggregate` decides how a shared neuron combines its "
            "predecessors). S2 phases are measured in the staggered gauge theta + pi (i + j mod 2): adjacent "
            "plaquettes run in opposite senses and lock pi apart at their top-left probes"
            + "".join(
                f" (measured, {r['label']}, seed 0, end of run: ungauged C1 = {r['raw_C1_seed0']:.4f})"
                for r in results["conditions"]
                if "raw_C1_seed0" in r
            )
            + ".",
            f"Steady state: the mean over the last {ss['frac']:.0%} of the run (per seed, then mean +- sem over "
            f"seeds); plateau check: drift = relative change against the preceding window of the same length, "
            f"'plateau' if |drift| <= {ss['tol']:g}. xi is capped at L = {results['L']}. Ratios are to "
            f"`{results.get('reference')}` with a 95 % bootstrap CI over seeds.",
            "",
            "| condition | active rings | xi (ExpFit) | drift | plateau | xi / ref [95 % CI] | mean domain size | "
            "size / ref [95 % CI] | wall density | C1 |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["conditions"]:
            xr, dr_ = r.get("xi_fit_ratio"), r.get("mean_domain_size_ratio")
            L.append(
                f"| {r['label']} | {r['active_final']:.3f} | {_pm(r['xi_fit']['mean'], r['xi_fit']['sem'], '.2f')} | "
                f"{r['xi_fit']['drift']:+.3f} | {'yes' if r['xi_fit']['plateau'] else 'no'} | "
                + (f"{xr['ratio']:.2f} [{xr['lo']:.2f}, {xr['hi']:.2f}]" if xr else "")
                + " | "
                f"{_pm(r['mean_domain_size']['mean'], r['mean_domain_size']['sem'], '.1f')} | "
                + (f"{dr_['ratio']:.2f} [{dr_['lo']:.2f}, {dr_['hi']:.2f}]" if dr_ else "")
                + " | "
                f"{_pm(r['wall_density']['mean'], r['wall_density']['sem'], '.4f')} | "
                f"{_pm(r['C1']['mean'], r['C1']['sem'], '.3f')} |"
            )
        L += ["", "## Does the steady-state correlation size depend on the sharing scheme?", ""]
        if results.get("pairs"):
            L += [
                "Like-for-like comparisons (same ring size; ratio of steady-state means, 95 % bootstrap CI over "
                "seeds; 'capped' = the numerator is the whole lattice, so the ratio is a lower bound):",
                "",
                "| scheme | vs | xi ratio [95 % CI] | mean domain size ratio [95 % CI] |",
                "|---|---|---|---|",
            ]
            for p in results["pairs"]:
                x, m = p["xi_fit"], p["mean_domain_size"]
                L.append(
                    f"| {p['a']} | {p['b']} | {x['ratio']:.1f} [{x['lo']:.1f}, {x['hi']:.1f}]"
                    + (" (capped)" if p["xi_fit_capped"] else "")
                    + f" | {m['ratio']:.1f} [{m['lo']:.1f}, {m['hi']:.1f}]"
                    + (" (capped)" if p["mean_domain_size_capped"] else "")
                    + " |"
                )
            L.append("")
        L += self._answer(results)
        L += [
            "",
            "Figures: `E4_sharing/steady_state.png` (bars = mean +- sem, dots = seeds; log axis), "
            "`E4_sharing/xi_t.png` (xi(t) per condition).",
            "",
        ]
        return "\n".join(L)

    @staticmethod
    def _answer(results):
        """Per condition: silent / capped at L / ratio to the reference with its CI (generated)."""
        Lsys, ref = results["L"], results.get("reference")
        out = []
        for r in results["conditions"]:
            x, q = r["xi_fit"], r.get("xi_fit_ratio")
            if r["active_final"] < 0.5:
                out.append(
                    f"- {r['label']}: silent at the end (only {r['active_final']:.1%} of rings have a phase): "
                    "no oscillation, no correlated regions."
                )
                continue
            what = f"xi = {_pm(x['mean'], x['sem'], '.2f')}"
            if x["mean"] >= 0.95 * Lsys:
                what += (
                    f" = the system size L = {Lsys} (one correlated region; bounded by the lattice, not by the scheme)"
                )
            if r.get("t_xi_L") is not None:
                what += f"; <xi> >= 0.95 L from t = {r['t_xi_L']:g} on"
            if not x["plateau"]:
                what += f"; NOT a plateau (drift {x['drift']:+.2f} over the last window: still changing)"
            if q is not None and r["label"] != ref:
                sig = "larger than" if q["lo"] > 1 else "smaller than" if q["hi"] < 1 else "not distinguishable from"
                what += f"; xi / ref = {q['ratio']:.2f} [{q['lo']:.2f}, {q['hi']:.2f}]: {sig} the reference"
            out.append(f"- {r['label']}: {what}.")
        act = [r for r in results["conditions"] if r["active_final"] >= 0.5]
        if len(act) >= 2:
            hi = max(act, key=lambda r: r["xi_fit"]["mean"])
            lo = min(act, key=lambda r: r["xi_fit"]["mean"])
            ci = ratio_ci(hi["xi_fit"]["per_seed"], lo["xi_fit"]["per_seed"]) if lo["xi_fit"]["mean"] > 0 else None
            span = "" if ci is None else f" (ratio {ci['ratio']:.1f}, 95 % CI [{ci['lo']:.1f}, {ci['hi']:.1f}])"
            out.append(
                f"- Range over oscillating conditions: from {lo['xi_fit']['mean']:.2f} ({lo['label']}) to "
                f"{hi['xi_fit']['mean']:.2f} ({hi['label']}){span}."
            )
        return out


class E5Multistability(AbstractExperiment):
    """E5: per-ring orbits (class, k, phase) at long times under weak coupling vs uncoupled."""

    name: ClassVar[str] = "E5_multistability"
    title: ClassVar[str] = "E5: coexisting ring orbits under weak coupling"

    def simulate(self, cfg, progress, timings):
        import jax
        import jax.numpy as jnp

        import diffring as dr

        dtype = _dtype(cfg)
        net = _lattice(cfg["network"], dtype)
        d = _sweep(cfg, net, cfg["init"], cfg["eps"], progress=progress, label="settle", timings=timings)
        # a window of every step and every output from each member's settled state (one eps at a time: memory)
        E, S = len(cfg["eps"]), cfg["seeds"]
        n_win = int(cfg["window_steps"])
        model = dr.DiscreteMap(net, dt=cfg["dt"])
        rec_w = dr.Record(every=1, which="all", fields=("o",), phases=False)
        orbit, kk = np.zeros((E, S, net.n_rings), np.int8), np.zeros((E, S, net.n_rings), np.int8)
        tic = time.perf_counter()
        for i, eps in enumerate(cfg["eps"]):
            m = eqx.tree_at(lambda m: m.network.coupling.eps, model, jnp.asarray(eps, dtype))
            s0 = dr.State(jnp.asarray(d["final_v"][i]), jnp.asarray(d["final_o"][i]))
            w = dr.simulate_batch(m, s0, n_steps=n_win, record=rec_w, chunk_size=cfg.get("chunk_size"))
            o, k = dr.classify_orbits(w.o[:, 1:], net.rings)
            jax.block_until_ready(k)
            orbit[i], kk[i] = np.asarray(o), np.asarray(k)
        timings["window"] = {"simulate_s": time.perf_counter() - tic}
        return {
            "t": d["t"],
            "eps": np.asarray(cfg["eps"], float),
            "orbit": orbit,
            "k": kk,
            "final_phase": d["snap_phase"][:, :, -1].astype(np.float16),
            "final_valid": d["snap_valid"][:, :, -1],
            "xi_fit": d["xi_fit"],
            "wall_density": d["wall_density"],
            "R": d["R"],
            "status": d["status"],
        }

    def analyse(self, data, cfg):
        import diffring as dr

        res = {"names": list(dr.ORBIT_NAMES), "rows": []}
        kmax = int(cfg["network"]["ring_size"]) // 2
        for i, eps in enumerate(cfg["eps"]):
            o, k = data["orbit"][i], data["k"][i]
            S = o.shape[0]
            row = {"eps": eps, "n_seeds": S}
            for code, nm in enumerate(dr.ORBIT_NAMES):
                f = (o == code).mean(1)
                row[nm] = [float(f.mean()), float(f.std(ddof=1) / math.sqrt(S)) if S > 1 else math.nan]
            for kv in range(1, kmax + 1):
                f = ((o == dr.PULSE) & (k == kv)).mean(1)
                row[f"k={kv}"] = [float(f.mean()), float(f.std(ddof=1) / math.sqrt(S)) if S > 1 else math.nan]
            pulse = (o == dr.PULSE).mean(1)
            row["n_k_present"] = [int(len(np.unique(k[s][o[s] == dr.PULSE]))) for s in range(S)]
            row["pulse_frac"] = float(pulse.mean())
            row["xi_final"] = float(data["xi_fit"][i][:, -1].mean())
            res["rows"].append(row)
        return res

    def figures(self, data, results, cfg, directory):
        import matplotlib

        import diffring as dr

        grid = tuple(cfg["network"]["shape"])
        E = len(cfg["eps"])
        fig, axs = _fig(E, 1, (3.0 * E, 3.3))
        cmap = matplotlib.colors.ListedColormap(["0.85", "C0", "C1", "C2", "k", "C3"])
        for i, eps in enumerate(cfg["eps"]):
            o, k = data["orbit"][i, 0], data["k"][i, 0].astype(int)
            code = np.where(
                o == dr.PULSE, np.clip(k, 1, 3), np.where(o == dr.QUIESCENT, 0, np.where(o == dr.CHATTER, 4, 5))
            )
            axs[0, i].imshow(code.reshape(grid), cmap=cmap, vmin=-0.5, vmax=5.5, interpolation="nearest")
            axs[0, i].set_title(f"eps = {eps:g}", fontsize=9)
            axs[0, i].set_xticks([])
            axs[0, i].set_yticks([])
        fig.suptitle(
            "orbit map, seed 0 (grey quiescent, blue k=1, orange k=2, green k=3, black chatter, red irregular)",
            fontsize=8,
        )
        fig.savefig(os.path.join(directory, "k_maps.png"), dpi=110)
        fig2, ax2 = _fig(2, 1, (11, 4))
        kmax = int(cfg["network"]["ring_size"]) // 2
        cats = ["quiescent"] + [f"k={v}" for v in range(1, kmax + 1)] + ["chatter", "irregular"]
        width = 0.8 / E
        for i, row in enumerate(results["rows"]):
            vals = [row[c][0] for c in cats]
            errs = [row[c][1] for c in cats]
            ax2[0, 0].bar(np.arange(len(cats)) + i * width, vals, width, yerr=errs, label=f"eps = {row['eps']:g}")
        ax2[0, 0].set_xticks(np.arange(len(cats)) + 0.4 - width / 2, cats)
        ax2[0, 0].set_ylabel("fraction of rings")
        ax2[0, 0].legend(fontsize=8)
        for i, eps in enumerate(cfg["eps"]):
            sel = (data["orbit"][i] == dr.PULSE) & (data["k"][i] == 1) & data["final_valid"][i]
            ax2[0, 1].hist(
                data["final_phase"][i][sel].astype(float),
                bins=36,
                range=(0, TWO_PI),
                histtype="step",
                density=True,
                label=f"eps = {eps:g}",
            )
        ax2[0, 1].set_xlabel("phase of k = 1 rings at the end (all seeds)")
        ax2[0, 1].legend(fontsize=8)
        fig2.savefig(os.path.join(directory, "orbit_histogram.png"), dpi=110)
        return ["k_maps.png", "orbit_histogram.png"]

    def report(self, results, cfg, meta):
        n = cfg["network"]
        kmax = int(n["ring_size"]) // 2
        cats = ["quiescent"] + [f"k={v}" for v in range(1, kmax + 1)] + ["chatter", "irregular"]
        L = _head(cfg, meta, self.title)
        L += [
            f"Setup: {n['boundary']} {n['shape'][0]} x {n['shape'][1]} S0 lattice of {n['ring_size']}-rings, init "
            f"`{cfg['init']}` (v uniform, o uniform in each neuron: every k-family is reachable), discrete map "
            f"dt = {cfg['dt']}, settled to t = {cfg['t1']:g}, then every output recorded for {cfg['window_steps']} "
            "steps and each ring classified by `diffring.classify_orbits` (k from the largest pulse count in each "
            f"half-window). {cfg['seeds']} seeds; fractions of rings, mean +- sem over seeds.",
            "",
            "| eps | " + " | ".join(cats) + " | distinct k per lattice | xi at the end |",
            "|---" * (len(cats) + 3) + "|",
        ]
        for r in results["rows"]:
            L.append(
                f"| {r['eps']:g} | "
                + " | ".join(f"{r[c][0]:.3f} +- {r[c][1]:.3f}" for c in cats)
                + f" | {r['n_k_present']} | {r['xi_final']:.2f} |"
            )
        L += ["", "## Findings", ""]
        rows = results["rows"]
        base = next((r for r in rows if r["eps"] == 0), None)
        present = all(min(r["n_k_present"]) == kmax for r in rows)
        L.append(
            f"- Every lattice (all eps, all seeds) holds rings on all {kmax} pulse families k = 1 ... {kmax} at "
            f"t = {cfg['t1']:g}: " + ("yes." if present else "no (see the table).")
        )
        if base is not None:
            L.append(
                "- Uncoupled reference (eps = 0) against the orbit catalogue (`docs/results/orbit_catalogue.md`, "
                "N = 6, 2000 isolated rings from the same kind of uniform states: k=1 0.136 +- 0.008, k=2 0.561 +- "
                f"0.011, k=3 0.294 +- 0.010): here k=1 {base['k=1'][0]:.3f}, k=2 {base['k=2'][0]:.3f}, "
                f"k=3 {base['k=3'][0]:.3f}."
            )
            for r in rows:
                if r["eps"] == 0:
                    continue
                parts = []
                for c in [f"k={v}" for v in range(1, kmax + 1)]:
                    d = r[c][0] - base[c][0]
                    e = math.hypot(r[c][1], base[c][1])
                    parts.append(f"{c} {d:+.3f} +- {e:.3f}")
                L.append(
                    f"- eps = {r['eps']:g} vs eps = 0 (change of the fraction of rings): " + ", ".join(parts) + "."
                )
        L += ["", "Figures: `E5_multistability/k_maps.png`, `E5_multistability/orbit_histogram.png`.", ""]
        return "\n".join(L)


class E6Size(AbstractExperiment):
    """E6: 1-D chains vs 2-D lattices, and finite size L = 32 ... 256."""

    name: ClassVar[str] = "E6_size"
    title: ClassVar[str] = "E6: chains vs lattices and finite-size effects"

    def simulate(self, cfg, progress, timings):
        dtype = _dtype(cfg)
        out = {}
        for s in cfg["systems"]:
            net = _lattice({**cfg["network"], "shape": s["shape"]}, dtype)
            sub = {**cfg, "seeds": s["seeds"]}
            lab = "x".join(str(v) for v in s["shape"])
            kymo = lab == str(cfg.get("kymograph"))
            d = _sweep(sub, net, cfg["init"], [None], progress=progress, label=lab, timings=timings, keep_phases=kymo)
            if kymo:
                out[f"{lab}/phase0"] = d["phase0"].astype(np.float16)  # seed 0, every record: the kymograph
            out[f"{lab}/t"] = d["t"]
            for k in ("xi_fit", "xi_cross", "R", "wall_density", "mean_domain_size"):
                out[f"{lab}/{k}"] = d[k][0]
            out[f"{lab}/C1"] = d["C"][0][..., 1]
            out[f"{lab}/status"] = d["status"][0]
            out[f"{lab}/final_phase"] = d["snap_phase"][0, 0, -1].astype(np.float16)
        return out

    def analyse(self, data, cfg):
        res = {"systems": []}
        for s in cfg["systems"]:
            lab = "x".join(str(v) for v in s["shape"])
            t = data[f"{lab}/t"]
            L = max(s["shape"])
            r = {
                "label": lab,
                "dim": len(s["shape"]),
                "L": L,
                "n_rings": int(np.prod(s["shape"])),
                "seeds": s["seeds"],
                "status_ok": bool(np.all(data[f"{lab}/status"] == 0)),
            }
            for k in ("xi_fit", "xi_cross", "C1", "R", "wall_density"):
                r[k] = steady_state(t, data[f"{lab}/{k}"], frac=cfg["steady"]["frac"], tol=cfg["steady"]["tol"])
            r["xi_over_L"] = r["xi_fit"]["mean"] / L
            g = cfg["growth"]
            xi = data[f"{lab}/xi_fit"]
            win = growth_window(t, xi.mean(0), t_min=g["t_min"], y_min=g["xi_min"], y_max=g["xi_max_frac"] * L)
            r["fit"] = (
                None
                if win is None or s["seeds"] < 2
                else fit_power_law(t, xi, win, n_boot=g["n_boot"], seed=cfg["seed"])
            )
            for tq in cfg["report_times"]:
                r[f"xi@{tq:g}"], _ = _at(t, xi, tq)
                r[f"xi_cross@{tq:g}"], _ = _at(t, data[f"{lab}/xi_cross"], tq)
            res["systems"].append(r)
        by = {r["label"]: r for r in res["systems"]}
        res["pairs"] = []
        for a, b in cfg.get("pairs", []):
            if a in by and b in by:
                p = {"a": a, "b": b}
                for k in ("xi_fit", "xi_cross", "C1"):
                    p[k] = ratio_ci(by[a][k]["per_seed"], by[b][k]["per_seed"], seed=cfg["seed"])
                res["pairs"].append(p)
        return res

    def figures(self, data, results, cfg, directory):
        fig, axs = _fig(2, 1, (12, 4.5))
        for r in results["systems"]:
            lab = r["label"]
            t = data[f"{lab}/t"]
            _band(axs[0, 0], t, data[f"{lab}/xi_fit"], f"{lab} ({r['seeds']} seeds)")
            _band(axs[0, 1], t, data[f"{lab}/xi_fit"] / r["L"], lab)
        for ax, yl, lo in zip(axs[0], ("xi (rings)", "xi / L"), (0.1, 1e-3), strict=True):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(bottom=lo)
            ax.set_xlabel("t")
            ax.set_ylabel(yl)
            ax.legend(fontsize=7)
        fig.savefig(os.path.join(directory, "xi_sizes.png"), dpi=110)
        names = ["xi_sizes.png"]
        lab = str(cfg.get("kymograph"))
        if f"{lab}/phase0" in data:
            from . import _plot

            ph = data[f"{lab}/phase0"].astype(float)
            fig, _ = _plot.kymograph(
                data[f"{lab}/t"],
                np.nan_to_num(ph),
                np.isfinite(ph),
                title=f"chain of {lab} rings, seed 0: ring phases (grey = not yet defined)",
            )
            fig.savefig(os.path.join(directory, "kymograph.png"), dpi=110)
            names.append("kymograph.png")
        return names

    def report(self, results, cfg, meta):
        n = cfg["network"]
        tq = cfg["report_times"]
        L = _head(cfg, meta, self.title)
        L += [
            f"Setup: {n['boundary']} S0 chains and square lattices of {n['ring_size']}-rings, eps = {n['eps']}, init "
            f"`{cfg['init']}`, discrete map dt = {cfg['dt']}, t = 0 ... {cfg['t1']:g}. Steady state = mean over the "
            f"last {cfg['steady']['frac']:.0%} (plateau if the drift against the window before is <= "
            f"{cfg['steady']['tol']:g}). xi is capped at L (longest side); chains use C(Delta) along the chain.",
            "",
            "| system | rings | seeds | "
            + " | ".join(f"xi_fit(t={x:g})" for x in tq)
            + " | "
            + " | ".join(f"xi_cross(t={x:g})" for x in tq)
            + " | steady xi_fit | xi_fit / L | drift | plateau | steady xi_cross | drift | steady C1 | drift | "
            "steady R | xi_fit growth z +- err (window) |",
            "|---" * (13 + 2 * len(tq)) + "|",
        ]
        for r in results["systems"]:
            f = r["fit"]
            fit = (
                ""
                if f is None
                else f"{f['z']:.3f} +- {f['z_err']:.3f} ({f['window'][0]:g}-{f['window'][1]:g}, {f['better']})"
            )
            L.append(
                f"| {r['label']} | {r['n_rings']} | {r['seeds']} | "
                + " | ".join(f"{r[f'xi@{x:g}']:.2f}" for x in tq)
                + " | "
                + " | ".join(f"{r[f'xi_cross@{x:g}']:.2f}" for x in tq)
                + f" | {_pm(r['xi_fit']['mean'], r['xi_fit']['sem'], '.2f')} | {r['xi_over_L']:.3f} | "
                f"{r['xi_fit']['drift']:+.3f} | {'yes' if r['xi_fit']['plateau'] else 'no'} | "
                f"{_pm(r['xi_cross']['mean'], r['xi_cross']['sem'], '.2f')} | {r['xi_cross']['drift']:+.3f} | "
                f"{_pm(r['C1']['mean'], r['C1']['sem'], '.3f')} | {r['C1']['drift']:+.3f} | "
                f"{_pm(r['R']['mean'], r['R']['sem'], '.3f')} | {fit} |"
            )
        if results.get("pairs"):
            L += [
                "",
                "Ratios of steady-state means (95 % bootstrap CI over seeds):",
                "",
                "| system | vs | xi_fit ratio | xi_cross ratio | C1 ratio |",
                "|---|---|---|---|---|",
            ]
            for p in results["pairs"]:
                cells = [
                    f"{p[k]['ratio']:.2f} [{p[k]['lo']:.2f}, {p[k]['hi']:.2f}]" for k in ("xi_fit", "xi_cross", "C1")
                ]
                L.append(f"| {p['a']} | {p['b']} | " + " | ".join(cells) + " |")
        L += [
            "",
            "Note: `xi_fit` (exponential fit of C down to C = 0.05) grows with L at early times (t = 20: about "
            "L / 6 for every L), because C(Delta) has a slowly decaying tail that the fit follows; `xi_cross` "
            "(1/e crossing) and C1 do not. Compare sizes with xi_cross and C1.",
            "",
            "Figures: `E6_size/xi_sizes.png` (xi(t) and xi/L, log-log, mean +- sem)"
            + (
                f", `E6_size/kymograph.png` (chain of {cfg['kymograph']} rings, seed 0)."
                if cfg.get("kymograph")
                else "."
            ),
            "",
        ]
        return "\n".join(L)


EXPERIMENTS: dict[str, AbstractExperiment] = {
    e.name: e for e in (E1Catalogue(), E2Growth(), E3Domains(), E4Sharing(), E5Multistability(), E6Size())
}
ALIASES = {name.split("_")[0]: name for name in EXPERIMENTS}


def experiment_names() -> list[str]:
    return list(EXPERIMENTS)


def get_experiment(name: str) -> AbstractExperiment:
    """By full name (E2_xi_growth) or short name (E2)."""
    full = ALIASES.get(name, name)
    if full not in EXPERIMENTS:
        raise DiffringError("experiment", name, "expected one of " + ", ".join(list(ALIASES) + list(EXPERIMENTS)))
    return EXPERIMENTS[full]


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, pathlib.Path):
        return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def write_outputs(exp: AbstractExperiment, data, cfg, out: str, meta: dict) -> dict:
    """Analyse `data`, write figures, summary.json and the markdown report (data.npz already written)."""
    d = pathlib.Path(out) / exp.name
    results = exp.analyse(data, cfg)
    figs = exp.figures(data, results, cfg, str(d))
    meta = {**meta, "figures": figs}
    summary = {
        "experiment": exp.name,
        **meta,
        "config": {k: v for k, v in cfg.items() if not k.startswith("_")},
        "results": results,
    }
    (d / "summary.json").write_text(json.dumps(_jsonable(summary), indent=1) + "\n")
    (pathlib.Path(out) / f"{exp.name}.md").write_text(exp.report(results, cfg, meta))
    return summary


#: Config keys that change the simulated data (the others only change the analysis and report).
SIMULATION_KEYS = (
    "dtype",
    "seed",
    "seeds",
    "network",
    "eps",
    "init",
    "dt",
    "t1",
    "every",
    "segments",
    "conditions",
    "systems",
    "window_steps",
    "states",
)


def reanalyse(name: str, out: str | None = None, *, small: bool = False) -> dict:
    """Redo analysis, figures, summary.json and report from an existing `out/<name>/data.npz`
    (no simulation); the run's metadata (command, timings, versions) is kept from its summary.json."""
    exp = get_experiment(name)
    cfg = load_experiment_config(exp.name, small)
    out = out or ("runs/experiments-small" if small else "docs/results")
    d = pathlib.Path(out) / exp.name
    if not (d / "data.npz").is_file() or not (d / "summary.json").is_file():
        raise DiffringError("--report-only", str(d), "needs data.npz and summary.json of a finished run there")
    old = json.loads((d / "summary.json").read_text())
    ran = old["config"]
    for k, v in cfg.items():
        if k in SIMULATION_KEYS and _jsonable(v) != ran.get(k):
            raise DiffringError(
                f"config.{k}", v, f"differs from the simulated data ({ran.get(k)}): rerun the experiment"
            )
    meta = {k: v for k, v in old.items() if k not in ("experiment", "config", "results", "figures")}
    meta.setdefault("config_file", f"configs/experiments/{exp.name}.yaml")
    cfg["_dir"] = d
    return write_outputs(exp, dict(np.load(d / "data.npz")), cfg, out, meta)


def run_experiment(
    name: str, out: str | None = None, *, small: bool = False, progress: bool = True, command: str | None = None
) -> dict:
    """Run experiment `name` (E1 ... E6 or the full name) at full or small size; returns the summary.

    Writes `out/<name>.md` and `out/<name>/{data.npz, summary.json, *.png}`. Default `out`:
    `docs/results` (full size) or `runs/experiments-small` (small).
    """
    from ._run import _versions

    exp = get_experiment(name)
    cfg = load_experiment_config(exp.name, small)
    out = out or ("runs/experiments-small" if small else "docs/results")
    d = pathlib.Path(out) / exp.name
    d.mkdir(parents=True, exist_ok=True)
    cfg["_dir"] = d
    load0 = os.getloadavg()
    tic = time.perf_counter()
    timings: dict[str, Any] = {}
    data = exp.simulate(cfg, progress, timings)
    sim_s = time.perf_counter() - tic
    # float32 on disk (keeps the committed data small; the analysis reads these same arrays back)
    data = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in data.items()}
    np.savez_compressed(d / "data.npz", **data)
    import datetime

    cmd = command or f"diffring experiment {name}" + (" --small" if small else "") + (f" --out {out}" if out else "")
    meta = {
        "command": cmd,
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "size": cfg["size"],
        "versions": _versions(),
        "loadavg_start": list(load0),
        "loadavg_end": list(os.getloadavg()),
        "timings": timings,
        "simulate_s": sim_s,
        "data": f"{exp.name}/data.npz",
        "summary": f"{exp.name}/summary.json",
        "config_file": f"configs/experiments/{exp.name}.yaml",
        "analyse": f"diffring._experiments.{type(exp).__name__}.analyse",
        "seeds": {
            "seed": cfg.get("seed"),
            "n_seeds": cfg.get("seeds"),
            "rule": "initial states from jax.random.split(jax.random.key(seed), n_seeds)",
        },
    }
    meta["total_s"] = time.perf_counter() - tic
    return write_outputs(exp, dict(np.load(d / "data.npz")), cfg, out, meta)
