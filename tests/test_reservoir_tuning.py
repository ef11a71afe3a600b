"""Gradient tuning: the tuning loss's gradient against central finite differences (float64), the
parameter map against a network built with the target values, and descent of one optimiser step."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import diffring as dr
from diffring import DiffringError
from diffring.reservoir import Features, Snapshots, Voltages
from diffring.reservoir._tuning import TunedParams, TuningProblem, TuningSpace, tune

DT = 0.05


def _net(eps=0.2, **kw):
    return dr.small_world(6, (3, 4), eps=eps, p=0.3, n_in=2, seed=0, **kw)


def _problem(model, per_step=False, n_steps=60):
    s0 = dr.init.random_phase(model.network, jax.random.key(0), dt=DT)
    feats = (
        Features(items=(Snapshots(), Voltages()), n_times=4)
        if not per_step
        else Features(items=(Snapshots(), Voltages()), every=10)
    )
    return TuningProblem(
        model,
        s0,
        feats,
        TuningSpace.from_model(model),
        n_steps=n_steps,
        alpha=1e-2,
        per_step=per_step,
        washout=1 if per_step else 0,
    )


def _data(per_step=False, n_steps=60):
    k = jax.random.split(jax.random.key(1), 4)
    shape = (lambda b: (b, n_steps // 10, 1)) if per_step else (lambda b: (b, 2))
    return (
        0.6 * jax.random.uniform(k[0], (12, n_steps, 2)),
        jax.random.normal(k[1], shape(12)),
        0.6 * jax.random.uniform(k[2], (6, n_steps, 2)),
        jax.random.normal(k[3], shape(6)),
    )


def _richardson(f, x, direction, h):
    def d(h):
        return (f(x + h * direction) - f(x - h * direction)) / (2 * h)

    return (4 * d(h / 2) - d(h)) / 3


@pytest.mark.parametrize("per_step", [False, True])
def test_tuning_gradient_matches_finite_differences(per_step):
    model = dr.DiscreteMap(_net(), dt=DT, threshold=dr.SoftThreshold(100.0))
    prob = _problem(model, per_step)
    data = _data(per_step)
    p0 = prob.space.init(model)
    loss = eqx.filter_jit(lambda p: prob.loss(p, *data))
    g = eqx.filter_jit(eqx.filter_grad(lambda p: prob.loss(p, *data)))(p0)
    flat0, unravel = jax.flatten_util.ravel_pytree(p0)
    gflat, _ = jax.flatten_util.ravel_pytree(g)
    rng = np.random.default_rng(0)
    one = jnp.ones(())
    mask, _ = jax.flatten_util.ravel_pytree(TunedParams(one, one, one, one, prob.space.win_mask))
    directions = {
        "eps": jnp.zeros_like(flat0).at[0].set(1.0),
        "gain": jnp.zeros_like(flat0).at[1].set(1.0),
        "theta_H": jnp.zeros_like(flat0).at[2].set(1.0),
        "theta_L": jnp.zeros_like(flat0).at[3].set(1.0),
        "win": jnp.asarray(rng.normal(size=flat0.shape)) * mask * jnp.zeros_like(flat0).at[4:].set(1.0),
    }
    for name, u in directions.items():
        fd = _richardson(lambda x: loss(unravel(x)), flat0, u, 1e-6)
        np.testing.assert_allclose(float(gflat @ u), float(fd), rtol=2e-6, err_msg=name)
    assert float(g.log_eps_scale) != 0.0 and float(g.log_win_scale) != 0.0 and float(g.theta_H) != 0.0


def test_space_apply_equals_network_built_with_target_values(rng):
    """log_eps_scale = log 2 doubles the eps links: the coupling equals small_world(eps = 0.4); the
    input gain multiplies the (tuned) input weights."""
    model = dr.DiscreteMap(_net(eps=0.2), dt=DT)
    target = dr.DiscreteMap(_net(eps=0.4, theta_H=0.45, theta_L=0.25), dt=DT)
    space = TuningSpace.from_model(model)
    p = space.init(model)
    p = TunedParams(
        jnp.log(jnp.asarray(2.0)), jnp.log(jnp.asarray(0.5)), jnp.asarray(0.45), jnp.asarray(0.25), p.win * 3 + 1
    )
    tuned = space.apply(p, model)
    o = jnp.asarray(rng.random(model.network.n_neurons))
    np.testing.assert_allclose(
        np.asarray(tuned.network.coupling(o)), np.asarray(target.network.coupling(o)), rtol=1e-14
    )
    assert float(tuned.network.theta_H) == 0.45 and float(tuned.network.theta_L) == 0.25
    win0 = np.asarray(model.network.win)
    np.testing.assert_allclose(np.asarray(tuned.network.win), np.where(win0 != 0, 0.5 * (3 * win0 + 1), 0.0))
    frozen = TuningSpace.from_model(model, frozen=("eps", "win"))
    fm = frozen.apply(p, model)
    np.testing.assert_allclose(np.asarray(fm.network.win), 0.5 * win0, rtol=1e-15)
    np.testing.assert_array_equal(np.asarray(frozen.apply(p, model).network.theta_H), 0.45)
    fixed = TuningSpace.from_model(model, frozen=("eps", "gain", "win")).apply(p, model)
    np.testing.assert_array_equal(np.asarray(fixed.network.win), win0)
    np.testing.assert_allclose(np.asarray(fm.network.coupling(o)), np.asarray(model.network.coupling(o)), rtol=1e-15)


def test_one_optimisation_step_decreases_the_loss():
    model = dr.DiscreteMap(_net(), dt=DT, threshold=dr.SoftThreshold(100.0))
    prob = _problem(model)
    data = _data()
    p0 = prob.space.init(model)
    p1, losses = tune(prob, p0, optax.adam(1e-3), 1, data)
    after = float(eqx.filter_jit(prob.loss)(p1, *data))
    np.testing.assert_allclose(losses[0], float(prob.loss(p0, *data)), rtol=1e-12)
    assert after < losses[0]


def test_global_tuning_descends_a_smooth_loss():
    """Only the four global quantities (frozen=("win",)) through a soft map (beta = 10, whose loss is
    smooth on the scale of a step): ten Adam steps lower the loss, and the per-weight inputs stay put."""
    model = dr.DiscreteMap(_net(), dt=DT, threshold=dr.SoftThreshold(10.0))
    s0 = dr.init.random_phase(model.network, jax.random.key(0), dt=DT)
    space = TuningSpace.from_model(model, frozen=("win",))
    prob = TuningProblem(model, s0, Features(items=(Snapshots(), Voltages()), n_times=4), space, n_steps=60, alpha=1e-2)
    data = _data()
    p0 = space.init(model)
    p, losses = tune(prob, p0, optax.adam(0.05), 10, data)
    after = float(eqx.filter_jit(prob.loss)(p, *data))
    assert after < 0.9 * losses[0]
    np.testing.assert_array_equal(np.asarray(p.win), np.asarray(p0.win))
    assert float(p.log_win_scale) != 0.0 and float(p.log_eps_scale) != 0.0


def test_tuning_errors():
    model = dr.DiscreteMap(_net(), dt=DT)
    with pytest.raises(DiffringError, match="tuning.frozen"):
        TuningSpace.from_model(model, frozen=("tau",))
    with pytest.raises(DiffringError, match="network.n_in"):
        TuningSpace.from_model(dr.DiscreteMap(dr.small_world(4, (3, 4), n_in=0, seed=0), dt=DT))
    prob = _problem(model)
    with pytest.raises(DiffringError, match="inputs"):
        prob.rows(prob.space.init(model), jnp.zeros((3, 50, 2)))
