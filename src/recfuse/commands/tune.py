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
import json
from dataclasses import dataclass, field
from pathlib import Path

from recfuse.config import add_arguments, option, resolve
from recfuse.errors import DataError
from recfuse.llm.sft import SFTConfig, train_sft


@dataclass
class TuneConfig:
    """Instruction tuning from a JSONL file of chat dialogues."""

    data: str = option("", "JSONL file: one {\"messages\": [...]} dialogue per line")
    model: str = option("embedded", "base weights: 'embedded' (SmolLM2-135M), a local folder or a model id")
    out: str = option("runs/tuned", "output folder (a LoRA adapter, or the full model with --no-sft.lora)")
    sft: SFTConfig = field(default_factory=SFTConfig)
    progress: bool = option(True, "show a progress bar")


def read_dialogues(path: str | Path) -> list[list[dict]]:
    """Dialogues from JSONL; a malformed line raises naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
            if not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages):
                raise ValueError("each message needs 'role' and 'content'")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise DataError(f"not a dialogue ({e})", path=path, line=n) from None
        out.append(messages)
    if not out:
        raise DataError("no dialogues in the file", path=path)
    return out


def write_dialogues(path: str | Path, dialogues: list[list[dict]]) -> None:
    from recfuse.io import write_text
    write_text(path, "".join(json.dumps({"messages": d}, ensure_ascii=False) + "\n" for d in dialogues))


def main(cfg: TuneConfig) -> Path:
    if cfg.model == "embedded":
        from recfuse.llm.embedded import embedded_model_dir
        model_dir = embedded_model_dir()
    else:
        model_dir = Path(cfg.model)
    result = train_sft(model_dir, read_dialogues(cfg.data), cfg.out, cfg.sft, progress=cfg.progress)
    print(f"tuned {len(read_dialogues(cfg.data))} dialogues in {result.log['seconds']:.0f} s "
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
