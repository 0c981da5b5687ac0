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
