"""Throughput of rating-prompt scoring with the embedded LLM, per backend, against the FLOP bound.

For ~300-token Llama4Rec rating prompts (Figure 2 format), measures prompts per second of
``choice_logprobs(prompts, ["1".."5"])`` for each backend:

* ``local-bf16`` / ``local-fp32``: the in-process transformers backend (the embedded model),
* ``http``: the HTTP backend against ``recfuse llm serve`` in a separate process on loopback,
* ``vllm``: the HTTP backend against vLLM's CPU server (``--vllm-python``, see scripts/setup_vllm_cpu.sh),
* variants of local bf16, to show what was tried: ``local-bf16-eager`` (eager attention instead of SDPA),
  ``local-bf16-compile`` (``torch.compile``, its compile time reported), and a tuned model's LoRA adapter
  kept as separate low-rank layers (``lora-separate``) or merged into the weights (``lora-merged``, what
  the pipelines do).

The bound: one prompt needs about ``2 x N_params x tokens`` FLOPs (N = 135M counts the embedding table,
as the issue defines it; the matmul-only count, without the embedding lookup, is also reported), and the
machine does at most R FLOP/s, R measured in the same run with a large matmul of the backend's dtype.
``ratio = measured seconds per prompt / (FLOPs per prompt / R)``; 1.0 is the bound.

Run: ``flock /tmp/recfuse-heavy.lock python benchmarks/llm_throughput.py`` (writes JSON and Markdown, and
manifest.json beside them, under benchmarks/results/llm/throughput/; ``--out`` another folder).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from recfuse.io import write_json, write_text
from recfuse.llm import RATING_CHOICES, PromptBuilder
from recfuse.llm.embedded import load_embedded
from recfuse.llm.local import cpu_bf16_fast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu, describe_cpu, write_manifest  # noqa: E402  (benchmarks/_common.py)

RESULTS = Path(__file__).resolve().parent / "results"


def matmul_rate(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """Sustained FLOP/s of an n x n matmul in ``dtype`` (best of repeated timings)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(2):
        a @ b
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def model_shaped_rate(dtype: torch.dtype, tokens: int, hidden: int, inter: int, seconds: float = 1.5) -> float:
    """FLOP/s of the model's own MLP matmul shape (tokens x hidden) @ (hidden x intermediate)."""
    a = torch.randn(tokens, hidden).to(dtype)
    b = torch.randn(hidden, inter).to(dtype)
    a @ b
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * tokens * hidden * inter / best


def make_prompts(llm, n: int, target_tokens: int = 300, seed: int = 0) -> list[str]:
    """Rating prompts whose rendered length is about ``target_tokens`` tokens."""
    rng = np.random.default_rng(seed)
    words = ["Star", "Night", "Return", "Dark", "Love", "City", "Last", "King", "Island", "Story", "Wild",
             "Heart", "Secret", "Game", "River", "Ghost", "Summer", "Empire", "Dream", "Road"]
    pb = PromptBuilder(history_tokens=None)
    prompts = []
    for _ in range(n):
        titles, ratings = [], []
        while True:
            t = " ".join(rng.choice(words, size=rng.integers(1, 4))) + f" ({rng.integers(1950, 2000)})"
            titles.append(t)
            ratings.append(int(rng.integers(1, 6)))
            p = pb.rating_prediction(titles, ratings, "Casino (1995)", backbone_prediction=3.5)
            if len(llm.encode(p)) >= target_tokens:
                break
        prompts.append(p)
    return prompts


def time_scoring(fn, prompts: list, repeats: int = 2) -> float:
    """Best seconds for scoring all prompts (after one warm-up call on a few)."""
    fn(prompts[:4])
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(prompts)
        best = min(best, time.perf_counter() - t)
    return best


def random_adapter(folder: Path, r: int = 16) -> Path:
    """A LoRA adapter of the pipelines' default shape (r=16 on every projection) with small random
    weights, like a tuned one's, saved to ``folder``: speed does not depend on what an adapter learned."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(load_embedded(dtype="float32").model, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 1e-3)
    model.save_pretrained(str(folder))
    return folder


def local_variant(backend: str, llm) -> tuple[object, str, float | None]:
    """(an LLM to time, a description, seconds of one-off preparation) for a local bf16 variant."""
    if backend in ("lora-separate", "lora-merged"):
        import tempfile

        adapter = random_adapter(Path(tempfile.mkdtemp(prefix="recfuse-lora-")))
        merged = backend == "lora-merged"
        model = load_embedded(dtype="bfloat16", adapter=adapter, merge_adapter=merged)  # the pipelines' path
        model.batch_size = llm.batch_size
        return model, ("LoRA r=16 merged into the weights (in fp32, then bf16)" if merged
                       else "LoRA r=16 as separate low-rank layers"), None
    model = load_embedded(dtype="bfloat16")
    model.batch_size = llm.batch_size
    if backend == "local-bf16-eager":
        model.model.set_attn_implementation("eager")
        return model, "eager attention instead of SDPA", None
    start = time.perf_counter()
    model.model.forward = torch.compile(model.model.forward, dynamic=True)
    return model, "torch.compile(dynamic=True) of the forward pass", time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=48, help="number of 300-token prompts per backend")
    ap.add_argument("--tokens", type=int, default=300, help="prompt length in tokens (rendered)")
    ap.add_argument("--batch-sizes", default="8,16", help="local batch sizes to try (best reported)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    ap.add_argument("--backends", default="local-bf16,local-fp32,http,vllm",
                    help="comma list of: local-bf16, local-fp32, http, vllm, local-bf16-eager, local-bf16-compile, "
                         "lora-separate, lora-merged")
    ap.add_argument("--vllm-python", default=os.environ.get("RECFUSE_VLLM_PYTHON", ".vllm-venv/bin/python"),
                    help="a Python that has vllm-cpu (scripts/setup_vllm_cpu.sh); vllm is skipped without one")
    ap.add_argument("--out", default=str(RESULTS / "llm" / "throughput"), help="folder for the results")
    ap.add_argument("--name", default="llm_throughput", help="file name of the results (<name>.json / .md)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    llm = load_embedded(dtype="bfloat16")
    cfg = llm.model.config
    n_params = sum(p.numel() for p in llm.model.parameters())
    n_embed = cfg.vocab_size * cfg.hidden_size
    prompts = make_prompts(llm, args.prompts, args.tokens)
    tokens = float(np.mean([len(llm.encode(p)) for p in prompts]))
    flops_issue = 2 * 135e6 * tokens  # the issue's definition
    flops_matmul = 2 * (n_params - n_embed) * tokens + 2 * n_embed  # embedding as a lookup; lm_head for 1 token
    print(f"{len(prompts)} prompts, {tokens:.0f} tokens each (mean), {n_params / 1e6:.1f}M parameters, "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.2f}")

    rates = {}
    for name, dt in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        rates[name] = {"square_2048": matmul_rate(dt),
                       "model_mlp_shape": model_shaped_rate(dt, 8 * int(tokens), cfg.hidden_size,
                                                            cfg.intermediate_size)}
        print(f"matmul rate {name}: {rates[name]['square_2048'] / 1e9:.1f} GFLOP/s (2048^2), "
              f"{rates[name]['model_mlp_shape'] / 1e9:.1f} GFLOP/s (model MLP shape)")

    rows = []
    best_bf16_batch = None
    wanted = args.backends.split(",")
    for backend in wanted:
        if backend in ("local-bf16-eager", "local-bf16-compile", "lora-separate", "lora-merged"):
            dt = "bf16"
            model, detail, prep = local_variant(backend, llm)
            model.batch_size = best_bf16_batch or int(args.batch_sizes.split(",")[0])
            fn = partial(model.choice_logprobs, choices=RATING_CHOICES)
            if backend == "local-bf16-compile":  # compilation happens in the first calls: time them apart
                t = time.perf_counter()
                fn(prompts)
                detail += f", first pass (compiling) {time.perf_counter() - t + (prep or 0):.0f} s"
            sec = time_scoring(fn, prompts)
            detail += f", batch size {model.batch_size}"
            del model
        elif backend in ("local-bf16", "local-fp32"):
            dt = "bf16" if backend.endswith("bf16") else "fp32"
            model = llm if dt == "bf16" else load_embedded(dtype="float32")
            best = None
            sizes = [int(b) for b in args.batch_sizes.split(",")]
            if dt == "fp32" and best_bf16_batch is not None:
                sizes = [best_bf16_batch]  # the comparison point; saves a few minutes
            for bs in sizes:
                model.batch_size = bs
                sec = time_scoring(lambda ps, m=model: m.choice_logprobs(ps, RATING_CHOICES), prompts)
                print(f"  {backend} batch {bs}: {len(prompts) / sec:.2f} prompts/s")
                if best is None or sec < best[0]:
                    best = (sec, bs)
            sec, bs = best
            if dt == "bf16":
                best_bf16_batch = bs
            detail = f"batch size {bs}"
            if model is not llm:
                del model
        elif backend in ("http", "vllm"):
            from recfuse.llm.http import HTTPLLM
            from recfuse.llm.launch import launch_recfuse_server, launch_vllm_server

            # recfuse llm serve loads the model as the local backend does (bf16 where the CPU has bf16 units)
            dt = "bf16" if backend == "vllm" or cpu_bf16_fast() else "fp32"
            if backend == "vllm":
                if not Path(args.vllm_python).exists():
                    print(f"  vllm skipped: no Python at {args.vllm_python} (scripts/setup_vllm_cpu.sh)")
                    continue
                from recfuse.llm.embedded import embedded_model_dir

                # prefix caching off: the timed passes repeat the warm-up's prompts, which it would not recompute
                server = launch_vllm_server(args.vllm_python, embedded_model_dir(), threads=args.threads,
                                            prefix_caching=False)
                detail = ("vLLM CPU server (vllm-cpu, eager, prefix caching off), chat top_logprobs, "
                          "16 concurrent requests")
            else:
                server = launch_recfuse_server(threads=args.threads)
                detail = "recfuse llm serve, chat top_logprobs, 16 concurrent requests, server batches up to 32"
            with server:
                client = HTTPLLM(server.url, concurrency=16, timeout=600)
                sec = time_scoring(lambda ps, c=client: c.choice_logprobs(ps, RATING_CHOICES), prompts, repeats=1)
        else:
            raise SystemExit(f"unknown backend {backend}")
        rate = rates[dt]["square_2048"]
        per_prompt = sec / len(prompts)
        row = {"backend": backend, "dtype": dt, "detail": detail, "prompts_per_s": len(prompts) / sec,
               "seconds_per_prompt": per_prompt,
               "bound_prompts_per_s": rate / flops_issue,
               "ratio_to_bound": per_prompt / (flops_issue / rate),
               "ratio_to_bound_matmul_flops": per_prompt / (flops_matmul / rate)}
        rows.append(row)
        print(f"{backend:11s} {row['prompts_per_s']:7.2f} prompts/s  bound {row['bound_prompts_per_s']:7.2f}  "
              f"ratio {row['ratio_to_bound']:.2f}x (matmul-only FLOPs: {row['ratio_to_bound_matmul_flops']:.2f}x)")

    result = {"machine": {"platform": platform.platform(), "processor": cpu()["model"],
                          "cpu_count": os.cpu_count(), "threads": args.threads,
                          "load_average_end": os.getloadavg()[0], "torch": torch.__version__,
                          "bf16_units": cpu_bf16_fast()},
              "model": {"name": "SmolLM2-135M-Instruct", "parameters": n_params, "embedding_parameters": n_embed},
              "prompts": len(prompts), "tokens_per_prompt": tokens,
              "flops_per_prompt": flops_issue, "flops_per_prompt_matmul_only": flops_matmul,
              "matmul_rate_flops": rates, "results": rows}
    out = Path(args.out)
    write_json(out / f"{args.name}.json", result)
    lines = ["# LLM throughput: 300-token rating prompts, embedded SmolLM2-135M", "",
             f"{len(prompts)} prompts of {tokens:.0f} tokens (mean); {args.threads} threads on "
             f"{describe_cpu(cpu())} (the local backend's default dtype is {'bf16' if cpu_bf16_fast() else 'fp32'} "
             "here); load average at "
             f"the end {os.getloadavg()[0]:.2f} (the machine is shared).",
             f"Matmul rate measured in the same run (2048^2): bf16 {rates['bf16']['square_2048'] / 1e9:.1f} GFLOP/s, "
             f"fp32 {rates['fp32']['square_2048'] / 1e9:.1f} GFLOP/s.",
             f"Bound: 2 x 135M x {tokens:.0f} = {flops_issue / 1e9:.1f} GFLOP per prompt at that rate; ratio = "
             "measured time / bound time (1.0 = at the bound). The last column counts only matmul FLOPs "
             f"({flops_matmul / 1e9:.1f} GFLOP: the embedding table is a lookup).", "",
             "| backend | dtype | prompts/s | bound prompts/s | ratio to bound | ratio (matmul FLOPs) | detail |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['dtype']} | {r['prompts_per_s']:.2f} | {r['bound_prompts_per_s']:.2f} | "
                     f"{r['ratio_to_bound']:.2f}x | {r['ratio_to_bound_matmul_flops']:.2f}x | {r['detail']} |")
    write_text(out / f"{args.name}.md", "\n".join(lines) + "\n")
    write_manifest([out / f"{args.name}.json", out / f"{args.name}.md"], script=__file__)
    print(f"wrote {out / args.name}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
