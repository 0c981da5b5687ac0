"""The rating models' shared feature layer, and new attribute columns picked up with no code change (SPEC L4c)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recfuse.data import Dataset, Feature, FeatureTable, Interactions, Vocab, leave_one_out
from recfuse.eval.metrics import rmse
from recfuse.models.base import create_model
from recfuse.models.rating.features import FeatureConfig, FeatureSchema, FieldEmbedding

RATING_MODELS = ["deepfm", "nfm", "dcn", "afm", "xdeepfm", "autoint"]
FAST = {"epochs": 15, "batch_size": 128, "lr": 1e-2, "embedding_dim": 8, "patience": 3, "dropout": 0.0}


def tiny_dataset() -> Dataset:
    users = Vocab(["a", "b", "c"], "user")
    items = Vocab(["x", "y", "z", "w"], "item")
    inter = Interactions(np.array([0, 1, 2, 0]), np.array([0, 1, 2, 3]), np.array([5.0, 3, 1, 4]),
                         np.array([1.0, 2, 3, 4]))
    uf = FeatureTable(3, [Feature.numeric("age", [23, np.nan, 61]),
                          Feature.categorical("zip_code", ["12345", "12999", None]),
                          Feature.categorical("gender", ["F", "M", "F"])])
    itf = FeatureTable(4, [Feature.text("title", ["X", "Y", "Z", "W"]),
                           Feature.multi("genres", [["Drama", "Comedy"], ["Drama"], None, ["Horror", "Drama", "War"]]),
                           Feature.numeric("year", [1990, 1995, 1990, np.nan])])
    return Dataset("tiny", users, items, inter, uf, itf)


def test_fields_come_from_the_feature_tables():
    schema = FeatureSchema.from_dataset(tiny_dataset())
    assert schema.field_names == ["user_id", "user.age", "user.zip_code", "user.gender",
                                  "item_id", "item.genres", "item.year"]  # text (title) is skipped
    assert schema.field("item.genres").width == 3
    assert schema.user_index.shape == (3, 4) and schema.item_index.shape == (4, 1 + 3 + 1)


def test_new_columns_of_any_usable_kind_become_fields():
    ds = tiny_dataset()
    ds.item_features.add(Feature.categorical("director", ["Lynch", None, "Lynch", "Varda"]))
    ds.item_features.add(Feature.multi("stars", [["A", "B"], ["C"], [], None]))
    ds.user_features.add(Feature.numeric("income", [1.0, 2.0, 3.0]))
    ds.user_features.add(Feature.text("bio", ["x", "y", "z"]))
    schema = FeatureSchema.from_dataset(ds)
    assert schema.field_names[-2:] == ["item.director", "item.stars"]
    assert "user.income" in schema.field_names and "user.bio" not in schema.field_names
    assert schema.field("item.stars").kind == "multi" and schema.field("item.stars").width == 2
    assert schema.field("item.director").vocab == ["<missing>", "Lynch", "Varda"]


def test_pooling_weights_sum_to_one_per_field_and_empty_rows_use_missing():
    schema = FeatureSchema.from_dataset(tiny_dataset())
    slot_field = schema.slot_fields()
    weights = np.concatenate([schema.user_weight[[0, 1, 2, 0]], schema.item_weight], axis=1)
    per_field = np.stack([weights[:, slot_field == f].sum(axis=1) for f in range(schema.n_fields)], axis=1)
    np.testing.assert_allclose(per_field, 1.0)
    genres = schema.field("item.genres")
    offset = sum(f.size for f in schema.fields[:schema.field_names.index("item.genres")])
    g = schema.item_index[:, 1:4] - offset
    w = schema.item_weight[:, 1:4]
    assert [genres.vocab[c] for c in g[3]] == ["Horror", "Drama", "War"]
    np.testing.assert_allclose(w[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(w[2], [1.0, 0.0, 0.0])  # no genres -> the '<missing>' embedding
    assert g[2, 0] == 0


def test_numeric_buckets_and_zip_prefix():
    schema = FeatureSchema.from_dataset(tiny_dataset(), FeatureConfig(numeric_buckets=10))
    age = schema.field("user.age")
    assert age.kind == "numeric" and age.edges == [61.0]  # two distinct ages, one bucket each
    offset = schema.field_names.index("user.age")
    codes = schema.user_index[:, offset] - schema.fields[0].size
    assert codes.tolist() == [1, 0, 2]  # NaN -> bucket 0
    zip_field = schema.field("user.zip_code")
    assert zip_field.vocab == ["<missing>", "12"] and zip_field.prefix == 2


def test_exclude_and_ids_off():
    schema = FeatureSchema.from_dataset(tiny_dataset(), {"exclude": ["zip_code", "item.year"], "use_ids": False})
    assert schema.field_names == ["user.age", "user.gender", "item.genres"]
    schema = FeatureSchema.from_dataset(tiny_dataset(), {"exclude": ["item_id", "user.age"]})
    assert schema.field_names == ["user_id", "user.zip_code", "user.gender", "item.genres", "item.year"]


def test_field_embedding_shapes_and_first_order_term():
    schema = FeatureSchema.from_dataset(tiny_dataset())
    layer = FieldEmbedding(schema, dim=4)
    torch.nn.init.ones_(layer.linear.weight)
    emb, first = layer(torch.tensor([0, 2]), torch.tensor([3, 2]))
    assert emb.shape == (2, schema.n_fields, 4)
    np.testing.assert_allclose(first.detach().numpy(), [schema.n_fields] * 2, rtol=1e-6)


def director_dataset(n_users: int = 150, n_items: int = 800, per_user: int = 12, n_directors: int = 6,
                     seed: int = 0) -> tuple[Dataset, list[str]]:
    """Ratings set by a hidden per-item 'director' (few ratings per item, many per director)."""
    rng = np.random.default_rng(seed)
    director = rng.integers(n_directors, size=n_items)
    effect = np.linspace(-1.6, 1.6, n_directors)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    ratings = np.clip(np.round(3 + effect[director[items]] + rng.normal(0, 0.4, len(items))), 1, 5)
    ds = Dataset("directors", Vocab(range(n_users), "user"), Vocab(range(n_items), "item"),
                 Interactions(users, items, ratings, rng.random(len(items))),
                 FeatureTable(n_users, [Feature.categorical("gender", rng.choice(["F", "M"], n_users))]),
                 FeatureTable(n_items, [Feature.multi("genres", [[f"g{rng.integers(4)}"] for _ in range(n_items)])]))
    return ds, [f"director {d}" for d in director]


@pytest.fixture(scope="module")
def director_splits():
    plain, names = director_dataset()
    with_director, _ = director_dataset()
    with_director.item_features.add(Feature.categorical("director", names))  # the LLM-supplied attribute
    return leave_one_out(plain), leave_one_out(with_director)


@pytest.mark.parametrize("name", RATING_MODELS)
def test_extra_item_attribute_is_used_without_code_change(name, director_splits):
    plain, augmented = director_splits
    a = create_model(name, **FAST).fit(plain, progress=False)
    b = create_model(name, **FAST).fit(augmented, progress=False)
    assert b.schema.n_fields == a.schema.n_fields + 1 and "item.director" in b.schema.field_names
    assert b.net.fields.embedding.num_embeddings == a.net.fields.embedding.num_embeddings + 7  # 6 + missing
    test = plain.test
    err_a = rmse(a.predict(test.user, test.item), test.rating)
    err_b = rmse(b.predict(test.user, test.item), test.rating)
    assert err_b < 0.85 * err_a, f"{name}: with director {err_b:.4f}, without {err_a:.4f}"
