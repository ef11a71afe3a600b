"""Property-based hardening: random and malformed configs, `--set` overrides and sweep files fed to
the loader and the CLI either run (tiny sizes) or fail with one `DiffringError` line that names a
field; never an internal traceback, never a hang, never partial results that look valid."""

from __future__ import annotations

import copy
import json
import os

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings, strategies as st

from diffring._cli import main
from diffring._config import INIT, KINDS, MODEL, NETWORK, PLAIN, SECTIONS, apply_overrides, build, resolve
from diffring._errors import DiffringError
from diffring._sweep import validate_sweep

BASE = {
    "seed": 0,
    "network": {"kind": "ring", "size": 4},
    "model": {"kind": "discrete", "dt": 0.1},
    "init": {"kind": "pulses", "k": 1},
    "run": {"n_steps": 20},
    "record": {"every": 10},
    "output": {"plots": False},
}

# every key the schema knows, as dotted paths, plus kinds and a few that do not exist
KEYS = sorted(
    {f"{s}.{k}" for s, kinds in KINDS.items() for kind in kinds.values() for k in kind}
    | {f"{s}.kind" for s in KINDS}
    | {f"{s}.{k}" for s, keys in PLAIN.items() for k in keys}
    | {"seed", "dtype", "network.shap", "modle.dt", "run.t1.x"}
)
KIND_NAMES = sorted({k for s in (NETWORK, MODEL, INIT) for k in s} | {"file", "none", "lattice"})

small_int = st.integers(-3, 12)
scalars = st.one_of(
    small_int,
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 0.01, 0.1, 0.49, 1.0, 1e308, -1e-300, True, False, None, "", "S0", "S2", "periodic"]),
    st.sampled_from(KIND_NAMES),
    st.text(max_size=6),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.lists(small_int, min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(["kind", "a", "size"]), scalars, max_size=2),
)


def _set(cfg: dict, key: str, value) -> dict:
    out = copy.deepcopy(cfg)
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value
    return out


def _one_line_error(e: DiffringError) -> None:
    msg = str(e)
    assert "\n" not in " ".join(msg.split()) and e.field and isinstance(e.field, str), msg


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=1, max_size=4))
def test_loader_accepts_or_names_the_field(changes):
    cfg = BASE
    for k, v in changes:
        cfg = _set(cfg, k, v)
    try:
        resolved = resolve(cfg)
    except DiffringError as e:
        _one_line_error(e)
        return
    # resolved configs are complete and a fixed point of resolve (they can be fed back in)
    assert list(resolved) == list(SECTIONS)
    assert resolve(json.loads(json.dumps(resolved))) == resolved


override_text = st.one_of(
    st.builds(lambda k, v: f"{k}={json.dumps(v)}", st.sampled_from(KEYS), values),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), st.text(max_size=8)),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(override_text, max_size=3))
def test_overrides_accept_or_name_the_field(overrides):
    try:
        resolve(apply_overrides(BASE, overrides))
    except DiffringError as e:
        _one_line_error(e)


# plausible values: most configs made of them resolve, so building them tests the consistency
# checks between sections (probe vs ring size, pulse positions, record.which vs n_neurons, ...)
plausible = st.one_of(
    st.integers(0, 7),
    st.sampled_from([0.0, 0.05, 0.2, 0.3, 0.49, 0.6, 1.0, 2.0, True, False, None]),
    st.sampled_from(KIND_NAMES + ["S0", "S1", "S2", "open", "periodic", "mean", "sum", "all", "probes"]),
    st.lists(st.integers(0, 6), min_size=1, max_size=3),
    st.sampled_from([[3, 3], [2, 4], [5], ["o"], ["v"], []]),
)


def typed(t):
    """Values of a schema type (small sizes), so that most configs resolve and the checks between
    sections are what gets exercised."""
    from diffring import _config as c

    if isinstance(t, c._Int):
        return st.integers(t.minimum if t.minimum is not None else 0, 7)
    if isinstance(t, c._Float):
        lo = t.lo if t.lo is not None else (1e-3 if t.positive else -1.0)
        hi = t.hi if t.hi is not None else 3.0
        return st.sampled_from(sorted({lo, hi, 0.01, 0.05, 0.1, 0.2, 0.49, 0.5, 1.0}))
    if isinstance(t, c._Choice):
        return st.sampled_from(t.choices)
    if isinstance(t, c._Bool):
        return st.booleans()
    if isinstance(t, c._List):
        n = t.lengths or (1, 2, 3)
        return st.integers(min(n), max(n)).flatmap(lambda k: st.lists(typed(t.item), min_size=k, max_size=k))
    if isinstance(t, c._Optional):
        return st.one_of(st.none(), typed(t.inner))
    if isinstance(t, c._OneOf):
        return st.one_of(*(typed(a) for a in t.alts))
    return plausible


@st.composite
def kind_configs(draw, inits=("pulses", "uniform")):
    """Configs whose sections each pick a kind and set a few of that kind's own keys."""
    cfg = copy.deepcopy(BASE)
    for section, kinds in (("network", NETWORK), ("model", MODEL), ("init", {k: INIT[k] for k in inits})):
        kind = draw(st.sampled_from(sorted(k for k in kinds if k != "file")))
        sec = {"kind": kind}
        for k in draw(st.lists(st.sampled_from(sorted(kinds[kind]) or ["kind"]), max_size=3)):
            t = kinds[kind].get(k, (None, None))[1]
            sec[k] = draw(typed(t) if t is not None and draw(st.integers(0, 9)) else plausible)
        cfg[section] = sec
    for k in draw(st.lists(st.sampled_from(["every", "which", "fields", "phases", "observables"]), max_size=2)):
        cfg["record"][k] = draw(typed(PLAIN["record"][k][1]))
    cfg["run"] = {"n_steps": draw(st.sampled_from([10, 20, 30]))}
    return cfg


def _build_or_name_the_field(cfg):
    try:
        resolved = resolve(cfg)
    except DiffringError as e:
        _one_line_error(e)
        event("rejected by resolve")
        return
    try:
        build(resolved)  # sizes are at most 7 per key: small networks
        event("built")
    except DiffringError as e:
        _one_line_error(e)
        event("rejected by build")


@settings(
    max_examples=int(os.environ.get("DIFFRING_FUZZ_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(kind_configs())
def test_build_accepts_or_names_the_field(cfg):
    """Resolved configs also build (network, model, initial state) or fail with a field."""
    _build_or_name_the_field(cfg)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind_configs(inits=tuple(k for k in INIT if k != "file")))
def test_build_with_simulated_initial_states(cfg):
    """As above with random_phase and published starts (each compiles a warm-up simulation)."""
    _build_or_name_the_field(cfg)


yaml_text = st.one_of(
    st.text(max_size=40),
    st.builds(lambda d: yaml.safe_dump(d), st.dictionaries(st.sampled_from([*SECTIONS, "junk"]), values, max_size=3)),
    st.sampled_from(["network: {kind: ring, size: 4", "run: [", "- a\n- b", "a: b: c", "\t\x00", "{{{", "seed: 0x"]),
)


@pytest.mark.timeout(600)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=yaml_text, overrides=st.lists(override_text, max_size=2))
def test_cli_runs_or_fails_with_one_line(tmp_path_factory, text, overrides):
    d = tmp_path_factory.mktemp("fuzz")
    cfg = d / "c.yaml"
    cfg.write_text(text)
    out = d / "out"
    args = ["run", str(cfg), "--out", str(out), "--quiet"]
    for o in overrides:
        args += ["--set", o]
    # keep any run tiny: a small ring, few steps
    args += ["--set", "network.kind=ring", "--set", "network.size=4", "--set", "run.n_steps=20"]
    args += ["--set", "record.every=10", "--set", "output.plots=false", "--set", "init.kind=pulses"]
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(args)
    text_err = err.getvalue()
    assert rc in (0, 2), text_err
    assert "Traceback" not in text_err and "internal error" not in text_err, text_err
    if rc == 2:
        assert len(text_err.strip().splitlines()) == 1 and "diffring: error:" in text_err
        assert not out.exists()  # nothing written, not even a checkpoint
        assert not os.path.exists(str(out) + ".checkpoint")
    else:
        assert sorted(os.listdir(out)) == ["config.yaml", "outputs.npz", "summary.json"]


sweep_values = st.one_of(values, st.lists(values, max_size=3))


@settings(max_examples=200, deadline=None)
@given(
    grid=st.one_of(values, st.dictionaries(st.sampled_from(KEYS), sweep_values, max_size=2)),
    seeds=st.one_of(values, st.lists(small_int, max_size=3)),
    chunk=st.one_of(small_int, values),
    extra=st.dictionaries(st.sampled_from(["grids", "Seeds", "base"]), values, max_size=1),
)
def test_sweep_validation_accepts_or_names_the_field(grid, seeds, chunk, extra):
    raw = {"base": BASE, "grid": grid, "seeds": seeds, "chunk": chunk, **extra}
    try:
        sweep = validate_sweep(raw)
    except DiffringError as e:
        _one_line_error(e)
        return
    assert len(sweep.members) >= 1 and all(m.cfg["run"]["batch"] == 1 for m in sweep.members)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=kind_configs())
def test_cli_runs_kind_configs_or_fails_with_one_line(tmp_path_factory, cfg):
    """Whole runs (simulate, observables, plots off) of schema-typed configs of every kind."""
    import contextlib
    import io

    d = tmp_path_factory.mktemp("fuzz")
    (d / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = d / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["run", str(d / "c.yaml"), "--out", str(out), "--quiet"])
    text_err = err.getvalue()
    assert rc in (0, 2) and "Traceback" not in text_err and "internal error" not in text_err, text_err
    if rc == 2:
        assert len(text_err.strip().splitlines()) == 1 and not out.exists()
    else:
        event("ran")
        assert sorted(os.listdir(out)) == ["config.yaml", "outputs.npz", "summary.json"]


sweep_text = st.one_of(
    yaml_text,
    st.builds(
        lambda g, s: yaml.safe_dump({"base": BASE, "grid": g, "seeds": s}),
        st.dictionaries(st.sampled_from(KEYS), st.lists(values, max_size=2), max_size=2),
        st.lists(small_int, max_size=2),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=sweep_text)
def test_cli_sweep_file_fails_with_one_line_before_work(tmp_path_factory, text):
    """Malformed SWEEP.yaml files: exit 2, one line, DIR not created. (Valid ones are not run here.)"""
    import contextlib
    import io

    from diffring._sweep import load_sweep

    d = tmp_path_factory.mktemp("fuzz")
    (d / "s.yaml").write_text(text)
    try:
        validate_sweep(load_sweep(str(d / "s.yaml")))
        event("valid sweep (not run)")
        return
    except DiffringError:
        pass
    out = d / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["sweep", str(d / "s.yaml"), "--out", str(out), "--quiet"])
    text_err = err.getvalue()
    assert rc == 2 and len(text_err.strip().splitlines()) == 1 and "diffring: error:" in text_err, text_err
    assert not out.exists()
