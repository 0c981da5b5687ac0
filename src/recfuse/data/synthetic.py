"""Synthetic data with planted structure, for fast tests with known answers.

Users and items each belong to one of ``n_topics`` topics. A user mostly interacts with items of its
own topic (probability ``affinity``), otherwise with any item, both by a Zipf popularity within the
pool. Ratings are high in-topic and low off-topic. So a recommender that learns who likes which
topic beats global popularity by a wide margin, while popularity still carries signal.
"""

from __future__ import annotations

import numpy as np

from recfuse.data.dataset import Dataset, Feature, FeatureTable, Interactions, Vocab


def make_synthetic(n_users: int = 300, n_items: int = 200, n_topics: int = 6, interactions_per_user: int = 20,
                   affinity: float = 0.85, zipf: float = 1.0, seed: int = 0, name: str = "synthetic") -> Dataset:
    """Build a :class:`Dataset` with topics planted in users, items, ratings, features and text."""
    rng = np.random.default_rng(seed)
    user_topic = rng.integers(n_topics, size=n_users)
    item_topic = np.arange(n_items) % n_topics
    rng.shuffle(item_topic)
    popularity = 1.0 / np.arange(1, n_items + 1) ** zipf
    popularity = popularity[rng.permutation(n_items)]

    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        n = max(3, int(rng.poisson(interactions_per_user)))
        n = min(n, n_items // 2)
        in_topic = item_topic == user_topic[u]
        p_in = np.where(in_topic, popularity, 0.0)
        p_all = popularity.copy()
        chosen: list[int] = []
        seen = np.zeros(n_items, dtype=bool)
        while len(chosen) < n:
            pool = p_in if rng.random() < affinity else p_all
            p = np.where(seen, 0.0, pool)
            if p.sum() == 0:
                p = np.where(seen, 0.0, p_all)
            i = int(rng.choice(n_items, p=p / p.sum()))
            seen[i] = True
            chosen.append(i)
        start = rng.integers(0, 10_000)
        for t, i in enumerate(chosen):
            match = item_topic[i] == user_topic[u]
            r = rng.choice([4, 5], p=[0.4, 0.6]) if match else rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3])
            users.append(u)
            items.append(i)
            ratings.append(float(r))
            times.append(float(start + 100 * t + rng.integers(0, 50)))

    topic_names = [f"topic{t}" for t in range(n_topics)]
    noisy = lambda topics: np.where(rng.random(len(topics)) < 0.9, topics, rng.integers(n_topics, size=len(topics)))  # noqa: E731
    item_genres = [[topic_names[t]] + ([topic_names[rng.integers(n_topics)]] if rng.random() < 0.3 else [])
                   for t in noisy(item_topic)]
    item_features = FeatureTable(n_items, [
        Feature.text("title", [f"The {topic_names[t]} story no. {i}" for i, t in enumerate(item_topic)]),
        Feature.multi("genres", item_genres),
        Feature.numeric("year", rng.integers(1950, 2020, size=n_items)),
    ])
    user_features = FeatureTable(n_users, [
        Feature.numeric("age", rng.integers(15, 70, size=n_users)),
        Feature.categorical("gender", rng.choice(["F", "M"], size=n_users)),
        Feature.categorical("group", [topic_names[t] for t in noisy(user_topic)]),
    ])
    ds = Dataset(
        name=name,
        users=Vocab([f"u{u}" for u in range(n_users)], "user"),
        items=Vocab([f"i{i}" for i in range(n_items)], "item"),
        interactions=Interactions(np.array(users), np.array(items), np.array(ratings), np.array(times)),
        user_features=user_features,
        item_features=item_features,
        source=f"synthetic(seed={seed})",
    )
    ds.notes.append("planted topics: users.group / items.genres are 90%-accurate topic labels")
    ds.user_topic = user_topic  # type: ignore[attr-defined]  # the planted answer, for tests
    ds.item_topic = item_topic  # type: ignore[attr-defined]
    return ds
