"""Statistics over seeds and paired users: mean / std, paired t-test, relative improvement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as _stats


def mean_std(values: Sequence[float] | npt.NDArray[np.floating]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def paired_ttest(a: Sequence[float] | npt.NDArray[np.floating],
                 b: Sequence[float] | npt.NDArray[np.floating]) -> dict[str, float]:
    """Two-sided paired t-test of a against b (same users or same seeds, same order).

    Returns the mean difference a - b, t and p. Identical samples give t = 0, p = 1.
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired samples must be 1-d and of one length, got {x.shape} and {y.shape}")
    if x.size < 2:
        raise ValueError("a paired t-test needs at least 2 pairs")
    d = x - y
    if np.ptp(d) == 0:  # exactly constant (within rounding is not: a t-test decides that)
        return {"mean_diff": float(d.mean()), "t": 0.0 if d[0] == 0 else float(np.sign(d[0]) * np.inf),
                "p": 1.0 if d[0] == 0 else 0.0, "n": int(x.size)}
    res = _stats.ttest_rel(x, y)
    return {"mean_diff": float(d.mean()), "t": float(res.statistic), "p": float(res.pvalue), "n": int(x.size)}


def paired_over_users(a_by_seed: Sequence[npt.NDArray[np.floating]], b_by_seed: Sequence[npt.NDArray[np.floating]],
                      rows_by_seed: Sequence[npt.NDArray[Any]] | None = None) -> dict[str, float]:
    """Paired t-test of a against b over users, from per-user values of one or more seeds.

    Seeds that evaluate the same users in the same order (a split that does not depend on the seed, such as
    leave-one-out by time) give strongly correlated values, so each user's values are averaged over the seeds
    first and the test has one pair per user; concatenating the seeds would count each user once per seed and
    overstate the evidence. ``rows_by_seed`` says who each row is (user ids, or any per-row key); without it,
    seeds with as many rows are taken to be the same users. Seeds with other rows are concatenated. Adds
    ``pooled``: 1.0 where averaged per user, 0.0 where concatenated.
    """
    if len(a_by_seed) != len(b_by_seed) or not a_by_seed:
        raise ValueError("paired_over_users needs the same seeds, at least one, on both sides")
    same = len({len(x) for x in a_by_seed} | {len(x) for x in b_by_seed}) == 1
    if same and rows_by_seed is not None:
        same = all(np.array_equal(rows_by_seed[0], r) for r in rows_by_seed[1:])
    if same:
        a, b = np.mean(np.stack(a_by_seed), axis=0), np.mean(np.stack(b_by_seed), axis=0)
        return {**paired_ttest(a, b), "pooled": 1.0}
    return {**paired_ttest(np.concatenate(a_by_seed), np.concatenate(b_by_seed)), "pooled": 0.0}


def relative_improvement(new: float, base: float, lower_is_better: bool = False) -> float:
    """(new - base) / |base|, sign flipped for error metrics so that positive always means better."""
    if base == 0:
        return float("nan")
    imp = (new - base) / abs(base)
    return -imp if lower_is_better else imp
