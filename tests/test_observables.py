"""Observables against inputs with a known answer: pulse counts of hand-built ring states;
R = 1 / xi = system size for an all-in-phase field; R ~ 1/sqrt(n) for independent uniform phases;
C(Delta) of a twisted state; xi of fields with prescribed exponential correlations (random-walk
chains and Poisson-line mosaics); one straight wall between two domains; orbit classes of
hand-built rasters and of simulated k-pulse rings. Every estimator is also checked against a plain
NumPy loop of its definition, and on-the-fly values (Record.observe) against post-hoc ones."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

import diffring as dr
from diffring._observables import _pulse_counter, _sincos, _wrapped_abs

TWO_PI = 2 * np.pi


# --- NumPy references ----------------------------------------------------------------------------


def np_pulse_count(o, members, sizes):
    """Maximal cyclic runs of low outputs per ring, by walking around each ring."""
    out = []
    for r, N in enumerate(sizes):
        low = [o[members[r][p]] < 0.5 for p in range(N)]
        if all(low):
            out.append(1)
            continue
        out.append(sum(1 for p in range(N) if low[p] and not low[p - 1]))
    return np.array(out)


def neighbours(site, grid, periodic):
    """Forward neighbours site + e_a (one per axis, if it exists)."""
    for a, L in enumerate(grid):
        s = list(site)
        s[a] += 1
        if s[a] == L:
            if not periodic or L == 1:
                continue
            s[a] = 0
        yield a, tuple(s)


def np_corr_axes(theta, valid, grid, periodic, max_delta, axes):
    num = np.zeros(max_delta + 1)
    den = np.zeros(max_delta + 1)
    for site in np.ndindex(*grid):
        if not valid[site]:
            continue
        for a in axes:
            for D in range(max_delta + 1):
                s = list(site)
                s[a] += D
                if s[a] >= grid[a]:
                    if not periodic:
                        continue
                    s[a] %= grid[a]
                s = tuple(s)
                if valid[s]:
                    num[D] += np.cos(theta[site] - theta[s])
                    den[D] += 1
    return np.where(den > 0, num / np.maximum(den, 1), 0.0)


def np_corr_iso(theta, valid, grid, periodic, max_delta):
    num = np.zeros(max_delta + 1)
    den = np.zeros(max_delta + 1)
    sites = [s for s in np.ndindex(*grid) if valid[s]]
    for s1 in sites:
        for s2 in sites:
            d = np.abs(np.subtract(s1, s2)).astype(float)
            if periodic:
                d = np.minimum(d, np.asarray(grid) - d)
            b = int(np.rint(np.sqrt(np.sum(d * d))))
            if b <= max_delta:
                num[b] += np.cos(theta[s1] - theta[s2])
                den[b] += 1
    return np.where(den > 0, num / np.maximum(den, 1), 0.0)


def np_walls_and_components(theta, valid, grid, periodic, threshold=np.pi / 2, k=None):
    """Wall bonds (set of (a, site)), bonds, and min-index component labels via scipy csgraph."""
    n = int(np.prod(grid))
    idx = np.arange(n).reshape(grid)
    walls, bonds, rows, cols = set(), 0, [], []
    for site in np.ndindex(*grid):
        for a, nb in neighbours(site, grid, periodic):
            if not (valid[site] and valid[nb]):
                continue
            bonds += 1
            d = abs(np.angle(np.exp(1j * (theta[nb] - theta[site]))))
            if d > threshold or (k is not None and k[site] != k[nb]):
                walls.add((a, site))
            else:
                rows.append(idx[site])
                cols.append(idx[nb])
    g = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    labels = np.full(n, -1)
    vflat = valid.reshape(-1)
    for c in np.unique(comp[vflat]):
        m = (comp == c) & vflat
        labels[m] = np.flatnonzero(m).min()
    return walls, bonds, labels.reshape(grid)


# --- field generators with known correlations ----------------------------------------------------


def random_walk_chains(n, xi, samples, rng):
    """theta_{r+1} = theta_r + N(0, s^2): Var(theta_{r+D} - theta_r) = D s^2, so
    C(D) = exp(-D s^2 / 2) = exp(-D / xi) with s^2 = 2 / xi (open chain)."""
    steps = rng.normal(0.0, np.sqrt(2.0 / xi), size=(samples, n))
    return np.mod(np.cumsum(steps, axis=1), TWO_PI)


def poisson_line_field(L, xi, rng):
    """Isotropic Poisson line mosaic: every line adds a uniform random phase to one side of it.
    A segment of length d is hit by Poisson(2 lam d) lines (lam: intensity per unit p per radian)
    and <cos> over a uniform shift is 0, so C(d) = P(no line) = exp(-d / xi) with lam = 1/(2 xi),
    in every direction."""
    lam = 1 / (2 * xi)
    c = (L - 1) / 2
    Rd = (L - 1) / np.sqrt(2) + 1
    n = rng.poisson(lam * 2 * Rd * np.pi)
    p = rng.uniform(-Rd, Rd, n)
    phi = rng.uniform(0, np.pi, n)
    psi = rng.uniform(0, TWO_PI, n)
    y, x = np.mgrid[0:L, 0:L].astype(float) - c
    side = (np.cos(phi)[:, None, None] * x + np.sin(phi)[:, None, None] * y) > p[:, None, None]
    return np.mod((side * psi[:, None, None]).sum(0), TWO_PI)


# --- pulse counts and phases ------------------------------------------------------------------


def test_pulse_count_hand_built_ring_states():
    net = dr.rings([8, 5, 2, 6, 3, 4])
    members = np.asarray(net.rings.members)
    low_positions = {0: [0, 1, 4, 7], 1: [], 2: [0, 1], 3: [1, 3, 5], 4: [2], 5: [0, 3]}
    expected = [2, 0, 1, 3, 1, 1]  # ring 0: runs {7, 0, 1} (wraps) and {4}; ring 2 all low; ring 5 {3, 0}
    o = np.ones(net.n_neurons)
    for r, ps in low_positions.items():
        o[members[r, ps]] = 0.0
    k = dr.pulse_count(jnp.asarray(o), net.rings)
    np.testing.assert_array_equal(np.asarray(k), expected)
    # batched and jitted: a batch of (a state, its complement, all high)
    ob = jnp.asarray(np.stack([o, 1 - o, np.ones_like(o)]))
    kb = jax.jit(dr.pulse_count)(ob, net.rings)
    np.testing.assert_array_equal(np.asarray(kb[0]), expected)
    np.testing.assert_array_equal(np.asarray(kb[1]), [2, 1, 0, 3, 1, 1])
    np.testing.assert_array_equal(np.asarray(kb[2]), 0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: dr.small_world(30, (2, 9), eps=0.1, p=0.3, seed=1),
        lambda: dr.lattice([3, 4], 8, scheme="S1", shared=2),
        lambda: dr.lattice([4, 4], 4, scheme="S2"),
        lambda: dr.lattice([3, 5], 6, scheme="S0"),
        lambda: dr.chain(7, 4, boundary="open"),
    ],
)
def test_pulse_count_equals_a_walk_around_each_ring(make, rng):
    """Also the specialised counter of `lattice_observables` (a reshape for S0, a roll for full rings)."""
    net = make()
    members, sizes = np.asarray(net.rings.members), np.asarray(net.rings.sizes)
    o = (rng.random((5, net.n_neurons)) < 0.6).astype(float)
    o[0] = 0.0  # all low: one run per ring
    k = np.asarray(dr.pulse_count(jnp.asarray(o), net.rings))
    fast = np.asarray(jax.jit(_pulse_counter(net.rings))(jnp.asarray(o)))
    for b in range(5):
        np.testing.assert_array_equal(k[b], np_pulse_count(o[b], members, sizes))
        np.testing.assert_array_equal(fast[b], k[b])


@pytest.mark.parametrize("kk", [1, 2, 3])
def test_pulse_initial_states_have_k_pulses(kk):
    net = dr.lattice([3, 3], 6 if kk < 3 else 9, eps=0.2)
    np.testing.assert_array_equal(np.asarray(dr.pulse_count(dr.init.pulses(net, kk).o, net.rings)), kk)


def test_track_phases_post_hoc_equals_on_the_fly():
    net = dr.lattice([4, 4], 6, eps=0.2)
    model = dr.DiscreteMap(net, 0.01)
    s0 = dr.init.random_phase(net, jax.random.key(5), 0.01)
    sol = dr.simulate(model, s0, n_steps=2000, record=dr.Record(every=1, which="probes", fields=("o",)))
    theta, valid, tracker = jax.jit(dr.track_phases)(sol.t, sol.o)
    np.testing.assert_array_equal(np.asarray(valid), np.asarray(sol.phase_valid))
    np.testing.assert_array_equal(np.asarray(theta), np.asarray(sol.phase))
    np.testing.assert_array_equal(np.asarray(tracker.last), np.asarray(sol.tracker.last))


# --- order parameters -----------------------------------------------------------------------------


def test_all_in_phase_R_one_and_xi_system_size():
    for grid, periodic in (((16, 12), True), ((16, 12), False), ((40,), False)):
        theta = jnp.full(grid, 2.1)
        assert float(dr.global_order(theta)) == pytest.approx(1.0, abs=1e-14)
        np.testing.assert_allclose(np.asarray(dr.local_order(theta, radius=2, periodic=periodic)), 1.0, atol=1e-14)
        for corr in ("axes", "isotropic"):
            C = (dr.correlation_axes if corr == "axes" else dr.correlation_isotropic)(theta, periodic=periodic)
            np.testing.assert_allclose(np.asarray(C), 1.0, atol=1e-13)
            for est in (dr.ExpFit(), dr.Crossing()):
                xi = dr.correlation_length(theta, estimator=est, correlation=corr, periodic=periodic)
                assert float(xi) == max(grid)
            assert float(dr.ExpFit(intercept=True)(C, max(grid))) == max(grid)
        assert int(np.sum(np.asarray(dr.wall_bonds(theta, periodic=periodic)))) == 0
        dom = dr.domains(theta, periodic=periodic)
        assert int(dom.n_domains) == 1 and int(dom.largest) == math.prod(grid)
        assert np.all(np.asarray(dom.labels) == 0)


def test_independent_uniform_phases_R_of_order_one_over_sqrt_n(rng):
    """n R^2 ~ Exp(1) (mean 1) for n independent uniform phases; the same for local R with m the
    number of valid rings in the box; C(Delta >= 1) ~ 0 and xi ~ 0."""
    B, grid = 400, (12, 10)
    n = math.prod(grid)
    theta = jnp.asarray(rng.uniform(0, TWO_PI, (B,) + grid))
    R = np.asarray(dr.global_order(theta, ndim=2))
    assert R.shape == (B,)
    assert 0.9 < np.mean(n * R**2) < 1.1
    assert np.mean(R) == pytest.approx(np.sqrt(np.pi / (4 * n)), rel=0.08)  # Rayleigh mean
    for periodic in (True, False):
        Rl = np.asarray(dr.local_order(theta, radius=1, ndim=2, periodic=periodic))
        m = np.zeros(grid)  # rings in each box
        for y, x in np.ndindex(*grid):
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    m[y, x] += periodic or (0 <= yy < grid[0] and 0 <= xx < grid[1])
        nR2 = m[None] * Rl**2
        assert 0.95 < nR2.mean() < 1.05
    C = np.asarray(dr.correlation_axes(theta, ndim=2)).mean(0)
    assert abs(C[0] - 1) < 1e-12 and np.all(np.abs(C[1:]) < 4 / np.sqrt(B * 2 * n))
    # on 64 x 64 the sampling error of C(1) (~0.011) is far below the fit floor 0.05: xi = 0
    big = jnp.asarray(rng.uniform(0, TWO_PI, (6, 64, 64)))
    np.testing.assert_array_equal(np.asarray(dr.correlation_length(big, ndim=2)), 0.0)
    assert np.all(np.asarray(dr.correlation_length(big, ndim=2, estimator=dr.Crossing())) < 1)


def test_order_parameters_equal_numpy_with_a_mask(rng):
    grid = (7, 6)
    theta = rng.uniform(0, TWO_PI, grid)
    valid = rng.random(grid) < 0.7
    z = np.where(valid, np.exp(1j * theta), 0)
    R = float(dr.global_order(jnp.asarray(theta), jnp.asarray(valid)))
    assert R == pytest.approx(abs(z.sum()) / valid.sum(), abs=1e-14)
    for periodic in (True, False):
        for radius in (1, 2):
            Rl = np.asarray(dr.local_order(jnp.asarray(theta), jnp.asarray(valid), radius=radius, periodic=periodic))
            ref = np.zeros(grid)
            for y, x in np.ndindex(*grid):
                s, c = 0j, 0
                for dy in range(-radius, radius + 1):
                    for dx in range(-radius, radius + 1):
                        yy, xx = y + dy, x + dx
                        if periodic:
                            yy, xx = yy % grid[0], xx % grid[1]
                        elif not (0 <= yy < grid[0] and 0 <= xx < grid[1]):
                            continue
                        s += z[yy, xx]
                        c += valid[yy, xx]
                ref[y, x] = abs(s) / c if c else 0.0
            np.testing.assert_allclose(Rl, ref, rtol=0, atol=1e-13)


# --- correlation functions ----------------------------------------------------------------------


@pytest.mark.parametrize("grid", [(9,), (6, 7), (3, 4, 5)])
@pytest.mark.parametrize("periodic", [True, False])
def test_correlations_equal_numpy_pair_sums(grid, periodic, rng):
    theta = rng.uniform(0, TWO_PI, grid)
    valid = rng.random(grid) < 0.8
    md = min(grid) - 1
    jt, jv = jnp.asarray(theta), jnp.asarray(valid)
    for axis in [None] + list(range(len(grid))):
        C = np.asarray(dr.correlation_axes(jt, jv, max_delta=md, periodic=periodic, axis=axis))
        axes = range(len(grid)) if axis is None else [axis]
        np.testing.assert_allclose(C, np_corr_axes(theta, valid, grid, periodic, md, axes), rtol=0, atol=1e-12)
    Ci = np.asarray(dr.correlation_isotropic(jt, jv, max_delta=md, periodic=periodic))
    np.testing.assert_allclose(Ci, np_corr_iso(theta, valid, grid, periodic, md), rtol=0, atol=1e-12)


def test_twisted_state_correlation_is_a_cosine():
    """theta = 2 pi m x / L on a periodic grid: C(Delta) = cos(2 pi m Delta / L) along x, 1 along y."""
    L, m = 24, 3
    theta = jnp.asarray(np.broadcast_to(TWO_PI * m * np.arange(L) / L, (10, L)).copy())
    D = np.arange(L // 2 + 1)
    Cx = np.asarray(dr.correlation_axes(theta, axis=1, max_delta=L // 2))
    np.testing.assert_allclose(Cx, np.cos(TWO_PI * m * D / L), atol=1e-12)
    Cy = np.asarray(dr.correlation_axes(theta, axis=0))
    np.testing.assert_allclose(Cy, 1.0, atol=1e-12)
    assert float(dr.global_order(theta)) == pytest.approx(0.0, abs=1e-12)


def test_exponential_chain_xi_recovered_within_10_percent(rng):
    xi_true = 8.0
    theta = jnp.asarray(random_walk_chains(600, xi_true, 200, rng))
    C = np.asarray(dr.correlation_axes(theta, ndim=1, periodic=False, max_delta=60)).mean(0)
    D = np.arange(61)
    np.testing.assert_allclose(C[:25], np.exp(-D[:25] / xi_true), atol=0.02)
    for est in (dr.ExpFit(), dr.ExpFit(intercept=True), dr.Crossing()):
        assert float(est(jnp.asarray(C), 600.0)) == pytest.approx(xi_true, rel=0.1)


@pytest.fixture(scope="module")
def poisson_fields():
    rng = np.random.default_rng(11)
    return 5.0, jnp.asarray(np.stack([poisson_line_field(40, 5.0, rng) for _ in range(300)]))


@pytest.mark.parametrize("corr", ["axes", "isotropic"])
def test_isotropic_exponential_field_xi_recovered_within_10_percent(poisson_fields, corr):
    xi_true, theta = poisson_fields
    f = dr.correlation_axes if corr == "axes" else dr.correlation_isotropic
    C = np.asarray(jax.jit(lambda t: f(t, ndim=2, periodic=False))(theta)).mean(0)
    D = np.arange(C.size)
    np.testing.assert_allclose(C[:16], np.exp(-D[:16] / xi_true), atol=0.04)
    for est in (dr.ExpFit(), dr.ExpFit(intercept=True), dr.Crossing()):
        assert float(est(jnp.asarray(C), 40.0)) == pytest.approx(xi_true, rel=0.1)


def test_xi_estimators_on_exact_exponentials():
    """A pure exponential: the fit and the log-interpolated 1/e crossing are exact; the floor
    cuts the fit; no crossing gives xi_max; a batch of curves is handled elementwise."""
    D = np.arange(33)
    xis = np.array([0.7, 2.5, 6.3, 11.3])
    C = np.exp(-D[None] / xis[:, None])
    for est in (dr.ExpFit(), dr.ExpFit(intercept=True), dr.ExpFit(weighted=False), dr.Crossing()):
        np.testing.assert_allclose(np.asarray(est(jnp.asarray(C), 32.0)), xis, rtol=1e-10)
    # without interpolation: the first Delta with C < 1/e, i.e. ceil(xi) (xi not an integer)
    np.testing.assert_array_equal(np.asarray(dr.Crossing(interpolate=False)(jnp.asarray(C))), np.ceil(xis))
    # noise beyond the floor is ignored by the fit
    Cn = C.copy()
    Cn[:, 20:] = np.where(Cn[:, 20:] < 0.05, 0.3, Cn[:, 20:])
    np.testing.assert_allclose(np.asarray(dr.ExpFit()(jnp.asarray(Cn), 32.0))[:3], xis[:3], rtol=1e-10)
    flat = jnp.ones((2, 10))
    assert np.all(np.asarray(dr.ExpFit()(flat, 9.0)) == 9.0) and np.all(np.asarray(dr.Crossing()(flat, 9.0)) == 9.0)
    assert float(dr.ExpFit()(jnp.asarray([1.0, 0.01, 0.0]))) == 0.0


# --- walls and domains ------------------------------------------------------------------------------


def test_two_domains_one_straight_wall(rng):
    rows, cols, x0 = 12, 16, 7
    noise = rng.uniform(-0.5, 0.5, (rows, cols))  # < pi/4 each: never a wall inside a domain
    theta = jnp.asarray(np.where(np.arange(cols)[None] < x0, 0.3, 0.3 + np.pi) + noise)
    # open: one wall, exactly `rows` bonds long, between columns x0 - 1 and x0
    w = np.asarray(dr.wall_bonds(theta, periodic=False))
    assert w.shape == (2, rows, cols)
    assert not w[0].any() and w[1].sum() == rows and w[1][:, x0 - 1].all()
    n_bonds = (rows - 1) * cols + rows * (cols - 1)
    assert float(dr.wall_density(theta, periodic=False)) == pytest.approx(rows / n_bonds, abs=1e-15)
    dom = dr.domains(theta, periodic=False)
    assert int(dom.n_domains) == 2 and int(dom.largest) == rows * (cols - x0)
    assert float(dom.mean_size) == rows * cols / 2
    labels = np.asarray(dom.labels)
    np.testing.assert_array_equal(labels, np.where(np.arange(cols)[None] < x0, 0, x0) * np.ones((rows, 1), int))
    sizes = np.asarray(dom.sizes)
    assert sizes[0] == rows * x0 and sizes[x0] == rows * (cols - x0) and sizes.sum() == rows * cols
    hist = np.asarray(dr.size_distribution(dom.sizes))
    assert hist[rows * x0] == 1 and hist[rows * (cols - x0)] == 1 and hist.sum() == 2
    # periodic: the seam between the last and first column is a second straight wall
    w = np.asarray(dr.wall_bonds(theta, periodic=True))
    assert w[1].sum() == 2 * rows and w[1][:, x0 - 1].all() and w[1][:, cols - 1].all()
    assert float(dr.wall_density(theta)) == pytest.approx(2 * rows / (2 * rows * cols), abs=1e-15)
    assert int(dr.domains(theta).n_domains) == 2


def test_a_domain_wrapping_around_a_periodic_boundary():
    cols = 12
    inside = (np.arange(cols) < 3) | (np.arange(cols) >= 9)
    theta = jnp.asarray(np.broadcast_to(np.where(inside, 0.0, np.pi), (5, cols)).copy())
    dp, do = dr.domains(theta, periodic=True), dr.domains(theta, periodic=False)
    assert int(dp.n_domains) == 2 and int(dp.largest) == 30
    assert int(do.n_domains) == 3 and int(do.largest) == 30
    assert np.asarray(dp.labels)[0, 10] == 0 and np.asarray(do.labels)[0, 10] == 9


def test_spiral_domain_needs_many_sweeps():
    """A one-ring-wide spiral corridor (long path, small grid): min-label flooding must finish."""
    n = 15
    y0, x0, y1, x1 = 0, 0, n - 1, n - 1
    corridor = np.zeros((n, n), bool)
    # draw a spiral of in-phase cells separated by anti-phase cells
    while y0 <= y1 and x0 <= x1:
        corridor[y0, x0 : x1 + 1] = True
        corridor[y0 : y1 + 1, x1] = True
        if y1 - y0 >= 2:
            corridor[y1, x0 : x1 + 1] = True
        if x1 - x0 >= 2 and y1 - y0 >= 4:
            corridor[y0 + 2 : y1 + 1, x0] = True
        y0, x0, y1, x1 = y0 + 2, x0 + 2, y1 - 2, x1 - 2
    theta = np.where(corridor, 0.0, np.pi)
    _, _, ref = np_walls_and_components(theta, np.ones((n, n), bool), (n, n), False)
    dom = jax.jit(lambda t: dr.domains(t, periodic=False))(jnp.asarray(theta))
    np.testing.assert_array_equal(np.asarray(dom.labels), ref)


@pytest.mark.parametrize("grid, periodic", [((10, 13), True), ((10, 13), False), ((30,), True), ((3, 4, 5), False)])
def test_walls_and_domains_equal_a_graph_reference(grid, periodic, rng):
    """Random smooth-ish fields with a validity mask and optional k: wall bonds, wall density and
    component labels equal a NumPy/SciPy-csgraph computation; a vmapped batch equals its members."""
    B = 3
    base = rng.uniform(0, TWO_PI, (B,) + grid)
    theta = base
    if len(grid) == 2:  # smooth a little so that domains are larger than single rings
        theta = np.angle(sum(np.roll(np.exp(1j * base), s, axis=a) for a in (1, 2) for s in (-1, 0, 1)))
    valid = rng.random((B,) + grid) < 0.9
    k = rng.integers(1, 3, (B,) + grid) * (rng.random((B,) + grid) < 0.15) + 1
    nd = len(grid)
    for kk in (None, k):
        jk = None if kk is None else jnp.asarray(kk)
        w = np.asarray(dr.wall_bonds(jnp.asarray(theta), jnp.asarray(valid), k=jk, ndim=nd, periodic=periodic))
        dens = np.asarray(dr.wall_density(jnp.asarray(theta), jnp.asarray(valid), k=jk, ndim=nd, periodic=periodic))
        dom = jax.jit(lambda t, v, kq: dr.domains(t, v, k=kq, ndim=nd, periodic=periodic))(
            jnp.asarray(theta), jnp.asarray(valid), jk
        )
        for b in range(B):
            walls, bonds, labels = np_walls_and_components(
                theta[b], valid[b], grid, periodic, k=None if kk is None else kk[b]
            )
            got = {(a, tuple(int(i) for i in site)) for a in range(nd) for site in np.argwhere(w[b, a])}
            assert got == walls
            assert dens[b] == pytest.approx(len(walls) / bonds, abs=1e-15)
            np.testing.assert_array_equal(np.asarray(dom.labels[b]), labels)
            sizes = np.bincount(labels[labels >= 0].ravel(), minlength=labels.size)
            np.testing.assert_array_equal(np.asarray(dom.sizes[b]), sizes)
            assert int(dom.n_domains[b]) == len(np.unique(labels[labels >= 0]))
            assert int(dom.largest[b]) == sizes.max()
            assert float(dom.mean_size[b]) == pytest.approx(valid[b].sum() / int(dom.n_domains[b]), abs=1e-12)


def scipy_domains(cls, valid, periodic):
    """Min-index labels of a class map (equal neighbouring classes join, other classes are walls)
    by scipy.ndimage.label per class; a periodic grid then merges labels across each seam."""
    grid = cls.shape
    lab = np.full(grid, -1)
    nxt = 0
    for c in np.unique(cls[valid]):
        part, n = ndimage.label((cls == c) & valid)
        lab[part > 0] = part[part > 0] - 1 + nxt
        nxt += n
    parent = list(range(nxt))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if periodic:
        for a, L in enumerate(grid):
            first, last = np.take(lab, 0, axis=a).ravel(), np.take(lab, L - 1, axis=a).ravel()
            same = (np.take(cls, 0, axis=a) == np.take(cls, L - 1, axis=a)).ravel()
            for x, y, join in zip(first, last, same, strict=True):
                if x >= 0 and y >= 0 and join:  # valid neighbours across the seam, same class
                    parent[root(x)] = root(y)
    flat = lab.reshape(-1)
    roots = np.array([root(i) for i in flat[flat >= 0]])
    out = np.full(flat.shape, -1)
    sites = np.flatnonzero(flat >= 0)
    for r in np.unique(roots):
        m = sites[roots == r]
        out[m] = m.min()
    return out.reshape(grid)


@pytest.mark.parametrize("periodic", [True, False])
def test_domains_of_random_blob_maps_equal_scipy_ndimage_label(periodic, rng):
    """Random 64 x 64 maps of three phase classes 2 pi / 3 apart (every class change is a wall),
    from fine noise (percolating, tortuous domains) to large blobs, with invalid rings."""
    L = 64
    for smooth in (0, 1, 3):
        for _ in range(2):
            f = rng.normal(size=(3, L, L))
            if smooth:
                f = ndimage.gaussian_filter(f, sigma=(0, smooth, smooth), mode="wrap" if periodic else "reflect")
            cls = np.argmax(f, axis=0)
            valid = rng.random((L, L)) < 0.97
            theta = jnp.asarray(cls * (2 * np.pi / 3) + rng.uniform(-0.2, 0.2, (L, L)))
            dom = dr.domains(theta, jnp.asarray(valid), periodic=periodic)
            ref = scipy_domains(np.where(valid, cls, -1), valid, periodic)
            np.testing.assert_array_equal(np.asarray(dom.labels), ref)
            sizes = np.bincount(ref[ref >= 0], minlength=L * L)
            np.testing.assert_array_equal(np.asarray(dom.sizes), sizes)
            assert int(dom.n_domains) == np.count_nonzero(sizes) and int(dom.largest) == sizes.max()


def test_sincos_within_two_ulp_of_numpy(rng):
    """The vectorised sin/cos of the observables against NumPy's (correctly rounded in practice):
    2 ulp, or 1e-29 absolute next to a zero (the reduction's last term, q (pi/2)_3, rounds)."""
    for hi in (2 * np.pi, 50.0, 1e6):
        x = rng.uniform(-hi, hi, 20_000)
        x[:8] = [0.0, -0.0, np.pi / 2, np.pi, 1.5 * np.pi, 2 * np.pi, np.pi / 4, -np.pi / 4]
        s, c = (np.asarray(a) for a in jax.jit(_sincos)(jnp.asarray(x)))
        for got, ref in ((s, np.sin(x)), (c, np.cos(x))):
            np.testing.assert_array_less(np.abs(got - ref), np.maximum(2 * np.spacing(np.abs(ref)) * (1 + 1e-9), 1e-29))
    # huge phases are first reduced modulo 2 pi (fmod): finite and on the unit circle
    x = jnp.asarray([1e13, -3e15, 1e300])
    s, c = (np.asarray(a) for a in jax.jit(_sincos)(x))
    np.testing.assert_allclose(s * s + c * c, 1.0, atol=1e-15)
    ref = np.fmod(np.asarray(x), 2 * np.pi)
    np.testing.assert_allclose(s, np.sin(ref), atol=1e-15)
    assert np.all(np.isnan(np.asarray(jax.jit(_sincos)(jnp.asarray([np.nan, np.inf]))[0])))


def test_wrapped_abs_is_the_remainder_formula_bit_for_bit(rng):
    """The one-add fast path equals |remainder(d + pi, 2 pi) - pi| exactly (phase differences of
    [0, 2 pi) phases, edge values), and the fmod path is taken for anything else."""
    d = np.concatenate(
        [
            rng.uniform(0, 2 * np.pi, 50_000) - rng.uniform(0, 2 * np.pi, 50_000),
            [0.0, -0.0, np.pi, -np.pi, np.pi / 2, -np.pi / 2, 2 * np.pi - 1e-15, -2 * np.pi + 1e-15, np.nan],
        ]
    )
    ref = np.asarray(jax.jit(lambda d: jnp.abs(jnp.remainder(d + jnp.pi, 2 * jnp.pi) - jnp.pi))(jnp.asarray(d)))
    got = np.asarray(jax.jit(_wrapped_abs)(jnp.asarray(d)))
    np.testing.assert_array_equal(got.view(np.int64), ref.view(np.int64))
    far = jnp.asarray([20.0, -20.0, 1e5, 0.1])
    np.testing.assert_allclose(
        np.asarray(_wrapped_abs(far)), np.abs(np.angle(np.exp(1j * np.asarray(far)))), atol=1e-10
    )


# --- orbits, rates, rasters ----------------------------------------------------------------------------


def travelling_pulse_raster(N, k, T, width, speed):
    """k equally spaced low runs of `width` neurons moving one position every `speed` steps."""
    o = np.ones((T, N))
    for t in range(T):
        head = t // speed
        for j in range(k):
            for w in range(width):
                o[t, (head + j * (N // k) - w) % N] = 0.0
    return o


def test_classify_hand_built_rasters():
    net = dr.rings([6, 6, 4, 8, 3, 5])
    m = np.asarray(net.rings.members)
    T = 200
    o = np.ones((T, net.n_neurons))
    # ring 0 quiescent (all high); ring 1 a 1-pulse; ring 2 chatter; ring 3 a 2-pulse;
    # ring 4 a 1-pulse that dies half way (irregular); ring 5 stuck low but silent (quiescent)
    o[:, m[1, :6]] = travelling_pulse_raster(6, 1, T, 1, 7)
    o[:, m[2, 0]] = np.arange(T) % 2
    o[:, m[3, :8]] = travelling_pulse_raster(8, 2, T, 2, 5)
    o[:, m[4, :3]] = travelling_pulse_raster(3, 1, T, 1, 9)
    o[T // 3 :, m[4, :3]] = 1.0
    o[:, m[5, :5]] = 0.0
    orbit, k = dr.classify_orbits(jnp.asarray(o), net.rings)
    np.testing.assert_array_equal(
        np.asarray(orbit), [dr.QUIESCENT, dr.PULSE, dr.CHATTER, dr.PULSE, dr.IRREGULAR, dr.QUIESCENT]
    )
    np.testing.assert_array_equal(np.asarray(k)[[0, 1, 3, 4]], [0, 1, 2, 0])
    # a pulse created mid-window: 1 -> 2 pulses is irregular
    o2 = o.copy()
    o2[:, m[3, :8]] = travelling_pulse_raster(8, 1, T, 1, 5)
    o2[T // 2 :, m[3, :8]] = travelling_pulse_raster(8, 2, T, 1, 5)[T // 2 :]
    orbit2, k2 = dr.classify_orbits(jnp.asarray(np.stack([o, o2])), net.rings)
    assert int(orbit2[1, 3]) == dr.IRREGULAR and int(k2[1, 3]) == 2
    np.testing.assert_array_equal(np.asarray(orbit2[0]), np.asarray(orbit))
    # firing fractions and fire counts of the same raster
    frac = np.asarray(dr.firing_fraction(jnp.asarray(o), net.rings))
    assert frac[0] == 0 and frac[2] == pytest.approx(0.5 * 0.25) and frac[5] == 1
    np.testing.assert_allclose(frac[1], 1 / 6, atol=1 / T)
    np.testing.assert_allclose(frac[3], 4 / 8, atol=2 / T)
    per_neuron = np.asarray(dr.firing_fraction(jnp.asarray(o)))
    np.testing.assert_allclose(per_neuron, (o < 0.5).mean(0), atol=1e-15)
    counts = np.asarray(dr.fire_counts(jnp.asarray(o)))
    assert counts[m[2, 0]] == T // 2 - 1  # falls 1 -> 0 at t = 2, 4, ..., T - 2
    assert counts[m[0, 0]] == 0 and counts[m[5, 0]] == 0
    # the probe (position 0) of the 1-pulse ring 1 goes low once per 6 * 7 steps
    ring_counts = np.asarray(dr.fire_counts(jnp.asarray(o), net.rings))
    first_fire_positions = [t for t in range(1, T) if o[t - 1, m[1, 0]] == 1 and o[t, m[1, 0]] == 0]
    assert ring_counts[1] == len(first_fire_positions) == len(range(42, T, 42))


def test_classify_simulated_rings():
    """Pulse initial states of uncoupled rings stay k-pulse orbits; the rest state is quiescent."""
    sizes = [6, 8, 9, 12, 5]
    net = dr.rings(sizes)
    model = dr.DiscreteMap(net, 0.01)
    for kk in (0, 1, 2):
        s0 = dr.init.pulses(net, kk)
        sol = dr.simulate(model, s0, n_steps=1600, record=dr.Record(every=1, fields=("o",), phases=False))
        orbit, k = dr.classify_orbits(sol.o[-800:], net.rings)
        want = dr.QUIESCENT if kk == 0 else dr.PULSE
        np.testing.assert_array_equal(np.asarray(orbit), want)
        np.testing.assert_array_equal(np.asarray(k), kk)
        if kk:
            # the pulse count flickers only during hand-offs (one step with fewer low runs)
            kt = np.asarray(dr.pulse_count(sol.o[-800:], net.rings))
            assert np.mean(kt == kk) > 0.95 and np.all(kt <= kk)


# --- on the fly = post hoc -----------------------------------------------------------------------------


def assert_trees_close(a, b, atol=1e-12):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        if x.dtype.kind in "iub":
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=0, atol=atol)


def test_on_the_fly_equals_post_hoc_discrete_single_and_batch():
    net = dr.lattice([6, 6], 6, eps=0.2)
    model = dr.DiscreteMap(net, 0.01)
    fn = dr.lattice_observables(net, isotropic=True, k_walls=True)
    s0 = dr.init.random_phase(net, jax.random.key(3), 0.01)
    sol = dr.simulate(model, s0, n_steps=3000, record=dr.Record(every=50, observe=fn))
    assert sol.observed["C"].shape == (61, 4) and sol.observed["k"].shape == (61, 36)
    assert_trees_close(sol.observed, dr.observe_records(fn, sol))
    # post hoc from an every-step recording: phases re-tracked from the probe raster
    full = dr.simulate(model, s0, n_steps=3000, record=dr.Record(every=1, phases=False))
    probes = np.asarray(net.rings.probes)
    theta, valid, _ = dr.track_phases(full.t, full.o[:, probes])
    post = jax.jit(jax.vmap(fn))(full.t[::50], dr.State(full.v[::50], full.o[::50]), theta[::50], valid[::50])
    assert_trees_close(sol.observed, post)
    # and the values mean something: the lattice orders (xi and R_local grow, walls thin out)
    ob = sol.observed
    assert float(ob["R_local"][-1]) > float(ob["R_local"][10])
    # batched runs: member b equals the single run of member b
    s0b = dr.init.random_phase(net, jax.random.split(jax.random.key(4), 2), 0.01)
    rec = dr.Record(every=50, observe=fn)
    solb = dr.simulate_batch(model, s0b, n_steps=3000, record=rec)
    assert_trees_close(solb.observed, dr.observe_records(fn, solb))
    one = dr.simulate(model, jax.tree.map(lambda a: a[1], s0b), n_steps=3000, record=rec)
    assert_trees_close(jax.tree.map(lambda a: a[1], solb.observed), one.observed)


def test_on_the_fly_equals_post_hoc_smooth_and_chain():
    net = dr.chain(8, 4, eps=0.2, boundary="open")
    model = dr.SmoothRelaxation(net, 0.02)
    fn = dr.lattice_observables(net)
    assert dr.is_periodic(net) is False
    s0 = dr.init.random_phase(net, jax.random.key(2), 0.01)
    sol = dr.simulate(model, s0, n_steps=400, record=dr.Record(every=2, observe=fn))
    assert int(sol.status) == 0
    assert_trees_close(sol.observed, dr.observe_records(fn, sol))
    assert np.asarray(sol.observed["C"]).shape == (201, 8)


def test_gridless_networks_get_R_and_k_only():
    net = dr.small_world(12, (3, 6), eps=0.1, p=0.2, seed=0)
    fn = dr.lattice_observables(net)
    sol = dr.simulate(
        dr.DiscreteMap(net, 0.01), dr.init.pulses(net, 1), n_steps=200, record=dr.Record(every=20, observe=fn)
    )
    assert set(sol.observed) == {"R", "k", "k_mean"}
    np.testing.assert_array_equal(np.asarray(sol.observed["R"]), np.asarray(sol.R))


def test_bad_arguments_name_the_field():
    theta = jnp.zeros((6, 8))
    with pytest.raises(dr.DiffringError, match="max_delta"):
        dr.correlation_axes(theta, max_delta=6)
    with pytest.raises(dr.DiffringError, match="ndim"):
        dr.correlation_axes(theta, ndim=3)
    with pytest.raises(dr.DiffringError, match="radius"):
        dr.local_order(theta, radius=3)
    with pytest.raises(dr.DiffringError, match="correlation"):
        dr.correlation_length(theta, correlation="radial")
    with pytest.raises(dr.DiffringError, match="grid"):
        dr.as_grid(jnp.zeros((3, 47)), (6, 8))
    with pytest.raises(dr.DiffringError, match="record.observe"):
        dr.Record(observe=lambda *a: 0, phases=False)
    with pytest.raises(dr.DiffringError, match="ExpFit.floor"):
        dr.ExpFit(floor=0.0)


def test_observables_without_domains_equal_the_rest(rng):
    """`lattice_observables(domains=False)` drops only the domain keys; the others are identical."""
    net = dr.lattice([8, 10], 6, eps=0.2)
    state = dr.init.random_phase(net, jax.random.key(5), 0.01)
    theta = jnp.asarray(rng.uniform(0, 2 * np.pi, net.n_rings))
    valid = jnp.asarray(rng.uniform(size=net.n_rings) > 0.2)
    full = jax.jit(dr.lattice_observables(net))(0.0, state, theta, valid)
    lean = jax.jit(dr.lattice_observables(net, domains=False))(0.0, state, theta, valid)
    assert set(full) - set(lean) == {"n_domains", "largest_domain", "mean_domain_size"}
    assert_trees_close(lean, {k: full[k] for k in lean}, atol=0)
    dom = dr.domains(theta.reshape(8, 10), valid.reshape(8, 10))
    assert int(full["n_domains"]) == int(dom.n_domains) and int(full["largest_domain"]) == int(dom.largest)


@pytest.mark.parametrize("periodic", [True, False])
def test_domains_with_int32_labels_equal_scipy_ndimage_label(periodic, rng):
    """Grids of 2^15 rings or more label in int32 (smaller ones in int16): a 200 x 170 blob map
    (34,000 rings, phases shifted beyond 2 pi so that walls take the general wrap) against SciPy."""
    grid = (200, 170)
    f = ndimage.gaussian_filter(rng.normal(size=(3,) + grid), sigma=(0, 2, 2), mode="wrap" if periodic else "reflect")
    cls = np.argmax(f, axis=0)
    valid = rng.random(grid) < 0.97
    theta = jnp.asarray(cls * (2 * np.pi / 3) + rng.uniform(-0.2, 0.2, grid) + 4 * np.pi)
    dom = jax.jit(lambda t, v: dr.domains(t, v, periodic=periodic))(theta, jnp.asarray(valid))
    ref = scipy_domains(np.where(valid, cls, -1), valid, periodic)
    np.testing.assert_array_equal(np.asarray(dom.labels), ref)
    assert int(dom.largest) == np.bincount(ref[ref >= 0]).max()
