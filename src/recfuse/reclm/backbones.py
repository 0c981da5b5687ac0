"""Text-empowered backbones (R2, R3) and their evaluation (R9).

* **Base**: items represented from their text features through an MLP (``item_tower="features"``; the
  backbone's ``id+features`` adds an item ID table), users by ID embeddings: an item never seen in
  training is scored through its features.
* **Augment**: Base plus profile embeddings fused as eq. 2 (``Tower``'s profile MLP, sum or concat),
  user profiles and / or item profiles (the ablations drop one).

Backbones are the registered direct models (BiasMF, NeuMF, LightGCN, SGL, SimGCL, ...), which accept
``item_features``, ``user_profiles`` and ``item_profiles``; training is cached by content (stages).

Evaluation (all-rank, training and validation items of the user excluded):

* **full-shot**: test interactions with items seen in training, ranked among all items seen in training;
* **zero-shot**: test interactions with items never seen in training, ranked among those cold items.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from recfuse.data.splits import Split, Stage
from recfuse.eval.ranking import EvalResult, evaluate_full_ranking
from recfuse.models.base import Recommender
from recfuse.models.fitting import FitLog, fit_backbone

log = logging.getLogger(__name__)

SETTINGS = ("full_shot", "zero_shot")


def text_backbone_params(item_features: np.ndarray | None, params: dict[str, Any]) -> dict[str, Any]:
    """A backbone's hyper-parameters with its item tower: text features when given, else item IDs."""
    return {"item_tower": "features" if item_features is not None else "id", **params}


def fit_text_backbone(name: str, params: dict[str, Any], split: Split, seed: int, item_features: np.ndarray | None,
                      user_profiles: np.ndarray | None = None, item_profiles: np.ndarray | None = None,
                      progress: bool = False, label: str = "base") -> tuple[Recommender, FitLog]:
    """Train (or load from the stage cache: :func:`recfuse.models.fitting.fit_backbone`) backbone ``name``
    with text item features and optional profile embeddings."""
    return fit_backbone(name, split, seed, params=text_backbone_params(item_features, params),
                        arrays={"item_features": item_features, "user_profiles": user_profiles,
                                "item_profiles": item_profiles}, label=label, progress=progress)


def setting_masks(split: Split, stage: Stage = "test") -> dict[str, np.ndarray]:
    """The item pool of each setting: warm items (full-shot), cold items of ``stage`` (zero-shot)."""
    warm = split.train_item_mask
    cold = np.zeros(split.n_items, dtype=bool)
    cold[split.cold_items(stage)] = True
    return {"full_shot": warm, "zero_shot": cold}


def evaluate(model: Recommender, split: Split, ks: list[int], stage: Stage = "test",
             metrics: tuple[str, ...] = ("recall", "ndcg")) -> dict[str, EvalResult]:
    """All-rank Recall / NDCG@ks in both settings on ``stage`` (validation for selection, test once).

    Each result's ``info["pool_items"]`` is the size of the ranked pool: where it is at most k, every
    candidate is in the top k and Recall@k is 1 whatever the model (ML-100K's test period brings ~20 new
    items), which the report marks as uninformative.
    """
    out = {}
    history, truth = split.history(stage), split.ground_truth(stage)
    for setting, mask in setting_masks(split, stage).items():
        if not mask.any():
            continue
        res = evaluate_full_ranking(lambda u: model.score(u), history, truth, ks=list(ks),
                                    metrics=list(metrics), item_mask=mask)
        if len(res.users) == 0:  # e.g. zero-shot where no user holds a cold item: no number, not a NaN row
            log.warning("%s: no user to evaluate in the %s setting on %s; the setting is left out", type(model).__name__,
                        setting, stage)
            continue
        res.info["pool_items"] = int(mask.sum())
        out[setting] = res
    return out


def summary(results: dict[str, EvalResult]) -> dict[str, Any]:
    """{setting: {metric@k: mean, "users": n}}."""
    return {s: {**{k: float(v) for k, v in r.mean().items()}, "users": len(r.users)}
            for s, r in results.items()}
