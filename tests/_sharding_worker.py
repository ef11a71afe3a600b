"""Subprocess worker for tests/test_sharding.py (jax reads the device count only at start-up).

    python tests/_sharding_worker.py lattices            # sharded vs single device, 2/4/8 devices
    python tests/_sharding_worker.py batch               # shard_batch vs unsharded simulate_batch
    python tests/_sharding_worker.py smooth              # SmoothRelaxation (ScanAdjoint) and the surrogate
                                                         # discrete map: values and gradients
    python tests/_sharding_worker.py multihost PORT ID   # one of 2 processes (jax.distributed)

Prints one JSON line per case on stdout: {"case": ..., "equal": {field: bool}, ...}.
The caller sets XLA_FLAGS=--xla_force_host_platform_device_count=K and a timeout.
"""

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import diffring as dr  # noqa: E402

FIELDS = ("t", "o", "v", "phase", "phase_valid", "R", "status")
# 2, 4 and 8 devices for every scheme and boundary; the mesh shapes rotate over the cases.
MESHES = {
    ("S0", "periodic"): ((2, 1), (2, 2), (2, 4)),
    ("S0", "open"): ((1, 2), (1, 4), (4, 2)),
    ("S1", "periodic"): ((1, 2), (2, 2), (4, 2)),
    ("S1", "open"): ((2, 1), (4, 1), (1, 8)),
    ("S2", "periodic"): ((2, 1), (2, 2), (2, 4)),
    ("S2", "open"): ((1, 2), (2, 2), (8, 1)),
}


def network(scheme, boundary):
    # 8 x 8 rings; eps large enough that neighbours interact within the run.
    ring_size = 6 if scheme == "S0" else 4
    return dr.lattice((8, 8), ring_size, scheme=scheme, boundary=boundary, eps=0.3)


def compare(a, b):
    out = {f: bool(np.array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)))) for f in FIELDS}
    out["state"] = bool(np.array_equal(a.state.v, b.state.v) and np.array_equal(a.state.o, b.state.o))
    out["tracker"] = all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a.tracker), jax.tree.leaves(b.tracker), strict=True)
    )
    return out


def run_pair(net, mesh, record, n_steps=400, key=1):
    model = dr.DiscreteMap(net, dt=0.02)
    s0 = dr.init.random_phase(net, jax.random.key(key))
    single = dr.simulate(model, s0, n_steps=n_steps, record=record)
    sharded = dr.simulate(model, s0, n_steps=n_steps, record=record, method=dr.Sharded(mesh))
    return single, sharded


def lattices(quick=False):
    """Every mesh of MESHES; `quick`: one mesh per scheme and boundary (2, 4, 8 devices in turn)."""
    record = dr.Record(every=20, which="all")
    for i, (scheme, boundary) in enumerate((s, b) for s in ("S0", "S1", "S2") for b in ("periodic", "open")):
        net = network(scheme, boundary)
        model = dr.DiscreteMap(net, dt=0.02)
        s0 = dr.init.random_phase(net, jax.random.key(1))
        single = dr.simulate(model, s0, n_steps=300, record=record)
        meshes = MESHES[scheme, boundary]
        for rows, cols in (meshes[i % len(meshes)],) if quick else meshes:
            sharded = dr.simulate(
                model, s0, n_steps=300, record=record, method=dr.Sharded(dr.lattice_mesh(rows, cols))
            )
            print(
                json.dumps(
                    {
                        "case": f"{scheme}-{boundary}-{rows}x{cols}",
                        "equal": compare(single, sharded),
                        "fired": float(np.mean(np.asarray(single.o) == 0)),
                        "R_last": float(single.R[-1]),
                    }
                ),
                flush=True,
            )
    # Probes and an explicit neuron list, phases off with a reduction, on one scheme.
    net = network("S1", "periodic")
    mesh = dr.lattice_mesh(2, 4)
    for name, record in (
        ("probes", dr.Record(every=25, which="probes")),
        ("which", dr.Record(every=25, which=(0, 5, 77, 100, 127), fields=("o",))),
        (
            "reduce",
            dr.Record(
                every=25,
                which="probes",
                phases=False,
                reduce=lambda t, s: {"rate": 1.0 - s.o.mean(), "resting": jnp.sum(s.o == 1)},
            ),
        ),
    ):
        single, sharded = run_pair(net, mesh, record)
        eq = {
            f: bool(np.array_equal(np.asarray(x), np.asarray(y)))
            for f, x, y in (
                ("o", single.o, sharded.o),
                ("R", single.R, sharded.R),
                ("status", single.status, sharded.status),
            )
        }
        if name == "reduce":
            eq["reduced"] = all(
                np.array_equal(x, y)
                for x, y in zip(jax.tree.leaves(single.reduced), jax.tree.leaves(sharded.reduced), strict=True)
            )
        print(json.dumps({"case": f"record-{name}", "equal": eq}), flush=True)


def batch():
    net = network("S0", "periodic")
    model = dr.DiscreteMap(net, dt=0.02)
    keys = jax.random.split(jax.random.key(3), 8)
    s0 = dr.init.random_phase(net, keys)
    record = dr.Record(every=20, which="probes")
    plain = dr.simulate_batch(model, s0, n_steps=200, record=record)
    mesh = dr.lattice_mesh(2, 4)
    sharded = dr.simulate_batch(model, dr.shard_batch(mesh, s0), n_steps=200, record=record)
    eq = compare(plain, sharded)
    eq["sharded_over_8"] = len(sharded.o.sharding.device_set) == 8
    # A parameter sweep: eps per member, sharded with the states.
    eps = np.linspace(0.0, 0.4, 8)
    swept, axes = dr.batched_model(model, lambda m: m.network.coupling.eps, eps)
    plain = dr.simulate_batch(swept, s0, n_steps=200, record=record, model_axes=axes)
    swept_sh, _ = dr.batched_model(model, lambda m: m.network.coupling.eps, dr.shard_batch(mesh, eps))
    sharded = dr.simulate_batch(swept_sh, dr.shard_batch(mesh, s0), n_steps=200, record=record, model_axes=axes)
    eq_sweep = compare(plain, sharded)
    print(json.dumps({"case": "batch", "equal": eq}), flush=True)
    print(json.dumps({"case": "batch-sweep", "equal": eq_sweep}), flush=True)


def configs():
    """`run.mesh` through the config path of `diffring run` (build + simulate_segments)."""
    from diffring._config import build, resolve
    from diffring._run import simulate_segments

    base = {
        "network": {"kind": "lattice", "shape": [8, 8], "ring_size": 4, "scheme": "S2", "boundary": "open", "eps": 0.3},
        "model": {"kind": "discrete", "dt": 0.02},
        "init": {"kind": "random_phase"},
        "run": {"n_steps": 200, "segments": 2},
        # No on-the-fly observables: their while_loops, vmapped over a sharded batch, synchronise the
        # devices every iteration (an all-reduce of the loop condition), which the test rules out.
        "record": {"every": 20, "which": "all", "observables": False},
    }
    for name, run in (("config-lattice", {"mesh": [2, 2]}), ("config-batch", {"mesh": [2, 4], "batch": 8})):
        outs = []
        for mesh in (None, run["mesh"]):
            cfg = resolve({**base, "run": {**base["run"], **run, "mesh": mesh}})
            records, state, status, _, _ = simulate_segments(cfg, build(cfg), progress=False, time_compile=False)
            outs.append((records, np.asarray(state.v), np.asarray(status)))
        (ra, va, sa), (rb, vb, sb) = outs
        eq = {k: bool(np.array_equal(ra[k], rb[k])) for k in ra}
        eq["state"], eq["status"] = bool(np.array_equal(va, vb)), bool(np.array_equal(sa, sb))
        print(json.dumps({"case": name, "equal": eq}), flush=True)
    # The smooth model's fixed-step route (model.adaptive: false) sharded through run.mesh: equal to
    # the one-device run to rounding (XLA fuses the sharded program differently).
    smooth = {
        **base,
        "network": {"kind": "lattice", "shape": [4, 4], "ring_size": 6, "scheme": "S0", "eps": 0.3},
        "model": {"kind": "smooth", "dt": 0.05, "beta": 30.0, "eps_o": 0.05, "adaptive": False, "dt0": 0.025},
        "run": {"n_steps": 40, "segments": 2},
        "record": {"every": 10, "which": "all", "observables": False},
    }
    outs = []
    for mesh in (None, [2, 2]):
        cfg = resolve({**smooth, "run": {**smooth["run"], "mesh": mesh}})
        records, state, status, _, _ = simulate_segments(cfg, build(cfg), progress=False, time_compile=False)
        outs.append((records, np.asarray(state.v), np.asarray(status)))
    (ra, va, sa), (rb, vb, sb) = outs
    eq = {k: bool(np.allclose(ra[k], rb[k], rtol=0, atol=1e-12)) for k in ra}
    eq["state"], eq["status"] = bool(np.allclose(va, vb, rtol=0, atol=1e-12)), bool(np.array_equal(sa, sb))
    eq["moves"] = bool(np.ptp(ra["v"]) > 0.5)
    print(json.dumps({"case": "config-smooth", "equal": eq}), flush=True)
    errors = {}
    for mesh in ([3, 1], [4, 4]):
        cfg = resolve({**base, "run": {**base["run"], "mesh": mesh}})
        try:
            build(cfg)
            errors[str(mesh)] = None
        except dr.DiffringError as e:
            errors[str(mesh)] = str(e)
    print(json.dumps({"case": "config-errors", "errors": errors}), flush=True)


def grad_difference(g1, g2, net):
    """Per parameter of the model: max |g1 - g2| / max |g1| (relative difference of the one-device
    gradient g1 and the sharded g2), and max |g1|. Unused slots of a sparse table (weight 0, index 0)
    are not connections: the one-device gradient there reads neuron 0, the sharded plan (built from
    concrete weights) skips them, so they are left out."""
    rel, scale = {}, {}
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(g1), jax.tree.leaves(g2), strict=True):
        name = jax.tree_util.keystr(path)
        if name == ".network.coupling.weight":
            x, y = (jnp.where(net.coupling.weight != 0, z, 0.0) for z in (x, y))
        scale[name] = float(jnp.max(jnp.abs(x)))
        rel[name] = float(jnp.max(jnp.abs(x - y))) / scale[name] if scale[name] else float(jnp.max(y))
    return rel, scale


def smooth():
    """The smooth model's fixed-step route, sharded vs one device: records, the loss, its gradient
    with respect to every parameter of the model, and a central difference in eps through the
    sharded run. Runs are short: rounding differences (XLA fuses the sharded program differently)
    are amplified by the dynamics over longer runs (docs/gradients.md, "Conditioning")."""
    import diffrax
    import equinox as eqx

    ode = dr.ODESolve(
        solver=diffrax.Tsit5(), stepsize_controller=diffrax.ConstantStepSize(), dt0=0.025,
        adjoint=dr.ScanAdjoint(segment=4),
    )
    record = dr.Record(every=10, which="all")
    for scheme, boundary, mesh_shape, n_steps in (("S0", "periodic", (2, 2), 60), ("S1", "open", (2, 1), 40)):
        net = dr.lattice((4, 4), 6 if scheme == "S0" else 4, scheme=scheme, boundary=boundary, eps=0.3)
        model = dr.SmoothRelaxation(net, dt=0.05, beta=30.0, eps_o=0.05)
        s0 = dr.init.random_phase(net, jax.random.key(2))
        weights = jnp.linspace(0.0, 1.0, net.n_neurons)
        mesh = dr.lattice_mesh(*mesh_shape)
        sharded = dr.Sharded(mesh, method=ode).resolve(model, s0, None)

        def loss(m, method, weights=weights, s0=s0, n_steps=n_steps):
            sol = dr.simulate(m, s0, n_steps=n_steps, record=record, method=method)
            return jnp.sum(sol.o[-1] * weights) + jnp.mean(sol.v**2), sol

        grad = eqx.filter_value_and_grad(loss, has_aux=True)
        (l1, a), g1 = grad(model, ode)
        (l2, b), g2 = grad(model, sharded)
        rel, _ = grad_difference(g1, g2, net)
        case = {
            "case": f"smooth-{scheme}-{boundary}-{mesh_shape[0]}x{mesh_shape[1]}",
            "loss": [float(l1), float(l2)],
            "records_rel": max(float(jnp.max(jnp.abs(getattr(a, f) - getattr(b, f)))) for f in ("v", "o")),
            "equal": {"R": bool(np.allclose(a.R, b.R, rtol=0, atol=1e-12)),
                      "status": bool(np.all(a.status == b.status))},
            "grad_rel": rel,
            "v_range": float(jnp.max(a.v) - jnp.min(a.v)),
        }
        if scheme == "S0":
            h = 1e-6
            at = lambda e, model=model: eqx.tree_at(lambda m: m.network.coupling.eps, model, jnp.asarray(e))  # noqa: E731
            fd = (loss(at(0.3 + h), sharded)[0] - loss(at(0.3 - h), sharded)[0]) / (2 * h)
            case["eps"] = {"grad_sharded": float(g2.network.coupling.eps), "fd_sharded": float(fd)}
        print(json.dumps(case), flush=True)
        # AdaptiveRK sharded (forward only), the S1 case driven by inputs: its error norm is summed
        # over the devices in another order, so the step sequence, and the solution, agree only to
        # the tolerance (rtol = atol = 1e-10).
        x = None
        if scheme == "S1":
            key1, key2 = jax.random.split(jax.random.key(5))
            mask = (jax.random.uniform(key2, (net.n_neurons, 2)) < 0.3).astype(jnp.float64)
            net = eqx.tree_at(lambda n: n.win, net, jax.random.uniform(key1, (net.n_neurons, 2)) * mask,
                              is_leaf=lambda z: z is None)
            model = dr.SmoothRelaxation(net, dt=0.05, beta=30.0, eps_o=0.05)
            x = jax.random.uniform(jax.random.key(6), (n_steps, 2))
        ark = dr.AdaptiveRK(rtol=1e-10, atol=1e-10)
        a = dr.simulate(model, s0, n_steps=n_steps, record=record, method=ark, inputs=x)
        b = dr.simulate(model, s0, n_steps=n_steps, record=record, method=dr.Sharded(mesh, method=ark), inputs=x)
        free = dr.simulate(model, s0, n_steps=n_steps, record=record, method=ark)
        print(json.dumps({
            "case": f"adaptive-{scheme}-{boundary}-{mesh_shape[0]}x{mesh_shape[1]}",
            "max_diff": max(float(jnp.max(jnp.abs(getattr(a, f) - getattr(b, f)))) for f in ("v", "o", "R")),
            "status": [int(a.status), int(b.status)],
            "steps": int(a.stats["num_steps"]),
            "inputs_matter": float(jnp.max(jnp.abs(free.v - a.v))),
        }), flush=True)


def surrogate():
    """The discrete map with the straight-through `SigmoidSurrogate`, sharded (`Sharded(mesh)`, a
    `MapScan`) vs one device: the forward run and the reverse-mode gradient with respect to every
    parameter of the model. The one-device gradient is checked against a NumPy tangent propagation
    in tests/test_gradients.py; here the sharded one must equal it."""
    import equinox as eqx

    record = dr.Record(every=10, which="all")
    for scheme, boundary, mesh_shape in (("S0", "periodic", (2, 2)), ("S2", "open", (2, 1))):
        net = dr.lattice((4, 4), 6 if scheme == "S0" else 4, scheme=scheme, boundary=boundary, eps=0.3)
        model = dr.DiscreteMap(net, dt=0.02, threshold=dr.SigmoidSurrogate(10.0))
        s0 = dr.init.random_phase(net, jax.random.key(2))
        weights = jnp.linspace(0.0, 1.0, net.n_neurons)

        def loss(m, method, weights=weights, s0=s0):
            sol = dr.simulate(m, s0, n_steps=100, record=record, method=method)
            return jnp.sum(sol.o[-1] * weights) + jnp.mean(sol.v**2), sol

        grad = eqx.filter_value_and_grad(loss, has_aux=True)
        (l1, a), g1 = grad(model, dr.MapScan())
        (l2, b), g2 = grad(model, dr.Sharded(dr.lattice_mesh(*mesh_shape)))
        rel, scale = grad_difference(g1, g2, net)
        print(json.dumps({
            "case": f"surrogate-{scheme}-{boundary}-{mesh_shape[0]}x{mesh_shape[1]}",
            "loss": [float(l1), float(l2)],
            "equal": {"o": bool(np.array_equal(a.o, b.o)), "v": bool(np.array_equal(a.v, b.v))},
            "grad_rel": rel,
            "grad_scale": scale,
            "fired": float(jnp.mean(a.o)),
        }), flush=True)


def multihost(port, pid):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"localhost:{port}", num_processes=2, process_id=pid, initialization_timeout=60
    )
    from jax.experimental import multihost_utils

    assert jax.device_count() == 4 and jax.local_device_count() == 2, (jax.device_count(), jax.local_device_count())
    record = dr.Record(every=20, which="all")
    for scheme in ("S0", "S2"):
        for boundary in ("periodic", "open"):
            net = network(scheme, boundary)
            model = dr.DiscreteMap(net, dt=0.02)
            s0 = dr.init.random_phase(net, jax.random.key(1))
            single = dr.simulate(model, s0, n_steps=400, record=record, method=dr.MapScan())
            single = jax.device_get(single)
            mesh = dr.lattice_mesh(2, 2)  # rows 0 on process 0, row 1 on process 1
            sharded = dr.simulate(model, s0, n_steps=400, record=record, method=dr.Sharded(mesh))
            sharded = multihost_utils.process_allgather(sharded, tiled=True)
            print(
                json.dumps(
                    {
                        "case": f"multihost-{scheme}-{boundary}-p{pid}",
                        "equal": compare(single, sharded),
                        "processes": jax.process_count(),
                    }
                ),
                flush=True,
            )
    jax.distributed.shutdown()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode in ("lattices", "lattices-quick"):
        lattices(quick=mode == "lattices-quick")
    elif mode == "batch":
        batch()
        configs()
    elif mode == "smooth":
        smooth()
        surrogate()
    elif mode == "multihost":
        multihost(int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
