"""Splits against hand-computed expectations, and properties over random data."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recfuse.data import Dataset, Interactions, Vocab, cold_start_items, kcore, leave_one_out, temporal
from recfuse.errors import DataError


def tiny(users, items, times, n_users=None, n_items=None):
    n_users = n_users or max(users) + 1
    n_items = n_items or max(items) + 1
    return Dataset("tiny", Vocab(range(n_users), "user"), Vocab(range(n_items), "item"),
                   Interactions(np.array(users), np.array(items), None, np.array(times, dtype=float)))


def pairs(inter):
    return sorted(zip(inter.user.tolist(), inter.item.tolist()))


def test_leave_one_out_by_time_hand_computed():
    # user 0: items 5 (t=3), 1 (t=1), 2 (t=2), 3 (t=9) -> train {1, 2}, valid 5, test 3
    # user 1: items 4 (t=5), 0 (t=4)                   -> train {0}, test 4 (two interactions: no valid)
    # user 2: item 2                                   -> train only
    ds = tiny([0, 0, 0, 0, 1, 1, 2], [5, 1, 2, 3, 4, 0, 2], [3, 1, 2, 9, 5, 4, 7], n_items=6)
    s = leave_one_out(ds)
    assert pairs(s.train) == [(0, 1), (0, 2), (1, 0), (2, 2)]
    assert pairs(s.valid) == [(0, 5)]
    assert pairs(s.test) == [(0, 3), (1, 4)]
    assert s.info["users_without_test"] == 1
    # history for the test stage is train + valid; the test truth never appears in it
    assert s.history("test")[0].indices.tolist() == [1, 2, 5]
    assert s.history("valid")[0].indices.tolist() == [1, 2]
    assert s.eval_users("test").tolist() == [0, 1]


def test_leave_one_out_ties_keep_file_order():
    ds = tiny([0, 0, 0], [7, 8, 9], [1, 1, 1])
    s = leave_one_out(ds)
    assert pairs(s.test) == [(0, 9)] and pairs(s.valid) == [(0, 8)]


def test_leave_one_out_without_timestamps_is_seeded_random():
    ds = tiny([0] * 6, [0, 1, 2, 3, 4, 5], [0] * 6)
    ds = Dataset(ds.name, ds.users, ds.items, Interactions(ds.interactions.user, ds.interactions.item))
    a, b = leave_one_out(ds, seed=1), leave_one_out(ds, seed=1)
    assert pairs(a.test) == pairs(b.test) and pairs(a.valid) == pairs(b.valid)
    assert "random" in a.protocol
    tests = {pairs(leave_one_out(ds, seed=s).test)[0] for s in range(20)}
    assert len(tests) > 1  # the order really depends on the seed
    with pytest.raises(DataError, match="needs timestamps"):
        leave_one_out(ds, order="time")


def test_temporal_hand_computed():
    ds = tiny([0, 0, 1, 1, 2, 0], [0, 1, 1, 2, 3, 3], [1, 2, 3, 4, 5, 6])
    s = temporal(ds, valid_start=2, test_start=4)
    assert pairs(s.train) == [(0, 0), (0, 1)]
    # valid period (2, 4]: user 1 at t=3 and t=4, a user with no training history: dropped, counted
    assert pairs(s.valid) == []
    # test period (4, ...): user 2 at t=5 (cold, dropped), user 0 at t=6
    assert pairs(s.test) == [(0, 3)]
    assert s.info["dropped_cold_user_valid_interactions"] == 2
    assert s.info["dropped_cold_user_test_interactions"] == 1
    kept = temporal(ds, valid_start=2, test_start=4, drop_cold_users=False)
    assert pairs(kept.valid) == [(1, 1), (1, 2)]
    assert pairs(kept.test) == [(0, 3), (2, 3)]


def test_cold_start_items_view():
    ds = tiny([0, 0, 1, 1, 0, 1], [0, 1, 1, 2, 3, 0], [1, 2, 3, 4, 5, 6])
    s = temporal(ds, valid_start=2, test_start=4)
    assert s.cold_items("test").tolist() == [3]
    cold = cold_start_items(s)
    assert pairs(cold.test) == [(0, 3)]


def test_kcore_hand_computed():
    # item 3 has one interaction -> removed; then user 2 has one -> removed
    ds = tiny([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 1, 3], [1, 2, 3, 4, 5, 6])
    out = kcore(ds, 2)
    assert (out.n_users, out.n_items, len(out.interactions)) == (2, 2, 4)
    assert list(out.users.ids) == ["0", "1"]
    out3 = kcore(ds, 2, user_k=1, item_k=2)
    assert out3.n_users == 3


interactions = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 11), st.integers(0, 50)),
                        min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(interactions)
def test_leave_one_out_properties(rows):
    users, items, times = map(list, zip(*rows))
    ds = tiny(users, items, times, n_users=8, n_items=12)
    s = leave_one_out(ds)
    # a partition of all interactions
    assert len(s.train) + len(s.valid) + len(s.test) == len(rows)
    counts = np.bincount(np.array(users), minlength=8)
    for u in range(8):
        n_test = int((s.test.user == u).sum())
        n_valid = int((s.valid.user == u).sum())
        assert n_test == (1 if counts[u] >= 2 else 0)
        assert n_valid == (1 if counts[u] >= 3 else 0)
        t_train = s.train.timestamp[s.train.user == u]
        if n_test:
            t_test = s.test.timestamp[s.test.user == u][0]
            assert (t_train <= t_test).all()
            if n_valid:
                t_valid = s.valid.timestamp[s.valid.user == u][0]
                assert (t_train <= t_valid).all() and t_valid <= t_test


@settings(max_examples=60, deadline=None)
@given(interactions, st.floats(0.1, 0.8))
def test_temporal_properties(rows, frac):
    users, items, times = map(list, zip(*rows))
    ds = tiny(users, items, times, n_users=8, n_items=12)
    s = temporal(ds, fractions=(frac, (1 - frac) / 2, (1 - frac) / 2), drop_cold_users=False)
    assert len(s.train) + len(s.valid) + len(s.test) == len(rows)
    if len(s.train) and len(s.valid):
        assert s.train.timestamp.max() < s.valid.timestamp.min()
    if len(s.valid) and len(s.test):
        assert s.valid.timestamp.max() < s.test.timestamp.min()
    if len(s.train) and len(s.test):
        assert s.train.timestamp.max() < s.test.timestamp.min()
    # the truth of a stage never contains an item already in that stage's history
    for stage in ("valid", "test"):
        assert s.ground_truth(stage).multiply(s.history(stage)).nnz == 0
