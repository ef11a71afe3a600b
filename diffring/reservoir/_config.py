"""The config contract of `diffring reservoir`: schema, defaults, validation and building.

Sections `seed`, `dtype`, `network`, `model`, `init` (as in `diffring run`, same keys and builders;
the default network is the published 200-ring small-world reservoir), and `encoder`, `features`,
`readout`, `task`, `run`, `output`. `task.kind` picks the data: digits (scikit-learn's, shipped),
narma10, mackey_glass, memory, flipflop, file (an .npz: `X` (n, T, ch) or `images` (n, H, W), `y`,
optional `test`), mnist_npz, mnist_idx. Images use `encoder.kind: image` (the published recipe),
series `encoder.kind: series`. For a small-world network `n_in` is the encoder's channel count.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

from .._config import (
    FLOAT,
    INIT,
    INT0,
    INT1,
    MODEL,
    NETWORK,
    POS,
    REQUIRED,
    SEED,
    _Bool,
    _Choice,
    _Float,
    _Int,
    _List,
    _Optional,
    _Path,
    _section,
    _unknown,
    apply_overrides,
    load_config,
)
from .._errors import DiffringError

ENCODER = {
    "image": {
        "size": (32, _Int(1)),
        "window": (8, INT1),
        "hold": (9, INT1),
        "steps": (10000, INT1),
        "scale": (0.01, FLOAT),
        "noise": (0.001, _Float(lo=0.0)),
        "method": ("linear", _Choice("nearest", "linear", "cubic", "lanczos3", "lanczos5")),
    },
    "series": {"hold": (10, INT1), "scale": (1.0, FLOAT), "offset": (0.0, FLOAT), "noise": (0.0, _Float(lo=0.0))},
}
FEATURE_NAMES = ("snapshots", "voltages", "phases", "mean_firing")
FEATURES = {
    "items": (["snapshots"], _List(_Choice(*FEATURE_NAMES))),
    "n_times": (9, _Int(2)),
}
READOUT = {
    "ridge": {
        "alphas": ([1e-4, 1e-2, 1.0, 10.0, 100.0], _List(POS)),
        "folds": (5, _Int(2)),
        "standardize": (False, _Bool()),
    },
}
_SPLIT = {"test_fraction": (0.2, _Float(lo=0.05, hi=0.9))}
_SERIES = {"length": (2000, _Int(50)), "washout": (200, INT0), **_SPLIT}
TASK = {
    "digits": {"limit": (None, _Optional(INT1)), **_SPLIT},
    "narma10": dict(_SERIES),
    "mackey_glass": {**_SERIES, "horizons": ([1], _List(INT1)), "tau": (17.0, POS)},
    "memory": {**_SERIES, "max_delay": (40, INT1)},
    "flipflop": {
        "n_seq": (200, _Int(10)),
        "length": (60, INT1),
        "period": (10, INT1),
        "duty": (0.5, _Float(0, 1)),
        **_SPLIT,
    },
    "file": {"path": (REQUIRED, _Path(".npz")), "limit": (None, _Optional(INT1))},
    "mnist_npz": {"path": (REQUIRED, _Path(".npz")), "limit": (None, _Optional(INT1))},
    "mnist_idx": {
        "train_images": (REQUIRED, _Path()),
        "train_labels": (REQUIRED, _Path()),
        "test_images": (None, _Optional(_Path())),
        "test_labels": (None, _Optional(_Path())),
        "limit": (None, _Optional(INT1)),
    },
}
TASK_PATHS = ("path", "train_images", "train_labels", "test_images", "test_labels")
RUN = {"chunk_size": (128, INT1)}
OUTPUT = {"plots": (True, _Bool())}
KINDS = {"network": NETWORK, "model": MODEL, "init": INIT, "encoder": ENCODER, "readout": READOUT, "task": TASK}
DEFAULT_KIND = {
    "network": "small_world",
    "model": "discrete",
    "init": "random_phase",
    "encoder": None,
    "readout": "ridge",
    "task": "digits",
}
PLAIN = {"features": FEATURES, "run": RUN, "output": OUTPUT}
TOP = {"seed": (0, SEED), "dtype": ("float32", _Choice("float64", "float32"))}
SECTIONS = ("seed", "dtype", "network", "model", "init", "encoder", "features", "readout", "task", "run", "output")
IMAGE_TASKS = ("digits", "mnist_npz", "mnist_idx")

#: `diffring reservoir` without CONFIG: the published recipe on scikit-learn's digits (200 rings).
DEFAULT_CONFIG: dict[str, Any] = {"task": {"kind": "digits"}}


def load_reservoir_config(path: str) -> dict:
    """Read a YAML config; relative task file paths are made absolute against its directory."""
    raw = load_config(path)
    task = raw.get("task")
    if isinstance(task, dict):
        base = os.path.dirname(os.path.abspath(path))
        for k in TASK_PATHS:
            p = task.get(k)
            if isinstance(p, str) and p and not os.path.isabs(p):
                task[k] = os.path.normpath(os.path.join(base, os.path.expanduser(p)))
    return raw


def reservoir_overrides(raw: Mapping, overrides: list[str]) -> dict:
    """`--set` overrides (as in `diffring run`); relative task paths are relative to the current directory."""
    cfg = apply_overrides(raw, overrides)
    task = cfg.get("task")
    if isinstance(task, dict):
        for k in TASK_PATHS:
            p = task.get(k)
            if isinstance(p, str) and p and not os.path.isabs(p) and any(s.startswith(f"task.{k}=") for s in overrides):
                task[k] = os.path.abspath(os.path.expanduser(p))
    return cfg


def _kinded(name, raw, kinds, default):
    sec = raw.get(name)
    if sec is None:
        sec = {}
    if not isinstance(sec, dict):
        raise DiffringError(name, sec, "expected a mapping with a 'kind' key, one of " + ", ".join(kinds))
    kind = _Choice(*kinds)(f"{name}.kind", sec.get("kind", default))
    body = {k: v for k, v in sec.items() if k != "kind"}
    return {"kind": kind, **_section(name, body, kinds[kind], f"for {name}.kind {kind!r}", ("kind",))}


def resolve_reservoir(raw: Mapping | None = None) -> dict:
    """Validate a raw reservoir config and fill in every default (None: the embedded default)."""
    raw = copy.deepcopy(dict(DEFAULT_CONFIG if raw is None else raw))
    for k, v in raw.items():
        if k not in SECTIONS:
            raise _unknown("", k, v, list(SECTIONS), "at the top level")
    cfg: dict[str, Any] = {k: typ(k, raw.get(k, default)) for k, (default, typ) in TOP.items()}
    cfg["task"] = _kinded("task", raw, TASK, DEFAULT_KIND["task"])
    image = cfg["task"]["kind"] in IMAGE_TASKS or (
        cfg["task"]["kind"] == "file" and _npz_has_images(cfg["task"]["path"])
    )
    for name in ("network", "model", "init", "readout"):
        cfg[name] = _kinded(name, raw, KINDS[name], DEFAULT_KIND[name])
    cfg["encoder"] = _kinded("encoder", raw, ENCODER, "image" if image else "series")
    if image != (cfg["encoder"]["kind"] == "image"):
        want = "image" if image else "series"
        raise DiffringError(
            "encoder.kind", cfg["encoder"]["kind"], f"expected {want!r} for task.kind {cfg['task']['kind']!r}"
        )
    for name, schema in PLAIN.items():
        cfg[name] = _section(name, raw.get(name), schema, f"for {name}")
    net = cfg["network"]
    if net["kind"] == "small_world":
        if net["seed"] is None:
            net["seed"] = cfg["seed"]
        given = (raw.get("network") or {}).get("n_in")
        n_ch = _channels(cfg)
        if given is not None and n_ch is not None and given != n_ch:
            raise DiffringError("network.n_in", given, f"expected the encoder's channel count {n_ch} (or leave it out)")
        if n_ch is not None:
            net["n_in"] = n_ch
    if cfg["encoder"]["kind"] == "image":
        e = cfg["encoder"]
        if e["size"] & (e["size"] - 1):
            raise DiffringError("encoder.size", e["size"], "expected a power of two (Hilbert curve)")
        if e["window"] > e["size"] ** 2:
            raise DiffringError("encoder.window", e["window"], f"expected at most encoder.size**2 = {e['size'] ** 2}")
        if e["steps"] % (cfg["features"]["n_times"] - 1):
            raise DiffringError(
                "features.n_times",
                cfg["features"]["n_times"],
                f"expected n_times - 1 to divide encoder.steps = {e['steps']}",
            )
    return cfg


def _npz_has_images(path):
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            return "images" in z.files
    except Exception:  # noqa: BLE001 - reported with the field by the loader
        return False


def _channels(cfg):
    """The encoder's channel count, when the config fixes it without reading data files."""
    kind = cfg["task"]["kind"]
    if cfg["encoder"]["kind"] == "image":
        return cfg["encoder"]["window"]
    if kind in ("narma10", "mackey_glass", "memory"):
        return 1
    if kind == "flipflop":
        return 2
    if kind == "file":
        import numpy as np

        from .._io import check_file_kind

        check_file_kind("task.path", cfg["task"]["path"], npz=True)
        try:
            with np.load(cfg["task"]["path"], allow_pickle=False) as z:
                return int(z["X"].shape[-1]) if "X" in z.files and z["X"].ndim == 3 else None
        except Exception as e:  # noqa: BLE001 - unreadable user file
            raise DiffringError("task.path", cfg["task"]["path"], f"could not read it as an .npz archive "
                                f"({type(e).__name__})") from None
    return None


def load_task(cfg: Mapping):
    """The `Dataset` of `cfg["task"]` (seeded by the top-level seed)."""
    from . import _tasks as T

    t, seed = dict(cfg["task"]), cfg["seed"]
    kind = t.pop("kind")
    limit = t.pop("limit", None)
    if kind == "digits":
        d = T.digits(seed, t["test_fraction"])
    elif kind == "narma10":
        d = T.narma10(t["length"], seed, washout=t["washout"], test_fraction=t["test_fraction"])
    elif kind == "mackey_glass":
        d = T.mackey_glass(
            t["length"],
            tuple(t["horizons"]),
            seed,
            tau=t["tau"],
            washout=t["washout"],
            test_fraction=t["test_fraction"],
        )
    elif kind == "memory":
        d = T.memory_capacity(t["length"], t["max_delay"], seed, washout=t["washout"], test_fraction=t["test_fraction"])
    elif kind == "flipflop":
        d = T.flipflop(t["n_seq"], t["length"], t["period"], seed, duty=t["duty"], test_fraction=t["test_fraction"])
    elif kind == "file":
        d = T.load_npz(t["path"], seed)
    elif kind == "mnist_npz":
        d = T.mnist_npz(t["path"], seed)
    else:
        d = T.mnist_idx(t["train_images"], t["train_labels"], t["test_images"], t["test_labels"], seed)
    if limit is not None and limit < d.inputs.shape[0]:
        import dataclasses

        if d.test is None or d.test[:limit].all() or not d.test[:limit].any():
            raise DiffringError("task.limit", limit, "expected a limit that keeps both train and test samples")
        d = dataclasses.replace(d, inputs=d.inputs[:limit], y=d.y[:limit], test=d.test[:limit])
    return d


def build_encoder(cfg: Mapping, data):
    from ._encoders import ImageEncoder, SeriesEncoder

    e = dict(cfg["encoder"])
    kind = e.pop("kind")
    if kind == "image":
        return ImageEncoder(**e)
    return SeriesEncoder(length=int(data.inputs.shape[1]), channels=int(data.inputs.shape[2]), **e)


def build_features(cfg: Mapping, encoder, data):
    from ._features import Features, MeanFiring, Phases, Snapshots, Voltages

    make = {"snapshots": Snapshots, "voltages": Voltages, "phases": Phases, "mean_firing": MeanFiring}
    items = tuple(make[k]() for k in cfg["features"]["items"])
    if data.per_step:
        return Features(items, every=encoder.hold)
    return Features(items, n_times=cfg["features"]["n_times"])


def build_readout(cfg: Mapping):
    from ._readouts import KFold, Ridge

    r = cfg["readout"]
    return Ridge(alphas=tuple(r["alphas"]), selection=KFold(r["folds"], seed=cfg["seed"]), standardize=r["standardize"])
