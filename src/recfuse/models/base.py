"""The recommender contract every backbone honours, and the registry that finds them by name.

Three abstract classes state what a model of each task must do:

* :class:`Recommender`, the base of all (and of the *direct* task: top-k from interactions): ``fit`` and
  ``score`` are abstract, ``save`` / ``load`` too (the pipelines cache every trained model on disk);
  ``recommend``, ``user_embeddings`` and ``item_embeddings`` have defaults.
* :class:`NextItemRecommender`: *sequential* models; ``fit`` accepts ``insertions`` and ``score`` a ``stage``.
* :class:`RatingPredictor`: *rating* models; ``predict(users, items)`` is abstract and ``score`` is built on it.

A user's own model plugs in without editing recfuse: subclass the class of its task and pass
``package.module:ClassName`` wherever a model name is accepted. ``recfuse.testing.RecommenderConformance``
is the test class that checks a model honours the contract.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recfuse.data.splits import Split, Stage
from recfuse.errors import ConfigError, UnknownIdError
from recfuse.eval.ranking import top_k
from recfuse.models.params import check_hyper_parameters

#: internal user or item indices, any integer dtype
Ids = npt.NDArray[np.integer[Any]]
#: scores, ratings or embeddings (float32 or float64)
Floats = npt.NDArray[np.floating[Any]]

#: the values of ``Recommender.task``: top-k from interactions, next item after a sequence, rating prediction
TASKS = ("direct", "sequential", "rating")
#: the LLM augmentations :meth:`Recommender.fit` can be given, and what each is
AUGMENTATIONS = {
    "extra_triples": "(user, preferred item, other item) triples ranked by the LLM (Llama4Rec L4a, direct models "
                     "with a pairwise loss)",
    "insertions": "(user, position, item) items inserted into the users' training sequences (Llama4Rec L4b, "
                  "sequential models)",
}


class Recommender(ABC):
    """Base class of all recommenders: batch-first, internal ids (``0 .. n_users - 1``, ``0 .. n_items - 1``).

    A subclass implements :meth:`fit`, :meth:`score`, :meth:`save` and :meth:`load`; it may override
    :meth:`user_embeddings` and :meth:`item_embeddings` (used for similar-user search) and
    :meth:`recommend`. Scores are higher-is-better. After :meth:`fit` or :meth:`load`, ``n_users`` and
    ``n_items`` are the sizes of the split's dataset.

    The contract per task:

    * *direct* (this class): ``fit`` learns from the training interactions; a model with a pairwise loss
      also takes ``extra_triples`` (LLM-ranked BPR triples, ``augmentations = {"extra_triples"}``);
      ``score`` ranks every item for a user, and evaluation is full ranking with training items excluded.
    * *sequential* (:class:`NextItemRecommender`): ``fit`` learns from each user's time-ordered training
      items and takes ``insertions`` (items an LLM inserted into those sequences); ``score`` takes the
      ``stage`` whose history it continues.
    * *rating* (:class:`RatingPredictor`): ``fit`` learns the training ratings, takes neither augmentation,
      and ``predict(users, items)`` gives the ratings of (user, item) pairs (evaluated by RMSE / MAE).

    Class attributes:

    * ``name``: the registered name (set by :func:`register`).
    * ``task``: ``"direct"`` (top-k from interactions, the default), ``"sequential"`` (a subclass of
      :class:`NextItemRecommender`) or ``"rating"`` (a subclass of :class:`RatingPredictor`).
    * ``augmentations``: which of the LLM augmentations (``"extra_triples"``, ``"insertions"``) :meth:`fit`
      uses. The base class checks every call: a subclass's :meth:`fit` runs only after
      :meth:`check_augmentations` has raised :class:`~recfuse.errors.ConfigError` for any other.
    * ``revision``: raised when a change alters what :meth:`fit` produces, so that cached trained models
      are not reused.

    Parameters
    ----------
    **params
        Hyper-parameters, kept in ``self.params`` (saved with the model, part of cache keys). Every model
        accepts ``seed``. Those with one meaning in every model (``epochs``, ``lr``, ``batch_size``, ``device``,
        ``valid_metric``, ...: :mod:`recfuse.models.params`) are checked here: a value out of range raises
        :class:`~recfuse.errors.ConfigError` before any training.
    """

    name: ClassVar[str] = "recommender"
    task: ClassVar[str] = "direct"
    augmentations: ClassVar[frozenset[str]] = frozenset()
    revision: ClassVar[int] = 1

    def __init__(self, **params: Any):
        check_hyper_parameters(type(self).__name__, params)  # epochs, lr, batch_size, device, valid_metric, ...
        self.params: dict[str, Any] = params
        self.n_users = 0
        self.n_items = 0

    # -- training ---------------------------------------------------------------------------------
    @abstractmethod
    def fit(self, split: Split, *, extra_triples: Ids | None = None, insertions: Ids | None = None,
            progress: bool = True) -> Self:
        """Train on ``split.train``; early stopping or any other model selection uses ``split.valid`` only
        (the test part is never read).

        Parameters
        ----------
        split
            The data: ``split.train`` to learn from, ``split.valid`` for early stopping.
        extra_triples
            Optional ``(n, 3)`` integer array of (user, preferred item, other item): pairwise preferences
            ranked by an LLM (Llama4Rec's data augmentation for direct models). A model with a pairwise loss
            adds them to its training triples, with the given "other" item as the negative. Only models
            whose ``augmentations`` hold ``"extra_triples"`` accept them; the others raise
            :class:`~recfuse.errors.ConfigError`.
        insertions
            Optional ``(n, 3)`` integer array of (user, position, item): items inserted into the users'
            training sequences, positions counted in the original sequence (Llama4Rec's data augmentation
            for sequential models). Only models whose ``augmentations`` hold ``"insertions"`` accept them;
            the others raise :class:`~recfuse.errors.ConfigError`.
        progress
            Show a progress bar.

        Returns
        -------
        Recommender
            ``self``, fitted.
        """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fit = cls.__dict__.get("fit")
        if fit is not None and not getattr(fit, "__isabstractmethod__", False):
            setattr(cls, "fit", _checking_augmentations(fit))

    def check_augmentations(self, *, extra_triples: Ids | None = None, insertions: Ids | None = None) -> None:
        """Raise :class:`~recfuse.errors.ConfigError`, naming the model, when :meth:`fit` is given an
        augmentation that is not in ``augmentations``. Runs before every subclass's :meth:`fit`.

        Parameters
        ----------
        extra_triples, insertions
            The arguments :meth:`fit` was given (``None`` when absent).
        """
        given = [k for k, v in (("extra_triples", extra_triples), ("insertions", insertions)) if v is not None]
        for kind in given:
            if kind not in self.augmentations:
                accepted = ", ".join(sorted(self.augmentations)) or "none"
                raise ConfigError(f"model {self.name!r} ({type(self).__name__}, task {self.task!r}) cannot train with "
                                  f"{kind}: {AUGMENTATIONS[kind]}; it accepts: {accepted}")

    # -- inference --------------------------------------------------------------------------------
    @abstractmethod
    def score(self, users: Ids, items: Ids | None = None) -> Floats:
        """Scores of ``items`` for each of ``users``, higher is better.

        Parameters
        ----------
        users
            ``(B,)`` internal user indices.
        items
            ``(I,)`` internal item indices; ``None`` (default) scores every item in index order.

        Returns
        -------
        numpy.ndarray
            ``(B, I)`` float scores (``I = n_items`` when ``items`` is None); row ``b`` does not depend on
            the other users of the batch.

        Raises
        ------
        UnknownIdError
            A user or item index outside the fitted sizes (see :meth:`_check_users`, :meth:`_check_items`).
        RuntimeError
            The model is neither fitted nor loaded.
        """

    def recommend(self, users: Ids, k: int = 10, exclude: sp.csr_matrix | None = None,
                  candidates: Ids | None = None) -> tuple[npt.NDArray[np.int64], Floats]:
        """Top-k item ids and their scores per user, from :meth:`score`.

        Parameters
        ----------
        users
            ``(B,)`` internal user indices.
        k
            List length.
        exclude
            Optional users x items sparse matrix (e.g. the training matrix): its nonzero items are never
            recommended.
        candidates
            Optional ``(B, c)`` item indices: each user's ranking is restricted to its row.

        Returns
        -------
        tuple of numpy.ndarray
            ``(B, k)`` item indices, best first (ties: lower index first), and their ``(B, k)`` scores
            (``-inf`` for excluded candidates).
        """
        return self._top_items(self.score, users, k, exclude, candidates)

    def _top_items(self, score: Callable[[npt.NDArray[np.int64]], Floats], users: Ids, k: int,
                   exclude: sp.csr_matrix | None, candidates: Ids | None) -> tuple[npt.NDArray[np.int64], Floats]:
        """:meth:`recommend` with scores from ``score(rows)`` (a sequential model's scores at a stage)."""
        rows = self._check_users(users)
        if candidates is not None:
            cands = np.asarray(candidates, dtype=np.int64)
            scores = np.take_along_axis(score(rows), cands, axis=1)
            if exclude is not None:
                seen = np.asarray(exclude[rows[:, None], cands].todense()) > 0 \
                    if cands.size else np.zeros(cands.shape, bool)
                scores = np.where(seen, -np.inf, scores)
            order = top_k(scores, k)
            return np.take_along_axis(cands, order, axis=1), np.take_along_axis(scores, order, axis=1)
        scores = score(rows)
        ids = top_k(scores, k, None if exclude is None else exclude[rows])
        return ids, np.take_along_axis(scores, ids, axis=1)

    def user_embeddings(self) -> Floats:
        """One vector per user, for similar-user search (Llama4Rec's prompt augmentation, RecLM's profiles).

        Returns
        -------
        numpy.ndarray
            ``(n_users, d)`` float array.

        Raises
        ------
        NotImplementedError
            The model has no user vectors (the default); callers then fall back to interaction vectors.
        """
        raise NotImplementedError(f"{type(self).__name__} has no user embeddings")

    def item_embeddings(self) -> Floats:
        """One vector per item.

        Returns
        -------
        numpy.ndarray
            ``(n_items, d)`` float array.

        Raises
        ------
        NotImplementedError
            The model has no item vectors (the default).
        """
        raise NotImplementedError(f"{type(self).__name__} has no item embeddings")

    # -- persistence ------------------------------------------------------------------------------
    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the fitted model to ``path`` (a file or folder of the model's choice; no pickle).

        Parameters
        ----------
        path
            Where to write; :meth:`load` reads it back.
        """

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> Self:
        """Read a model written by :meth:`save`: it scores exactly as the saved one did.

        Parameters
        ----------
        path
            What :meth:`save` wrote.

        Returns
        -------
        Recommender
            The model, ready to score (no split needed).
        """

    # -- helpers ----------------------------------------------------------------------------------
    def _check_users(self, users: Ids | int) -> npt.NDArray[np.int64]:
        """``users`` as a 1-d int64 array; :class:`~recfuse.errors.UnknownIdError` for any outside
        ``0 .. n_users - 1``."""
        ids = np.atleast_1d(np.asarray(users, dtype=np.int64))
        bad = ids[(ids < 0) | (ids >= self.n_users)]
        if bad.size:
            raise UnknownIdError("user (internal index)", bad.tolist())
        return ids

    def _check_items(self, items: Ids | None) -> npt.NDArray[np.int64]:
        """``items`` as a 1-d int64 array (all items when None); :class:`~recfuse.errors.UnknownIdError`
        for any outside ``0 .. n_items - 1``."""
        if items is None:
            return np.arange(self.n_items, dtype=np.int64)
        ids = np.atleast_1d(np.asarray(items, dtype=np.int64))
        bad = ids[(ids < 0) | (ids >= self.n_items)]
        if bad.size:
            raise UnknownIdError("item (internal index)", bad.tolist())
        return ids


def _checking_augmentations(fit: Callable[..., Any]) -> Callable[..., Any]:
    """``fit`` preceded by :meth:`Recommender.check_augmentations` (set on each subclass that defines ``fit``)."""
    if getattr(fit, "_checks_augmentations", False):
        return fit

    @functools.wraps(fit)
    def checked(self: Recommender, split: Split, *args: Any, **kwargs: Any) -> Any:
        self.check_augmentations(extra_triples=kwargs.get("extra_triples"), insertions=kwargs.get("insertions"))
        return fit(self, split, *args, **kwargs)

    setattr(checked, "_checks_augmentations", True)  # a subclass's inherited or aliased fit is not wrapped twice
    # this layer is the contract, not a decorator of the model's: ``fit.__wrapped__`` stays the undecorated
    # fit, as a decorator's functools.wraps left it (benchmarks/deterministic_cost.py times it without
    # @reproducible that way)
    checked.__wrapped__ = inspect.unwrap(fit)
    return checked


class NextItemRecommender(Recommender):
    """Base of the *sequential* task: the next item after each user's time-ordered history.

    Training sequences come from ``split.train`` (time order); ``fit`` also accepts ``insertions`` (items
    an LLM inserted into those sequences). Scoring after fitting encodes each user's train + validation
    items (``stage="test"``, what ``split.history("test")`` holds), or the train items only
    (``stage="valid"``, for early stopping); the test item never enters an input sequence. Insertions are
    training data only: scoring and embeddings encode the real history. A fitted model keeps the
    sequences it scores from, so that it can be saved and loaded without the split.
    """

    task: ClassVar[str] = "sequential"
    augmentations: ClassVar[frozenset[str]] = frozenset({"insertions"})

    @abstractmethod
    def score(self, users: Ids, items: Ids | None = None, *, stage: Stage = "test") -> Floats:
        """Next-item scores of ``items`` after each of ``users``' ``stage`` sequence, higher is better.

        Parameters
        ----------
        users
            ``(B,)`` internal user indices.
        items
            ``(I,)`` internal item indices; ``None`` (default) scores every item.
        stage
            ``"test"`` (default): after the train + validation items; ``"valid"``: after the train items.

        Returns
        -------
        numpy.ndarray
            ``(B, I)`` float scores.
        """

    def recommend(self, users: Ids, k: int = 10, exclude: sp.csr_matrix | None = None,
                  candidates: Ids | None = None, *, stage: Stage = "test") -> tuple[npt.NDArray[np.int64], Floats]:
        """:meth:`Recommender.recommend` after each user's ``stage`` sequence (``"valid"``: the train items
        only, so a validation query never sees the validation item)."""
        return self._top_items(lambda rows: self.score(rows, stage=stage), users, k, exclude, candidates)

    def user_embeddings(self, stage: Stage = "test") -> Floats:
        """The sequence encoding of every user as of ``stage`` (for similar-user search)."""
        raise NotImplementedError(f"{type(self).__name__} has no user embeddings")


class RatingPredictor(Recommender):
    """Base of the *rating* task: predicts the rating a user gives an item (evaluated by RMSE / MAE).

    ``fit`` trains on ``split.train``'s ratings (a split without ratings raises
    :class:`~recfuse.errors.DataError`); :meth:`predict` is the task's output, and :meth:`score` ranks items
    by predicted rating, so a rating model can also produce top-k lists. Neither LLM augmentation applies:
    Llama4Rec's rating augmentation adds rated interactions to the split instead.
    """

    task: ClassVar[str] = "rating"

    @abstractmethod
    def predict(self, users: Ids, items: Ids) -> Floats:
        """Predicted ratings of (user, item) pairs.

        Parameters
        ----------
        users, items
            ``(n,)`` internal indices each; pair ``j`` is ``(users[j], items[j])``.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` float predictions on the training ratings' scale.

        Raises
        ------
        ValueError
            ``users`` and ``items`` differ in length.
        UnknownIdError
            An index outside the fitted sizes.
        """

    def score(self, users: Ids, items: Ids | None = None) -> Floats:
        """Predicted ratings of ``items`` for each of ``users`` (so a rating model ranks too).

        Parameters
        ----------
        users
            ``(B,)`` internal user indices.
        items
            ``(I,)`` internal item indices; ``None`` (default) scores every item.

        Returns
        -------
        numpy.ndarray
            ``(B, I)`` predictions: row ``b`` is ``predict([users[b]] * I, items)``.
        """
        users, items = self._check_users(users), self._check_items(items)
        pred = self.predict(np.repeat(users, len(items)), np.tile(items, len(users)))
        return pred.reshape(len(users), len(items))


_REGISTRY: dict[str, type[Recommender]] = {}
R = TypeVar("R", bound=Recommender)


def register(name: str) -> Callable[[type[R]], type[R]]:
    """Class decorator: make a recommender (a :class:`Recommender` subclass) available under ``name``."""
    def deco(cls: type[R]) -> type[R]:
        if not (inspect.isclass(cls) and issubclass(cls, Recommender)):
            raise TypeError(f"@register({name!r}): {cls!r} is not a recfuse.models.base.Recommender subclass")
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


def check_model_class(cls: object, name: str | None = None) -> type[Recommender]:
    """``cls`` if it is a usable model class: a concrete :class:`Recommender` subclass whose ``task`` matches
    its base (rating: :class:`RatingPredictor`, sequential: :class:`NextItemRecommender`); otherwise a
    :class:`~recfuse.errors.ConfigError` naming it."""
    shown = repr(name) if name is not None else repr(cls)
    if not inspect.isclass(cls):
        raise ConfigError(f"model {shown} is not a class")
    if not issubclass(cls, Recommender):
        raise ConfigError(f"model {shown} ({cls.__module__}.{cls.__qualname__}) is not a recommender: subclass "
                          "recfuse.models.base.Recommender (or NextItemRecommender, RatingPredictor)")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise ConfigError(f"model {shown} ({cls.__qualname__}) is abstract: it does not implement {missing}")
    if cls.task not in TASKS:
        raise ConfigError(f"model {shown} ({cls.__qualname__}) has task {cls.task!r}; tasks: {', '.join(TASKS)}")
    for base, task in ((NextItemRecommender, "sequential"), (RatingPredictor, "rating")):
        if issubclass(cls, base) != (cls.task == task):
            raise ConfigError(f"model {shown} ({cls.__qualname__}): task {cls.task!r} models "
                              f"{'must' if cls.task == task else 'cannot'} subclass {base.__name__}")
    return cls


def get_model_class(name: str) -> type[Recommender]:
    """A recommender class by registered name, or ``package.module:ClassName`` for a user's own.

    Raises :class:`~recfuse.errors.ConfigError` for an unknown name, a module or attribute that cannot
    be imported, or a class that is not a concrete :class:`Recommender` (see :func:`check_model_class`).
    """
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ModuleNotFoundError, AttributeError) as e:
            raise ConfigError(f"cannot import model {name!r}: {e}") from None
        return check_model_class(cls, name)
    _import_builtin_models()
    try:
        cls = _REGISTRY[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))} "
                          "(or give package.module:ClassName)") from None
    return check_model_class(cls, name)


def check_model_task(name: str, task: str) -> type[Recommender]:
    """The class of model ``name`` if it does ``task`` (``direct``, ``sequential`` or ``rating``); otherwise a
    :class:`~recfuse.errors.ConfigError` naming both, raised where the options are read, before any training
    (e.g. a method's ``--task rating`` with a ranking backbone)."""
    cls = get_model_class(name)
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    if cls.task != task:
        raise ConfigError(f"the {task} task needs a {task} model; {name!r} is a {cls.task} model "
                          f"(recfuse models lists each model's task)")
    return cls


def available_models() -> list[str]:
    """The registered model names, sorted."""
    _import_builtin_models()
    return sorted(_REGISTRY)


def create_model(name: str, **params: Any) -> Recommender:
    """An unfitted model: ``get_model_class(name)(**params)``."""
    return get_model_class(name)(**params)
