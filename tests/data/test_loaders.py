"""Every supported format loads from a small fixture file; the shipped ML-100K loads in full."""

from pathlib import Path

import numpy as np
import pytest

from recfuse.data import load_dataset, predefined
from recfuse.data.loaders import recbole_ml100k_dir

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.mark.skipif(recbole_ml100k_dir() is None, reason="the recbole wheel (ML-100K copy) is not installed")
def test_ml100k_from_recbole_wheel():
    ds = load_dataset("ml-100k")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (943, 1682, 100_000)
    assert set(ds.user_features.names) == {"age", "gender", "occupation", "zip_code"}
    assert set(ds.item_features.names) == {"title", "year", "genres"}
    toy = ds.items.index("1")[0]
    assert ds.item_title(toy) == "Toy Story"
    assert ds.item_features["year"].values[toy] == 1995
    assert ds.item_features["genres"].row_values(toy) == ["Animation", "Children's", "Comedy"]
    assert ds.user_features["occupation"].row_values(ds.users.index("1")[0]) == "technician"
    assert ds.user_features["age"].values[ds.users.index("2")[0]] == 53
    assert ds.interactions.rating.min() == 1 and ds.interactions.rating.max() == 5
    assert ds.has_timestamps


def test_ml100k_raw():
    ds = load_dataset(FIXTURES / "ml-100k-raw")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (3, 4, 8)
    item = ds.items.index("20")[0]
    assert ds.item_title(item) == "GoldenEye"
    assert ds.item_features["year"].values[item] == 1995
    assert ds.item_features["genres"].row_values(item) == ["Action", "Adventure", "Thriller"]
    assert ds.user_features["gender"].row_values(ds.users.index("2")[0]) == "F"
    # one-line texts for prompts: categorical side information in brackets, user features as name: value
    assert ds.item_brief(item) == "GoldenEye (Action, Adventure, Thriller)"
    user = ds.users.index("1")[0]
    assert ds.user_brief(user) == "age: 24, gender: M, occupation: technician, zip code: 85711"
    assert ds.user_brief(user, ["occupation"]) == "occupation: technician"


def test_ml1m_raw():
    ds = load_dataset(FIXTURES / "ml-1m-raw")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 3, 4)
    peach = ds.items.index("661")[0]
    assert ds.item_title(peach) == "James and the Giant Peach"
    assert ds.item_features["genres"].row_values(peach) == ["Animation", "Children's", "Musical"]
    assert ds.user_features["occupation"].row_values(ds.users.index("2")[0]) == "self-employed"


def test_recbole_atomic():
    ds = load_dataset(FIXTURES / "recbole")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 3, 4)
    assert ds.item_features["title"].kind == "text"
    assert ds.item_features["genres"].row_values(ds.items.index("i1")[0]) == ["Action", "Sci-Fi"]
    assert ds.user_features["age"].kind == "numeric"
    assert any("float_seq" in n for n in ds.notes)  # an unused field is reported, not silently dropped


def test_recbole_predefined_split():
    ds = load_dataset(FIXTURES / "recbole-predefined")
    split = predefined(ds)
    assert (len(split.train), len(split.valid), len(split.test)) == (3, 1, 2)
    # i3 (valid, test) and i4 (test) never occur in the train file: cold-start items
    assert list(ds.items.external(split.cold_items("test"))) == ["i3", "i4"]


def test_bookcrossing_with_kcore_and_no_timestamps():
    ds = load_dataset(FIXTURES / "bookcrossing", kcore=3)
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (3, 4, 12)  # user 15's single rating removed
    assert not ds.has_timestamps
    assert np.isnan(ds.user_features["age"].values[ds.users.index("11")[0]])  # NULL age is missing
    assert ds.item_features["author"].row_values(ds.items.index("0446520802")[0]) == "Nicholas Sparks"
    implicit = load_dataset(FIXTURES / "bookcrossing", kcore=1, explicit_only=False)
    assert len(implicit.interactions) == 14


def test_mind():
    ds = load_dataset(FIXTURES / "mind")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 4, 7)  # clicks + histories, deduplicated
    assert ds.item_title(ds.items.index("N3")[0]) == 'Vote "today"'
    assert ds.item_features["category"].row_values(ds.items.index("N2")[0]) == "sports"


def test_mind_train_dev_folders_are_a_predefined_split():
    ds = load_dataset(FIXTURES / "mind-predefined")
    split = predefined(ds)
    assert len(split.test) == 1 and len(split.train) == 6
    assert ds.items.external(split.test.item)[0] == "N4"


def test_netflix():
    ds = load_dataset(FIXTURES / "netflix")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (3, 2, 4)
    assert ds.item_title(ds.items.index("1")[0]) == "Dinosaur Planet"
    assert ds.interactions.timestamp.min() > 1e9


def test_csv_with_column_mapping():
    ds = load_dataset(FIXTURES / "csv")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 2, 3)
    assert ds.interactions.rating.tolist() == [4.5, 3.0, 5.0]
    assert ds.item_features["genres"].row_values(ds.items.index("100")[0]) == ["Horror", "Sci-Fi"]


def test_csv_mapping_given_as_options(tmp_path):
    (tmp_path / "log.tsv").write_text("who\twhat\nann\tbook\nbob\tbook\n")
    ds = load_dataset(tmp_path / "log.tsv", csv={"interactions": "log.tsv", "user": "who", "item": "what",
                                                 "sep": "\t"})
    assert (ds.n_users, ds.n_items) == (2, 1)


def test_csv_predefined_split():
    split = predefined(load_dataset(FIXTURES / "csv-predefined"))
    assert (len(split.train), len(split.valid), len(split.test)) == (3, 1, 1)


def test_synthetic_by_name():
    ds = load_dataset("synthetic", n_users=20, n_items=30, seed=1)
    assert ds.n_users == 20


def test_the_fingerprint_holds_feature_values_and_ids_not_only_names(tmp_path):
    """An edited title (or another LLM's item attributes) kept the fingerprint: stage caches reused stale text
    embeddings, attributes and trained backbones."""
    def folder(name, titles, users=("1", "2")):
        d = tmp_path / name
        d.mkdir()
        (d / "r.csv").write_text("u,i,r\n" + "".join(f"{u},{i},4\n" for u in users for i in (10, 11)))
        (d / "movies.csv").write_text("i,title\n" + "".join(f"{i},{t}\n" for i, t in zip((10, 11), titles)))
        (d / "dataset.yaml").write_text("interactions: r.csv\nuser: u\nitem: i\nrating: r\n"
                                        "items: {file: movies.csv, id: i, text: [title]}\n")
        return load_dataset(d, name="same")
    base = folder("a", ["Alien", "Heat"]).fingerprint()
    assert folder("b", ["Alien", "Heat"]).fingerprint() == base
    assert folder("c", ["Alien", "Fargo"]).fingerprint() != base
    assert folder("d", ["Alien", "Heat"], users=("1", "3")).fingerprint() != base
