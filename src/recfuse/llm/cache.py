"""A disk cache of LLM answers: a repeated or resumed run asks the model nothing twice.

Keys are content hashes of (model fingerprint incl. adapter, task kind, rendered-or-raw prompt,
choices or decoding settings). Answers live in one SQLite file (WAL journal): every batch is one
transaction, so a crash mid-write loses at most the batch in flight and never corrupts what is
there; several processes may share the file.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from recfuse.errors import CacheError, DataError
from recfuse.io import atomic_path, cache_dir
from recfuse.llm.base import LLM, Prompt, RequiredPart, check_choices, normalize_prompt
from recfuse.stages import add_reused_cost

log = logging.getLogger(__name__)


def answer_key(kind: str, model_fingerprint: str, prompt: Prompt, settings: Any) -> str:
    """Content key of one answer."""
    blob = json.dumps([kind, model_fingerprint, normalize_prompt(prompt), settings], sort_keys=True,
                      ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnswerCache:
    """Key -> JSON value store in SQLite (default: ``<cache_dir>/llm/answers.sqlite``)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else cache_dir() / "llm" / "answers.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._errors("open"):
            self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        with self._lock, self._errors("open"):
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                               "seconds REAL)")
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(answers)")}
            if "seconds" not in columns:  # a cache written before answers recorded their cost
                self._conn.execute("ALTER TABLE answers ADD COLUMN seconds REAL")
            self._conn.commit()

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """SQLite's errors (not a database, locked past the timeout, a full disk) as one CacheError naming the
        file."""
        try:
            yield
        except sqlite3.Error as e:
            raise CacheError(f"{self.path}: cannot {doing} the LLM answer cache ({type(e).__name__}: {e}); move it "
                             "aside to start a fresh one (answers are asked again)") from None

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The cached values of those keys that are present."""
        return {k: v for k, (v, _) in self.get_many_with_cost(keys).items()}

    def get_many_with_cost(self, keys: Sequence[str]) -> dict[str, tuple[Any, float | None]]:
        """(value, model seconds it cost or None) of those keys that are present."""
        out: dict[str, tuple[Any, float | None]] = {}
        uniq = list(dict.fromkeys(keys))
        damaged = 0
        with self._lock, self._errors("read"):
            for s in range(0, len(uniq), 500):
                chunk = uniq[s:s + 500]
                q = f"SELECT key, value, seconds FROM answers WHERE key IN ({','.join('?' * len(chunk))})"
                for k, v, sec in self._conn.execute(q, chunk):
                    try:
                        out[k] = (json.loads(v), sec)
                    except (TypeError, ValueError):
                        damaged += 1  # a miss: asked again, and the answer replaces it
        if damaged:
            log.warning("%s: %d cached answer(s) cannot be read: asked again", self.path, damaged)
        return out

    def put_many(self, items: Iterable[tuple[str, Any]], seconds_each: float | None = None) -> None:
        """Store values in one transaction (all or nothing), each with the model seconds it cost."""
        rows = [(k, json.dumps(v), seconds_each) for k, v in items]
        with self._lock, self._errors("write to"), self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO answers (key, value, seconds) VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock, self._errors("read"):
            return int(self._conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def export(self, path: str | Path) -> int:
        """Write every answer to ``path`` as gzipped JSON lines (``{"key", "value", "seconds"}``), atomically;
        returns the count. With :meth:`import_answers` on another machine (or a fresh one), a run resumes
        there without asking the model again: the keys hold the model's weights fingerprint."""
        n = 0
        with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as fh:
            with self._lock:
                rows = self._conn.execute("SELECT key, value, seconds FROM answers ORDER BY key")
                for key, value, seconds in rows:
                    fh.write(json.dumps({"key": key, "value": json.loads(value), "seconds": seconds},
                                        ensure_ascii=False) + "\n")
                    n += 1
        return n

    def import_answers(self, path: str | Path) -> dict[str, int]:
        """Add the answers of an :meth:`export` file (gzipped or plain JSON lines) in one transaction; answers
        already here are kept. A malformed line is a :class:`DataError` naming the file and line, and then
        nothing is added."""
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        rows = []
        try:
            with opener(path, "rt", encoding="utf-8") as fh:
                for no, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                        key, value, seconds = rec["key"], rec["value"], rec.get("seconds")
                        if not isinstance(key, str) or len(key) != 64:
                            raise ValueError("'key' is not a 64-character answer key")
                        if seconds is not None and not isinstance(seconds, (int, float)):
                            raise ValueError("'seconds' is not a number")
                    except (ValueError, KeyError, TypeError) as e:
                        raise DataError(f"{path}, line {no}: not an exported answer ({e})") from None
                    rows.append((key, json.dumps(value), seconds))
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: cannot read the answers ({e})") from None
        with self._lock, self._conn:
            before = self._conn.total_changes
            self._conn.executemany("INSERT OR IGNORE INTO answers (key, value, seconds) VALUES (?, ?, ?)", rows)
            added = self._conn.total_changes - before
        return {"read": len(rows), "added": added, "already_here": len(rows) - added}

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class CachedLLM:
    """Wraps any :class:`~recfuse.llm.base.LLM`; answers already on disk are not asked again.

    Misses are sent to the model in chunks of ``chunk_size`` prompts and stored after each chunk, so an
    interrupted run resumes where it stopped. ``stats`` counts hits, misses and calls to the model. Each
    answer is stored with its share of its chunk's model seconds; a hit adds that recorded cost to the open
    :func:`recfuse.stages.stage_cost` blocks, so cost tables do not depend on what was cached.
    Other attributes (``render``, ``count_tokens``, ...) pass through to the wrapped model.
    """

    def __init__(self, llm: LLM, cache: AnswerCache | str | Path | None = None, chunk_size: int = 256):
        self.llm = llm
        self.cache = cache if isinstance(cache, AnswerCache) else AnswerCache(cache)
        self.chunk_size = int(chunk_size)
        self.stats = {"hits": 0, "misses": 0, "model_calls": 0}

    @property
    def fingerprint(self) -> str:
        return self.llm.fingerprint

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)

    def _run(self, kind: str, prompts: Sequence[Prompt], settings: Any, compute) -> list[Any]:

        fp = self.llm.fingerprint
        keys = [answer_key(kind, fp, p, settings) for p in prompts]
        cached = self.cache.get_many_with_cost(keys)
        found = {k: v for k, (v, _) in cached.items()}
        recorded = [sec for _, sec in cached.values()]
        if recorded:
            known = [sec for sec in recorded if sec is not None]
            if known:
                add_reused_cost(float(sum(known)))
            if len(known) < len(recorded):
                add_reused_cost(None, answers=len(recorded) - len(known))
        todo: dict[str, Prompt] = {}
        for k, p in zip(keys, prompts):
            if k not in found and k not in todo:
                todo[k] = p
        self.stats["hits"] += len(prompts) - sum(1 for k in keys if k not in found)
        self.stats["misses"] += sum(1 for k in keys if k not in found)
        pending = list(todo.items())
        # over several chunks, one bar for the whole request (the model's own bar covers one chunk)
        show = bool(getattr(self.llm, "progress", False)) and len(pending) > self.chunk_size
        bar = tqdm(total=len(pending), disable=not show, leave=False, dynamic_ncols=True,
                   desc=f"{kind} answers (cached: {len(found)})")
        with bar:
            for s in range(0, len(pending), self.chunk_size):
                chunk = pending[s:s + self.chunk_size]
                start = time.perf_counter()
                values = compute([p for _, p in chunk])
                self.stats["model_calls"] += 1
                items = [(k, v) for (k, _), v in zip(chunk, values)]
                self.cache.put_many(items, (time.perf_counter() - start) / len(chunk))
                found.update(items)
                bar.update(len(chunk))
        return [found[k] for k in keys]

    def choice_logprobs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        """Cached :meth:`LLM.choice_logprobs`."""
        choices = check_choices(choices)
        rows = self._run("choice", prompts, choices,
                         lambda ps: [list(map(float, r)) for r in self.llm.choice_logprobs(ps, choices)])
        return np.asarray(rows, dtype=np.float64).reshape(len(prompts), len(choices))

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, stop: Sequence[str] | None = None,
                 repetition_penalty: float = 1.0, require: RequiredPart | None = None) -> list[str]:
        """Cached :meth:`LLM.generate` (the key holds every decoding setting)."""
        settings = {"max_new_tokens": int(max_new_tokens), "temperature": float(temperature),
                    "top_p": float(top_p), "seed": int(seed) if temperature > 0 else 0,
                    "stop": list(stop or [])}
        extra: dict[str, Any] = {}
        if repetition_penalty != 1.0:  # in the key only when used: answers cached without it stay valid
            settings["repetition_penalty"] = extra["repetition_penalty"] = float(repetition_penalty)
        if require is not None:  # only wrapped models that support it are given one
            settings["require"] = require.key()
            extra["require"] = require
        return self._run("generate", prompts, settings,
                         lambda ps: self.llm.generate(ps, max_new_tokens=max_new_tokens, temperature=temperature,
                                                      top_p=top_p, seed=seed, stop=stop, **extra))
