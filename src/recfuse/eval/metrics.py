"""Ranking and rating metrics as pure numpy functions, one value per user.

Ranking metrics take ``hits``: a boolean (n_users, K) matrix, ``hits[u, r]`` true when the item
ranked at position r (0-based) for user u is relevant, and ``n_relevant``: how many relevant items
each user has in all (for recall and the ideal DCG). Only the first ``k`` columns are used.
"""

from __future__ import annotations

import numpy as np

from recfuse.errors import ConfigError


def _check(hits: np.ndarray, k: int) -> np.ndarray:
    hits = np.asarray(hits, dtype=bool)
    if hits.ndim != 2:
        raise ValueError(f"hits must be 2-d (users x ranks), got shape {hits.shape}")
    if k < 1 or k > hits.shape[1]:
        raise ValueError(f"k={k} is outside 1..{hits.shape[1]} (the ranked list length)")
    return hits[:, :k]


def hit_rate(hits: np.ndarray, k: int) -> np.ndarray:
    """HR@k: 1 if any relevant item is in the top k."""
    return np.asarray(_check(hits, k).any(axis=1), dtype=np.float64)


def precision(hits: np.ndarray, k: int) -> np.ndarray:
    """Precision@k: relevant items in the top k, over k."""
    return _check(hits, k).sum(axis=1) / k


def recall(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Recall@k: relevant items in the top k, over all relevant items (0 where a user has none)."""
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    found = _check(hits, k).sum(axis=1)
    return np.divide(found, n_relevant, out=np.zeros_like(n_relevant), where=n_relevant > 0)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k with binary relevance: DCG over the ideal DCG of min(n_relevant, k) hits."""
    h = _check(hits, k)
    disc = _discounts(k)
    dcg = h @ disc
    ideal_n = np.minimum(np.asarray(n_relevant, dtype=np.int64), k)
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[ideal_n]
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def mrr(hits: np.ndarray, k: int) -> np.ndarray:
    """MRR@k: 1 / rank of the first relevant item in the top k, else 0."""
    h = _check(hits, k)
    first = h.argmax(axis=1)
    return np.where(h.any(axis=1), 1.0 / (first + 1), 0.0)


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or pred.size == 0:
        raise ValueError(f"pred and true must be non-empty and of one shape, got {pred.shape} and {true.shape}")
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute error."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or pred.size == 0:
        raise ValueError(f"pred and true must be non-empty and of one shape, got {pred.shape} and {true.shape}")
    return float(np.mean(np.abs(pred - true)))


RANKING_METRICS = {
    "hr": lambda hits, n_rel, k: hit_rate(hits, k),
    "recall": recall,
    "ndcg": ndcg,
    "mrr": lambda hits, n_rel, k: mrr(hits, k),
    "precision": lambda hits, n_rel, k: precision(hits, k),
}


def check_ranking_metrics(names: list[str] | tuple[str, ...], ks: list[int] | tuple[int, ...]) -> None:
    """Raise :class:`~recfuse.errors.ConfigError` unless ``names`` are known ranking metrics and ``ks`` are
    cut-offs of at least 1 (neither empty)."""
    if not names:
        raise ConfigError(f"no ranking metric given (choose from {', '.join(RANKING_METRICS)})")
    for name in names:
        if name not in RANKING_METRICS:
            raise ConfigError(f"unknown metric {name!r} (choose from {', '.join(RANKING_METRICS)})")
    if not ks:
        raise ConfigError("no cut-off k given (e.g. 10)")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"a cut-off k must be a whole number of at least 1, not {k!r}")


def check_metric_name(name: str) -> tuple[str, int]:
    """``name@k`` (e.g. ``ndcg@10``) as (metric, k); a :class:`~recfuse.errors.ConfigError` naming it otherwise."""
    metric, sep, k = str(name).partition("@")
    if not sep or not k.isdigit() or int(k) < 1 or metric not in RANKING_METRICS:
        raise ConfigError(f"{name!r} is not a ranking metric at a cut-off: use METRIC@K with METRIC one of "
                          f"{', '.join(RANKING_METRICS)} and K at least 1 (e.g. ndcg@10)")
    return metric, int(k)


def ranking_metrics(hits: np.ndarray, n_relevant: np.ndarray, names: list[str], ks: list[int]) -> dict[str, np.ndarray]:
    """Per-user values of every ``name@k``: e.g. ``{'hr@3': array, 'ndcg@3': array, ...}``."""
    out = {}
    for name in names:
        if name not in RANKING_METRICS:
            raise ConfigError(f"unknown metric {name!r} (choose from {', '.join(RANKING_METRICS)})")
        for k in ks:
            out[f"{name}@{k}"] = RANKING_METRICS[name](hits, n_relevant, k)
    return out
