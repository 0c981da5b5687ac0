"""RecLM end to end on small synthetic data (items new in the test period) with a tiny random LLaMA as
both teacher and student: every stage runs, the tables are written, and a rerun comes from the caches."""

import json

import numpy as np

from recfuse.config import from_dict
from recfuse.reclm.pipeline import RecLM, RecLMConfig
from tests.reclm.conftest import cold_dataset



def make(tiny_llm_dir, out, tunings, variants=("base", "augment", "wo_user", "wo_item")):
    llm = {"backend": "hf", "model": str(tiny_llm_dir), "dtype": "float32"}
    cfg = from_dict(RecLMConfig, {
        "dataset": "synthetic", "fractions": [0.7, 0.1, 0.2], "backbones": ["biasmf", "lightgcn"],
        "backbone_params": {"epochs": 2, "embedding_dim": 8, "tower_hidden": [16], "patience": 2},
        "similar_params": {"epochs": 2, "embedding_dim": 8}, "seeds": [0], "variants": list(variants),
        "tunings": tunings, "llm": llm, "teacher": llm, "encoder": "hashing:32",
        "sft": {"max_steps": 2, "batch_size": 2, "lora_r": 2, "max_length": 512},
        "reward": {"epochs": 1, "batch_size": 2, "lora_r": 2, "max_length": 256},
        "ppo": {"steps": 2, "batch_size": 2, "mini_batch_size": 2, "ppo_epochs": 1, "max_new_tokens": 6},
        "instructions": 6, "kd_users": 4, "ppo_prompts": 2, "max_new_tokens": 6, "out": str(out),
        "progress": False})
    method = RecLM(cfg)
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
    seed = data["seeds"][0]
    # profiles: every answer parsed and counted; failures replaced by counted fallbacks
    p = seed["profiles"]["reclm"]
    assert p["user"]["user_profile"]["total"] == p["user"]["rows"]
    assert p["item"]["fallback"] <= p["item"]["rows"] == 40
    assert p["item"].get("cold_item_profile", {"total": 0})["total"] >= 1
    # teacher, tuning and refinement logged
    assert seed["teacher"]["answers"]["teacher_profile"]["total"] > 0
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
    assert res2["rows"] == res["rows"]


def test_tuning_ablation_runs(tiny_llm_dir, tmp_path):
    make(tiny_llm_dir, tmp_path, ["untuned", "gpt_kd", "naive", "mask"], variants=("base", "augment")).run()
    rows = json.loads((tmp_path / "synthetic" / "results.json").read_text())["rows"]
    assert {r["profiles"] for r in rows if r["variant"] == "augment"} == {"untuned", "gpt_kd", "naive", "mask"}
