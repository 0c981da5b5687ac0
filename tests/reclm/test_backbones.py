"""Text-empowered backbones: cold items scored through their features; full- and zero-shot evaluation."""

import numpy as np
import pytest

from recfuse.reclm.backbones import evaluate, fit_text_backbone, setting_masks, summary
from recfuse.reclm.text import encode, nearest


@pytest.fixture(scope="module")
def split(cold_split):
    return cold_split


def test_settings_partition_the_items(split):
    masks = setting_masks(split)
    assert masks["zero_shot"].sum() == len(split.cold_items("test")) > 0
    assert not (masks["full_shot"] & masks["zero_shot"]).any()


@pytest.mark.parametrize("name", ["biasmf", "lightgcn", "neumf", "simgcl"])
def test_base_and_augment_score_cold_items(split, name):
    feats = encode([split.dataset.item_title(i) for i in range(split.n_items)], "hashing:32")
    rng = np.random.default_rng(0)
    params = {"epochs": 2, "embedding_dim": 8, "tower_hidden": [16], "patience": 0}
    base, log = fit_text_backbone(name, params, split, 0, feats)
    aug, _ = fit_text_backbone(name, params, split, 0, feats,
                               user_profiles=rng.normal(size=(split.n_users, 6)).astype(np.float32),
                               item_profiles=rng.normal(size=(split.n_items, 6)).astype(np.float32), label="augment")
    assert log.mean_epoch_seconds > 0
    cold = split.cold_items("test")
    s = base.score(np.arange(3), cold)
    assert np.isfinite(s).all() and s.std() > 0  # never-seen items get distinct, feature-driven scores
    for model in (base, aug):
        res = summary(evaluate(model, split, [20, 40]))
        assert set(res) == {"full_shot", "zero_shot"}
        for setting in res.values():
            assert setting["users"] > 0
            for m in ("recall@20", "recall@40", "ndcg@20", "ndcg@40"):
                assert 0 <= setting[m] <= 1
            assert setting["recall@40"] >= setting["recall@20"]
    again, _ = fit_text_backbone(name, params, split, 0, feats)  # cached: same stored scores
    assert np.allclose(again.score(np.arange(3), cold), s)


def test_identical_features_give_identical_cold_scores(split):
    feats = encode([split.dataset.item_title(i) for i in range(split.n_items)], "hashing:32")
    cold = split.cold_items("test")
    feats[cold[1]] = feats[cold[0]]
    model, _ = fit_text_backbone("lightgcn", {"epochs": 1, "embedding_dim": 8, "patience": 0, "tower_hidden": [8]},
                                 split, 0, feats)
    s = model.score(np.arange(4), cold[:2])
    assert np.allclose(s[:, 0], s[:, 1], atol=1e-5)


def test_nearest_and_minilm_encoder():
    emb = encode(["a space opera with aliens", "aliens invade in space", "a romantic comedy in paris"])
    assert emb.shape == (3, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    assert nearest(emb[:1], emb, 2, exclude_self=False)[0].tolist() == [0, 1]


def test_informative_profiles_lift_zero_shot(split):
    """Planted answer: item features carry no topic (hashed ids), profiles carry the users' and items'
    topics; fused as eq. 2, they must lift zero-shot recall well above the text-only Base."""
    ds = split.dataset
    feats = encode([f"item number {i}" for i in range(split.n_items)], "hashing:32")
    user_topic = [ds.user_features["group"].row_values(u) for u in range(split.n_users)]
    item_topic = [ds.item_features["genres"].row_values(i)[0] for i in range(split.n_items)]
    up = encode([f"Interests: {t}" for t in user_topic], "hashing:32")
    ip = encode([f"Interests: {t}" for t in item_topic], "hashing:32")
    params = {"epochs": 40, "embedding_dim": 16, "tower_hidden": [32], "patience": 0, "lr": 1e-2}
    base, _ = fit_text_backbone("biasmf", params, split, 0, feats)
    aug, _ = fit_text_backbone("biasmf", params, split, 0, feats, user_profiles=up, item_profiles=ip,
                               label="augment")
    rb = summary(evaluate(base, split, [5]))["zero_shot"]["recall@5"]
    ra = summary(evaluate(aug, split, [5]))["zero_shot"]["recall@5"]
    assert ra > rb + 0.1, (ra, rb)
