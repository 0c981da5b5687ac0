"""The one dataset type: id vocabularies, sparse interactions, side features and item text.

Everything is held as flat numpy arrays (one entry per interaction, or one row per user/item);
user x item matrices exist only as ``scipy.sparse`` CSR matrices built on demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recfuse.errors import DataError, UnknownIdError
from recfuse.io import fingerprint

FeatureKind = Literal["categorical", "multi", "numeric", "text"]
MISSING = "<missing>"  # code 0 of every categorical / multi-valued feature


class Vocab:
    """External ids (always strings) to contiguous internal indices and back."""

    def __init__(self, ids: Iterable, kind: str = "id"):
        self.kind = kind
        self.ids = np.asarray([str(i) for i in ids], dtype=object)
        self._index = {ext: i for i, ext in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            dup = pd.Series(self.ids).duplicated()
            raise DataError(f"duplicate {kind} id {self.ids[dup.values][0]!r}", field=kind)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, ext: object) -> bool:
        return str(ext) in self._index

    def index(self, external: Iterable | str | int) -> np.ndarray:
        """Internal indices of external ids; raises :class:`UnknownIdError` naming the unknown ones."""
        if isinstance(external, (str, int, np.integer)):
            external = [external]
        keys = [str(e) for e in external]
        out = np.fromiter((self._index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        if (out < 0).any():
            raise UnknownIdError(self.kind, [k for k, o in zip(keys, out) if o < 0])
        return out

    def external(self, internal: Sequence[int] | np.ndarray | int) -> np.ndarray:
        """External ids of internal indices."""
        idx = np.asarray(internal, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise UnknownIdError(f"internal {self.kind} index", [int(i) for i in idx.ravel()
                                                                 if i < 0 or i >= len(self)])
        return self.ids[idx]

    def subset(self, keep: np.ndarray) -> Vocab:
        """A vocabulary of the kept internal indices (in their current order)."""
        return Vocab(self.ids[keep], self.kind)


@dataclass(frozen=True)
class Interactions:
    """Parallel arrays, one entry per interaction. ``rating`` / ``timestamp`` may be absent."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray | None = None
    timestamp: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "user", np.asarray(self.user, dtype=np.int64))
        object.__setattr__(self, "item", np.asarray(self.item, dtype=np.int64))
        n = len(self.user)
        if len(self.item) != n:
            raise ValueError("user and item arrays differ in length")
        for name in ("rating", "timestamp"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr, dtype=np.float32 if name == "rating" else np.float64)
                if len(arr) != n:
                    raise ValueError(f"{name} array differs in length from user array")
                object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.user)

    def take(self, index: np.ndarray) -> Interactions:
        """The interactions at ``index`` (a boolean mask or integer positions)."""
        return Interactions(
            self.user[index], self.item[index],
            None if self.rating is None else self.rating[index],
            None if self.timestamp is None else self.timestamp[index],
        )

    def concat(self, other: Interactions) -> Interactions:
        def cat(a, b):
            return None if a is None or b is None else np.concatenate([a, b])
        return Interactions(np.concatenate([self.user, other.user]), np.concatenate([self.item, other.item]),
                            cat(self.rating, other.rating), cat(self.timestamp, other.timestamp))

    def to_csr(self, n_users: int, n_items: int, values: Literal["binary", "rating"] = "binary") -> sp.csr_matrix:
        """User x item CSR matrix; duplicates collapse (binary: 1, rating: the last one)."""
        if values == "rating":
            if self.rating is None:
                raise DataError("the interactions carry no ratings", field="rating")
            # keep the last rating of a repeated (user, item) pair
            key = self.user * n_items + self.item
            _, last = np.unique(key[::-1], return_index=True)
            last = len(key) - 1 - last
            data, rows, cols = self.rating[last], self.user[last], self.item[last]
        else:
            rows, cols, data = self.user, self.item, np.ones(len(self), dtype=np.float32)
        m = sp.csr_matrix((data, (rows, cols)), shape=(n_users, n_items), dtype=np.float32)
        if values == "binary":
            m.data[:] = 1.0
        m.sort_indices()
        return m

    def counts_per_user(self, n_users: int) -> np.ndarray:
        return np.bincount(self.user, minlength=n_users)

    def counts_per_item(self, n_items: int) -> np.ndarray:
        return np.bincount(self.item, minlength=n_items)


@dataclass
class Feature:
    """One side-feature column over all users (or all items).

    * ``categorical``: ``codes`` int64, 0 = missing, ``vocab[code]`` the value.
    * ``multi``: multi-valued categorical (genres) as CSR: row r has ``codes[offsets[r]:offsets[r+1]]``.
    * ``numeric``: ``values`` float64, NaN = missing.
    * ``text``: ``values`` object array of str, ``""`` = missing.
    """

    name: str
    kind: FeatureKind
    values: np.ndarray | None = None
    codes: np.ndarray | None = None
    vocab: list[str] | None = None
    offsets: np.ndarray | None = None

    # the parts a kind holds, with a DataError naming the feature when it lacks one
    def _part(self, part: str) -> np.ndarray:
        value = getattr(self, part)
        if value is None:
            raise DataError(f"a {self.kind} feature has no {part}", field=self.name)
        return value

    def require_values(self) -> np.ndarray:
        """``values`` (numeric and text features)."""
        return self._part("values")

    def require_codes(self) -> np.ndarray:
        """``codes`` (categorical and multi-valued features)."""
        return self._part("codes")

    def require_offsets(self) -> np.ndarray:
        """``offsets`` (multi-valued features)."""
        return self._part("offsets")

    def require_vocab(self) -> list[str]:
        """``vocab`` (categorical and multi-valued features)."""
        if self.vocab is None:
            raise DataError(f"a {self.kind} feature has no vocab", field=self.name)
        return self.vocab

    @property
    def n_rows(self) -> int:
        if self.kind == "multi":
            return len(self.require_offsets()) - 1
        return len(self.require_codes() if self.kind == "categorical" else self.require_values())

    @staticmethod
    def categorical(name: str, values: Sequence[Any] | np.ndarray, vocab: Sequence[str] | None = None) -> Feature:
        """Encode raw values (None / NaN / '' = missing) as a categorical feature."""
        raw = pd.Series(list(values), dtype=object)
        missing = raw.isna() | (raw.astype(str).str.strip() == "")
        as_str = raw.astype(str).str.strip()
        if vocab is None:
            vocab = sorted(set(as_str[~missing]))
        lookup = {v: i + 1 for i, v in enumerate(vocab)}
        codes = np.array([0 if m else lookup.get(v, 0) for v, m in zip(as_str, missing)], dtype=np.int64)
        return Feature(name, "categorical", codes=codes, vocab=[MISSING, *vocab])

    @staticmethod
    def multi(name: str, values: Sequence[Sequence[str] | None]) -> Feature:
        """Encode lists of values (None = missing) as a multi-valued feature."""
        rows = [[str(v).strip() for v in (vals or []) if str(v).strip()] for vals in values]
        vocab = sorted({v for r in rows for v in r})
        lookup = {v: i + 1 for i, v in enumerate(vocab)}
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(r) for r in rows])
        codes = np.fromiter((lookup[v] for r in rows for v in r), dtype=np.int64, count=int(offsets[-1]))
        return Feature(name, "multi", codes=codes, vocab=[MISSING, *vocab], offsets=offsets)

    @staticmethod
    def numeric(name: str, values: Sequence[Any] | np.ndarray) -> Feature:
        return Feature(name, "numeric", values=pd.to_numeric(pd.Series(list(values)), errors="coerce")
                       .to_numpy(dtype=np.float64))

    @staticmethod
    def text(name: str, values: Sequence[Any] | np.ndarray) -> Feature:
        vals = ["" if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in values]
        return Feature(name, "text", values=np.asarray(vals, dtype=object))

    def row_values(self, row: int) -> list[str] | str | float:
        """Human-readable value of one row."""
        if self.kind == "categorical":
            codes = self.require_codes()
            return self.require_vocab()[codes[row]] if codes[row] else ""
        if self.kind == "multi":
            vocab, offsets = self.require_vocab(), self.require_offsets()
            return [vocab[c] for c in self.require_codes()[offsets[row]:offsets[row + 1]]]
        return self.require_values()[row]

    def take(self, rows: np.ndarray) -> Feature:
        """The feature restricted to ``rows`` (vocabularies kept)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.kind == "categorical":
            return replace(self, codes=self.require_codes()[rows])
        if self.kind == "multi":
            old_codes, old_offsets = self.require_codes(), self.require_offsets()
            lengths = np.diff(old_offsets)[rows]
            offsets = np.zeros(len(rows) + 1, dtype=np.int64)
            offsets[1:] = np.cumsum(lengths)
            codes = np.concatenate([old_codes[old_offsets[r]:old_offsets[r + 1]] for r in rows]) \
                if len(rows) else np.zeros(0, dtype=np.int64)
            return replace(self, codes=codes.astype(np.int64), offsets=offsets)
        return replace(self, values=self.require_values()[rows])

    def multi_hot(self) -> sp.csr_matrix:
        """Rows x vocabulary CSR indicator matrix (categorical and multi features)."""
        if self.kind == "categorical":
            codes = self.require_codes()
            n = len(codes)
            return sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), codes)),
                                 shape=(n, len(self.require_vocab())))
        if self.kind == "multi":
            codes, offsets = self.require_codes(), self.require_offsets()
            return sp.csr_matrix((np.ones(len(codes), np.float32), codes, offsets),
                                 shape=(len(offsets) - 1, len(self.require_vocab())))
        raise TypeError(f"feature '{self.name}' is {self.kind}, not categorical")

    def describe(self) -> str:
        if self.kind == "numeric":
            values = self.require_values()
            v = values[~np.isnan(values)]
            rng = f"{v.min():g}..{v.max():g}" if len(v) else "all missing"
            return f"numeric, {rng}, {np.isnan(values).mean():.1%} missing"
        if self.kind == "text":
            values = self.require_values()
            filled = np.array([bool(s) for s in values])
            lengths = [len(s) for s in values[filled]]
            return f"text, mean {np.mean(lengths) if lengths else 0:.0f} chars, {1 - filled.mean():.1%} missing"
        if self.kind == "categorical":
            return f"categorical, {len(self.require_vocab()) - 1} values, {(self.require_codes() == 0).mean():.1%} missing"
        per_row = np.diff(self.require_offsets())
        return f"multi-valued, {len(self.require_vocab()) - 1} values, mean {per_row.mean():.2f} per row"


class FeatureTable:
    """Named features over ``n_rows`` users or items."""

    def __init__(self, n_rows: int, features: Iterable[Feature] = ()):
        self.n_rows = n_rows
        self._features: dict[str, Feature] = {}
        for f in features:
            self.add(f)

    def add(self, feature: Feature) -> None:
        """Add (or replace) a feature; its length must match the table."""
        if feature.n_rows != self.n_rows:
            raise DataError(f"feature has {feature.n_rows} rows, the table {self.n_rows}", field=feature.name)
        self._features[feature.name] = feature

    def __getitem__(self, name: str) -> Feature:
        try:
            return self._features[name]
        except KeyError:
            raise KeyError(f"no feature '{name}' (have: {', '.join(self._features) or 'none'})") from None

    def __contains__(self, name: str) -> bool:
        return name in self._features

    def __iter__(self) -> Iterator[Feature]:
        return iter(self._features.values())

    def __len__(self) -> int:
        return len(self._features)

    @property
    def names(self) -> list[str]:
        return list(self._features)

    def of_kind(self, *kinds: FeatureKind) -> list[Feature]:
        return [f for f in self if f.kind in kinds]

    def take(self, rows: np.ndarray) -> FeatureTable:
        return FeatureTable(len(rows), [f.take(rows) for f in self])


SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}


@dataclass
class Dataset:
    """Users, items, their interactions and side information.

    ``predefined_split`` (one code per interaction: 0 train, 1 valid, 2 test) is set when the data
    came with its own train / validation / test files; :func:`recfuse.data.splits.predefined` uses it.
    """

    name: str
    users: Vocab
    items: Vocab
    interactions: Interactions
    user_features: FeatureTable = field(default=None)  # type: ignore[assignment]
    item_features: FeatureTable = field(default=None)  # type: ignore[assignment]
    predefined_split: np.ndarray | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.user_features is None:
            self.user_features = FeatureTable(len(self.users))
        if self.item_features is None:
            self.item_features = FeatureTable(len(self.items))
        if len(self.interactions) == 0:
            raise DataError("the dataset has no interactions", path=self.source or self.name)
        if self.user_features.n_rows != len(self.users) or self.item_features.n_rows != len(self.items):
            raise ValueError("feature tables do not match the vocabularies")
        if self.interactions.user.max() >= len(self.users) or self.interactions.item.max() >= len(self.items):
            raise ValueError("interaction indices exceed the vocabularies")

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def has_ratings(self) -> bool:
        return self.interactions.rating is not None

    @property
    def has_timestamps(self) -> bool:
        return self.interactions.timestamp is not None

    def item_text_fields(self) -> list[str]:
        """Names of the items' text features, ``title`` first."""
        names = [f.name for f in self.item_features.of_kind("text")]
        return sorted(names, key=lambda n: (n != "title", names.index(n)))

    def item_title(self, item: int) -> str:
        """A readable name of an internal item: its title, else its external id."""
        if "title" in self.item_features:
            title = self.item_features["title"].require_values()[item]
            if title:
                return title
        return f"item {self.items.ids[item]}"

    def item_description(self, item: int, fields: Sequence[str] | None = None) -> str:
        """The item's text and categorical side information in one line (for encoders and prompts)."""
        parts = [self.item_title(item)]
        for f in self.item_features:
            if f.name == "title" or (fields is not None and f.name not in fields):
                continue
            value = f.row_values(item)
            if isinstance(value, list):
                value = ", ".join(value)
            if isinstance(value, float):
                value = "" if np.isnan(value) else f"{value:g}"
            if value:
                parts.append(f"{f.name}: {value}")
        return "; ".join(parts)

    def item_brief(self, item: int, fields: Sequence[str] | None = None) -> str:
        """The item's title with its categorical side information in brackets: ``Toy Story (Animation,
        Comedy)``, short enough for histories in prompts. ``fields`` limits which features are shown
        (default: every categorical feature)."""
        values: list[str] = []
        for f in self.item_features.of_kind("categorical", "multi"):
            if fields is not None and f.name not in fields:
                continue
            value = f.row_values(item)
            values.extend(str(v) for v in (value if isinstance(value, list) else [value]) if v)
        title = self.item_title(item)
        return f"{title} ({', '.join(values)})" if values else title

    def user_brief(self, user: int, fields: Sequence[str] | None = None) -> str:
        """The user's side information in one line (``age: 24, gender: M, occupation: technician``), for
        prompts; empty when the dataset has none. ``fields`` limits which features are shown."""
        parts = []
        for f in self.user_features:
            if f.kind == "text" or (fields is not None and f.name not in fields):
                continue
            value = f.row_values(user)
            if isinstance(value, list):
                value = ", ".join(map(str, value))
            if isinstance(value, float):
                value = "" if np.isnan(value) else f"{value:g}"
            if value not in ("", None):
                parts.append(f"{f.name.replace('_', ' ')}: {value}")
        return ", ".join(parts)

    def filter(self, keep_interactions: np.ndarray, *, drop_unused: bool = True) -> Dataset:
        """A dataset with only the kept interactions; unused users and items dropped and reindexed."""
        inter = self.interactions.take(keep_interactions)
        split = None if self.predefined_split is None else self.predefined_split[keep_interactions]
        if len(inter) == 0:
            raise DataError("no interactions are left after filtering", path=self.source or self.name)
        users, items = self.users, self.items
        uf, itf = self.user_features, self.item_features
        if drop_unused:
            keep_u = np.unique(inter.user)
            keep_i = np.unique(inter.item)
            umap = np.full(self.n_users, -1, np.int64)
            umap[keep_u] = np.arange(len(keep_u))
            imap = np.full(self.n_items, -1, np.int64)
            imap[keep_i] = np.arange(len(keep_i))
            inter = Interactions(umap[inter.user], imap[inter.item], inter.rating, inter.timestamp)
            users, items = users.subset(keep_u), items.subset(keep_i)
            uf, itf = uf.take(keep_u), itf.take(keep_i)
        return Dataset(self.name, users, items, inter, uf, itf, split, self.source, list(self.notes))

    def fingerprint(self) -> str:
        """A content hash of everything a result can read (stage cache keys, kept seeds): the interactions, the
        users' and items' ids, every side feature's values (an edited title, or another LLM's item attributes,
        is another dataset) and the predefined split."""
        inter = self.interactions
        features = [[f.name, f.kind, *(part if part is not None else "" for part in
                                       (f.values, f.codes, f.vocab, f.offsets))]
                    for table in (self.user_features, self.item_features) for f in table]
        return fingerprint(self.name, inter.user, inter.item,
                           inter.rating if inter.rating is not None else "",
                           inter.timestamp if inter.timestamp is not None else "",
                           self.users.ids, self.items.ids, *(part for feature in features for part in feature),
                           self.predefined_split if self.predefined_split is not None else "")

    def describe(self) -> dict:
        """Counts, density and the side features found."""
        n = len(self.interactions)
        info = {
            "name": self.name,
            "source": self.source,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "density": n / (self.n_users * self.n_items),
            "ratings": None if self.interactions.rating is None else
            f"{self.interactions.rating.min():g}..{self.interactions.rating.max():g}",
            "timestamps": self.has_timestamps,
            "predefined_split": None if self.predefined_split is None else {
                k: int((self.predefined_split == v).sum()) for k, v in SPLIT_CODES.items()},
            "user_features": {f.name: f.describe() for f in self.user_features},
            "item_features": {f.name: f.describe() for f in self.item_features},
        }
        if self.notes:
            info["notes"] = list(self.notes)
        return info
