"""Adaptive aggregation (Llama4Rec section 4.4).

    l_u     = log(N(u) + 1)                                                (eq. 5)
    U_u     = alpha_u * U_LLM + (1 - alpha_u) * U_Rec                      (eq. 6)
    alpha_u = max((l_max - l_u) / (l_max - l_min), alpha2) * alpha1        (eq. 7)

Users deep in the long tail (few interactions, low l_u) lean on the LLM. For top-k (4.4.2) the LLM
re-ranks the backbone's top-k' list; the backbone's item at position s has U_Rec = -s * C, and the
LLM's item at its position p gets the utility U_p = -p * C (so U_1 >= ... >= U_k'), on the same scale.
"""

from __future__ import annotations

import numpy as np

ALPHA_GRID = (0.1, 0.3, 0.5, 0.7, 0.9)


def long_tail_coefficient(n_interactions: np.ndarray) -> np.ndarray:
    """l_u = log(N(u) + 1) (eq. 5)."""
    return np.log(np.asarray(n_interactions, dtype=np.float64) + 1.0)


def adaptive_alpha(l_u: np.ndarray, alpha1: float, alpha2: float, l_min: float | None = None,
                   l_max: float | None = None) -> np.ndarray:
    """alpha_u of eq. 7. ``l_min`` / ``l_max`` default to the extremes of ``l_u`` (over all users).

    When every user has the same coefficient the ratio is taken as 0, so alpha_u = alpha2 * alpha1.
    """
    l_u = np.asarray(l_u, dtype=np.float64)
    l_min = float(l_u.min()) if l_min is None else l_min
    l_max = float(l_u.max()) if l_max is None else l_max
    span = l_max - l_min
    ratio = (l_max - l_u) / span if span > 0 else np.zeros_like(l_u)
    return np.maximum(ratio, alpha2) * alpha1


def aggregate_ratings(u_llm: np.ndarray, u_rec: np.ndarray, alpha_u: np.ndarray) -> np.ndarray:
    """Eq. 6 for rating prediction: the ratings themselves are the utilities."""
    alpha_u = np.asarray(alpha_u, dtype=np.float64)
    return alpha_u * np.asarray(u_llm, dtype=np.float64) + (1 - alpha_u) * np.asarray(u_rec, dtype=np.float64)


def position_utilities(order: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Utility -p*C of each candidate given an ordering (``order[r, p]`` = candidate at position p+1).

    Returns (n, k') utilities indexed by candidate (column = candidate index in the backbone list).
    """
    order = np.asarray(order)
    n, k = order.shape
    util = np.empty((n, k), dtype=np.float64)
    np.put_along_axis(util, order, -c * np.arange(1, k + 1, dtype=np.float64)[None, :].repeat(n, 0), axis=1)
    return util


def order_by_scores(scores: np.ndarray) -> np.ndarray:
    """Candidate indices sorted by descending score; ties keep the backbone's order (lower index first)."""
    scores = np.asarray(scores, dtype=np.float64)
    idx = np.arange(scores.shape[1])[None, :].repeat(scores.shape[0], 0)
    return np.lexsort((idx, -scores), axis=1)


def aggregate_topk(llm_scores: np.ndarray, alpha_u: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Re-rank each user's backbone top-k' list (columns in backbone order) with the LLM's scores.

    ``llm_scores[r, j]`` is the LLM's preference for the backbone's j-th candidate (a letter's
    probability for listwise ranking, an expected rating for pointwise). Returns the final order of
    candidate indices, best first.
    """
    llm_scores = np.asarray(llm_scores, dtype=np.float64)
    n, k = llm_scores.shape
    u_rec = -c * np.arange(1, k + 1, dtype=np.float64)[None, :].repeat(n, 0)
    u_llm = position_utilities(order_by_scores(llm_scores), c)
    alpha_u = np.asarray(alpha_u, dtype=np.float64).reshape(-1, 1)
    return order_by_scores(alpha_u * u_llm + (1 - alpha_u) * u_rec)
