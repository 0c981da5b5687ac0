"""Metrics against hand-computed values, and their properties."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recfuse.eval import metrics as M

# user 0: hits at ranks 2 and 4 (1-based), 3 relevant items in all; user 1: no hit, 1 relevant
HITS = np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=bool)
NREL = np.array([3, 1])


def test_hand_computed_values():
    assert M.hit_rate(HITS, 1).tolist() == [0, 0]
    assert M.hit_rate(HITS, 2).tolist() == [1, 0]
    assert M.precision(HITS, 4).tolist() == [0.5, 0]
    assert M.recall(HITS, NREL, 5).tolist() == pytest.approx([2 / 3, 0])
    assert M.mrr(HITS, 5).tolist() == [0.5, 0]
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert M.ndcg(HITS, NREL, 5).tolist() == pytest.approx([dcg / idcg, 0])
    # at k=2 the ideal list has 2 hits (min(3, 2))
    assert M.ndcg(HITS, NREL, 2)[0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_leave_one_out_ndcg_is_one_over_log_rank():
    hits = np.zeros((1, 10), dtype=bool)
    hits[0, 3] = True
    assert M.ndcg(hits, np.array([1]), 10)[0] == pytest.approx(1 / math.log2(5))


def test_rating_errors():
    assert M.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert M.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-empty"):
        M.rmse([], [])


def test_bad_k_and_unknown_metric():
    with pytest.raises(ValueError, match="outside 1..5"):
        M.hit_rate(HITS, 6)
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        M.ranking_metrics(HITS, NREL, ["auc"], [3])


hit_matrices = arrays(bool, st.tuples(st.integers(1, 6), st.integers(1, 8)))


@settings(max_examples=100, deadline=None)
@given(hit_matrices, st.data())
def test_metric_properties(hits, data):
    n, kmax = hits.shape
    found = hits.sum(axis=1)
    n_rel = np.array([data.draw(st.integers(int(f), int(f) + 3)) for f in found])
    for k in range(1, kmax + 1):
        values = M.ranking_metrics(hits, n_rel, list(M.RANKING_METRICS), [k])
        for name, v in values.items():
            assert ((v >= 0) & (v <= 1 + 1e-12)).all(), name
        hr = values[f"hr@{k}"]
        assert (values[f"precision@{k}"] <= hr + 1e-12).all()
        assert (values[f"mrr@{k}"] <= hr + 1e-12).all()
        assert (values[f"ndcg@{k}"] <= hr + 1e-12).all()
        if k > 1:  # hit rate and recall never fall as k grows
            assert (M.hit_rate(hits, k) >= M.hit_rate(hits, k - 1)).all()
            assert (M.recall(hits, n_rel, k) >= M.recall(hits, n_rel, k - 1) - 1e-12).all()
    # a perfect list scores 1 on NDCG
    perfect = np.ones((1, kmax), dtype=bool)
    assert M.ndcg(perfect, np.array([kmax]), kmax)[0] == pytest.approx(1.0)
