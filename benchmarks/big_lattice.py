"""Step one very large periodic S0 lattice in one process (the memory-scaling check of docs/scaling.md).

Usage: python benchmarks/big_lattice.py L STEPS   (e.g. 6144 10: 226 M neurons, ~14 GB)
Prints the build + compile + first-run time, the rate of a second run and the process's max RSS.
"""

import resource
import sys
import time

import jax

import diffring as dr


def main(side: int, steps: int) -> None:
    jax.config.update("jax_enable_x64", True)
    tic = time.perf_counter()
    net = dr.lattice((side, side), ring_size=6, scheme="S0", eps=0.2)
    model = dr.DiscreteMap(net, dt=0.01)
    state0 = dr.init.pulses(net, k=1)
    record = dr.Record(every=steps, which="probes", fields=(), phases=False)

    def run():
        sol = dr.simulate(model, state0, n_steps=steps, record=record)
        jax.block_until_ready(sol.state.v)
        return sol

    run()
    first = time.perf_counter() - tic
    tic = time.perf_counter()
    sol = run()
    elapsed = time.perf_counter() - tic
    n = net.n_neurons
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"L={side} neurons={n} steps={steps} first={first:.1f}s run={elapsed:.2f}s "
          f"rate={n * steps / elapsed:.3g} maxrss={rss:.2f} GB status={int(sol.status)}")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
