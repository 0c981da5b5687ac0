"""The feature layer shared by the rating backbones.

A :class:`FeatureSchema` turns a :class:`~recfuse.data.Dataset` into *fields*: the user id, the item id,
and every categorical, multi-valued or numeric column of ``dataset.user_features`` and
``dataset.item_features`` (text columns are skipped). Nothing is named in code: an attribute added
later (an LLM-supplied ``director``, Llama4Rec L4c) becomes one more field on the next ``fit``.

* categorical -> one value per row (code 0 = missing has its own embedding);
  a column named in ``prefixes`` (default ``zip_code``: 2) is first cut to its leading characters;
* multi-valued (genres) -> up to ``max_values`` codes per row, mean-pooled;
* numeric (age, year) -> quantile buckets (NaN = bucket 0).

Each user / item becomes a fixed-width row of *slots* (global embedding indices and pooling weights
that sum to one per field), so a batch of (user, item) pairs is two row gathers. :class:`FieldEmbedding`
holds one embedding table (and one first-order weight table) over all fields and returns
``(batch, n_fields, dim)`` field embeddings plus the first-order term.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from recfuse.data.dataset import MISSING, Dataset, Feature
from recfuse.errors import ConfigError

DEFAULT_PREFIXES: dict[str, int] = {"zip_code": 2, "zip": 2}


@dataclass
class FieldSpec:
    """One field: its name (``user_id``, ``item.genres``, ...), side, kind and value labels."""

    name: str
    side: str  # "user" or "item"
    kind: str  # "id", "categorical", "multi" or "numeric"
    vocab: list[str]  # label of each embedding row of this field; row 0 = missing / padding
    width: int = 1  # slots per row (the most values a multi-valued row keeps)
    source: str = ""  # the feature's name in its table ("" for ids)
    edges: list[float] | None = None  # numeric: bucket edges
    prefix: int | None = None  # categorical: leading characters kept

    @property
    def size(self) -> int:
        return len(self.vocab)


@dataclass
class FeatureConfig:
    """How columns become fields (all optional)."""

    numeric_buckets: int = 10
    prefixes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PREFIXES))
    #: left out: a feature name (either side), a field name (``item.year``) or ``user_id`` / ``item_id``
    exclude: list[str] = field(default_factory=list)
    max_values: int = 32
    use_ids: bool = True


class FeatureSchema:
    """The fields of a dataset and each user's / item's encoded slots (global indices + weights)."""

    def __init__(self, fields: list[FieldSpec], user_index: np.ndarray, user_weight: np.ndarray,
                 item_index: np.ndarray, item_weight: np.ndarray):
        self.fields = fields
        self.user_index, self.user_weight = user_index, user_weight
        self.item_index, self.item_weight = item_index, item_weight

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def from_dataset(cls, dataset: Dataset, config: FeatureConfig | Mapping | None = None) -> FeatureSchema:
        """Fields for every usable column of the dataset's user and item feature tables."""
        if config is None:
            config = FeatureConfig()
        elif isinstance(config, Mapping):
            config = FeatureConfig(**config)
        if config.numeric_buckets < 1:
            raise ConfigError(f"numeric_buckets must be at least 1, got {config.numeric_buckets}")
        sides = {"user": (dataset.users.ids, dataset.user_features), "item": (dataset.items.ids, dataset.item_features)}
        fields: list[FieldSpec] = []
        codes: list[np.ndarray] = []
        for side, (ids, table) in sides.items():
            if config.use_ids and f"{side}_id" not in config.exclude:
                fields.append(FieldSpec(f"{side}_id", side, "id", [MISSING, *map(str, ids)]))
                codes.append(np.arange(1, len(ids) + 1, dtype=np.int64)[:, None])
            for feat in table:
                if feat.kind == "text" or {feat.name, _field_name(side, feat.name)} & set(config.exclude):
                    continue
                spec, c = _encode(feat, side, config)
                fields.append(spec)
                codes.append(c)
        if not fields:
            raise ConfigError("no usable fields: ids are off and no categorical / multi / numeric features exist")
        offsets = np.cumsum([0] + [f.size for f in fields])
        out = {}
        for side, (ids, _) in sides.items():
            mine = [k for k, f in enumerate(fields) if f.side == side]
            out[side] = (np.concatenate([codes[k] + offsets[k] for k in mine], axis=1) if mine
                         else np.zeros((len(ids), 0), np.int64),
                         np.concatenate([_pool_weights(codes[k]) for k in mine], axis=1) if mine
                         else np.zeros((len(ids), 0), np.float32))
        return cls(fields, out["user"][0], out["user"][1], out["item"][0], out["item"][1])

    # -- layout -----------------------------------------------------------------------------------
    @property
    def n_fields(self) -> int:
        return len(self.fields)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.fields)

    def slot_fields(self) -> np.ndarray:
        """Field number of each slot of a concatenated (user slots, item slots) row."""
        return np.concatenate([np.full(f.width, i, np.int64) for i, f in enumerate(self.fields)])

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"no field '{name}' (have: {', '.join(self.field_names)})")

    def describe(self) -> list[dict]:
        return [{"name": f.name, "kind": f.kind, "values": f.size - 1, "width": f.width} for f in self.fields]

    # -- persistence ------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """The field definitions (vocabularies included); the slot arrays travel with the weights."""
        return {"fields": [asdict(f) for f in self.fields]}

    @classmethod
    def from_json(cls, obj: dict, arrays: Mapping[str, np.ndarray]) -> FeatureSchema:
        fields = [FieldSpec(**f) for f in obj["fields"]]
        return cls(fields, *(np.asarray(arrays[k]) for k in ("user_index", "user_weight", "item_index", "item_weight")))


def _field_name(side: str, name: str) -> str:
    return f"{side}.{name}"


def _encode(feat: Feature, side: str, config: FeatureConfig) -> tuple[FieldSpec, np.ndarray]:
    """A field spec and a (rows, width) code matrix (0 = missing / padding) of one feature column."""
    name = _field_name(side, feat.name)
    if feat.kind == "categorical":
        codes = feat.require_codes()
        prefix = config.prefixes.get(feat.name)
        if prefix:
            labels = [v[:prefix] for v in feat.require_vocab()[1:]]
            vocab = sorted(set(labels))
            position = {v: k + 1 for k, v in enumerate(vocab)}
            remap = np.array([0] + [position[v] for v in labels], dtype=np.int64)
            return FieldSpec(name, side, "categorical", [MISSING, *vocab], 1, feat.name, prefix=prefix), \
                remap[codes][:, None]
        return FieldSpec(name, side, "categorical", list(feat.require_vocab()), 1, feat.name), codes[:, None].copy()
    if feat.kind == "multi":
        codes, offsets = feat.require_codes(), feat.require_offsets()
        lengths = np.diff(offsets)
        width = int(max(1, min(config.max_values, lengths.max(initial=0))))
        mat = np.zeros((len(lengths), width), np.int64)
        for r, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:])):
            vals = codes[lo:min(hi, lo + width)]
            mat[r, :len(vals)] = vals
        return FieldSpec(name, side, "multi", list(feat.require_vocab()), width, feat.name), mat
    if feat.kind == "numeric":
        vals = feat.require_values()
        edges = _bucket_edges(vals, config.numeric_buckets)
        labels = [MISSING] + [_bucket_label(edges, b) for b in range(len(edges) + 1)]
        code = np.where(np.isnan(vals), 0, np.searchsorted(edges, np.nan_to_num(vals), side="right") + 1)
        return FieldSpec(name, side, "numeric", labels, 1, feat.name, edges=[float(e) for e in edges]), \
            code.astype(np.int64)[:, None]
    raise ConfigError(f"feature '{feat.name}' has kind {feat.kind!r}, which the rating models cannot use")


def _bucket_edges(values: np.ndarray, n_buckets: int) -> np.ndarray:
    """Edges of at most ``n_buckets`` quantile buckets (each distinct value its own bucket when few)."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return np.zeros(0)
    uniq = np.unique(v)
    if len(uniq) <= n_buckets:
        return uniq[1:]
    return np.unique(np.quantile(v, np.linspace(0, 1, n_buckets + 1)[1:-1]))


def _bucket_label(edges: np.ndarray, b: int) -> str:
    lo = "-inf" if b == 0 else f"{edges[b - 1]:g}"
    hi = "inf" if b == len(edges) else f"{edges[b]:g}"
    return f"[{lo}, {hi})"


def _pool_weights(codes: np.ndarray) -> np.ndarray:
    """Mean-pooling weights of a (rows, width) code block: 1/count on used slots; empty rows use slot 0."""
    used = codes > 0
    used[:, 0] |= ~used.any(axis=1)  # an empty row pools the field's "missing" embedding (code 0)
    return (used / used.sum(axis=1, keepdims=True)).astype(np.float32)


class FieldEmbedding(nn.Module):
    """One embedding per field value (plus a first-order weight), pooled per field for (user, item) pairs."""

    # buffers (registered in __init__)
    user_index: torch.Tensor
    user_weight: torch.Tensor
    item_index: torch.Tensor
    item_weight: torch.Tensor
    pool: torch.Tensor

    def __init__(self, schema: FeatureSchema, dim: int, init_std: float = 0.01):
        super().__init__()
        self.n_fields, self.dim = schema.n_fields, dim
        self.embedding = nn.Embedding(schema.total_size, dim)
        self.linear = nn.Embedding(schema.total_size, 1)
        nn.init.normal_(self.embedding.weight, std=init_std)
        nn.init.zeros_(self.linear.weight)
        for name in ("user_index", "user_weight", "item_index", "item_weight"):
            self.register_buffer(name, torch.as_tensor(getattr(schema, name)))
        slot_field = torch.as_tensor(schema.slot_fields())
        pool = torch.zeros(schema.n_fields, len(slot_field))
        pool[slot_field, torch.arange(len(slot_field))] = 1.0
        self.register_buffer("pool", pool)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Field embeddings ``(B, n_fields, dim)`` and the first-order term ``(B,)``."""
        index = torch.cat([self.user_index[users], self.item_index[items]], dim=1)
        weight = torch.cat([self.user_weight[users], self.item_weight[items]], dim=1)
        emb = self.embedding(index) * weight.unsqueeze(-1)
        fields = torch.einsum("fl,bld->bfd", self.pool, emb)
        first = (self.linear(index).squeeze(-1) * weight).sum(dim=1)
        return fields, first

