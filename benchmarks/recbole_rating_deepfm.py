"""RecBole's DeepFM with a squared-error loss on ML-100K, leave-one-out by time (the side-by-side anchor).

Runs in an interpreter that has RecBole and its dependencies (not recfuse's); prints one JSON line
``{"valid_rmse", "test_rmse", "test_mae", "fit_seconds", ...}`` last. RecBole's own defaults for
DeepFM otherwise (embedding 10, MLP [128, 128, 128], dropout 0.2, Adam 1e-3, batch 2048), early
stopping on validation RMSE.

    .recbole-venv/bin/python benchmarks/recbole_rating_deepfm.py --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

# RecBole 1.2.1 reloads its own best checkpoint (written by this run) with torch.load, whose default became
# weights_only=True in torch 2.6; that file holds RecBole's config object, so allow it for this process.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import recbole
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.context_aware_recommender import DeepFM
from recbole.trainer import Trainer
from recbole.utils import init_seed
from torch import nn


class DeepFMSquaredError(DeepFM):
    """DeepFM regressing the rating: MSE loss, raw output as the prediction."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.loss = nn.MSELoss()

    def predict(self, interaction):
        return self.forward(interaction)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--stopping-step", type=int, default=10)
    args = ap.parse_args()

    _patch_token_seq_remap()
    data_root = Path(recbole.__file__).parent / "dataset_example"
    work = Path(tempfile.mkdtemp(prefix="recbole-deepfm-"))
    os.chdir(work)  # RecBole writes log/ and saved/ under the working directory
    config = Config(model=DeepFMSquaredError, dataset="ml-100k", config_dict={
        "data_path": str(data_root),
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"],
                     "user": ["user_id", "age", "gender", "occupation", "zip_code"],
                     "item": ["item_id", "release_year", "class"]},
        "LABEL_FIELD": "rating",
        "threshold": None,  # the context-aware ml-100k preset binarises ratings at 4
        "normalize_all": False,  # ml-100k.yaml min-max scales float fields, the rating label included
        # DeepFM.yaml's defaults (a subclass's name finds no yaml of its own)
        "embedding_size": 10, "mlp_hidden_size": [128, 128, 128], "dropout_prob": 0.2,
        "train_neg_sample_args": None,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "labeled"},
        "metrics": ["RMSE", "MAE"],
        "valid_metric": "RMSE",
        "seed": args.seed,
        "reproducibility": True,
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "checkpoint_dir": str(work / "saved"),
        "show_progress": False,
        "device": "cpu",
        "use_gpu": False,
    })
    init_seed(config["seed"], config["reproducibility"])
    logging.basicConfig(level=logging.WARNING)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = DeepFMSquaredError(config, train.dataset).to(config["device"])
    trainer = Trainer(config, model)
    start = time.perf_counter()
    _, valid_result = trainer.fit(train, valid, saved=True, show_progress=False, verbose=False)
    fit_seconds = time.perf_counter() - start
    test_result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    print(json.dumps({"valid_rmse": float(valid_result["rmse"]), "test_rmse": float(test_result["rmse"]),
                      "test_mae": float(test_result["mae"]), "fit_seconds": fit_seconds,
                      "recbole": recbole.__version__, "n_test": len(test.dataset)}))
    sys.stdout.flush()


def _patch_token_seq_remap() -> None:
    """RecBole 1.2.1 splits token_seq columns with ``Series.agg(len)``, which pandas >= 3 applies to the whole
    column; remap them element-wise instead (same ids as with older pandas)."""
    import numpy as np
    import pandas as pd
    from recbole.data.dataset import dataset as rb_dataset
    from recbole.utils import FeatureType

    def _remap(self, remap_list):
        if len(remap_list) == 0:
            return
        tokens = [feat[field].values if ftype == FeatureType.TOKEN else
                  np.concatenate([np.asarray(v) for v in feat[field].tolist()])
                  for feat, field, ftype in remap_list]
        split_point = np.cumsum([len(t) for t in tokens])[:-1]
        new_ids_list, mp = pd.factorize(np.concatenate(tokens))
        new_ids_list = np.split(new_ids_list + 1, split_point)
        mp = np.array(["[PAD]"] + list(mp))
        token_id = {t: i for i, t in enumerate(mp)}
        for (feat, field, ftype), new_ids in zip(remap_list, new_ids_list):
            if field not in self.field2id_token:
                self.field2id_token[field] = mp
                self.field2token_id[field] = token_id
            if ftype == FeatureType.TOKEN:
                feat[field] = new_ids
            else:
                lengths = np.array([len(v) for v in feat[field].tolist()])
                feat[field] = pd.Series(np.split(new_ids, np.cumsum(lengths)[:-1]), index=feat.index, dtype=object)

    rb_dataset.Dataset._remap = _remap


if __name__ == "__main__":
    main()
