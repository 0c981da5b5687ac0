"""RecLM hooks: item representations from feature vectors (cold items scored, R2) and profile fusion (R3)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recfuse.errors import ConfigError
from recfuse.models.base import create_model
from recfuse.models.towers import item_feature_matrix

FAST = {"epochs": 15, "lr": 0.01, "batch_size": 256, "patience": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def cold_split(split):
    """The planted data with 20 items removed from training (they stay in valid / test)."""
    rng = np.random.default_rng(0)
    cold = rng.choice(split.n_items, 20, replace=False)
    keep = ~np.isin(split.train.item, cold)
    return dataclasses.replace(split, train=split.train.take(keep)), cold


def _topic_auc(model, split, cold) -> float:
    """How often a user scores a cold item of its own topic above a cold item of another topic."""
    ds = split.dataset
    scores = model.score(np.arange(split.n_users), cold)
    same = ds.user_topic[:, None] == ds.item_topic[cold][None, :]
    wins = []
    for u in range(split.n_users):
        pos, neg = scores[u, same[u]], scores[u, ~same[u]]
        if len(pos) and len(neg):
            wins.append((pos[:, None] > neg[None, :]).mean())
    return float(np.mean(wins))


@pytest.mark.parametrize("model_name, extra", [("mf", {}), ("lightgcn", {"n_layers": 2}),
                                               ("simgcl", {"n_layers": 2})])  # SimGCL: no layer 0 but cold items
def test_cold_items_get_meaningful_scores_from_features(cold_split, model_name, extra):
    split, cold = cold_split
    assert split.train_matrix[:, cold].nnz == 0
    feats = create_model(model_name, seed=0, item_tower="features", **FAST, **extra).fit(split, progress=False)
    ids = create_model(model_name, seed=0, **FAST, **extra).fit(split, progress=False)
    auc_feats, auc_ids = _topic_auc(feats, split, cold), _topic_auc(ids, split, cold)
    assert auc_feats > 0.8, auc_feats  # genres carry the planted topic
    assert abs(auc_ids - 0.5) < 0.15, auc_ids  # an ID table knows nothing of unseen items


def test_explicit_feature_vectors_and_shape_check(split):
    feats = item_feature_matrix(split.dataset)
    m = create_model("mf", seed=0, item_tower="id+features", item_features=feats, **{**FAST, "epochs": 2})
    m.fit(split, progress=False)
    assert m.score(np.array([0])).shape == (1, split.n_items)
    with pytest.raises(ConfigError, match="item features must have shape"):
        create_model("mf", item_tower="features", item_features=feats[:5], **FAST).fit(split, progress=False)
    with pytest.raises(ConfigError, match="item_tower must be one of"):
        create_model("mf", item_tower="text", **FAST).fit(split, progress=False)


@pytest.mark.parametrize("fusion", ["add", "concat"])
def test_profile_fusion_trains_and_round_trips(split, tmp_path, fusion):
    rng = np.random.default_rng(0)
    topic = split.dataset.user_topic
    user_prof = np.eye(6, dtype=np.float32)[topic] + 0.1 * rng.standard_normal((split.n_users, 6)).astype(np.float32)
    item_prof = rng.standard_normal((split.n_items, 8)).astype(np.float32)
    m = create_model("lightgcn", seed=0, user_profiles=user_prof, item_profiles=item_prof, fusion=fusion,
                     item_tower="features", n_layers=1, **{**FAST, "epochs": 3}).fit(split, progress=False)
    m.save(tmp_path / "m")
    loaded = type(m).load(tmp_path / "m")
    np.testing.assert_allclose(loaded.score(np.arange(5)), m.score(np.arange(5)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loaded.arrays["user_profiles"], user_prof)


@pytest.mark.parametrize("kind", ["features", "id+features"])
def test_tower_rows_by_index_equal_all_rows_and_their_gradients(kind):
    """Indexing runs the MLPs once per distinct row; values and gradients equal the full pass's rows."""
    import torch

    from recfuse.models.towers import Tower

    rng = np.random.default_rng(0)
    feats, profs = rng.normal(size=(9, 5)), rng.normal(size=(9, 4))
    index = torch.as_tensor(rng.integers(0, 9, size=(6, 7)))  # repeated rows, a (B, K) shape
    grads = []
    for by_index in (True, False):
        torch.manual_seed(0)
        tower = Tower(9, 3, kind, features=feats, profiles=profs, hidden=[8], fusion="concat")
        out = tower(index) if by_index else tower()[index]
        assert out.shape == (6, 7, 3)
        (out * torch.arange(out.numel(), dtype=out.dtype).view(out.shape)).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in tower.parameters()]))
    (a, ga), (b, gb) = grads
    torch.testing.assert_close(a, b)
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y)
