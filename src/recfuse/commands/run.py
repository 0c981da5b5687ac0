"""``recfuse run``: every registered method end to end (``recfuse run NAME``) and over a suite file
(``recfuse run NAME-suite FILE``); the sub-commands come from :mod:`recfuse.method`'s registry."""

from __future__ import annotations

import argparse
from typing import Any

from recfuse.config import add_arguments, add_suite_arguments, resolve, suite_filter, suite_overrides
from recfuse.method import available_methods, get_method
from recfuse.runner import finished_results, reported_since, results_state, run_method, run_suite


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a method end to end (" + ", ".join(available_methods()) + ")",
                       description="Run a whole method end to end and write its tables and plots. Every stage "
                                   "is cached: a rerun resumes where it stopped.")
    msub = p.add_subparsers(dest="method", metavar="<method>", required=True)
    for name in available_methods():
        method = get_method(name)
        one = msub.add_parser(name, help=method.summary or name,
                              description=(method.__doc__ or "").strip().split("\n\n")[0] + " "
                              + (method.summary or "") + ". Every stage is cached: a rerun resumes where it stopped.")
        add_arguments(one, method.config_type)
        add_only_seed_argument(one)
        one.set_defaults(func=lambda args, name=name, cls=method.config_type: _run_one(name, cls, args))
        suite = msub.add_parser(
            f"{name}-suite", help=f"{method.title or name} over several configurations, seeds and ablations",
            description=f"Run every {method.title or name} configuration of a suite file (YAML with 'common', "
                        "'runs', 'out') and write each run's results and the combined tables (suite.md, "
                        "rewritten after each run). Finished runs with the same settings are reused.")
        add_suite_arguments(suite)
        add_only_seed_argument(suite)
        suite.set_defaults(func=lambda args, name=name: _run_suite(name, args))


def add_only_seed_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only-seed", dest="only_seeds", action="append", type=int, default=None, metavar="SEED",
                        help="run only this of the run's seeds (repeatable) and keep it in the run's folder, to "
                             "spread one run's seeds over processes or machines sharing the folder; the report is "
                             "written by the process that finds every seed kept (give each process other seeds)")


def _run_one(name: str, cls: type, args: argparse.Namespace) -> int:
    if args.only_seeds is None:
        run_method(name, resolve(cls, args))
        return 0
    method = get_method(name)
    cfg: Any = resolve(cls, args)
    run = method(cfg)
    run.check_only_seeds(args.only_seeds)
    results = run.output_dir() / "results.json"
    before = results_state(run.output_dir())
    if finished_results(method, run.output_dir(), cfg, run.data_fingerprint()) is not None:  # nothing to add seeds to
        print(f"{results} already holds every seed of these settings: nothing run (without --only-seed the run "
              "is run again)")
        return 0
    if run.run(args.only_seeds) is not None:
        return 0
    if reported_since(method, run.output_dir(), before, cfg, run.data_fingerprint()):
        print(f"the report is written (by another process that shared the seeds): {results}")
    else:
        print(f"seeds kept in {run.output_dir() / 'seeds'}; the report is written by the run that finishes the last "
              "of them")
    return 0


def _run_suite(name: str, args: argparse.Namespace) -> int:
    out = run_suite(args.file, name, suite_overrides(args), reuse=not args.recompute, only=suite_filter(args),
                    only_seeds=args.only_seeds)
    print(f"suite written to {out}")
    return 0
