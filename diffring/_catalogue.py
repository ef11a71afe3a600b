"""Ring-orbit catalogue (spec section 2): for each ring size N and pulse count k, the k-pulse
orbit's period (continuous hard model and discrete map), its basin fraction from uniform random
states, and its Floquet multipliers.

Floquet multipliers use the *exact* flow map of the hard model. Between switches the flow is
linear and every event time is an explicit function of the state (t = tau ln(d / theta_L)), so
`HardTrigger`'s event loop is a smooth function of v near a periodic orbit (saltation included)
as long as no event sits at the ends of the interval; its Jacobian (the monodromy matrix) is taken
by central differences in float64 (see `floquet` for why rather than `jax.jacfwd`). To integrate for a
traced duration T with the static `dt`, time is rescaled: one step of dt = 1 with tau = 1 / T is
the flow for time T at tau = 1 (the model depends on time only through t / tau). The periodic
orbit (x0, T) is refined by shooting Newton (phi_T(x0) = x0 with the phase condition
f(x0_ref) . (x0 - x0_ref) = 0), so the multiplier along the flow is 1 to rounding error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray
from scipy.optimize import brentq

from ._builders import ring, rings
from ._errors import check_float, check_int
from ._init import pulses, uniform
from ._models import DiscreteMap, HardTrigger, State
from ._observables import CHATTER, IRREGULAR, PULSE, QUIESCENT, classify_orbits
from ._simulate import Record, simulate, simulate_batch


def spec_period(N: int, theta_L: float = 0.2, theta_H: float = 0.49) -> float:
    """T_1(N) = N w_N of spec section 2 (root with w >= ln(theta_H / theta_L); a spurious root lies
    below it for N > 5)."""

    def f(w):
        return np.exp(w) - (1 - (1 - theta_L * np.exp(-(N - 2) * w)) * np.exp(-w)) / theta_L

    return N * brentq(f, np.log(theta_H / theta_L), 10.0, xtol=1e-15, rtol=1e-15)


def ring_orbits(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """Every (N, k) with 1 <= k <= N // 2: the k-pulse families of the catalogue."""
    return [(int(N), k) for N in sizes for k in range(1, int(N) // 2 + 1)]


def _concat(states):
    return State(jnp.concatenate([s.v for s in states]), jnp.concatenate([s.o for s in states]))


def _probe_intervals(t, o, skip_until):
    out = []
    for r in range(o.shape[1]):
        f = np.flatnonzero((o[:-1, r] >= 0.5) & (o[1:, r] < 0.5)) + 1
        ft = t[f]
        ft = ft[ft >= skip_until]
        out.append((ft[-1] - ft[0]) / (ft.size - 1) if ft.size >= 3 else np.nan)
    return np.array(out)


def measured_periods(
    orbit_list: Sequence[tuple[int, int]],
    model: Callable = DiscreteMap,
    dt: float = 0.01,
    t1: float = 300.0,
    transient: float = 40.0,
) -> np.ndarray:
    """Mean probe inter-fire interval of each k-pulse orbit (k equally spaced pulses to start),
    all orbits as uncoupled rings of one network and one run of `model(network, dt)`.

    For k | N it is T_k(N) = T_1(N / k); one lap of the orbit takes k intervals. Fire times are
    quantised to dt, so the error of a mean over m intervals is below dt / m (plus the model's own).
    """
    net = rings([N for N, _ in orbit_list])
    s0 = _concat([pulses(ring(N), k) for N, k in orbit_list])
    sol = simulate(model(net, dt), s0, t1=t1, record=Record(which="probes", fields=("o",), phases=False))
    return _probe_intervals(np.asarray(sol.t), np.asarray(sol.o), transient)


def _flow(net, o0, max_events):
    """phi(v0, T): v after time T of the hard flow from (v0, o0) (one rescaled event-driven step)."""

    def phi(v0, T):
        tau = jnp.broadcast_to(1.0 / T, jnp.shape(net.tau)).astype(net.dtype)
        step = HardTrigger(eqx.tree_at(lambda n: n.tau, net, tau), 1.0, max_events=max_events).make_step()
        s, ok = step(State(v0, o0), None)
        return s.v, (s.o, ok)

    return phi


def floquet(
    N: int,
    k: int,
    *,
    transient: float = 60.0,
    newton_steps: int = 10,
    tol: float = 1e-14,
    h: float = 1e-6,
    attempts: int = 6,
) -> dict:
    """Periodic k-pulse orbit of a ring of N (continuous hard model, tau = 1) and its Floquet
    multipliers, from the monodromy matrix over one lap (k probe fires): central differences
    (step `h`) of the exact event-driven flow.

    Starts from k equally spaced pulses run for `transient`, then shooting Newton on (x0, T_lap);
    if Newton does not converge to a lap with the same output pattern (slow spacing modes, or an
    event too close to the section), retries from later points of the run (`attempts` in all).
    Returns a dict: `x0`, `o0` (a point of the orbit), `lap` (T_lap), `period` (T_lap / k, the
    probe inter-fire interval),
    `multipliers` (complex, by decreasing modulus), `dist1` (min |mu - 1|), `residual`
    (max |phi_T(x0) - x0|), `kink` (max |phi(x+h) + phi(x-h) - 2 phi(x)| / h: O(h) where the flow
    map is smooth, O(1) where the one-sided Jacobians differ), `ok` (same output pattern after one
    lap, residual < 1e-9, no solver failure: `converged`; and kink < 1e-3).

    Not smooth for N / k = 2, k >= 2 (every other neuron low): the neuron after each firing
    neuron is the input of the next pulse's firing neuron, so when the earliest pulse releases,
    its successor fires and that falling input releases the next pulse at once (a cascade). The
    lap map is then a min over the k release times, the orbit sits on its corner, the one-sided
    Jacobians differ (kink ~ 1) and multipliers are not defined there: `ok` is False.
    """
    N = check_int("N", N, minimum=2)
    k = check_int("k", k, minimum=1)
    for i in range(attempts):
        fl = _floquet_once(N, k, transient * (1 + i) + 0.37 * i, newton_steps, tol, h)
        if fl["converged"]:
            break
    fl["ok"] = fl["converged"] and fl["kink"] < 1e-3
    return fl


def _floquet_once(N, k, transient, newton_steps, tol, h):
    net = ring(N)
    dt = 0.01
    # a lap (k probe fires) takes about N w with w < 1.5: measure whole laps after the transient
    sol = simulate(HardTrigger(net, dt), pulses(net, k), t1=transient + 6.0 * N,
                   record=Record(which="probes", fields=("o",), phases=False))
    t, o = np.asarray(sol.t), np.asarray(sol.o)[:, 0]
    ft = t[np.flatnonzero((o[:-1] >= 0.5) & (o[1:] < 0.5)) + 1]
    ft = ft[ft >= transient]
    m = (ft.size - 1) // k
    T = (ft[k * m] - ft[0]) / m
    x, o0 = sol.state.v, sol.state.o
    phi = _flow(net, o0, 8 * N * k + 64)
    phi_j = jax.jit(phi)
    eye = jnp.eye(N, dtype=net.dtype)

    @jax.jit
    def jac(x, T):
        # Central differences of the exact flow. jax.jacfwd gives the same Jacobian where the lap
        # map is smooth (within 4e-9 for N = 6 ... 12, k = 1 ... 4), but the same +-h flows also
        # measure the kink, which tells where the lap map is not smooth and multipliers are undefined.
        plus = jax.vmap(lambda e: phi(x + h * e, T)[0])(eye)
        minus = jax.vmap(lambda e: phi(x - h * e, T)[0])(eye)
        return ((plus - minus) / (2 * h)).T, jnp.max(jnp.abs(plus + minus - 2 * phi(x, T)[0][None, :])) / h

    f_ref = np.asarray(net.drive(o0, None) - x)  # flow direction at x0 (tau = 1)
    x_ref = np.asarray(x)
    for _ in range(newton_steps):
        y, (o1, _) = phi_j(x, T)
        r = np.asarray(y - x)
        if np.abs(r).max() < tol:
            break
        A = np.zeros((N + 1, N + 1))
        A[:N, :N] = np.asarray(jac(x, T)[0]) - np.eye(N)
        A[:N, N] = np.asarray(net.drive(o1, None) - y)  # d phi_T / dT = f(phi_T(x0))
        A[N, :N] = f_ref
        b = np.concatenate([-r, [-f_ref @ (np.asarray(x) - x_ref)]])
        d = np.linalg.lstsq(A, b, rcond=None)[0]
        x, T = x + d[:N], T + d[N]
    y, (o1, ok) = phi_j(x, T)
    M, kink = jac(x, T)
    M = np.asarray(M)
    mu = np.linalg.eigvals(M)
    mu = mu[np.argsort(-np.abs(mu))]
    return dict(
        N=N, k=k, x0=np.asarray(x), o0=np.asarray(o0), lap=float(T), period=float(T) / k, multipliers=mu,
        dist1=float(np.min(np.abs(mu - 1))),
        residual=float(np.abs(np.asarray(y - x)).max()), kink=float(kink),
        converged=bool(ok) and bool(jnp.all(o1 == o0)) and float(np.abs(np.asarray(y - x)).max()) < 1e-9,
    ) | dict(ok=False)


def basins(
    sizes: Sequence[int],
    key: PRNGKeyArray,
    n_states: int = 1000,
    *,
    dt: float = 0.01,
    t_settle: float = 200.0,
    window: int = 400,
    chunk: int = 250,
) -> tuple[np.ndarray, np.ndarray]:
    """Final orbit class of every ring from `n_states` uniform random states (`init.uniform`),
    discrete map at `dt`, after `t_settle` time units, classified over the next `window` steps
    (`classify_orbits`). All sizes are uncoupled rings of one network, so one batch samples every
    N at once; the batch runs `chunk` states at a time. Returns (orbit, k), each (n_states, n_rings).
    """
    n_states = check_int("n_states", n_states, minimum=1)
    check_float("t_settle", t_settle, positive=True)
    net = rings(list(sizes))
    model = DiscreteMap(net, dt)
    n_settle = int(round(t_settle / dt))
    keys = jax.random.split(key, n_states)
    settle_rec = Record(every=n_settle, which="probes", fields=(), phases=False)
    win_rec = Record(which="all", fields=("o",), phases=False)

    def run(keys):
        s0 = jax.vmap(lambda kk: uniform(net, kk))(keys)
        s1 = simulate_batch(model, s0, n_steps=n_settle, record=settle_rec).state
        o = simulate_batch(model, s1, n_steps=window, record=win_rec).o
        return classify_orbits(o, net.rings)

    out = [run(keys[i : i + chunk]) for i in range(0, n_states, chunk)]
    orbit = np.concatenate([np.asarray(a) for a, _ in out])
    kk = np.concatenate([np.asarray(b) for _, b in out])
    return orbit, kk


def basin_table(orbit: np.ndarray, k: np.ndarray, sizes: Sequence[int]) -> dict:
    """Fractions (and binomial standard errors) per ring size: `{N: {label: (p, se)}}` with labels
    1, 2, ... (k-pulse families), "quiescent", "chatter", "irregular"."""
    B = orbit.shape[0]
    table = {}
    for r, N in enumerate(sizes):
        labels = {kk: (orbit[:, r] == PULSE) & (k[:, r] == kk) for kk in range(1, N // 2 + 1)}
        labels.update(quiescent=orbit[:, r] == QUIESCENT, chatter=orbit[:, r] == CHATTER,
                      irregular=(orbit[:, r] == IRREGULAR) | ((orbit[:, r] == PULSE) & (k[:, r] > N // 2)))
        table[int(N)] = {
            lab: (float(m.mean()), float(np.sqrt(m.mean() * (1 - m.mean()) / B))) for lab, m in labels.items()
        }
    return table


def catalogue(
    sizes: Sequence[int] = tuple(range(2, 17)),
    *,
    dt: float = 0.01,
    n_states: int = 1000,
    seed: int = 0,
    t_settle: float = 200.0,
) -> tuple[list[dict], dict]:
    """The whole catalogue: one row per (N, k) with `T_spec` (T_1(N/k) when k | N, else nan),
    `T_cont` (Newton period of the hard model, per probe fire), `T_map` (discrete map at dt),
    `basin`, `basin_se`, `multipliers`, `dist1`, `residual`, `kink`, `ok` (see
    `floquet`); plus the per-N basin table (`basin_table`)."""
    orb = ring_orbits(sizes)
    T_map = measured_periods(orb, DiscreteMap, dt)
    orbit, kk = basins(sizes, jax.random.PRNGKey(seed), n_states, dt=dt, t_settle=t_settle)
    table = basin_table(orbit, kk, sizes)
    rows = []
    for (N, k), tm in zip(orb, T_map, strict=True):
        fl = floquet(N, k)
        p, se = table[N][k]
        rows.append(dict(N=N, k=k, T_spec=spec_period(N // k) if N % k == 0 else float("nan"),
                         T_cont=fl["period"], T_map=float(tm), basin=p, basin_se=se,
                         multipliers=fl["multipliers"], dist1=fl["dist1"], residual=fl["residual"],
                         kink=fl["kink"], ok=fl["ok"]))
    return rows, table
