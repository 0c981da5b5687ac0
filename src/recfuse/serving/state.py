"""The state of one recommendation server: the model's engine, the id vocabularies, what each user has seen,
and the feedback log, behind one lock.

Requests read a consistent snapshot (the catalogue's size, a user's feedback) under the lock and compute
outside it, so scoring runs concurrently; the few writes (feedback, new items) take the lock, append to the
log on disk (flushed and fsync'd before they count) and then change memory. Restarting the server replays
the log: nothing acknowledged is lost.

The log lives in the run folder, ``feedback/items.jsonl`` (items added while serving) and
``feedback/interactions.jsonl`` (feedback), one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.data.dataset import Dataset, Feature, FeatureTable, Vocab
from recfuse.data.sequences import user_histories
from recfuse.models.similar import most_similar_by_interactions, most_similar_users
from recfuse.serving.engine import CannotServe, Engine, engine_for
from recfuse.serving.rerank import Reranker
from recfuse.models.runfolder import ServableRun, read_run
from recfuse.reclm.profiles import fallback_profile_of_description
from recfuse.serving.texts import encode_texts, item_text, new_item_description

log = logging.getLogger(__name__)

#: the longest id accepted for a user or an item
MAX_ID_LENGTH = 256


class UnknownIds(Exception):
    """External ids the server does not know (a 404 naming them)."""

    def __init__(self, kind: str, ids: Sequence[str]):
        self.kind, self.ids = kind, list(ids)
        shown = ", ".join(repr(i) for i in self.ids[:10]) + (" ..." if len(self.ids) > 10 else "")
        super().__init__(f"unknown {kind}{'s' if len(self.ids) > 1 else ''}: {shown}")


class BadInput(ValueError):
    """A request body or parameter the server cannot use (a 422 saying why)."""


class Conflict(Exception):
    """A request that contradicts the state (an item id that already exists): a 409."""


class LogUnwritable(Exception):
    """The feedback log cannot be written (a read-only run folder, a full disk): a 503; nothing is accepted
    that would be lost on restart."""


def _unwritable(folder: Path) -> str:
    """Why the feedback log folder cannot be written ("" where it can, or can be made)."""
    target = folder
    while not target.exists():
        target = target.parent
    if target != folder or folder.is_dir():
        return "" if os.access(target, os.W_OK | os.X_OK) else "cannot be written (no permission)"
    return "is a file, not a folder"


def _finite_number(name: str, value: Any) -> float:
    """``value`` as a finite float, else :class:`BadInput` naming ``name`` (an integer too large for a float
    included)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise BadInput(f"{name} must be a finite number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise BadInput(f"{name} must be a finite number, got {str(value)[:40]!r}")
    return number


def _check_features(features: Mapping[str, Any], kinds: Mapping[str, str]) -> None:
    """:class:`BadInput` naming the first feature whose value is not of its kind: a number (numeric), a string
    or integer (categorical), those or a list of them (multi-valued); null is a missing value."""
    for name, value in features.items():
        kind = kinds.get(name)
        if value is None or kind is None:
            continue
        if kind == "numeric":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise BadInput(f"feature {name!r} is numeric, got {value!r}")
            _finite_number(f"feature {name!r}", value)
            continue
        values = value if kind == "multi" and isinstance(value, list) else [value]
        if any(isinstance(v, bool) or not isinstance(v, (str, int)) for v in values):
            raise BadInput(f"feature {name!r} takes {'a value or a list of values' if kind == 'multi' else 'a value'} "
                           f"(strings or integers), got {value!r}")


@dataclass
class Ranked:
    """A ranked list in internal indices, with its scores and how it was made."""

    items: list[int]
    scores: list[float]
    folded_in: bool = False
    llm: dict[str, Any] | None = None


@dataclass
class Counters:
    requests: dict[str, int] = field(default_factory=dict)
    llm_reranked: int = 0
    llm_fallbacks: dict[str, int] = field(default_factory=lambda: {"budget": 0, "busy": 0, "error": 0})


def top_items(scores: np.ndarray, k: int, exclude: set[int] | Sequence[int] = ()) -> tuple[list[int], list[float]]:
    """The ``k`` best finite scores, best first (ties: lower index first), never an excluded item."""
    s = np.array(scores, dtype=np.float64, copy=True)
    ex = np.fromiter((i for i in exclude if 0 <= i < len(s)), dtype=np.int64)
    s[ex] = -np.inf
    s[~np.isfinite(s)] = -np.inf
    k = min(int(k), len(s))
    if k <= 0:
        return [], []
    if len(s) > 4 * k + 64:
        part = np.argpartition(-s, k - 1)[:k]
        cutoff = s[part].min()
        pool = np.flatnonzero(s >= cutoff)  # everything tied with the k-th, so ties break by index
    else:
        pool = np.arange(len(s))
    order = pool[np.lexsort((pool, -s[pool]))][:k]
    order = order[np.isfinite(s[order])]
    return order.tolist(), s[order].tolist()


def _check_id(kind: str, value: str) -> str:
    if value is None:
        raise BadInput(f"{kind} id is missing")
    value = str(value)
    if not value or len(value) > MAX_ID_LENGTH:
        raise BadInput(f"{kind} id must be 1 to {MAX_ID_LENGTH} characters")
    return value


class ServingState:
    """One served run folder: model, vocabularies, seen items and feedback, safe for concurrent requests.

    Parameters
    ----------
    run
        The run folder, read (:func:`~recfuse.models.runfolder.read_run`).
    seed
        Which seed's model to serve (default: the first trained).
    reranker
        Optional LLM re-ranking (:class:`~recfuse.serving.rerank.Reranker`).
    """

    def __init__(self, run: ServableRun, seed: int | None = None, reranker: Reranker | None = None):
        self.run = run
        self.seed, self.model = run.load_model(seed)
        self.engine: Engine = engine_for(self.model)
        dataset = run.dataset
        self.dataset_name = dataset.name
        self.users = dataset.users
        self.n_known_users = len(dataset.users)
        self.item_ids: list[str] = [str(i) for i in dataset.items.ids]
        self.item_index: dict[str, int] = {ext: i for i, ext in enumerate(self.item_ids)}
        inter = dataset.interactions
        self.histories: list[np.ndarray] = user_histories(inter, dataset.n_users)  # all parts, oldest first
        self.train_counts = np.bincount(inter.user[run.part == 0], minlength=dataset.n_users)
        self.side_features = run.side_features()
        self.text_encoder: str | None = run.manifest.get("item_text_encoder")
        self.text_format: str = run.manifest.get("item_text_format") or "tower"
        self.profile_encoder: str | None = run.manifest.get("item_profile_encoder")
        self.schema = dataset  # the item features a new item may name (RecLM's descriptions use them all)
        self.prompt_dataset = _prompt_dataset(dataset)
        self.lock = threading.RLock()
        self.feedback: dict[str, list[int]] = {}
        self.feedback_count = 0
        self.new_items = 0
        self.fallback_item_profiles = 0  # new items whose fused profile is their description (no LLM wrote one)
        self.skipped_log_lines = 0
        self.counters = Counters()
        self.started = time.time()
        self.log_dir = run.folder / "feedback"
        self.reranker = reranker
        self._similar_users: np.ndarray | None = None
        self._unit_users: np.ndarray | None = None
        self._replay()
        self.log_problem = _unwritable(self.log_dir)
        if self.log_problem:
            log.warning("%s: %s: POST /v1/interactions and /v1/items will answer 503", self.log_dir, self.log_problem)
        if reranker is not None:
            self._init_similar()  # the prompts' most similar users, before the first request
            reranker.start()

    @classmethod
    def from_folder(cls, folder: str | Path, seed: int | None = None, reranker: Reranker | None = None) -> ServingState:
        return cls(read_run(folder), seed, reranker)

    # -- ids ---------------------------------------------------------------------------------------------
    def count(self, endpoint: str) -> None:
        with self.lock:
            self.counters.requests[endpoint] = self.counters.requests.get(endpoint, 0) + 1

    def item_indices(self, ids: Sequence[str]) -> list[int]:
        """Internal indices of external item ids; :class:`UnknownIds` naming every unknown one."""
        with self.lock:
            index = self.item_index
            found = [index.get(str(i), -1) for i in ids]
        unknown = [str(i) for i, f in zip(ids, found) if f < 0]
        if unknown:
            raise UnknownIds("item", unknown)
        return found

    def external_items(self, items: Sequence[int]) -> list[str]:
        with self.lock:
            return [self.item_ids[i] for i in items]

    def _known_user(self, user: str) -> int | None:
        return int(self.users.index(user)[0]) if user in self.users else None

    # -- recommendations ---------------------------------------------------------------------------------
    def recommend_user(self, user: str, k: int, rerank: bool | None = None) -> Ranked:
        """Top-k for a user: one of the training data (their model vector or sequence), or a new user with
        logged feedback (folded in from it); seen items excluded. :class:`UnknownIds` for anyone else."""
        u = self._known_user(user)
        with self.lock:
            n_items = len(self.item_ids)
            recent = list(self.feedback.get(user, ()))
        if u is not None:
            history = [int(i) for i in self.histories[u]] + recent
            scores = self.engine.user_scores(u, history)[:n_items]
            seen = set(history)
            ranked = self._rank(scores, k, seen, rerank, user, u, history)
            return ranked
        if not recent:
            raise UnknownIds("user", [user])
        return self.recommend_items(recent, k, user=None, rerank=rerank, label=user)

    def recommend_items(self, items: Sequence[int], k: int, user: str | None = None, rerank: bool | None = None,
                        label: str | None = None) -> Ranked:
        """Top-k for a user not in training, folded in from ``items`` (internal indices, oldest first) and,
        when ``user`` names someone with logged feedback, those items before them; the items are excluded.
        :class:`~recfuse.serving.engine.CannotServe` when the model cannot fold in."""
        refusal = self.engine.fold_in_refusal()
        if refusal is not None:
            raise CannotServe(refusal)
        user = None if user is None else _check_id("user", user)
        with self.lock:
            n_items = len(self.item_ids)
            earlier = list(self.feedback.get(user, ())) if user is not None else []
        history = earlier + [int(i) for i in items]
        scores = self.engine.fold_in_scores(history)[:n_items]
        ranked = self._rank(scores, k, set(history), rerank, label or user or "", None, history)
        ranked.folded_in = True
        return ranked

    def similar_items(self, item: int, k: int) -> Ranked:
        with self.lock:
            n_items = len(self.item_ids)
        scores = self.engine.similar_scores(item)[:n_items]
        items, values = top_items(scores, k, {item})
        return Ranked(items, values)

    def _rank(self, scores: np.ndarray, k: int, seen: set[int], rerank: bool | None, user: str, u: int | None,
              history: Sequence[int]) -> Ranked:
        reranker = self.reranker
        use_llm = reranker is not None and (rerank is None or rerank)
        if not use_llm or reranker is None:
            items, values = top_items(scores, k, seen)
            return Ranked(items, values)
        k_prime = max(k, reranker.candidates)
        items, values = top_items(scores, k_prime, seen)
        head = min(reranker.candidates, len(items))
        similar, similar_history = self._similar_for(u, history)
        n_train = int(self.train_counts[u]) + (len(history) - len(self.histories[u])) if u is not None else len(history)
        key = u if u is not None else zlib.crc32(user.encode("utf-8")) % 1_000_003
        with self.lock:
            dataset = self.prompt_dataset
        order, info = reranker.rerank(dataset, key, u if u is not None else -1, history, items[:head],
                                      n_train, similar, similar_history)
        with self.lock:
            if info.get("fallback"):
                self.counters.llm_fallbacks[info["fallback"]] = self.counters.llm_fallbacks.get(info["fallback"], 0) + 1
            else:
                self.counters.llm_reranked += 1
        reordered = [items[j] for j in order] + items[head:]
        value_of = dict(zip(items, values))
        return Ranked(reordered[:k], [value_of[i] for i in reordered[:k]], llm=info)

    def _similar_for(self, u: int | None, history: Sequence[int]) -> tuple[int, list[int]]:
        """The most similar user of the training data (Llama4Rec's prompt augmentation) and their items,
        oldest first: by the model's user vectors where it has them, else by co-interactions."""
        if self._similar_users is None:
            self._init_similar()
        assert self._similar_users is not None
        if u is not None:
            s = int(self._similar_users[u])
        else:
            vector = self.engine.fold_in_vector(history) if self.engine.fold_in_refusal() is None else None
            if vector is None or self._unit_users is None:
                return -1, []
            norm = float(np.linalg.norm(vector)) or 1.0
            s = int(np.argmax(self._unit_users @ (vector / norm)))
        if s < 0:
            return -1, []
        return s, [int(i) for i in self.histories[s]]

    def _init_similar(self) -> None:
        try:
            emb = np.asarray(self.model.user_embeddings(), dtype=np.float32)
        except (NotImplementedError, AttributeError, TypeError):
            emb = None
        if emb is not None and emb.ndim == 2 and len(emb) == self.n_known_users:
            self._similar_users = most_similar_users(emb)[:, 0]
            if self.engine.kind == "embedding":
                vectors = getattr(self.engine, "users")
                norm = np.linalg.norm(vectors, axis=1, keepdims=True)
                self._unit_users = (vectors / np.where(norm > 0, norm, 1.0)).astype(np.float32)
        else:
            matrix = self.run.dataset.interactions.take(self.run.part == 0).to_csr(self.n_known_users,
                                                                                  self.engine.n_trained)
            self._similar_users = most_similar_by_interactions(matrix)

    # -- writes ------------------------------------------------------------------------------------------
    def _append(self, name: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Append records to a log file, flushed and fsync'd before returning (call under the lock);
        :class:`LogUnwritable` where it cannot be written."""
        path = self.log_dir / name
        data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as e:
            raise LogUnwritable(f"{path}: the feedback log cannot be written ({e.strerror or e}): nothing was "
                                "accepted") from None

    def add_interactions(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Log feedback (``user``, ``item``, optional ``rating`` and ``timestamp``); the next request sees it.
        Every item must be known (:class:`UnknownIds`); a user may be new."""
        rows: list[dict[str, Any]] = []
        for r in records:
            user = _check_id("user", r["user"])
            item = str(r["item"])
            values = {}
            for name in ("rating", "timestamp"):
                value = r.get(name)
                values[name] = None if value is None else _finite_number(name, value)
            rows.append({"user": user, "item": item, "rating": values["rating"],
                         "timestamp": values["timestamp"] if values["timestamp"] is not None else time.time()})
        users: list[str] = sorted({row["user"] for row in rows})
        with self.lock:
            indices = self.item_indices([row["item"] for row in rows])
            self._append("interactions.jsonl", rows)
            for row, i in zip(rows, indices):
                self.feedback.setdefault(row["user"], []).append(i)
            self.feedback_count += len(rows)
            return {"accepted": len(rows),
                    "users": {u: {"known": u in self.users, "feedback": len(self.feedback[u])} for u in users}}

    def item_vector(self, title: str, text: str, features: Mapping[str, Any]) -> np.ndarray:
        """The item feature vector a new item gets, as the items of the training data got theirs: its text
        through the run's text encoder (a text tower; RecLM's: its whole description, features included) and
        its side features through the run's feature encoder."""
        if self.text_format == "description":
            return encode_texts([self.description(title, text, features)], self._text_encoder()).astype(np.float32)
        parts = []
        if self.text_encoder:
            parts.append(encode_texts([item_text(title, [text] if text else [])], self.text_encoder))
        if self.side_features is not None:
            unknown = sorted(set(features) - set(self.side_features.names))
            if unknown:
                raise BadInput(f"unknown feature(s) {', '.join(unknown)}; the model's features: "
                                 f"{', '.join(self.side_features.names)}")
            _check_features(features, {b["name"]: b["kind"] for b in self.side_features.blocks})
            parts.append(self.side_features.encode_rows([features]))
        elif features:
            raise BadInput("this model takes no side features for new items (text only)")
        if not parts:
            raise CannotServe("the run folder does not record how its item features were made (they were passed "
                              "as arrays): train with recfuse train to serve new items")
        return np.hstack(parts).astype(np.float32)

    def description(self, title: str, text: str, features: Mapping[str, Any]) -> str:
        """A new item's one-line description (:func:`~recfuse.serving.texts.new_item_description`)."""
        try:
            return new_item_description(self.schema, title, text, features)
        except ValueError as e:
            raise BadInput(str(e)) from None

    def _text_encoder(self) -> str:
        if not self.text_encoder:
            raise CannotServe("the run folder does not record its text encoder (item_text_encoder in serving.json)")
        return self.text_encoder

    def item_profile(self, title: str, text: str, features: Mapping[str, Any]) -> np.ndarray | None:
        """The profile embedding a new item gets from a model that fuses item profiles (RecLM's Augment):
        the fallback profile RecLM gives an item no LLM wrote a profile for (its description), through the
        run's profile encoder; None for other models."""
        if not self.engine.item_profile_dim:
            return None
        if not self.profile_encoder:
            raise CannotServe("the model fuses item profiles but the run folder does not record their encoder "
                              "(item_profile_encoder in serving.json)")
        profile = fallback_profile_of_description(self.description(title, text, features))
        return encode_texts([profile], self.profile_encoder).astype(np.float32)

    def add_item(self, item: str, title: str, text: str = "", features: Mapping[str, Any] | None = None,
                 _replaying: bool = False) -> int:
        """Add an item never seen in training; models with a feature or text tower score it at once.
        :class:`Conflict` for an id that exists, :class:`~recfuse.serving.engine.CannotServe` for a model that
        cannot score new items."""
        item = _check_id("item", item)
        features = dict(features or {})
        refusal = self.engine.new_item_refusal()
        if refusal is not None:
            raise CannotServe(refusal)
        with self.lock:
            if item in self.item_index:
                raise Conflict(f"item {item!r} exists")
        vector = self.item_vector(title, text, features)
        profile = self.item_profile(title, text, features)
        if not (np.isfinite(vector).all() and (profile is None or np.isfinite(profile).all())):
            # e.g. a number that overflows float32 once standardised: it would poison every fold-in after it
            raise BadInput("the item's features give a representation that is not finite (a number far outside "
                           "the training data's range?)")
        with self.lock:
            if item in self.item_index:
                raise Conflict(f"item {item!r} exists")
            if not _replaying:
                self._append("items.jsonl", [{"item": item, "title": title, "text": text, "features": features,
                                              "timestamp": time.time()}])
            self.engine.add_items(vector, profile)
            if profile is not None:
                self.fallback_item_profiles += 1
            self.item_index[item] = len(self.item_ids)
            self.item_ids.append(item)
            self.prompt_dataset = _with_item(self.prompt_dataset, item, title, features)
            self.new_items += 1
            return self.item_index[item]

    def _replay(self) -> None:
        """Re-read the feedback log of earlier runs of the server (items first, then interactions)."""
        for name in ("items.jsonl", "interactions.jsonl"):
            path = self.log_dir / name
            if not path.is_file():
                continue
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
            for no, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    if name == "items.jsonl":
                        self.add_item(rec["item"], rec.get("title", ""), rec.get("text", ""), rec.get("features"),
                                      _replaying=True)
                    else:
                        i = self.item_indices([str(rec["item"])])[0]
                        self.feedback.setdefault(_check_id("user", rec["user"]), []).append(i)
                        self.feedback_count += 1
                except (ValueError, KeyError, TypeError, UnknownIds, Conflict, CannotServe) as e:
                    # a line cut short by a crash mid-write (the last one), or an item the model cannot take
                    self.skipped_log_lines += 1
                    log.warning("%s:%d: skipped (%s)", path, no, e)

    # -- health ------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = {
                "status": "ok", "model": self.engine.name, "engine": self.engine.kind, "task": self.model.task,
                "seed": self.seed, "dataset": self.dataset_name, "run": str(self.run.folder),
                "users": self.n_known_users, "new_users": sum(1 for u in self.feedback if u not in self.users),
                "items": len(self.item_ids), "new_items": self.new_items,
                "new_item_profiles_from_description": self.fallback_item_profiles,
                "interactions_logged": self.feedback_count,
                "log_lines_skipped": self.skipped_log_lines,
                "feedback_log": self.log_problem or "writable",
                "can": {"fold_in": self.engine.fold_in_refusal() is None,
                        "new_items": self.engine.new_item_refusal() is None},
                "requests": dict(self.counters.requests), "uptime_seconds": round(time.time() - self.started, 3),
            }
            if self.reranker is not None:
                out["llm"] = {**self.reranker.describe(), "reranked": self.counters.llm_reranked,
                              "fallbacks": dict(self.counters.llm_fallbacks)}
            else:
                out["llm"] = None
        return out

    def close(self) -> None:
        if self.reranker is not None:
            self.reranker.stop()


def _prompt_dataset(dataset: Dataset) -> Dataset:
    """The part of the dataset that Llama4Rec's prompts read (names, titles, years), cheap to extend."""
    keep = [f for f in dataset.item_features if f.name in ("title", "year")]
    return Dataset(dataset.name, dataset.users, dataset.items, dataset.interactions,
                   item_features=FeatureTable(dataset.n_items, keep), source=dataset.source)


def _with_item(dataset: Dataset, item: str, title: str, features: Mapping[str, Any]) -> Dataset:
    """``dataset`` with one more item (its title and year), for prompts that mention it."""
    table = FeatureTable(dataset.n_items + 1)
    for f in dataset.item_features:
        if f.name == "title":
            table.add(Feature.text("title", [*f.require_values(), title]))
        elif f.name == "year":
            year = features.get("year")
            try:
                value = float(year) if year is not None else float("nan")
            except (TypeError, ValueError):
                value = float("nan")
            table.add(Feature("year", "numeric", values=np.append(f.require_values(), value)))
    if "title" not in table:
        table.add(Feature.text("title", [dataset.item_title(i) for i in range(dataset.n_items)] + [title]))
    items = Vocab([*dataset.items.ids, item], "item")
    return Dataset(dataset.name, dataset.users, items, dataset.interactions, item_features=table,
                   source=dataset.source)
