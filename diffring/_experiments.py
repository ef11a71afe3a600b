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
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import equinox as eqx
import numpy as np
import yaml

from ._errors import DiffringError, check_choice
from ._io import check_out_path
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
    t_start: float = 0.0,
) -> dict:
    """Simulate the discrete map on `network` from `states` (B, n); with `eps` (one per member) the
    S0 coupling strength is swept over the batch. Records every `every` steps the on-the-fly
    lattice observables (no outputs stored), and the ring phases at the end of each of `segments`
    equal segments (snapshots, record 0 included); times start at `t_start`. Returns NumPy arrays: t, every observable
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
    tracker = dr.PhaseTracker.init(states.o[..., probes], jnp.asarray(t_start, network.dtype))
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
            t0=t_start + s * seg * dt,
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
    states=None,
    t_start=0.0,
):
    """Run seeds x eps (S0) or seeds (eps_list = [None]) and return the data with a (E, S, ...) split;
    from `states` (E * S members, eps-major) at `t_start` if given (a continued run), else from
    the initialiser."""
    import jax
    import jax.numpy as jnp

    dt, S = cfg["dt"], cfg["seeds"]
    E = len(eps_list)
    if states is not None:
        pass
    elif eps_list[0] is not None and init_kind == "random_phase":
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
        t_start=t_start,
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
    #: store float64 arrays as float64 (default float32 keeps the committed data small)
    keep_float64: ClassVar[bool] = False

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


def _g(x, digits=4):
    """x to `digits` significant digits without exponent notation (report tables)."""
    if not math.isfinite(x) or x == 0:
        return f"{x:g}"
    dec = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{dec}f}"


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
    """E1: the ring-orbit catalogue (`diffring.catalogue`): periods, basins, Floquet multipliers."""

    name: ClassVar[str] = "E1_orbit_catalogue"
    title: ClassVar[str] = "E1: periodic orbits of uncoupled rings"
    keep_float64: ClassVar[bool] = True  # the period checks are at the 1e-14 level
    N_MU: ClassVar[int] = 3  # multipliers kept per orbit after the one along the flow

    def simulate(self, cfg, progress, timings):
        import diffring as dr

        sizes = list(range(cfg["sizes"][0], cfg["sizes"][1] + 1))
        tic = time.perf_counter()
        rows, table = dr.catalogue(
            sizes, dt=cfg["dt"], n_states=cfg["states"], seed=cfg["seed"], t_settle=cfg["t_settle"]
        )
        timings["catalogue"] = {"simulate_s": time.perf_counter() - tic}
        mu = np.full((len(rows), self.N_MU), np.nan)
        for i, r in enumerate(rows):
            m = np.asarray(r["multipliers"])
            rest = np.abs(np.delete(m, np.argmin(np.abs(m - 1)))) if m.size else m
            mu[i, : min(self.N_MU, rest.size)] = rest[: self.N_MU]
        out = {k: np.asarray([r[k] for r in rows], float) for k in ("T_spec", "T_cont", "T_map", "basin", "basin_se")}
        out.update({k: np.asarray([r[k] for r in rows], float) for k in ("dist1", "residual", "kink")})
        out.update(
            N=np.asarray([r["N"] for r in rows]),
            k=np.asarray([r["k"] for r in rows]),
            ok=np.asarray([r["ok"] for r in rows]),
            mu_rest=mu,
            other_N=np.asarray(sizes),
            other=np.asarray([[table[N][x] for x in ("quiescent", "chatter", "irregular")] for N in sizes], float),
        )
        return out

    def analyse(self, data, cfg):
        N, k = data["N"].astype(int), data["k"].astype(int)
        div = N % k == 0
        T1 = {int(n): float(t) for n, kk, t in zip(N, k, data["T_cont"], strict=True) if kk == 1}
        scale = [
            abs(float(t) / T1[int(n) // int(kk)] - 1)
            for n, kk, t in zip(N, k, data["T_cont"], strict=True)
            if n % kk == 0 and kk > 1 and int(n) // int(kk) in T1
        ]
        ok = data["ok"].astype(bool)
        return {
            "stored_dtype": str(data["T_cont"].dtype),
            "n_orbits": int(N.size),
            "sizes": [int(data["other_N"][0]), int(data["other_N"][-1])],
            "max_rel_cont_vs_spec": float(np.max(np.abs(data["T_cont"][div] / data["T_spec"][div] - 1))),
            "max_rel_map_vs_spec": float(np.max(np.abs(data["T_map"][div] / data["T_spec"][div] - 1))),
            "max_rel_Tk_vs_T1": float(max(scale)) if scale else math.nan,
            "max_dist1": float(np.max(data["dist1"][ok])) if ok.any() else math.nan,
            "max_residual": float(np.max(data["residual"])),
            "not_smooth": [[int(a), int(b)] for a, b in zip(N[~ok], k[~ok], strict=True)],
            "max_mu2_smooth": float(np.nanmax(data["mu_rest"][ok, 0])) if ok.any() else math.nan,
            "basin_sum_max_dev": float(
                max(
                    abs(data["basin"][N == n].sum() + data["other"][i, :, 0].sum() - 1)
                    for i, n in enumerate(data["other_N"])
                )
            ),
        }

    def figures(self, data, results, cfg, directory):
        N, k = data["N"].astype(int), data["k"].astype(int)
        fig, axs = _fig(3, 1, (15, 4.2))
        for kk in sorted(set(k)):
            s = k == kk
            (ln,) = axs[0, 0].plot(N[s], data["T_cont"][s], "o", ms=4, label=f"k = {kk} (continuous)")
            axs[0, 0].plot(N[s], data["T_map"][s], "x", color=ln.get_color(), ms=5)
            d = s & (N % k == 0)
            axs[0, 0].plot(N[d], data["T_spec"][d], "-", color=ln.get_color(), lw=0.8)
        axs[0, 0].set_xlabel("ring size N")
        axs[0, 0].set_ylabel("probe period")
        axs[0, 0].set_title("periods: o continuous, x discrete map, line = spec T_1(N/k)", fontsize=9)
        axs[0, 0].legend(fontsize=7, ncol=2)
        sizes = data["other_N"].astype(int)
        bottom = np.zeros(sizes.size)
        for kk in sorted(set(k)):
            frac = np.array([data["basin"][(N == n) & (k == kk)].sum() for n in sizes])
            axs[0, 1].bar(sizes, frac, bottom=bottom, label=f"k = {kk}")
            bottom += frac
        for j, nm in enumerate(("quiescent", "chatter", "irregular")):
            frac = data["other"][:, j, 0]
            axs[0, 1].bar(sizes, frac, bottom=bottom, label=nm, color=("0.8", "k", "C3")[j])
            bottom += frac
        axs[0, 1].set_xlabel("ring size N")
        axs[0, 1].set_ylabel(f"fraction of {cfg['states']} random states")
        axs[0, 1].set_title("basins of attraction (discrete map)", fontsize=9)
        axs[0, 1].legend(fontsize=6, ncol=2)
        ok = data["ok"].astype(bool)
        for kk in sorted(set(k)):
            s = (k == kk) & ok
            axs[0, 2].plot(N[s], data["mu_rest"][s, 0], "o", ms=4, label=f"k = {kk}")
        axs[0, 2].axhline(1, color="0.5", lw=0.6, ls=":")
        axs[0, 2].set_xlabel("ring size N")
        axs[0, 2].set_ylabel("|mu_2| (largest after the flow multiplier)")
        axs[0, 2].set_title("Floquet: near-neutral pulse-spacing modes (k >= 2)", fontsize=9)
        axs[0, 2].legend(fontsize=7)
        fig.savefig(os.path.join(directory, "catalogue.png"), dpi=110)
        return ["catalogue.png"]

    def report(self, results, cfg, meta):
        data = np.load(os.path.join(meta["data_dir"], "data.npz")) if "data_dir" in meta else None
        L = _head(cfg, meta, self.title)
        L += [
            f"Uncoupled rings N = {results['sizes'][0]} ... {results['sizes'][1]} (theta_H = 0.49, theta_L = 0.2, "
            f"tau = 1), every k-pulse family ({results['n_orbits']} orbits). `T_spec` = T_1(N/k) from the spec "
            "formula (only when k | N); `T_cont` = probe period of the continuous hard model (lap / k; shooting "
            f"Newton on the exact event-driven flow); `T_map` = mean probe inter-fire interval of the discrete map "
            f"at dt = {cfg['dt']}; `basin` = fraction of {cfg['states']} uniform random states (`init.uniform`, "
            f"discrete map, t_settle = {cfg['t_settle']:g}) ending on the k-pulse orbit, +- binomial standard error; "
            "`abs mu_2..4` = largest Floquet multipliers after the one along the flow (monodromy over one lap, "
            "central differences of the exact hard flow); `abs(mu_1 - 1)` = distance of the flow multiplier from 1.",
            "",
            "Checks (from the data):",
            "",
        ]
        if results.get("stored_dtype", "float64") != "float64":
            L += [
                f"(The data were stored as {results['stored_dtype']}: the period checks below resolve relative "
                "differences only down to about 6e-8.)",
                "",
            ]
        L += [
            f"- max |T_cont / T_spec - 1| over k | N: {results['max_rel_cont_vs_spec']:.1e}; discrete map "
            f"(dt = {cfg['dt']}): {results['max_rel_map_vs_spec']:.1e}.",
            f"- T_k(N) = T_1(N/k): max |T_cont(N, k) / T_cont(N/k, 1) - 1| = {results['max_rel_Tk_vs_T1']:.1e}.",
            f"- max |mu_1 - 1| over smooth orbits: {results['max_dist1']:.1e}; Newton residual <= "
            f"{results['max_residual']:.1e}; not smooth (no multipliers, see `diffring.floquet`): "
            f"{results['not_smooth']}.",
            f"- largest |mu_2| over smooth orbits: {results['max_mu2_smooth']:.4f} (< 1: every smooth orbit is "
            "stable; values near 1 are the slow pulse-spacing modes of k >= 2 orbits).",
            f"- basins + quiescent + chatter + irregular sum to 1 within {results['basin_sum_max_dev']:.1e} per N.",
            "",
        ]
        if data is not None:
            L += [
                "| N | k | T_spec | T_cont | T_map | basin | abs mu_2 | abs mu_3 | abs mu_4 | abs(mu_1 - 1) | kink |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for i in range(data["N"].size):
                ts = "" if np.isnan(data["T_spec"][i]) else f"{data['T_spec'][i]:.6f}"
                mu = ["" if np.isnan(x) else f"{x:.3g}" for x in data["mu_rest"][i]]
                L.append(
                    f"| {data['N'][i]} | {data['k'][i]} | {ts} | {data['T_cont'][i]:.6f} | {data['T_map'][i]:.4f} | "
                    f"{data['basin'][i]:.3f} +- {data['basin_se'][i]:.3f} | {' | '.join(mu)} | "
                    f"{data['dist1'][i]:.1e} | {data['kink'][i]:.0e} |"
                )
            L += [
                "",
                "Other final states per N (same random states):",
                "",
                "| N | quiescent | chatter | irregular |",
                "|---|---|---|---|",
            ]
            for i, n in enumerate(data["other_N"]):
                L.append(f"| {n} | " + " | ".join(f"{p:.3f} +- {s:.3f}" for p, s in data["other"][i]) + " |")
        L += [
            "",
            "Figure: `E1_orbit_catalogue/catalogue.png` (periods, basins, |mu_2|).",
            "",
            "![catalogue](E1_orbit_catalogue/catalogue.png)",
            "",
        ]
        return "\n".join(L)


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
            "![xi(t)](E2_xi_growth/xi_loglog.png)",
            "",
            "![C1 and R](E2_xi_growth/C1_R.png)",
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
            for k in (
                "xi_fit",
                "xi_cross",
                "wall_density",
                "mean_domain_size",
                "largest_domain",
                "n_domains",
                "R_local",
                "status",
            )
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
            for k in ("wall_density", "mean_domain_size", "largest_domain", "n_domains", "xi_fit", "xi_cross", "C1"):
                if k not in data:
                    continue
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
        if "steady" in cfg:
            res["steady"] = {
                k: steady_state(t, data[k].astype(float), frac=cfg["steady"]["frac"], tol=cfg["steady"]["tol"])
                for k in ("wall_density", "mean_domain_size", "largest_domain", "xi_cross", "C1")
                if k in data
            }
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
        panels = sorted({int(np.argmin(np.abs(st - float(w)))) for w in cfg.get("panel_times", st)})
        fig, axs = _fig(len(panels), 1, (3.4 * len(panels), 3.4))
        for ax, i in zip(axs[0], panels, strict=True):
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
        xis = {"xi (1/e crossing)": data["xi_cross"]} if "xi_cross" in data else {}
        _plot.log_series(t, {**xis, "xi (ExpFit)": data["xi_fit"]}, ax=ax2[0, 2], ylabel="xi (rings)")
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
            "| t | wall density | mean domain size | largest domain | domains | xi_cross | xi_fit | C1 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in results["rows"]:
            xc = _pm(r["xi_cross"], r["xi_cross_sem"], ".2f") if "xi_cross" in r else ""
            L.append(
                f"| {r['t']:g} | {_pm(r['wall_density'], r['wall_density_sem'], '.4f')} | "
                f"{_pm(r['mean_domain_size'], r['mean_domain_size_sem'], '.1f')} | "
                f"{_pm(r['largest_domain'], r['largest_domain_sem'], '.0f')} | "
                f"{_pm(r['n_domains'], r['n_domains_sem'], '.0f')} | {xc} | "
                f"{_pm(r['xi_fit'], r['xi_fit_sem'], '.2f')} | {_pm(r['C1'], r['C1_sem'], '.3f')} |"
            )
        L.append("")
        if "steady" in results:
            sd = results["steady"]
            w = next(iter(sd.values()))
            L += [
                f"Steady state: mean over t = {w['window'][0]:g} ... {w['window'][1]:g} (last "
                f"{cfg['steady']['frac']:.0%}) against the window before (t = {w['prev_window'][0]:g} ... "
                f"{w['prev_window'][1]:g}); drift = relative change +- its standard error over seeds; plateau if "
                f"|drift| <= {cfg['steady']['tol']:g}:",
                "",
                "| quantity | last window | previous window | drift | plateau |",
                "|---|---|---|---|---|",
            ]
            for k, q in sd.items():
                L.append(
                    f"| {k} | {_g(q['mean'])} +- {_g(q['sem'], 2)} | {_g(q['prev_mean'])} | "
                    f"{q['drift']:+.3f} +- {q['drift_sem']:.3f} | {'yes' if q['plateau'] else 'no'} |"
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
            "![phase maps](E3_domains/phase_maps.png)",
            "",
            "![walls and domains](E3_domains/walls_domains.png)",
            "",
            "![animation](E3_domains/phase_maps.gif)",
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
                d = _sweep(
                    cfg,
                    net,
                    cfg["init"],
                    eps,
                    progress=progress,
                    label=lab,
                    gauge=gauge,
                    timings=timings,
                    t1=c.get("t1"),
                )
                for i, e in enumerate(eps):
                    cond = {**c, **extra, "eps": e if e is not None else 0.0}
                    key = self._label(cond)
                    out[f"{key}/t"] = d["t"]  # conditions may run for different times (`t1` per condition)
                    for k in ("xi_fit", "xi_cross", "mean_domain_size", "largest_domain", "wall_density", "R"):
                        out[f"{key}/{k}"] = d[k][i]
                    out[f"{key}/C1"] = d["C"][i][..., 1]
                    out[f"{key}/valid_frac"] = d["snap_valid"][i].mean(-1)  # (S, snaps)
                    out[f"{key}/status"] = d["status"][i]
                    out[f"{key}/snap_phase"] = d["snap_phase"][i, 0, -1].astype(np.float16)
        return out

    @staticmethod
    def _t(data, key):
        return data[f"{key}/t"] if f"{key}/t" in data else data["t"]

    #: steady-state quantities; xi_cross (1/e crossing) is the primary correlation size (xi_fit follows
    #: the slow tail of C and is unreliable before the plateau, see E6)
    STEADY: ClassVar[tuple[str, ...]] = (
        "xi_cross",
        "xi_fit",
        "mean_domain_size",
        "largest_domain",
        "wall_density",
        "C1",
    )
    RATIOS: ClassVar[tuple[str, ...]] = ("xi_cross", "xi_fit", "mean_domain_size")

    def analyse(self, data, cfg):
        ss = cfg["steady"]
        Lsys = max(cfg["network"]["shape"])
        n_rings = int(np.prod(cfg["network"]["shape"]))
        res = {"conditions": [], "L": Lsys, "n_rings": n_rings, "frac": ss["frac"], "tol": ss["tol"]}
        for c in self._conditions(cfg):
            key = self._label(c)
            t = self._t(data, key)
            r = {
                "label": key,
                "scheme": c["scheme"],
                "ring_size": c["ring_size"],
                "eps": c["eps"],
                "aggregate": c["aggregate"],
                "shared": c.get("shared"),
                "t1": float(t[-1]),
                "seeds": int(data[f"{key}/xi_cross"].shape[0]),
                "status_ok": bool(np.all(data[f"{key}/status"] == 0)),
                "active_final": float(data[f"{key}/valid_frac"][:, -1].mean()),
            }
            for k in self.STEADY:
                r[k] = steady_state(t, data[f"{key}/{k}"].astype(float), frac=ss["frac"], tol=ss["tol"])
            r["xi_capped"] = bool(r["xi_cross"]["mean"] >= 0.95 * Lsys)
            r["size_capped"] = bool(r["mean_domain_size"]["mean"] >= 0.95 * n_rings)
            # seeds whose steady xi is the lattice size / that are one domain without walls
            r["seeds_xi_L"] = int(np.sum(np.asarray(r["xi_cross"]["per_seed"]) >= 0.95 * Lsys))
            r["seeds_one_domain"] = int(np.sum(np.asarray(r["mean_domain_size"]["per_seed"]) >= 0.95 * n_rings))
            r["largest_frac"] = r["largest_domain"]["mean"] / n_rings
            # the other domains (islands): mean size (rings outside the largest / other domains), seed mean of
            # the steady values; NaN when every seed is one domain
            n_dom = n_rings / np.asarray(r["mean_domain_size"]["per_seed"])
            rest = n_rings - np.asarray(r["largest_domain"]["per_seed"])
            isl = np.where(n_dom > 1.01, rest / np.maximum(n_dom - 1, 1e-9), np.nan)
            r["domains"] = float(np.mean(n_dom))
            r["island_size"] = float(np.nanmean(isl)) if np.isfinite(isl).any() else math.nan
            r["domains_per_seed"] = [float(v) for v in n_dom]
            # per seed: the time from which it stays one domain (None if its steady state is not one domain)
            one = data[f"{key}/mean_domain_size"].astype(float) >= 0.95 * n_rings
            r["t_one_domain"] = [
                float(t[one.shape[1] - int(np.argmin(o[::-1])) if not o.all() else 0]) if m >= 0.95 * n_rings else None
                for o, m in zip(one, r["mean_domain_size"]["per_seed"], strict=True)
            ]
            r["largest_frac_per_seed"] = [float(v) / n_rings for v in r["largest_domain"]["per_seed"]]
            m = data[f"{key}/xi_cross"].astype(float).mean(0)
            below = np.flatnonzero(m < 0.95 * Lsys)  # <xi> >= 0.95 L from t_xi_L to the end of the run
            r["t_xi_L"] = (
                None if below.size and below[-1] == t.size - 1 else float(t[below[-1] + 1 if below.size else 0])
            )
            if r["scheme"] == "S2" and r["active_final"] >= 0.5:
                # raw (ungauged) probe phases of seed 0 at the end: the locked offset between neighbours
                ph = data[f"{key}/snap_phase"].astype(float).reshape(tuple(cfg["network"]["shape"]))
                r["raw_C1_seed0"] = float(np.mean([np.cos(np.roll(ph, -1, a) - ph).mean() for a in (0, 1)]))
            res["conditions"].append(r)
        by = {r["label"]: r for r in res["conditions"]}
        res["pairs"] = []
        for a, b in cfg.get("pairs", []):
            if a in by and b in by:
                p = {"a": a, "b": b, "a_capped": by[a]["xi_capped"], "b_capped": by[b]["xi_capped"]}
                for k in self.RATIOS:
                    p[k] = ratio_ci(by[a][k]["per_seed"], by[b][k]["per_seed"], seed=cfg["seed"])
                res["pairs"].append(p)
        ref = by.get(cfg["reference"])
        if ref is not None:
            res["reference"] = cfg["reference"]
            for r in res["conditions"]:
                for k in self.RATIOS:
                    r[f"{k}_ratio"] = ratio_ci(r[k]["per_seed"], ref[k]["per_seed"], seed=cfg["seed"])
        res["aggregation"] = []
        for r in res["conditions"]:
            if r["aggregate"] == "sum" and r["scheme"] != "S0":
                other = by.get(r["label"][: -len("sum")] + "mean")
                if other is not None:
                    res["aggregation"].append(
                        {
                            "sum": r["label"],
                            "mean": other["label"],
                            "active_sum": r["active_final"],
                            "active_mean": other["active_final"],
                            "xi_sum": r["xi_cross"]["mean"],
                            "xi_mean": other["xi_cross"]["mean"],
                        }
                    )
        return res

    def figures(self, data, results, cfg, directory):
        conds = results["conditions"]
        fig, axs = _fig(2, 1, (13, 4.5))
        x = np.arange(len(conds))
        for ax, k, yl in (
            (axs[0, 0], "xi_cross", "steady-state xi, 1/e crossing (rings)"),
            (axs[0, 1], "mean_domain_size", "steady-state mean domain size (rings)"),
        ):
            m = [c[k]["mean"] for c in conds]
            e = [c[k]["sem"] for c in conds]
            colors = ["C0" if c["scheme"] == "S0" else "C1" if c["scheme"] == "S1" else "C2" for c in conds]
            hatch = ["//" if c["active_final"] < 0.5 else "" for c in conds]  # silent lattices
            ax.bar(x, np.maximum(m, 1e-3), yerr=e, color=colors, capsize=3, hatch=hatch)
            for xi, c in zip(x, conds, strict=True):
                ax.plot(np.full(len(c[k]["per_seed"]), xi), np.maximum(c[k]["per_seed"], 1e-3), "k.", ms=2)
            ax.axhline(results["L"] if k == "xi_cross" else results["n_rings"], color="0.4", lw=0.8, ls=":")
            ax.set_xticks(x, [c["label"] for c in conds], rotation=60, ha="right", fontsize=7)
            ax.set_ylabel(yl)
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.1 if k == "xi_cross" else 0.5)
        fig.suptitle(
            "steady state (last 20 % of each run); blue S0, orange S1, green S2; hatched = silent; "
            "dotted = whole lattice",
            fontsize=9,
        )
        fig.savefig(os.path.join(directory, "steady_state.png"), dpi=110)
        fig2, ax2 = _fig(2, 2, (12, 8))
        for c in conds:
            if c["active_final"] < 0.5:
                continue  # silent lattices (mean aggregation) have no phases to correlate
            j = 0 if c["scheme"] == "S0" else 1
            t = self._t(data, c["label"])
            _band(ax2[0, j], t, data[f"{c['label']}/xi_cross"].astype(float), c["label"])
            _band(ax2[1, j], t, data[f"{c['label']}/mean_domain_size"].astype(float), c["label"])
        for j, title in enumerate(("S0 (link coupling)", "S1 / S2 (shared neurons), sum")):
            for i, yl in enumerate(("xi (1/e crossing)", "mean domain size")):
                ax = ax2[i, j]
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel("t")
                ax.set_ylabel(yl)
                top = results["L"] if i == 0 else results["n_rings"]
                ax.set_ylim(0.1 if i == 0 else 0.5, 1.5 * top)
                ax.set_title(title + "; mean +- sem over seeds", fontsize=9)
                ax.legend(fontsize=7)
                for c in conds:  # shade the two windows the plateau check compares (S0 runs)
                    if c["scheme"] == ("S0" if j == 0 else "S1"):
                        w, pw = c["xi_cross"]["window"], c["xi_cross"]["prev_window"]
                        ax.axvspan(*w, color="0.85", lw=0, zorder=0)
                        if pw:
                            ax.axvspan(*pw, color="0.93", lw=0, zorder=0)
                        break
        fig2.savefig(os.path.join(directory, "xi_t.png"), dpi=110)
        return ["steady_state.png", "xi_t.png"]

    @staticmethod
    def _drift_txt(q):
        """'yes'/'no' by the tolerance, the drift +- its error, and whether it is distinguishable from 0."""
        return (
            f"{'yes' if q['plateau'] else 'no'} ({q['drift']:+.3f} +- {q['drift_sem']:.3f}"
            + (", distinguishable from 0" if q.get("drift_significant") else ", consistent with 0")
            + ")"
        )

    @staticmethod
    def _coupling_txt(results):
        """How much of the scheme difference survives at every S0 coupling: xi vs the walls."""
        conds = results["conditions"]
        s0 = [r for r in conds if r["scheme"] == "S0"]
        shared = [r for r in conds if r["scheme"] != "S0" and r["aggregate"] == "sum"]
        if not s0 or not shared:
            return []

        def span(v, f):
            if not v:
                return "-"
            lo, hi = f"{min(v):{f}}", f"{max(v):{f}}"
            return lo if lo == hi else f"{lo}-{hi}"

        at_l = [r for r in s0 if r["xi_capped"]]
        below = [r for r in s0 if not r["xi_capped"]]
        one_s0 = sum(r["seeds_one_domain"] for r in s0)
        one_sh = sum(r["seeds_one_domain"] for r in shared)
        # point defects: one large domain, the others islands of a few rings
        walled = [r for r in s0 if r["largest_frac"] >= 0.5 and r["island_size"] <= 3.0]
        txt = (
            f"- How much depends on the S0 coupling: {len(at_l)} of {len(s0)} S0 conditions also reach xi_cross = L"
            + (" (" + ", ".join(f"{r['label']}: {r['seeds_xi_L']} of {r['seeds']} seeds" for r in at_l) + ")")
            * bool(at_l)
            + (
                "; below L: "
                + ", ".join(
                    f"{r['label']} {_pm(r['xi_cross']['mean'], r['xi_cross']['sem'], '.2f')}"
                    + f" ({r['seeds_xi_L']} of {r['seeds']} seeds at L)" * bool(r["seeds_xi_L"])
                    for r in below
                )
            )
            * bool(below)
            + ". What separates the schemes more robustly are the walls: "
            f"{one_sh} of {sum(r['seeds'] for r in shared)} seeds of the `sum` shared schemes end as one domain "
            f"without walls, S0 only {one_s0} of {sum(r['seeds'] for r in s0)}"
            + (
                " ("
                + ", ".join(
                    f"{r['label']}: {r['seeds_one_domain']}, from t = "
                    + span([v for v in r["t_one_domain"] if v is not None], "g")
                    for r in s0
                    if r["seeds_one_domain"]
                )
                + "; the shared schemes from t = "
                + span([v for r in shared for v in r["t_one_domain"] if v is not None], "g")
                + ")"
            )
            * bool(one_s0)
        )
        if walled:
            fr = [r["largest_frac"] for r in walled]
            isl = [r["island_size"] for r in walled]

            txt += (
                f"; in {', '.join(r['label'] for r in walled)} the largest domain covers {span(fr, '.0%')} "
                "of the lattice and the other "
                f"domains are islands of {span(isl, '.1f')} rings on average (point defects), so S0's "
                "mean domain size counts its defects rather than the extent of its order"
            )
        return [txt + "."]

    @staticmethod
    def _walls_txt(r, results):
        """Where an S0 condition keeps its walls: one large domain and its islands, or many domains."""
        if r["largest_frac"] >= 0.5:
            return (
                f"S0 keeps walls: one domain covers {r['largest_frac']:.1%} of the lattice, the other "
                f"{r['domains'] - 1:.1f} domains (on average) are islands of {r['island_size']:.1f} rings"
            )
        return f"S0 keeps walls between {r['domains']:.0f} domains (the largest {r['largest_frac']:.0%} of the lattice)"

    @staticmethod
    def _ratio_txt(q, fmt=".2f"):
        return f"{q['ratio']:{fmt}} +- {q['err']:{fmt}} [{q['lo']:{fmt}}, {q['hi']:{fmt}}]"

    def report(self, results, cfg, meta):
        n, ss = cfg["network"], cfg["steady"]
        Lsys, n_rings = results["L"], results["n_rings"]
        t1s = sorted({r["t1"] for r in results["conditions"]})
        L = _head(cfg, meta, self.title)
        L += [
            f"Setup: {n['boundary']} {n['shape'][0]} x {n['shape'][1]} lattices ({n_rings} rings), init "
            f"`{cfg['init']}`, discrete map dt = {cfg['dt']}, {cfg['seeds']} seeds per condition (the same keys for "
            "every condition), observables every "
            f"t = {cfg['every'] * cfg['dt']:g}; runs end at t = "
            + " or ".join(f"{x:g}" for x in t1s)
            + " (column t1). S1/S2 have no eps (shared neurons couple the rings with the ring weights; `aggregate` "
            "decides how a shared neuron combines its predecessors). S2 phases are measured in the staggered gauge "
            "theta + pi (i + j mod 2): adjacent plaquettes run in opposite senses and lock pi apart at their "
            "top-left probes"
            + "".join(
                f" (measured, {r['label']}, seed 0, end of run: ungauged C1 = {r['raw_C1_seed0']:.4f})"
                for r in results["conditions"]
                if "raw_C1_seed0" in r
            )
            + ".",
            f"Correlation size: `xi_cross` = first Delta where C(Delta) < 1/e (interpolated; capped at L = {Lsys} "
            "when C stays above 1/e out to L/2), the primary measure; `xi_fit` (exponential fit) is listed too. "
            "Domains: connected regions without wall bonds (|phase difference| > pi/2); mean domain size = "
            "rings / domains.",
            f"Steady state: the mean over the last {ss['frac']:.0%} of each run (per seed; then mean +- sem over "
            "seeds). Plateau check: drift = (last window - preceding window of the same length) / last window, "
            "+- its standard error over seeds; 'plateau' if |drift| <= "
            f"{ss['tol']:g}. Ratios: ratio of seed means, +- bootstrap std, [95 % bootstrap CI] (4000 resamples "
            "of the seeds).",
            "",
            "| condition | t1 | active rings | xi_cross | drift | plateau | xi_fit | mean domain size | drift | "
            "plateau | wall density | C1 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["conditions"]:
            x, d = r["xi_cross"], r["mean_domain_size"]
            L.append(
                f"| {r['label']} | {r['t1']:g} | {r['active_final']:.3f} | {_pm(x['mean'], x['sem'], '.2f')} | "
                f"{x['drift']:+.3f} +- {x['drift_sem']:.3f} | {'yes' if x['plateau'] else 'no'} | "
                f"{_pm(r['xi_fit']['mean'], r['xi_fit']['sem'], '.2f')} | {_pm(d['mean'], d['sem'], '.1f')} | "
                f"{d['drift']:+.3f} +- {d['drift_sem']:.3f} | {'yes' if d['plateau'] else 'no'} | "
                f"{_pm(r['wall_density']['mean'], r['wall_density']['sem'], '.4f')} | "
                f"{_pm(r['C1']['mean'], r['C1']['sem'], '.3f')} |"
            )
        L += ["", "## Does the steady-state correlation size depend on the sharing scheme? (claim 5)", ""]
        L += self._answer(results)
        if results.get("pairs"):
            L += [
                "",
                "Like-for-like comparisons (ratio +- bootstrap std [95 % CI]; '(whole lattice)' = that condition's "
                "xi is the lattice size, so a ratio with it in the numerator is a lower bound):",
                "",
                "| condition | vs | xi_cross ratio | xi_fit ratio | mean domain size ratio |",
                "|---|---|---|---|---|",
            ]
            for p in results["pairs"]:
                a = p["a"] + (" (whole lattice)" if p["a_capped"] else "")
                b = p["b"] + (" (whole lattice)" if p["b_capped"] else "")
                L.append(f"| {a} | {b} | " + " | ".join(self._ratio_txt(p[k]) for k in self.RATIOS) + " |")
        L += ["", "Per condition:", ""]
        L += self._per_condition(results)
        L += [
            "",
            "Figures: `E4_sharing/steady_state.png` (bars = mean +- sem, dots = seeds; log axis), "
            "`E4_sharing/xi_t.png` (xi_cross(t) and mean domain size(t) per condition, mean +- sem; grey bands = "
            "the two windows the plateau check compares).",
            "",
            "![steady state](E4_sharing/steady_state.png)",
            "",
            "![xi(t)](E4_sharing/xi_t.png)",
            "",
        ]
        return "\n".join(L)

    def _answer(self, results):
        """The generated answer: the first configured pair is the headline scheme comparison."""
        by = {r["label"]: r for r in results["conditions"]}
        Lsys = results["L"]
        out = []
        pairs = results.get("pairs", [])
        if pairs:
            p = pairs[0]
            a, b = by[p["a"]], by[p["b"]]
            q, qd = p["xi_cross"], p["mean_domain_size"]
            dep = q["lo"] > 1 or q["hi"] < 1
            dep_d = qd["lo"] > 1 or qd["hi"] < 1
            bound = " at least" if a["xi_capped"] and not b["xi_capped"] else ""
            bound_d = " at least" if a["size_capped"] and not b["size_capped"] else ""
            still = [r for r in (a, b) if not r["xi_cross"]["plateau"] and not r["xi_capped"]]
            still_d = [r for r in (a, b) if not r["mean_domain_size"]["plateau"] and not r["size_capped"]]
            t_end = max(a["t1"], b["t1"])

            def pm(r, k, f):
                return _pm(r[k]["mean"], r[k]["sem"], f)

            def drifts(rs, k):
                return ", ".join(f"{r['label']} {self._drift_txt(r[k])}" for r in rs)

            out.append(
                f"**{'Yes, it depends' if dep or dep_d else 'No, it does not depend'} on the scheme.** Same ring "
                f"size N = {a['ring_size']}, {a['label']} vs {b['label']} (means of the last {results['frac']:.0%} "
                f"of each run):"
            )
            out.append(
                f"- Mean domain size: {pm(a, 'mean_domain_size', '.1f')} vs {pm(b, 'mean_domain_size', '.1f')} rings, "
                f"a factor{bound_d} **{qd['ratio']:.1f} +- {qd['err']:.1f}** (95 % CI [{qd['lo']:.1f}, "
                f"{qd['hi']:.1f}])"
                + (
                    f"; steady by the |drift| <= {results['tol']:g} criterion (plateau: "
                    f"{drifts((a, b), 'mean_domain_size')})."
                    if not still_d
                    else f"; NOT steady: {drifts(still_d, 'mean_domain_size')}."
                )
            )
            out.append(
                f"- Correlation length: xi_cross = {pm(a, 'xi_cross', '.2f')}"
                + (f" (the whole {Lsys} x {Lsys} lattice)" if a["xi_capped"] else "")
                + f" vs {pm(b, 'xi_cross', '.2f')}"
                + (" (the whole lattice)" if b["xi_capped"] else "")
                + f", a factor{bound} **{q['ratio']:.1f} +- {q['err']:.1f}** (95 % CI [{q['lo']:.1f}, {q['hi']:.1f}])"
                + (
                    f" at t = {t_end:g}; this is NOT a steady-state factor: {drifts(still, 'xi_cross')} per window "
                    f"(still ordering after t = {t_end:g}), so the steady-state xi ratio may be smaller."
                    if still
                    else f"; steady by the |drift| <= {results['tol']:g} criterion (plateau: "
                    f"{drifts((a, b), 'xi_cross')})."
                )
            )
            if a["xi_capped"]:
                out.append(
                    f"- {a['label']} is limited only by the lattice: one in-phase region without walls, so both "
                    "factors are lower bounds that grow with the lattice size."
                )
            out += self._coupling_txt(results)
            for p2 in pairs[1:]:
                a2, b2 = by[p2["a"]], by[p2["b"]]
                if a2["xi_capped"] and b2["xi_capped"] and a2["scheme"] != b2["scheme"]:
                    out.append(
                        f"- {a2['label']} vs {b2['label']}: both reach xi_cross = L (no difference in xi), but the "
                        f"mean domain size is {pm(a2, 'mean_domain_size', '.1f')} vs "
                        f"{pm(b2, 'mean_domain_size', '.1f')} rings (factor "
                        f"{self._ratio_txt(p2['mean_domain_size'], '.1f')}): {self._walls_txt(b2, results)}, "
                        "the shared scheme has none."
                    )
        shared = [r for r in results["conditions"] if r["scheme"] != "S0" and r["aggregate"] == "sum"]
        if shared:
            capped = [r for r in shared if r["xi_capped"]]
            out.append(
                f"- Among the shared schemes with `sum` aggregation ({', '.join(r['label'] for r in shared)}): "
                f"{len(capped)} of {len(shared)} fill the whole lattice (xi_cross = L, no walls: mean domain size "
                + ", ".join(f"{r['mean_domain_size']['mean']:.0f}" for r in shared)
                + f" of {results['n_rings']})"
                + (
                    ", reached by t = " + ", ".join(f"{r['t_xi_L']:g}" for r in capped if r["t_xi_L"] is not None)
                    if capped
                    else ""
                )
                + (
                    ". So the shared schemes do not differ from one another (each is one in-phase region); the "
                    "difference is between link coupling (S0) and neuron sharing."
                    if len(capped) == len(shared)
                    else "; xi_cross: "
                    + ", ".join(
                        f"{r['label']} {_pm(r['xi_cross']['mean'], r['xi_cross']['sem'], '.2f')}" for r in shared
                    )
                    + "."
                )
            )
        agg = results.get("aggregation", [])
        if agg:
            out.append(
                "- Aggregation: with `mean` every shared scheme falls silent (fraction of rings with a phase at the "
                "end: "
                + ", ".join(f"{g['mean']} {g['active_mean']:.3f}" for g in agg)
                + "; with `sum`: "
                + ", ".join(f"{g['active_sum']:.3f}" for g in agg)
                + "), so it has no correlation size at all: the aggregation rule decides whether shared-neuron "
                "lattices oscillate, not how far they correlate."
            )
        s0 = [r for r in results["conditions"] if r["scheme"] == "S0"]
        if len(s0) >= 2:
            lo = min(s0, key=lambda r: r["xi_cross"]["mean"])
            hi = max(s0, key=lambda r: r["xi_cross"]["mean"])
            q = ratio_ci(hi["xi_cross"]["per_seed"], lo["xi_cross"]["per_seed"])
            out.append(
                f"- Within S0 the coupling and the ring size matter as much: xi_cross ranges from "
                f"{lo['xi_cross']['mean']:.2f} ({lo['label']}) to {hi['xi_cross']['mean']:.2f} ({hi['label']}), "
                f"a factor {q['ratio']:.1f} [{q['lo']:.1f}, {q['hi']:.1f}], and not monotonically in eps. Per S0 "
                "condition (steady xi_cross; seeds with xi = L; mean domain size; largest domain / lattice; "
                f"plateau of xi and of the domain size by |drift| <= {results['tol']:g}):"
            )
            for r in s0:
                x, d = r["xi_cross"], r["mean_domain_size"]
                out.append(
                    f"  - {r['label']} (t <= {r['t1']:g}): xi_cross {_pm(x['mean'], x['sem'], '.2f')}, "
                    f"{r['seeds_xi_L']} of {r['seeds']} seeds at L; mean domain size {_pm(d['mean'], d['sem'], '.1f')}"
                    f" ({r['seeds_one_domain']} of {r['seeds']} seeds one domain), largest domain "
                    f"{r['largest_frac']:.1%}"
                    + (
                        f", {r['domains'] - 1:.1f} other domains of {r['island_size']:.1f} rings"
                        if math.isfinite(r["island_size"]) and r["seeds_one_domain"] == 0
                        else ""
                    )
                    + f"; plateau xi {self._drift_txt(x)}, domain size {self._drift_txt(d)}."
                )
        return out

    @staticmethod
    def _per_condition(results):
        Lsys, ref = results["L"], results.get("reference")
        out = []
        for r in results["conditions"]:
            x, q = r["xi_cross"], r.get("xi_cross_ratio")
            if r["active_final"] < 0.5:
                out.append(
                    f"- {r['label']}: silent at the end (only {r['active_final']:.1%} of rings have a phase): "
                    "no oscillation, no correlated regions."
                )
                continue
            what = f"xi_cross = {_pm(x['mean'], x['sem'], '.2f')}"
            if r["xi_capped"]:
                what += f" = the system size L = {Lsys} (one correlated region; bounded by the lattice)"
            if r.get("t_xi_L") is not None:
                what += f"; <xi_cross> >= 0.95 L from t = {r['t_xi_L']:g} on"
            if not x["plateau"]:
                if x.get("drift_significant", True):
                    what += f"; NOT a plateau (drift {x['drift']:+.2f} +- {x['drift_sem']:.2f}: still changing)"
                else:  # fails the tolerance, but the drift is within its error: which seeds move
                    ch = np.asarray(x["per_seed"]) - np.asarray(x["prev_per_seed"])
                    j = int(np.argmax(np.abs(ch)))
                    rest = np.delete(np.abs(ch), j)
                    what += (
                        f"; NOT a plateau by the {results['tol']:g} tolerance, but the drift ({x['drift']:+.3f} +- "
                        f"{x['drift_sem']:.3f}) is consistent with 0 and comes from one seed: seed {j} goes from "
                        f"{x['prev_per_seed'][j]:.1f} to {x['per_seed'][j]:.1f} between the two windows, the "
                        f"other seeds change by at most {rest.max() if rest.size else 0.0:.2f}"
                    )
            if r["scheme"] == "S0" and 0 < r["seeds_one_domain"] < r["seeds"]:
                multi = [j for j, dn in enumerate(r["domains_per_seed"]) if dn > 1.01]
                what += "; seeds that are not one domain: " + ", ".join(
                    f"seed {j} {r['domains_per_seed'][j]:.1f} domains (largest {r['largest_frac_per_seed'][j]:.0%}, "
                    f"xi_cross {x['per_seed'][j]:.1f})"
                    for j in multi
                )
            side = int(round(math.sqrt(results["n_rings"])))
            for j, (xs, wd, c1, ds) in enumerate(
                zip(
                    x["per_seed"],
                    r["wall_density"]["per_seed"],
                    r["C1"]["per_seed"],
                    r["mean_domain_size"]["per_seed"],
                    strict=True,
                )
            ):
                if r["scheme"] != "S0" and abs(wd - 0.5) < 1e-3 and abs(c1) < 1e-3 and abs(ds - side) < 1e-3:
                    what += (
                        f"; seed {j} is striped: {side} domains of {side} rings, every bond along one axis a wall "
                        f"(wall density {wd:.3f}, C1 {c1:.3f}, xi_cross {xs:.2f}), i.e. locked in phase along one "
                        "axis and pi apart along the other (in the gauge used), a second fully locked pattern"
                    )
            if q is not None and r["label"] != ref:
                sig = "larger than" if q["lo"] > 1 else "smaller than" if q["hi"] < 1 else "not distinguishable from"
                what += f"; xi / ref = {q['ratio']:.2f} [{q['lo']:.2f}, {q['hi']:.2f}]: {sig} the reference ({ref})"
            out.append(f"- {r['label']}: {what}.")
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
        E, S = len(cfg["eps"]), cfg["seeds"]
        n_win = int(cfg["window_steps"])
        model = dr.DiscreteMap(net, dt=cfg["dt"])
        rec_w = dr.Record(every=1, which="all", fields=("o",), phases=False)
        checks = [float(c) for c in cfg.get("checks", [cfg["t1"]])]
        orbit = np.zeros((len(checks), E, S, net.n_rings), np.int8)
        kk = np.zeros_like(orbit)
        parts, states, t_prev = [], None, 0.0
        for c, t_c in enumerate(checks):
            d = _sweep(
                cfg,
                net,
                cfg["init"],
                cfg["eps"],
                progress=progress,
                label=f"settle to t = {t_c:g}",
                timings=timings,
                t1=t_c - t_prev,
                states=states,
                t_start=t_prev,
            )
            # a window of every step and every output from each member's state (one eps at a time: memory)
            tic = time.perf_counter()
            for i, eps in enumerate(cfg["eps"]):
                m = eqx.tree_at(lambda m: m.network.coupling.eps, model, jnp.asarray(eps, dtype))
                s0 = dr.State(jnp.asarray(d["final_v"][i]), jnp.asarray(d["final_o"][i]))
                w = dr.simulate_batch(m, s0, n_steps=n_win, record=rec_w, chunk_size=cfg.get("chunk_size"))
                o, k = dr.classify_orbits(w.o[:, 1:], net.rings)
                jax.block_until_ready(k)
                orbit[c, i], kk[c, i] = np.asarray(o), np.asarray(k)
            timings[f"window at t = {t_c:g}"] = {"simulate_s": time.perf_counter() - tic}
            # continue from the settled states (not from after the window: the window only observes)
            states = dr.State(
                jnp.asarray(d["final_v"].reshape(E * S, -1)), jnp.asarray(d["final_o"].reshape(E * S, -1))
            )
            parts.append(
                d if c == 0 else {k: (v[:, :, 1:] if k in ("xi_fit", "wall_density", "R") else v) for k, v in d.items()}
            )
            t_prev = t_c
        series = {k: np.concatenate([p[k] for p in parts], axis=2) for k in ("xi_fit", "wall_density", "R")}
        return {
            "t": np.concatenate([p["t"] if c == 0 else p["t"][1:] for c, p in enumerate(parts)]),
            "eps": np.asarray(cfg["eps"], float),
            "checks": np.asarray(checks),
            "orbit": orbit,
            "k": kk,
            "final_phase": parts[-1]["snap_phase"][:, :, -1].astype(np.float16),
            "final_valid": parts[-1]["snap_valid"][:, :, -1],
            **series,
            "status": np.maximum.reduce([p["status"] for p in parts]),
        }

    def analyse(self, data, cfg):
        import diffring as dr

        res = {"names": list(dr.ORBIT_NAMES), "rows": []}
        kmax = int(cfg["network"]["ring_size"]) // 2
        orbit_all, k_all = self._by_check(data)
        checks = [float(c) for c in data["checks"]] if "checks" in data else [float(cfg["t1"])]
        res["checks"] = checks
        for i, eps in enumerate(cfg["eps"]):
            o, k = orbit_all[-1, i], k_all[-1, i]
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
            if len(checks) > 1:  # stability between the last two checks: fractions and individual rings
                o0, k0 = orbit_all[-2, i], k_all[-2, i]
                for kv in range(1, kmax + 1):
                    d = ((o == dr.PULSE) & (k == kv)).mean(1) - ((o0 == dr.PULSE) & (k0 == kv)).mean(1)
                    row[f"dk={kv}"] = [float(d.mean()), float(d.std(ddof=1) / math.sqrt(S)) if S > 1 else math.nan]
                same = ((o == o0) & ((o != dr.PULSE) | (k == k0))).mean(1)
                row["same_orbit"] = [float(same.mean()), float(same.std(ddof=1) / math.sqrt(S)) if S > 1 else math.nan]
            res["rows"].append(row)
        return res

    @staticmethod
    def _by_check(data):
        """orbit and k as (checks, eps, seeds, rings) (older data had one check)."""
        o, k = data["orbit"], data["k"]
        return (o[None], k[None]) if o.ndim == 3 else (o, k)

    def figures(self, data, results, cfg, directory):
        import matplotlib

        import diffring as dr

        grid = tuple(cfg["network"]["shape"])
        E = len(cfg["eps"])
        fig, axs = _fig(E, 1, (3.0 * E, 3.3))
        cmap = matplotlib.colors.ListedColormap(["0.85", "C0", "C1", "C2", "k", "C3"])
        orbit_all, k_all = self._by_check(data)
        for i, eps in enumerate(cfg["eps"]):
            o, k = orbit_all[-1, i, 0], k_all[-1, i, 0].astype(int)
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
            sel = (orbit_all[-1, i] == dr.PULSE) & (k_all[-1, i] == 1) & data["final_valid"][i]
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
        ch = results.get("checks", [cfg["t1"]])
        if len(ch) > 1 and "same_orbit" in rows[0]:
            L += [
                "",
                f"Steady state: the classification was also done at t = {ch[-2]:g} (same runs, same window). Change of "
                f"the fraction of rings per family from t = {ch[-2]:g} to t = {ch[-1]:g} (mean +- sem over seeds) "
                "and the fraction of rings on the same orbit (class and k) at both times:",
                "",
                "| eps | " + " | ".join(f"change k={v}" for v in range(1, kmax + 1)) + " | rings on the same orbit |",
                "|---" * (kmax + 2) + "|",
            ]
            for r in rows:
                L.append(
                    f"| {r['eps']:g} | "
                    + " | ".join(f"{r[f'dk={v}'][0]:+.4f} +- {r[f'dk={v}'][1]:.4f}" for v in range(1, kmax + 1))
                    + f" | {r['same_orbit'][0]:.4f} +- {r['same_orbit'][1]:.4f} |"
                )
        L += [
            "",
            "Figures: `E5_multistability/k_maps.png`, `E5_multistability/orbit_histogram.png`.",
            "",
            "![orbit maps](E5_multistability/k_maps.png)",
            "",
            "![orbit histogram](E5_multistability/orbit_histogram.png)",
            "",
        ]
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

    STEADY: ClassVar[tuple[str, ...]] = ("xi_cross", "xi_fit", "mean_domain_size", "wall_density", "C1", "R")

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
            for k in self.STEADY:
                r[k] = steady_state(
                    t, data[f"{lab}/{k}"].astype(float), frac=cfg["steady"]["frac"], tol=cfg["steady"]["tol"]
                )
            r["xi_over_L"] = r["xi_cross"]["mean"] / L
            # seeds whose C stays above 1/e out to L/2 at the end (xi_cross capped at L)
            r["n_capped_final"] = int(np.sum(data[f"{lab}/xi_cross"][:, -1] >= 0.95 * L))
            g = cfg["growth"]
            xi = data[f"{lab}/xi_cross"].astype(float)
            win = growth_window(t, xi.mean(0), t_min=g["t_min"], y_min=g["xi_min"], y_max=g["xi_max_frac"] * L)
            r["fit"] = (
                None
                if win is None or s["seeds"] < 2
                else fit_power_law(t, xi, win, n_boot=g["n_boot"], seed=cfg["seed"])
            )
            for tq in cfg["report_times"]:
                for k in ("xi_cross", "xi_fit", "mean_domain_size", "C1"):
                    r[f"{k}@{tq:g}"], _ = _at(t, data[f"{lab}/{k}"].astype(float), tq)
            res["systems"].append(r)
        by = {r["label"]: r for r in res["systems"]}
        res["pairs"] = []
        for a, b in cfg.get("pairs", []):
            if a in by and b in by:
                p = {"a": a, "b": b}
                for k in ("xi_cross", "mean_domain_size", "C1", "wall_density"):
                    p[k] = ratio_ci(by[a][k]["per_seed"], by[b][k]["per_seed"], seed=cfg["seed"])
                res["pairs"].append(p)
        return res

    def figures(self, data, results, cfg, directory):
        fig, axs = _fig(2, 2, (12, 8.5))
        for r in results["systems"]:
            lab = r["label"]
            t = data[f"{lab}/t"]
            name = f"{lab} ({r['seeds']} seeds)"
            _band(axs[0, 0], t, data[f"{lab}/xi_cross"].astype(float), name)
            _band(axs[0, 1], t, data[f"{lab}/xi_cross"].astype(float) / r["L"], name)
            _band(axs[1, 0], t, data[f"{lab}/mean_domain_size"].astype(float), name)
            _band(axs[1, 1], t, data[f"{lab}/wall_density"].astype(float), name)
        w = results["systems"][0]["xi_cross"]
        for ax, yl, lo in zip(
            axs.ravel(),
            ("xi, 1/e crossing (rings)", "xi / L", "mean domain size (rings)", "wall density"),
            (0.1, 1e-3, 1.0, 0.05),
            strict=True,
        ):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(bottom=lo)
            ax.set_xlabel("t")
            ax.set_ylabel(yl)
            ax.axvspan(*w["window"], color="0.85", lw=0, zorder=0)
            if w["prev_window"]:
                ax.axvspan(*w["prev_window"], color="0.93", lw=0, zorder=0)
            ax.legend(fontsize=7)
        fig.suptitle("mean +- sem over seeds; grey bands = the two windows the plateau check compares", fontsize=9)
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
        ss = cfg["steady"]
        L = _head(cfg, meta, self.title)
        L += [
            f"Setup: {n['boundary']} S0 chains and square lattices of {n['ring_size']}-rings, eps = {n['eps']}, init "
            f"`{cfg['init']}`, discrete map dt = {cfg['dt']}, t = 0 ... {cfg['t1']:g}, observables every "
            f"t = {cfg['every'] * cfg['dt']:g}; seed s of every system starts from jax.random.split(key(0), S)[s]. "
            "`xi_cross` = first Delta where C(Delta) < 1/e (the primary correlation size; capped at L, the longest "
            "side, when C stays above 1/e out to L/2); chains use C(Delta) along the chain. Steady state = mean "
            f"over the last {ss['frac']:.0%} of the run per seed (mean +- sem over seeds); drift = (last window - "
            "the window before, same length) / last window, +- its standard error over seeds; plateau if "
            f"|drift| <= {ss['tol']:g}.",
            "",
            "Time course (seed means):",
            "",
            "| system | rings | seeds | "
            + " | ".join(f"xi_cross(t={x:g})" for x in tq)
            + " | "
            + " | ".join(f"domain size(t={x:g})" for x in tq)
            + " |",
            "|---" * (3 + 2 * len(tq)) + "|",
        ]
        for r in results["systems"]:
            L.append(
                f"| {r['label']} | {r['n_rings']} | {r['seeds']} | "
                + " | ".join(f"{r[f'xi_cross@{x:g}']:.2f}" for x in tq)
                + " | "
                + " | ".join(f"{r[f'mean_domain_size@{x:g}']:.1f}" for x in tq)
                + " |"
            )
        w = results["systems"][0]["xi_cross"]
        L += [
            "",
            f"Steady state (last window t = {w['window'][0]:g} ... {w['window'][1]:g} vs the window before):",
            "",
            "| system | xi_cross | drift | plateau | seeds at xi = L | mean domain size | drift | plateau | "
            "wall density | drift | C1 | R | xi_cross growth z +- err (window) |",
            "|---" * 13 + "|",
        ]

        def drift(q):
            return f"{q['drift']:+.3f} +- {q['drift_sem']:.3f}"

        for r in results["systems"]:
            f = r["fit"]
            fit = "" if f is None else f"{f['z']:.2f} +- {f['z_err']:.2f} ({f['window'][0]:g}-{f['window'][1]:g})"
            x, d, wd = r["xi_cross"], r["mean_domain_size"], r["wall_density"]
            L.append(
                f"| {r['label']} | {_pm(x['mean'], x['sem'], '.2f')} | {drift(x)} | {'yes' if x['plateau'] else 'no'} "
                f"| {r['n_capped_final']} of {r['seeds']} | {_pm(d['mean'], d['sem'], '.2f')} | {drift(d)} | "
                f"{'yes' if d['plateau'] else 'no'} | {_pm(wd['mean'], wd['sem'], '.4f')} | {drift(wd)} | "
                f"{_pm(r['C1']['mean'], r['C1']['sem'], '.3f')} | {_pm(r['R']['mean'], r['R']['sem'], '.3f')} | {fit} |"
            )
        if results.get("pairs"):
            L += [
                "",
                "Ratios of steady-state means (+- bootstrap std [95 % bootstrap CI] over seeds):",
                "",
                "| system | vs | xi_cross ratio | mean domain size ratio | C1 ratio | wall density ratio |",
                "|---|---|---|---|---|---|",
            ]
            for p in results["pairs"]:
                cells = [
                    f"{p[k]['ratio']:.2f} +- {p[k]['err']:.2f} [{p[k]['lo']:.2f}, {p[k]['hi']:.2f}]"
                    for k in ("xi_cross", "mean_domain_size", "C1", "wall_density")
                ]
                L.append(f"| {p['a']} | {p['b']} | " + " | ".join(cells) + " |")
        L += ["", "## Findings", ""]
        L += self._findings(results)
        L += [
            "",
            "Note: `xi_fit` (exponential fit of C down to C = 0.05; in `summary.json`) grows with L at early times, "
            "because C(Delta) has a slowly decaying tail that the fit follows; `xi_cross` and C1 do not, so sizes are "
            "compared with those.",
            "",
            "Figures: `E6_size/xi_sizes.png` (xi_cross, xi_cross / L, mean domain size and wall density against t, "
            "log-log, mean +- sem)"
            + (
                f", `E6_size/kymograph.png` (chain of {cfg['kymograph']} rings, seed 0)."
                if cfg.get("kymograph")
                else "."
            ),
            "",
            "![sizes](E6_size/xi_sizes.png)",
            "",
        ]
        if cfg.get("kymograph"):
            L += ["![kymograph](E6_size/kymograph.png)", ""]
        return "\n".join(L)

    @staticmethod
    def _findings(results):
        out = []
        two = [r for r in results["systems"] if r["dim"] == 2]
        one = [r for r in results["systems"] if r["dim"] == 1]
        if two:
            out.append(
                "- Steady xi_cross of the 2-D lattices: "
                + ", ".join(
                    f"L = {r['L']}: {_pm(r['xi_cross']['mean'], r['xi_cross']['sem'], '.1f')} "
                    f"({'plateau' if r['xi_cross']['plateau'] else 'still changing'}, drift "
                    f"{r['xi_cross']['drift']:+.2f} +- {r['xi_cross']['drift_sem']:.2f}; {r['n_capped_final']} of "
                    f"{r['seeds']} seeds at xi = L)"
                    for r in two
                )
                + "."
            )
            out.append(
                "- Steady mean domain size: "
                + ", ".join(
                    f"L = {r['L']}: {_pm(r['mean_domain_size']['mean'], r['mean_domain_size']['sem'], '.1f')} "
                    f"({'plateau' if r['mean_domain_size']['plateau'] else 'still changing'})"
                    for r in two
                )
                + "; wall density "
                + ", ".join(f"{r['wall_density']['mean']:.4f}" for r in two)
                + "."
            )
        pairs = {(p["a"], p["b"]): p for p in results.get("pairs", [])}
        big = sorted(two, key=lambda r: r["L"])[-2:]
        p = pairs.get((big[-1]["label"], big[0]["label"])) if len(big) == 2 else None
        if p is not None:
            q = p["xi_cross"]
            same = q["lo"] <= 1 <= q["hi"]
            steady = all(r["xi_cross"]["plateau"] and r["n_capped_final"] == 0 for r in big)
            small = [r for r in two if r["n_capped_final"] > 0]
            out.append(
                f"- Finite size: between L = {big[0]['L']} and L = {big[-1]['L']} the steady xi_cross ratio is "
                f"{q['ratio']:.2f} +- {q['err']:.2f} [95 % CI {q['lo']:.2f}, {q['hi']:.2f}]: "
                + (
                    "no size dependence"
                    + (
                        f", both plateaued and no seed at xi = L, so xi_cross = {big[-1]['xi_cross']['mean']:.1f} +- "
                        f"{big[-1]['xi_cross']['sem']:.1f} is the large-lattice steady-state value"
                        if steady
                        else ""
                    )
                    if same
                    else "a size dependence"
                )
                + "."
                + (
                    " On the smaller lattices ("
                    + ", ".join(f"L = {r['L']}: {r['n_capped_final']} of {r['seeds']} seeds" for r in small)
                    + ") C stays above 1/e out to L/2, so their xi_cross = L is a finite-size effect."
                    if small
                    else ""
                )
            )
        if one:
            out.append(
                "- Chains: "
                + ", ".join(
                    f"{r['n_rings']} rings: xi_cross {_pm(r['xi_cross']['mean'], r['xi_cross']['sem'], '.2f')}, C1 "
                    f"{_pm(r['C1']['mean'], r['C1']['sem'], '.3f')}, mean domain size "
                    f"{r['mean_domain_size']['mean']:.1f}"
                    for r in one
                )
                + "."
            )
        return out


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
    (pathlib.Path(out) / f"{exp.name}.md").write_text(exp.report(results, cfg, {**meta, "data_dir": str(d)}))
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
    "sizes",
    "t_settle",
    "checks",
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
    try:
        old = json.loads((d / "summary.json").read_text())
        ran = old["config"]
    except (ValueError, KeyError, TypeError) as e:
        raise DiffringError("--report-only", str(d / "summary.json"),
                            f"not the summary of a finished experiment run ({type(e).__name__})") from None
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
    check_out_path(out)
    d = pathlib.Path(out) / exp.name
    d.mkdir(parents=True, exist_ok=True)
    cfg["_dir"] = d
    load0 = os.getloadavg()
    tic = time.perf_counter()
    timings: dict[str, Any] = {}
    data = exp.simulate(cfg, progress, timings)
    sim_s = time.perf_counter() - tic
    # float32 on disk (keeps the committed data small; the analysis reads these same arrays back)
    if not exp.keep_float64:
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
