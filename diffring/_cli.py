"""Command line: `diffring run [CONFIG.yaml] [--out DIR] [--set dotted.key=value ...]`.

Without CONFIG, `run` does the embedded default (a 64 x 64 periodic S0 lattice of 6-rings at
eps = 0.2, t = 400). `diffring config [CONFIG] [--set ...]` prints the resolved config without
running. A bad config, override or file exits with status 2 and one line on stderr naming the
field, the value and what is valid; nothing is written.

Exit status: 0 done (per-member status is in summary.json), 1 internal error, 2 bad usage,
config or file, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="diffring", description="Differentiating-neuron ring oscillators: simulate from a config.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG.yaml",
        help="YAML config (default, embedded: for run and config the 64 x 64 S0 lattice run, for reservoir the "
        "published digits recipe)",
    )
    common.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="dotted.key=value",
        help="override one key, value read as YAML, e.g. --set network.eps=0.1 --set network.shape=[8,8] (repeatable)",
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    r = sub.add_parser("run", parents=[common], help="simulate and write an output directory")
    r.add_argument("--out", metavar="DIR", help="output directory (default: runs/<YYYYmmdd-HHMMSS>)")
    r.add_argument("--overwrite", action="store_true", help="replace --out if it exists and is not empty")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint after a crash or kill -9")
    sub.add_parser("config", parents=[common], help="print the resolved config and exit")
    rs = sub.add_parser("reservoir", parents=[common], help="reservoir computing: encode, simulate, read out, score")
    rs.add_argument("--out", metavar="DIR", help="output directory (default: runs/<YYYYmmdd-HHMMSS>)")
    rs.add_argument("--overwrite", action="store_true", help="replace --out if it exists and is not empty")
    ex = sub.add_parser("experiment", help="run experiment E1 ... E6 of the lattice study (configs/experiments/)")
    ex.add_argument("name", nargs="?", metavar="NAME", help="E1 ... E6 or the full name, e.g. E2_xi_growth")
    ex.add_argument("--list", action="store_true", help="list the experiments and exit")
    ex.add_argument("--small", action="store_true", help="the config's documented small size (smoke test)")
    ex.add_argument("--out", metavar="DIR", help="default: docs/results (full) or runs/experiments-small (--small)")
    ex.add_argument("--quiet", action="store_true", help="no progress bars")
    ex.add_argument("--report-only", action="store_true", help="redo analysis, figures and report from DIR's data.npz")
    ex.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sw = sub.add_parser("sweep", help="run a grid of configs x seeds (SWEEP.yaml) into DIR/results.zarr")
    sw.add_argument("sweep", nargs="?", metavar="SWEEP.yaml", help="base config, grid and seeds (docs/sweeps.md)")
    sw.add_argument("--out", metavar="DIR", help="sweep directory (default: runs/<YYYYmmdd-HHMMSS>)")
    sw.add_argument("--resume", action="store_true", help="continue the sweep in DIR, recomputing no finished chunk")
    sw.add_argument("--summary", metavar="DIR", help="print the table of a finished sweep in DIR and exit")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    return p


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def resolved_config(config: str | None, overrides: list[str]) -> dict:
    """Load (or take the embedded default), apply --set overrides, resolve."""
    from ._config import DEFAULT_CONFIG, apply_overrides, load_config, resolve

    raw = load_config(config) if config is not None else DEFAULT_CONFIG
    return resolve(apply_overrides(raw, overrides))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `diffring` command (and `python -m diffring`). Returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as e:
        print(f"diffring: error: {_one_line(e)} (see diffring --help)", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help
        return int(e.code or 0)
    from ._errors import DiffringError

    try:
        if args.command == "reservoir":
            return _reservoir(args)
        if args.command == "experiment":
            return _experiment(args)
        if args.command == "sweep":
            return _sweep(args)
        cfg = resolved_config(args.config, args.overrides)
        if args.command == "config":
            from ._config import dump_yaml

            sys.stdout.write(dump_yaml(cfg))
            return EXIT_OK
        if cfg["dtype"] == "float64":
            import jax

            # Before any array exists: float64 is a process-wide JAX switch, so the CLI (not an
            # import of the library) flips it.
            jax.config.update("jax_enable_x64", True)
        from ._run import check_out_dir, default_out_dir, run

        out = args.out if args.out is not None else default_out_dir()
        if args.resume and args.out is None:
            raise DiffringError("--resume", None, "needs --out DIR: the run to continue")
        if not args.resume:
            check_out_dir(out, args.overwrite)
        summary = run(cfg, out, progress=not args.quiet, overwrite=args.overwrite, resume=args.resume)
    except DiffringError as e:
        print(f"diffring: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "diffring: interrupted; no results written (finished chunks are kept: continue with --resume)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        print(
            f"diffring: internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    t = summary["timings"]
    if summary.get("already_complete"):
        print(f"diffring: {out} is already complete; nothing to do", file=sys.stderr)
        return EXIT_OK
    R = summary["R_final"]
    R_txt = (
        ""
        if R is None
        else f", final R = {R:.3f}"
        if isinstance(R, float)
        else ", final R = [" + ", ".join(f"{r:.3f}" for r in R[:8]) + (", ...]" if len(R) > 8 else "]")
    )
    print(
        f"diffring: wrote {out} ({summary['n_neurons']} neurons, {summary['n_steps']} steps, "
        f"status {summary['status']}{R_txt}; build {t['build_s']:.1f} s, compile {t['compile_s']:.1f} s, "
        f"simulate {t['simulate_s']:.1f} s, total {t['total_s']:.1f} s)",
        file=sys.stderr,
    )
    return EXIT_OK


def _reservoir(args) -> int:
    """`diffring reservoir [CONFIG] [--out DIR] [--set ...]`; errors are handled by `main`."""
    from .reservoir._config import load_reservoir_config, reservoir_overrides, resolve_reservoir

    raw = load_reservoir_config(args.config) if args.config is not None else {}
    cfg = resolve_reservoir(reservoir_overrides(raw, args.overrides))
    import jax

    # Always on in this process (the CLI, not the library, flips it): the simulation runs in
    # cfg["dtype"] (the builders' dtype), the readout in float64.
    jax.config.update("jax_enable_x64", True)
    from ._run import check_out_dir, default_out_dir
    from .reservoir._run import run_reservoir

    out = args.out if args.out is not None else default_out_dir()
    check_out_dir(out, args.overwrite)
    s = run_reservoir(cfg, out, overwrite=args.overwrite)
    m, t = s["metrics"], s["timings"]
    score = ", ".join(
        f"{k} {m[k]:.4f}"
        for k in ("train_accuracy", "test_accuracy", "train_nrmse", "test_nrmse")
        if isinstance(m.get(k), float)
    )
    print(
        f"diffring: wrote {out} ({s['task']}: {s['n_samples']} samples x {s['n_steps_per_sample']} steps, "
        f"{s['n_neurons']} neurons; {score}; compile {t['compile_s']:.1f} s, simulate {t['simulate_s']:.1f} s, "
        f"total {t['total_s']:.1f} s)",
        file=sys.stderr,
    )
    return EXIT_OK


def _sweep(args) -> int:
    """`diffring sweep`: DiffringError and other exceptions are handled by `main`."""
    from ._errors import DiffringError
    from ._sweep import load_sweep, run_sweep, summary_table, validate_sweep

    if args.summary is not None:
        if args.sweep is not None or args.resume or args.out is not None:
            raise DiffringError("--summary", args.summary, "takes only DIR: no SWEEP.yaml, no --resume, no --out")
        sys.stdout.write(summary_table(args.summary))
        return EXIT_OK
    if args.sweep is None:
        raise DiffringError("SWEEP.yaml", None, "required (or --summary DIR)")
    if args.resume and args.out is None:
        raise DiffringError("--resume", None, "needs --out DIR: the sweep to continue")
    from ._run import default_out_dir

    raw = load_sweep(args.sweep)
    sweep = validate_sweep(raw)  # before any array exists: x64 must be switched on first
    if any(m.cfg["dtype"] == "float64" for m in sweep.members):
        import jax

        jax.config.update("jax_enable_x64", True)
    out = args.out if args.out is not None else default_out_dir()
    summary = run_sweep(raw, out, resume=args.resume, progress=not args.quiet)
    c, t = summary["checkpoint"], summary["timings"]
    done = (
        "already complete; nothing to do"
        if summary.get("already_complete")
        else (
            f"{summary['n_members']} members, {summary['n_programs']} programs, {summary['n_chunks']} chunks "
            f"({c['chunks_computed']} computed, {c['chunks_reused']} reused, {c['chunks_corrupted']} corrupted); "
            f"status {summary['status_counts']}; total {t['total_s']:.1f} s"
        )
    )
    print(f"diffring: sweep {out}: {done}", file=sys.stderr)
    return EXIT_OK


def _experiment(args) -> int:
    """`diffring experiment NAME [--small] [--out DIR]` and `--list`; errors are handled by `main`."""
    from ._errors import DiffringError
    from ._experiments import EXPERIMENTS, get_experiment, load_experiment_config, reanalyse, run_experiment

    if args.list:
        for name, exp in EXPERIMENTS.items():
            print(f"{name.split('_')[0]:4s}{name:22s}{exp.title}")
        return EXIT_OK
    if args.name is None:
        raise DiffringError("NAME", None, "required: one of E1 ... E6 (see diffring experiment --list)")
    exp = get_experiment(args.name)
    if load_experiment_config(exp.name, args.small).get("dtype", "float64") == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)  # the CLI, not the library, flips this process-wide switch
    if args.report_only:
        s = reanalyse(exp.name, args.out, small=args.small)
        print(f"diffring: rewrote the {s['experiment']} report from its data.npz", file=sys.stderr)
        return EXIT_OK
    cmd = f"diffring experiment {args.name}" + (" --small" if args.small else "")
    cmd += f" --out {args.out}" if args.out else ""
    s = run_experiment(exp.name, args.out, small=args.small, progress=not args.quiet, command=cmd)
    print(f"diffring: wrote {s['experiment']} ({s['simulate_s']:.0f} s)", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
