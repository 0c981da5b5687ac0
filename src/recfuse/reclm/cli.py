"""``recfuse run reclm``: registered by :mod:`recfuse.commands.run` when this package is present."""

from __future__ import annotations

import argparse

from recfuse.config import add_arguments, resolve


def register(msub: argparse._SubParsersAction) -> None:
    from recfuse.reclm.pipeline import TUNINGS, VARIANTS, RecLMConfig

    p = msub.add_parser(
        "reclm", help="RecLM: LLM-written profiles in text-empowered recommenders, full- and zero-shot",
        description="RecLM (profiles from a collaboratively instruction-tuned LLM refined by PPO, fused into "
                    f"text-empowered backbones). Variants: {', '.join(VARIANTS)}; profile sources: "
                    f"{', '.join(TUNINGS)}. Every stage is cached: a rerun resumes where it stopped.")
    add_arguments(p, RecLMConfig)
    p.set_defaults(func=lambda args: _run(resolve(RecLMConfig, args)))


def _run(cfg) -> int:
    from recfuse.reclm.pipeline import RecLM
    res = RecLM(cfg).run()
    print(f"results written to {res['out']}")
    return 0
