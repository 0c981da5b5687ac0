"""Text towers for serving: the one string per item that a text tower encodes, and its vectors.

``recfuse train --item-text ENCODER`` trains a feature tower on these vectors (:func:`text_tower_features`);
``recfuse serve`` encodes a new item's text the same way, so it is scored at once. RecLM's text towers
encode each item's description instead (:meth:`Dataset.item_description`; a new item's:
:func:`new_item_description`): the run folder's manifest says which (``item_text_format``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recfuse.data.dataset import Dataset
from recfuse.errors import ConfigError
from recfuse.models.towers import FeatureEncoder


def item_text(title: str, texts: Sequence[str]) -> str:
    """The one string a text tower encodes for an item: its title, then its other text, sentence by sentence."""
    parts = [p.strip() for p in (title, *texts) if p and p.strip()]
    return ". ".join(parts)


def new_item_description(dataset: Dataset, title: str, text: str, features: Mapping[str, Any]) -> str:
    """A new item's one-line description as :meth:`Dataset.item_description` writes a known item's (what
    RecLM's text features and item profiles encode): its title, then ``name: value`` for each item feature of
    ``dataset`` it has, in the dataset's order; ``text`` is the value of the dataset's first text field (or
    ends the line where the dataset has none). :class:`ValueError` names features the dataset does not have."""
    names = [f.name for f in dataset.item_features]
    unknown = sorted(set(features) - set(names))
    if unknown:
        raise ValueError(f"unknown feature(s) {', '.join(unknown)}; the model's features: "
                         f"{', '.join(n for n in names if n != 'title')}")
    text_fields = [f for f in dataset.item_text_fields() if f != "title"]
    parts = [title.strip()]
    for f in dataset.item_features:
        if f.name == "title":
            continue
        value = text if text_fields and f.name == text_fields[0] else features.get(f.name)
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        elif f.kind == "numeric" and value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"feature {f.name!r} is numeric, got {str(value)[:40]!r}") from None
            if np.isinf(value):
                raise ValueError(f"feature {f.name!r} must be a finite number, got {value!r}")
            value = "" if np.isnan(value) else f"{value:g}"
        if value:
            parts.append(f"{f.name}: {value}")
    if text and not text_fields:
        parts.append(text.strip())
    return "; ".join(p for p in parts if p)


def dataset_item_texts(dataset: Dataset) -> list[str]:
    """:func:`item_text` of every item of ``dataset`` (its title and its other text features)."""
    fields = [f for f in dataset.item_text_fields() if f != "title"]
    values = {f: dataset.item_features[f].require_values() for f in fields}
    return [item_text(dataset.item_title(i), [str(values[f][i]) for f in fields]) for i in range(dataset.n_items)]


def encode_texts(texts: Sequence[str], encoder: str) -> np.ndarray:
    """Text vectors of a text tower: ``encoder`` is a sentence-transformers model (``all-MiniLM-L6-v2``, a
    folder) or ``hashing:<dim>`` (dependency-free, for tests)."""
    from recfuse.reclm.text import encode  # lazy: sentence-transformers and torch for a real encoder

    return encode(list(texts), encoder)


def text_tower_features(dataset: Dataset, encoder: str) -> tuple[np.ndarray, FeatureEncoder | None]:
    """The item feature matrix of a text tower: each item's text vector (:func:`dataset_item_texts` through
    ``encoder``), followed by its encoded side features where the dataset has any."""
    text = encode_texts(dataset_item_texts(dataset), encoder)
    try:
        side = FeatureEncoder.fit(dataset.item_features)
    except ConfigError:  # no categorical or numeric features: the text alone
        return text.astype(np.float32), None
    return np.hstack([text, side.transform(dataset.item_features)]).astype(np.float32), side
