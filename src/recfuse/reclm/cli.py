"""``recfuse run reclm``: registered by :mod:`recfuse.commands.run` when this package is present."""

from __future__ import annotations

import argparse

from recfuse.config import add_arguments, add_suite_arguments, resolve, suite_overrides


def register(msub: argparse._SubParsersAction) -> None:
    from recfuse.reclm.pipeline import TUNINGS, VARIANTS, RecLMConfig

    p = msub.add_parser(
        "reclm", help="RecLM: LLM-written profiles in text-empowered recommenders, full- and zero-shot",
        description="RecLM (profiles from a collaboratively instruction-tuned LLM refined by PPO, fused into "
                    f"text-empowered backbones). Variants: {', '.join(VARIANTS)}; profile sources: "
                    f"{', '.join(TUNINGS)}. Every stage is cached: a rerun resumes where it stopped.")
    add_arguments(p, RecLMConfig)
    p.set_defaults(func=lambda args: _run(resolve(RecLMConfig, args)))
    register_suite(msub)


def _run(cfg) -> int:
    from recfuse.reclm.pipeline import RecLM
    res = RecLM(cfg).run()
    print(f"results written to {res['out']}")
    return 0


def register_suite(msub: argparse._SubParsersAction) -> None:
    suite = msub.add_parser(
        "reclm-suite", help="RecLM over several datasets and settings (the paper's tables)",
        description="Run every RecLM configuration of a suite file (YAML with 'common', 'runs', 'out') and write "
                    "the combined tables: Base / Augment per backbone and setting, the ablations, the cost, and "
                    "the Augment-above-Base check. See configs/reclm_ml100k_suite.yaml.")
    add_suite_arguments(suite)
    suite.set_defaults(func=_run_suite)


def _run_suite(args) -> int:
    from recfuse.reclm.suite import run_suite
    res = run_suite(args.file, suite_overrides(args), reuse=not args.recompute)
    print(f"suite written to {res['out']}")
    return 0
