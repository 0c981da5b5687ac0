"""RecLM end to end on small synthetic data (items new in the test period) with a tiny random LLaMA as the
student and a scripted teacher that writes valid profiles (a strong teacher's stand-in): every stage runs,
the tables are written, and a rerun comes from the caches. A teacher with no valid profile is an error."""

import json
import re

import numpy as np
import pytest

from recfuse.config import from_dict
from recfuse.errors import ConfigError
from recfuse.reclm.pipeline import RecLM, RecLMConfig
from tests.reclm.conftest import cold_dataset


pytestmark = pytest.mark.usefixtures("scripted_teacher")


def make(tiny_llm_dir, out, tunings, variants=("base", "augment", "wo_user", "wo_item"), dataset=None, **extra):
    """RecLM with tiny settings on the synthetic cold-start data, or on the dataset folder ``dataset``."""
    llm = {"backend": "hf", "model": str(tiny_llm_dir), "dtype": "float32"}
    cfg = from_dict(RecLMConfig, {
        "dataset": str(dataset or "synthetic"), "fractions": [0.7, 0.1, 0.2], "backbones": ["biasmf", "lightgcn"],
        "backbone_params": {"epochs": 2, "embedding_dim": 8, "tower_hidden": [16], "patience": 2},
        "similar_params": {"epochs": 2, "embedding_dim": 8}, "seeds": [0], "variants": list(variants),
        "tunings": tunings, "llm": llm, "teacher": llm, "encoder": "hashing:32",
        "sft": {"max_steps": 2, "batch_size": 2, "lora_r": 2, "max_length": 512},
        "reward": {"epochs": 1, "batch_size": 2, "lora_r": 2, "max_length": 256},
        "ppo": {"steps": 2, "batch_size": 2, "mini_batch_size": 2, "ppo_epochs": 1, "max_new_tokens": 6},
        "instructions": 6, "kd_users": 4, "ppo_prompts": 2, "max_new_tokens": 6, "out": str(out),
        "progress": False, **extra})
    method = RecLM(cfg)
    if dataset is None:
        method.dataset = cold_dataset(n_users=16, n_items=40)
    return method


def test_reclm_end_to_end_and_cached_rerun(tiny_llm_dir, tmp_path):
    res = make(tiny_llm_dir, tmp_path, ["reclm"]).run()
    out = tmp_path / "synthetic"
    data = json.loads((out / "results.json").read_text())
    rows = data["rows"]
    keys = {(r["backbone"], r["variant"], r["setting"]) for r in rows}
    for b in ("biasmf", "lightgcn"):
        for v in ("base", "augment", "wo_user", "wo_item"):
            for s in ("full_shot", "zero_shot"):
                assert (b, v, s) in keys
    for r in rows:
        for m in ("recall@20", "recall@40", "ndcg@20", "ndcg@40"):
            assert 0 <= r[m] <= 1
        assert ("recall@20_impr" in r) == (r["variant"] != "base")
        assert set(r["tied_share"]) == {"20", "40"} and all(0 <= v <= 1 for v in r["tied_share"].values())
    seed = data["seeds"][0]
    # profiles: every answer parsed and counted; failures replaced by counted fallbacks
    p = seed["profiles"]["reclm"]
    assert p["user"]["user_profile"]["total"] == p["user"]["rows"]
    assert p["item"]["fallback"] <= p["item"]["rows"] == 40
    assert p["item"].get("cold_item_profile", {"total": 0})["total"] >= 1
    # teacher, tuning and refinement logged; distillation uses the teacher's valid profiles only
    assert seed["teacher"]["answers"]["teacher_profile"]["total"] > 0
    assert seed["teacher"]["kd_users"] == {"sampled": 4, "with_valid_teacher_profile": 4}
    assert seed["teacher"]["sampling"]["positives"] == seed["teacher"]["sampling"]["negatives"]
    ppo = seed["refinement"]["ppo"]["steps"]
    assert len(ppo) == 2 and all(np.isfinite([s["reward"], s["kl"], s["beta"]]).all() for s in ppo)
    assert "accuracy" in seed["refinement"]["reward_model"]["train_accuracy_after"]
    assert len(data["cost"]) == 2 and (out / "tables.md").read_text().count("|") > 20

    # rerun: every stage reused, the LLM asked nothing
    from recfuse.llm import local
    calls = {"n": 0}
    original = local.LocalLLM.generate

    def counting(self, prompts, *a, **k):
        calls["n"] += len(prompts)
        return original(self, prompts, *a, **k)

    local.LocalLLM.generate = counting
    try:
        res2 = make(tiny_llm_dir, tmp_path, ["reclm"]).run()
    finally:
        local.LocalLLM.generate = original
    assert calls["n"] == 0
    assert res2.rows == res.rows

    # recfuse report: tables.md comes back from results.json alone
    from recfuse.cli import main

    tables = (out / "tables.md").read_text()
    (out / "tables.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "tables.md").read_text() == tables


def test_teacher_without_valid_profiles_is_a_clear_error(tiny_llm_dir, tmp_path, monkeypatch):
    from recfuse.reclm.pipeline import RecLM

    class Mute:  # a teacher whose every profile is invalid (empty): nothing to distil
        fingerprint = "mute-teacher"

        def generate(self, prompts, **kw):
            return [""] * len(prompts)

    monkeypatch.setattr(RecLM, "load_teacher", lambda self: Mute())
    with pytest.raises(ConfigError, match="no valid profile for any of the 4 distillation users"):
        make(tiny_llm_dir, tmp_path, ["gpt_kd"], variants=("base", "augment")).run()


def test_llm_seed_writes_the_profiles_once_for_all_seeds(tiny_llm_dir, tmp_path):
    method = make(tiny_llm_dir, tmp_path, ["gpt_kd"], variants=("base", "augment"), seeds=[0, 1], llm_seed=0)
    asked, original = [], method.profile_llm

    def recording(tuning, split, hist, similar, seed, report):
        asked.append((seed, similar.copy()))
        return original(tuning, split, hist, similar, seed, report)

    method.profile_llm = recording
    seeds = method.run().extra["seeds"]
    assert [s for s, _ in asked] == [0, 0] and np.array_equal(asked[0][1], asked[1][1])
    assert [s["seed"] for s in seeds] == [0, 1] and [s["llm_seed"] for s in seeds] == [0, 0]
    assert json.dumps(seeds[0]["profiles"], default=str) == json.dumps(seeds[1]["profiles"], default=str)
    tables = (tmp_path / "synthetic" / "tables.md").read_text()
    assert "LLM side (similar users, tuning, profiles) from seed 0" in tables
    # the precision "auto" resolved to on this machine is on record (bf16 where the CPU has bf16 units)
    assert re.search(r"- gpt_kd \(LLM in (float32|bfloat16) on cpu\): users", tables)


def test_tuning_ablation_runs(tiny_llm_dir, tmp_path):
    make(tiny_llm_dir, tmp_path, ["untuned", "gpt_kd", "naive", "mask"], variants=("base", "augment")).run()
    rows = json.loads((tmp_path / "synthetic" / "results.json").read_text())["rows"]
    assert {r["profiles"] for r in rows if r["variant"] == "augment"} == {"untuned", "gpt_kd", "naive", "mask"}

    # a suite folder re-rendered by recfuse report: the run's tables.md, then suite.md with the target check
    import yaml

    from recfuse.cli import main
    config = yaml.safe_load((tmp_path / "synthetic" / "config.yaml").read_text())
    (tmp_path / "suite.json").write_text(json.dumps({"runs": [{"dataset": "synthetic", "name": "", "config": config,
                                                                "rows": []}]}))
    (tmp_path / "synthetic" / "tables.md").unlink()
    assert main(["report", str(tmp_path)]) == 0
    suite_md = (tmp_path / "suite.md").read_text()
    assert suite_md.startswith("# RecLM suite\n\n## synthetic\n\n# RecLM on synthetic")
    assert (tmp_path / "synthetic" / "tables.md").read_text() in suite_md and "augment above base" in suite_md


# ---- the same command on other data layouts: a plain CSV folder, MIND files (no code change) ----------

def write_csv_folder(ds, folder):
    """``ds`` as a Book-Crossing-like CSV folder: interactions, an item file with text, a dataset.yaml."""
    import pandas as pd

    folder.mkdir()
    inter = ds.interactions
    pd.DataFrame({"reader": ds.users.external(inter.user), "book": ds.items.external(inter.item),
                  "stars": inter.rating, "when": inter.timestamp.astype(int)}).to_csv(folder / "ratings.csv", index=False)
    feats = ds.item_features
    pd.DataFrame({"book": ds.items.external(np.arange(ds.n_items)), "name": feats["title"].values,
                  "tags": ["|".join(feats["genres"].row_values(i)) for i in range(ds.n_items)]}
                 ).to_csv(folder / "books.csv", index=False)
    (folder / "dataset.yaml").write_text(
        "interactions: ratings.csv\nuser: reader\nitem: book\nrating: stars\ntimestamp: when\n"
        "items: {file: books.csv, id: book, text: [name], multi: {tags: '|'}}\n")
    return folder


def write_mind_folder(ds, folder):
    """``ds`` as MIND files: one impression per interaction (the item clicked), news.tsv with the titles."""
    import datetime as dt

    folder.mkdir()
    inter, start = ds.interactions, dt.datetime(2019, 11, 9)
    feats = ds.item_features
    with open(folder / "news.tsv", "w") as f:
        for i, nid in enumerate(ds.items.external(np.arange(ds.n_items))):
            topic = feats["genres"].row_values(i)[0]
            f.write(f"{nid}\t{topic}\t{topic}\t{feats['title'].values[i]}\tAn abstract.\thttp://x\t[]\t[]\n")
    with open(folder / "behaviors.tsv", "w") as f:
        for r, (u, i, t) in enumerate(zip(ds.users.external(inter.user), ds.items.external(inter.item),
                                          inter.timestamp)):
            when = (start + dt.timedelta(seconds=float(t))).strftime("%m/%d/%Y %I:%M:%S %p")
            f.write(f"{r + 1}\t{u}\t{when}\t\t{i}-1\n")
    return folder


@pytest.mark.parametrize("layout", ["csv", "mind"])
def test_reclm_runs_on_other_layouts_with_no_code_change(tiny_llm_dir, tmp_path, layout):
    ds = cold_dataset(n_users=16, n_items=40)
    folder = (write_csv_folder if layout == "csv" else write_mind_folder)(ds, tmp_path / layout)
    method = make(tiny_llm_dir, tmp_path / "out", ["reclm"], variants=("base", "augment"), dataset=folder)
    assert method.dataset.has_timestamps and method.dataset.item_text_fields()
    assert (method.dataset.n_users, method.dataset.n_items) == (16, 40)
    method.run()
    data = json.loads((tmp_path / "out" / layout / "results.json").read_text())
    settings = {(r["backbone"], r["variant"], r["setting"]) for r in data["rows"]}
    assert {("biasmf", "augment", "zero_shot"), ("lightgcn", "augment", "full_shot")} <= settings
    assert data["seeds"][0]["cold_items_test"] > 0


# ---- the paper's protocol: train on one snapshot, test on the next (the dataset's own files) ---------------

def write_snapshot_folder(ds, folder, test_share=0.25):
    """``ds`` as two snapshot files, train.csv (every timestamp 1) and test.csv (every timestamp 2), the test
    file holding the latest ``test_share`` of the interactions (of users with earlier ones); no validation file."""
    import pandas as pd

    folder.mkdir()
    inter = ds.interactions
    late = inter.timestamp > np.quantile(inter.timestamp, 1 - test_share)
    frame = pd.DataFrame({"u": ds.users.external(inter.user), "i": ds.items.external(inter.item)})
    train, test = frame[~late], frame[late]
    test = test[test.u.isin(set(train.u))]  # every test user has training history
    train.assign(t=1).to_csv(folder / "train.csv", index=False)
    test.assign(t=2).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"i": ds.items.external(np.arange(ds.n_items)), "title": ds.item_features["title"].values}
                 ).to_csv(folder / "items.csv", index=False)
    (folder / "dataset.yaml").write_text("interactions: {train: train.csv, test: test.csv}\nuser: u\nitem: i\n"
                                         "timestamp: t\nitems: {file: items.csv, id: i, text: [title]}\n")
    return train, test


def test_reclm_on_a_predefined_split_carves_validation_from_training(tiny_llm_dir, tmp_path):
    from recfuse.reclm.backbones import setting_masks

    train, test = write_snapshot_folder(cold_dataset(n_users=16, n_items=40), tmp_path / "snap")
    method = make(tiny_llm_dir, tmp_path / "out", ["untuned"], variants=("base", "augment"),
                  dataset=tmp_path / "snap", split="predefined", profile_users=4)
    ds = method.dataset
    assert set(test.u) <= set(train.u)  # the fixture: every test user has training history

    split = method.split()
    pairs = lambda inter: set(zip(ds.users.external(inter.user), ds.items.external(inter.item)))  # noqa: E731
    train_pairs, test_pairs = set(zip(train.u, train.i)), set(zip(test.u, test.i))
    # validation came from the training snapshot (one timestamp: a seeded share of each user's), never from test
    assert len(split.valid) > 0 and pairs(split.valid) <= train_pairs
    assert not pairs(split.valid) & (test_pairs - train_pairs)
    assert len(split.train) + len(split.valid) == len(train) and len(split.test) == len(test)
    assert "seeded" in split.info["validation"] and "carved" in split.protocol
    # zero-shot ranks exactly the test items absent from the training snapshot; full-shot the ones in it
    masks = setting_masks(split)
    cold = set(test.i) - set(train.i)
    assert cold and set(ds.items.external(np.flatnonzero(masks["zero_shot"]))) == cold
    assert set(ds.items.external(np.flatnonzero(masks["full_shot"]))) == set(train.i)

    method.run()
    data = json.loads((tmp_path / "out" / "snap" / "results.json").read_text())
    pools = {(r["backbone"], r["variant"], r["setting"]): r["pool_items"] for r in data["rows"]}
    assert pools[("biasmf", "augment", "zero_shot")] == len(cold)
    assert pools[("lightgcn", "base", "full_shot")] == len(set(train.i))
    assert data["seeds"][0]["split"]["validation_from_train"] == len(split.valid)
    # profiles written by the LLM for a sample of 4 users, the others' fallbacks counted
    users = data["seeds"][0]["profiles"]["untuned"]["user"]
    assert users["rows"] == 4 and users["not_sampled"] == len(set(train.u)) - 4
    assert "not in the --profile-users sample (fallback profiles)" in (tmp_path / "out" / "snap" / "tables.md").read_text()
    assert {"split", "evaluation", "profiles", "backbone training"} <= set(data["seeds"][0]["timings"])


def test_reclm_split_options_are_checked(tiny_llm_dir, tmp_path):
    with pytest.raises(ConfigError, match="both --valid-start and --test-start"):
        make(tiny_llm_dir, tmp_path, ["untuned"], valid_start=5.0)
    with pytest.raises(ConfigError, match="predefined split uses the dataset's own files"):
        make(tiny_llm_dir, tmp_path, ["untuned"], split="predefined", valid_start=1.0, test_start=2.0)


def test_a_reclm_run_folder_is_servable_with_new_items(tiny_llm_dir, tmp_path):
    """The results folder keeps each seed's served model (the first backbone's Augment), the dataset and
    serving.json; `recfuse serve` (a real process) recommends from it and scores a new item at once through
    its description (text features) and its description's fallback profile (the fused profile)."""
    from recfuse.models.runfolder import read_run
    from recfuse.serving.texts import new_item_description
    from tests.serving.conftest import Server

    method = make(tiny_llm_dir, tmp_path, ["untuned"], variants=("base", "augment"))
    method.run()
    out = tmp_path / method.dataset.name
    run = read_run(out)
    manifest = run.manifest
    assert run.seeds == [0] and manifest["model"] == "biasmf" and manifest["settings"]["served_variant"] == "augment"
    assert manifest["item_text_format"] == "description" and manifest["item_profile_encoder"] == "hashing:32"
    ds = run.dataset  # a new item's description is written as a known item's
    features = {f.name: f.row_values(3) for f in ds.item_features if f.name != "title" and f.kind != "text"}
    text_fields = [f for f in ds.item_text_fields() if f != "title"]
    text = str(ds.item_features[text_fields[0]].row_values(3)) if text_fields else ""
    assert new_item_description(ds, ds.item_title(3), text, features) == ds.item_description(3)
    server = Server(out)
    try:
        health = server.get("/health").json()
        assert health["model"] == "biasmf" and health["can"]["new_items"] is True
        user = str(ds.users.ids[0])
        assert len(server.get("/v1/recommend", params={"user": user, "k": 5}).json()["items"]) == 5
        item = {"item": "brand-new", "title": ds.item_title(3), "text": text, "features": features}
        r = server.post("/v1/items", json=item)
        assert r.status_code == 201, r.text
        everything = server.get("/v1/recommend", params={"user": user, "k": 1000}).json()["items"]
        assert "brand-new" in everything
        assert server.post("/v1/items", json={**item, "item": "x", "features": {"colour": "red"}}).status_code == 422
        assert server.get("/health").json()["new_item_profiles_from_description"] == 1
    finally:
        server.stop()


def test_an_interrupted_reclm_run_resumes_from_the_seeds_it_kept(tiny_llm_dir, tmp_path, monkeypatch):
    from tests.resuming import run_interrupted_before, run_recording_seeds

    settings = {"variants": ("base",), "seeds": [0, 1], "servable": False}
    run_interrupted_before(make(tiny_llm_dir, tmp_path, ["gpt_kd"], **settings), 1)
    kept = json.loads((tmp_path / "synthetic" / "seeds" / "seed0.json").read_text())["result"]
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path / "another-machine"))
    report, ran = run_recording_seeds(make(tiny_llm_dir, tmp_path, ["gpt_kd"], **settings))
    assert ran == [1] and report.extra["seeds"][0] == kept and not (tmp_path / "synthetic" / "seeds").exists()
    assert np.load(tmp_path / "synthetic" / "per_user_seed0.npz").files  # its per-user values came back too
