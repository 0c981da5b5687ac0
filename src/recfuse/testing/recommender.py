"""Conformance test classes for recommenders: inherit one, name the model, and pytest runs the checks.

::

    from recfuse.testing import RecommenderConformance

    class TestMyModel(RecommenderConformance):
        model_class = MyModel
        params = {"epochs": 5}

The data is recfuse's planted-topic synthetic set (300 users, 200 items, 6 topics, ratings and timestamps;
leave-one-out by time): a model that learns anything must beat global popularity on it. The fixtures
(``split``, ``model``) are methods of the classes, so they work in any test suite; override ``split`` (a
fixture of the same name in the subclass) to check a model on other data::

    class TestMyModelOnMyData(RecommenderConformance):
        model_class = MyModel

        @pytest.fixture(scope="class")
        @classmethod
        def split(cls):
            return leave_one_out(load_dataset("my-data"))

The model is trained once per class.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np
import pytest

from recfuse.data import leave_one_out, make_synthetic
from recfuse.data.splits import Split
from recfuse.errors import ConfigError, UnknownIdError
from recfuse.eval import evaluate_full_ranking
from recfuse.eval.metrics import rmse
from recfuse.models.base import (
    AUGMENTATIONS,
    NextItemRecommender,
    RatingPredictor,
    Recommender,
    check_model_class,
    create_model,
)

#: the planted-topic synthetic data of the conformance tests (arguments of :func:`recfuse.data.make_synthetic`)
PLANTED_DATA: dict[str, int] = {"n_users": 300, "n_items": 200, "n_topics": 6, "seed": 0}


@functools.cache
def planted_split(n_users: int = 300, n_items: int = 200, n_topics: int = 6, seed: int = 0) -> Split:
    """The conformance tests' split: planted-topic synthetic data, leave-one-out by time (built once per
    process; treat it as read-only)."""
    return leave_one_out(make_synthetic(n_users=n_users, n_items=n_items, n_topics=n_topics, seed=seed))


class _ModelUnderTest:
    """What both conformance classes share: which model, how it is built and trained, the fixtures."""

    #: a registered name (``"lightgcn"``) or ``"package.module:ClassName"``; ignored when ``model_class`` is set
    model_name: ClassVar[str] = ""
    #: the model class itself (takes precedence over ``model_name``)
    model_class: ClassVar[type[Recommender] | None] = None
    #: hyper-parameters for the constructor (``seed=0`` is added unless given)
    params: ClassVar[dict[str, Any]] = {}

    def make_model(self) -> Recommender:
        """A new, unfitted model with ``params`` (and ``seed=0``)."""
        kwargs = {"seed": 0, **self.params}
        if self.model_class is not None:
            return check_model_class(self.model_class)(**kwargs)
        if not self.model_name:
            raise ConfigError(f"{type(self).__name__}: set model_class (or model_name) to the model under test")
        return create_model(self.model_name, **kwargs)

    def fit(self, model: Recommender, split: Split) -> Recommender:
        """Train ``model`` on ``split`` (override to pass more to ``fit``)."""
        return model.fit(split, progress=False)

    # class-scoped fixtures are class methods (pytest gives each test a new instance of the class)
    @pytest.fixture(scope="class")
    @classmethod
    def split(cls) -> Split:
        """The data every check of the class uses (default: :func:`planted_split`)."""
        return planted_split(**PLANTED_DATA)

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, split: Split) -> Recommender:
        """The model under test, trained once per class on ``split``."""
        checks = cls()
        return checks.fit(checks.make_model(), split)

    # -- the contract, for every task ----------------------------------------------------------------
    def test_is_a_concrete_recommender_of_its_task(self, model: Recommender) -> None:
        assert isinstance(model, Recommender)
        check_model_class(type(model))  # concrete, and its task matches its base class
        assert model.augmentations <= set(AUGMENTATIONS), f"unknown augmentations {model.augmentations}"

    def test_knows_the_sizes_after_fit(self, model: Recommender, split: Split) -> None:
        assert (model.n_users, model.n_items) == (split.n_users, split.n_items)

    def test_rejects_augmentations_it_cannot_use(self, split: Split) -> None:
        """``fit`` given an augmentation outside ``augmentations`` raises ConfigError (before training)."""
        dummy = {"extra_triples": np.array([[0, 1, 2]]), "insertions": np.array([[0, 0, 1]])}
        fresh = self.make_model()
        for kind in sorted(set(AUGMENTATIONS) - fresh.augmentations):
            with pytest.raises(ConfigError, match=kind):
                self.make_model().fit(split, progress=False, **{kind: dummy[kind]})


class RecommenderConformance(_ModelUnderTest):
    """The checks every direct or sequential recommender passes (three lines per model)::

        class TestMF(RecommenderConformance):
            model_name = "mf"
            params = {"epochs": 5}

    On the planted data the model must beat global popularity on HR@10 by ``beats_popularity_by``
    (lower it for models that need long training); batch scores equal single-user scores; a subset of
    items scores as the same columns of all items; ``recommend`` ranks, never returns seen items and
    respects candidate lists; save / load round-trips the scores; the same seed gives the same scores;
    unknown ids raise :class:`~recfuse.errors.UnknownIdError`; embeddings, where a model has them, have one
    row per user or item; a sequential model scores after its validation or test sequences.
    """

    #: the model's HR@10 must exceed popularity's by this factor on the planted data
    beats_popularity_by: ClassVar[float] = 2.0
    metric: ClassVar[str] = "hr@10"
    #: tolerance of score comparisons (batch vs single user, subset vs all items, save / load)
    atol: ClassVar[float] = 1e-5
    #: tolerance of the same-seed comparison (a second training run)
    seed_atol: ClassVar[float] = 1e-5

    def _evaluate(self, model: Recommender, split: Split) -> float:
        res = evaluate_full_ranking(model.score, split.history("test"), split.ground_truth("test"), ks=[10])
        return res.mean()[self.metric]

    def test_beats_popularity_on_planted_data(self, model: Recommender, split: Split) -> None:
        pop = create_model("pop").fit(split)
        ours, base = self._evaluate(model, split), self._evaluate(pop, split)
        name = self.model_name or type(model).__name__
        assert ours > self.beats_popularity_by * base, f"{name}: {ours:.4f} vs popularity {base:.4f}"

    def test_batch_equals_single_user(self, model: Recommender) -> None:
        users = np.array([0, 5, 17, 42])
        batch = model.score(users)
        singles = np.vstack([model.score(np.array([u])) for u in users])
        np.testing.assert_allclose(batch, singles, rtol=self.atol, atol=self.atol)
        assert batch.shape == (4, model.n_items)

    def test_score_subset_of_items(self, model: Recommender) -> None:
        items = np.array([3, 1, 4])
        np.testing.assert_allclose(model.score(np.array([2]), items), model.score(np.array([2]))[:, items],
                                   rtol=self.atol, atol=self.atol)

    def test_recommend_excludes_seen(self, model: Recommender, split: Split) -> None:
        users = np.arange(10)
        ids, scores = model.recommend(users, k=10, exclude=split.train_matrix)
        assert ids.shape == (10, 10)
        seen = split.train_matrix[users].toarray() > 0
        assert not np.take_along_axis(seen, ids, axis=1).any()
        assert (np.diff(scores, axis=1) <= 1e-6).all()

    def test_recommend_within_candidates(self, model: Recommender) -> None:
        users = np.array([1, 2, 3])
        candidates = np.array([[5, 9, 11, 20], [0, 1, 2, 3], [7, 6, 5, 4]])
        ids, scores = model.recommend(users, k=2, candidates=candidates)
        assert ids.shape == scores.shape == (3, 2)
        assert all(set(row) <= set(cands) for row, cands in zip(ids.tolist(), candidates.tolist()))
        best = np.take_along_axis(model.score(users), candidates, axis=1).max(axis=1)
        np.testing.assert_allclose(scores[:, 0], best, rtol=self.atol, atol=self.atol)

    def test_save_load_round_trip(self, model: Recommender, tmp_path: Any) -> None:
        path = tmp_path / "model"
        model.save(path)
        loaded = type(model).load(path)
        users = np.arange(8)
        np.testing.assert_allclose(loaded.score(users), model.score(users), rtol=self.atol, atol=self.atol)

    def test_same_seed_same_scores(self, model: Recommender, split: Split) -> None:
        again = self.fit(self.make_model(), split)
        np.testing.assert_allclose(again.score(np.arange(8)), model.score(np.arange(8)), rtol=1e-4,
                                   atol=self.seed_atol)

    def test_unknown_ids_raise(self, model: Recommender) -> None:
        with pytest.raises(UnknownIdError, match="unknown user"):
            model.score(np.array([model.n_users + 3]))
        with pytest.raises(UnknownIdError, match="unknown item"):
            model.score(np.array([0]), np.array([-1]))

    def test_embeddings_have_one_row_each(self, model: Recommender) -> None:
        for get, n in ((model.user_embeddings, model.n_users), (model.item_embeddings, model.n_items)):
            try:
                emb = np.asarray(get())
            except NotImplementedError:
                continue  # a model may have none: callers fall back (similar users from interactions)
            assert emb.ndim == 2 and emb.shape[0] == n and np.isfinite(emb).all()

    def test_sequential_models_score_after_either_stage(self, model: Recommender) -> None:
        if not isinstance(model, NextItemRecommender):
            pytest.skip("not a sequential model")
        users, items = np.array([0, 3]), np.array([1, 2, 5])
        for stage in ("valid", "test"):
            scores = model.score(users, items, stage=stage)
            assert scores.shape == (2, 3) and np.isfinite(scores).all()
        np.testing.assert_allclose(model.score(users, items, stage="test"), model.score(users, items),
                                   rtol=self.atol, atol=self.atol)


class RatingConformance(_ModelUnderTest):
    """The checks every rating model passes (a :class:`~recfuse.models.base.RatingPredictor`)::

        class TestDeepFM(RatingConformance):
            model_name = "deepfm"
            params = {"epochs": 12}

    On the planted ratings the test RMSE must be below ``beats_global_mean_by`` times the global-mean
    predictor's; batch predictions equal single ones; ``score`` is the predicted ratings; predictions stay
    in the training ratings' range; save / load round-trips them; the same seed gives the same predictions;
    unknown ids and pairs of unequal length raise.
    """

    #: test RMSE must be below this fraction of the global-mean predictor's RMSE
    beats_global_mean_by: ClassVar[float] = 0.8
    #: tolerance of prediction comparisons (batch vs single)
    atol: ClassVar[float] = 1e-5
    #: tolerance of predictions after save / load
    round_trip_atol: ClassVar[float] = 1e-6

    def test_is_a_rating_predictor(self, model: Recommender) -> None:
        assert isinstance(model, RatingPredictor) and model.task == "rating"

    def test_beats_global_mean_on_planted_data(self, model: RatingPredictor, split: Split) -> None:
        test = split.test
        assert test.rating is not None and split.train.rating is not None, "the split has no ratings"
        ours = rmse(model.predict(test.user, test.item), test.rating)
        base = rmse(np.full(len(test), split.train.rating.mean()), test.rating)
        name = self.model_name or type(model).__name__
        assert ours < self.beats_global_mean_by * base, f"{name}: RMSE {ours:.4f} vs global mean {base:.4f}"

    def test_batch_equals_single(self, model: RatingPredictor) -> None:
        users, items = np.array([0, 5, 17, 42, 5]), np.array([3, 1, 4, 1, 5])
        batch = model.predict(users, items)
        assert batch.shape == (5,)
        single = np.array([model.predict(users[k:k + 1], items[k:k + 1])[0] for k in range(len(users))])
        np.testing.assert_allclose(batch, single, rtol=self.atol, atol=self.atol)

    def test_score_is_predicted_ratings(self, model: RatingPredictor) -> None:
        users, items = np.array([2, 9]), np.array([3, 1, 4])
        scores = model.score(users, items)
        assert scores.shape == (2, 3)
        np.testing.assert_allclose(scores[1], model.predict(np.full(3, 9), items), rtol=1e-6)
        assert model.score(users).shape == (2, model.n_items)

    def test_predictions_within_the_rating_range(self, model: RatingPredictor, split: Split) -> None:
        assert split.train.rating is not None
        users = np.repeat(np.arange(model.n_users), 7)
        pred = model.predict(users, np.arange(len(users)) % model.n_items)
        assert pred.min() >= split.train.rating.min() and pred.max() <= split.train.rating.max()

    def test_save_load_round_trip(self, model: RatingPredictor, tmp_path: Any) -> None:
        model.save(tmp_path / "m")
        loaded = type(model).load(tmp_path / "m")
        users, items = np.arange(20), np.arange(20)[::-1]
        np.testing.assert_allclose(loaded.predict(users, items), model.predict(users, items),
                                   rtol=self.round_trip_atol, atol=self.round_trip_atol)

    def test_same_seed_same_predictions(self, model: RatingPredictor, split: Split) -> None:
        again = self.fit(self.make_model(), split)
        assert isinstance(again, RatingPredictor)
        users, items = np.arange(30), np.arange(30)
        np.testing.assert_allclose(again.predict(users, items), model.predict(users, items), rtol=1e-5, atol=1e-5)

    def test_unknown_ids_raise(self, model: RatingPredictor) -> None:
        with pytest.raises(UnknownIdError, match="unknown user"):
            model.predict(np.array([model.n_users + 3]), np.array([0]))
        with pytest.raises(UnknownIdError, match="unknown item"):
            model.predict(np.array([0]), np.array([-1]))
        with pytest.raises(UnknownIdError, match="unknown item"):
            model.score(np.array([0]), np.array([model.n_items]))

    def test_pairs_of_unequal_length_raise(self, model: RatingPredictor) -> None:
        with pytest.raises(ValueError):
            model.predict(np.array([0, 1]), np.array([0]))
