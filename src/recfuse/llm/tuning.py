"""Instruction tuning as a cached stage, and the dialogue files it reads and keeps.

Both methods tune the same way: :func:`tune` runs supervised fine-tuning (:mod:`recfuse.llm.sft`) on chat
dialogues from the base weights an :class:`~recfuse.llm.config.LLMConfig` names, once per content (the
dialogues, the base weights, the settings, a label), and keeps the dialogues as ``dialogues.jsonl`` in the
stage folder, to inspect or to tune a larger model on elsewhere (``recfuse tune``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recfuse.config import to_dict
from recfuse.errors import DataError
from recfuse.io import fingerprint, read_json, write_json, write_text
from recfuse.llm.config import LLMConfig, base_model_dir
from recfuse.llm.local import weights_hash
from recfuse.llm.sft import SFTConfig, train_sft
from recfuse.stages import stage_dir, stage_scratch

Dialogue = list[dict[str, Any]]


def base_weights_id(base: Path) -> str:
    """A content hash of the base model's weight and JSON files (stage keys: other weights in one folder are
    another base, the same weights in another folder the same); a hub id not on disk stands for itself."""
    return weights_hash(base) if base.exists() else str(base)


def tune(llm: LLMConfig, sft: SFTConfig, dialogues: list[Dialogue], label: str,
         progress: bool = False) -> tuple[Path, dict[str, Any]]:
    """LoRA (or full) SFT on ``dialogues``; returns the adapter folder and the training log (losses
    aside). Cached by the data, the base weights and the settings; a run killed mid-tuning resumes from its
    last checkpoint (every 10 minutes: ``RECFUSE_CHECKPOINT_MINUTES``) in the stage's scratch folder."""
    base = base_model_dir(llm)
    # the base by its weights, not its path: other weights in one folder are another base, and the same weights
    # in another folder (another machine's cache root, after `recfuse cache import`) the same one
    key = {"weights": base_weights_id(base), "data": fingerprint(dialogues), "sft": to_dict(sft), "label": label}

    def build(tmp: Path) -> None:
        write_dialogues(tmp / "dialogues.jsonl", dialogues)
        res = train_sft(base, dialogues, tmp / "adapter", sft, progress=progress,
                        checkpoint_dir=stage_scratch("sft", key))
        write_json(tmp / "log.json", {k: v for k, v in res.log.items() if k != "losses"})

    d = stage_dir("sft", key, build)
    return d / "adapter", read_json(d / "log.json")


def read_dialogues(path: str | Path) -> list[Dialogue]:
    """Dialogues from JSONL (one ``{"messages": [...]}`` per line); a malformed line raises naming the file
    and line."""
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


def write_dialogues(path: str | Path, dialogues: list[Dialogue]) -> None:
    """Dialogues as JSONL, atomically."""
    write_text(path, "".join(json.dumps({"messages": d}, ensure_ascii=False) + "\n" for d in dialogues))
