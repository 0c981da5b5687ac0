"""What a loaded model can answer when served, in internal item indices (the trained items ``0 .. n_trained - 1``,
then items added while serving).

:func:`engine_for` picks the engine of a model:

* :class:`EmbeddingEngine`: the direct backbones trained by the shared loop (MF, BiasMF, LightGCN, SGL, SimGCL,
  MixGCF, NeuMF). Scores from the final user and item representations. A new user is *folded in*: the user
  vector that best explains their items is solved from the item vectors by weighted ridge regression (the
  implicit-feedback least squares of Hu, Koren and Volinsky, 2008: every item a target of 0 at weight 1, the
  user's items a target of 1 at weight ``1 + confidence``), which only a dot-product model allows (not
  NeuMF's MLP). A new item gets the representation of an item without interactions from its feature vector,
  where the model has a feature or text tower.
* :class:`SequentialEngine`: SASRec, BERT4Rec, CL4SRec: a user's items, oldest first, are the sequence the
  next item is scored after; a new user's items are that sequence.
* :class:`GenericEngine`: any other model (rating backbones, baselines, a user's own class): its own
  ``score``; ItemKNN and popularity fold in too (a row of items times the similarities; the counts).

Engines are read by many request threads at once: what they hold is only ever replaced whole (copy on
write) by :meth:`Engine.add_items`, which the serving state calls under its lock.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recfuse.errors import ConfigError
from recfuse.models.base import Recommender
from recfuse.models.baselines import ItemKNN, Popularity
from recfuse.models.training import TorchRecommender

F32 = np.float32


class CannotServe(Exception):
    """A request the model cannot answer (no fold-in, no similar items, no new items): the reason, for a 422."""


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(F32)


class Engine:
    """Scores of one model for serving. Subclasses override what their model can do; the defaults refuse with
    the reason (:class:`CannotServe`)."""

    #: "embedding", "sequential" or "generic"
    kind = "generic"

    def __init__(self, model: Recommender):
        self.model = model
        self.n_trained = int(model.n_items)
        self._unit_items: np.ndarray | None = None

    @property
    def name(self) -> str:
        return str(getattr(self.model, "name", type(self.model).__name__))

    @property
    def n_items(self) -> int:
        """Trained items plus items added while serving."""
        return self.n_trained

    # -- known users -----------------------------------------------------------------------------------
    def user_scores(self, user: int, history: Sequence[int]) -> np.ndarray:
        """``(n_items,)`` scores for a user of the training data; ``history`` holds their items, oldest first
        (training data and feedback since), which sequential models encode. ``-inf``: not scorable."""
        return self._pad(np.asarray(self.model.score(np.array([user]))[0], dtype=F32))

    def user_vector(self, user: int) -> np.ndarray | None:
        """The user's vector where the model has one (similar-user search for new users), else None."""
        return None

    # -- new users ---------------------------------------------------------------------------------------
    def fold_in_refusal(self) -> str | None:
        """Why a user not in training cannot be folded in (None: they can)."""
        return (f"model {self.name!r} cannot fold in a user it was not trained on: it has neither item "
                "embeddings with dot-product scores to solve a user vector from, nor a sequence to continue")

    def fold_in_scores(self, items: Sequence[int]) -> np.ndarray:
        """``(n_items,)`` scores for a new user who interacted with ``items`` (oldest first)."""
        raise CannotServe(self.fold_in_refusal())

    def fold_in_vector(self, items: Sequence[int]) -> np.ndarray | None:
        """The folded-in user vector (embedding models), else None."""
        return None

    # -- similar items -----------------------------------------------------------------------------------
    def item_vectors(self) -> np.ndarray | None:
        """Unit-length item vectors for cosine similarity, or None when the model has none."""
        if self._unit_items is None:
            try:
                self._unit_items = _unit_rows(np.asarray(self.model.item_embeddings(), dtype=F32))
            except (NotImplementedError, AttributeError, RuntimeError):
                return None
        return self._unit_items

    def similar_scores(self, item: int) -> np.ndarray:
        """``(n_items,)`` similarity of every item to ``item`` (the item itself included)."""
        vectors = self.item_vectors()
        if vectors is None:
            raise CannotServe(f"model {self.name!r} has no item embeddings to find similar items with")
        return self._pad(vectors @ vectors[item])

    # -- new items ---------------------------------------------------------------------------------------
    def new_item_refusal(self) -> str | None:
        """Why an item never seen in training cannot be scored (None: it can)."""
        return (f"model {self.name!r} scores only the items it was trained on; a model with a feature or text "
                "tower (recfuse train --param item_tower=features, or --item-text ENCODER) scores new items")

    @property
    def item_profile_dim(self) -> int:
        """Width of the item profile embeddings a new item needs besides its features (0: none)."""
        return 0

    def add_items(self, features: np.ndarray, profiles: np.ndarray | None = None) -> None:
        """Append items given by their item feature vectors (rows like the model's ``item_features``) and,
        for a model that fuses item profiles, their profile embeddings (rows like ``item_profiles``)."""
        raise CannotServe(self.new_item_refusal())

    def _pad(self, scores: np.ndarray) -> np.ndarray:
        """Scores of the trained items, ``-inf`` for items added since (a model that cannot score them)."""
        if len(scores) >= self.n_items:
            return scores
        return np.concatenate([scores, np.full(self.n_items - len(scores), -np.inf, F32)])


class EmbeddingEngine(Engine):
    """A backbone of the shared training loop: final user and item representations, fold-in by weighted ridge."""

    kind = "embedding"
    model: TorchRecommender

    #: weight of a user's own items over the others in the fold-in regression (``alpha`` of iALS)
    confidence = 20.0
    #: ridge penalty, relative to the mean diagonal of the item Gramian
    ridge = 0.1

    def __init__(self, model: TorchRecommender):
        super().__init__(model)
        self.users, items = model.final_representations()
        self.dot = model.dot_product
        self._set_items(items)

    def _set_items(self, items: np.ndarray) -> None:
        """Replace the item representations (and what is derived from them) in one assignment each."""
        items = np.ascontiguousarray(items, dtype=F32)
        gram = items.astype(np.float64).T @ items.astype(np.float64)
        self._state = (items, gram, _unit_rows(items))

    @property
    def items(self) -> np.ndarray:
        return self._state[0]

    @property
    def n_items(self) -> int:
        return len(self._state[0])

    def user_scores(self, user: int, history: Sequence[int]) -> np.ndarray:
        return self._scores(self.users[user])

    def user_vector(self, user: int) -> np.ndarray | None:
        return self.users[user]

    def _scores(self, vector: np.ndarray) -> np.ndarray:
        items = self._state[0]
        if self.dot:
            return items @ vector.astype(F32)
        return self.model.score_representations(vector[None, :], items)[0].astype(F32)

    def fold_in_refusal(self) -> str | None:
        if self.dot:
            return None
        return (f"model {self.name!r} scores through an MLP, not a dot product of user and item vectors: a new user's "
                "vector cannot be solved from their items (serve a dot-product model: mf, lightgcn, ...)")

    def fold_in_vector(self, items: Sequence[int]) -> np.ndarray | None:
        if not self.dot:
            return None
        vectors, gram, _ = self._state
        chosen = vectors[np.asarray(items, dtype=np.int64)].astype(np.float64)
        d = gram.shape[0]
        lam = self.ridge * max(float(np.trace(gram)) / d, 1e-12)
        a = gram + self.confidence * chosen.T @ chosen + lam * np.eye(d)
        b = (1.0 + self.confidence) * chosen.sum(axis=0)
        return np.linalg.solve(a, b).astype(F32)

    def fold_in_scores(self, items: Sequence[int]) -> np.ndarray:
        vector = self.fold_in_vector(items)
        if vector is None:
            raise CannotServe(self.fold_in_refusal())
        return self._scores(vector)

    def item_vectors(self) -> np.ndarray | None:
        return self._state[2]

    def new_item_refusal(self) -> str | None:
        if not hasattr(self, "_new_item_refusal"):  # asked on every /health: found out once
            try:
                profiles = np.zeros((0, self.item_profile_dim), F32) if self.item_profile_dim else None
                self.model.cold_item_representations(np.zeros((0, self._feature_dim()), F32), profiles)
                self._new_item_refusal: str | None = None
            except ConfigError as e:
                self._new_item_refusal = f"model {self.name!r} cannot score an item it was not trained on: {e}"
        return self._new_item_refusal

    def _feature_dim(self) -> int:
        features = self.model.arrays.get("item_features")
        return 0 if features is None else int(np.shape(features)[1])

    @property
    def item_profile_dim(self) -> int:
        return self.model.item_profile_dim

    def add_items(self, features: np.ndarray, profiles: np.ndarray | None = None) -> None:
        refusal = self.new_item_refusal()
        if refusal is not None:
            raise CannotServe(refusal)
        new = self.model.cold_item_representations(np.asarray(features, F32),
                                                   None if profiles is None else np.asarray(profiles, F32))
        self._set_items(np.vstack([self._state[0], new]))


class SequentialEngine(Engine):
    """A next-item model: a user's items are the sequence it continues."""

    kind = "sequential"

    def user_scores(self, user: int, history: Sequence[int]) -> np.ndarray:
        return self.fold_in_scores(history)

    def fold_in_refusal(self) -> str | None:
        return None

    def fold_in_scores(self, items: Sequence[int]) -> np.ndarray:
        known = [int(i) for i in items if 0 <= int(i) < self.n_trained]  # items added later are not in its vocabulary
        return self._pad(np.asarray(self.model.score_sequences([known])[0], dtype=F32))  # type: ignore[attr-defined]

    def new_item_refusal(self) -> str | None:
        return (f"model {self.name!r} is sequential: its item vocabulary is fixed at training; serve a model with a "
                "feature or text tower to add items")


class GenericEngine(Engine):
    """Any other model, through its own ``score``; ItemKNN and popularity also fold in and ItemKNN finds similar
    items by its similarities."""

    def fold_in_refusal(self) -> str | None:
        if isinstance(self.model, (ItemKNN, Popularity)):
            return None
        if self.model.task == "rating":
            return (f"model {self.name!r} predicts ratings from user ids and features: a user it was not trained on "
                    "cannot be folded in from items")
        return super().fold_in_refusal()

    def fold_in_scores(self, items: Sequence[int]) -> np.ndarray:
        model = self.model
        known = np.array([i for i in items if 0 <= int(i) < self.n_trained], dtype=np.int64)
        if isinstance(model, ItemKNN):
            row = np.zeros(self.n_trained, F32)
            row[known] = 1.0
            return self._pad(np.asarray(model.similarity.T @ row, dtype=F32).ravel())
        if isinstance(model, Popularity):
            return self._pad(model.counts.astype(F32).copy())
        raise CannotServe(self.fold_in_refusal())

    def similar_scores(self, item: int) -> np.ndarray:
        if isinstance(self.model, ItemKNN):
            return self._pad(np.asarray(self.model.similarity[item].toarray(), dtype=F32).ravel())
        return super().similar_scores(item)


def engine_for(model: Recommender) -> Engine:
    """The engine that serves ``model``."""
    if isinstance(model, TorchRecommender):
        return EmbeddingEngine(model)
    if callable(getattr(model, "score_sequences", None)):
        return SequentialEngine(model)
    return GenericEngine(model)
