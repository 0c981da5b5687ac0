"""The RecBole side-by-side runner (benchmarks/_recbole.py): a full run paused by its time budget and
resumed twice (the second time from a moved folder) scores exactly as the same run uninterrupted. Opt-in:
RecBole lives in its own venv (scripts/setup_recbole.sh); set RECFUSE_TEST_RECBOLE to its Python (about a
minute)."""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def recbole_python() -> str:
    python = os.environ.get("RECFUSE_TEST_RECBOLE")
    if not python:
        pytest.skip("set RECFUSE_TEST_RECBOLE to RecBole's Python (.recbole-venv/bin/python, scripts/setup_recbole.sh)")
    return python


def load_runner():
    spec = importlib.util.spec_from_file_location("_recbole", ROOT / "benchmarks" / "_recbole.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_atomic_dataset(folder: Path, users: int = 60) -> Path:
    """The first ``users`` users of the shipped ML-100K as a RecBole atomic dataset ``tiny``."""
    from recfuse.data.loaders import recbole_ml100k_dir

    src = recbole_ml100k_dir()
    lines = (src / "ml-100k.inter").read_text().splitlines()
    keep = [line for line in lines[1:] if int(line.split("\t")[0]) <= users]
    (folder / "tiny").mkdir(parents=True)
    (folder / "tiny" / "tiny.inter").write_text("\n".join([lines[0], *keep]) + "\n")
    return folder


def tiny_sequential_config(rb, tmp_path: Path, epochs: int) -> dict:
    """RecBole's sequential setting, shrunk: the tiny dataset, one small layer, ``epochs`` epochs."""
    data = tiny_atomic_dataset(tmp_path / "data")
    return {**rb.SEQUENTIAL_CONFIG, "data_path": str(data), "hidden_size": 16, "inner_size": 32, "n_layers": 1,
            "n_heads": 1, "MAX_ITEM_LIST_LENGTH": 10, "train_batch_size": 256, "epochs": epochs,
            "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}}


def test_paused_and_resumed_run_scores_as_an_uninterrupted_one(tmp_path):
    python = recbole_python()
    rb = load_runner()
    cfg = tiny_sequential_config(rb, tmp_path, epochs=4)
    run = dict(overrides=cfg, python=python, full=True, threads=1, dataset="tiny")
    whole = rb.run_recbole("SASRec", resume_dir=tmp_path / "whole", **run)
    assert "error" not in whole, whole
    first = rb.run_recbole("SASRec", resume_dir=tmp_path / "parts", budget_seconds=0, **run)
    assert first.get("paused") and first["epochs_run"] == 1, first
    second = rb.run_recbole("SASRec", resume_dir=tmp_path / "parts", budget_seconds=0, **run)
    assert second.get("paused") and second["epochs_run"] == 2, second
    (tmp_path / "parts").rename(tmp_path / "moved")  # a resume folder carried elsewhere goes on from there
    last = rb.run_recbole("SASRec", resume_dir=tmp_path / "moved", **run)
    assert "error" not in last and not last.get("paused"), last
    assert last["sittings"] == 3 and whole["sittings"] == 1
    assert last["valid_scores"] == whole["valid_scores"] and len(whole["valid_scores"]) == 4
    assert last["test"] == whole["test"] and last["best_epoch"] == whole["best_epoch"]
    assert len(last["epoch_seconds"]) == 4
    other = rb.run_recbole("SASRec", resume_dir=tmp_path / "moved", **{**run, "overrides": {**cfg, "epochs": 5}})
    assert "other settings" in other["error"]


@pytest.mark.parametrize("model", ["SASRec", "BERT4Rec"])
def test_best_model_is_scored_under_both_protocols(tmp_path, model):
    """Our loop over RecBole's full-sort predictions reproduces RecBole's own test numbers when nothing is
    masked; masking the user's earlier items can only lift the test item; a run finished before this was
    measured gets it added from its saved best model, with the same numbers."""
    import json

    python = recbole_python()
    rb = load_runner()
    cfg = tiny_sequential_config(rb, tmp_path, epochs=2)
    run = dict(overrides=cfg, python=python, full=True, threads=1, dataset="tiny", resume_dir=tmp_path / "run")
    out = rb.run_recbole(model, **run)
    assert "error" not in out, out
    assert out["test_users_scored"] == 60
    for k in (3, 5, 10):
        for m in ("hit", "ndcg"):
            assert out["test_recomputed"][f"{m}@{k}"] == pytest.approx(out["test"][f"{m}@{k}"], abs=1e-4)
        assert out["test_excluded"][f"hit@{k}"] >= out["test_recomputed"][f"hit@{k}"]
    done = tmp_path / "run" / "result.json"
    older = {k: v for k, v in json.loads(done.read_text()).items() if not k.startswith("test_") or k == "test_pairs"}
    done.write_text(json.dumps(older))
    again = rb.run_recbole(model, **run)
    assert again["test_excluded"] == out["test_excluded"] and again["test_recomputed"] == out["test_recomputed"]
