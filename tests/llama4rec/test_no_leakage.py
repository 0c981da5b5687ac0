"""Instruction data and augmentation never use a user's validation or test items."""

import numpy as np
import pytest

from recfuse.data import leave_one_out, make_synthetic
from recfuse.llama4rec import augment
from recfuse.llama4rec.instructions import inner_split
from recfuse.llama4rec.pipeline import Llama4Rec, Llama4RecConfig
from recfuse.llama4rec.queries import make_context, ranking_examples
from recfuse.llama4rec.tasks import ranking_queries
from recfuse.config import from_dict
from recfuse.models.base import create_model


class RandomLLM:
    """A stand-in LLM with random but valid answers (the leakage checks do not depend on the answers)."""

    fingerprint = "random"

    def __init__(self):
        self.rng = np.random.default_rng(0)
        self.prompts = []

    def choice_logprobs(self, prompts, choices):
        self.prompts += list(prompts)
        return np.log(self.rng.dirichlet(np.ones(len(choices)), size=len(prompts)))


@pytest.fixture(scope="module")
def split():
    return leave_one_out(make_synthetic(n_users=60, n_items=80, n_topics=4, seed=1))


def held_out(split):
    return {(int(u), int(i)) for part in (split.valid, split.test) for u, i in zip(part.user, part.item)}


def test_inner_split_is_a_partition_of_train(split):
    inner = inner_split(split)
    outer = sorted(zip(split.train.user.tolist(), split.train.item.tolist()))
    parts = sorted(p for part in (inner.train, inner.valid, inner.test) for p in zip(part.user.tolist(), part.item.tolist()))
    assert parts == outer
    assert not held_out(split) & set(parts)


def test_instruction_examples_never_contain_held_out_items(split, monkeypatch):
    cfg = from_dict(Llama4RecConfig, {"backbone": "itemknn", "instructions": 1000, "dataset": "synthetic"})
    method = Llama4Rec.__new__(Llama4Rec)
    method.cfg, method.dataset = cfg, split.dataset
    method._reset_timings()
    captured = {}
    import recfuse.llama4rec.tasks as pl
    original = pl.ranking_examples

    def spy(ctx, users, candidates, *a, **k):
        out = original(ctx, users, candidates, *a, **k)
        captured["examples"] = out
        return out

    monkeypatch.setattr(pl, "ranking_examples", spy)
    method.instruction_dialogues(split, seed=0)
    bad = held_out(split)
    for ex in captured["examples"]:
        items = set(ex.history.tolist()) | set(ex.candidates.tolist())
        assert not {(ex.user, i) for i in items} & bad
        assert not {(ex.similar_user, i) for i in ex.similar_history.tolist()} & bad
        assert ex.target >= 0


def test_pairwise_augmentation_never_uses_held_out_items(split):
    res = augment.pairwise_triples(RandomLLM(), split, np.arange(split.n_users), pairs_per_user=5, seed=0)
    assert len(res.triples) > 0
    bad = held_out(split)
    train = set(zip(split.train.user.tolist(), split.train.item.tolist()))
    for u, a, b in res.triples:
        assert (u, a) not in bad and (u, b) not in bad
        assert (u, a) not in train and (u, b) not in train


def test_sequence_insertions_never_use_held_out_items(split):
    rows = augment.sequence_insertions(RandomLLM(), split, np.arange(split.n_users), n_candidates=5, seed=0)
    bad = held_out(split)
    counts = np.bincount(split.train.user, minlength=split.n_users)
    for u, pos, item in rows:
        assert (u, item) not in bad
        assert 0 <= pos <= counts[u]


def test_test_prompts_show_validation_but_never_test_items(split):
    model = create_model("itemknn").fit(split)
    q = ranking_queries(model, split, "test", 10)
    ctx = make_context(split, "test", np.full(split.n_users, -1))
    test_items = {(int(u), int(i)) for u, i in zip(split.test.user, split.test.item)}
    for ex in ranking_examples(ctx, q.users, q.candidates, 50, seed=0):
        assert not {(ex.user, int(i)) for i in ex.history} & test_items


def test_sequential_validation_queries_never_see_the_validation_item(split):
    """A sequential backbone's validation lists (which choose the alphas) come from the train sequence only, and
    its similar users at validation are encoded without the validation item."""
    from recfuse.llama4rec.tasks import ranking_queries
    from recfuse.models.fitting import fit_backbone
    from recfuse.models.similar import most_similar_users, similar_user_index

    model, _ = fit_backbone("sasrec", split, 0, params={"epochs": 2})
    users = split.eval_users("valid")
    q = ranking_queries(model, split, "valid", 5)
    valid_lists, _ = model.recommend(users, k=5, exclude=split.history("valid"), stage="valid")
    test_lists, _ = model.recommend(users, k=5, exclude=split.history("valid"), stage="test")
    assert (q.candidates == valid_lists).all()
    assert (valid_lists != test_lists).any()  # the stage matters: the old call leaked the validation item
    emb_valid, emb_test = model.user_embeddings(stage="valid"), model.user_embeddings(stage="test")
    assert not np.allclose(emb_valid, emb_test)
    assert (similar_user_index(model, split, "valid") == most_similar_users(emb_valid)[:, 0]).all()
