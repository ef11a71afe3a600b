"""The config contract of `diffring run`: schema, defaults, validation, dotted `--set` overrides,
and building the network, model, initial state, inputs and record from a resolved config.

A config is a mapping with the sections `seed`, `dtype`, `network`, `model`, `init`, `input`,
`run`, `record`, `output`. `network`, `model`, `init` and `input` have a `kind` that selects their
keys; every key has a default (listed by `diffring config`) except the few marked required.
`resolve` fills in every default, checks every key and type, makes file paths absolute and fixes
the run length, so a resolved config is complete and can be fed back in unchanged.

Randomness: builders that draw (small_world) take `network.seed` (default: the top-level `seed`);
random initial states take `jax.random.key(seed)`, and a batch of B takes
`jax.random.split(jax.random.key(seed), B)`, one key per member.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import yaml

from ._errors import DiffringError
from ._io import check_existing_file, check_file_kind

REQUIRED = object()  # marks a key without a default


# ----------------------------------------------------------------------------------------------
# Types: each checks (field, value) and returns the normalised value or raises DiffringError.


class _Type:
    desc = "a value"

    def __call__(self, field: str, value: Any) -> Any:
        raise NotImplementedError


class _Int(_Type):
    def __init__(self, minimum: int | None = None, maximum: int | None = None):
        self.minimum, self.maximum = minimum, maximum
        self.desc = "an integer" + (f" >= {minimum}" if minimum is not None else "")
        if maximum is not None:
            self.desc = f"an integer in [{minimum}, {maximum}]"

    def __call__(self, field, value):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise DiffringError(field, value, f"expected {self.desc}")
        value = int(value)
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            raise DiffringError(field, value, f"expected {self.desc}")
        return value


class _Float(_Type):
    def __init__(self, positive: bool = False, lo: float | None = None, hi: float | None = None):
        self.positive, self.lo, self.hi = positive, lo, hi
        parts = ["a finite number"]
        if positive:
            parts.append("> 0")
        if lo is not None:
            parts.append(f">= {lo}")
        if hi is not None:
            parts.append(f"<= {hi}")
        self.desc = " ".join(parts)

    def __call__(self, field, value):
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise DiffringError(field, value, f"expected {self.desc}")
        value = float(value)
        if (
            not math.isfinite(value)
            or (self.positive and value <= 0)
            or (self.lo is not None and value < self.lo)
            or (self.hi is not None and value > self.hi)
        ):
            raise DiffringError(field, value, f"expected {self.desc}")
        return value


class _Bool(_Type):
    desc = "true or false"

    def __call__(self, field, value):
        if not isinstance(value, bool):
            raise DiffringError(field, value, "expected true or false")
        return value


class _Choice(_Type):
    def __init__(self, *choices: str):
        self.choices = choices
        self.desc = "one of " + ", ".join(choices)

    def __call__(self, field, value):
        if value not in self.choices:
            raise DiffringError(field, value, f"expected {self.desc}")
        return value


class _Str(_Type):
    desc = "a string"

    def __call__(self, field, value):
        if not isinstance(value, str) or not value:
            raise DiffringError(field, value, "expected a non-empty string")
        return value


class _Path(_Str):
    """A file path; relative paths are resolved against the config's directory by `load_config`."""

    desc = "a file path"

    def __init__(self, *suffixes: str):
        self.suffixes = suffixes

    def __call__(self, field, value):
        if not isinstance(value, str) or not value:
            raise DiffringError(field, value, "expected a file path")
        check_existing_file(field, value)
        if self.suffixes and not value.endswith(self.suffixes):
            raise DiffringError(field, value, "expected a file ending in " + " or ".join(self.suffixes))
        return value


class _List(_Type):
    def __init__(self, item: _Type, lengths: tuple[int, ...] | None = None, nonempty: bool = True):
        self.item, self.lengths, self.nonempty = item, lengths, nonempty
        n = "" if lengths is None else " of length " + " or ".join(map(str, lengths))
        self.desc = f"a list{n} whose items are {item.desc}"

    def __call__(self, field, value):
        if not isinstance(value, list | tuple):
            raise DiffringError(field, value, f"expected {self.desc}")
        if (self.lengths is not None and len(value) not in self.lengths) or (self.nonempty and not value):
            raise DiffringError(field, list(value), f"expected {self.desc}")
        return [self.item(f"{field}[{i}]", v) for i, v in enumerate(value)]


class _Optional(_Type):
    def __init__(self, inner: _Type):
        self.inner = inner
        self.desc = f"null or {inner.desc}"

    def __call__(self, field, value):
        return None if value is None else self.inner(field, value)


class _OneOf(_Type):
    """The first alternative that accepts the value; the error lists all of them."""

    def __init__(self, *alts: _Type):
        self.alts = alts
        self.desc = " or ".join(a.desc for a in alts)

    def __call__(self, field, value):
        for a in self.alts:
            try:
                return a(field, value)
            except DiffringError:
                pass
        raise DiffringError(field, value, f"expected {self.desc}")


INT0, INT1, INT2 = _Int(0), _Int(1), _Int(2)
#: The largest seed: `jax.random.key` and NumPy take 64-bit integers.
SEED_MAX = 2**63 - 1
SEED = _Int(0, SEED_MAX)
FLOAT, POS = _Float(), _Float(positive=True)
PER_NEURON = _OneOf(_Float(), _List(_Float()))  # a scalar or one value per neuron
V = _Float()

# ----------------------------------------------------------------------------------------------
# Schema: section -> kind -> {key: (default, type)}.

_LATTICE_KEYS = {
    "ring_size": (6, INT2),
    "scheme": ("S0", _Choice("S0", "S1", "S2")),
    "eps": (0.05, FLOAT),
    "boundary": ("periodic", _Choice("periodic", "open")),
    "shared": (1, INT1),
    "r_in": (0, INT0),
    "s_out": (1, INT0),
    "aggregate": ("sum", _Choice("sum", "mean")),
    "probe": (0, INT0),
    "fast": (True, _Bool()),
}

NETWORK = {
    "ring": {"size": (6, INT2), "probe": (0, INT0)},
    "rings": {"sizes": (REQUIRED, _List(INT2)), "probe": (0, INT0)},
    "chain": {"n": (REQUIRED, INT1), **_LATTICE_KEYS},
    "lattice": {"shape": (REQUIRED, _List(INT1, lengths=(1, 2))), **_LATTICE_KEYS},
    "small_world": {
        "n_rings": (200, INT1),
        "ring_sizes": ([2, 8], _List(INT2, lengths=(2,))),
        "eps": (0.05, FLOAT),
        "p": (0.1, _Float(lo=0.0, hi=1.0)),
        "n_in": (8, INT0),
        "input_weight": (1.0, FLOAT),
        "input_density": (0.5, _Float(lo=0.0, hi=1.0)),
        "seed": (None, _Optional(SEED)),
        "probe": (0, INT0),
    },
    "file": {
        "W": (REQUIRED, _Path(".npz")),
        "Win": (None, _Optional(_Path(".npz", ".npy"))),
        "rings": (REQUIRED, _OneOf(_List(INT2), _List(_List(INT0)))),
        "probe": (0, INT0),
    },
}

_NEURON_KEYS = {
    "dt": (0.01, POS),
    "tau": (1.0, PER_NEURON),
    "theta_H": (0.49, PER_NEURON),
    "theta_L": (0.2, PER_NEURON),
}

SOLVERS = ("tsit5", "dopri5", "dopri8", "bosh3", "heun", "midpoint", "ralston", "euler")

MODEL = {
    "discrete": {
        **_NEURON_KEYS,
        "threshold": ("hard", _Choice("hard", "sigmoid", "soft")),
        # None: the chosen threshold's own default (SigmoidSurrogate 20, SoftThreshold 100).
        "threshold_beta": (None, _Optional(POS)),
    },
    "continuous": {**_NEURON_KEYS, "max_events": (0, INT0)},
    "smooth": {
        **_NEURON_KEYS,
        "beta": (1000.0, POS),
        "eps_o": (0.002, POS),
        "corrected": (True, _Bool()),
        "solver": ("tsit5", _Choice(*SOLVERS)),
        "adaptive": (True, _Bool()),
        "rtol": (1e-6, POS),
        "atol": (1e-8, POS),
        "dt0": (None, _Optional(POS)),
        "max_steps": (None, _Optional(INT1)),
        "checkpoints": (None, _Optional(INT1)),
    },
}

_PULSE_KEYS = {"v_low": (0.1, V), "v_rest": (0.9, V)}

INIT = {
    "pulses": {"k": (1, INT0), "positions": (None, _Optional(_List(INT0))), **_PULSE_KEYS},
    "random_phase": {"k": (1, INT1), "transient": (50.0, _Float(lo=0.0)), **_PULSE_KEYS},
    "published": {"warmup_steps": (100, INT0), "max_factor": (10.0, POS), **_PULSE_KEYS},
    "uniform": {},
    "file": {"path": (REQUIRED, _Path(".npz"))},
}

INPUT = {"none": {}, "file": {"path": (REQUIRED, _Path(".npy"))}}

KINDS = {"network": NETWORK, "model": MODEL, "init": INIT, "input": INPUT}
DEFAULT_KIND = {"network": "lattice", "model": "discrete", "init": "random_phase", "input": "none"}

RUN = {
    "t1": (None, _Optional(POS)),
    "n_steps": (None, _Optional(INT1)),
    "batch": (1, INT1),
    "chunk_size": (None, _Optional(INT1)),
    "segments": (20, INT1),
    "mesh": (None, _Optional(_List(INT1, lengths=(2,)))),  # [rows, cols] devices: shard the lattice (or batch)
}
RECORD = {
    "every": (10, INT1),
    "which": ("probes", _OneOf(_Choice("all", "probes"), _List(INT0))),
    "fields": (["o", "v"], _List(_Choice("o", "v"), nonempty=False)),
    "phases": (True, _Bool()),
    "observables": (True, _Bool()),
}
OUTPUT = {"plots": (True, _Bool()), "raster_rows": (256, INT1), "animation": (True, _Bool())}
PLAIN = {"run": RUN, "record": RECORD, "output": OUTPUT}

TOP = {"seed": (0, SEED), "dtype": ("float64", _Choice("float64", "float32"))}
SECTIONS = ("seed", "dtype", "network", "model", "init", "input", "run", "record", "output")
PATH_KEYS = {"network": ("W", "Win"), "init": ("path",), "input": ("path",)}
DEFAULT_T1 = 100.0  # run length when a config gives neither run.t1 nor run.n_steps (nor an input file)

#: The run `diffring run` does without CONFIG: a 64 x 64 periodic S0 lattice of 6-rings at eps = 0.2
#: from the published warm-up (rings randomised alone, then coupled at t = 0), long enough (t = 400)
#: for phase domains to form. The published start is the default because it is the one the spec's
#: reference observation (C1 rising 0.2 -> 0.75 by t = 380) was made from: switching the coupling on
#: kicks every receiver at once, and the lattice orders from there. From `random_phase` (each ring
#: sampled with its neighbours at rest, no kick) C1 stays near 0 up to t = 400 at eps = 0.2.
#: Keys not given take their schema defaults; `configs/default.yaml` is this config fully resolved.
DEFAULT_CONFIG: dict[str, Any] = {
    "seed": 0,
    "dtype": "float64",
    "network": {
        "kind": "lattice",
        "shape": [64, 64],
        "ring_size": 6,
        "scheme": "S0",
        "eps": 0.2,
        "boundary": "periodic",
    },
    "model": {"kind": "discrete", "dt": 0.01},
    "init": {"kind": "published"},
    "input": {"kind": "none"},
    "run": {"t1": 400.0},
    "record": {"every": 100, "which": "probes", "fields": ["o", "v"]},
}


# ----------------------------------------------------------------------------------------------
# YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` (no dot) as a float, as YAML 1.2 does, and refuses a key
    repeated in one mapping (PyYAML would keep the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key_node.value!r} appears twice in one mapping (first at line {seen[key_node.value]})",
                        key_node.start_mark,
                    )
                seen[key_node.value] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml_error(where: str, e: yaml.YAMLError) -> DiffringError:
    mark = getattr(e, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return DiffringError(where, f"invalid YAML{at}", problem)


def parse_yaml(text: str, where: str = "config") -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise _yaml_error(where, e) from None


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, flow-style lists of scalars (`shape: [64, 64]`)."""


def _represent_list(dumper, data):
    flow = all(not isinstance(x, dict | list) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_yaml(cfg: Mapping) -> str:
    return yaml.dump(_plain(cfg), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def _plain(x):
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def read_yaml_file(path: str, field: str) -> Any:
    """Parse the YAML file at `path`; errors name `field` (e.g. CONFIG, SWEEP) and the path."""
    check_existing_file(field, path, "a YAML file")
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise DiffringError(field, path, f"could not read it ({e.strerror})") from None
    return parse_yaml(text, f"{field} {path}")


def absolute_paths(cfg: Any, path: str) -> None:
    """Make the relative file paths of a run config (`PATH_KEYS`) absolute against `path`'s directory."""
    if not isinstance(cfg, dict):
        return
    base = os.path.dirname(os.path.abspath(path))
    for section, keys in PATH_KEYS.items():
        sec = cfg.get(section)
        if isinstance(sec, dict):
            for k in keys:
                p = sec.get(k)
                if isinstance(p, str) and p and not os.path.isabs(p):
                    sec[k] = os.path.normpath(os.path.join(base, os.path.expanduser(p)))


def load_config(path: str) -> dict:
    """Read a YAML config; relative file paths in it are made absolute against its directory."""
    raw = read_yaml_file(path, "CONFIG")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise DiffringError("CONFIG", type(raw).__name__, "expected a YAML mapping of sections: " + ", ".join(SECTIONS))
    absolute_paths(raw, path)
    return raw


# ----------------------------------------------------------------------------------------------
# --set overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """`dotted.key=value` -> (["dotted", "key"], value); the value is read as YAML (`0.1`, `[8, 8]`)."""
    if "=" not in text:
        raise DiffringError("--set", text, "expected dotted.key=value, e.g. network.eps=0.1")
    key, _, value = text.partition("=")
    path = key.strip().split(".")
    if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) for p in path):
        raise DiffringError("--set", text, "expected dotted.key=value with keys made of letters, digits and _")
    return path, parse_yaml(value, f"--set {key.strip()}") if value.strip() else None


def apply_overrides(raw: Mapping, overrides: list[str]) -> dict:
    """Apply `--set dotted.key=value` overrides to a raw config (a copy is returned).

    Setting a section's `kind` to a different kind first resets that section to `{kind: new}`, so
    the old kind's keys do not leak into the new one; the other overrides are applied after.
    Setting one of run.t1 / run.n_steps drops the other from the config. Relative paths given with
    --set are relative to the current directory.
    """
    cfg = copy.deepcopy(dict(raw))
    parsed = [parse_override(s) for s in overrides]
    keys = {tuple(p) for p, _ in parsed}
    for mine, other in ((("run", "t1"), "n_steps"), (("run", "n_steps"), "t1")):
        # --set run.n_steps replaces a run.t1 of the config (and vice versa) unless both are set.
        if mine in keys and ("run", other) not in keys and isinstance(cfg.get("run"), dict):
            cfg["run"] = {k: v for k, v in cfg["run"].items() if k != other}
    for path, value in parsed:
        if len(path) == 2 and path[1] == "kind" and path[0] in KINDS:
            sec = cfg.get(path[0])
            old = sec.get("kind", DEFAULT_KIND[path[0]]) if isinstance(sec, dict) else None
            if old != value:
                cfg[path[0]] = {"kind": value}
    for path, value in parsed:
        node = cfg
        for i, k in enumerate(path[:-1]):
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise DiffringError(".".join(path[: i + 1]), nxt, f"is not a section; cannot set {'.'.join(path)}")
            node = nxt
        if path[-1] in PATH_KEYS.get(path[0], ()) and isinstance(value, str) and len(path) == 2:
            value = os.path.abspath(os.path.expanduser(value))
        node[path[-1]] = value
    return cfg


# ----------------------------------------------------------------------------------------------
# Resolution


def _unknown(field: str, key: Any, value: Any, valid: list[str], what: str) -> DiffringError:
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return DiffringError(
        f"{field}.{key}" if field else str(key), value, f"unknown key{hint}; valid keys {what}: " + ", ".join(valid)
    )


def _section(name: str, raw: Any, schema: Mapping, what: str, extra: tuple[str, ...] = ()) -> dict:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise DiffringError(name, raw, f"expected a mapping with keys {what}: " + ", ".join((*extra, *schema)))
    valid = [*extra, *schema]
    out = {}
    for k, v in raw.items():
        if k not in valid:
            raise _unknown(name, k, v, valid, what)
    for k, (default, typ) in schema.items():
        if k in raw:
            out[k] = typ(f"{name}.{k}", raw[k])
        elif default is REQUIRED:
            raise DiffringError(f"{name}.{k}", "missing", f"required {what}: {typ.desc}")
        else:
            out[k] = copy.deepcopy(default)
    return out


def resolve(raw: Mapping | None = None) -> dict:
    """Validate a raw config and fill in every default. `None` gives the embedded default run."""
    if raw is None:
        raw = DEFAULT_CONFIG
    if not isinstance(raw, Mapping):
        raise DiffringError("CONFIG", type(raw).__name__, "expected a mapping of sections: " + ", ".join(SECTIONS))
    for k, v in raw.items():
        if k not in SECTIONS:
            raise _unknown("", k, v, list(SECTIONS), "at the top level")
    cfg: dict[str, Any] = {}
    for k, (default, typ) in TOP.items():
        cfg[k] = typ(k, raw.get(k, default))
    for name, kinds in KINDS.items():
        sec = raw.get(name)
        if sec is None:
            sec = {}
        if not isinstance(sec, dict):
            raise DiffringError(name, sec, "expected a mapping with a 'kind' key, one of " + ", ".join(kinds))
        kind = _Choice(*kinds)(f"{name}.kind", sec.get("kind", DEFAULT_KIND[name]))
        body = {k: v for k, v in sec.items() if k != "kind"}
        cfg[name] = {"kind": kind, **_section(name, body, kinds[kind], f"for {name}.kind {kind!r}", ("kind",))}
    for name, schema in PLAIN.items():
        cfg[name] = _section(name, raw.get(name), schema, f"for {name}")
    net = cfg["network"]
    if net["kind"] == "small_world" and net["seed"] is None:
        net["seed"] = cfg["seed"]
    _resolve_run_length(cfg)
    return cfg


def _resolve_run_length(cfg: dict) -> None:
    run, dt = cfg["run"], cfg["model"]["dt"]
    t1, n_steps = run["t1"], run["n_steps"]
    if n_steps is None and t1 is None:
        if cfg["input"]["kind"] == "file":
            n_steps = _npy_shape("input.path", cfg["input"]["path"])[-2]
        else:
            t1 = DEFAULT_T1
    if n_steps is None:
        n_steps = int(round(t1 / dt))
        if n_steps < 1:
            raise DiffringError("run.t1", t1, f"expected t1 >= model.dt = {dt}")
    elif t1 is not None and int(round(t1 / dt)) != n_steps:
        raise DiffringError(
            "run",
            {"t1": t1, "n_steps": n_steps},
            f"give one of t1 or n_steps, or both consistent: n_steps = round(t1 / dt), dt = {dt}",
        )
    run["n_steps"] = n_steps
    run["t1"] = n_steps * dt
    every = cfg["record"]["every"]
    if n_steps % every:
        raise DiffringError("record.every", every, f"expected a divisor of run.n_steps = {n_steps}")


def _npy_shape(field: str, path: str) -> tuple[int, ...]:
    check_file_kind(field, path, npz=False)
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - unreadable user file
        raise DiffringError(field, path, f"could not read it as a .npy array ({type(e).__name__})") from None
    if a.ndim not in (2, 3):
        raise DiffringError(field, f"array of shape {a.shape}", "expected shape (n_steps, n_in)")
    return tuple(a.shape)


# ----------------------------------------------------------------------------------------------
# Building library objects from a resolved config


class Built(NamedTuple):
    """Everything `diffring run` needs, built by the library from a resolved config."""

    network: Any
    model: Any
    method: Any
    state0: Any  # State, with a leading batch axis when run.batch > 1
    inputs: Any  # (n_steps, n_in), (B, n_steps, n_in) or None
    record: Any
    batch: int


def jax_dtype(cfg: Mapping):
    """The JAX dtype of a resolved config; float64 needs x64 enabled beforehand (the CLI does that)."""
    import jax
    import jax.numpy as jnp

    if cfg["dtype"] == "float64":
        if not jax.config.jax_enable_x64:
            raise DiffringError(
                "dtype",
                "float64",
                "JAX x64 is disabled: call jax.config.update('jax_enable_x64', True) before building (the CLI does)",
            )
        return jnp.float64
    return jnp.float32


def _neuron_params(cfg):
    m = cfg["model"]
    return {k: m[k] for k in ("tau", "theta_H", "theta_L")}


def build_network(cfg: Mapping):
    """The network of `cfg["network"]` via the library builders; neuron parameters come from `model`,
    and errors in them name the `model` keys they were set with."""
    try:
        return _build_network(cfg)
    except DiffringError as e:
        name = e.field.removeprefix("network.")
        if name in _neuron_params(cfg):
            raise DiffringError(f"model.{name}", e.value, e.valid) from None
        raise


def _build_network(cfg: Mapping):
    import diffring as dr

    net = dict(cfg["network"])
    kind = net.pop("kind")
    kw = dict(dtype=jax_dtype(cfg), **_neuron_params(cfg))
    if kind == "ring":
        return dr.ring(net["size"], probe=net["probe"], **kw)
    if kind == "rings":
        return dr.rings(net["sizes"], probe=net["probe"], **kw)
    if kind == "chain":
        n = net.pop("n")
        return dr.chain(n, net.pop("ring_size"), **net, **kw)
    if kind == "lattice":
        shape = net.pop("shape")
        return dr.lattice(shape, net.pop("ring_size"), **net, **kw)
    if kind == "small_world":
        return dr.small_world(net.pop("n_rings"), net.pop("ring_sizes"), **net, **kw)
    if kind == "file":
        return dr.from_files(net["W"], net["rings"], Win=net["Win"], probe=net["probe"], **kw)
    raise AssertionError(kind)


def build_model(cfg: Mapping, network):
    """The model and the method (None = the model's default) of `cfg["model"]`."""
    import diffring as dr

    m = cfg["model"]
    kind = m["kind"]
    if kind == "discrete":
        beta = {} if m["threshold_beta"] is None else {"beta": m["threshold_beta"]}
        threshold = {
            "hard": lambda: dr.HardThreshold(),
            "sigmoid": lambda: dr.SigmoidSurrogate(**beta),
            "soft": lambda: dr.SoftThreshold(**beta),
        }[m["threshold"]]()
        return dr.DiscreteMap(network, m["dt"], threshold), None
    if kind == "continuous":
        return dr.HardTrigger(network, m["dt"], m["max_events"]), None
    if kind == "smooth":
        import diffrax

        solver = {
            "tsit5": diffrax.Tsit5,
            "dopri5": diffrax.Dopri5,
            "dopri8": diffrax.Dopri8,
            "bosh3": diffrax.Bosh3,
            "heun": diffrax.Heun,
            "midpoint": diffrax.Midpoint,
            "ralston": diffrax.Ralston,
            "euler": diffrax.Euler,
        }[m["solver"]]()
        if m["adaptive"] and m["solver"] == "euler":
            raise DiffringError(
                "model.solver",
                "euler",
                "euler has no error estimate: set model.adaptive: false "
                "or choose one of " + ", ".join(s for s in SOLVERS if s != "euler"),
            )
        model = dr.SmoothRelaxation(network, m["dt"], m["beta"], m["eps_o"], m["corrected"])
        if m["adaptive"]:
            method = dr.ODESolve(
                solver=solver,
                dt0=m["dt0"],
                rtol=m["rtol"],
                atol=m["atol"],
                max_steps=m["max_steps"],
                checkpoints=m["checkpoints"],
            )
            return model, method
        # Fixed steps: ODESolve's ScanAdjoint route, whose steps hold each input sample over its
        # interval (so a run cut into segments follows the same steps as one solve) and which
        # `run.mesh` can shard. It needs dt / dt0 whole; max_steps and checkpoints are adaptive-only.
        for key in ("max_steps", "checkpoints"):
            if m[key] is not None:
                raise DiffringError(f"model.{key}", m[key], "applies to model.adaptive: true only; remove it")
        from ._odesolve import steps_per_sample

        steps_per_sample(m["dt"], m["dt0"], "model.dt0")
        method = dr.ODESolve(solver=solver, stepsize_controller=diffrax.ConstantStepSize(), dt0=m["dt0"],
                             adjoint=dr.ScanAdjoint())
        return model, method
    raise AssertionError(kind)


def init_key(cfg: Mapping):
    import jax

    return jax.random.key(cfg["seed"])


def build_init(cfg: Mapping, network):
    """The initial state of `cfg["init"]`; with run.batch = B > 1 a batch of B from split keys."""
    import jax
    import jax.numpy as jnp

    import diffring as dr

    init, B, dt = cfg["init"], cfg["run"]["batch"], cfg["model"]["dt"]
    kind = init["kind"]
    pulse = {"v_low": init.get("v_low"), "v_rest": init.get("v_rest")}

    def one(key):
        if kind == "pulses":
            return dr.init.pulses(network, init["k"], init["positions"], **pulse)
        if kind == "random_phase":
            return dr.init.random_phase(network, key, dt, k=init["k"], transient=init["transient"], **pulse)
        if kind == "published":
            kw = dict(warmup_steps=init["warmup_steps"], max_factor=init["max_factor"])
            return dr.init.published(network, key, dt, **kw, **pulse)
        return dr.init.uniform(network, key)

    if kind == "file":
        s = dr.init.from_file(network, init["path"])
        lead = s.v.shape[:-1]
        if lead == () and B > 1:
            raise DiffringError(
                "run.batch",
                B,
                f"init file {init['path']!r} holds one state: expected run.batch = 1, "
                "or arrays v, o of shape (batch, n_neurons)",
            )
        if lead not in ((), (B,)):
            raise DiffringError(
                "init.path",
                f"arrays of shape {s.v.shape}",
                f"expected (n_neurons,) or (run.batch, n_neurons) = ({B}, {network.n_neurons})",
            )
        return s
    key = init_key(cfg)
    if B == 1:
        return one(key)
    if kind == "pulses":
        raise DiffringError(
            "run.batch",
            B,
            "init.kind 'pulses' is deterministic, so all members would be identical: "
            "use random_phase, published, uniform, or an init file with a batch axis",
        )
    states = [one(k) for k in jax.random.split(key, B)]
    return jax.tree.map(lambda *a: jnp.stack(a), *states)


def build_inputs(cfg: Mapping, network):
    """The input table of `cfg["input"]`: (n_steps, n_in), or (B, n_steps, n_in) when batched."""
    import jax.numpy as jnp

    from ._io import load_array_file

    if cfg["input"]["kind"] == "none":
        return None
    path = cfg["input"]["path"]
    x = load_array_file("input.path", path)
    n_steps, B, n_in = cfg["run"]["n_steps"], cfg["run"]["batch"], network.n_inputs
    if n_in == 0:
        raise DiffringError(
            "input.kind",
            "file",
            "this network has no input weights: give network.Win (kind file) or use small_world with n_in > 0",
        )
    want = [(n_steps, n_in)] + ([(B, n_steps, n_in)] if B > 1 else [])
    if x.shape not in want:
        raise DiffringError(
            "input.path",
            f"array of shape {x.shape}",
            "expected shape " + " or ".join(str(w) for w in want) + " = (n_steps, n_in)",
        )
    return jnp.asarray(x, jax_dtype(cfg))


def build_record(cfg: Mapping, network=None):
    """The `Record` of a config; with phases on, the lattice observables run on the fly."""
    import diffring as dr

    r = cfg["record"]
    which = r["which"] if isinstance(r["which"], str) else tuple(r["which"])
    observe = None
    if r["phases"] and r["observables"] and network is not None:
        observe = dr.lattice_observables(network)
    return dr.Record(every=r["every"], which=which, fields=tuple(r["fields"]), phases=r["phases"], observe=observe)


def build(cfg: Mapping) -> Built:
    """Network, model, method, initial state, inputs and record of a resolved config."""
    network = build_network(cfg)
    rec = cfg["record"]
    if not isinstance(rec["which"], str) and max(rec["which"]) >= network.n_neurons:
        raise DiffringError("record.which", rec["which"], f"expected neuron indices < n_neurons = {network.n_neurons}")
    model, method = build_model(cfg, network)
    state0, inputs = build_init(cfg, network), build_inputs(cfg, network)
    if cfg["run"].get("mesh") is not None:
        from ._sharding import apply_mesh

        method, state0, inputs = apply_mesh(cfg["run"]["mesh"], model, method, state0, inputs)
    return Built(network, model, method, state0, inputs, build_record(cfg, network), cfg["run"]["batch"])
