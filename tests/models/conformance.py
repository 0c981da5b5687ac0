"""The conformance tests every recommender inherits (three lines per model).

    class TestMF(RecommenderConformance):
        model_name = "mf"
        params = {"epochs": 5}

Known-answer synthetic data (planted topics): the model must beat global popularity; batch scores
equal single-user scores; save/load round-trips; the same seed gives the same scores; unknown ids
raise a clear error. Set ``beats_popularity_by`` lower for models that need long training.
The ``split`` and ``model`` fixtures live in ``tests/models/conftest.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from recfuse.errors import UnknownIdError
from recfuse.eval import evaluate_full_ranking
from recfuse.models.base import create_model

class RecommenderConformance:
    model_name: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    #: the model's HR@10 must exceed popularity's by this factor on the planted data
    beats_popularity_by: ClassVar[float] = 2.0
    metric: ClassVar[str] = "hr@10"

    def _evaluate(self, model, split) -> float:
        res = evaluate_full_ranking(model.score, split.history("test"), split.ground_truth("test"), ks=[10])
        return res.mean()[self.metric]

    def test_beats_popularity_on_planted_data(self, model, split):
        pop = create_model("pop").fit(split)
        ours, base = self._evaluate(model, split), self._evaluate(pop, split)
        assert ours > self.beats_popularity_by * base, f"{self.model_name}: {ours:.4f} vs popularity {base:.4f}"

    def test_batch_equals_single_user(self, model):
        users = np.array([0, 5, 17, 42])
        batch = model.score(users)
        singles = np.vstack([model.score(np.array([u])) for u in users])
        np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-5)
        assert batch.shape == (4, model.n_items)

    def test_score_subset_of_items(self, model):
        items = np.array([3, 1, 4])
        np.testing.assert_allclose(model.score(np.array([2]), items), model.score(np.array([2]))[:, items],
                                   rtol=1e-5, atol=1e-5)

    def test_recommend_excludes_seen(self, model, split):
        users = np.arange(10)
        ids, scores = model.recommend(users, k=10, exclude=split.train_matrix)
        assert ids.shape == (10, 10)
        seen = split.train_matrix[users].toarray() > 0
        assert not np.take_along_axis(seen, ids, axis=1).any()
        assert (np.diff(scores, axis=1) <= 1e-6).all()

    def test_save_load_round_trip(self, model, tmp_path):
        path = tmp_path / "model"
        model.save(path)
        loaded = type(model).load(path)
        users = np.arange(8)
        np.testing.assert_allclose(loaded.score(users), model.score(users), rtol=1e-5, atol=1e-5)

    def test_same_seed_same_scores(self, model, split):
        again = create_model(self.model_name, **{"seed": 0, **self.params}).fit(split, progress=False)
        np.testing.assert_allclose(again.score(np.arange(8)), model.score(np.arange(8)), rtol=1e-4, atol=1e-5)

    def test_unknown_ids_raise(self, model):
        with pytest.raises(UnknownIdError, match="unknown user"):
            model.score(np.array([model.n_users + 3]))
        with pytest.raises(UnknownIdError, match="unknown item"):
            model.score(np.array([0]), np.array([-1]))
