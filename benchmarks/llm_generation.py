"""Profile generation throughput with the embedded LLM: batch size and worker processes, side by side.

RecLM's most expensive stage on a CPU is writing ~2,600 structured profiles (users and items of ML-100K).
This measures seconds per profile of :func:`recfuse.reclm.profiles.structured_answers` on real ML-100K user
profile prompts (the user's and two similar users' histories, as the pipeline builds them) for:

* ``batch 8, 1 process``: the default batch size, one process using every thread;
* ``batch 32, 1 process``: larger batches (more rows per decoding step);
* ``batch 32, N workers``: ``LocalLLM(workers=N)``, N processes of one thread each sharing the batches.

It also reports how many answers each setting shares with the first one (greedy decoding: only the
padding of a batch differs, so answers may differ in rare near-ties) and writes JSON and Markdown.

Run: ``python benchmarks/llm_generation.py`` (about 10 minutes on 2 CPU cores; writes
``benchmarks/results/llm/generation/llm_generation.{json,md}`` and manifest.json beside them).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from _common import write_manifest
from llm_throughput import cpu_model

from recfuse.eval.report import markdown_table
from recfuse.io import write_json, write_text
from recfuse.llm.embedded import embedded_model_dir
from recfuse.llm.local import LocalLLM

RESULTS = Path(__file__).parent / "results"


def profile_prompts(n: int) -> list[str]:
    """The pipeline's user-profile prompts for the first ``n`` users with a training history on ML-100K."""
    from recfuse.data.sequences import user_histories
    from recfuse.data.splits import temporal
    from recfuse.reclm import profiles as prof
    from recfuse.reclm.pipeline import RecLM, RecLMConfig

    cfg = RecLMConfig(progress=False)
    method = RecLM(cfg)
    split = temporal(method.dataset, fractions=tuple(cfg.fractions))
    similar = method.similar_users(split, 0)
    hist = user_histories(split.train, split.n_users)
    users = [u for u in range(split.n_users) if len(hist[u])][:n]
    return [prof.user_profile_prompt(method.builder, method.dataset, hist[u], [hist[s] for s in similar[u] if s >= 0], u)
            for u in users]


def markdown(report: dict) -> str:
    """The results as a readable table."""
    rows = [{**r, "seconds": f"{r['seconds']:.1f}", "s / profile": f"{r['s / profile']:.2f}",
             "speed-up": f"{r['speed-up']:.2f}x"} for r in report["rows"]]
    return (f"# Profile generation, embedded SmolLM2-135M fp32, {report['prompts']} ML-100K user-profile prompts, "
            f"{report['threads']} threads in all ({report['cpu']})\n\n" + markdown_table(rows))


def main(argv: list[str] | None = None) -> dict:
    from recfuse.reclm.profiles import structured_answers

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=64, help="profile prompts per setting")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads in all (default: all cores)")
    ap.add_argument("--max-new-tokens", type=int, default=96, help="profile length limit, as the pipeline's")
    ap.add_argument("--out", default=str(RESULTS / "llm" / "generation"), help="folder for the results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    prompts = profile_prompts(args.prompts)
    settings = [("batch 8, 1 process", 8, 1), ("batch 32, 1 process", 32, 1),
                (f"batch 32, {args.threads} workers", 32, args.threads)]
    rows, first = [], None
    for label, batch, workers in settings:
        llm = LocalLLM(embedded_model_dir(), batch_size=batch, workers=workers, dtype="float32")
        if workers > 1:  # start the workers (each loads the model) outside the clock, as in a long run
            llm.generate(["Hello"] * (2 * batch), max_new_tokens=1)
        start = time.perf_counter()
        answers = structured_answers(llm, prompts, args.max_new_tokens, 1.3)
        seconds = time.perf_counter() - start
        llm.close()
        first = first or answers
        rows.append({"setting": label, "batch": batch, "processes": workers,
                     "threads each": max(1, args.threads // workers), "seconds": round(seconds, 1),
                     "s / profile": round(seconds / len(prompts), 3),
                     "same answers as the first": f"{sum(a == b for a, b in zip(answers, first))}/{len(prompts)}"})
        print(rows[-1], flush=True)
    base = rows[0]["seconds"]
    for r in rows:
        r["speed-up"] = round(base / r["seconds"], 2)
    report = {"rows": rows, "prompts": len(prompts), "max_new_tokens": args.max_new_tokens, "threads": args.threads,
              "cpu": cpu_model(), "platform": platform.platform(), "torch": torch.__version__}
    out = Path(args.out)
    write_json(out / "llm_generation.json", report)
    write_text(out / "llm_generation.md", markdown(report))
    write_manifest([out / "llm_generation.json", out / "llm_generation.md"], argv, __file__)
    return report


if __name__ == "__main__":
    main()
