"""The shared pairwise training loop: sampling, extra triples, early stopping on validation only, logs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recfuse.errors import ConfigError, DataError
from recfuse.models.base import create_model
from recfuse.models.training import PairSampler, bpr_loss, check_triples, info_nce

FAST = {"epochs": 6, "lr": 0.01, "batch_size": 256, "patience": 0, "device": "cpu"}


def test_negatives_are_never_training_items(split):
    sampler = PairSampler(split.train_matrix, n_negatives=5, seed=1)
    users, pos, neg = sampler.epoch()
    assert len(users) == len(split.train) == len(sampler)
    assert neg.shape == (len(users), 5)
    seen = split.train_matrix[np.repeat(users, 5), neg.ravel()]
    assert not np.asarray(seen).any()
    assert split.train_matrix[users, pos].all()  # positives are training pairs
    assert len(np.unique(neg)) > 0.9 * split.n_items  # spread over the catalogue


def test_extra_triples_join_with_their_negative(split):
    extra = np.array([[0, 5, 7], [1, 2, 3]])
    sampler = PairSampler(split.train_matrix, extra_triples=extra, n_negatives=2, seed=0)
    users, pos, neg = sampler.epoch()
    assert len(users) == len(split.train) + 2
    for u, p, q in extra:
        rows = np.flatnonzero((users == u) & (pos == p) & (neg[:, 0] == q))
        assert len(rows) >= 1


@pytest.mark.parametrize("bad, match", [(np.zeros((2, 2), int), "shape"), (np.full((1, 3), 0.5), "integer"),
                                        (np.array([[10_000, 1, 2]]), "user index"),
                                        (np.array([[0, 1, 10_000]]), "item index")])
def test_bad_triples_raise(bad, match):
    with pytest.raises(DataError, match=match):
        check_triples(bad, 300, 200)


def test_extra_triples_steer_the_ranking(split):
    """300 copies of 'user 0 prefers a over b' must put a above b, and the reverse b above a."""
    seen = set(split.train_matrix[0].indices)
    a, b = [i for i in range(split.n_items) if i not in seen][:2]
    scores = []
    for pref, other in ((a, b), (b, a)):
        triples = np.tile([0, pref, other], (300, 1))
        m = create_model("mf", seed=0, **FAST).fit(split, extra_triples=triples, progress=False)
        s = m.score(np.array([0]), np.array([pref, other]))[0]
        scores.append(s[0] - s[1])
        assert m.train_log["n_extra_triples"] == 300
    assert scores[0] > 0 and scores[1] > 0


def test_early_stopping_reads_validation_never_test(split):
    guarded = dataclasses.replace(split)

    def ground_truth(stage):
        if stage == "test":
            raise AssertionError("training read the test split")
        return split.ground_truth(stage)

    def history(stage):
        if stage == "test":
            raise AssertionError("training read the test split")
        return split.history(stage)

    guarded.ground_truth = ground_truth  # type: ignore[method-assign]
    guarded.history = history  # type: ignore[method-assign]
    guarded.test = None  # type: ignore[assignment]
    m = create_model("mf", seed=0, **{**FAST, "epochs": 40, "patience": 2, "lr": 0.05}).fit(guarded, progress=False)
    log = m.train_log
    assert log["epochs_run"] <= 40 and len(log["epoch_seconds"]) == log["epochs_run"]
    assert [e for e, _ in log["valid_history"]] == list(range(1, log["epochs_run"] + 1))
    best = max(v for _, v in log["valid_history"])
    assert log["best_valid"] == pytest.approx(best)
    assert log["valid_history"][log["best_epoch"] - 1][1] == pytest.approx(best)
    if log["epochs_run"] < 40:  # stopped early: the last `patience` evaluations did not improve
        assert log["epochs_run"] - log["best_epoch"] == 2


def test_best_state_is_restored(split):
    from recfuse.eval import evaluate_full_ranking
    m = create_model("mf", seed=0, **{**FAST, "epochs": 30, "patience": 3, "lr": 0.05}).fit(split, progress=False)
    res = evaluate_full_ranking(m.score, split.history("valid"), split.ground_truth("valid"), ks=[10])
    assert res.mean()["ndcg@10"] == pytest.approx(m.train_log["best_valid"], abs=1e-6)


def test_unknown_hyper_parameter_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown hyper-parameter.*n_layer"):
        create_model("lightgcn", n_layer=3)


def test_score_before_fit_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        create_model("mf").score(np.array([0]))


def test_user_embeddings_find_similar_users(split):
    """L5a: the nearest user by cosine of MF user embeddings mostly shares the planted topic."""
    m = create_model("mf", seed=0, **{**FAST, "epochs": 15}).fit(split, progress=False)
    emb = m.user_embeddings()
    assert emb.shape == (split.n_users, 64)
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    topic = split.dataset.user_topic
    assert (topic[sim.argmax(1)] == topic).mean() > 0.5  # chance: 1/6


def test_biasmf_user_embeddings_drop_the_bias_column(split):
    m = create_model("biasmf", seed=0, **{**FAST, "epochs": 2}).fit(split, progress=False)
    assert m.user_embeddings().shape == (split.n_users, 64)
    assert m.item_embeddings().shape == (split.n_items, 65)


def test_losses_by_hand():
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    expected = (np.log1p(np.exp(-2.0)) + np.log(2.0)) / 2
    assert float(bpr_loss(pos, neg)) == pytest.approx(expected, rel=1e-6)
    a = torch.eye(3)
    # identical orthogonal views: logits 1/t on the diagonal, 0 elsewhere
    t = 0.5
    assert float(info_nce(a, a, t)) == pytest.approx(-np.log(np.exp(2) / (np.exp(2) + 2)), rel=1e-5)


def test_progress_flag_silences_output(split, capsys):
    create_model("mf", seed=0, **{**FAST, "epochs": 2}).fit(split, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
