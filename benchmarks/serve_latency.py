"""Latency and throughput of ``recfuse serve`` on loopback: the backbone alone and with LLM re-ranking.

ML-100K LightGCN (trained once by ``recfuse train``, or an existing run folder with ``--run``) is served by a real
``recfuse serve`` process on 127.0.0.1; a bounded, closed-loop load generator (``C`` client threads, one
keep-alive connection each, a fixed number of requests in all) asks ``GET /v1/recommend?user=ID&k=10`` for
users drawn without repetition, and records each request's latency. It reports requests/s, p50 and p99 at
concurrency 1, 8 and 32 for:

* the backbone alone (target: p99 under 50 ms at concurrency 8 on 2 cores);
* the backbone with Llama4Rec's LLM re-ranking of the top 10 by the embedded SmolLM2-135M, under the server's
  default latency budget (1000 ms; past it the backbone's order is returned and counted as a fallback), and
  without a budget at concurrency 1 and 8 (what the LLM itself costs). The answer cache starts empty and no
  user is asked twice, so every LLM answer is computed.

The load generator runs on the same machine as the server (on 2 cores, the two share them).

Run: ``python benchmarks/serve_latency.py`` (a few minutes on 2 CPU cores; writes
``benchmarks/results/serving/latency/serve_latency.{json,md}`` and manifest.json beside them).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import cpu, write_manifest

from recfuse.eval.report import markdown_table
from recfuse.io import write_json, write_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``recfuse serve`` in a subprocess, ready when /health answers."""

    def __init__(self, run: Path, args: list[str], env: dict[str, str], timeout: float = 300):
        self.port = free_port()
        cmd = [sys.executable, "-m", "recfuse.cli", "serve", str(run), "--port", str(self.port), *args]
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"recfuse serve exited with {self.proc.returncode}:\n{self.log.read()}")
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("recfuse serve did not answer /health in time")
            time.sleep(0.2)

    def get(self, path: str) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, json.loads(r.read() or b"null")
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def load(port: int, users: list[str], concurrency: int, k: int = 10) -> dict[str, Any]:
    """``len(users)`` requests, ``concurrency`` at a time (closed loop): latencies, requests/s, LLM outcomes."""
    lock = threading.Lock()
    nxt = iter(users)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                user = next(nxt, None)
            if user is None:
                break
            start = time.perf_counter()
            conn.request("GET", f"/v1/recommend?user={user}&k={k}")
            r = conn.getresponse()
            body = r.read()
            took = time.perf_counter() - start
            with lock:
                if r.status != 200:
                    errors.append(f"{r.status} {body[:200]!r}")
                    continue
                latencies.append(took)
                llm = json.loads(body).get("llm")
                key = "backbone" if llm is None else "reranked" if llm["reranked"] else f"fallback: {llm['fallback']}"
                outcomes[key] = outcomes.get(key, 0) + 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, e.g. {errors[0]}")
    ms = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(latencies), "seconds": round(wall, 3),
            "requests_per_second": round(len(latencies) / wall, 1), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2),
            "outcomes": outcomes}


def wait_idle(server: Server, timeout: float = 600) -> None:
    """Until the server's LLM queue is empty (and the batch in flight had time to finish)."""
    deadline = time.monotonic() + timeout
    while server.get("/health")[1]["llm"]["queued"] and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)


def train_run(out: Path, epochs: int) -> Path:
    run = out / "ml-100k" / "lightgcn"
    if not (run / "serving.json").is_file():
        cmd = [sys.executable, "-m", "recfuse.cli", "train", "--model", "lightgcn", "--dataset", "ml-100k",
               "--param", f"epochs={epochs}", "--no-progress", "--out", str(out)]
        print("training:", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
    return run


def markdown(report: dict[str, Any]) -> str:
    rows = []
    for r in report["rows"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
        rows.append({"setting": r["setting"], "concurrency": r["concurrency"], "requests": r["requests"],
                     "requests/s": f"{r['requests_per_second']:.1f}", "p50 ms": f"{r['p50_ms']:.1f}",
                     "p99 ms": f"{r['p99_ms']:.1f}", "max ms": f"{r['max_ms']:.1f}", "answers": outcomes})
    target = report["target"]
    trained = f"LightGCN trained {report['epochs']} epochs" if report["epochs"] else f"the run {report['run']}"
    return (f"# `recfuse serve` on loopback: ML-100K LightGCN, GET /v1/recommend?k=10\n\n"
            f"CPU: {report['cpu']['model']} ({report['cpu']['count']} cores, shared with the load generator); "
            f"{trained}; LLM: {report['llm']}; closed-loop clients, one keep-alive connection each; with the LLM, "
            f"no user is asked twice (an empty answer cache).\n\n"
            + markdown_table(rows)
            + f"\n\nTarget, backbone alone at concurrency 8: p99 under 50 ms: **{target['p99_ms']} ms, "
              f"{'met' if target['met'] else 'not met'}**.\n\n"
              "With the LLM, a request waits for the LLM at most the budget (1000 ms by default, `--llm-budget-ms`); "
              "past it the backbone's order is returned and counted (`fallback: budget`; `busy` when 64 requests "
              "still within their budget wait already). One worker asks the LLM, serving waiting requests first and "
              "batching only as many as it can answer within their budget; a late request is answered when no one "
              "waits, for the cache. The LLM answers about 2 listwise prompts a second here, so at concurrency 8 "
              "and 32 most requests get the backbone's order at the budget. Without a budget (`budget 600000 ms`) "
              "the rows show what the LLM itself costs (up to 8 queued prompts per call; batching does not pay on "
              "this CPU).\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=None, help="a run folder to serve (default: train ML-100K LightGCN into --work)")
    ap.add_argument("--work", default=None, help="folder for the trained run and the empty answer cache "
                                                 "(default: a temporary folder)")
    ap.add_argument("--epochs", type=int, default=30, help="LightGCN epochs when training (latency does not depend "
                                                           "on them)")
    ap.add_argument("--requests", type=int, default=1500, help="requests per level, backbone alone")
    ap.add_argument("--llm-requests", type=int, nargs=3, default=[24, 64, 128], metavar=("C1", "C8", "C32"),
                    help="requests per level with the LLM and its default budget")
    ap.add_argument("--no-budget-requests", type=int, nargs=2, default=[8, 24], metavar=("C1", "C8"),
                    help="requests per level with the LLM and no budget")
    ap.add_argument("--out", default=str(RESULTS / "serving" / "latency"), help="folder for the results")
    args = ap.parse_args(argv)

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="serve-latency-"))
    run = Path(args.run) if args.run else train_run(work / "runs", args.epochs)
    env = {**os.environ, "RECFUSE_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1",
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    users = [str(u) for u in json.loads((run / "dataset" / "meta.json").read_text())["users"]]
    random.Random(0).shuffle(users)
    pool = iter(users * 20)  # the backbone's levels may repeat users; the LLM's never do (below)

    def take(n: int) -> list[str]:
        return [next(pool) for _ in range(n)]

    rows: list[dict[str, Any]] = []
    server = Server(run, [], env)
    try:
        load(server.port, take(100), 4)  # warm-up
        for c in (1, 8, 32):
            rows.append({"setting": "backbone alone", **load(server.port, take(args.requests), c)})
            print(rows[-1], flush=True)
    finally:
        server.stop()

    fresh = iter(users)  # the LLM: every user at most once in the whole run, so no answer comes from the cache

    def take_fresh(n: int) -> list[str]:
        out = [u for _, u in zip(range(n), fresh)]
        if len(out) < n:
            raise SystemExit("not enough distinct users for the LLM levels: lower --llm-requests")
        return out

    for budget, levels in ((None, zip((1, 8, 32), args.llm_requests)), (600_000, zip((1, 8), args.no_budget_requests))):
        extra = ["--llm-rerank"] + ([] if budget is None else ["--llm-budget-ms", str(budget)])
        server = Server(run, extra, env)
        try:
            load(server.port, take_fresh(2), 1)  # warm-up: the first forward passes
            for c, n in levels:
                label = "with LLM re-ranking, " + ("default budget 1000 ms" if budget is None else f"budget {budget} ms")
                rows.append({"setting": label, **load(server.port, take_fresh(n), c)})
                print(rows[-1], flush=True)
                wait_idle(server)  # late LLM calls of this level finish before the next one starts
            health = server.get("/health")[1]
        finally:
            server.stop()
        rows[-1]["health_llm"] = health["llm"]

    target = next(r for r in rows if r["setting"] == "backbone alone" and r["concurrency"] == 8)
    import torch

    report = {"rows": rows, "target": {"p99_ms": target["p99_ms"], "met": target["p99_ms"] < 50},
              "epochs": args.epochs if not args.run else None, "run": str(run), "cpu": cpu(),
              "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
              "llm": "embedded SmolLM2-135M-Instruct, no adapter, alpha1 0.7, alpha2 0.1, k' 10, prompt augmentation"}
    out = Path(args.out)
    write_json(out / "serve_latency.json", report)
    write_text(out / "serve_latency.md", markdown(report))
    write_manifest([out / "serve_latency.json", out / "serve_latency.md"], argv, __file__)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
