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
# # Reservoir computing with differentiating ring oscillators
#
# A small-world graph of rings (`diffring.small_world`) as a reservoir: encode each sample into the
# drive of the input channels, simulate the discrete map, keep a few snapshots of all outputs on the
# fly, and fit a ridge readout. We compare it with an echo state network (ESN) of the same size and
# a linear readout on the raw input, on scikit-learn's 8 x 8 digits and on NARMA-10.
#
# Sizes are small so that the notebook runs in a couple of minutes on a CPU; `DIFFRING_SMALL=1`
# shrinks them further (CI runs the sizes below). `docs/results/reservoir.md` has the multi-seed numbers and
# `diffring reservoir` runs the same pipeline from a config.

# %%
import dataclasses
import os
import time

import jax

jax.config.update("jax_enable_x64", True)  # readouts in float64; the reservoir runs in float32

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import diffring as dr  # noqa: E402
from diffring import reservoir as rc  # noqa: E402

SMALL = os.environ.get("DIFFRING_SMALL", "0") == "1"
N_IMAGES = 400 if SMALL else 1797
N_RINGS = 20 if SMALL else 50

# %% [markdown]
# ## The image recipe
#
# The published recipe: resize, scale (plus a little pixel noise), read the pixels along a Hilbert
# curve, slide a window of 8 over the sequence, hold each window for 9 steps and repeat from the start
# until the run is full. Each of the 8 window positions drives one input channel.

# %%
data = rc.digits(seed=0)
data = dataclasses.replace(data, inputs=data.inputs[:N_IMAGES], y=data.y[:N_IMAGES], test=data.test[:N_IMAGES])
enc = rc.ImageEncoder(size=16, window=8, hold=9, steps=2400)
drive = np.asarray(enc(jnp.asarray(data.inputs[0]), jax.random.key(0)))

fig, ax = plt.subplots(1, 3, figsize=(11, 3))
ax[0].imshow(data.inputs[0], cmap="gray_r")
ax[0].set_title(f"digit {data.y[0]}")
order = rc.hilbert_order(16)
ax[1].plot(order[:, 1], order[:, 0], lw=0.8)
ax[1].invert_yaxis()
ax[1].set_title("Hilbert curve, 16 x 16")
ax[2].imshow(drive[:600].T, aspect="auto", cmap="viridis")
ax[2].set_xlabel("step")
ax[2].set_ylabel("channel")
ax[2].set_title("drive (first 600 steps)")
plt.tight_layout()

# %% [markdown]
# ## Ring reservoir vs ESN vs linear on digits
#
# `reservoir_features` encodes, simulates and extracts features chunk by chunk inside one compiled
# program; only the 9 snapshots of every neuron's output are kept.

# %%
net = dr.small_world(N_RINGS, (2, 8), eps=0.25, p=0.2, seed=0, dtype=jnp.float32)
model = dr.DiscreteMap(net, 0.01)
state0 = dr.init.random_phase(net, jax.random.key(0), 0.01)
features = rc.Features((rc.Snapshots(),), n_times=9)
readout = rc.Ridge(alphas=(1e-4, 1e-2, 1.0, 10.0, 100.0), selection=rc.KFold(5))

tic = time.perf_counter()
F, status = rc.reservoir_features(model, state0, enc, features, data.inputs, jax.random.key(1), chunk_size=128)
t_sim = time.perf_counter() - tic
rings = rc.evaluate(data, F, readout)

esn = rc.EchoStateNetwork.random(net.n_neurons, 8, spectral_radius=0.9, seed=0, dtype=jnp.float32)
E = rc.esn_features(esn, enc, features, data.inputs, jax.random.key(1))
esn_res = rc.evaluate(data, E, readout)
lin = rc.evaluate(data, rc.raw_features(data.inputs, image_size=16), readout)

print(f"{net.n_neurons} neurons, {N_IMAGES} images x {enc.n_steps} steps in {t_sim:.1f} s (compile included)")
print(
    f"test accuracy: rings {rings['test_accuracy']:.3f}, ESN {esn_res['test_accuracy']:.3f}, "
    f"linear {lin['test_accuracy']:.3f}"
)

# %%
fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
ax[0].imshow(rings["confusion"], cmap="Blues")
ax[0].set_title("ring reservoir: test confusion")
ax[0].set_xlabel("predicted")
ax[0].set_ylabel("true")
snap = F[0].reshape(9, -1)
ax[1].imshow(snap, aspect="auto", cmap="gray", interpolation="nearest")
ax[1].set_xlabel("neuron")
ax[1].set_ylabel("snapshot (t = 0 ... 24)")
ax[1].set_title("features of one image (black = firing)")
plt.tight_layout()

# %% [markdown]
# ## NARMA-10
#
# One input series u(t) ~ U[0, 0.5], each sample held for 10 steps; the readout predicts y(t + 1)
# from the reservoir state after u(t) (one record per input sample).

# %%
narma = rc.narma10(600 if SMALL else 2000, seed=0)
senc = rc.SeriesEncoder(length=narma.inputs.shape[1], channels=1, hold=10)
sfeat = rc.Features((rc.Snapshots(),), every=10)
net1 = dr.small_world(N_RINGS, (2, 8), eps=0.25, p=0.2, n_in=1, seed=0, dtype=jnp.float32)
m1 = dr.DiscreteMap(net1, 0.01)
S, _ = rc.reservoir_features(
    m1, dr.init.random_phase(net1, jax.random.key(0), 0.01), senc, sfeat, narma.inputs, jax.random.key(2), per_step=True
)
r_rings = rc.evaluate(narma, S[:, 1:], readout)
esn1 = rc.EchoStateNetwork.random(net1.n_neurons, 1, spectral_radius=0.9, seed=0, dtype=jnp.float32)
r_esn = rc.evaluate(
    narma, rc.esn_features(esn1, senc, sfeat, narma.inputs, jax.random.key(2), per_step=True, gain=1.0)[:, 1:], readout
)
r_lin = rc.evaluate(narma, rc.raw_features(narma.inputs, delays=10), readout)
print(
    f"NARMA-10 test NRMSE: rings {r_rings['test_nrmse']:.3f}, ESN {r_esn['test_nrmse']:.3f}, "
    f"linear (10 delays) {r_lin['test_nrmse']:.3f}"
)

# %%
t = np.arange(narma.test_from, min(narma.test_from + 150, narma.y.shape[1]))
plt.figure(figsize=(9, 3))
plt.plot(t, narma.y[0, t], "k", lw=1.2, label="target")
plt.plot(t, r_rings["predictions"][0, t, 0], lw=1, label="rings")
plt.plot(t, r_esn["predictions"][0, t, 0], lw=1, label="ESN")
plt.xlabel("t")
plt.legend()
plt.title("NARMA-10, test segment")
plt.tight_layout()
