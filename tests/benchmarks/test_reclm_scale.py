"""benchmarks/reclm_scale.py at a hundredth of MIND's and Netflix's shapes: the data's shape, every stage in the
table, profiles for a sample of users, the rest counted."""

import json

import numpy as np

from recfuse.data.dataset import SPLIT_CODES

from tests.benchmarks import load_benchmark


def test_synthetic_shapes_are_two_snapshots():
    mod = load_benchmark("reclm_scale.py")
    ds = mod.synthetic("mind", 0.01)
    train = ds.predefined_split == SPLIT_CODES["train"]
    assert (ds.n_users, ds.n_items) == (571, 38) and ds.item_text_fields()
    assert ds.interactions.timestamp[train].max() < ds.interactions.timestamp[~train].min()
    new = np.setdiff1d(ds.interactions.item[~train], ds.interactions.item[train])
    assert len(new) > 0  # news: the test day brings new items


def test_a_tiny_run_writes_every_stage(tmp_path):
    mod = load_benchmark("reclm_scale.py")
    mod.main(["--shape", "netflix", "--scale", "0.01", "--epochs", "1", "--encoder", "hashing:16",
              "--backbones", "biasmf", "--profile-users", "10", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "reclm_scale_netflix_x0.01.json").read_text())
    stages = {s["stage"] for s in res["stages"]}
    assert {"split", "similar users", "training (base)", "evaluation (base)", "profiles", "training (augment)",
            "evaluation (augment)"} <= stages
    assert all(s["peak_gib"] > 0 for s in res["stages"])
    users = res["info"]["user_profiles"]
    assert users["written"] == 10 and users["not_sampled"] > 0
    assert "| evaluation (augment) |" in (tmp_path / "reclm_scale_netflix_x0.01.md").read_text()
