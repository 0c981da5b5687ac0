"""Conformance of the six rating backbones on planted synthetic data (known answer: ratings follow topics)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from recfuse.errors import UnknownIdError
from recfuse.eval.metrics import rmse
from recfuse.models.base import available_models, create_model, get_model_class
from recfuse.models.rating import RatingRecommender

#: small and fast: the planted data has 300 users x 200 items, ~6000 ratings
FAST: dict[str, Any] = {"epochs": 12, "batch_size": 256, "lr": 1e-2, "embedding_dim": 8, "patience": 3}


class RatingConformance:
    """What every rating model must do; subclass with ``model_name`` (and ``params``)."""

    model_name: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = FAST
    #: test RMSE must be below this fraction of the global-mean predictor's RMSE
    beats_global_mean_by: ClassVar[float] = 0.8

    def test_registered_as_rating_model(self, model):
        assert get_model_class(self.model_name).task == "rating"
        assert isinstance(model, RatingRecommender)

    def test_beats_global_mean_on_planted_data(self, model, split):
        test = split.test
        ours = rmse(model.predict(test.user, test.item), test.rating)
        base = rmse(np.full(len(test), split.train.rating.mean()), test.rating)
        assert ours < self.beats_global_mean_by * base, f"{self.model_name}: RMSE {ours:.4f} vs global mean {base:.4f}"

    def test_trained_with_early_stopping_on_validation(self, model):
        log = model.train_log
        assert len(log["epoch_seconds"]) == len(log["valid_history"]) >= 1
        assert log["best_epoch"] == int(np.argmin(log["valid_history"]))

    def test_batch_equals_single(self, model):
        users, items = np.array([0, 5, 17, 42, 5]), np.array([3, 1, 4, 1, 5])
        batch = model.predict(users, items)
        single = np.array([model.predict(users[k:k + 1], items[k:k + 1])[0] for k in range(len(users))])
        np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-5)

    def test_predictions_clipped_to_rating_range(self, model, split):
        users = np.repeat(np.arange(model.n_users), 7)
        pred = model.predict(users, np.arange(len(users)) % model.n_items)
        assert pred.min() >= split.train.rating.min() and pred.max() <= split.train.rating.max()

    def test_score_is_predicted_ratings(self, model):
        users, items = np.array([2, 9]), np.array([3, 1, 4])
        scores = model.score(users, items)
        assert scores.shape == (2, 3)
        np.testing.assert_allclose(scores[1], model.predict(np.full(3, 9), items), rtol=1e-6)
        assert model.score(users).shape == (2, model.n_items)

    def test_id_embeddings(self, model):
        dim = model.params["embedding_dim"]
        assert model.user_embeddings().shape == (model.n_users, dim)
        assert model.item_embeddings().shape == (model.n_items, dim)

    def test_save_load_round_trip(self, model, tmp_path):
        model.save(tmp_path / "m")
        loaded = type(model).load(tmp_path / "m")
        users, items = np.arange(20), np.arange(20)[::-1]
        np.testing.assert_allclose(loaded.predict(users, items), model.predict(users, items), rtol=1e-6, atol=1e-6)
        assert loaded.schema.to_json() == model.schema.to_json()  # feature vocabularies restored
        assert loaded.params == model.params
        assert not any(p.suffix == ".pkl" for p in (tmp_path / "m").iterdir())

    def test_same_seed_same_predictions(self, model, split):
        again = create_model(self.model_name, **{"seed": 0, **self.params}).fit(split, progress=False)
        users, items = np.arange(30), np.arange(30)
        np.testing.assert_allclose(again.predict(users, items), model.predict(users, items), rtol=1e-5, atol=1e-5)

    def test_unknown_ids_raise(self, model):
        with pytest.raises(UnknownIdError, match="unknown user"):
            model.predict(np.array([model.n_users + 3]), np.array([0]))
        with pytest.raises(UnknownIdError, match="unknown item"):
            model.predict(np.array([0]), np.array([-1]))
        with pytest.raises(UnknownIdError, match="unknown item"):
            model.score(np.array([0]), np.array([model.n_items]))


class TestDeepFM(RatingConformance):
    model_name = "deepfm"


class TestNFM(RatingConformance):
    model_name = "nfm"


class TestDCN(RatingConformance):
    model_name = "dcn"


class TestAFM(RatingConformance):
    model_name = "afm"


class TestXDeepFM(RatingConformance):
    model_name = "xdeepfm"


class TestAutoInt(RatingConformance):
    model_name = "autoint"


def test_all_six_registered():
    assert {"deepfm", "nfm", "dcn", "afm", "xdeepfm", "autoint"} <= set(available_models())


def test_unfitted_model_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        create_model("deepfm").predict(np.array([0]), np.array([0]))


def test_bad_hyper_parameters_are_rejected():
    from recfuse.errors import ConfigError
    with pytest.raises(ConfigError, match="dropout"):
        create_model("nfm", dropout=1.5)
    with pytest.raises(ConfigError, match="embedding_dim"):
        create_model("dcn", embedding_dim=0)


def test_load_rejects_another_models_files(tmp_path, split):
    create_model("nfm", **{**FAST, "epochs": 1}).fit(split, progress=False).save(tmp_path / "nfm")
    from recfuse.errors import ConfigError
    with pytest.raises(ConfigError, match="'nfm' model"):
        get_model_class("deepfm").load(tmp_path / "nfm")
    assert type(RatingRecommender.load(tmp_path / "nfm")).__name__ == "NFM"  # the base class dispatches
    with pytest.raises(FileNotFoundError):
        get_model_class("nfm").load(tmp_path / "nowhere")
