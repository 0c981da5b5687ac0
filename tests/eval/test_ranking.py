"""Full ranking, candidate re-ranking, rating evaluation and grouping."""

import numpy as np
import pytest
import scipy.sparse as sp

from recfuse.eval import evaluate_candidates, evaluate_full_ranking, evaluate_rating, long_tail_coefficient, top_k
from recfuse.errors import ConfigError, EvaluationError


def csr(rows, n_items):
    data = [(r, c) for r, cols in enumerate(rows) for c in cols]
    r, c = zip(*data) if data else ([], [])
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


def test_top_k_excludes_and_breaks_ties_by_index():
    scores = np.array([[0.5, 0.9, 0.9, 0.1, 0.7]])
    assert top_k(scores, 3).tolist() == [[1, 2, 4]]
    assert top_k(scores, 3, csr([[1]], 5)).tolist() == [[2, 4, 0]]


def _stable_sort_reference(scores, k, exclude=None):
    """Full stable sort: score descending, item index ascending, NaN after everything (even -inf)."""
    s = np.array(scores, dtype=np.float64)
    if exclude is not None:
        r, c = exclude.nonzero()
        s[r, c] = -np.inf
    nan = np.isnan(s)
    index = np.broadcast_to(np.arange(s.shape[1]), s.shape)
    return np.lexsort((index, np.where(nan, 0, -s), nan), axis=1)[:, :min(k, s.shape[1])]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_equals_a_full_stable_sort_with_many_ties(dtype):
    # few distinct values: ties inside the top k, ties across the cut, rows of -inf and NaN
    rng = np.random.default_rng(0)
    for trial in range(200):
        n, m = int(rng.integers(1, 20)), int(rng.integers(1, 30))
        scores = rng.integers(0, int(rng.integers(1, 5)), size=(n, m)).astype(dtype)
        if trial % 5 == 0:
            scores[rng.random(scores.shape) < 0.1] = np.nan
        exclude = sp.random(n, m, density=float(rng.random()), format="csr", random_state=trial) \
            if trial % 3 else None
        k = int(rng.integers(1, m + 3))
        before = scores.copy()
        got = top_k(scores, k, exclude)
        np.testing.assert_array_equal(got, _stable_sort_reference(scores, k, exclude))
        np.testing.assert_array_equal(scores, before)  # the caller's array is left alone


def test_top_k_ties_at_the_cut_keep_the_lower_index():
    scores = np.array([[1.0, 3.0, 2.0, 2.0, 2.0, 0.0]], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [[1, 2, 3]]
    assert top_k(np.zeros((2, 6)), 4).tolist() == [[0, 1, 2, 3]] * 2
    # fewer items than k left after exclusion: the excluded ones come last, by index
    assert top_k(scores, 5, csr([[1, 2, 3, 4]], 6)).tolist() == [[0, 5, 1, 2, 3]]


def test_full_ranking_hand_computed():
    # 2 users, 5 items; scores favour item 0 then 1 ...; user 0 has seen item 0, truth item 2
    scores = np.tile(np.array([5.0, 4, 3, 2, 1]), (3, 1))
    history = csr([[0], [], [1]], 5)
    truth = csr([[2], [4], []], 5)  # user 2 has no truth: not evaluated
    res = evaluate_full_ranking(lambda users: scores[users], history, truth, ks=[1, 2, 3], metrics=["hr", "ndcg"])
    assert res.users.tolist() == [0, 1]
    # user 0 ranks [1, 2, 3]: hit at rank 2; user 1 ranks [0, 1, 2]: no hit
    assert res.per_user["hr@1"].tolist() == [0, 0]
    assert res.per_user["hr@2"].tolist() == [1, 0]
    assert res.per_user["ndcg@3"][0] == pytest.approx(1 / np.log2(3))
    assert res.mean()["hr@2"] == 0.5


def test_item_mask_restricts_the_pool():
    scores = np.array([[5.0, 4, 3, 2, 1]])
    truth = csr([[3]], 5)
    mask = np.array([False, False, False, True, True])
    res = evaluate_full_ranking(lambda u: scores[u], csr([[]], 5), truth, ks=[1], item_mask=mask)
    assert res.per_user["hr@1"].tolist() == [1]


def test_ties_at_the_cut_are_counted_per_k():
    # item 4 is outside the pool. user 0: distinct scores; user 1: items 1-3 tie (item 0 excluded as
    # history); user 2: items 0-2 tie. The -inf of excluded and masked items never counts as a tie.
    scores = np.array([[5.0, 4, 3, 2, 1], [9.0, 2, 2, 2, 1], [7.0, 7, 7, 0, 0]])
    history = csr([[], [0], []], 5)
    truth = csr([[1], [3], [3]], 5)
    mask = np.array([True, True, True, True, False])
    res = evaluate_full_ranking(lambda u: scores[u], history, truth, ks=[1, 2, 3, 4], item_mask=mask)
    assert res.info["tied_at_cut"] == {1: 2, 2: 2, 3: 0, 4: 0}
    assert res.per_user["hr@3"].tolist() == [1, 1, 0]


def test_candidates_protocol():
    scores = np.array([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    labels = np.array([[0, 0, 1], [1, 0, 0]], dtype=bool)
    res = evaluate_candidates(scores, labels, ks=[1, 2])
    assert res.per_user["hr@1"].tolist() == [0, 1]
    assert res.per_user["hr@2"].tolist() == [1, 1]
    assert res.per_user["ndcg@2"][0] == pytest.approx(1 / np.log2(3))


def test_rating_per_user_and_overall():
    res = evaluate_rating(np.array([3, 4, 5.0]), np.array([3, 5, 3.0]), np.array([7, 7, 2]))
    assert res.users.tolist() == [2, 7]
    assert res.per_user["mse"].tolist() == [4.0, 0.5]
    assert res.info["rmse"] == pytest.approx(np.sqrt(5 / 3))


def test_long_tail_coefficient_and_grouping():
    train = csr([[0, 1, 2], [], [3]], 5)
    lt = long_tail_coefficient(train)
    assert lt.tolist() == pytest.approx([np.log(4), 0, np.log(2)])
    scores = np.tile(np.arange(5.0)[::-1], (3, 1))
    res = evaluate_full_ranking(lambda u: scores[u], train, csr([[3], [0], [0]], 5), ks=[1])
    groups = np.where(lt[res.users] > 1, "long history", "short history")
    grouped = res.grouped(groups)
    assert grouped["long history"]["hr@1"] == 1.0 and grouped["short history"]["hr@1"] == 1.0


@pytest.mark.parametrize("protocol", ["full", "candidates"])
def test_nan_scores_are_an_error_not_metrics_that_look_like_a_result(protocol):
    """A diverged model's NaN scores were ranked last, by item index: real-looking HR and NDCG."""
    truth = sp.csr_matrix((np.ones(4), ([0, 1, 2, 3], [0, 1, 2, 15])), shape=(4, 20))
    with pytest.raises(EvaluationError, match="80 scores of 4 users are NaN"):
        if protocol == "full":
            evaluate_full_ranking(lambda u: np.full((len(u), 20), np.nan), sp.csr_matrix((4, 20)), truth, ks=[3, 10])
        else:
            evaluate_candidates(np.full((4, 20), np.nan), truth.toarray() > 0, ks=[3, 10])


def test_a_cut_off_longer_than_the_candidate_lists_is_refused_not_dropped():
    with pytest.raises(ConfigError, match="k=10 exceeds the 5 candidates"):
        evaluate_candidates(np.zeros((2, 5)), np.eye(2, 5, dtype=bool), ks=[3, 10])


def test_infinite_scores_are_an_error_but_minus_infinity_is_a_score():
    truth = sp.csr_matrix((np.ones(2), ([0, 1], [0, 1])), shape=(2, 20))
    history = sp.csr_matrix((2, 20))
    with pytest.raises(EvaluationError, match="are \\+inf"):
        evaluate_full_ranking(lambda u: np.full((len(u), 20), np.inf), history, truth, ks=[3])
    never = np.tile(np.arange(20, dtype=float), (2, 1))
    never[:, 10:] = -np.inf  # items the model never recommends
    evaluate_full_ranking(lambda u: never[u], history, truth, ks=[3]).mean()
