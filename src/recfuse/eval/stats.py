"""Statistics over seeds and paired users: mean / std, paired t-test, relative improvement."""

from __future__ import annotations

from collections.abc import Sequence

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
    if np.allclose(d, d[0]):
        return {"mean_diff": float(d.mean()), "t": 0.0 if d[0] == 0 else float(np.sign(d[0]) * np.inf),
                "p": 1.0 if d[0] == 0 else 0.0, "n": int(x.size)}
    res = _stats.ttest_rel(x, y)
    return {"mean_diff": float(d.mean()), "t": float(res.statistic), "p": float(res.pvalue), "n": int(x.size)}


def combined_one_sided(gains: Sequence[float], p_two_sided: Sequence[float]) -> tuple[float, float]:
    """Stouffer's combination of independent paired tests (one per seed) into one one-sided test that the gain is
    positive: each two-sided p becomes one-sided by the sign of its gain; returns (z, p)."""
    if len(gains) != len(p_two_sided) or not gains:
        raise ValueError("combined_one_sided needs one gain per p-value, and at least one")
    one_sided = [p / 2 if g > 0 else 1 - p / 2 for g, p in zip(gains, p_two_sided)]
    z = float(np.sum(_stats.norm.isf(np.clip(one_sided, 1e-300, 1.0))) / np.sqrt(len(one_sided)))
    return z, float(_stats.norm.sf(z))


def relative_improvement(new: float, base: float, lower_is_better: bool = False) -> float:
    """(new - base) / |base|, sign flipped for error metrics so that positive always means better."""
    if base == 0:
        return float("nan")
    imp = (new - base) / abs(base)
    return -imp if lower_is_better else imp
