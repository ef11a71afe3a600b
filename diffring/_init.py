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
        raise DiffringError(
            "init.key", f"key array of shape {key.shape}", "expected one PRNG key or a 1-D array of keys"
        )
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


def _ring_drive(network, members, sizes):
    """For every ring member (ring by ring, position order): the weight from its ring predecessor,
    and the rest of its input with every other neuron at rest (o = 1), e.g. eps * degree at the S0
    receiver. Returns two flat arrays aligned with `members[r, :sizes[r]]` concatenated."""
    import scipy.sparse as sp

    n = network.n_neurons
    post, pre, w = network.coupling.edges()
    W = sp.csr_matrix((w, (post, pre)), shape=(n, n))
    rest = np.asarray(W.sum(axis=1)).ravel()
    ring_of = np.repeat(np.arange(members.shape[0]), sizes)
    pos = np.arange(ring_of.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    me = members[ring_of, pos]
    pred = members[ring_of, (pos - 1) % sizes[ring_of]]
    w_pred = np.asarray(W[me, pred]).ravel()
    return w_pred, rest[me] - w_pred


def _per_neuron(a, n):
    return np.broadcast_to(np.asarray(a, dtype=np.float64), (n,))


def _isolated_orbits(network, k, dt, v_low, v_rest, transient):
    """One full period of each ring's k-pulse orbit with every neuron outside the ring frozen at
    rest, under the discrete map at step dt.

    Rings with the same size, ring weights, resting drive and parameters share one orbit (all rings
    of a periodic lattice share one). Returns the ring -> orbit index map and a list of (T_g, N_g)
    arrays (v, o), each starting at a fire of ring position 0. The period is the span of k
    consecutive inter-fire intervals of position 0 (each pulse passes it once), which is the whole
    orbit also when k does not divide the ring size (unequal gaps)."""
    import scipy.sparse as sp

    from ._builders import from_arrays
    from ._models import DiscreteMap
    from ._simulate import Record, simulate

    members, sizes = _members(network)
    n = network.n_neurons
    tau, th, tl = (_per_neuron(a, n) for a in (network.tau, network.theta_H, network.theta_L))
    w_all, b_all = _ring_drive(network, members, sizes)
    offs = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    flat = np.concatenate([members[r, : sizes[r]] for r in range(members.shape[0])])
    table = np.stack([w_all, b_all, tau[flat], th[flat], tl[flat]], axis=1)
    groups: dict[bytes, int] = {}
    ring_group = np.zeros(members.shape[0], dtype=int)
    for r in range(members.shape[0]):
        key = table[offs[r] : offs[r + 1]].tobytes()
        ring_group[r] = groups.setdefault(key, len(groups))
    reps = [int(r) for r in np.unique(ring_group, return_index=True)[1]]  # first ring of each group
    g_sizes = [int(sizes[r]) for r in reps]
    # One network holding one isolated copy of each distinct ring; the frozen rest of the network
    # enters as a constant input through Win.
    starts = np.concatenate([[0], np.cumsum(g_sizes)[:-1]]).astype(int)
    n_iso = int(sum(g_sizes))
    post, pre, w, bias, idx = [], [], [], [], []
    for g, r in enumerate(reps):
        w_pred, b = w_all[offs[r] : offs[r + 1]], b_all[offs[r] : offs[r + 1]]
        loc = starts[g] + np.arange(g_sizes[g])
        post.append(loc)
        pre.append(np.roll(loc, 1))
        w.append(w_pred)
        bias.append(b)
        idx.append(members[r, : g_sizes[g]])
    post, pre, w, bias, idx = map(np.concatenate, (post, pre, w, bias, idx))
    W = sp.coo_matrix((w, (post, pre)), shape=(n_iso, n_iso))
    iso = from_arrays(
        W, g_sizes, Win=bias[:, None], tau=tau[idx], theta_H=th[idx], theta_L=tl[idx], dtype=network.dtype, where="init"
    )
    model = DiscreteMap(iso, dt)
    s = pulses(iso, k, v_low=v_low, v_rest=v_rest)
    ones = lambda steps: jnp.ones((steps, 1), network.dtype)  # noqa: E731
    n_tr = max(int(round(transient / dt)), 1)
    s = simulate(model, s, n_steps=n_tr, inputs=ones(n_tr), record=Record(every=n_tr, fields=(), phases=False)).state
    # Measure each orbit's period (k + 1 fires of position 0; generous window: w_N < 2 tau for sane
    # thresholds), which also lets slowly relaxing pulse gaps settle further; then record the full
    # state from there for two periods and cut one period starting at a fire.
    n_search = int(round(16 * max(g_sizes) * float(np.max(tau[idx])) / dt)) + 2
    heads = tuple(int(h) for h in starts)
    search = simulate(
        model, s, n_steps=n_search, inputs=ones(n_search), record=Record(which=heads, fields=("o",), phases=False)
    )

    def fires_of(o, g):
        return np.flatnonzero((o[:-1, g] >= 0.5) & (o[1:, g] < 0.5)) + 1

    o = np.asarray(search.o)
    periods = []
    for g in range(len(reps)):
        f = fires_of(o, g)
        if f.size < k + 1:
            raise DiffringError(
                "init",
                f"ring {reps[g]} (size {g_sizes[g]}) with k = {k}",
                f"with its neighbours at rest its {k}-pulse orbit did not fire {k + 1} times in "
                f"{n_search} steps, so it has no phase to sample; use kind 'pulses' or 'uniform'",
            )
        periods.append(int(f[-1] - f[-k - 1]))
    n_rec = 2 * max(periods) + 4
    sol = simulate(
        model, search.state, n_steps=n_rec, inputs=ones(n_rec), record=Record(fields=("o", "v"), phases=False)
    )
    windows = []
    for g in range(len(reps)):
        f = fires_of(np.asarray(sol.o)[:, starts[g] : starts[g] + 1], 0)
        if f.size < k + 1:
            raise DiffringError(
                "init",
                f"ring {reps[g]} (size {g_sizes[g]}) with k = {k}",
                "its orbit is not periodic (its period changed after the transient)",
            )
        windows.append((f[0], f[k]))
    V, O = np.asarray(sol.v), np.asarray(sol.o)
    orbits = []
    for g, (a, b) in enumerate(windows):
        cols = slice(starts[g], starts[g] + g_sizes[g])
        orbits.append((V[a:b, cols], O[a:b, cols]))
    return ring_group, orbits


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
    """Clean random phases: each ring is put at an independent, uniformly random time along the
    k-pulse orbit it has when every neuron outside it is frozen at rest (for an S0 lattice: its own
    orbit with the resting link input eps * degree), computed with the discrete map at step dt.

    So a coupled network starts with no spurious switching: the first thing that happens to a ring
    is its own pulse, and coupling acts only through the neighbours' firing. Rings with the same
    size, weights and parameters share one orbit computation. A neuron shared by several rings (S1,
    S2) takes its value from one of them. A 1-D array of keys gives a batch (B, n).
    """
    dt = check_float("init.dt", dt, positive=True)
    k = check_int("init.k", k, minimum=1)
    transient = check_float("init.transient", transient, nonnegative=True)
    members, sizes = _members(network)
    ring_group, orbits = _isolated_orbits(network, k, dt, v_low, v_rest, transient)
    fdt = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    lengths = np.array([vs.shape[0] for vs, _ in orbits])

    def one(key):
        v = np.zeros(network.n_neurons)
        o = np.ones(network.n_neurons)
        u = np.asarray(jax.random.uniform(key, (members.shape[0],), dtype=fdt))
        T = lengths[ring_group]
        ti = np.minimum((u * T).astype(int), T - 1)
        for g, (vs, os) in enumerate(orbits):
            rows = np.flatnonzero(ring_group == g)
            m = members[rows, : vs.shape[1]]
            v[m] = vs[ti[rows]]
            o[m] = os[ti[rows]]
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
            raise DiffringError(
                "init.factors",
                f"array of shape {factors.shape}",
                f"expected {R} finite step factors >= 0 (one per ring)",
            )
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
        s = simulate(
            DiscreteMap(iso, dt), s, n_steps=warmup_steps, record=Record(every=warmup_steps, fields=(), phases=False)
        ).state
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
