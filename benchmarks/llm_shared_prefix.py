"""Pointwise ranking prompts scored from a shared prefix against each prompt scored whole, side by side.

Llama4Rec's pointwise ranking asks the LLM about each of a user's k' candidates in a prompt of its own; the k'
prompts differ only near the end (the candidate, the backbone's score), so the local backend runs their shared
opening once and reuses its keys and values (:func:`recfuse.llm.local.shared_prefix_groups`). This script scores
the same pointwise prompts (ML-100K users, their LightGCN-free top-k' stand-in: k' random unrated items) both
ways, in one process, alternating, and reports prompts per second, the speed-up and how far the answers move
(largest difference in log-probability and in probability; whether the most likely digit changes): in fp32 the
two paths differ by rounding only, in bf16 by bf16 rounding of different matrix shapes.

Run: ``python benchmarks/llm_shared_prefix.py`` (writes llm_shared_prefix.json / .md and manifest.json under
benchmarks/results/llm/shared-prefix/; ``--out`` another folder).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu, describe_cpu, git_state, machine, write_outputs  # noqa: E402

import recfuse.llm.local as local  # noqa: E402
from recfuse.data.loaders import load_dataset  # noqa: E402
from recfuse.data.sequences import user_histories  # noqa: E402
from recfuse.eval.report import markdown_table  # noqa: E402
from recfuse.llama4rec.prompting import builder, item_text  # noqa: E402
from recfuse.llm import RATING_CHOICES, load_llm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "llm" / "shared-prefix"


def pointwise_prompts(users: int, candidates: int, history: int, seed: int) -> list[str]:
    """``candidates`` pointwise prompts for each of ``users`` seeded ML-100K users (Figure 2's wording, with a
    backbone score as prompt augmentation adds it)."""
    ds = load_dataset("ml-100k")
    hist = user_histories(ds.interactions, ds.n_users)
    rng = np.random.default_rng(seed)
    pb = builder("movie")
    out = []
    for u in rng.choice(ds.n_users, size=users, replace=False):
        seen = [item_text(ds, i) for i in hist[u][-history:][::-1]]
        for item in rng.choice(np.setdiff1d(np.arange(ds.n_items), hist[u]), size=candidates, replace=False):
            out.append(pb.pointwise_ranking(seen, item_text(ds, item), backbone_score=float(rng.uniform(1, 5))))
    return out


def probs(lp: np.ndarray) -> np.ndarray:
    return np.exp(lp - np.logaddexp.reduce(lp, axis=1, keepdims=True))


def measure(model: str, dtype: str, prompts: list[str], repeats: int) -> dict[str, Any]:
    llm = load_llm("embedded", model, dtype=dtype, batch_size=8)
    llm.choice_logprobs(prompts[:8], RATING_CHOICES)  # warm-up
    on = local.SHARED_PREFIX_TOKENS
    seconds: dict[str, list[float]] = {"shared": [], "whole": []}
    answers: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for mode in ("shared", "whole"):  # alternated: a neighbour's load hits both alike
            local.SHARED_PREFIX_TOKENS = on if mode == "shared" else 10**9
            start = time.perf_counter()
            answers[mode] = llm.choice_logprobs(prompts, RATING_CHOICES)
            seconds[mode].append(time.perf_counter() - start)
    local.SHARED_PREFIX_TOKENS = on
    best = {m: min(s) for m, s in seconds.items()}
    tokens = [len(llm.encode(p)) for p in prompts]
    return {"model": model, "dtype": str(llm.dtype).replace("torch.", ""), "prompts": len(prompts),
            "mean prompt tokens": round(float(np.mean(tokens)), 1),
            "whole prompts/s": round(len(prompts) / best["whole"], 2),
            "shared prompts/s": round(len(prompts) / best["shared"], 2),
            "speed-up": round(best["whole"] / best["shared"], 2),
            "max |log-prob diff|": f"{np.abs(answers['shared'] - answers['whole']).max():.2g}",
            "max |prob diff|": f"{np.abs(probs(answers['shared']) - probs(answers['whole'])).max():.2g}",
            "most likely digit agrees": round(float((answers["shared"].argmax(1) == answers["whole"].argmax(1)).mean()), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m"])
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--candidates", type=int, default=10, help="k': prompts per user")
    ap.add_argument("--histories", type=int, nargs="+", default=[8, 25],
                    help="items of history per prompt (8: the pipeline's default; longer: more to share)")
    ap.add_argument("--repeats", type=int, default=2, help="timed passes of each path (the best is kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="output folder (default benchmarks/results/llm/shared-prefix)")
    args = ap.parse_args(argv)
    rows = []
    for history in args.histories:
        prompts = pointwise_prompts(args.users, args.candidates, history, args.seed)
        rows += [{"history items": history, **measure(m, d, prompts, args.repeats)}
                 for m in args.models for d in args.dtypes]
    commit, dirty = git_state()
    info = cpu()
    text = "\n".join([
        "# Pointwise prompts: shared prefix against whole prompts\n",
        f"{args.users} seeded ML-100K users x {args.candidates} candidates (pointwise ranking prompts with a "
        "backbone score and the history items shown), scored for the digits 1-5 both ways in one process, "
        f"alternating, best of {args.repeats} passes each; speed-up: whole seconds / shared seconds.\n",
        f"Machine: {machine()}, CPU {describe_cpu(info)}; "
        f"commit {commit}{' (uncommitted changes)' if dirty else ''}.\n",
        markdown_table(rows)])
    out = Path(args.out) if args.out else RESULTS
    write_outputs({out / "llm_shared_prefix.json": {"rows": rows, "argv": sys.argv[1:] if argv is None else argv,
                                                    "machine": machine(), "cpu": info},
                   out / "llm_shared_prefix.md": text}, record=not args.out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
