"""Step one very large periodic S0 lattice in one process (the memory-scaling check of docs/scaling.md).

Usage: python benchmarks/big_lattice.py L STEPS   (e.g. 6144 10: 226 M neurons, ~14 GB)
Prints the build + compile + first-run time, the rate of a second run and the process's max RSS.
"""
import resource
import sys
import time

import jax

import diffring as dr

jax.config.update("jax_enable_x64", True)
L=int(sys.argv[1]); steps=int(sys.argv[2])
t=time.perf_counter()
net = dr.lattice((L, L), ring_size=6, scheme="S0", eps=0.2)
s0 = dr.init.pulses(net, k=1)
model = dr.DiscreteMap(net, dt=0.01)
rec = dr.Record(every=steps, which="probes", fields=(), phases=False)
sol = dr.simulate(model, s0, n_steps=steps, record=rec); jax.block_until_ready(sol.state.v)
t1=time.perf_counter()
sol = dr.simulate(model, s0, n_steps=steps, record=rec); jax.block_until_ready(sol.state.v)
t2=time.perf_counter()
n=net.n_neurons
print(f"L={L} neurons={n} steps={steps} first={t1-t:.1f}s run={t2-t1:.2f}s rate={n*steps/(t2-t1):.3g} maxrss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1e6:.2f} GB status={int(sol.status)}")
