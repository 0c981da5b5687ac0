"""The written contracts of recfuse.models.base: abstract bases, task bases, augmentations, the registry's checks."""

from __future__ import annotations

import numpy as np
import pytest

from recfuse.errors import ConfigError
from recfuse.models.base import (
    NextItemRecommender,
    RatingPredictor,
    Recommender,
    available_models,
    check_model_class,
    create_model,
    get_model_class,
    register,
)

TRIPLES = np.array([[0, 1, 2]])
INSERTIONS = np.array([[0, 0, 1]])


class Constant(Recommender):
    """The smallest complete recommender: every item scores its index."""

    def fit(self, split, *, extra_triples=None, insertions=None, progress=True):
        self.n_users, self.n_items = split.n_users, split.n_items
        self.fitted_with = (extra_triples, insertions)
        return self

    def score(self, users, items=None):
        users, items = self._check_users(users), self._check_items(items)
        return np.tile(items.astype(np.float64), (len(users), 1))

    def save(self, path):
        pass

    @classmethod
    def load(cls, path):
        return cls()


def test_the_bases_are_abstract():
    with pytest.raises(TypeError, match="abstract"):
        Recommender()  # type: ignore[abstract]
    assert Recommender.__abstractmethods__ == {"fit", "score", "save", "load"}
    assert NextItemRecommender.__abstractmethods__ == {"fit", "score", "save", "load"}
    assert RatingPredictor.__abstractmethods__ == {"fit", "predict", "save", "load"}  # score comes from predict


@pytest.mark.parametrize("name, message", [
    ("collections:OrderedDict", "'collections:OrderedDict' .*is not a recommender"),
    ("recfuse.models.base:create_model", "is not a class"),
    ("recfuse.models.base:Recommender", "is abstract: it does not implement fit, load, save, score"),
    ("recfuse.models.training:TorchRecommender", "is abstract: it does not implement build_backbone"),
    ("recfuse.models.rating.base:RatingRecommender", "is abstract: it does not implement build_interaction"),
    ("recfuse.models.sequential.base:SequentialRecommender", "is abstract: it does not implement _loss"),
    ("recfuse.models.nowhere:Model", "cannot import model"),
    ("no-such-model", "unknown model 'no-such-model'"),
])
def test_get_model_class_rejects_what_is_not_a_model(name, message):
    with pytest.raises(ConfigError, match=message):
        get_model_class(name)


def test_a_users_complete_class_is_accepted_by_its_path():
    assert get_model_class(f"{__name__}:Constant") is Constant


def test_task_and_base_must_agree():
    class RatingWithoutPredict(Constant):
        task = "rating"

    class SequentialWithoutBase(Constant):
        task = "sequential"

    class Unknown(Constant):
        task = "clustering"

    with pytest.raises(ConfigError, match="task 'rating' models must subclass RatingPredictor"):
        check_model_class(RatingWithoutPredict)
    with pytest.raises(ConfigError, match="task 'sequential' models must subclass NextItemRecommender"):
        check_model_class(SequentialWithoutBase)
    with pytest.raises(ConfigError, match="has task 'clustering'"):
        check_model_class(Unknown)


def test_every_registered_model_is_a_concrete_model_of_its_task():
    for name in available_models():
        cls = get_model_class(name)
        assert check_model_class(cls) is cls and cls.name == name
        assert issubclass(cls, RatingPredictor) == (cls.task == "rating")
        assert issubclass(cls, NextItemRecommender) == (cls.task == "sequential")
        expected = {"direct": set(), "sequential": {"insertions"}, "rating": set()}[cls.task]
        assert expected <= cls.augmentations, name


def test_register_takes_recommenders_only():
    with pytest.raises(TypeError, match="not a recfuse.models.base.Recommender subclass"):
        register("not-a-model")(dict)  # type: ignore[type-var]


@pytest.mark.parametrize("name, kind", [
    ("pop", "extra_triples"), ("pop", "insertions"), ("itemknn", "extra_triples"), ("mf", "insertions"),
    ("lightgcn", "insertions"), ("sasrec", "extra_triples"), ("cl4srec", "extra_triples"),
    ("deepfm", "extra_triples"), ("deepfm", "insertions"),
])
def test_an_augmentation_a_model_cannot_use_is_refused_naming_the_model(split, name, kind):
    aug = {"extra_triples": TRIPLES, "insertions": INSERTIONS}[kind]
    with pytest.raises(ConfigError, match=rf"model '{name}' \(\w+, task '\w+'\) cannot train with {kind}"):
        create_model(name).fit(split, progress=False, **{kind: aug})


def test_the_base_class_checks_augmentations_before_a_users_fit(split):
    model = Constant()
    with pytest.raises(ConfigError, match="cannot train with extra_triples"):
        model.fit(split, extra_triples=TRIPLES)
    assert not hasattr(model, "fitted_with")  # refused before the subclass's fit ran

    class WithTriples(Constant):
        augmentations = frozenset({"extra_triples"})

    assert WithTriples().fit(split, extra_triples=TRIPLES).fitted_with[0] is TRIPLES
    assert Constant().fit(split).fitted_with == (None, None)


def test_augmentations_are_keyword_only(split):
    with pytest.raises(TypeError):
        create_model("pop").fit(split, TRIPLES)  # type: ignore[misc]


def test_rating_predictor_scores_from_predict(split):
    class Mean(RatingPredictor):
        def fit(self, split, *, extra_triples=None, insertions=None, progress=True):
            self.n_users, self.n_items = split.n_users, split.n_items
            return self

        def predict(self, users, items):
            return np.asarray(users, np.float64) + 0.5 * np.asarray(items, np.float64)

        def save(self, path):
            pass

        @classmethod
        def load(cls, path):
            return cls()

    m = Mean().fit(split)
    np.testing.assert_array_equal(m.score(np.array([1, 2]), np.array([0, 4])), [[1.0, 3.0], [2.0, 4.0]])
    assert check_model_class(Mean) is Mean
