"""Towers: where the initial (layer-0) user and item representations of a backbone come from.

* ``id``: a learned ID embedding table (the classic backbone).
* ``features``: an MLP over a fixed feature vector per row (RecLM R2: item text embeddings mapped
  into the model space), so an item never seen in training still gets a representation.
* ``id+features``: the sum of both.

:class:`Tower` also implements RecLM's profile fusion (R3, eq. 2): ``x = Psi(x_id_or_feat, T_pro(p))``
where ``p`` is a fixed profile embedding (LLM-written profiles through a text encoder), ``T_pro`` an
MLP and ``Psi`` a sum or a concatenation followed by a linear map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from recfuse.data.dataset import Dataset, FeatureTable
from recfuse.errors import ConfigError

TOWER_KINDS = ("id", "features", "id+features")
FUSIONS = ("add", "concat")


def mlp(in_dim: int, hidden: list[int], out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """Linear -> ReLU (-> dropout) blocks, then a final linear map to ``out_dim``."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class FeatureEncoder:
    """The encoding of :func:`feature_matrix`, fitted on one table and reusable on new rows.

    One-hot / multi-hot categorical and multi-valued features (up to ``max_categories`` values each; a
    multi-valued row is divided by its count), standardised numeric features (missing -> 0), in the
    table's order. :meth:`encode_rows` encodes rows never seen in the table (a new item's side features,
    given by name) exactly as :meth:`transform` encodes the table's own: the serving of cold-start items
    through a feature tower. ``to_json`` / ``from_json`` keep it beside a saved model.
    """

    def __init__(self, blocks: list[dict[str, Any]]):
        self.blocks = blocks

    @classmethod
    def fit(cls, table: FeatureTable, max_categories: int = 2000) -> FeatureEncoder:
        blocks: list[dict[str, Any]] = []
        for f in table:
            if f.kind in ("categorical", "multi"):
                if len(f.require_vocab()) > max_categories:
                    continue
                blocks.append({"name": f.name, "kind": f.kind, "vocab": list(f.require_vocab()[1:])})
            elif f.kind == "numeric":
                v = f.require_values().astype(np.float64)
                ok = ~np.isnan(v)
                if ok.sum() < 2:
                    continue
                blocks.append({"name": f.name, "kind": "numeric", "mean": float(v[ok].mean()),
                               "std": float(v[ok].std() or 1.0)})
        if not blocks:
            raise ConfigError("the dataset has no categorical or numeric side features to build a feature tower "
                              "from; pass feature vectors (e.g. text embeddings) explicitly")
        return cls(blocks)

    @property
    def dim(self) -> int:
        return sum(len(b["vocab"]) if b["kind"] != "numeric" else 1 for b in self.blocks)

    @property
    def names(self) -> list[str]:
        return [b["name"] for b in self.blocks]

    def transform(self, table: FeatureTable) -> np.ndarray:
        """The ``(table.n_rows, dim)`` float32 matrix of the table's rows."""
        out: list[np.ndarray] = []
        for b in self.blocks:
            f = table[b["name"]]
            if b["kind"] == "numeric":
                v = f.require_values().astype(np.float64)
                ok = ~np.isnan(v)
                z = np.zeros_like(v)
                z[ok] = (v[ok] - b["mean"]) / b["std"]
                out.append(z[:, None])
                continue
            hot = f.multi_hot().toarray()[:, 1:]  # drop the "missing" column
            if b["kind"] == "multi":
                hot = hot / np.maximum(hot.sum(axis=1, keepdims=True), 1.0)
            out.append(hot)
        return np.hstack(out).astype(np.float32)

    def encode_rows(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``(len(rows), dim)`` float32 vectors of rows given as ``{feature name: value}``: a category (str),
        a list of values (multi-valued), a number; an absent or unknown value encodes as missing."""
        out = np.zeros((len(rows), self.dim), dtype=np.float64)
        for r, row in enumerate(rows):
            col = 0
            for b in self.blocks:
                value = row.get(b["name"])
                if b["kind"] == "numeric":
                    number = _number(value)
                    if number is not None:
                        out[r, col] = (number - b["mean"]) / b["std"]
                    col += 1
                    continue
                index = {v: i for i, v in enumerate(b["vocab"])}
                values = value if isinstance(value, (list, tuple)) else ([] if value is None else [value])
                hits = sorted({index[str(v).strip()] for v in values if str(v).strip() in index})
                if b["kind"] == "categorical":
                    hits = hits[:1]
                for h in hits:
                    out[r, col + h] = 1.0 / (len(hits) if b["kind"] == "multi" else 1)
                col += len(b["vocab"])
        return out.astype(np.float32)

    def to_json(self) -> list[dict[str, Any]]:
        return [dict(b) for b in self.blocks]

    @classmethod
    def from_json(cls, blocks: list[dict[str, Any]]) -> FeatureEncoder:
        return cls([dict(b) for b in blocks])


def _number(value: Any) -> float | None:
    """A finite float from a number or numeric string; None for anything else (missing)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if np.isfinite(number) else None


def feature_matrix(table: FeatureTable, max_categories: int = 2000) -> np.ndarray:
    """A dense float matrix from side features: one-hot / multi-hot categorical and multi-valued
    features (up to ``max_categories`` values each), standardised numeric features (missing -> 0).

    Text features are skipped: encode them with a text encoder and pass the vectors instead.
    (:class:`FeatureEncoder` is this encoding, reusable on rows outside the table.)
    """
    return FeatureEncoder.fit(table, max_categories).transform(table)


def item_feature_matrix(dataset: Dataset) -> np.ndarray:
    """Item feature vectors from the dataset's item side features (see :func:`feature_matrix`)."""
    return feature_matrix(dataset.item_features)


def _as_tensor(x: np.ndarray | None, n: int, what: str) -> torch.Tensor | None:
    if x is None:
        return None
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != n:
        raise ConfigError(f"{what} must have shape ({n}, d), got {x.shape}")
    if not np.isfinite(x).all():
        raise ConfigError(f"{what} contains NaN or infinite values")
    return torch.from_numpy(x)


class Tower(nn.Module):
    """Layer-0 representations of ``n`` users or items: ID table, feature MLP, or both; optional profile fusion.

    ``forward(index=None)`` returns the (len(index) or n, dim) representations.
    """

    # buffers (registered in __init__; zero columns when absent)
    features: torch.Tensor
    profiles: torch.Tensor

    def __init__(self, n: int, dim: int, kind: str = "id", features: np.ndarray | None = None,
                 profiles: np.ndarray | None = None, hidden: list[int] | None = None, fusion: str = "add",
                 dropout: float = 0.0, init_std: float = 0.1, name: str = "item"):
        super().__init__()
        if kind not in TOWER_KINDS:
            raise ConfigError(f"{name}_tower must be one of {TOWER_KINDS}, not {kind!r}")
        if fusion not in FUSIONS:
            raise ConfigError(f"fusion must be one of {FUSIONS}, not {fusion!r}")
        if kind != "id" and features is None:
            raise ConfigError(f"{name}_tower={kind!r} needs {name} feature vectors")
        self.n, self.dim, self.kind, self.fusion = n, dim, kind, fusion
        hidden = [256] if hidden is None else list(hidden)
        self.id_table: nn.Embedding | None = None
        if kind in ("id", "id+features"):
            self.id_table = nn.Embedding(n, dim)
            nn.init.normal_(self.id_table.weight, std=init_std)
        feats = _as_tensor(features, n, f"{name} features") if kind != "id" else None
        self.register_buffer("features", feats if feats is not None else torch.zeros(n, 0), persistent=True)
        self.feature_mlp = mlp(self.features.shape[1], hidden, dim, dropout) if kind != "id" else None
        prof = _as_tensor(profiles, n, f"{name} profiles")
        self.register_buffer("profiles", prof if prof is not None else torch.zeros(n, 0), persistent=True)
        self.profile_mlp = mlp(self.profiles.shape[1], hidden, dim, dropout) if prof is not None else None
        self.fuse = nn.Linear(2 * dim, dim) if prof is not None and fusion == "concat" else None

    @property
    def uses_features(self) -> bool:
        return self.feature_mlp is not None or self.profile_mlp is not None

    def forward(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """Representations of all rows, or of ``index`` (any shape; the result adds a last ``dim`` axis).

        The MLPs run once per distinct row of ``index``: a BPR batch names the same few thousand items
        tens of thousands of times (positives and K negatives), and an item's representation does not
        depend on where it appears (rows of one item also share a dropout mask within a call).
        """
        if index is not None and self.uses_features:
            uniq, inverse = torch.unique(index, return_inverse=True)
            if len(uniq) < inverse.numel():
                return self._rows(uniq)[inverse]
        return self._rows(index)

    def feature_rows(self, features: torch.Tensor, profiles: torch.Tensor | None = None) -> torch.Tensor:
        """Layer-0 representations of rows outside the table, from their feature vectors alone (an item
        never seen in training: no ID row, the feature MLP only) and, for a tower that fuses profiles, their
        profile embeddings (rows like ``profiles``). Raises :class:`~recfuse.errors.ConfigError` for a tower
        without a feature MLP (``kind="id"``), or with profile fusion where no profiles are given."""
        if self.feature_mlp is None:
            raise ConfigError(f"the {self.kind!r} tower has no feature MLP: it cannot represent a row it was "
                              "not trained on (train with item_tower=features or id+features)")
        if features.ndim != 2 or features.shape[1] != self.features.shape[1]:
            raise ConfigError(f"feature vectors must have shape (n, {self.features.shape[1]}), got "
                              f"{tuple(features.shape)}")
        x = self.feature_mlp(features.to(self.features.device, self.features.dtype))
        if self.profile_mlp is None:
            return x
        if profiles is None:
            raise ConfigError("the tower fuses profiles: a new row needs its profile embedding too")
        if profiles.ndim != 2 or profiles.shape != (features.shape[0], self.profiles.shape[1]):
            raise ConfigError(f"profile embeddings must have shape ({features.shape[0]}, {self.profiles.shape[1]}), "
                              f"got {tuple(profiles.shape)}")
        p = self.profile_mlp(profiles.to(self.profiles.device, self.profiles.dtype))
        return x + p if self.fuse is None else self.fuse(torch.cat([x, p], dim=-1))

    @property
    def profile_dim(self) -> int:
        """Width of the fused profile embeddings (0: the tower fuses none)."""
        return int(self.profiles.shape[1]) if self.profile_mlp is not None else 0

    def _rows(self, index: torch.Tensor | None) -> torch.Tensor:
        def rows(t: torch.Tensor) -> torch.Tensor:
            return t if index is None else t[index]

        x: torch.Tensor | None = None
        if self.id_table is not None:
            x = self.id_table.weight if index is None else self.id_table(index)
        if self.feature_mlp is not None:
            f = self.feature_mlp(rows(self.features))
            x = f if x is None else x + f
        assert x is not None, "every tower kind has an ID table or a feature MLP"
        if self.profile_mlp is not None:
            p = self.profile_mlp(rows(self.profiles))
            x = x + p if self.fuse is None else self.fuse(torch.cat([x, p], dim=-1))
        return x
