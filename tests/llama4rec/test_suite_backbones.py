"""Every run of the committed 13-backbone suite (Tables 2-4) goes through Llama4Rec end to end: its task, its
backbone and its settings, on tiny synthetic data with a tiny random LLaMA, one seed. The real suite takes hours
per backbone; a backbone that cannot take the LLM's augmentation or give a similar user must fail here, not
hours into it."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from recfuse.data import make_synthetic
from recfuse.runner import load_method_suite

SUITE = Path(__file__).parents[2] / "configs" / "llama4rec_ml100k_suite.yaml"


def suite_configs(tiny_llm_dir: Path | None, out: Path) -> list:
    """The suite file's runs, shrunk to plumbing size (the runs' own settings kept under the overrides)."""
    llm = {"backend": "hf", "model": str(tiny_llm_dir), "dtype": "float32"} if tiny_llm_dir else {}
    _, cfgs, _ = load_method_suite(SUITE, overrides={
        "dataset": "synthetic", "seeds": [0], "variants": ["base", "ift", "llama4rec"], "backbone_params": {"epochs": 2},
        "instructions": 8, "candidates": 5, "llm": llm, "sft": {"max_steps": 2, "batch_size": 4, "lora_r": 4},
        "progress": False, "da_attributes": ["director"], "da_examples": {"director": [["Item 1", "Ann Example"]]}})
    return [dataclasses.replace(c, out=str(out)) for c in cfgs]  # the file's own 'out' wins over overrides


RUNS = [f"{c.task}-{c.backbone}" for c in suite_configs(None, Path("runs/plumbing"))]


def test_the_suite_holds_the_papers_thirteen_backbones():
    assert sorted(RUNS) == sorted(
        [f"direct-{b}" for b in ("mf", "lightgcn", "mixgcf", "sgl")]
        + [f"sequential-{b}" for b in ("sasrec", "bert4rec", "cl4srec")]
        + [f"rating-{b}" for b in ("deepfm", "nfm", "dcn", "afm", "xdeepfm", "autoint")])


@pytest.mark.parametrize("run", RUNS)
def test_every_run_of_the_suite_goes_through_llama4rec(run, tiny_llm_dir, tmp_path):
    from recfuse.llama4rec.pipeline import Llama4Rec

    cfg = next(c for c in suite_configs(tiny_llm_dir, tmp_path) if f"{c.task}-{c.backbone}" == run)
    method = Llama4Rec(cfg)
    method.dataset = make_synthetic(n_users=15, n_items=30, n_topics=3, interactions_per_user=8, seed=0)
    method.run()
    data = json.loads((tmp_path / "synthetic" / run / "results.json").read_text())
    rows = {r["variant"]: r for r in data["rows"]}
    assert {"base", "ift", "llama4rec"} <= set(rows) and set(rows) == set(cfg.variants)  # LightGCN: the ablations
    metric = "rmse" if cfg.task == "rating" else "ndcg@3"
    assert np.isfinite([r[metric] for r in rows.values()]).all()
    assert data["seeds"][0]["data_augmentation"]  # the LLM's augmentation reached the backbone's training
