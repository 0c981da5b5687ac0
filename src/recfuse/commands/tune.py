"""``recfuse tune``: instruction-tune an LLM on chat dialogues (JSONL), on CPU, one GPU or many.

Each line of the data file is ``{"messages": [{"role": ..., "content": ...}, ...]}``; every assistant turn
carries the loss. The Llama4Rec pipeline keeps the dialogues it tunes on as ``dialogues.jsonl`` in its
stage folder, so a larger model can be tuned on them elsewhere, e.g. on 8 GPUs with DeepSpeed ZeRO-3::

    accelerate launch --config_file configs/accelerate/deepspeed_zero3.yaml -m recfuse.cli tune \\
        --data dialogues.jsonl --model meta-llama/Llama-2-7b-hf --out tuned/ \\
        --no-sft.lora --sft.lr 2e-5 --sft.bf16 true --sft.gradient-checkpointing --sft.epochs 3
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from recfuse.config import add_arguments, option, resolve
from recfuse.llm.embedded import embedded_model_dir
from recfuse.llm.sft import SFTConfig, train_sft
from recfuse.llm.tuning import read_dialogues


@dataclass
class TuneConfig:
    """Instruction tuning from a JSONL file of chat dialogues."""

    data: str = option("", "JSONL file: one {\"messages\": [...]} dialogue per line")
    model: str = option("embedded", "base weights: 'embedded' (SmolLM2-135M), a local folder or a model id")
    out: str = option("runs/tuned", "output folder (a LoRA adapter, or the full model with --no-sft.lora)")
    sft: SFTConfig = field(default_factory=SFTConfig)
    progress: bool = option(True, "show a progress bar")


def main(cfg: TuneConfig) -> Path:
    model_dir = embedded_model_dir() if cfg.model == "embedded" else Path(cfg.model)
    dialogues = read_dialogues(cfg.data)
    result = train_sft(model_dir, dialogues, cfg.out, cfg.sft, progress=cfg.progress)
    print(f"tuned {len(dialogues)} dialogues in {result.log['seconds']:.0f} s "
          f"({result.log['seconds_per_step']:.1f} s/step), loss {result.log['loss_first']:.3f} -> "
          f"{result.log['loss_last']:.3f}; written to {result.path}")
    return result.path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="instruction-tune an LLM on chat dialogues (LoRA or full; accelerate-ready)",
                       description="Supervised instruction tuning with the loss on the assistant turns only. "
                                   "Runs under `accelerate launch` for multi-GPU / DeepSpeed ZeRO-3 "
                                   "(configs/accelerate/).")
    add_arguments(p, TuneConfig)
    p.set_defaults(func=lambda args: main(resolve(TuneConfig, args)) and 0)
