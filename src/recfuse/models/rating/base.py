"""What the six rating backbones share: prediction layout, the MSE training loop, inference and persistence.

A prediction is ``global mean + first-order term + interaction(E)``: the first-order term holds one
learned weight per field value, so the user id and item id fields give the user and item biases;
``E`` are the pooled field embeddings of :class:`~recfuse.models.rating.features.FieldEmbedding` and
``interaction`` is the one thing a backbone defines (:meth:`RatingRecommender.build_interaction`).
Predictions are clipped to the training ratings' range.
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from recfuse.data.splits import Split
from recfuse.errors import ConfigError, DataError
from recfuse.io import load_npz, save_npz, write_json
from recfuse.models.base import Floats, Ids, RatingPredictor, get_model_class
from recfuse.models.rating.features import FeatureConfig, FeatureSchema, FieldEmbedding
from recfuse.models.torch_utils import EarlyStopping, reproducible, resolve_device, set_seed
from recfuse.models.torch_utils import progress as progress_bar

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.npz"


class RatingNet(nn.Module):
    """Field embeddings + first-order term + a backbone's interaction module, around the global mean."""

    def __init__(self, schema: FeatureSchema, dim: int, interaction: nn.Module, global_mean: float):
        super().__init__()
        self.fields = FieldEmbedding(schema, dim)
        self.interaction = interaction
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        emb, first = self.fields(users, items)
        return self.global_mean + first + self.interaction(emb)


class RatingRecommender(RatingPredictor):
    """Base of the feature-based rating models (task ``rating``): subclasses define :meth:`build_interaction`.

    Common hyper-parameters: ``embedding_dim``, ``epochs`` (upper bound; early stopping on validation
    RMSE with ``patience``), ``lr`` (Adam), ``batch_size``, ``weight_decay`` (L2 on all parameters),
    ``dropout``, ``seed``, ``device`` (``auto`` = CUDA when present), ``numeric_buckets`` and
    ``exclude_features`` (passed to the feature layer). Backbone-specific ones come as keyword arguments.
    """

    def __init__(self, *, embedding_dim: int = 16, epochs: int = 100, lr: float = 1e-3, batch_size: int = 1024,
                 weight_decay: float = 0.0, dropout: float = 0.2, seed: int = 0, device: str = "auto",
                 patience: int = 5, numeric_buckets: int = 10, exclude_features: list[str] | tuple = (),
                 eval_batch_size: int = 65536, **arch: Any):
        for name, value in (("embedding_dim", embedding_dim), ("epochs", epochs), ("batch_size", batch_size),
                            ("patience", patience)):
            if int(value) < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(embedding_dim=embedding_dim, epochs=epochs, lr=lr, batch_size=batch_size,
                         weight_decay=weight_decay, dropout=dropout, seed=seed, device=device, patience=patience,
                         numeric_buckets=numeric_buckets, exclude_features=list(exclude_features),
                         eval_batch_size=eval_batch_size, **{k: _jsonable(v) for k, v in arch.items()})
        self.device = resolve_device(device)
        self.schema: FeatureSchema | None = None
        self.net: RatingNet | None = None
        self.rating_range: tuple[float, float] = (-np.inf, np.inf)
        self.train_log: dict[str, Any] = {}

    # -- what a backbone defines ------------------------------------------------------------------
    @abstractmethod
    def build_interaction(self, n_fields: int, dim: int) -> nn.Module:
        """The module mapping field embeddings ``(B, n_fields, dim)`` to a ``(B,)`` rating offset."""

    # -- training ---------------------------------------------------------------------------------
    def _build(self, schema: FeatureSchema, global_mean: float) -> RatingNet:
        self.schema = schema
        dim = int(self.params["embedding_dim"])
        net = self.net = RatingNet(schema, dim, self.build_interaction(schema.n_fields, dim), global_mean).to(self.device)
        return net

    @reproducible
    def fit(self, split: Split, *, extra_triples: Ids | None = None, insertions: Ids | None = None,
            progress: bool = True) -> Self:
        """Train with MSE on ``split.train`` ratings; early stopping on ``split.valid`` RMSE (test is never read).

        Neither ``extra_triples`` nor ``insertions`` applies to rating prediction: either raises
        :class:`~recfuse.errors.ConfigError`.
        """
        p = self.params
        train = split.train
        if train.rating is None:
            raise DataError("rating models need ratings; this split's training interactions have none",
                            field="rating")
        self.n_users, self.n_items = split.n_users, split.n_items
        gen = set_seed(int(p["seed"]))
        schema = FeatureSchema.from_dataset(split.dataset, FeatureConfig(
            numeric_buckets=int(p["numeric_buckets"]), exclude=list(p["exclude_features"])))
        self.rating_range = (float(train.rating.min()), float(train.rating.max()))
        net = self._build(schema, float(train.rating.mean()))
        dev = self.device
        users = torch.as_tensor(train.user, device=dev)
        items = torch.as_tensor(train.item, device=dev)
        ratings = torch.as_tensor(train.rating, dtype=torch.float32, device=dev)
        valid = split.valid if len(split.valid) and split.valid.rating is not None else None
        valid_rating = None if valid is None else valid.rating
        optim = torch.optim.Adam(net.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
        stopper = EarlyStopping(patience=int(p["patience"]), mode="min")
        log: dict[str, Any] = {"epoch_seconds": [], "train_loss": [], "valid_history": [], "best_epoch": None}
        bs, n = int(p["batch_size"]), len(ratings)
        bar = progress_bar(range(int(p["epochs"])), enabled=progress, desc=self.name)
        for epoch in bar:
            start = time.perf_counter()
            net.train()
            order = torch.randperm(n, generator=gen).to(dev)
            total = 0.0
            for lo in range(0, n, bs):
                idx = order[lo:lo + bs]
                loss = nn.functional.mse_loss(net(users[idx], items[idx]), ratings[idx])
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                total += float(loss.detach()) * len(idx)
            log["epoch_seconds"].append(time.perf_counter() - start)
            log["train_loss"].append(total / n)
            if valid is None or valid_rating is None:
                continue
            err = self.predict(valid.user, valid.item) - valid_rating
            rmse = float(np.sqrt(np.mean(err ** 2)))
            log["valid_history"].append(rmse)
            bar.set_postfix(valid_rmse=f"{rmse:.4f}")
            if stopper.step(rmse, epoch, net.state_dict()):
                break
        if stopper.best_state is not None:
            net.load_state_dict(stopper.best_state)
            log["best_epoch"] = stopper.best_epoch
        else:
            log["best_epoch"] = len(log["epoch_seconds"]) - 1
        log["best_valid_rmse"] = stopper.best
        self.train_log = log
        return self

    # -- inference --------------------------------------------------------------------------------
    def _require_fitted(self) -> RatingNet:
        if self.net is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or load() first")
        return self.net

    @torch.no_grad()
    def predict(self, users: Ids, items: Ids) -> Floats:
        """Predicted ratings of (user, item) pairs (internal ids), clipped to the training rating range."""
        net = self._require_fitted()
        users = np.ascontiguousarray(self._check_users(users))
        items = np.ascontiguousarray(self._check_items(items))
        if len(users) != len(items):
            raise ValueError(f"users and items differ in length ({len(users)} vs {len(items)})")
        net.eval()
        out = np.empty(len(users), np.float64)
        step = int(self.params["eval_batch_size"])
        for lo in range(0, len(users), step):
            u = torch.as_tensor(users[lo:lo + step], device=self.device)
            i = torch.as_tensor(items[lo:lo + step], device=self.device)
            out[lo:lo + step] = net(u, i).double().cpu().numpy()
        return np.clip(out, *self.rating_range)

    def user_embeddings(self) -> Floats:
        return self._id_embeddings("user")

    def item_embeddings(self) -> Floats:
        return self._id_embeddings("item")

    def _require_schema(self) -> FeatureSchema:
        if self.schema is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or load() first")
        return self.schema

    def _id_embeddings(self, side: str) -> Floats:
        net = self._require_fitted()
        schema = self._require_schema()
        names = schema.field_names
        if f"{side}_id" not in names:
            raise NotImplementedError(f"this model has no {side} id field")
        k = names.index(f"{side}_id")
        offset = sum(f.size for f in schema.fields[:k])
        rows = slice(offset + 1, offset + schema.fields[k].size)
        return net.fields.embedding.weight[rows].detach().cpu().numpy()

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``path/config.json`` (hyper-parameters, feature vocabularies) and ``path/weights.npz``."""
        net = self._require_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_npz(path / WEIGHTS_FILE, **{k: v.detach().cpu().numpy() for k, v in net.state_dict().items()})
        write_json(path / CONFIG_FILE, {
            "model": self.name, "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "params": self.params, "n_users": self.n_users, "n_items": self.n_items,
            "rating_range": list(self.rating_range), "schema": self._require_schema().to_json(),
            "train_log": self.train_log})

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Self:
        """Restore a model written by :meth:`save` (``device`` overrides the saved one)."""
        path = Path(path)
        if not (path / CONFIG_FILE).exists() or not (path / WEIGHTS_FILE).exists():
            raise FileNotFoundError(f"{path}: not a saved rating model (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        with open(path / CONFIG_FILE, encoding="utf-8") as fh:
            cfg = json.load(fh)
        model_cls = cls
        if cls is RatingRecommender:  # the base class loads whichever backbone was saved
            saved = get_model_class(cfg.get("class") or cfg["model"])
            if not issubclass(saved, cls):
                raise ConfigError(f"{path} holds a {saved.__qualname__}, not a feature-based rating model")
            model_cls = saved
        elif cfg.get("model") != cls.name:
            raise ConfigError(f"{path} holds a '{cfg.get('model')}' model, not '{cls.name}'")
        params = dict(cfg["params"])
        if device is not None:
            params["device"] = device
        model = model_cls(**params)
        state = {k: torch.from_numpy(v) for k, v in load_npz(path / WEIGHTS_FILE).items()}  # never pickled
        arrays = {k: state[f"fields.{k}"].numpy() for k in ("user_index", "user_weight", "item_index", "item_weight")}
        net = model._build(FeatureSchema.from_json(cfg["schema"], arrays), float(state["global_mean"]))
        net.load_state_dict(state)
        model.n_users, model.n_items = int(cfg["n_users"]), int(cfg["n_items"])
        low, high = cfg["rating_range"]
        model.rating_range = (low, high)
        model.train_log = cfg.get("train_log", {})
        return model


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
