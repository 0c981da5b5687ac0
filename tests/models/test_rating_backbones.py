"""Conformance of the six rating backbones on planted synthetic data (known answer: ratings follow topics)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from recfuse.models.base import available_models, create_model, get_model_class
from recfuse.models.rating import RatingRecommender
from recfuse.testing import RatingConformance as SharedRatingConformance

#: small and fast: the planted data has 300 users x 200 items, ~6000 ratings
FAST: dict[str, Any] = {"epochs": 12, "batch_size": 256, "lr": 1e-2, "embedding_dim": 8, "patience": 3}


class RatingConformance(SharedRatingConformance):
    """The shared rating checks (recfuse.testing: beats the global mean, batch equals single, score is the
    predicted ratings, predictions clipped to the rating range, save / load, same seed, unknown ids) plus
    what recfuse's feature-based backbones add; subclass with ``model_name``."""

    params: ClassVar[dict[str, Any]] = FAST

    def test_registered_as_rating_model(self, model):
        assert get_model_class(self.model_name).task == "rating"
        assert isinstance(model, RatingRecommender)

    def test_trained_with_early_stopping_on_validation(self, model):
        log = model.train_log
        assert len(log["epoch_seconds"]) == len(log["valid_history"]) >= 1
        assert log["best_epoch"] == int(np.argmin(log["valid_history"]))

    def test_id_embeddings(self, model):
        dim = model.params["embedding_dim"]
        assert model.user_embeddings().shape == (model.n_users, dim)
        assert model.item_embeddings().shape == (model.n_items, dim)

    def test_saved_model_keeps_its_feature_schema_and_params(self, model, tmp_path):
        model.save(tmp_path / "m")
        loaded = type(model).load(tmp_path / "m")
        assert loaded.schema.to_json() == model.schema.to_json()  # feature vocabularies restored
        assert loaded.params == model.params
        assert not any(p.suffix == ".pkl" for p in (tmp_path / "m").iterdir())


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
