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


def feature_matrix(table: FeatureTable, max_categories: int = 2000) -> np.ndarray:
    """A dense float matrix from side features: one-hot / multi-hot categorical and multi-valued
    features (up to ``max_categories`` values each), standardised numeric features (missing -> 0).

    Text features are skipped: encode them with a text encoder and pass the vectors instead.
    """
    blocks: list[np.ndarray] = []
    for f in table:
        if f.kind in ("categorical", "multi"):
            if len(f.require_vocab()) > max_categories:
                continue
            hot = f.multi_hot().toarray()[:, 1:]  # drop the "missing" column
            if f.kind == "multi":
                hot = hot / np.maximum(hot.sum(axis=1, keepdims=True), 1.0)
            blocks.append(hot)
        elif f.kind == "numeric":
            v = f.require_values().astype(np.float64)
            ok = ~np.isnan(v)
            if ok.sum() < 2:
                continue
            z = np.zeros_like(v)
            std = v[ok].std() or 1.0
            z[ok] = (v[ok] - v[ok].mean()) / std
            blocks.append(z[:, None])
    if not blocks:
        raise ConfigError("the dataset has no categorical or numeric side features to build a feature tower "
                          "from; pass feature vectors (e.g. text embeddings) explicitly")
    return np.hstack(blocks).astype(np.float32)


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
