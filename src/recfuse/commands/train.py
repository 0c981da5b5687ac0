"""``recfuse train``: train one backbone, evaluate it on the test split, write the results."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from recfuse.config import add_arguments, option, resolve, to_dict
from recfuse.data.loaders import load_dataset
from recfuse.data.splits import Split, Stage, kcore, make_split
from recfuse.errors import ConfigError, DataError
from recfuse.eval.metrics import check_ranking_metrics
from recfuse.eval.ranking import evaluate_full_ranking, evaluate_rating
from recfuse.eval.report import markdown_table, write_report
from recfuse.eval.stats import mean_std
from recfuse.models.base import available_models, create_model, get_model_class
from recfuse.models.training import TorchRecommender
from recfuse.models import runfolder
from recfuse.serving.texts import text_tower_features


@dataclass
class TrainConfig:
    """Train a recommender and evaluate it."""

    model: str = option("lightgcn", "recommender: a registered name or package.module:ClassName")
    dataset: str = option("ml-100k", "dataset name (ml-100k, ml-1m, ...) or folder")
    split: Literal["loo", "temporal", "predefined"] = option(
        "loo", "evaluation split: leave-one-out by time, global temporal, or the dataset's own files")
    valid_start: float | None = option(None, "temporal split: the first timestamp of the validation period (with "
                                             "--test-start; instead of the default fractions)")
    test_start: float | None = option(None, "temporal split: the first timestamp of the test period (with "
                                            "--valid-start)")
    valid_share: float = option(0.1, "predefined split without a validation file: the share of the training "
                                     "snapshot that becomes validation (never from test; 0: none, no early stopping)",
                                min=0, max=1)
    kcore: int = option(0, "k-core filter before splitting (0: none)")
    seeds: list[int] = option([0], "random seeds; several runs report mean and std")
    ks: list[int] = option([3, 5, 10], "ranking cut-offs k")
    metrics: list[str] = option(["hr", "ndcg"], "ranking metrics (hr, ndcg, recall, mrr, precision)")
    params: dict = option({}, "model hyper-parameter, e.g. --param epochs=50", flag="param")
    item_text: str = option("", "text tower: encode each item's title and text with this sentence encoder "
                                "(all-MiniLM-L6-v2, a folder, or hashing:DIM) into the item features of the "
                                "model's feature tower (item_tower id+features unless given), so that `recfuse "
                                "serve` scores items never seen in training from their text; empty: none")
    out: str = option("runs/train", "output folder (a sub-folder per dataset and model)")
    progress: bool = option(True, "show progress bars")

    def __post_init__(self) -> None:
        check_ranking_metrics(self.metrics, self.ks)  # before any seed trains
        if (self.valid_start is None) != (self.test_start is None):
            raise ConfigError("cut points by value need both --valid-start and --test-start")
        if self.valid_start is not None and self.split != "temporal":
            raise ConfigError("--valid-start/--test-start cut a temporal split: add --split temporal")
        if self.valid_start is not None and self.test_start is not None and self.valid_start > self.test_start:
            raise ConfigError(f"--valid-start ({self.valid_start:g}) is after --test-start ({self.test_start:g})")


def evaluate_model(model, split: Split, stage: Stage, ks: list[int], metrics: list[str]) -> dict[str, float]:
    """Test metrics of a fitted model: full ranking (training items excluded) or rating errors."""
    if getattr(model, "task", "direct") == "rating":
        part = split.part(stage)
        if part.rating is None:
            raise DataError("the interactions carry no ratings", field="rating")
        res = evaluate_rating(model.predict(part.user, part.item), part.rating, part.user)
        return {"rmse": res.info["rmse"], "mae": res.info["mae"]}
    res = evaluate_full_ranking(model.score, split.history(stage), split.ground_truth(stage), ks=ks, metrics=metrics)
    return res.mean()


def summarize_seeds(rows: list[dict], keys: tuple[str, ...]) -> tuple[dict, dict]:
    """Mean and std of every numeric column over seeds: (numeric summary row, 'mean ± std' display row)."""
    summary = {k: rows[0][k] for k in keys} | {"seed": "mean"}
    shown = {k: rows[0][k] for k in keys} | {"seeds": len(rows)}
    for key in rows[0]:
        if key in keys or key == "seed" or not all(isinstance(r.get(key), (int, float)) for r in rows):
            continue
        mean, std = mean_std([r[key] for r in rows])
        summary[key], summary[f"{key}_std"] = mean, std
        shown[key] = f"{mean:.4f} ± {std:.4f}"
    return summary, shown


def main(cfg: TrainConfig) -> dict:
    """Train ``cfg.model`` once per seed; returns and writes per-seed and mean rows."""
    model_class = get_model_class(cfg.model)  # fail fast on an unknown name
    if cfg.item_text and not issubclass(model_class, TorchRecommender):
        raise ConfigError(f"--item-text needs a model with an item tower (the direct backbones: mf, lightgcn, ...); "
                          f"{cfg.model!r} has none")
    dataset = load_dataset(cfg.dataset)
    if cfg.kcore:
        dataset = kcore(dataset, cfg.kcore)
    out = Path(cfg.out) / dataset.name / cfg.model.replace(":", "_").replace("/", "_")
    arrays: dict = {}
    side_features = None
    params = dict(cfg.params)
    if cfg.item_text:
        arrays["item_features"], side_features = text_tower_features(dataset, cfg.item_text)
        params.setdefault("item_tower", "id+features")
    rows = []
    for seed in cfg.seeds:
        cuts = {"valid_start": cfg.valid_start, "test_start": cfg.test_start, "inclusive": True} \
            if cfg.valid_start is not None else {}
        split = make_split(dataset, cfg.split, seed=seed, valid_share=cfg.valid_share, **cuts)
        model = create_model(cfg.model, seed=seed, **arrays, **params)
        start = time.perf_counter()
        model.fit(split, progress=cfg.progress)
        seconds = time.perf_counter() - start
        if seed == cfg.seeds[0]:
            first_split, first_model = split, model
        runfolder.write_model(out, seed, model)
        row = {"model": cfg.model, "seed": seed, **evaluate_model(model, split, "test", cfg.ks, cfg.metrics),
               "train_seconds": seconds}
        log = getattr(model, "train_log", {}) or {}
        if log.get("epoch_seconds"):
            row["seconds_per_epoch"] = float(np.mean(log["epoch_seconds"]))
            row["epochs"] = len(log["epoch_seconds"])
        if "best_epoch" in log:
            row["best_epoch"] = log["best_epoch"]
        rows.append(row)
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)),
              flush=True)
    summary, shown = summarize_seeds(rows, ("model",))
    table = rows + ([summary] if len(rows) > 1 else [])
    print(f"\n{cfg.model} on {dataset.name}, {split.protocol}, test split"  # first: a write that fails loses nothing
          + (f", mean ± std over {len(rows)} seeds:" if len(rows) > 1 else ":"))
    print(markdown_table([shown] if len(rows) > 1 else rows), flush=True)
    write_report(out, table, config=to_dict(cfg), title=f"{cfg.model} on {dataset.name} ({split.protocol})",
                 extra={"split": split.summary(), "dataset": dataset.describe()})
    # what `recfuse serve` needs, the manifest last: the folder is servable once it is there
    runfolder.write_dataset(out, first_split)
    runfolder.write_manifest(out, cfg.model, first_model, cfg.seeds, first_split, cfg.item_text, side_features,
                             settings=to_dict(cfg))
    print(f"results: {out}/results.json (+ .md, .csv, config.yaml); serve it: recfuse serve {out}")
    return {"rows": table, "out": str(out)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a backbone and evaluate it on the test split",
                       description="Train a recommender (`recfuse models` lists them) "
                                   "with early stopping on the validation split, then evaluate on the test split "
                                   "(full ranking, training items excluded; RMSE/MAE for rating models). The "
                                   "output folder also holds each seed's model, the id vocabularies and the "
                                   "settings: `recfuse serve OUT/<dataset>/<model>` serves it over HTTP.")
    add_arguments(p, TrainConfig)
    p.set_defaults(func=lambda args: main(resolve(TrainConfig, args)) and 0)

    m = sub.add_parser("models", help="list the registered recommenders",
                       description="List the registered recommenders and their tasks.")
    m.set_defaults(func=list_models)


def list_models(args: argparse.Namespace) -> int:
    rows = [{"model": name, "task": get_model_class(name).task,
             "description": (get_model_class(name).__doc__ or "").strip().split("\n")[0]}
            for name in available_models()]
    print(markdown_table(rows))
    print("Your own model: --model package.module:ClassName (a recfuse.models.base.Recommender subclass)")
    return 0
