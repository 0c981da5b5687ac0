"""benchmarks/sequential_seeds.py: models over seeds, compared with the first over seeds and over users; resumable."""

import json

import numpy as np
import pytest

from tests.benchmarks import load_benchmark


def load():
    return load_benchmark("sequential_seeds.py")


def fake_run(model, seed, shift, rng):
    per_user = {m: list(np.clip(rng.random(50) * 0.3 + shift, 0, 1)) for m in ("ndcg@10", "hr@10")}
    return {"model": model, "seed": seed, "params": {}, "per_user": per_user, "users": list(range(50)),
            "test": {m: float(np.mean(v)) for m, v in per_user.items()}, "valid_ndcg@10": 0.1,
            "best_epoch": 3, "epochs_run": 8, "train_seconds": 10.0}


def test_summary_compares_each_model_with_the_first():
    mod, rng = load(), np.random.default_rng(0)
    runs = [fake_run("a", s, 0.0, rng) for s in (0, 1, 2)] + [fake_run("b", s, 0.2, rng) for s in (0, 1)]
    s = mod.summarize(runs, ["a", "b"])
    a, b = s["rows"]
    assert a["seeds"] == [0, 1, 2] and b["seeds"] == [0, 1]
    assert a["ndcg@10"] == pytest.approx(np.mean([r["test"]["ndcg@10"] for r in runs[:3]]))
    (vs,) = s["against"]
    assert vs["seeds"] == [0, 1]  # the seeds both models have
    assert vs["ndcg@10_diff"] == pytest.approx(np.mean([r["test"]["ndcg@10"] for r in runs[3:]])
                                               - np.mean([r["test"]["ndcg@10"] for r in runs[:2]]))
    assert vs["ndcg@10_diff"] > 0.15 and vs["ndcg@10_p_users"] < 1e-6
    md = mod.markdown({"summary": s, "split": "leave-one-out", "date": "d", "machine": "m", "torch": "t",
                       "threads": 1, "params": {}})
    assert "| b | a | 2 | +0.2" in md


def test_runs_on_ml100k_and_resumes(tmp_path):
    mod = load()
    args = ["--models", "sasrec", "bert4rec", "--seeds", "0", "1", "--no-progress", "--out", str(tmp_path / "r"),
            "--param", "epochs=1", "--param", "max_len=8", "--param", "hidden_size=8"]
    first = mod.main(args)
    assert [(r["model"], r["seed"]) for r in first["runs"]] == [("sasrec", 0), ("sasrec", 1), ("bert4rec", 0),
                                                                  ("bert4rec", 1)]
    assert all(len(r["per_user"]["ndcg@10"]) == len(r["users"]) == 943 for r in first["runs"])
    again = mod.main(args + ["--note", "resumed"])  # nothing trained again: the same stored runs
    assert [r["train_seconds"] for r in again["runs"]] == [r["train_seconds"] for r in first["runs"]]
    assert again["date"].startswith(first["date"]) and again["notes"] == ["resumed"]  # dates and notes kept
    assert "- resumed" in (tmp_path / "r.md").read_text()
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["summary"]["against"][0]["model"] == "bert4rec" and (tmp_path / "r.md").is_file()
    manifest = json.loads((tmp_path / "manifest.json").read_text())  # how the result was made, beside it
    assert manifest["files"] == ["r.json", "r.md"] and "benchmarks/sequential_seeds.py" in manifest["command"]
    assert manifest["command"].endswith("--note resumed")
    assert [e["command"] for e in manifest["earlier"]] == [manifest["command"].removesuffix(" --note resumed")]


def test_validation_only_runs_never_read_the_test(tmp_path, monkeypatch):
    mod = load()
    from recfuse.data.splits import Split

    def no_test(self, stage):
        assert stage != "test", "the test split was read"
        return original(self, stage)
    original = Split.ground_truth
    monkeypatch.setattr(Split, "ground_truth", no_test)
    rep = mod.main(["--models", "sasrec", "--seeds", "0", "--valid-only", "--no-progress", "--out", str(tmp_path / "v_0.5"),
                    "--param", "epochs=1", "--param", "max_len=8", "--param", "hidden_size=8"])
    (run,) = rep["runs"]
    assert "test" not in run and run["valid_ndcg@10"] > 0 and rep["summary"] == {"rows": [], "against": []}
    assert "Validation only" in (tmp_path / "v_0.5.md").read_text()  # a dot in --out is kept
    with pytest.raises(SystemExit, match="another --out"):  # other settings never mix into one file
        mod.main(["--models", "sasrec", "--seeds", "0", "--valid-only", "--out", str(tmp_path / "v_0.5"),
                  "--param", "epochs=2"])
