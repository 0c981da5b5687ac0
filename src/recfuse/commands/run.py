"""``recfuse run``: a whole method end to end (``llama4rec``; ``reclm`` when installed)."""

from __future__ import annotations

import argparse

from recfuse.config import add_arguments, add_suite_arguments, resolve, suite_overrides


def register(sub: argparse._SubParsersAction) -> None:
    from recfuse.llama4rec.pipeline import VARIANTS, Llama4RecConfig

    p = sub.add_parser("run", help="run a method end to end (llama4rec)",
                       description="Run a whole method end to end and write its tables and plots.")
    msub = p.add_subparsers(dest="method", metavar="<method>", required=True)
    l4r = msub.add_parser(
        "llama4rec", help="Llama4Rec: mutual augmentation and adaptive aggregation",
        description="Llama4Rec (LLM + conventional recommender, mutual augmentation, adaptive aggregation). "
                    f"Variants: {', '.join(VARIANTS)}. Every stage is cached: a rerun resumes where it stopped.")
    add_arguments(l4r, Llama4RecConfig)
    l4r.set_defaults(func=lambda args: _run_llama4rec(resolve(Llama4RecConfig, args)))

    suite = msub.add_parser(
        "llama4rec-suite", help="Llama4Rec over several backbones, seeds and ablations (the paper's tables)",
        description="Run every Llama4Rec configuration of a suite file (YAML with 'common', 'runs', 'out') and "
                    "write the combined tables: Base / IFT / Llama4Rec / improvement / paired t-test per "
                    "backbone, the ablations, the alpha heatmaps and the cost. See configs/llama4rec_ml100k_suite.yaml.")
    add_suite_arguments(suite)
    suite.set_defaults(func=_run_suite)

    try:  # RecLM registers its own sub-commands (recfuse run reclm ...)
        from recfuse.reclm.cli import register as register_reclm
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("recfuse.reclm"):
            raise
    else:
        register_reclm(msub)


def _run_llama4rec(cfg) -> int:
    from recfuse.llama4rec.pipeline import Llama4Rec
    Llama4Rec(cfg).run()
    return 0


def _run_suite(args) -> int:
    from recfuse.llama4rec.suite import run_suite
    run_suite(args.file, suite_overrides(args), reuse=not args.recompute)
    return 0
