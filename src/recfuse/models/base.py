"""The Recommender protocol every backbone honours, and the registry that finds them by name.

A user's own model plugs in without editing recfuse: subclass :class:`Recommender` (or just provide
the same methods) and pass ``package.module:ClassName`` wherever a model name is accepted.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recfuse.data.splits import Split
from recfuse.errors import ConfigError, UnknownIdError
from recfuse.eval.ranking import top_k


class Recommender:
    """Base class of all recommenders: batch-first, internal ids.

    Subclasses implement :meth:`fit` and :meth:`score`, and usually :meth:`user_embeddings`,
    :meth:`save` and :meth:`load`. Scores are higher-is-better.
    """

    name: ClassVar[str] = "recommender"
    #: "direct" (top-k from interactions), "sequential" or "rating"
    task: ClassVar[str] = "direct"
    #: raised when a change alters what :meth:`fit` produces, so cached trained models are not reused
    revision: ClassVar[int] = 1

    def __init__(self, **params: Any):
        self.params = params
        self.n_users = 0
        self.n_items = 0

    # -- training ---------------------------------------------------------------------------------
    def fit(self, split: Split, extra_triples: np.ndarray | None = None, progress: bool = True) -> Recommender:
        """Train on ``split.train``; early stopping (if any) uses ``split.valid`` only.

        ``extra_triples`` (n, 3) of (user, preferred item, other item) join the pairwise training set
        (LLM data augmentation, Llama4Rec L4a); models without a pairwise loss may ignore them.
        """
        raise NotImplementedError

    # -- inference --------------------------------------------------------------------------------
    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Scores of ``items`` (default: all) for each of ``users``: shape (len(users), n_items)."""
        raise NotImplementedError

    def recommend(self, users: np.ndarray, k: int = 10, exclude: sp.csr_matrix | None = None,
                  candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item ids and their scores per user.

        ``exclude`` (users x items, e.g. the training matrix) removes seen items. ``candidates``
        (len(users), c) restricts each user's ranking to a given list.
        """
        users = self._check_users(users)
        if candidates is not None:
            candidates = np.asarray(candidates, dtype=np.int64)
            scores = np.take_along_axis(self.score(users), candidates, axis=1)
            if exclude is not None:
                seen = np.asarray(exclude[users[:, None], candidates].todense()) > 0 \
                    if candidates.size else np.zeros(candidates.shape, bool)
                scores = np.where(seen, -np.inf, scores)
            order = top_k(scores, k)
            return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(scores, order, axis=1)
        scores = self.score(users)
        ids = top_k(scores, k, None if exclude is None else exclude[users])
        return ids, np.take_along_axis(scores, ids, axis=1)

    def user_embeddings(self) -> np.ndarray:
        """One vector per user (for similar-user search); raises if the model has none."""
        raise NotImplementedError(f"{type(self).__name__} has no user embeddings")

    def item_embeddings(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no item embeddings")

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------------
    def _check_users(self, users: np.ndarray | int) -> np.ndarray:
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        bad = users[(users < 0) | (users >= self.n_users)]
        if bad.size:
            raise UnknownIdError("user (internal index)", bad.tolist())
        return users

    def _check_items(self, items: np.ndarray | None) -> np.ndarray:
        if items is None:
            return np.arange(self.n_items)
        items = np.atleast_1d(np.asarray(items, dtype=np.int64))
        bad = items[(items < 0) | (items >= self.n_items)]
        if bad.size:
            raise UnknownIdError("item (internal index)", bad.tolist())
        return items


_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make a recommender available under ``name``."""
    def deco(cls: type) -> type:
        _REGISTRY[name.lower()] = cls
        cls.name = name.lower()
        return cls
    return deco


def _import_builtin_models() -> None:
    # importing the packages runs their @register decorators
    for module in ("recfuse.models.baselines", "recfuse.models.direct", "recfuse.models.sequential",
                   "recfuse.models.rating"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise


def model_cache_key(name: str) -> dict[str, int]:
    """What a stage cache key holds of a model's code: its ``revision`` when raised (else nothing, so
    models trained before revisions existed stay cached)."""
    revision = getattr(get_model_class(name), "revision", 1)
    return {"revision": revision} if revision != 1 else {}


def get_model_class(name: str) -> type:
    """A recommender class by registered name, or ``package.module:ClassName`` for a user's own."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ModuleNotFoundError, AttributeError) as e:
            raise ConfigError(f"cannot import model {name!r}: {e}") from None
        if not inspect.isclass(cls):
            raise ConfigError(f"model {name!r} is not a class")
        return cls
    _import_builtin_models()
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))} "
                          "(or give package.module:ClassName)") from None


def available_models() -> list[str]:
    _import_builtin_models()
    return sorted(_REGISTRY)


def create_model(name: str, **params: Any) -> Recommender:
    return get_model_class(name)(**params)
