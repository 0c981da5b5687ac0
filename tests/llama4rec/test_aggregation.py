"""Eqs. 5-7 and the top-k re-ranking of section 4.4.2 against hand-computed values."""

import math

import numpy as np
import pytest

from recfuse.llama4rec import aggregation as agg
from recfuse.models.similar import most_similar_by_interactions, most_similar_users


def test_long_tail_coefficient():
    assert agg.long_tail_coefficient(np.array([0, 1, 9])).tolist() == pytest.approx([0, math.log(2), math.log(10)])


def test_adaptive_alpha_eq7_by_hand():
    l_u = np.log(np.array([1, 4, 10, 100]) + 1.0)  # N(u) = 1, 4, 10, 100
    l_min, l_max = l_u[0], l_u[-1]
    a1, a2 = 0.5, 0.3
    expected = [max((l_max - lu) / (l_max - l_min), a2) * a1 for lu in l_u]
    got = agg.adaptive_alpha(l_u, a1, a2)
    assert got.tolist() == pytest.approx(expected)
    # the head user is cut off at alpha2 * alpha1; the tail user gets the full alpha1
    assert got[0] == pytest.approx(0.5) and got[-1] == pytest.approx(0.15)
    # by hand for N = 10: ratio = (log 101 - log 11) / (log 101 - log 2)
    ratio = (math.log(101) - math.log(11)) / (math.log(101) - math.log(2))
    assert got[2] == pytest.approx(max(ratio, 0.3) * 0.5)


def test_adaptive_alpha_with_equal_coefficients():
    assert agg.adaptive_alpha(np.array([2.0, 2.0]), 0.7, 0.1).tolist() == pytest.approx([0.07, 0.07])


def test_rating_aggregation_eq6():
    out = agg.aggregate_ratings(np.array([5.0, 2.0]), np.array([3.0, 4.0]), np.array([0.25, 1.0]))
    assert out.tolist() == pytest.approx([0.25 * 5 + 0.75 * 3, 2.0])


def test_position_utilities():
    # order lists candidates best first: candidate 2 at position 1, candidate 0 at 2, candidate 1 at 3
    assert agg.position_utilities(np.array([[2, 0, 1]])).tolist() == [[-2.0, -3.0, -1.0]]


def test_topk_aggregation_by_hand():
    # backbone order: candidates 0, 1, 2 -> U_Rec = -1, -2, -3 (C = 1)
    # LLM prefers candidate 2, then 1, then 0 -> U_LLM = -3, -2, -1
    llm = np.array([[0.1, 0.3, 0.6]])
    # alpha = 0.25: U = 0.25*U_LLM + 0.75*U_Rec = [-1.5, -2.0, -2.5] -> order 0, 1, 2 (backbone wins)
    assert agg.aggregate_topk(llm, np.array([0.25])).tolist() == [[0, 1, 2]]
    # alpha = 0.75: U = [-2.5, -2.0, -1.5] -> order 2, 1, 0 (LLM wins)
    assert agg.aggregate_topk(llm, np.array([0.75])).tolist() == [[2, 1, 0]]
    # alpha = 0.5: all tie at -2 -> the backbone's order decides
    assert agg.aggregate_topk(llm, np.array([0.5])).tolist() == [[0, 1, 2]]
    # alpha = 1: the LLM alone; alpha = 0: the backbone alone
    assert agg.aggregate_topk(llm, np.array([1.0])).tolist() == [[2, 1, 0]]
    assert agg.aggregate_topk(llm, np.array([0.0])).tolist() == [[0, 1, 2]]


def test_most_similar_users_cosine():
    emb = np.array([[1.0, 0], [0.9, 0.1], [0, 1], [-1, 0]])
    assert most_similar_users(emb)[:, 0].tolist() == [1, 0, 1, 2]
    assert most_similar_users(emb, np.array([3]), k=2).tolist() == [[2, 1]]


def test_most_similar_by_interactions():
    x = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert most_similar_by_interactions(x).tolist() == [1, 0, -1, -1]


def test_the_bias_control_by_hand():
    """bias_mix mixes in mu + b_u + b_i, damped means from the training ratings only (10 pseudo-counts)."""
    from types import SimpleNamespace

    from recfuse.llama4rec.tasks import RatingTask, damped_mean

    assert damped_mean(np.array([0, 0, 2]), np.array([1.0, 3.0, 5.0]), 4, damping=2.0).tolist() == [1.0, 0, 5 / 3, 0]
    train = SimpleNamespace(user=np.array([0, 0, 1]), item=np.array([0, 1, 0]), rating=np.array([5.0, 3.0, 1.0]))
    split = SimpleNamespace(train=train, dataset=SimpleNamespace(n_users=2, n_items=3))
    q = SimpleNamespace(size=2, part=SimpleNamespace(user=np.array([0, 1]), item=np.array([2, 1])))
    task = RatingTask.__new__(RatingTask)
    mu = 3.0
    b_item = [(2.0 - 2.0) / 12, 0.0 / 11, 0.0]  # item 0: (5-3) + (1-3) over 2 + 10
    b_user = [((5 - mu - b_item[0]) + (3 - mu - b_item[1])) / 12, (1 - mu - b_item[0]) / 11]
    got = task.control_scores("bias_mix", q, split)  # type: ignore[arg-type]
    assert got.tolist() == pytest.approx([mu + b_user[0] + b_item[2], mu + b_user[1] + b_item[1]])
    assert task.control_scores("mean_mix", q, split).tolist() == [3.0, 3.0]  # type: ignore[arg-type]
