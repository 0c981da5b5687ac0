"""Sequence builder, insertions (Llama4Rec L4b), augmentations, and the no-leakage protocol of the
sequential models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recfuse.data import Dataset, Interactions, Vocab, leave_one_out
from recfuse.errors import ConfigError, DataError
from recfuse.models.base import create_model
from recfuse.models.sequential import Sequences
from recfuse.models.sequential.cl4srec import augment, crop, info_nce, mask, reorder

TINY = {"hidden_size": 16, "max_len": 8, "n_heads": 2, "epochs": 3, "batch_size": 16, "device": "cpu"}


def _inter(rows):
    u, i, t = (np.array(c) for c in zip(*rows))
    return Interactions(u, i, None, t.astype(float))


def test_sequences_ordered_by_time_with_ties_in_file_order():
    s = Sequences.from_interactions(_inter([(1, 5, 30), (0, 2, 10), (1, 3, 10), (1, 4, 10), (0, 1, 5)]), 3)
    assert s.of(0).tolist() == [1, 2]
    assert s.of(1).tolist() == [3, 4, 5]
    assert s.of(2).tolist() == []
    assert s.lengths.tolist() == [2, 3, 0]


def test_padded_keeps_the_most_recent_items_left_padded_and_shifted():
    s = Sequences(np.array([0, 1, 2, 3, 4, 7]), np.array([0, 5, 6, 6]))
    p = s.padded(3)
    assert p.tolist() == [[3, 4, 5], [0, 0, 8], [0, 0, 0]]
    assert s.padded(3, np.array([1])).tolist() == [[0, 0, 8]]


def test_windows_cover_every_target_once():
    s = Sequences(np.arange(15), np.array([0, 12, 13, 15]))  # lengths 12, 1, 2
    w = s.windows(width=5)  # stride 4: targets are the last 4 columns
    targets = w[:, 1:][w[:, :-1] > 0] - 1
    assert sorted(targets.tolist()) == sorted(list(range(1, 12)) + [14])
    assert (w[:, -1] > 0).all()
    for row in w:  # every window is a contiguous, left-padded slice
        real = row[row > 0]
        assert (np.diff(real) == 1).all()


def test_insertions_put_items_before_the_given_position_without_touching_the_original():
    s = Sequences(np.array([10, 11, 12, 20, 21]), np.array([0, 3, 5]))
    out = s.insert(np.array([[0, 0, 99], [0, 3, 98], [1, 1, 97], [0, 1, 96], [0, 1, 95]]))
    assert out.of(0).tolist() == [99, 10, 96, 95, 11, 12, 98]
    assert out.of(1).tolist() == [20, 97, 21]
    assert s.of(0).tolist() == [10, 11, 12]  # the original is not modified


@pytest.mark.parametrize("row, match", [([5, 0, 1], "user"), ([0, 9, 1], "position"), ([0, 0, 500], "item")])
def test_bad_insertions_raise_a_clear_error(row, match):
    s = Sequences(np.array([10, 11, 12]), np.array([0, 3, 3]))
    with pytest.raises(DataError, match=match):
        s.insert(np.array([row]), n_items=100)


def test_append_puts_the_other_sequence_after_each_user():
    a = Sequences(np.array([1, 2, 3]), np.array([0, 2, 2, 3]))
    b = Sequences(np.array([7, 8]), np.array([0, 1, 1, 2]))
    ab = a.append(b)
    assert [ab.of(u).tolist() for u in range(3)] == [[1, 2, 7], [], [3, 8]]


# -- augmentations ------------------------------------------------------------------------------
def _batch():
    torch.manual_seed(0)
    return torch.tensor([[0, 0, 0, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 0, 9]])


def test_crop_keeps_a_contiguous_part_at_the_right():
    out = crop(_batch(), eta=0.6)
    for row, orig in zip(out, _batch()):
        real = row[row > 0]
        n = int((orig > 0).sum())
        assert len(real) == max(1, int(0.6 * n))
        assert (row[: len(row) - len(real)] == 0).all()
        assert (torch.diff(real) == 1).all()


def test_mask_and_reorder_keep_lengths_and_items():
    b = _batch()
    m = mask(b, 0.5, mask_id=99)
    assert ((m == b) | (m == 99)).all() and (m[b == 0] == 0).all()
    r = reorder(b, beta=0.6)
    for row, orig in zip(r, b):
        assert sorted(row.tolist()) == sorted(orig.tolist())
        assert (row[orig == 0] == 0).all()
    v = augment(b, 0.6, 0.3, 0.6, mask_id=99)
    assert v.shape == b.shape


def test_info_nce_prefers_matching_views():
    z = torch.eye(4)
    assert info_nce(z, z, 0.1) < info_nce(z, z.roll(1, 0), 0.1)
    # cosine: scaling the views changes nothing; dot: larger norms sharpen the softmax
    assert torch.isclose(info_nce(z, z, 0.5, "cos"), info_nce(3 * z, 3 * z, 0.5, "cos"))
    assert info_nce(3 * z, 3 * z, 0.5) < info_nce(z, z, 0.5)


def test_cl4srec_projection_head_is_trained_and_restored(tmp_path):
    split, _ = _leaky_split()
    model = create_model("cl4srec", seed=0, projection="mlp", **TINY).fit(split, progress=False)
    head = model.encoder.cl_head
    # same seed, same initial head; without the contrastive loss it gets no gradient and stays as initialised
    untrained = create_model("cl4srec", seed=0, projection="mlp", cl_weight=0, **TINY).fit(split, progress=False)
    assert not torch.allclose(head[0].weight, untrained.encoder.cl_head[0].weight)  # the loss reached the head
    model.save(tmp_path / "m")
    loaded = type(model).load(tmp_path / "m")
    assert torch.equal(loaded.encoder.cl_head[2].weight, head[2].weight)
    plain = create_model("cl4srec", seed=0, **TINY)
    plain.n_items = model.n_items
    assert not hasattr(plain._build_encoder(), "cl_head")  # the paper's setting compares the encodings
    with pytest.raises(ConfigError, match="projection"):
        create_model("cl4srec", projection="linear")


def test_cl4srec_prefix_views_are_augmentations_of_a_prefix_of_each_window(monkeypatch):
    import recfuse.models.sequential.cl4srec as cl4srec_module

    split, _ = _leaky_split()
    model = create_model("cl4srec", seed=0, cl_views="prefix", keep_last=False, **TINY).fit(split, progress=False)
    seen = []
    monkeypatch.setattr(cl4srec_module, "augment", lambda seq, *a: seen.append(seq) or seq)
    torch.manual_seed(0)
    rows = torch.as_tensor(model.sequences["valid"].windows(TINY["max_len"] + 1))
    model._loss(rows)
    inp = rows[:, :-1]
    src = seen[0]
    assert len(seen) == 2 and torch.equal(seen[0], seen[1])  # both views from the same prefix
    n_src, n_inp = (src > 0).sum(1), (inp > 0).sum(1)
    assert (n_src >= torch.clamp(n_inp, max=2)).all() and (n_src <= n_inp).all() and (n_src < n_inp).any()
    for s, x, k in zip(src, inp, n_src):  # the first k real items of the window, right-aligned
        assert torch.equal(s[len(s) - k:], x[x > 0][:k]) and (s[:len(s) - k] == 0).all()
    with pytest.raises(ConfigError, match="cl_views"):
        create_model("cl4srec", cl_views="suffix")


def test_cl4srec_keep_last_leaves_each_views_most_recent_item_in_place():
    split, _ = _leaky_split()
    torch.manual_seed(0)
    rows = torch.randint(1, 30, (200, TINY["max_len"]))
    rows[:50, :3] = 0  # some shorter, left-padded rows
    for keep_last in (True, False):
        model = create_model("cl4srec", seed=0, keep_last=keep_last, **TINY).fit(split, progress=False)
        view = model._view(rows)
        assert view.shape == rows.shape
        same_last = torch.equal(view[:, -1], rows[:, -1])
        assert same_last == keep_last  # without keep_last, crop / mask / reorder move or hide it in some rows
        if keep_last:
            assert not torch.equal(view, rows)  # the items before it are still augmented
    log = create_model("cl4srec", seed=0, keep_last=True, **TINY).fit(split, progress=False).train_log
    assert np.isfinite(log["loss_terms"]["contrastive"]).all()


# -- protocol: the test item never reaches training or validation inputs --------------------------
def _leaky_split():
    """Each user's test item is an item nobody else has: any use of it in training would show."""
    rng = np.random.default_rng(0)
    n_users, n_common = 40, 30
    users, items, times = [], [], []
    for u in range(n_users):
        seq = rng.choice(n_common, size=8, replace=False).tolist() + [n_common + u]  # last one unique
        users += [u] * len(seq)
        items += seq
        times += list(range(len(seq)))
    n_items = n_common + n_users
    ds = Dataset("leak", Vocab(range(n_users), "user"), Vocab(range(n_items), "item"),
                 Interactions(np.array(users), np.array(items), None, np.array(times, float)))
    return leave_one_out(ds, order="time"), n_common


@pytest.mark.parametrize("name", ["sasrec", "bert4rec", "cl4srec"])
def test_test_items_never_enter_training_or_validation_inputs(name, monkeypatch):
    split, n_common = _leaky_split()
    assert set(split.test.item.tolist()) == set(range(n_common, n_common + split.n_users))
    model = create_model(name, seed=0, **TINY)
    seen: list[torch.Tensor] = []
    original = type(model)._build_encoder

    def spy_build(self):
        enc = original(self)
        forward = enc.forward

        def recording(seq):
            seen.append(seq.detach().clone())
            return forward(seq)
        enc.forward = recording
        return enc
    monkeypatch.setattr(type(model), "_build_encoder", spy_build)
    model.fit(split, progress=False)
    ids = torch.cat([s.flatten() for s in seen])
    test_ids = torch.arange(n_common, n_common + split.n_users) + 1  # shifted ids
    assert not torch.isin(ids, test_ids).any()
    # the model's two stages: validation sees train only, test sees train + the validation item
    for u in range(split.n_users):
        train_u = split.train.item[split.train.user == u].tolist()
        valid_u = split.valid.item[split.valid.user == u].tolist()
        assert model.sequences["valid"].of(u).tolist() == train_u
        assert model.sequences["test"].of(u).tolist() == train_u + valid_u


def test_score_uses_the_stage_sequence():
    split, _ = _leaky_split()
    model = create_model("sasrec", seed=0, **TINY).fit(split, progress=False)
    users = np.arange(5)
    assert not np.allclose(model.score(users, stage="valid"), model.score(users))
    np.testing.assert_allclose(model.score(users), model.score(users, stage="test"))
    with pytest.raises(ConfigError, match="stage"):
        model.score(users, stage="train")


def test_insertions_are_used_for_training_only():
    split, _ = _leaky_split()
    ins = np.array([[u, 0, 1] for u in range(split.n_users)])
    plain = create_model("sasrec", seed=0, **TINY).fit(split, progress=False)
    aug = create_model("sasrec", seed=0, **TINY).fit(split, progress=False, insertions=ins)
    assert aug.train_log["insertions"] == len(ins)
    assert aug.train_log["training_windows"] >= plain.train_log["training_windows"]
    assert not np.allclose(aug.score(np.arange(5)), plain.score(np.arange(5)))
    for stage in ("valid", "test"):  # scoring encodes the real history
        assert aug.sequences[stage].items.tolist() == plain.sequences[stage].items.tolist()
    with pytest.raises(DataError, match="position"):
        create_model("sasrec", seed=0, **TINY).fit(split, progress=False, insertions=np.array([[0, 99, 1]]))


def test_user_embeddings_and_train_log():
    split, _ = _leaky_split()
    model = create_model("bert4rec", seed=0, **TINY).fit(split, progress=False)
    emb = model.user_embeddings()
    assert emb.shape == (split.n_users, 16) and np.isfinite(emb).all()
    assert model.item_embeddings().shape == (split.n_items, 16)
    log = model.train_log
    assert len(log["epoch_seconds"]) == log["epochs_run"] <= 3
    assert 0 <= log["best_epoch"] < log["epochs_run"] and len(log["valid_history"]) == log["epochs_run"]
    assert log["total_seconds"] >= sum(log["epoch_seconds"])
    assert len(log["train_loss"]) == log["epochs_run"] and np.isfinite(log["train_loss"]).all()
    assert log["loss_terms"] == {}  # one loss, no named parts


def test_cl4srec_logs_both_parts_of_its_loss():
    split, _ = _leaky_split()
    log = create_model("cl4srec", seed=0, cl_weight=0.3, **TINY).fit(split, progress=False).train_log
    terms = log["loss_terms"]
    assert set(terms) == {"next_item", "contrastive"}
    assert all(len(v) == log["epochs_run"] for v in terms.values())
    # the logged total is the weighted sum of the logged parts, epoch by epoch
    expected = np.array(terms["next_item"]) + 0.3 * np.array(terms["contrastive"])
    assert np.allclose(log["train_loss"], expected, rtol=1e-5)


def test_bad_hyper_parameters_raise():
    with pytest.raises(ConfigError, match="loss"):
        create_model("sasrec", loss="mse")
    with pytest.raises(ConfigError, match="max_len"):
        create_model("sasrec", max_len=1)
    with pytest.raises(RuntimeError, match="not fitted"):
        create_model("sasrec").score(np.array([0]))


def test_bert4rec_masks_each_window_several_times_per_epoch(monkeypatch):
    split, _ = _leaky_split()
    batches: list[torch.Tensor] = []
    bert = type(create_model("bert4rec"))
    original = bert._loss

    def recording(self, rows):
        batches.append(rows.clone())
        return original(self, rows)
    monkeypatch.setattr(bert, "_loss", recording)
    windows = {}
    for k in (1, 3):
        batches.clear()
        model = create_model("bert4rec", seed=0, masks_per_window=k, **{**TINY, "epochs": 1})
        model.fit(split, progress=False)
        windows[k] = torch.cat(batches)
        assert model.train_log["training_windows"] == len(windows[1])  # the windows themselves are not copied
    assert len(windows[3]) == 3 * len(windows[1])
    # every window three times, in a shuffled order
    def as_sorted(t):
        return sorted(map(tuple, t.tolist()))
    assert as_sorted(windows[3]) == as_sorted(windows[1].repeat(3, 1))
    with pytest.raises(ConfigError, match="masks_per_window"):
        create_model("bert4rec", masks_per_window=0)


def test_random_prefix_keeps_a_right_aligned_prefix_of_at_least_two_items():
    from recfuse.models.sequential.base import random_prefix

    rows = torch.tensor([[0, 0, 3, 4, 5, 6], [0, 0, 0, 0, 0, 7], [0, 0, 0, 0, 8, 9], [1, 2, 3, 4, 5, 6]])
    torch.manual_seed(0)
    cuts = set()
    for _ in range(200):
        out = random_prefix(rows)
        for before, after in zip(rows.tolist(), out.tolist()):
            real_before, real_after = [x for x in before if x], [x for x in after if x]
            assert after[-1] != 0 and after[:len(after) - len(real_after)] == [0] * (len(after) - len(real_after))
            assert real_after == real_before[:len(real_after)]  # a prefix, in order
            assert len(real_after) >= min(2, len(real_before))
        cuts.add(len([x for x in out[3].tolist() if x]))
    assert cuts == {2, 3, 4, 5, 6}  # every cut of the full row is drawn
