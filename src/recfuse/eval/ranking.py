"""Evaluation protocols: full ranking over all items, re-ranking of candidate lists, rating prediction.

Every user with held-out items in the evaluated stage is scored; none is skipped. Per-user values
are kept so that results can be grouped afterwards (long-tail coefficient, cold vs warm).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recfuse.eval import metrics as M

ScoreFn = Callable[[np.ndarray], np.ndarray]  # users (B,) -> scores (B, n_items)


@dataclass
class EvalResult:
    """Per-user metric values for ``users`` (internal ids), plus their means."""

    users: np.ndarray
    per_user: dict[str, np.ndarray]
    info: dict = field(default_factory=dict)

    def mean(self) -> dict[str, float]:
        return {k: float(np.mean(v)) for k, v in self.per_user.items()}

    def grouped(self, groups: np.ndarray) -> dict[str, dict[str, float]]:
        """Means per group label; ``groups`` holds one label per evaluated user."""
        groups = np.asarray(groups)
        return {str(g): {k: float(np.mean(v[groups == g])) for k, v in self.per_user.items()}
                for g in np.unique(groups)}


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Indices of the k highest scores per row, best first; ``exclude`` entries never ranked.

    Ties are broken by the lower item index, so results are deterministic.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None:
        rows, cols = exclude.nonzero()
        scores[rows, cols] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1)


def hits_of(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Boolean (n, k) matrix: is ``topk[r, j]`` among the true items of row r of ``truth``."""
    truth = truth.tocsr()
    n, k = topk.shape
    if n == 0:
        return np.zeros((0, k), dtype=bool)
    looked_up = truth[np.repeat(np.arange(n), k), topk.ravel()]
    return np.asarray(looked_up).reshape(n, k) > 0


def evaluate_full_ranking(score_fn: ScoreFn, history: sp.csr_matrix, truth: sp.csr_matrix,
                          ks: list[int] = (3, 5, 10), metrics: list[str] = ("hr", "ndcg"),
                          users: np.ndarray | None = None, item_mask: np.ndarray | None = None,
                          batch_size: int = 1024) -> EvalResult:
    """Rank all items for every user with held-out items; training (history) items are excluded.

    ``score_fn(users) -> (len(users), n_items)`` scores. ``item_mask`` restricts the ranked pool (for
    example to cold-start items in the zero-shot setting); truth outside the pool is not counted.
    """
    truth = truth.tocsr()
    if item_mask is not None:
        truth = truth.multiply(sp.csr_matrix(item_mask.astype(np.float32))).tocsr()
        truth.eliminate_zeros()
    if users is None:
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
    users = np.asarray(users, dtype=np.int64)
    kmax = max(ks)
    tops = []
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        scores = np.asarray(score_fn(batch), dtype=np.float64)
        if item_mask is not None:
            scores = np.where(item_mask[None, :], scores, -np.inf)
        tops.append(top_k(scores, kmax, history[batch]))
    topk = np.concatenate(tops) if tops else np.zeros((0, kmax), dtype=np.int64)
    sub_truth = truth[users]
    hits = hits_of(topk, sub_truth)
    n_rel = np.diff(sub_truth.indptr)
    return EvalResult(users, M.ranking_metrics(hits, n_rel, list(metrics), list(ks)), info={"top_k": topk})


def evaluate_candidates(scores: np.ndarray, labels: np.ndarray, ks: list[int] = (3, 5),
                        metrics: list[str] = ("hr", "ndcg"), users: np.ndarray | None = None) -> EvalResult:
    """Re-ranking protocol: each row scores a given candidate list; ``labels`` marks the relevant ones.

    Recall and the ideal DCG count the relevant items inside the candidate list.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    kmax = min(max(ks), scores.shape[1])
    order = top_k(scores, kmax)
    hits = np.take_along_axis(labels, order, axis=1)
    users = np.arange(len(scores)) if users is None else np.asarray(users)
    return EvalResult(users, M.ranking_metrics(hits, labels.sum(axis=1), list(metrics),
                                               [k for k in ks if k <= kmax]))


def evaluate_rating(pred: np.ndarray, true: np.ndarray, users: np.ndarray) -> EvalResult:
    """Rating prediction: per-user squared and absolute errors, and overall RMSE / MAE in ``info``."""
    pred, true, users = np.asarray(pred, np.float64), np.asarray(true, np.float64), np.asarray(users)
    err = pred - true
    uniq, inv = np.unique(users, return_inverse=True)
    se = np.bincount(inv, weights=err ** 2) / np.bincount(inv)
    ae = np.bincount(inv, weights=np.abs(err)) / np.bincount(inv)
    return EvalResult(uniq, {"mse": se, "mae": ae},
                      info={"rmse": M.rmse(pred, true), "mae": M.mae(pred, true), "n": len(pred)})


def long_tail_coefficient(train: sp.csr_matrix) -> np.ndarray:
    """l_u = log(N(u) + 1) per user, N(u) the number of training interactions (Llama4Rec eq. 5)."""
    return np.log(np.diff(train.tocsr().indptr) + 1.0)
