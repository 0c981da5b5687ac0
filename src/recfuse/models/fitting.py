"""Training a backbone as a cached stage: the one place both methods (and the CLI) fit a recommender.

A fit is keyed by the model (name, hyper-parameters, code revision), the seed, the split's content, the
dataset's item feature names, the fingerprints of arrays handed to the constructor (text features,
profile embeddings) and of the LLM's augmentation (extra BPR triples, sequence insertions): a rerun, or
another method asking for the same fit, loads it instead of training again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.data.splits import Split
from recfuse.io import fingerprint, read_json, write_json
from recfuse.models.base import Recommender, create_model, get_model_class, model_cache_key
from recfuse.stages import stage_dir


@dataclass
class FitLog:
    """What a fit recorded: wall seconds, per-epoch seconds, the epoch early stopping kept."""

    seconds: float
    label: str = "base"
    epoch_seconds: list[float] = field(default_factory=list)
    mean_epoch_seconds: float | None = None
    best_epoch: int | None = None
    best_valid: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitLog:
        return cls(seconds=float(data["seconds"]), label=str(data.get("label", "base")),
                   epoch_seconds=list(data.get("epoch_seconds") or []),
                   mean_epoch_seconds=data.get("mean_epoch_seconds"), best_epoch=data.get("best_epoch"),
                   best_valid=data.get("best_valid"))


def fit_backbone(name: str, split: Split, seed: int, *, params: dict[str, Any] | None = None,
                 arrays: dict[str, np.ndarray | None] | None = None, extra_triples: np.ndarray | None = None,
                 insertions: np.ndarray | None = None, label: str = "base",
                 progress: bool = False) -> tuple[Recommender, FitLog]:
    """Train (or load from the stage cache) backbone ``name`` on ``split``.

    ``params`` are hyper-parameters, ``arrays`` constructor inputs such as ``item_features`` or
    ``user_profiles`` (None entries are left out); ``extra_triples`` (direct task) and ``insertions``
    (sequential task) are the LLM's data augmentation, passed to :meth:`Recommender.fit`. ``label`` only
    names the fit in its log.
    """
    params = dict(params or {})
    given = {k: v for k, v in (arrays or {}).items() if v is not None}
    augmentation = {k: v for k, v in (("extra_triples", extra_triples), ("insertions", insertions)) if v is not None}
    key = {"backbone": name, "params": params, "seed": seed, "split": split.fingerprint(),
           "features": split.dataset.item_features.names,
           "arrays": {k: fingerprint(v) for k, v in given.items()},
           "augmentation": {k: fingerprint(v) for k, v in augmentation.items()}, **model_cache_key(name)}

    def build(tmp: Path) -> None:
        model = create_model(name, seed=seed, **given, **params)
        start = time.perf_counter()
        model.fit(split, progress=progress, **augmentation)
        model.save(tmp / "model")
        trained = dict(getattr(model, "train_log", {}) or {})
        log = FitLog(time.perf_counter() - start, label, list(trained.get("epoch_seconds", [])),
                     trained.get("mean_epoch_seconds"), trained.get("best_epoch"), trained.get("best_valid"))
        write_json(tmp / "train.json", asdict(log))

    d = stage_dir("backbone", key, build)
    return get_model_class(name).load(d / "model"), FitLog.from_dict(read_json(d / "train.json"))
