"""How many steps a smooth solve would need if every ring kept its own clock (local time stepping).

The smooth model's adaptive solves are step-count bound: a 1,000-neuron network always has some
neuron in the middle of a switch, so one global step size follows the fastest switch anywhere
(docs/smooth_model.md, "Speed against SciPy"). This script measures how much of that a solver with
a step size per ring could save, on the two networks of benchmarks/bench_smooth.py with the same
initial states, `AdaptiveRK(DormandPrince54())` at rtol = atol:

- the network as one solve (the benchmark's step count, the same as SciPy's RK45);
- the same network with its links between rings cut (eps = 0), still one solve: whether the steps
  come from the coupling or from the number of asynchronous rings;
- every ring on its own (the rings of the cut network as a batch: each batch member keeps its own
  step sequence), mean and max over rings: what per-ring clocks would need, before any cost of
  exchanging the coupling between clocks.

Step counts are deterministic (no timing). About one minute:

    python benchmarks/smooth_local_steps.py        # -> benchmarks/results/smooth_local_steps.md
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import Report, parser, table  # noqa: E402
from bench_smooth import _setup, networks  # noqa: E402

import diffring as dr  # noqa: E402

RTOLS = (1e-5, 1e-7, 1e-9)


def scale_links(net, scale):
    """The same network (as a `SparseCoupling`) with every coupling weight between two different rings
    multiplied by `scale` (0: the links cut); in-ring synapses kept."""
    sparse = dr.as_sparse(net)
    ring_of = np.full(net.n_neurons, -1)
    for r, members in enumerate(np.asarray(net.rings.members)):
        ring_of[members[members >= 0]] = r
    index, weight = np.asarray(sparse.coupling.index), np.asarray(sparse.coupling.weight)
    keep = ring_of[index] == ring_of[:, None]
    return eqx.tree_at(lambda n: n.coupling.weight, sparse, jnp.asarray(np.where(keep, weight, scale * weight)))


def _steps(model, s0, n_steps, rec, rtol, batch=False):
    method = dr.AdaptiveRK(dr.DormandPrince54(), rtol=rtol, atol=rtol)
    run = dr.simulate_batch if batch else dr.simulate
    sol = run(model, s0, n_steps=n_steps, record=rec, method=method)
    assert np.all(np.asarray(sol.status) == 0), sol.status
    return np.asarray(sol.stats["num_steps"])


def main():
    args = parser(__doc__.splitlines()[0]).parse_args()
    T = 2.0 if args.quick else 5.0
    rep = Report("smooth_local_steps", "Smooth model: steps of one global clock vs one clock per ring", args)
    rep.add(f"`AdaptiveRK(DormandPrince54())`, rtol = atol, t in [0, {T:g}], float64, default smoothing; the "
            "networks and initial states of `bench_smooth.py`. Steps = accepted + rejected.")
    for name, net in networks(args.quick):
        model, s0, n_steps, _, rec = _setup(net, T)
        cut = scale_links(net, 0.0)
        members = np.asarray(net.rings.members)
        assert np.all(members >= 0), "rings of one size only (no padded member slots)"
        one = dr.ring(members.shape[1])
        per_ring = dr.State(s0.v[members], s0.o[members])
        rows = []
        for rtol in RTOLS:
            whole = int(_steps(model, s0, n_steps, rec, rtol))
            whole_cut = int(_steps(dr.SmoothRelaxation(cut), s0, n_steps, rec, rtol))
            rings = _steps(dr.SmoothRelaxation(one), per_ring, n_steps, rec, rtol, batch=True)
            rows.append([f"{rtol:.0e}", str(whole), str(whole_cut), f"{rings.mean():.0f}", str(int(rings.max())),
                         f"{whole / rings.max():.1f}x"])
        rep.add()
        rep.add(f"### {name}: {net.n_neurons} neurons, {members.shape[0]} rings")
        rep.add()
        rep.add(table(["rtol", "one solve", "one solve, links cut", "each ring alone: mean", "max",
                       "one solve / max"], rows))
    rep.add()
    rep.add("Reading: the links between rings are not what makes the global step small (cutting them leaves the "
            "count about the same); the number of rings switching at different times is. A solver with one "
            "step size per ring would take the last column's factor fewer steps if the rings were uncoupled. "
            "Coupled, it does not: `smooth_ring_clocks.py` measures at most 2.4x fewer rounds, and less accurate "
            "results (docs/smooth_model.md, \"One clock per ring: measured\").")
    rep.write()


if __name__ == "__main__":
    main()
