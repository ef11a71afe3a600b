"""The config contract: parsing, defaults, validation, --set overrides and building from a config."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

import diffring as dr
from diffring._config import (
    DEFAULT_CONFIG,
    apply_overrides,
    build_model,
    build_network,
    dump_yaml,
    load_config,
    parse_override,
    parse_yaml,
    resolve,
)

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def _err(raw, overrides=()):
    with pytest.raises(dr.DiffringError) as e:
        resolve(apply_overrides(raw, list(overrides)))
    msg = str(e.value)
    assert "\n" not in msg
    return e.value, msg


def test_default_yaml_is_the_embedded_default():
    assert resolve(load_config(str(CONFIGS / "default.yaml"))) == resolve(DEFAULT_CONFIG) == resolve()


def test_embedded_default_is_the_issue_run():
    cfg = resolve()
    net = cfg["network"]
    assert (net["kind"], net["shape"], net["ring_size"], net["scheme"], net["boundary"]) == (
        "lattice",
        [64, 64],
        6,
        "S0",
        "periodic",
    )
    assert net["eps"] == 0.2
    assert cfg["run"]["n_steps"] * cfg["model"]["dt"] == pytest.approx(cfg["run"]["t1"])
    assert cfg["run"]["t1"] >= 380.0  # the spec's ordering time (section 6)


@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith("sweep_")),
                         ids=lambda p: p.name)
def test_shipped_configs_resolve_and_round_trip(path):
    cfg = resolve(load_config(str(path)))
    again = resolve(parse_yaml(dump_yaml(cfg)))
    assert again == cfg
    # the written YAML is plain YAML any reader understands
    assert yaml.safe_load(dump_yaml(cfg)) == cfg


def test_user_config_takes_library_defaults_per_kind():
    cfg = resolve({"network": {"kind": "lattice", "shape": [8, 8]}})
    # the keys the user left out are the library builder's defaults (diffring.lattice), not the
    # embedded default run's (whose eps is 0.2)
    import inspect

    sig = inspect.signature(dr.lattice).parameters
    for k in ("ring_size", "scheme", "eps", "boundary", "shared", "r_in", "s_out", "aggregate", "probe"):
        assert cfg["network"][k] == sig[k].default, k
    sig = inspect.signature(dr.small_world).parameters
    sw = resolve({"seed": 7, "network": {"kind": "small_world"}})["network"]
    for k in ("n_rings", "eps", "p", "n_in", "input_weight", "input_density"):
        assert sw[k] == sig[k].default, k
    assert sw["ring_sizes"] == list(sig["ring_sizes"].default)
    assert sw["seed"] == 7  # network.seed defaults to the top-level seed


def _defaults(obj):
    import dataclasses
    import inspect

    if dataclasses.is_dataclass(obj):
        return {f.name: f.default for f in dataclasses.fields(obj)}
    return {k: p.default for k, p in inspect.signature(obj).parameters.items()}


def test_model_and_init_defaults_are_the_librarys():
    """Schema defaults must not drift from the library's own defaults."""
    checks = [
        ({"model": {"kind": "discrete"}}, "model", dr.DiscreteMap, ("dt",)),
        ({"model": {"kind": "continuous"}}, "model", dr.HardTrigger, ("dt", "max_events")),
        ({"model": {"kind": "smooth"}}, "model", dr.SmoothRelaxation, ("dt", "beta", "eps_o", "corrected")),
        ({"model": {"kind": "smooth"}}, "model", dr.ODESolve, ("rtol", "atol", "dt0", "max_steps", "checkpoints")),
        ({"model": {"kind": "discrete"}}, "model", dr.SigmoidSurrogate, ()),
        ({}, "model", dr.ring, ("tau", "theta_H", "theta_L")),
        ({"init": {"kind": "pulses"}}, "init", dr.init.pulses, ("k", "positions", "v_low", "v_rest")),
        ({"init": {"kind": "random_phase"}}, "init", dr.init.random_phase, ("k", "transient", "v_low", "v_rest")),
        ({"init": {"kind": "published"}}, "init", dr.init.published, ("warmup_steps", "max_factor", "v_low", "v_rest")),
    ]
    for raw, section, obj, keys in checks:
        cfg = resolve({"network": {"kind": "ring"}, **raw})[section]
        lib = _defaults(obj)
        if obj is dr.ring:  # neuron parameters are keyword defaults of the builders
            lib = _defaults(dr.rings)
        for k in keys:
            assert cfg[k] == lib[k], (obj, k)
    # threshold_beta left unset means each threshold's own default beta.
    for name, cls in (("sigmoid", dr.SigmoidSurrogate), ("soft", dr.SoftThreshold)):
        raw = {"network": {"kind": "ring"}, "model": {"kind": "discrete", "threshold": name}}
        model, _ = build_model(resolve(raw), dr.ring(6))
        assert model.threshold.beta == _defaults(cls)["beta"], name
        raw["model"]["threshold_beta"] = 7.5
        model, _ = build_model(resolve(raw), dr.ring(6))
        assert model.threshold.beta == 7.5, name


def test_set_coerces_types():
    raw = apply_overrides(
        DEFAULT_CONFIG,
        [
            "network.eps=0.1",
            "network.shape=[8,8]",
            "record.fields=[o]",
            "seed=3",
            "dtype=float32",
            "record.phases=false",
        ],
    )
    cfg = resolve(raw)
    assert cfg["network"]["eps"] == 0.1 and isinstance(cfg["network"]["eps"], float)
    assert cfg["network"]["shape"] == [8, 8]
    assert cfg["record"]["fields"] == ["o"]
    assert cfg["seed"] == 3 and cfg["dtype"] == "float32" and cfg["record"]["phases"] is False
    assert DEFAULT_CONFIG["network"]["shape"] == [64, 64]  # the default itself is untouched


def test_set_reads_exponent_floats_and_ints_as_floats():
    assert parse_override("model.rtol=1e-3") == (["model", "rtol"], 1e-3)
    assert parse_override("model.dt=5E-3")[1] == 5e-3
    cfg = resolve(apply_overrides({"network": {"kind": "ring"}}, ["network.size=5", "model.tau=2"]))
    assert cfg["model"]["tau"] == 2.0 and isinstance(cfg["model"]["tau"], float)
    assert cfg["network"]["size"] == 5 and isinstance(cfg["network"]["size"], int)


def test_set_kind_resets_the_section():
    cfg = resolve(apply_overrides(DEFAULT_CONFIG, ["network.kind=ring", "network.size=5"]))
    assert cfg["network"] == {"kind": "ring", "size": 5, "probe": 0}
    cfg = resolve(apply_overrides(DEFAULT_CONFIG, ["network.kind=lattice", "network.eps=0.3"]))  # same kind: merge
    assert cfg["network"]["shape"] == [64, 64] and cfg["network"]["eps"] == 0.3


def test_run_length():
    base = {"network": {"kind": "ring"}}
    cfg = resolve({**base, "run": {"t1": 2.5}, "model": {"dt": 0.01}, "record": {"every": 10}})
    assert cfg["run"]["n_steps"] == 250
    cfg = resolve({**base, "run": {"n_steps": 300}, "model": {"dt": 0.02}, "record": {"every": 10}})
    assert cfg["run"]["t1"] == pytest.approx(6.0)
    assert resolve(cfg) == cfg  # t1 and n_steps both present and consistent
    # --set run.n_steps replaces the config's t1
    cfg = resolve(apply_overrides(DEFAULT_CONFIG, ["run.n_steps=1000"]))
    assert cfg["run"]["n_steps"] == 1000 and cfg["run"]["t1"] == pytest.approx(10.0)
    e, msg = _err({**base, "run": {"t1": 2.0, "n_steps": 100}, "record": {"every": 10}})
    assert e.field == "run"
    e, msg = _err({**base, "run": {"n_steps": 105}, "record": {"every": 10}})
    assert e.field == "record.every" and "105" in msg


@pytest.mark.parametrize(
    "raw, overrides, field, words",
    [
        ({"network": {"kind": "lattice", "shap": [8, 8]}}, [], "network.shap", ["unknown key", "shape", "ring_size"]),
        ({"netwrok": {"kind": "ring"}}, [], "netwrok", ["unknown key", "network"]),
        ({"network": {"kind": "ring"}}, ["network.eps=0.1"], "network.eps", ["unknown key", "size"]),
        ({"network": {"kind": "torus"}}, [], "network.kind", ["ring", "lattice", "small_world", "file"]),
        ({"network": {"kind": "lattice"}}, [], "network.shape", ["required"]),
        ({"network": {"kind": "lattice", "shape": [8, 8], "eps": "big"}}, [], "network.eps", ["number"]),
        ({"network": {"kind": "lattice", "shape": [8, 8, 8]}}, [], "network.shape", ["length 1 or 2"]),
        ({"network": {"kind": "lattice", "shape": [8, 8], "scheme": "S3"}}, [], "network.scheme", ["S0", "S1", "S2"]),
        ({"network": {"kind": "rings", "sizes": [3, 1]}}, [], "network.sizes[1]", [">= 2"]),
        ({"network": {"kind": "ring"}, "model": {"dt": 0}}, [], "model.dt", ["> 0"]),
        ({"network": {"kind": "ring"}, "model": {"dt": float("nan")}}, [], "model.dt", ["finite"]),
        ({"network": {"kind": "ring"}, "record": {"every": 0}}, [], "record.every", [">= 1"]),
        ({"network": {"kind": "ring"}, "record": {"which": "some"}}, [], "record.which", ["all", "probes"]),
        ({"network": {"kind": "ring"}, "record": {"fields": ["o", "u"]}}, [], "record.fields[1]", ["o, v"]),
        ({"network": {"kind": "ring"}, "dtype": "float16"}, [], "dtype", ["float32", "float64"]),
        ({"network": {"kind": "ring"}, "seed": -1}, [], "seed", ["in [0, "]),
        ({"network": {"kind": "ring"}, "seed": 2**64}, [], "seed", ["9223372036854775807"]),  # was an OverflowError
        ({"network": {"kind": "ring"}, "seed": True}, [], "seed", ["integer"]),
        ({"network": {"kind": "ring"}, "init": {"kind": "file"}}, [], "init.path", ["required"]),
        (
            {"network": {"kind": "ring"}, "init": {"kind": "file", "path": "/nonexistent/x.npz"}},
            [],
            "init.path",
            ["not found"],
        ),
        ({"network": {"kind": "ring"}, "run": {"batch": 0}}, [], "run.batch", [">= 1"]),
        ({"network": 3}, [], "network", ["mapping"]),
    ],
)
def test_bad_configs_name_the_field(raw, overrides, field, words):
    e, msg = _err(raw, overrides)
    assert e.field == field, msg
    for w in words:
        assert w in msg, (w, msg)


def test_override_syntax_errors():
    with pytest.raises(dr.DiffringError, match="dotted.key=value"):
        parse_override("network.eps")
    with pytest.raises(dr.DiffringError, match="invalid YAML"):
        parse_override("network.shape=[8,8")
    with pytest.raises(dr.DiffringError) as e:
        apply_overrides({"seed": 1}, ["seed.x=2"])
    assert e.value.field == "seed"


def test_yaml_syntax_error_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("seed: 1\nnetwork: {kind: ring, size: 6\nmodel: {}\n")
    with pytest.raises(dr.DiffringError) as e:
        load_config(str(p))
    assert "invalid YAML at line" in str(e.value) and "\n" not in str(e.value)
    p.write_text("- just\n- a list\n")
    with pytest.raises(dr.DiffringError, match="mapping"):
        load_config(str(p))


def test_relative_paths_resolve_against_the_config_directory(tmp_path, monkeypatch):
    d = tmp_path / "cfgdir"
    d.mkdir()
    W = sp.csr_matrix(np.roll(np.eye(4), 1, axis=0))  # one 4-ring: row = receiver, neuron k-1 -> k
    sp.save_npz(d / "W.npz", W)
    (d / "run.yaml").write_text("network: {kind: file, W: W.npz, rings: [4]}\n")
    monkeypatch.chdir(tmp_path)  # somewhere else
    cfg = resolve(load_config(str(d / "run.yaml")))
    assert cfg["network"]["W"] == str(d / "W.npz")
    # with --set, relative paths are relative to the current directory
    cfg = resolve(apply_overrides({"network": {"kind": "file", "rings": [4]}}, ["network.W=cfgdir/W.npz"]))
    assert cfg["network"]["W"] == os.path.join(str(tmp_path), "cfgdir", "W.npz")


def test_build_network_matches_the_library_builders():
    cfg = resolve(
        {"seed": 5, "network": {"kind": "small_world", "n_rings": 30, "ring_sizes": [3, 6]}, "model": {"theta_H": 0.45}}
    )
    net = build_network(cfg)
    ref = dr.small_world(30, (3, 6), seed=5, theta_H=0.45, dtype=net.dtype)
    a, b = net.coupling.to_scipy().toarray(), ref.coupling.to_scipy().toarray()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(net.win), np.asarray(ref.win))
    assert float(net.theta_H) == 0.45 and float(net.theta_L) == 0.2
    # a different seed gives a different graph, so the seed really reaches the builder
    other = build_network(resolve(apply_overrides(cfg, ["seed=6", "network.seed=null"])))
    assert not np.array_equal(other.coupling.to_scipy().toarray(), a)


def test_build_model_kinds():
    cfg = resolve(
        {
            "network": {"kind": "ring", "size": 4},
            "model": {"kind": "smooth", "beta": 50.0, "eps_o": 0.01, "adaptive": False, "dt0": 0.001},
        }
    )
    net = build_network(cfg)
    model, method = build_model(cfg, net)
    assert isinstance(model, dr.SmoothRelaxation) and model.beta == 50.0 and model.eps_o == 0.01
    assert isinstance(method, dr.ODESolve) and method.dt0 == 0.001
    import diffrax

    assert isinstance(method.stepsize_controller, diffrax.ConstantStepSize)
    assert isinstance(method.adjoint, dr.ScanAdjoint)  # fixed steps: the route that holds each input sample
    for key, value, match in (("dt0", 0.003, r"model\.dt0.*whole number"), ("checkpoints", 4, r"model\.checkpoints")):
        bad = resolve({"network": {"kind": "ring", "size": 4},
                       "model": {"kind": "smooth", "dt": 0.01, "adaptive": False, key: value}})
        with pytest.raises(dr.DiffringError, match=match):
            build_model(bad, build_network(bad))
    cfg = resolve({"network": {"kind": "ring"}, "model": {"kind": "discrete", "threshold": "sigmoid"}})
    model, method = build_model(cfg, build_network(cfg))
    assert isinstance(model.threshold, dr.SigmoidSurrogate) and method is None
    cfg = resolve({"network": {"kind": "ring"}, "model": {"kind": "continuous", "dt": 0.05}})
    model, _ = build_model(cfg, build_network(cfg))
    assert isinstance(model, dr.HardTrigger) and model.dt == 0.05


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("sweep_*.yaml")), ids=lambda p: p.name)
def test_shipped_sweep_configs_validate(path):
    from diffring._sweep import load_sweep, validate_sweep

    sweep = validate_sweep(load_sweep(str(path)))
    assert sweep is not None
