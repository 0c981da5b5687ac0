"""Content-addressed, atomic stage outputs: a rerun (or a run after a crash) redoes nothing already done.

    out = stage_dir("backbone", {"model": "lightgcn", "data": fp, "seed": 0}, build)

``build(tmp)`` writes into a fresh temporary folder; only when it returns is the folder renamed to
``<cache>/stages/<name>/<key hash>/`` (with ``key.json`` beside the outputs). A folder that exists is
complete by construction, so it is reused as it is.

Costs survive reuse: a stage records the seconds its build took (``cost.json``), and :func:`stage_cost`
measures a block of work with every reused stage (and every cached LLM answer, see
:mod:`recfuse.llm.cache`) counted at what it cost when it was computed, so a resumed run reports the
same cost table as an uninterrupted one. Reused work without a recorded cost is counted as unknown.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recfuse.io import atomic_dir, cache_dir, fingerprint, to_json

log = logging.getLogger(__name__)


def stage_root() -> Path:
    return cache_dir() / "stages"


@dataclass
class StageCost:
    """Seconds of a block of work, reused work counted at its recorded cost (see :func:`stage_cost`)."""

    wall: float = 0.0  # measured around the block
    reused: float = 0.0  # recorded compute seconds of the reused stages and cached answers inside it
    unknown_stages: int = 0  # reused stages without a recorded cost (written before costs were recorded)
    unknown_answers: int = 0  # cached LLM answers without a recorded cost

    @property
    def seconds(self) -> float:
        return self.wall + self.reused

    @property
    def complete(self) -> bool:
        return not (self.unknown_stages or self.unknown_answers)


_active: list[StageCost] = []


@contextmanager
def stage_cost() -> Iterator[StageCost]:
    """Measure a block: wall seconds plus the recorded cost of whatever it reused from the caches."""
    cost = StageCost()
    _active.append(cost)
    start = time.perf_counter()
    try:
        yield cost
    finally:
        cost.wall = time.perf_counter() - start
        _active.remove(cost)


def add_reused_cost(seconds: float | None, *, answers: int = 0) -> None:
    """Tell the open :func:`stage_cost` blocks that reused work cost ``seconds`` when it was computed
    (``None``: not recorded). ``answers``: how many cached LLM answers that was (0: one stage)."""
    for cost in _active:
        if seconds is not None:
            cost.reused += seconds
        elif answers:
            cost.unknown_answers += answers
        else:
            cost.unknown_stages += 1


def stage_dir(name: str, key: dict[str, Any], build: Callable[[Path], Any], root: Path | None = None) -> Path:
    """The output folder of stage ``name`` for ``key``, built by ``build(tmp_folder)`` if missing."""
    root = Path(root) if root is not None else stage_root()
    target = root / name / fingerprint(key)
    if (target / "key.json").is_file():
        log.debug("stage %s: reusing %s", name, target)
        cost_file = target / "cost.json"
        add_reused_cost(json.loads(cost_file.read_text())["seconds"] if cost_file.is_file() else None)
        return target
    with atomic_dir(target, keep_existing=True) as tmp:  # a concurrent run that finished first wins
        start = time.perf_counter()
        build(tmp)
        (tmp / "cost.json").write_text(to_json({"seconds": time.perf_counter() - start}))
        (tmp / "key.json").write_text(to_json(key))
    return target


def stage_json(name: str, key: dict[str, Any], compute: Callable[[], Any], root: Path | None = None) -> Any:
    """A JSON-serialisable stage result, computed once per key."""
    def build(tmp: Path) -> None:
        (tmp / "result.json").write_text(to_json(compute()))
    return json.loads((stage_dir(name, key, build, root) / "result.json").read_text())


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux ``/proc/self/statm``; None where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def memory_peak(interval: float = 0.05) -> Iterator[list[int]]:
    """Sample this process's resident memory while the block runs; yields a one-element list that holds the
    peak in bytes (0 where it cannot be read)."""
    peak = [resident_bytes() or 0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            peak[0] = max(peak[0], resident_bytes() or 0)

    thread = threading.Thread(target=sample, daemon=True, name="recfuse-memory")
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
        peak[0] = max(peak[0], resident_bytes() or 0)


class TimedStages:
    """Mixin: ``self._timed(name, fn, *args)`` runs ``fn`` and adds its cost (:func:`stage_cost`) to
    ``self.timings[name]``; ``with self._timing(name):`` does the same for a block. Reused work without a
    recorded cost is counted in ``self.unknown_costs[name]``; the process's peak resident memory during the
    stage's blocks in this run (GiB) in ``self.peak_memory[name]``. ``_reset_timings()`` starts them afresh."""

    timings: dict[str, float]
    unknown_costs: dict[str, int]
    peak_memory: dict[str, float]

    def _reset_timings(self) -> None:
        self.timings, self.unknown_costs, self.peak_memory = {}, {}, {}

    @contextmanager
    def _timing(self, name: str) -> Iterator[StageCost]:
        with stage_cost() as cost, memory_peak() as peak:
            yield cost
        self.timings[name] = self.timings.get(name, 0.0) + cost.seconds
        if peak[0]:
            self.peak_memory[name] = max(self.peak_memory.get(name, 0.0), peak[0] / 2 ** 30)
        if not cost.complete:
            self.unknown_costs[name] = self.unknown_costs.get(name, 0) + cost.unknown_stages + cost.unknown_answers

    def _timed(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._timing(name):
            return fn(*args, **kwargs)
