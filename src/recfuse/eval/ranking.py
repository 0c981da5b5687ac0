"""Evaluation protocols: full ranking over all items, re-ranking of candidate lists, rating prediction.

Every user with held-out items in the evaluated stage (items not already in their history) is scored; none
is skipped (a split counts, in its summary, the users whose held-out items are all repeats of their history).
Scores that are NaN or +inf are an :class:`~recfuse.errors.EvaluationError`, never ranked quietly. Per-user
values are kept so that results can be grouped afterwards (long-tail coefficient, cold vs warm).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recfuse.errors import ConfigError, EvaluationError
from recfuse.eval import metrics as M

ScoreFn = Callable[[np.ndarray], np.ndarray]  # users (B,) -> scores (B, n_items)


@dataclass
class EvalResult:
    """Per-user metric values for ``users`` (internal ids), plus their means."""

    users: np.ndarray
    per_user: dict[str, np.ndarray]
    info: dict = field(default_factory=dict)

    def mean(self) -> dict[str, float]:
        """Each metric's mean over the evaluated users; :class:`~recfuse.errors.EvaluationError` when there is
        no user (a mean of nothing is NaN, never a result) or a value is not finite."""
        if len(self.users) == 0:
            raise EvaluationError("no user to evaluate: no user has a held-out item in the evaluated part (or in "
                                  "the ranked pool), so every metric would be NaN")
        out = {k: float(np.mean(v)) for k, v in self.per_user.items()}
        bad = [k for k, v in out.items() if not np.isfinite(v)]
        if bad:
            raise EvaluationError(f"{', '.join(bad)} is not finite over the {len(self.users)} evaluated users "
                                  "(non-finite predictions: the model diverged)")
        return out

    def grouped(self, groups: np.ndarray) -> dict[str, dict[str, float]]:
        """Means per group label; ``groups`` holds one label per evaluated user."""
        groups = np.asarray(groups)
        return {str(g): {k: float(np.mean(v[groups == g])) for k, v in self.per_user.items()}
                for g in np.unique(groups)}


def _top_k_exact(scores: np.ndarray, k: int) -> np.ndarray:
    """Reference selection by a full stable sort: score descending, then item index ascending, NaN last."""
    nan = np.isnan(scores)
    key = np.where(nan, 0, -scores)
    index = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.lexsort((index, key, nan), axis=1)[:, :k]


def _mask_excluded(scores: np.ndarray, exclude: sp.spmatrix | np.ndarray) -> None:
    """Set ``scores[r, c] = -inf`` for every nonzero (r, c) of ``exclude`` (sparse or dense), in place."""
    if not sp.issparse(exclude):
        scores[np.nonzero(exclude)] = -np.inf
        return
    exclude = sp.csr_matrix(exclude)
    nz = exclude.data != 0
    rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
    scores[rows[nz], exclude.indices[nz]] = -np.inf


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None, copy: bool = True) -> np.ndarray:
    """Indices of the k highest scores per row, best first; ``exclude`` entries never ranked.

    Ties are broken by the lower item index, so results are deterministic (NaN ranks below
    everything, excluded items included). Scores keep their floating dtype (no float64 copy);
    ``copy=False`` lets the function write the exclusions into ``scores`` itself.

    The selection runs ``torch.topk``; rows where items tied with the k-th score straddle the
    cut (or that hold NaN) are re-selected exactly, so the result equals a full stable sort.
    """
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.floating):
        scores, copy = scores.astype(np.float64), False
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-d (rows x items), got shape {scores.shape}")
    n_rows, n_cols = scores.shape
    k = min(int(k), n_cols)
    if k <= 0 or n_rows == 0:
        return np.zeros((n_rows, max(k, 0)), dtype=np.int64)
    if exclude is not None:
        scores = np.array(scores, copy=True) if copy else scores
        _mask_excluded(scores, exclude)
    import torch  # imported here: recfuse.eval does not need torch to import

    s = torch.from_numpy(np.ascontiguousarray(scores))
    # one value more than asked: the (k+1)-th best tells whether the k-th is tied with an item left out
    kk = min(k + 1, n_cols)
    vals, idx = torch.topk(s, kk, dim=1, largest=True, sorted=True)
    straddle = (vals[:, k] == vals[:, k - 1]) if kk > k else torch.zeros(n_rows, dtype=torch.bool)
    vals, idx = vals[:, :k], idx[:, :k]
    # order inside the top k: score descending, item index ascending
    idx, perm = torch.sort(idx, dim=1)
    vals = torch.gather(vals, 1, perm)
    vals, perm = torch.sort(vals, dim=1, descending=True, stable=True)
    out = torch.gather(idx, 1, perm).numpy()
    # rows whose k-th value ties with an item left out (which tied item topk kept is arbitrary),
    # or that hold NaN (topk ranks NaN first): exact selection by a full stable sort
    redo = straddle | torch.isnan(vals).any(1)
    if bool(redo.any()):
        rows = redo.nonzero().squeeze(1).numpy()
        out[rows] = _top_k_exact(scores[rows], k)
    return out


def _refuse_non_finite(scores: np.ndarray, users: np.ndarray) -> None:
    """:class:`~recfuse.errors.EvaluationError` where a model's score is NaN or +inf (a diverged model): ranked
    by the tie-break, it would give metrics that look like a result. -inf (an item the model never recommends)
    is a score."""
    bad = np.isnan(scores) | np.isposinf(scores)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        what = "NaN" if np.isnan(scores).any() else "+inf"
        raise EvaluationError(f"{int(bad.sum())} scores of {len(rows)} users are {what} (first: user "
                              f"{int(users[rows[0]])}): the model diverged (try a lower lr); such scores are never ranked")


def hits_of(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Boolean (n, k) matrix: is ``topk[r, j]`` among the true items of row r of ``truth``."""
    truth = truth.tocsr()
    n, k = topk.shape
    if n == 0:
        return np.zeros((0, k), dtype=bool)
    looked_up = truth[np.repeat(np.arange(n), k), topk.ravel()]
    return np.asarray(looked_up).reshape(n, k) > 0


def evaluate_full_ranking(score_fn: ScoreFn, history: sp.csr_matrix, truth: sp.csr_matrix,
                          ks: Sequence[int] = (3, 5, 10), metrics: Sequence[str] = ("hr", "ndcg"),
                          users: np.ndarray | None = None, item_mask: np.ndarray | None = None,
                          batch_size: int = 1024) -> EvalResult:
    """Rank all items for every user with held-out items; training (history) items are excluded.

    ``score_fn(users) -> (len(users), n_items)`` scores. ``item_mask`` restricts the ranked pool (for
    example to cold-start items in the zero-shot setting); truth outside the pool is not counted.

    Ties are broken by the lower item index. ``info["tied_at_cut"][k]`` counts the users whose k-th
    best score ties an item ranked below it: for them metric@k depends on that tie-break (a model that
    gives every item of the pool one score is ranking by item index), which reports should say.
    """
    M.check_ranking_metrics(list(metrics), list(ks))
    truth = truth.tocsr()
    n_items = truth.shape[1]
    if max(ks) > n_items:
        raise ConfigError(f"the largest cut-off k={max(ks)} exceeds the {n_items} items of the dataset: every item "
                          f"would be in every top-{max(ks)} list (use ks of at most {n_items})")
    if item_mask is not None:
        truth = truth.multiply(sp.csr_matrix(item_mask.astype(np.float32))).tocsr()
        truth.eliminate_zeros()
    if users is None:
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
    users = np.asarray(users, dtype=np.int64)
    kmax = max(ks)
    tops = []
    tied = {int(k): 0 for k in ks}
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        scores = np.array(score_fn(batch), copy=True)
        if not np.issubdtype(scores.dtype, np.floating):
            scores = scores.astype(np.float64)
        _refuse_non_finite(scores, batch)
        if item_mask is not None:
            scores[:, ~item_mask] = -np.inf
        _mask_excluded(scores, history[batch])
        # one more than the largest k: the next item tells whether a cut falls inside a tie
        top = top_k(scores, kmax + 1, copy=False)
        ranked = np.take_along_axis(scores, top, axis=1)
        for k in tied:
            if k < ranked.shape[1]:
                tied[k] += int((np.isfinite(ranked[:, k - 1]) & (ranked[:, k - 1] == ranked[:, k])).sum())
        tops.append(top[:, :kmax])
    topk = np.concatenate(tops) if tops else np.zeros((0, kmax), dtype=np.int64)
    sub_truth = truth[users]
    hits = hits_of(topk, sub_truth)
    n_rel = np.diff(sub_truth.indptr)
    return EvalResult(users, M.ranking_metrics(hits, n_rel, list(metrics), list(ks)),
                      info={"top_k": topk, "tied_at_cut": tied})


def evaluate_candidates(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (3, 5),
                        metrics: Sequence[str] = ("hr", "ndcg"), users: np.ndarray | None = None) -> EvalResult:
    """Re-ranking protocol: each row scores a given candidate list; ``labels`` marks the relevant ones.

    Recall and the ideal DCG count the relevant items inside the candidate list; a k above the list's length is
    refused (its metric would not be a ranking's).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    _refuse_non_finite(scores, users if users is not None else np.arange(len(scores)))
    kmax = max(ks)
    if kmax > scores.shape[1]:
        raise ConfigError(f"the cut-off k={kmax} exceeds the {scores.shape[1]} candidates of each list: every "
                          f"candidate would be in every top-{kmax} (use ks of at most {scores.shape[1]})")
    order = top_k(scores, kmax)
    hits = np.take_along_axis(labels, order, axis=1)
    users = np.arange(len(scores)) if users is None else np.asarray(users)
    return EvalResult(users, M.ranking_metrics(hits, labels.sum(axis=1), list(metrics), list(ks)))


def evaluate_rating(pred: np.ndarray, true: np.ndarray, users: np.ndarray) -> EvalResult:
    """Rating prediction: per-user squared and absolute errors, and overall RMSE / MAE in ``info``."""
    pred, true, users = np.asarray(pred, np.float64), np.asarray(true, np.float64), np.asarray(users)
    if pred.size == 0:
        raise EvaluationError("no rated pair to evaluate: the evaluated part holds no rating")
    bad = ~np.isfinite(pred)
    if bad.any():
        raise EvaluationError(f"{int(bad.sum())} of {pred.size} predicted ratings are not finite (the model "
                              "diverged: try a lower lr)")
    err = pred - true
    uniq, inv = np.unique(users, return_inverse=True)
    se = np.bincount(inv, weights=err ** 2) / np.bincount(inv)
    ae = np.bincount(inv, weights=np.abs(err)) / np.bincount(inv)
    return EvalResult(uniq, {"mse": se, "mae": ae},
                      info={"rmse": M.rmse(pred, true), "mae": M.mae(pred, true), "n": len(pred)})


def long_tail_coefficient(train: sp.csr_matrix) -> np.ndarray:
    """l_u = log(N(u) + 1) per user, N(u) the number of training interactions (Llama4Rec eq. 5)."""
    return np.log(np.diff(train.tocsr().indptr) + 1.0)
