"""Similar-user search: cosine of a backbone's user embeddings (Llama4Rec eq. 4; RecLM's similar users), or of
the users' interaction rows for backbones without user embeddings. Batched: memory grows with the batch, not
with users x users."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recfuse.data.splits import Split, Stage
from recfuse.models.base import NextItemRecommender, Recommender


#: the most similarities one block of :func:`most_similar_users` holds (float32; the selection's int64 index and
#: negated copies come on top: about 20 bytes each, 320 MiB at this bound)
MAX_BLOCK = 1 << 24


def most_similar_users(embeddings: np.ndarray, users: np.ndarray | None = None, k: int = 1,
                       batch_size: int = 2048, max_block: int = MAX_BLOCK) -> np.ndarray:
    """For each of ``users`` (default all), the ``k`` other users with the highest cosine similarity.

    Returns (len(users), k) user indices, most similar first. A user is never its own neighbour. Users are
    compared ``batch_size`` at a time, fewer where a block of them against all users would hold more than
    ``max_block`` similarities (memory bounded with tens of thousands of users; the same answer).
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    unit = emb / np.where(norm > 0, norm, 1.0)
    users = np.arange(len(emb)) if users is None else np.asarray(users, dtype=np.int64)
    out = np.empty((len(users), k), dtype=np.int64)
    batch_size = max(1, min(batch_size, max_block // max(1, len(emb))))
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        sim = unit[batch] @ unit.T
        sim[np.arange(len(batch)), batch] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < sim.shape[1] else np.argsort(-sim, axis=1)[:, :k]
        top_sim = np.take_along_axis(sim, top, axis=1)
        order = np.lexsort((top, -top_sim), axis=1)
        out[start:start + len(batch)] = np.take_along_axis(top, order, axis=1)
    return out


def most_similar_by_interactions(matrix: sp.spmatrix, batch_size: int = 2048) -> np.ndarray:
    """Each user's most similar other user by cosine of their (sparse) interaction rows.

    For backbones without user embeddings (e.g. feature-based rating models). Users with no
    interactions get themselves' neighbour -1.
    """
    x = sp.csr_matrix(matrix, dtype=np.float32)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1))).ravel()
    x = sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ x
    out = np.full(x.shape[0], -1, dtype=np.int64)
    for start in range(0, x.shape[0], batch_size):
        sim = (x[start:start + batch_size] @ x.T).toarray()
        rows = np.arange(sim.shape[0])
        sim[rows, rows + start] = -np.inf
        best = sim.argmax(axis=1)
        ok = np.isfinite(sim[rows, best]) & (sim[rows, best] > 0)
        out[start:start + len(rows)] = np.where(ok, best, -1)
    return out


def similar_user_index(model: Recommender, split: Split, stage: Stage = "test") -> np.ndarray:
    """Each user's most similar user: cosine of the backbone's user embeddings (eq. 4), or of the
    users' training interaction vectors when the backbone has none (-1: no similar user). A sequential
    backbone encodes the users as of ``stage`` (``"valid"``: without the validation item)."""
    try:
        raw = model.user_embeddings(stage=stage) if isinstance(model, NextItemRecommender) else model.user_embeddings()
        emb = np.asarray(raw, dtype=np.float32)
    except NotImplementedError:
        return most_similar_by_interactions(split.train_matrix)
    return most_similar_users(emb)[:, 0]
