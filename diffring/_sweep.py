"""`diffring sweep SWEEP.yaml`: a grid of configs x seeds, run as a few batched programs, chunked,
checkpointed and resumable, with results in `DIR/results.zarr`.

SWEEP.yaml has `base` (a `diffring run` config, same schema), `grid` (dotted config keys -> lists of
values; the points are their Cartesian product, first key slowest), `seeds` (list of ints) and
optionally `chunk` (members per checkpointed chunk, default 16). Member (point, seed) is exactly
`diffring run base --set <point> --set seed=<seed>`: the same resolved config, the same segmented
driver, so its results equal that single run bit for bit.

Members are grouped by program: members whose models differ only in floating-point leaves (eps,
thresholds, tau, ...) and in their initial state (seed, init parameters) share one compiled
`simulate_batch` call (the differing leaves become swept leaves via `model_axes`); keys that change
the program (shape, scheme, ring_size, dtype, dt, n_steps, model kind, ...) start a new group.
Each group runs in chunks of `chunk` members (the last chunk is padded with copies of its last
member, so each group compiles once), `run.chunk_size` members at a time inside the program.

Layout of DIR: `sweep.yaml` (the resolved sweep: every point's full config is `base` with its
overrides), `checkpoint/` (manifest + one `.npz` per finished chunk, see `diffring._checkpoint`),
and, once every chunk is finished, `results.zarr` and `summary.json` (versions, per-member status,
chunk counters, timings). `results.zarr` and `summary.json` appear only complete (written to a
temporary name and renamed), so a sweep without `summary.json` is unfinished.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ._config import SEED_MAX, absolute_paths, apply_overrides, dump_yaml, parse_yaml, read_yaml_file, resolve
from ._errors import DiffringError
from ._io import check_out_path

SWEEP_KEYS = ("base", "grid", "seeds", "chunk")
DEFAULT_CHUNK = 16
#: Per-member time series kept in results.zarr: name -> the `simulate_segments` record it comes from.
SERIES = {"R": "R", "xi": "xi_fit", "xi_cross": "xi_cross", "wall_density": "wall_density"}


class Member(NamedTuple):
    point: tuple[int, ...]  # index along each grid axis
    seed_index: int
    cfg: dict  # resolved


class Sweep(NamedTuple):
    """A validated sweep: the raw `base`, grid axes (key, values), seeds, chunk size, and members."""

    base: dict
    keys: list[str]
    values: list[list]
    seeds: list[int]
    chunk: int
    members: list[Member]

    def as_dict(self) -> dict:
        return {
            "base": self.base,
            "grid": dict(zip(self.keys, self.values, strict=True)),
            "seeds": self.seeds,
            "chunk": self.chunk,
        }


# ----------------------------------------------------------------------------------------------
# Loading and validation (before any work)


def load_sweep(path: str) -> dict:
    """Read SWEEP.yaml; relative file paths in `base` are made absolute against its directory."""
    raw = read_yaml_file(path, "SWEEP")
    if not isinstance(raw, dict):
        raise DiffringError("SWEEP", type(raw).__name__, "expected a YAML mapping with keys " + ", ".join(SWEEP_KEYS))
    absolute_paths(raw.get("base"), path)
    return raw


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"


def validate_sweep(raw: Any) -> Sweep:
    """Check a raw sweep and resolve every member's config; errors name `base.*`, `grid.<key>[i]`,
    `seeds[i]` or `chunk`."""
    if not isinstance(raw, Mapping):
        raise DiffringError("SWEEP", type(raw).__name__, "expected a mapping with keys " + ", ".join(SWEEP_KEYS))
    for k in raw:
        if k not in SWEEP_KEYS:
            raise DiffringError(str(k), raw[k], "unknown sweep key; valid keys: " + ", ".join(SWEEP_KEYS))
    base = raw.get("base")
    if base is None:
        base = {}
    if not isinstance(base, dict):
        raise DiffringError("base", base, "expected a mapping: a `diffring run` config")
    base = copy.deepcopy(base)
    try:
        base_cfg = resolve(base)
    except DiffringError as e:
        raise DiffringError(f"base.{e.field}", e.value, e.valid) from None
    if base_cfg["run"]["batch"] != 1:
        raise DiffringError("base.run.batch", base_cfg["run"]["batch"], "expected 1: a sweep's members are its seeds")
    if base_cfg["run"].get("mesh") is not None:
        raise DiffringError("base.run.mesh", base_cfg["run"]["mesh"], "sweeps do not shard (yet): expected null")
    grid = raw.get("grid")
    if grid is None:
        grid = {}
    if not isinstance(grid, dict):
        raise DiffringError("grid", grid, "expected a mapping of dotted config keys to lists of values")
    keys, values = [], []
    for k, v in grid.items():
        if not isinstance(k, str):
            raise DiffringError(f"grid.{k}", v, "expected a dotted config key, e.g. network.eps")
        if k in ("seed", "run.batch", "run.mesh"):
            raise DiffringError(
                f"grid.{k}", v, "not sweepable: seeds go in `seeds`, members form the batch, no sharding"
            )
        if not isinstance(v, list) or not v:
            raise DiffringError(f"grid.{k}", v, "expected a non-empty list of values")
        for i, x in enumerate(v):
            if x in v[:i]:
                raise DiffringError(f"grid.{k}[{i}]", x, "expected distinct values (it repeats an earlier one)")
        keys.append(k)
        values.append(list(v))
    seeds = raw.get("seeds", [base_cfg["seed"]])
    if not isinstance(seeds, list) or not seeds:
        raise DiffringError("seeds", seeds, "expected a non-empty list of integers >= 0")
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= SEED_MAX:
            raise DiffringError(f"seeds[{i}]", s, f"expected an integer in [0, {SEED_MAX}]")
    if len(set(seeds)) != len(seeds):
        raise DiffringError("seeds", seeds, "expected distinct seeds")
    chunk = raw.get("chunk", DEFAULT_CHUNK)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise DiffringError("chunk", chunk, "expected an integer >= 1 (members per checkpointed chunk)")

    def resolve_point(overrides: list[str]) -> dict:
        return resolve(apply_overrides(base, overrides))

    # Each value on its own first, so a bad value is named by its axis and index.
    for k, vals in zip(keys, values, strict=True):
        for i, v in enumerate(vals):
            try:
                resolve_point([_override(k, v)])
            except DiffringError as e:
                raise DiffringError(f"grid.{k}[{i}]", v, f"{e.field}: {e.valid}") from None
    members = []
    for point in itertools.product(*(range(len(v)) for v in values)):
        ov = [_override(k, values[a][i]) for a, (k, i) in enumerate(zip(keys, point, strict=True))]
        for j, s in enumerate(seeds):
            try:
                cfg = resolve_point([*ov, f"seed={s}"])
            except DiffringError as e:
                where = ", ".join(f"{k}={values[a][i]!r}" for a, (k, i) in enumerate(zip(keys, point, strict=True)))
                raise DiffringError(f"grid[{where}]", e.value, f"{e.field}: {e.valid}") from None
            if cfg["run"]["batch"] != 1:
                raise DiffringError("grid", "run.batch", "expected 1: a sweep's members are its seeds")
            members.append(Member(point, j, cfg))
    return Sweep(base, keys, values, seeds, chunk, members)


# ----------------------------------------------------------------------------------------------
# Grouping members into programs


class _Built1(NamedTuple):
    built: Any  # diffring._config.Built of one member
    leaves: list
    treedef: Any


def _group_key(cfg: Mapping, b: _Built1) -> str:
    floating = [np.issubdtype(np.asarray(x).dtype, np.floating) for x in b.leaves]
    return json.dumps(
        {
            "treedef": str(b.treedef),
            "leaves": [(list(np.shape(x)), str(np.asarray(x).dtype)) for x in b.leaves],
            # integer leaves (index tables, probes) fix the program's data layout: equal within a group
            "fixed": [np.asarray(x).tobytes().hex() for x, f in zip(b.leaves, floating, strict=True) if not f],
            "method": repr(b.built.method),
            "dtype": cfg["dtype"],
            "run": {k: cfg["run"][k] for k in ("n_steps", "segments", "chunk_size")},
            "record": cfg["record"],
            "input": cfg["input"],
            "state": [list(np.shape(b.built.state0.v)), str(np.asarray(b.built.state0.v).dtype)],
        },
        sort_keys=True,
        default=str,
    )


def _build_members(sweep: Sweep):
    """Build every member (network, model, initial state); group them by program."""
    import jax

    from ._config import build_init, build_inputs, build_model, build_network, build_record

    cache: dict[str, tuple] = {}
    built, groups = [], {}
    for m in sweep.members:
        cfg = m.cfg
        nkey = json.dumps(
            [cfg["network"], cfg["model"], cfg["dtype"], cfg["record"], cfg["input"], cfg["run"]], sort_keys=True
        )
        if nkey not in cache:
            net = build_network(cfg)
            model, method = build_model(cfg, net)
            cache[nkey] = (net, model, method, build_inputs(cfg, net), build_record(cfg, net))
        net, model, method, inputs, record = cache[nkey]
        if not isinstance(cfg["record"]["which"], str) and max(cfg["record"]["which"]) >= net.n_neurons:
            raise DiffringError(
                "base.record.which", cfg["record"]["which"], f"expected neuron indices < n_neurons = {net.n_neurons}"
            )
        from ._config import Built

        b = Built(net, model, method, build_init(cfg, net), inputs, record, 1)
        leaves, treedef = jax.tree.flatten(model)
        b1 = _Built1(b, leaves, treedef)
        built.append(b1)
        groups.setdefault(_group_key(cfg, b1), []).append(len(built) - 1)
    return built, list(groups.values())


def _chunks(group: list[int], chunk: int) -> list[list[int]]:
    return [group[i : i + chunk] for i in range(0, len(group), chunk)]


def _batched(built: list[_Built1], group: list[int], members: list[int], width: int):
    """The batched Built and model_axes of `members` (padded to `width` with the last member)."""
    import jax
    import jax.numpy as jnp

    from ._models import State

    padded = members + [members[-1]] * (width - len(members))
    first = built[group[0]]
    swept = []
    for i, leaf in enumerate(first.leaves):
        a = np.asarray(leaf)
        swept.append(
            np.issubdtype(a.dtype, np.floating)
            and any(not np.array_equal(np.asarray(built[j].leaves[i]), a, equal_nan=True) for j in group)
        )
    leaves = [
        jnp.stack([built[j].leaves[i] for j in padded]) if s else leaf
        for i, (leaf, s) in enumerate(zip(first.leaves, swept, strict=True))
    ]
    model = jax.tree.unflatten(first.treedef, leaves)
    axes = jax.tree.unflatten(first.treedef, [0 if s else None for s in swept]) if any(swept) else None
    state0 = State(
        jnp.stack([built[j].built.state0.v for j in padded]), jnp.stack([built[j].built.state0.o for j in padded])
    )
    b = first.built._replace(model=model, state0=state0, batch=width)
    return b, axes


# ----------------------------------------------------------------------------------------------
# Running


def _chunk_arrays(records: dict, status: np.ndarray, members: list[int]) -> dict:
    n = len(members)
    out = {
        "members": np.asarray(members, np.int64),
        "status": np.asarray(status[:n], np.int32),
        "t": np.asarray(records["t"]),
    }
    for name, src in SERIES.items():
        if src in records:
            out[name] = np.asarray(records[src][:n])
    if "C" in records:
        out["C1"] = np.asarray(records["C"][:n, :, 1])
    return out


def _versions() -> dict:
    from ._run import _versions as v

    return v()


def sweep_fingerprint(sweep: Sweep) -> str:
    import diffring as dr

    from ._checkpoint import fingerprint

    return fingerprint(
        {"sweep": sweep.as_dict(), "members": [m.cfg for m in sweep.members], "diffring": dr.__version__}
    )


def check_sweep_out(out: str, resume: bool) -> None:
    """A new sweep needs an empty or missing DIR. --resume continues the sweep in a DIR made by
    `diffring sweep`, or starts it in a missing or empty DIR (a killed sweep may not have written
    anything yet, so a retried `--resume` command is always safe); any other DIR is refused."""
    check_out_path(out)
    if os.path.isdir(out) and os.listdir(out):
        if not resume:
            raise DiffringError(
                "--out",
                out,
                "directory exists and is not empty: pass --resume to continue a sweep in it, or choose another",
            )
        if not os.path.isfile(os.path.join(out, "sweep.yaml")):
            raise DiffringError("--out", out, "has no sweep.yaml: not a sweep directory, cannot resume it")


def _estimate_bytes(sweep: Sweep) -> int:
    total = 0
    for m in sweep.members:
        n_rec = m.cfg["run"]["n_steps"] // m.cfg["record"]["every"] + 1
        total += (len(SERIES) + 2) * n_rec * 8 + 64
    return 3 * total + 2**20  # checkpoint + results.zarr + slack


def run_sweep(raw: Mapping, out: str, *, resume: bool = False, progress: bool = True) -> dict:
    """Validate, build and run a sweep into `out`; returns the summary (also `out/summary.json`).

    Every chunk of members is checkpointed when finished; with `resume`, finished chunks (listed in
    the manifest with a matching sha256) are loaded, not recomputed. A member whose state becomes
    non-finite gets status "non-finite"; the other members of its chunk are unaffected.
    """
    import jax
    from tqdm.auto import tqdm

    import diffring as dr

    from ._checkpoint import Checkpoint, check_writable, write_atomic

    t_start = time.perf_counter()
    sweep = validate_sweep(raw)
    check_sweep_out(out, resume)
    check_writable(out, _estimate_bytes(sweep))
    if any(m.cfg["dtype"] == "float64" for m in sweep.members) and not jax.config.jax_enable_x64:
        raise DiffringError(
            "dtype",
            "float64",
            "JAX x64 is disabled: the CLI enables it; in Python call jax.config.update('jax_enable_x64', True) first",
        )
    key = sweep_fingerprint(sweep)
    sweep_yaml = os.path.join(out, "sweep.yaml")
    if resume and os.path.isfile(sweep_yaml):
        with open(sweep_yaml) as f:
            old = parse_yaml(f.read(), "sweep.yaml")
        if not isinstance(old, dict) or old.get("fingerprint") != key:
            raise DiffringError(
                "--resume",
                out,
                "the sweep in it differs from this SWEEP.yaml (or diffring version): "
                "resume with the same sweep, or choose a new --out",
            )
    if resume and os.path.isfile(os.path.join(out, "summary.json")):
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
        summary["already_complete"] = True
        return summary
    tic = time.perf_counter()
    built, groups = _build_members(sweep)
    build_s = time.perf_counter() - tic
    os.makedirs(out, exist_ok=True)
    ckpt = Checkpoint(os.path.join(out, "checkpoint"), key, resume=resume)
    for f in os.listdir(out):  # a results.zarr a kill interrupted while it was being written
        if f.startswith(".results.zarr.tmp-"):
            shutil.rmtree(os.path.join(out, f), ignore_errors=True)
    write_atomic(sweep_yaml, dump_yaml({**sweep.as_dict(), "fingerprint": key}).encode())

    plan = []  # (name, group, members of the chunk, width)
    for g, group in enumerate(groups):
        width = min(sweep.chunk, len(group))
        for c, members in enumerate(_chunks(group, sweep.chunk)):
            plan.append((f"chunk-{g:03d}-{c:05d}", group, members, width))
    n_members = len(sweep.members)
    results: dict[str, dict] = {}
    bar = tqdm(total=n_members, unit="member", desc="sweep", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    sim_s = 0.0
    try:
        for name, group, members, width in plan:
            z = ckpt.load(name)
            if z is not None and list(z["members"]) == members:
                results[name] = z
                bar.update(len(members))
                continue
            from ._run import simulate_segments

            b, axes = _batched(built, group, members, width)
            tic = time.perf_counter()
            cfg = sweep.members[members[0]].cfg  # run length, segments, dt, dtype: equal within a group
            records, _, status, _, _ = simulate_segments(cfg, b, progress=False, model_axes=axes, time_compile=False)
            sim_s += time.perf_counter() - tic
            arrays = _chunk_arrays(records, np.atleast_1d(status), members)
            ckpt.save(name, arrays)
            results[name] = arrays
            bar.update(len(members))
    finally:
        bar.close()

    tic = time.perf_counter()
    status = np.zeros(n_members, np.int32)
    for z in results.values():
        status[z["members"]] = z["status"]
    _write_zarr(out, sweep, results)
    names = [dr.STATUS_NAMES[int(s)] for s in status]
    counts = {n: names.count(n) for n in dr.STATUS_NAMES if n in names}
    summary = {
        "diffring_version": dr.__version__,
        "versions": _versions(),
        "grid": dict(zip(sweep.keys, sweep.values, strict=True)),
        "seeds": sweep.seeds,
        "n_members": n_members,
        "n_programs": len(groups),
        "n_chunks": len(plan),
        "chunk": sweep.chunk,
        "status_counts": counts,
        "status": names,
        "checkpoint": ckpt.counters(),
        "timings": {
            "build_s": build_s,
            "simulate_s": sim_s,
            "write_s": time.perf_counter() - tic,
            "total_s": time.perf_counter() - t_start,
        },
    }
    write_atomic(os.path.join(out, "summary.json"), (json.dumps(summary, indent=2) + "\n").encode())
    if counts.get("ok", 0) != n_members:
        print(f"diffring: warning: member status {counts}; see {os.path.join(out, 'summary.json')}", file=sys.stderr)
    return summary


# ----------------------------------------------------------------------------------------------
# results.zarr


def _coord(values: list) -> np.ndarray:
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.asarray(values, np.float64 if any(isinstance(v, float) for v in values) else np.int64)
    return np.asarray([v if isinstance(v, str) else json.dumps(v) for v in values], dtype=str)


def _write_zarr(out: str, sweep: Sweep, results: Mapping[str, Mapping]) -> None:
    """results.zarr, written to a temporary sibling and renamed (complete or absent)."""
    import warnings

    import zarr

    shape = tuple(len(v) for v in sweep.values) + (len(sweep.seeds),)
    dims = [*sweep.keys, "seed"]
    n_members = len(sweep.members)
    ts = {}
    for z in results.values():
        ts[z["t"].tobytes()] = z["t"]
    common = len(ts) == 1
    n_time = max(len(t) for t in ts.values())
    flat: dict[str, np.ndarray] = {"status": np.full(n_members, -1, np.int32)}
    series = {name: np.full((n_members, n_time), np.nan) for name in [*SERIES, "C1"]}
    t_member = np.full((n_members, n_time), np.nan)
    for z in results.values():
        idx = z["members"]
        flat["status"][idx] = z["status"]
        n = len(z["t"])
        t_member[idx, :n] = z["t"]
        for name in series:
            if name in z:
                series[name][idx, :n] = z[name]
    present = [name for name in series if any(name in z for z in results.values())]
    final = {f"{name}_final": _last_valid(series[name]) for name in present}

    from ._run import atomic_out_dir

    with atomic_out_dir(os.path.join(out, "results.zarr"), overwrite=True) as tmp:
        g = zarr.open_group(tmp, mode="w", zarr_format=3)
        for key, vals in zip(sweep.keys, sweep.values, strict=True):
            c = _coord(vals)
            a = g.create_array(key, shape=c.shape, dtype=c.dtype if c.dtype.kind != "U" else str, dimension_names=[key])
            a[:] = c
        a = g.create_array("seed", shape=(len(sweep.seeds),), dtype=np.int64, dimension_names=["seed"])
        a[:] = np.asarray(sweep.seeds, np.int64)
        if common:
            t = next(iter(ts.values()))
            a = g.create_array("time", shape=t.shape, dtype=np.float64, dimension_names=["time"])
            a[:] = t
        else:  # points with different run lengths or record intervals: time is the record index
            a = g.create_array("time", shape=(n_time,), dtype=np.int64, dimension_names=["time"])
            a[:] = np.arange(n_time)
            _put(g, "t", t_member.reshape(shape + (n_time,)), [*dims, "time"], "record time (NaN past a member's end)")
        _put(g, "status", flat["status"].reshape(shape), dims, "0 ok, 1 non-finite, 2 solver failure")
        for name, a in final.items():
            _put(g, name, a.reshape(shape), dims, "the last record's value")
        for name in present:
            _put(g, name, series[name].reshape(shape + (n_time,)), [*dims, "time"], "on the record grid")
        g.attrs["sweep"] = json.loads(json.dumps(sweep.as_dict(), default=str))
        g.attrs["versions"] = _versions()
        g.attrs["status_names"] = ["ok", "non-finite", "solver failure"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # consolidated metadata is not in the v3 spec yet; xarray reads it
            zarr.consolidate_metadata(tmp)


def _last_valid(a: np.ndarray) -> np.ndarray:
    """The last non-NaN value of each row (members may have different numbers of records)."""
    ok = ~np.isnan(a)
    last = np.where(ok.any(axis=1), a.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1), 0)
    return a[np.arange(a.shape[0]), last]


def _put(g, name: str, a: np.ndarray, dims: list[str], doc: str) -> None:
    arr = g.create_array(name, shape=a.shape, dtype=a.dtype, dimension_names=dims)
    arr[...] = a
    arr.attrs["description"] = doc


# ----------------------------------------------------------------------------------------------
# Summary table


def summary_table(out: str) -> str:
    """A text table of a finished sweep: one row per grid point, seed-aggregated final R and xi."""
    if not os.path.isfile(os.path.join(out, "summary.json")):
        ck = os.path.join(out, "checkpoint", "manifest.json")
        if os.path.isfile(os.path.join(out, "sweep.yaml")) and os.path.isfile(ck):
            with open(ck) as f:
                done = len(json.load(f).get("chunks", {}))
            return f"{out}: unfinished sweep, {done} chunks checkpointed; continue it with --resume\n"
        raise DiffringError("--summary", out, "not a finished sweep directory (no summary.json)")
    import zarr

    try:
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
        g = zarr.open_group(os.path.join(out, "results.zarr"), mode="r")
        keys = list(summary["grid"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DiffringError("--summary", out, f"not a finished sweep directory ({type(e).__name__})") from None
    status = np.asarray(g["status"][...])
    cols = {k: np.asarray(g[k][...]) for k in keys}
    R = np.asarray(g["R_final"][...]) if "R_final" in g else None
    xi = np.asarray(g["xi_final"][...]) if "xi_final" in g else None
    head = [*keys, "seeds", "ok", "non-finite", "failed", "R_final mean", "R_final std", "xi_final mean"]
    rows = []
    for point in itertools.product(*(range(len(cols[k])) for k in keys)):
        st = status[point]
        ok = st == 0

        def agg(a, fn, ok=ok, point=point):
            if a is None or not ok.any():
                return "-"
            v = a[point][ok]
            v = v[np.isfinite(v)]
            return f"{fn(v):.4f}" if v.size else "-"

        rows.append(
            [
                *(str(cols[k][i]) for k, i in zip(keys, point, strict=True)),
                str(st.size),
                str(int((st == 0).sum())),
                str(int((st == 1).sum())),
                str(int((st == 2).sum())),
                agg(R, np.mean),
                agg(R, np.std),
                agg(xi, np.mean),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    c = summary["checkpoint"]
    lines.append(
        f"{summary['n_members']} members in {summary['n_chunks']} chunks, {summary['n_programs']} programs; status "
        + ", ".join(f"{k}: {v}" for k, v in summary["status_counts"].items())
        + f"; last invocation: {c['chunks_computed']} chunks computed, {c['chunks_reused']} reused, "
        f"{c['chunks_corrupted']} corrupted"
    )
    return "\n".join(lines) + "\n"
