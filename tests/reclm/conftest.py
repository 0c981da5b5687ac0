"""Fixtures of the RecLM tests: synthetic data with items that appear only in the test period."""

import pytest

from recfuse.data import make_synthetic
from recfuse.data.dataset import Dataset, Interactions


def with_new_items(ds: Dataset, every: int = 10) -> Dataset:
    """The same data with every ``every``-th item's interactions moved after all others (new items)."""
    inter = ds.interactions
    ts = inter.timestamp.copy()
    late = inter.item % every == 0
    ts[late] = ts.max() + 1 + ts[late]
    moved = Interactions(inter.user, inter.item, inter.rating, ts)
    return Dataset(ds.name, ds.users, ds.items, moved, ds.user_features, ds.item_features, None, ds.source,
                   list(ds.notes))


def cold_dataset(n_users: int = 40, n_items: int = 120, seed: int = 2) -> Dataset:
    return with_new_items(make_synthetic(n_users=n_users, n_items=n_items, n_topics=3, interactions_per_user=10,
                                         seed=seed))


@pytest.fixture(scope="module")
def cold_split():
    from recfuse.data.splits import temporal
    return temporal(cold_dataset(), fractions=(0.7, 0.1, 0.2))


class ScriptedTeacher:
    """A teacher that writes a valid structured profile for every prompt (different per prompt), continuing
    the started answer as a chat model does: stands in for a strong teacher over the HTTP backend."""

    fingerprint = "scripted-teacher"

    def __init__(self):
        self.prompts = 0

    def generate(self, prompts, max_new_tokens=128, **kw):
        import zlib

        out = []
        for p in prompts:
            self.prompts += 1
            text = p if isinstance(p, str) else "\n".join(m["content"] for m in p)
            n = zlib.crc32(text.encode()) % 97
            out.append(f" a viewer of kind {n}; Interests: stories of topic {n % 7} and genre {n % 5}")
        return out


@pytest.fixture()
def scripted_teacher(monkeypatch):
    """RecLM's teacher replaced by :class:`ScriptedTeacher` (the student stays the tiny real model)."""
    from recfuse.reclm.pipeline import RecLM

    teacher = ScriptedTeacher()
    monkeypatch.setattr(RecLM, "load_teacher", lambda self: teacher)
    return teacher
