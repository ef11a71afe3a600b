"""Initial conditions: k pulses per ring, clean random phases, the published warm-up, uniform
random, or a file. All randomness comes from one JAX PRNG key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ._errors import DiffringError, check_float, check_int
from ._models import State, validate_state
from ._network import Network


def _members(network):
    members = np.asarray(network.rings.members)
    sizes = np.asarray(network.rings.sizes)
    return members, sizes


def _key_batch(key):
    """The keys of a batch as a list, or None for a single key (new-style or legacy uint32 keys)."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    single_ndim = 0 if typed else 1
    if key.ndim == single_ndim:
        return None
    if key.ndim != single_ndim + 1:
        raise DiffringError("init.key", f"key array of shape {key.shape}", "expected one PRNG key or a 1-D array of keys")
    return [key[i] for i in range(key.shape[0])]


def _stack(states):
    return State(jnp.stack([s.v for s in states]), jnp.stack([s.o for s in states]))


def pulses(
    network: Network,
    k: int = 1,
    positions=None,
    *,
    v_low: float = 0.1,
    v_rest: float = 0.9,
) -> State:
    """k low pulses per ring at `positions` (a list of ring positions, then k = len(positions), or
    None for equally spaced positions floor(j N / k)); low neurons have v = v_low, o = 0, all others
    v = v_rest, o = 1. Deterministic (no key)."""
    k = check_int("init.k", k, minimum=0)
    v_low = check_float("init.v_low", v_low)
    v_rest = check_float("init.v_rest", v_rest)
    members, sizes = _members(network)
    n = network.n_neurons
    v = np.full(n, v_rest)
    o = np.ones(n)
    for r in range(members.shape[0]):
        N = int(sizes[r])
        if positions is None:
            if k > N // 2:
                raise DiffringError("init.k", k, f"expected k <= ring_size // 2 = {N // 2} (ring {r} has {N} neurons)")
            pos = [(j * N) // k for j in range(k)]
        else:
            pos = [check_int("init.positions[]", p, minimum=0) for p in positions]
            if any(p >= N for p in pos):
                raise DiffringError("init.positions", list(positions), f"expected positions < ring size {N}")
            if len(set(pos)) != len(pos):
                raise DiffringError("init.positions", list(positions), "expected distinct ring positions")
        idx = members[r, pos]
        v[idx] = v_low
        o[idx] = 0.0
    dt = network.dtype
    return State(jnp.asarray(v, dt), jnp.asarray(o, dt))


def uniform(network: Network, key: PRNGKeyArray) -> State:
    """v uniform on [0, 1) and o uniform on {0, 1}, independently per neuron.

    Like every random initialiser, a 1-D array of keys gives a batch of states (B, n)."""
    keys = _key_batch(key)
    if keys is not None:
        return _stack([uniform(network, k) for k in keys])
    kv, ko = jax.random.split(key)
    n, dt = network.n_neurons, network.dtype
    v = jax.random.uniform(kv, (n,), dtype=dt)
    o = jax.random.bernoulli(ko, 0.5, (n,)).astype(dt)
    return State(v, o)


def _scalar(a):
    a = np.asarray(a)
    return float(a) if a.ndim == 0 else float(np.median(a))


def _isolated_orbit(network, size, k, dt, v_low, v_rest, transient):
    """One full period of an isolated ring's k-pulse orbit under the discrete map, as (T, size)
    arrays of v and o (T steps of dt, starting at a fire of position 0).

    The ring starts from k equally spaced pulses and runs for `transient` time units; the period is
    then the span of k consecutive inter-fire intervals of position 0 (each pulse passes it once),
    which is the whole orbit also when k does not divide the ring size (unequal gaps)."""
    from ._builders import ring
    from ._models import DiscreteMap
    from ._simulate import Record, simulate

    net = ring(size, tau=_scalar(network.tau), theta_H=_scalar(network.theta_H),
               theta_L=_scalar(network.theta_L), dtype=network.dtype)
    model = DiscreteMap(net, dt)
    s = pulses(net, k, v_low=v_low, v_rest=v_rest)
    n_tr = max(int(round(transient / dt)), 1)
    s = simulate(model, s, n_steps=n_tr, record=Record(every=n_tr, fields=(), phases=False)).state
    n_rec = int(round(8 * size * 2.0 / dt)) + 2  # > 2 periods (w_N < 2 for the default thresholds)
    sol = simulate(model, s, n_steps=n_rec, record=Record(fields=("o", "v"), phases=False))
    o = np.asarray(sol.o)
    fires = np.flatnonzero((o[:-1, 0] >= 0.5) & (o[1:, 0] < 0.5)) + 1
    if fires.size < k + 1:
        raise DiffringError("init", f"ring of size {size} with k = {k}",
                            f"its orbit did not fire {k + 1} times in {n_rec} steps; cannot sample a phase")
    a, b = fires[-k - 1], fires[-1]
    return np.asarray(sol.v)[a:b], o[a:b]


def random_phase(
    network: Network,
    key: PRNGKeyArray,
    dt: float = 0.01,
    *,
    k: int = 1,
    v_low: float = 0.1,
    v_rest: float = 0.9,
    transient: float = 50.0,
) -> State:
    """Clean random phases: each ring is put at an independent, uniformly random time along its
    isolated k-pulse orbit (computed once per ring size with the discrete map at step dt, so it is
    an orbit of `DiscreteMap(network, dt)` with the coupling removed). Rings sharing neurons (S1,
    S2) overwrite shared neurons in ring order. Per-neuron parameters use their medians.
    A 1-D array of keys gives a batch (B, n), sharing the orbit computation."""
    dt = check_float("init.dt", dt, positive=True)
    k = check_int("init.k", k, minimum=1)
    members, sizes = _members(network)
    orbits = {int(size): _isolated_orbit(network, int(size), k, dt, v_low, v_rest, transient) for size in np.unique(sizes)}
    fdt = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32

    def one(key):
        v = np.zeros(network.n_neurons)
        o = np.ones(network.n_neurons)
        u = np.asarray(jax.random.uniform(key, (members.shape[0],), dtype=fdt))
        for size, (vs, os) in orbits.items():
            rows = np.flatnonzero(sizes == size)
            ti = np.minimum((u[rows] * vs.shape[0]).astype(int), vs.shape[0] - 1)
            idx = members[rows, :size]
            v[idx] = vs[ti]
            o[idx] = os[ti]
        return State(jnp.asarray(v, network.dtype), jnp.asarray(o, network.dtype))

    keys = _key_batch(key)
    return one(key) if keys is None else _stack([one(kk) for kk in keys])


def published(
    network: Network,
    key: PRNGKeyArray,
    dt: float = 0.01,
    *,
    warmup_steps: int = 100,
    max_factor: float = 10.0,
    factors=None,
    v_low: float = 0.1,
    v_rest: float = 0.9,
) -> State:
    """The reservoir paper's warm-up (spec section 4), for comparison with `random_phase`.

    All v = v_rest, o = 1; in each ring one neuron at a uniform position other than the last is set
    to v = v_low + 0.01 U[0, 1), o = 0; then each ring runs alone for `warmup_steps` steps of the
    discrete map with its step dt rescaled by a random factor U[0, max_factor) (the published code's
    factor is not specified in our sources: `max_factor` is a parameter; `factors`, shape
    (n_rings,), fixes them instead). Large factors make the effective step huge, which is why
    `random_phase` is the recommended initialiser. A 1-D array of keys gives a batch (B, n).
    """
    from ._builders import rings as build_rings
    from ._models import DiscreteMap
    from ._simulate import Record, simulate

    warmup_steps = check_int("init.warmup_steps", warmup_steps, minimum=0)
    max_factor = check_float("init.max_factor", max_factor, positive=True)
    members, sizes = _members(network)
    R = members.shape[0]
    if factors is not None:
        factors = np.asarray(factors, dtype=np.float64)
        if factors.shape != (R,) or not np.all(np.isfinite(factors)) or np.any(factors < 0):
            raise DiffringError("init.factors", f"array of shape {factors.shape}",
                                f"expected {R} finite step factors >= 0 (one per ring)")
    keys = _key_batch(key)
    if keys is not None:
        kw = dict(warmup_steps=warmup_steps, max_factor=max_factor, factors=factors, v_low=v_low, v_rest=v_rest)
        return _stack([published(network, kk, dt, **kw) for kk in keys])
    kp, kv, kf = jax.random.split(key, 3)
    pos = np.asarray(jax.random.randint(kp, (R,), 0, np.maximum(sizes - 1, 1)))
    jitter = np.asarray(jax.random.uniform(kv, (R,)))
    factor = np.asarray(jax.random.uniform(kf, (R,))) * max_factor if factors is None else factors
    flat = np.concatenate([members[r, : sizes[r]] for r in range(R)])
    ring_of = np.repeat(np.arange(R), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    v = np.full(flat.size, v_rest)
    o = np.ones(flat.size)
    v[starts + pos] = v_low + 0.01 * jitter
    o[starts + pos] = 0.0
    tau = np.broadcast_to(np.asarray(network.tau), (network.n_neurons,))[flat] / np.maximum(factor[ring_of], 1e-12)
    th = np.broadcast_to(np.asarray(network.theta_H), (network.n_neurons,))[flat]
    tl = np.broadcast_to(np.asarray(network.theta_L), (network.n_neurons,))[flat]
    iso = build_rings([int(s) for s in sizes], tau=tau, theta_H=th, theta_L=tl, dtype=network.dtype)
    s = State(jnp.asarray(v, network.dtype), jnp.asarray(o, network.dtype))
    if warmup_steps:
        s = simulate(DiscreteMap(iso, dt), s, n_steps=warmup_steps, record=Record(every=warmup_steps, fields=(), phases=False)).state
    vout = np.zeros(network.n_neurons)
    oout = np.ones(network.n_neurons)
    vout[flat] = np.asarray(s.v)
    oout[flat] = np.asarray(s.o)
    return State(jnp.asarray(vout, network.dtype), jnp.asarray(oout, network.dtype))


def from_file(network: Network, path: str) -> State:
    """An .npz with arrays `v` and `o` of shape (n,) or (batch, n)."""
    from ._io import load_npz_arrays

    arrs = load_npz_arrays("init.path", path, ("v", "o"))
    s = State(jnp.asarray(arrs["v"], network.dtype), jnp.asarray(arrs["o"], network.dtype))
    return validate_state(network, s, "init")
