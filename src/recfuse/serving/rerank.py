"""The LLM in the loop: Llama4Rec's re-ranking of the backbone's top k' for served requests, under a latency budget.

For each request the backbone's top k' items become one listwise prompt (Llama4Rec's own
:func:`~recfuse.llama4rec.prompting.listwise_prompt`, with prompt augmentation: the most similar user's
history and the backbone's order), scored by any LLM backend behind the answer cache
(:func:`~recfuse.llama4rec.queries.score_ranking`); the LLM's order and the backbone's are mixed with the
adaptive weight ``alpha_u`` of the user's long-tail coefficient (:func:`~recfuse.llama4rec.aggregation.adaptive_alpha`,
:func:`~recfuse.llama4rec.aggregation.aggregate_topk`), with ``alpha1`` / ``alpha2`` as a Llama4Rec run chose them
on validation, or as given.

One worker thread asks the LLM, several queued requests per call. A request waits at most the budget; past it
(or when the queue is full, or the LLM fails) it gets the backbone's order and says why (``fallback``:
``budget``, ``busy``, ``error``). The worker serves waiting requests first, batching only as many as its measured
seconds per prompt can answer within the earliest budget (one, until a call has measured it); a request whose
budget has passed is answered when no one waits (the answer goes to the cache, so the same request is
re-ranked next time).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from recfuse.data.dataset import Dataset
from recfuse.errors import ConfigError
from recfuse.io import read_json
from recfuse.llama4rec import aggregation, prompting
from recfuse.llama4rec.instructions import Example
from recfuse.llama4rec.queries import score_ranking
from recfuse.llm.base import LLM

log = logging.getLogger(__name__)


@dataclass
class RerankSettings:
    """How the LLM re-ranks: Llama4Rec's settings, from a Llama4Rec run folder or given."""

    alpha1: float = 0.7
    alpha2: float = 0.1
    candidates: int = 10
    max_history: int = 8
    max_similar_history: int = 5
    mode: str = "listwise"
    prompt_augmentation: bool = True
    adapter: str | None = None
    budget_ms: float = 1000.0
    max_queue: int = 64
    max_batch: int = 8
    #: where each setting came from ("llama4rec run ...", "option", "default")
    sources: dict[str, str] = field(default_factory=dict)


def settings_from_llama4rec_run(folder: str | Path, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The re-ranking settings a Llama4Rec results folder records, and its LLM config (a mapping).

    From ``results.json``: the alphas the ``llama4rec`` variant chose on validation for ``seed`` (else the
    first seed's; alpha1 = 0 where validation did not support the LLM's weight, as the run then did), and an adapter folder where the run records one (``llm.tuning_pa.adapter``, or an
    ``adapter-seed<N>`` / ``adapter`` folder beside it); from ``config.yaml``: k', history lengths, the
    ranking mode and the LLM."""
    folder = Path(folder)
    if not (folder / "results.json").is_file():
        raise ConfigError(f"{folder}: not a Llama4Rec results folder (no results.json)")
    results = read_json(folder / "results.json")
    config = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
    seeds = results.get("seeds") or []
    chosen = next((s for s in seeds if s.get("seed") == seed), seeds[0] if seeds else None)
    out: dict[str, Any] = {}
    if chosen is not None:
        variant = chosen.get("variants", {}).get("llama4rec", {})
        if variant.get("alpha1") is not None:
            # validation found no support for the LLM's weight (llm_weight_used false): the run used weight 0
            out["alpha1"] = 0.0 if variant.get("llm_weight_used") is False else float(variant["alpha1"])
            out["alpha2"] = float(variant["alpha2"]) if variant.get("alpha2") is not None else 0.0
        adapter = chosen.get("llm", {}).get("tuning_pa", {}).get("adapter")
        if adapter and Path(adapter).exists():
            out["adapter"] = str(adapter)
    for name in (f"adapter-seed{seed}", "adapter"):
        if "adapter" not in out and (folder / name).is_dir():
            out["adapter"] = str(folder / name)
    for key in ("candidates", "max_history", "max_similar_history"):
        if key in (config or {}):
            out[key] = int(config[key])
    if (config or {}).get("ranking"):
        out["mode"] = str(config["ranking"])
    if "alpha1" not in out:
        raise ConfigError(f"{folder}: results.json records no alphas of the llama4rec variant (was it run with "
                          "--variants llama4rec?)")
    return out, dict((config or {}).get("llm") or {})


def batch_size(seconds_left: float, seconds_per_prompt: float | None, max_batch: int) -> int:
    """How many waiting requests one LLM call takes: as many as it can answer within ``seconds_left`` (the
    budget left to the longest-waiting one), at least 1, at most ``max_batch``; 1 while the LLM's speed is
    unmeasured (that call measures it)."""
    if not seconds_per_prompt:
        return 1
    return max(1, min(int(seconds_left / seconds_per_prompt), max_batch))


@dataclass
class RerankJob:
    """One request waiting for the worker: its prompt, its dataset, until when it is worth answering, and the
    future its thread waits on."""

    example: Example
    dataset: Dataset
    deadline: float  # the Reranker's clock() after which no one waits for the answer
    future: Future = field(default_factory=Future)


class Reranker:
    """Re-ranks top-k' lists with an LLM for many request threads: one worker batches the LLM calls.

    The worker serves requests still waiting first, as many at once as its measured seconds per prompt let
    finish within the earliest of their budgets; requests whose budget has passed are answered only when no
    one is waiting (their answers then go to the cache), and give their place to a new request when the queue
    is full."""

    def __init__(self, llm: LLM, settings: RerankSettings, train_counts: np.ndarray, describe_llm: str = "",
                 clock: Callable[[], float] = time.monotonic):
        self.llm, self.settings = llm, settings
        self._clock = clock  # of the budgets' deadlines (a test passes a fake one)
        l_all = aggregation.long_tail_coefficient(train_counts)
        self.l_range = (float(l_all.min()), float(l_all.max())) if len(l_all) else (0.0, 0.0)
        self.llm_name = describe_llm or type(llm).__name__
        self._cv = threading.Condition()
        self._pending: deque[RerankJob] = deque()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        #: measured seconds per prompt of a batch (None until the first batch)
        self.seconds_per_prompt: float | None = None

    @property
    def candidates(self) -> int:
        return self.settings.candidates

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name="recfuse-llm-rerank", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            with self._cv:
                self._stopping = True
                self._cv.notify_all()
            self._thread.join(timeout=1)  # a daemon: a call still in the LLM ends with the process
            self._thread = None

    def describe(self) -> dict[str, Any]:
        s = self.settings
        with self._cv:
            queued = len(self._pending)
        return {"llm": self.llm_name, "adapter": s.adapter, "alpha1": s.alpha1, "alpha2": s.alpha2,
                "candidates": s.candidates, "mode": s.mode, "prompt_augmentation": s.prompt_augmentation,
                "budget_ms": s.budget_ms, "sources": dict(s.sources), "queued": queued, "batches": self.batches,
                "seconds_per_prompt": None if self.seconds_per_prompt is None else round(self.seconds_per_prompt, 4)}

    def alpha(self, n_interactions: int) -> float:
        """alpha_u (Llama4Rec eq. 7) of a user with ``n_interactions`` training interactions."""
        l_u = aggregation.long_tail_coefficient(np.array([n_interactions]))
        return float(aggregation.adaptive_alpha(l_u, self.settings.alpha1, self.settings.alpha2, *self.l_range)[0])

    def example(self, key: int, user: int, history: Sequence[int], candidates: Sequence[int], similar: int,
                similar_history: Sequence[int]) -> Example:
        """The listwise query of one request, as Llama4Rec's pipeline builds it (histories most recent first)."""
        s = self.settings
        hist = np.asarray(history, dtype=np.int64)[::-1][:s.max_history]
        sim_hist = np.asarray(similar_history, dtype=np.int64)[::-1][:s.max_similar_history]
        cands = np.asarray(candidates, dtype=np.int64)
        return Example("listwise", int(user), hist, None, cands, -1, None, int(similar) if len(sim_hist) else -1,
                       sim_hist, None, None, prompting.presentation_order(len(cands), key))

    def _admit(self, job: RerankJob) -> bool:
        """Queue ``job``; when the queue is full, in the place of a request no one waits for any more."""
        with self._cv:
            if len(self._pending) >= self.settings.max_queue:
                now = self._clock()
                stale = next((j for j in self._pending if j.deadline <= now), None)
                if stale is None:
                    return False
                self._pending.remove(stale)
            self._pending.append(job)
            self._cv.notify()
        return True

    def rerank(self, dataset: Dataset, key: int, user: int, history: Sequence[int], candidates: Sequence[int],
               n_interactions: int, similar: int = -1, similar_history: Sequence[int] = ()) -> tuple[list[int], dict[str, Any]]:
        """The final order (indices into ``candidates``) and what happened: ``reranked``, ``alpha``, ``ms`` and,
        when the backbone's order is returned instead, ``fallback`` (``budget``, ``busy`` or ``error``)."""
        start = time.perf_counter()
        own = list(range(len(candidates)))
        alpha = self.alpha(n_interactions)
        info: dict[str, Any] = {"reranked": False, "alpha": alpha, "candidates": len(candidates), "fallback": None}
        if len(candidates) < 2:
            info["ms"] = 0.0
            return own, info
        budget = self.settings.budget_ms / 1000
        job = RerankJob(self.example(key, user, history, candidates, similar, similar_history), dataset,
                   self._clock() + budget)
        if not self._admit(job):
            info["fallback"] = "busy"
            info["ms"] = (time.perf_counter() - start) * 1000
            return own, info
        try:
            scores = job.future.result(timeout=budget)
        except FutureTimeout:
            info["fallback"] = "budget"
        except Exception as e:  # noqa: BLE001  (any backend failure: the backbone's order, counted)
            log.warning("LLM re-ranking failed: %s: %s", type(e).__name__, e)
            info["fallback"] = "error"
            info["error"] = f"{type(e).__name__}: {e}"
        info["ms"] = (time.perf_counter() - start) * 1000
        if info["fallback"]:
            return own, info
        order = aggregation.aggregate_topk(np.asarray(scores)[None, :], np.array([alpha]))[0]
        info["reranked"] = True
        return [int(j) for j in order], info

    def _next_batch(self) -> list[RerankJob] | None:
        """The jobs of the next LLM call (None: stop): waiting requests first, as many as fit their budgets."""
        with self._cv:
            while not self._pending and not self._stopping:
                self._cv.wait()
            if self._stopping:
                return None
            now = self._clock()
            live = [j for j in self._pending if j.deadline > now]
            if live:
                batch = live[:batch_size(live[0].deadline - now, self.seconds_per_prompt, self.settings.max_batch)]
            else:  # no one is waiting: answer a late request for the cache
                batch = [self._pending[0]]
            for j in batch:
                self._pending.remove(j)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            # items only ever get added: the newest dataset knows every item of the batch
            dataset = max((j.dataset for j in batch), key=lambda d: d.n_items)
            try:
                started = time.perf_counter()
                by_size: dict[int, list[RerankJob]] = {}
                for j in batch:  # score_ranking takes lists of one length
                    by_size.setdefault(len(j.example.candidates), []).append(j)
                for group in by_size.values():
                    scores = score_ranking(self.llm, [j.example for j in group], dataset,
                                           self.settings.prompt_augmentation, self.settings.mode)
                    for j, row in zip(group, scores):
                        j.future.set_result(np.asarray(row, dtype=np.float64))
                per_prompt = (time.perf_counter() - started) / len(batch)
                self.seconds_per_prompt = per_prompt if self.seconds_per_prompt is None else \
                    0.7 * self.seconds_per_prompt + 0.3 * per_prompt
                self.batches += 1
            except Exception as e:  # noqa: BLE001  (handed to every waiting request)
                for j in batch:
                    if not j.future.done():
                        j.future.set_exception(e)
