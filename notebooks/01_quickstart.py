# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # diffring quick start
#
# Build a lattice of differentiating-neuron ring oscillators, simulate a batch of initial
# conditions, look at the ring phases and the Kuramoto order parameter R(t), and take a gradient
# through the smooth model.
#
# Sizes are small so that the notebook runs in well under a minute on a laptop CPU; set the
# environment variable `DIFFRING_SMALL=1` to shrink them further (CI runs the sizes below).

# %%
import os
import time

import jax

jax.config.update("jax_enable_x64", True)  # float64 throughout (the gradient check needs it)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import diffring as dr  # noqa: E402

SMALL = os.environ.get("DIFFRING_SMALL", "0") == "1"
L = 10 if SMALL else 24  # the lattice is L x L rings
B = 2 if SMALL else 4  # batch of initial conditions
T = 60.0 if SMALL else 200.0  # simulated time (units of tau)
DT = 0.01  # the published map's step
t_start = time.perf_counter()

# %% [markdown]
# ## 1. A lattice of rings
#
# A periodic `L x L` square lattice of 6-neuron rings with S0 link coupling: position 0 of every
# ring receives `eps * o` of position 1 of each of its four neighbours. The network is an immutable
# pytree; the S0 lattice uses a fast path that never builds a weight matrix.

# %%
net = dr.lattice([L, L], 6, scheme="S0", eps=0.2, boundary="periodic")
print(f"{net.n_rings} rings, {net.n_neurons} neurons, grid {net.grid}, coupling {type(net.coupling).__name__}")

# %% [markdown]
# ## 2. Simulate a batch of random initial phases
#
# `dr.init.random_phase` puts every ring at an independent uniformly random point of its isolated
# one-pulse orbit; a 1-D array of keys gives a batch. `simulate_batch` runs all members in one
# program (member b is bit-for-bit the single run of member b). We record only the probe neuron of
# each ring every 50 steps, plus the ring phases and R(t), which are tracked on the fly.

# %%
keys = jax.random.split(jax.random.key(0), B)
s0 = dr.init.random_phase(net, keys, DT)
model = dr.DiscreteMap(net, DT)
record = dr.Record(every=50, which="probes", fields=("o",))
sol = dr.simulate_batch(model, s0, t1=T, record=record)
print("state batch", s0.v.shape, "-> records", sol.o.shape, "| status:", [dr.STATUS_NAMES[int(s)] for s in sol.status])
assert np.all(np.asarray(sol.status) == 0)

# %% [markdown]
# ## 3. Phases and R(t)
#
# A ring's phase comes from its probe's firing times: after the n-th fire at `t_n`,
# `theta = 2 pi (t - t_n) / (t_n - t_{n-1})` (defined once a ring has fired twice). Rings are
# numbered in row-major grid order, so the phases reshape to the lattice; a cyclic colormap shows
# them. R(t) = |mean_r exp(i theta_r)| is compared with its level for independent uniform phases,
# `sqrt(pi / (4 n))`.

# %%
theta0 = np.asarray(sol.phase[0, int(round(20 / (DT * record.every)))]).reshape(L, L)  # early (t = 20)
theta1 = np.asarray(sol.phase[0, -1]).reshape(L, L)  # end of the run
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for ax, th, title in ((axes[0], theta0, "phases, t = 20"), (axes[1], theta1, f"phases, t = {T:g}")):
    im = ax.imshow(th, cmap="twilight", vmin=0, vmax=2 * np.pi, interpolation="nearest")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes[:2], label="ring phase (rad)", shrink=0.85)
t = np.asarray(sol.t[0])
for b in range(B):
    axes[2].plot(t, np.asarray(sol.R[b]), lw=1, label=f"member {b}")
axes[2].axhline(np.sqrt(np.pi / (4 * net.n_rings)), color="k", ls=":", label="random phases")
axes[2].set_xlabel("t")
axes[2].set_ylabel("R(t)")
axes[2].set_ylim(0, 1)
axes[2].legend(fontsize=8)
plt.show()
print("R at the end:", np.round(np.asarray(sol.R[:, -1]), 3))

# %% [markdown]
# ## 4. A gradient through the smooth model
#
# The hard trigger has zero gradients almost everywhere; `SmoothRelaxation` replaces it with a
# fast, bistable output variable and is integrated with diffrax. Here we differentiate a
# trajectory loss (mean squared deviation of all capacitor voltages from 0.5 over a short run)
# with respect to the coupling `eps` of a small lattice, with `eqx.filter_grad`, and compare it
# with a central finite difference.

# %%
small = dr.lattice([3, 3], 6, eps=0.2)
smooth = dr.SmoothRelaxation(small, 0.05)
s_small = dr.init.random_phase(small, jax.random.key(1), DT)
n_steps = 30 if SMALL else 60
method = dr.ODESolve(rtol=1e-8, atol=1e-10, max_steps=20_000)
rec_v = dr.Record(every=1, fields=("v",), phases=False)


def loss(eps):
    model = eqx.tree_at(lambda m: m.network.coupling.eps, smooth, eps)
    sol = dr.simulate(model, s_small, n_steps=n_steps, record=rec_v, method=method)
    return jnp.mean((sol.v - 0.5) ** 2), sol.status


eps0 = jnp.asarray(0.2)
(value, status), grad = eqx.filter_jit(eqx.filter_value_and_grad(loss, has_aux=True))(eps0)
assert int(status) == 0
h = 1e-4
f = eqx.filter_jit(lambda e: loss(e)[0])
fd = (f(eps0 + h) - f(eps0 - h)) / (2 * h)
rel = abs(float(grad) - float(fd)) / abs(float(fd))
print(
    f"loss = {float(value):.6f}   dloss/deps: autodiff {float(grad):.6f}, finite difference {float(fd):.6f}"
    f"  (relative difference {rel:.1e})"
)
assert rel < 1e-3

# %%
print(f"notebook ran in {time.perf_counter() - t_start:.1f} s")
