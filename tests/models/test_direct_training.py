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


def test_seen_pair_bitset_and_binary_search_agree(split):
    from recfuse.models.training import PairSampler

    fast = PairSampler(split.train_matrix, seed=0)
    slow = PairSampler(split.train_matrix, seed=0)
    slow.bits = None
    assert fast.bits is not None
    rng = np.random.default_rng(1)
    u, i = rng.integers(split.n_users, size=5000), rng.integers(split.n_items, size=5000)
    np.testing.assert_array_equal(fast.is_seen(u, i), slow.is_seen(u, i))
    assert fast.is_seen(fast.users, fast.items).all()


def test_neumf_all_pairs_scoring_equals_pairwise_scores():
    """The split first layer, chunked all-pairs scoring and the batch loss path agree with scoring
    each (user, item) pair on its own."""
    import torch

    from recfuse.models.direct.neumf import NeuMFBackbone
    from recfuse.models.towers import Tower

    torch.manual_seed(0)
    bb = NeuMFBackbone(Tower(7, 8, name="user"), Tower(11, 8), dim=4, hidden=[6, 5, 3], max_pairs=9).eval()
    with torch.no_grad():
        torch.nn.init.normal_(bb.predict.bias)
        u, i = bb.users(), bb.items()
        one_by_one = torch.stack([torch.stack([bb.triple_scores(u[a:a + 1], i[b:b + 1])[0]
                                               for b in range(11)]) for a in range(7)])
        np.testing.assert_allclose(bb.pair_scores(u, i).numpy(), one_by_one.numpy(), rtol=1e-5, atol=1e-6)
        cand = torch.tensor([[1, 3, 3], [0, 10, 2]])  # (B, 1 + K) with a repeated item
        np.testing.assert_allclose(bb.triple_scores(u[:2], i[cand]).numpy(),
                                   one_by_one[:2].gather(1, cand).numpy(), rtol=1e-5, atol=1e-6)


def test_fast_dropout_keeps_the_requested_share():
    import torch

    from recfuse.models.direct.neumf import FastDropout

    d = FastDropout(0.3)
    x = torch.ones(400_001)
    y = d(x)
    assert abs(float((y == 0).float().mean()) - 0.3) < 0.005
    assert abs(float(y.mean()) - 1.0) < 0.01
    assert torch.equal(d.eval()(x), x)


def test_graph_models_score_from_cached_propagation(split):
    """Scoring reads the final representations cached after training; it never re-propagates."""
    m = create_model("lightgcn", seed=0, epochs=2, patience=0, batch_size=256, device="cpu")
    m.fit(split, progress=False)
    expected = m.score(np.arange(5))

    def no_propagation(*args, **kwargs):
        raise AssertionError("propagated while scoring")

    m.backbone.final = no_propagation
    m.backbone.layers = no_propagation
    np.testing.assert_array_equal(m.score(np.arange(5)), expected)
    m.recommend(np.arange(5), k=3, exclude=split.train_matrix)


def test_mixgcf_synthesis_equals_building_every_mixture():
    """Scoring mixtures from dot products picks the same hard negatives, with the same gradients, as
    building all (B, K, L+1, d) mixtures first (the paper's formulation)."""
    import torch

    from recfuse.models.direct.mixgcf import MixGCFBackbone

    def reference(user_rep, layers, pos, cand):
        p, n = layers[pos], layers[cand]
        alpha = torch.rand(n.shape[0], 1, n.shape[2], 1)
        mixed = alpha * p.unsqueeze(1) + (1 - alpha) * n
        best = (user_rep[:, None, None, :] * mixed).sum(-1).argmax(dim=1)
        index = best[:, None, :, None].expand(-1, 1, -1, n.shape[-1])
        return torch.gather(mixed, 1, index).squeeze(1).mean(1)

    torch.manual_seed(0)
    layers = torch.randn(40, 3, 8, requires_grad=True)
    user_rep, pos, cand = torch.randn(30, 8), torch.randint(40, (30,)), torch.randint(40, (30, 6))
    weights = torch.randn(30, 8)
    out = []
    for fn in (reference, lambda *a: MixGCFBackbone.synthesise(None, *a)):
        torch.manual_seed(1)
        value = fn(user_rep, layers, pos, cand)
        (value * weights).sum().backward()
        out.append((value.detach().clone(), layers.grad.clone()))
        layers.grad = None
    torch.testing.assert_close(out[0][0], out[1][0])
    torch.testing.assert_close(out[0][1], out[1][1])


@pytest.mark.parametrize("name", ["biasmf", "sasrec", "deepfm"])
def test_training_uses_deterministic_kernels_and_restores_the_setting(split, name, monkeypatch):
    """Same seed, same model: multi-threaded CPU scatter-adds (the backward of emb[users]) add in a varying
    order unless torch's deterministic kernels are on; fit turns them on for its duration only."""
    if name == "deepfm" and split.train.rating is None:
        pytest.skip("the synthetic split has no ratings")
    model = create_model(name, epochs=1, seed=0, **({"patience": 0} if name == "biasmf" else {}))
    seen = []
    original = torch.Tensor.backward

    def recording(self, *a, **kw):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return original(self, *a, **kw)

    monkeypatch.setattr(torch.Tensor, "backward", recording)
    torch.use_deterministic_algorithms(False)
    model.fit(split, progress=False)
    assert seen and all(seen)
    assert not torch.are_deterministic_algorithms_enabled()


def test_an_item_without_training_interactions_is_never_a_negative(split):
    """A zero-shot item must be as unseen in training as a new one at serving time: no gradient as a negative."""
    train = split.train_matrix.tolil()
    cold = np.array([3, 7, 11])
    train[:, cold] = 0
    train = train.tocsr()
    train.eliminate_zeros()
    _, _, neg = PairSampler(train, n_negatives=5, seed=1).epoch()
    assert not np.isin(neg, cold).any()
    assert len(np.unique(neg)) > 0.9 * (split.n_items - len(cold))


def test_where_every_item_is_trained_the_negatives_are_drawn_as_before(split):
    sampler = PairSampler(split.train_matrix, n_negatives=3, seed=4)
    assert sampler.pool is None  # every item trained: the draws of range(n_items), as before the pool existed
    rng = np.random.default_rng(4)
    assert np.array_equal(sampler._draw(50), rng.integers(split.n_items, size=50))
