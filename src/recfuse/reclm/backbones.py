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

import time
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.data.splits import Split
from recfuse.eval.ranking import EvalResult, evaluate_full_ranking
from recfuse.io import fingerprint, read_json, write_json
from recfuse.models.base import Recommender, create_model, get_model_class, model_cache_key
from recfuse.stages import stage_dir

SETTINGS = ("full_shot", "zero_shot")


def fit_text_backbone(name: str, params: dict, split: Split, seed: int, item_features: np.ndarray | None,
                      user_profiles: np.ndarray | None = None, item_profiles: np.ndarray | None = None,
                      progress: bool = False, label: str = "base") -> tuple[Recommender, dict]:
    """Train (or load from the stage cache) backbone ``name`` with text item features and optional profiles."""
    params = {"item_tower": "features" if item_features is not None else "id", **params}
    arrays = {"item_features": item_features, "user_profiles": user_profiles, "item_profiles": item_profiles}
    key = {"backbone": name, "params": params, "seed": seed, "split": split.fingerprint(), "label": label,
           "arrays": {k: fingerprint(v) for k, v in arrays.items() if v is not None}, **model_cache_key(name)}

    def build(tmp: Path) -> None:
        model = create_model(name, seed=seed, **{k: v for k, v in arrays.items() if v is not None}, **params)
        start = time.perf_counter()
        model.fit(split, progress=progress)
        model.save(tmp / "model")
        log = dict(getattr(model, "train_log", {}) or {})
        write_json(tmp / "train.json", {"seconds": time.perf_counter() - start, "label": label,
                                        "epoch_seconds": log.get("epoch_seconds", []),
                                        "mean_epoch_seconds": log.get("mean_epoch_seconds"),
                                        "best_epoch": log.get("best_epoch"), "best_valid": log.get("best_valid")})

    d = stage_dir("reclm-backbone", key, build)
    return get_model_class(name).load(d / "model"), read_json(d / "train.json")


def setting_masks(split: Split, stage: str = "test") -> dict[str, np.ndarray]:
    """The item pool of each setting: warm items (full-shot), cold items of ``stage`` (zero-shot)."""
    warm = split.train_item_mask
    cold = np.zeros(split.n_items, dtype=bool)
    cold[split.cold_items(stage)] = True
    return {"full_shot": warm, "zero_shot": cold}


def evaluate(model: Recommender, split: Split, ks: list[int], stage: str = "test",
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
        res.info["pool_items"] = int(mask.sum())
        out[setting] = res
    return out


def summary(results: dict[str, EvalResult]) -> dict[str, Any]:
    """{setting: {metric@k: mean, "users": n}}."""
    return {s: {**{k: float(v) for k, v in r.mean().items()}, "users": len(r.users)}
            for s, r in results.items()}
