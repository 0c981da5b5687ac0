"""The pieces of serving without a server: top-k selection, new items' features and representations, sequences,
fold-in, the LLM re-ranking's fallbacks, and a Llama4Rec run's settings."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from recfuse.data.splits import Split
from recfuse.errors import ConfigError
from recfuse.models.base import create_model
from recfuse.models.towers import FeatureEncoder, item_feature_matrix
from recfuse.serving.engine import CannotServe, engine_for
from recfuse.serving.rerank import Reranker, RerankSettings, RerankJob, batch_size, settings_from_llama4rec_run
from recfuse.serving.state import top_items

from .fake_llm import FakeLLM

ROOT = Path(__file__).resolve().parents[2]


def test_top_items_breaks_ties_by_index_and_never_returns_excluded_or_non_finite():
    scores = np.array([1.0, 3.0, 3.0, np.nan, 2.0, -np.inf, 3.0])
    assert top_items(scores, 3) == ([1, 2, 6], [3.0, 3.0, 3.0])
    assert top_items(scores, 3, {2})[0] == [1, 6, 4]
    assert top_items(scores, 10)[0] == [1, 2, 6, 4, 0]
    big = np.zeros(1000)
    big[[10, 500, 999]] = 1.0
    assert top_items(big, 2)[0] == [10, 500] and top_items(big, 4)[0] == [10, 500, 999, 0]


def test_feature_encoder_encodes_new_rows_as_the_tables_own(synthetic_dataset):
    table = synthetic_dataset.item_features
    enc = FeatureEncoder.fit(table)
    assert np.array_equal(enc.transform(table), item_feature_matrix(synthetic_dataset))
    rows = [{f.name: f.row_values(i) for f in table} for i in range(30)]
    assert np.array_equal(enc.encode_rows(rows), enc.transform(table)[:30])
    # unknown values and absent features encode as missing; the encoder survives JSON
    odd = FeatureEncoder.from_json(enc.to_json()).encode_rows([{"genres": ["no-such-genre"], "year": "n/a"}, {}])
    assert not odd.any()


@pytest.mark.parametrize("name", ["lightgcn", "simgcl", "mf", "neumf"])
def test_a_new_item_gets_what_the_model_gives_an_item_without_interactions(synthetic_split, name):
    """Item 0 has no training interaction: its feature vector alone gives its final representation."""
    split = synthetic_split
    keep = split.train.item != 0
    cold = Split(split.dataset, split.train.take(keep), split.valid, split.test, "item 0 cold")
    model = create_model(name, epochs=2, seed=0, item_tower="features").fit(cold, progress=False)
    features = item_feature_matrix(split.dataset)
    _, items = model.final_representations()
    assert np.allclose(model.cold_item_representations(features[:1]), items[:1], atol=1e-5)
    users, _ = model.final_representations()
    assert np.allclose(model.score_representations(users[:3], items), model.score(np.arange(3)), atol=1e-5)
    assert model.dot_product == (name != "neumf")


@pytest.mark.parametrize("name", ["lightgcn", "mf"])
def test_a_new_item_of_a_profile_fusing_model_gets_its_features_and_profile(synthetic_split, name):
    """RecLM's Augment fuses item profiles: item 0 (no training interaction) with its feature vector and its
    profile embedding gets exactly what the model gives it; without a profile the model refuses."""
    split = synthetic_split
    cold = Split(split.dataset, split.train.take(split.train.item != 0), split.valid, split.test, "item 0 cold")
    features = item_feature_matrix(split.dataset)
    profiles = np.random.default_rng(0).normal(size=(split.n_items, 6)).astype(np.float32)
    model = create_model(name, epochs=2, seed=0, item_tower="features", item_features=features,
                         item_profiles=profiles).fit(cold, progress=False)
    _, items = model.final_representations()
    assert model.item_profile_dim == 6
    assert np.allclose(model.cold_item_representations(features[:1], profiles[:1]), items[:1], atol=1e-5)
    with pytest.raises(ConfigError, match="needs its profile embedding"):
        model.cold_item_representations(features[:1])
    with pytest.raises(ConfigError, match="profile embeddings must have shape"):
        model.cold_item_representations(features[:1], profiles[:1, :3])
    engine = engine_for(model)
    assert engine.new_item_refusal() is None and engine.item_profile_dim == 6
    engine.add_items(features[:1], profiles[:1])
    assert engine.n_items == split.n_items + 1 and np.allclose(engine.items[-1], items[0], atol=1e-5)


def test_an_id_tower_cannot_take_new_items(synthetic_split):
    model = create_model("mf", epochs=1, seed=0).fit(synthetic_split, progress=False)
    with pytest.raises(ConfigError, match="feature MLP"):
        model.cold_item_representations(np.zeros((1, 3), np.float32))
    engine = engine_for(model)
    assert "cannot score an item" in str(engine.new_item_refusal())
    with pytest.raises(CannotServe):
        engine.add_items(np.zeros((1, 3), np.float32))


def test_score_sequences_continues_any_sequence(synthetic_split):
    model = create_model("sasrec", epochs=1, seed=0).fit(synthetic_split, progress=False)
    users = np.arange(4)
    stored = [model.sequences["test"].of(u) for u in users]
    assert np.allclose(model.score_sequences(stored), model.score(users), atol=1e-5)
    engine = engine_for(model)
    assert engine.kind == "sequential" and engine.fold_in_refusal() is None
    assert engine.fold_in_scores([]).shape == (synthetic_split.n_items,)


def test_fold_in_of_baselines_and_refusal_of_rating_models(synthetic_split):
    knn = engine_for(create_model("itemknn", k=20).fit(synthetic_split))
    row = np.zeros(synthetic_split.n_items, np.float32)
    row[[1, 2]] = 1
    assert np.allclose(knn.fold_in_scores([1, 2]), row @ knn.model.similarity.toarray())  # type: ignore[attr-defined]
    pop = engine_for(create_model("pop").fit(synthetic_split))
    assert pop.fold_in_scores([3]).argmax() == pop.model.counts.argmax()  # type: ignore[attr-defined]
    deepfm = engine_for(create_model("deepfm", epochs=1, seed=0).fit(synthetic_split, progress=False))
    assert "ratings" in str(deepfm.fold_in_refusal())
    with pytest.raises(CannotServe):
        deepfm.fold_in_scores([1])


def _reranker(synthetic_dataset, llm, **settings) -> Reranker:
    counts = np.bincount(synthetic_dataset.interactions.user, minlength=synthetic_dataset.n_users)
    r = Reranker(llm, RerankSettings(candidates=5, **settings), counts)
    r.start()
    return r


def test_reranker_mixes_with_the_adaptive_weight(synthetic_dataset):
    r = _reranker(synthetic_dataset, FakeLLM(), alpha1=0.0, alpha2=0.0)
    try:
        order, info = r.rerank(synthetic_dataset, 3, 3, [1, 2, 3], [10, 11, 12, 13, 14], 20)
        assert info["reranked"] and info["alpha"] == 0.0 and order == [0, 1, 2, 3, 4]  # alpha 0: the backbone's
        r.settings.alpha1 = r.settings.alpha2 = 1.0
        order, info = r.rerank(synthetic_dataset, 3, 3, [1, 2, 3], [10, 11, 12, 13, 14], 20)
        assert info["alpha"] == 1.0 and order != [0, 1, 2, 3, 4] and sorted(order) == [0, 1, 2, 3, 4]
        # users with fewer interactions lean on the LLM more (Llama4Rec eq. 7)
        r.settings.alpha1, r.settings.alpha2 = 0.9, 0.1
        assert r.alpha(1) > r.alpha(100)
    finally:
        r.stop()


def test_reranker_falls_back_on_errors_budget_and_a_full_queue(synthetic_dataset):
    failing = _reranker(synthetic_dataset, FakeLLM("fail=1"))
    try:
        order, info = failing.rerank(synthetic_dataset, 1, 1, [1], [5, 6, 7], 3)
        assert order == [0, 1, 2] and info["fallback"] == "error" and "on purpose" in info["error"]
    finally:
        failing.stop()
    slow = _reranker(synthetic_dataset, FakeLLM("delay=2.0"), budget_ms=50)
    try:
        start = time.perf_counter()
        order, info = slow.rerank(synthetic_dataset, 1, 1, [1], [5, 6, 7], 3)
        # answered long before the LLM would have (not a speed target: the budget's fallback happened)
        assert info["fallback"] == "budget" and order == [0, 1, 2] and time.perf_counter() - start < 1.5
        slow.settings.max_queue = 0  # a full queue: the backbone's order at once
        _, info = slow.rerank(synthetic_dataset, 1, 1, [1], [5, 6, 7], 3)
        assert info["fallback"] == "busy"
    finally:
        slow.stop()


def test_reranker_batches_only_what_fits_the_budget(synthetic_dataset):
    """Under load, requests still waiting are served first, a batch no larger than the budget allows: some
    requests are re-ranked in time, the others fall back at their budget, none waits much longer."""
    r = _reranker(synthetic_dataset, FakeLLM("delay=0.15"), budget_ms=700)
    results: list[tuple[dict, float]] = []

    def ask(n: int) -> None:
        start = time.perf_counter()
        _, info = r.rerank(synthetic_dataset, n, n, [1, 2], [5, 6, 7], 3)
        results.append((info, time.perf_counter() - start))

    try:
        threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        r.stop()
    outcomes = [info["fallback"] or "reranked" for info, _ in results]
    assert outcomes.count("reranked") >= 1 and set(outcomes) <= {"reranked", "budget"}
    assert max(seconds for _, seconds in results) < 0.7 + 1.5  # the budget, and slack for a loaded machine
    assert r.seconds_per_prompt is not None and r.seconds_per_prompt > 0.1


def test_batch_size_fits_the_earliest_budget():
    assert batch_size(0.7, None, 8) == 1  # unmeasured: one request, whose call measures the speed
    assert batch_size(0.7, 0.15, 8) == 4  # 4 x 0.15 s fit in 0.7 s, 5 do not
    assert batch_size(0.7, 0.01, 8) == 8  # never more than max_batch
    assert batch_size(0.05, 0.15, 8) == 1  # never less than one


def test_reranker_serves_waiting_requests_before_late_ones_on_its_clock(synthetic_dataset):
    """The worker's choice of batch, step by step on a fake clock (no thread, no sleep): requests whose budget
    has passed give way to those still waiting, and are answered for the cache only when no one waits."""
    now = [100.0]
    counts = np.bincount(synthetic_dataset.interactions.user, minlength=synthetic_dataset.n_users)
    r = Reranker(FakeLLM(), RerankSettings(candidates=5, budget_ms=700, max_batch=8, max_queue=3), counts,
                 clock=lambda: now[0])

    def job(user: int, deadline: float) -> RerankJob:
        return RerankJob(r.example(user, user, [1], [5, 6, 7], -1, []), synthetic_dataset, deadline)

    late, waiting = [job(u, 100.5) for u in (1, 2)], [job(u, 101.0) for u in (3, 4)]
    for j in late:
        assert r._admit(j)
    now[0] = 100.6  # the first two requests' budgets have passed
    assert r._admit(waiting[0])
    assert r._admit(waiting[1])  # the queue is full (3): takes the place of a late request
    assert len(r._pending) == 3
    assert r._next_batch() == [waiting[0]]  # unmeasured: one, and a waiting one before the late one
    r.seconds_per_prompt = 0.1
    assert r._next_batch() == [waiting[1]]
    assert r._next_batch() == [late[1]]  # no one waits: the late request is answered for the cache
    now[0] = 100.0
    jobs = [job(u, 100.35) for u in range(6)]
    assert [r._admit(j) for j in jobs] == [True] * 3 + [False] * 3  # max_queue 3, nothing stale to replace
    assert r._next_batch() == jobs[:3]  # 0.35 s left at 0.1 s per prompt: 3 fit


def test_settings_of_a_committed_llama4rec_run():
    folder = ROOT / "benchmarks" / "results" / "archive" / "llama4rec" / "suite-before-30" / "ml-100k" / "direct-lightgcn"
    found, llm = settings_from_llama4rec_run(folder, seed=0)
    assert found["alpha1"] == 0.7 and found["alpha2"] == 0.1
    assert found["candidates"] == 10 and found["max_history"] == 8 and found["mode"] == "listwise"
    assert llm["backend"] == "embedded"
    with pytest.raises(ConfigError, match="not a Llama4Rec results folder"):
        settings_from_llama4rec_run(ROOT / "docs", seed=0)


def test_a_run_whose_validation_refused_the_llm_weight_serves_with_weight_zero(tmp_path):
    import json

    folder = ROOT / "benchmarks" / "results" / "archive" / "llama4rec" / "suite-before-30" / "ml-100k" / "direct-lightgcn"
    results = json.loads((folder / "results.json").read_text())
    results["seeds"][0]["variants"]["llama4rec"]["llm_weight_used"] = False
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "config.yaml").write_text((folder / "config.yaml").read_text())
    found, _ = settings_from_llama4rec_run(tmp_path, seed=0)
    assert found["alpha1"] == 0.0
