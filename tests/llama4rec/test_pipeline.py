"""Llama4Rec end to end on small synthetic data with a tiny random LLaMA (plumbing, fast), and a rerun
that must come entirely from the stage and answer caches."""

import json

import numpy as np

from recfuse.config import from_dict
from recfuse.data import make_synthetic
from recfuse.llama4rec.pipeline import Llama4Rec, Llama4RecConfig


def data_users(out, seed):
    """The validation users of a seed's cross-fitted gains, as kept in per_user_seed<N>.npz."""
    with np.load(out / f"per_user_seed{seed}.npz") as z:
        return z["valid_crossfit_llama4rec__user"]


def make(task, backbone, tiny_llm_dir, out, variants, **settings):
    cfg = from_dict(Llama4RecConfig, {**settings,
        "task": task, "dataset": "synthetic", "backbone": backbone, "backbone_params": {"epochs": 3},
        "variants": variants, "instructions": 8, "candidates": 5, "seeds": [0, 1],
        "llm": {"backend": "hf", "model": str(tiny_llm_dir), "dtype": "float32"},
        "sft": {"max_steps": 2, "batch_size": 4, "lora_r": 4}, "out": str(out), "progress": False,
        "da_attributes": ["director"], "da_examples": {"director": [["Item 1", "Ann Example"]]}})
    method = Llama4Rec(cfg)
    method.dataset = make_synthetic(n_users=15, n_items=30, n_topics=3, interactions_per_user=8, seed=0)
    return method


ALL = ["base", "ift", "llama4rec", "wo_da", "wo_pa", "wo_aa", "da_only"]


def test_direct_task_end_to_end_and_cached_rerun(tiny_llm_dir, tmp_path):
    method = make("direct", "mf", tiny_llm_dir, tmp_path, ALL)
    res = method.run()
    out = tmp_path / "synthetic" / "direct-mf"
    data = json.loads((out / "results.json").read_text())
    assert [r["variant"] for r in data["rows"]] == ALL
    assert data["data_fingerprint"] == method.data_fingerprint()  # what a suite compares before reusing it
    for row in data["rows"]:
        for m in ("hr@3", "hr@5", "ndcg@3", "ndcg@5"):
            assert 0 <= row[m] <= 1
    base = next(r for r in data["rows"] if r["variant"] == "base")
    assert "hr@3_impr" not in base
    assert (out / "alpha_heatmap_valid.png").stat().st_size > 1000
    assert (out / "results.md").read_text().count("|") > 20
    seed0 = data["seeds"][0]
    assert seed0["variants"]["llama4rec"]["alpha1"] in (0.1, 0.3, 0.5, 0.7, 0.9)
    assert seed0["data_augmentation"]["triples"] > 0
    assert isinstance(seed0["data_augmentation"]["used"], bool) and 0 <= seed0["data_augmentation"]["valid_p"] <= 1
    # the validation evidence behind the LLM's weight, and whether the tuned LLM learns, are recorded and shown
    chosen = seed0["variants"]["llama4rec"]
    assert 0 <= chosen["valid_p"] <= 1 and isinstance(chosen["llm_weight_used"], bool)
    assert chosen["test_rank_of_choice"] >= 1
    used = "da" if seed0["data_augmentation"]["used"] else "base"  # the backbone Llama4Rec mixed with
    assert {f"pa/{used}/valid", f"pa/{used}/test", "ift/base/test"} <= set(seed0["llm"]["diagnostics"])
    md = (out / "results.md").read_text()
    assert "Choice of the LLM's weight" in md and "Is the tuned LLM learning?" in md and "## Memory" in md
    # 2 seeds: their cross-fitted validation gains averaged per validation user (the seeds share the split)
    assert "validation gains of all seeds together" in md and "(per user, n " in md
    assert np.array_equal(res_users := data_users(out, 0), data_users(out, 1)) and len(res_users) == 15
    assert "## By long-tail group" in md and {r["group"] for r in data["long_tail"]} == {"tail", "middle", "head"}
    assert "| Llama4Rec | tail |" in md
    assert 0 <= chosen["valid_p_in_sample"] <= 1
    assert 0 < seed0["peak_memory_gib"]["instruction tuning"] < 64
    # every evaluated user is counted: test users == users with a test item
    assert all(v["test_users"] == 15 for v in seed0["variants"].values())
    # the paper's protocol beside the guard's: each mixing variant with its chosen alphas always mixed in
    alphas = [0.1, 0.3, 0.5, 0.7, 0.9]
    for seed in data["seeds"]:
        for name in ("llama4rec", "wo_da", "wo_pa", "wo_aa"):
            v = seed["variants"][name]
            assert set(v["always_mixed_metrics"]) == set(v["metrics"])
            if v["llm_weight_used"]:
                assert v["always_mixed_metrics"] == v["metrics"]
        mixed = seed["variants"]["llama4rec"]  # the test grid's cell at the chosen alphas is the same mix
        cell = mixed["test_grid"][alphas.index(mixed["alpha1"])][alphas.index(mixed["alpha2"])]
        assert np.isclose(mixed["always_mixed_metrics"]["ndcg@3"], cell)
    assert [r["variant"] for r in data["always_mixed"]] == ["base", "llama4rec", "wo_da", "wo_pa", "wo_aa"]
    assert "## Always mixed (the paper's protocol" in md
    refused = any(not seed["variants"]["llama4rec"]["llm_weight_used"] for seed in data["seeds"])
    assert ("Llama4Rec always mixed" in {r["variant"] for r in data["long_tail"]}) == refused

    # rerun: every stage is reused and the LLM is asked nothing
    again = make("direct", "mf", tiny_llm_dir, tmp_path, ALL)
    from recfuse.llm import local
    calls = {"n": 0}
    original = local.LocalLLM.choice_logprobs

    def counting(self, prompts, choices):
        calls["n"] += len(prompts)
        return original(self, prompts, choices)

    local.LocalLLM.choice_logprobs = counting
    try:
        res2 = again.run()
    finally:
        local.LocalLLM.choice_logprobs = original
    assert calls["n"] == 0
    assert res2.rows == res.rows
    # the cost table does not depend on the cache: reused stages and answers count at their recorded cost
    cost1 = {r["stage"]: r["seconds (mean over seeds)"] for r in data["cost"]}
    data2 = json.loads((out / "results.json").read_text())
    cost2 = {r["stage"]: r["seconds (mean over seeds)"] for r in data2["cost"]}
    assert set(cost1) == set(cost2) and "LLM instructions per second" in cost2
    # (a few hundredths of a second of slack: a rerun counts a reused stage at its recorded build time, while the
    # first run's clock also ran over saving and reloading it; cache lookups, the bug this guards, cost ~nothing)
    for stage in ("LLM inference", "instruction tuning", "data augmentation", "backbone training"):
        assert 0.9 * cost1[stage] - 0.05 <= cost2[stage] <= 1.1 * cost1[stage] + 1.0, stage


def test_rating_task_end_to_end(tiny_llm_dir, tmp_path):
    import pytest

    from recfuse.errors import ConfigError
    from recfuse.llama4rec.aggregation import ALPHA_GRID
    variants = ["base", "ift", "llama4rec", "wo_aa", "da_only", "mean_mix", "bias_mix"]
    make("rating", "deepfm", tiny_llm_dir, tmp_path, variants).run()
    folder = tmp_path / "synthetic" / "rating-deepfm"
    data = json.loads((folder / "results.json").read_text())
    rows = {r["variant"]: r for r in data["rows"]}
    assert set(rows) == set(variants)
    assert all(0 < r["rmse"] < 5 for r in rows.values())
    # the controls: ratings made without an LLM mixed in with alphas chosen and guarded like Llama4Rec's
    for name in ("mean_mix", "bias_mix"):
        control = data["seeds"][0]["variants"][name]
        assert control["alpha1"] in ALPHA_GRID and control["valid_users"] > 0
        assert 0 < control["always_mixed_metrics"]["rmse"] < 5
    md = (folder / "results.md").read_text()
    assert "Bias mix (no LLM)" in md and "Llama4Rec always mixed against each control" in md
    with pytest.raises(ConfigError, match="mean_mix is a control for the rating task"):
        make("direct", "mf", tiny_llm_dir, tmp_path, ["base", "mean_mix"])
    counts = data["seeds"][0]["data_augmentation"]["attribute_answers"]["director"]
    assert counts["director"]["total"] == 30  # one parsed answer per item, failures counted


def test_sequential_task_end_to_end(tiny_llm_dir, tmp_path):
    make("sequential", "sasrec", tiny_llm_dir, tmp_path, ["base", "llama4rec"]).run()
    data = json.loads((tmp_path / "synthetic" / "sequential-sasrec" / "results.json").read_text())
    assert data["seeds"][0]["data_augmentation"]["insertions"] == 15
    assert np.isfinite([r["ndcg@3"] for r in data["rows"]]).all()


def test_pointwise_ranking_end_to_end(tiny_llm_dir, tmp_path):
    """The LLM scores each candidate by its expected rating (tuned on both instruction tasks); the run writes a
    folder of its own beside the listwise one; pointwise ranking without pointwise instructions is refused."""
    import pytest

    from recfuse.errors import ConfigError
    make("direct", "mf", tiny_llm_dir, tmp_path, ["base", "ift", "llama4rec"], ranking="pointwise",
         instruction_tasks=["listwise", "pointwise"]).run()
    data = json.loads((tmp_path / "synthetic" / "direct-mf-pointwise" / "results.json").read_text())
    rows = {r["variant"]: r for r in data["rows"]}
    assert set(rows) == {"base", "ift", "llama4rec"} and np.isfinite([r["ndcg@3"] for r in rows.values()]).all()
    assert "ift/base/test" in data["seeds"][0]["llm"]["diagnostics"]
    with pytest.raises(ConfigError, match="pointwise ranking needs pointwise instructions"):
        make("direct", "mf", tiny_llm_dir, tmp_path, ["base"], ranking="pointwise")


def test_one_instruction_backbone_for_several_runs_tunes_the_llm_once(tiny_llm_dir, tmp_path):
    """Runs of one task whose instructions come from the same backbone get the same instructions: the LLM is tuned
    once (the second run finds the adapters cached); without the option each run tunes on its own lists."""
    import pytest

    from recfuse.errors import ConfigError

    def adapters(backbone, **settings):
        make("direct", backbone, tiny_llm_dir, tmp_path / backbone, ["base", "ift", "llama4rec"], seeds=[0],
             **settings).run()
        data = json.loads((tmp_path / backbone / "synthetic" / f"direct-{backbone}" / "results.json").read_text())
        llm = data["seeds"][0]["llm"]
        return {name: llm[f"tuning_{name}"]["adapter"] for name in ("pa", "ift")}

    shared = {"instruction_backbone": "mf", "instruction_backbone_params": {"epochs": 3}}
    from_mf = adapters("mf", **shared)
    assert adapters("lightgcn", **shared) == from_mf
    assert adapters("lightgcn")["ift"] != from_mf["ift"]  # its own lists: other instructions, another tuning
    with pytest.raises(ConfigError, match="the direct task needs"):
        make("direct", "mf", tiny_llm_dir, tmp_path, ["base"], instruction_backbone="deepfm")


def test_rating_task_with_a_ranking_backbone_is_a_clear_error(tiny_llm_dir, tmp_path):
    import pytest

    from recfuse.errors import ConfigError
    with pytest.raises(ConfigError, match="the rating task needs a rating model; 'mf' is a direct model"):
        make("rating", "mf", tiny_llm_dir, tmp_path, ["base"])  # refused when built, before any training


def test_a_llama4rec_run_folder_is_servable(tiny_llm_dir, tmp_path):
    """The results folder keeps each seed's backbone (the one Llama4Rec mixed with), the dataset's ids and
    serving.json; the tuned adapter's folder and the chosen alphas are in results.json for --llm-rerank."""
    from recfuse.models.runfolder import read_run
    from recfuse.serving.rerank import settings_from_llama4rec_run

    make("direct", "mf", tiny_llm_dir, tmp_path, ["base", "llama4rec"]).run()
    out = tmp_path / "synthetic" / "direct-mf"
    run = read_run(out)
    assert run.seeds == [0, 1] and (out / "seed-1" / "model").is_dir()
    found, llm = settings_from_llama4rec_run(out, seed=0)
    assert "adapter" in found and llm["backend"] == "hf"


def test_report_recomputes_the_tests_over_users_from_the_kept_per_user_values(tiny_llm_dir, tmp_path, monkeypatch):
    """Re-rendering recomputes the tests over users from per_user_seed<N>.npz, rewriting results.json where a test
    changed (here: a p over users as an earlier version computed it), and the manifest records it."""
    from recfuse import provenance
    from recfuse.runner import rerender

    make("direct", "mf", tiny_llm_dir, tmp_path, ["base", "ift", "llama4rec"]).run()
    out = tmp_path / "synthetic" / "direct-mf"
    stale = json.loads((out / "results.json").read_text())
    ift = next(r for r in stale["rows"] if r["variant"] == "ift")
    right = ift["ndcg@3_p_users"]
    ift["ndcg@3_p_users"] = 1e-9
    (out / "results.json").write_text(json.dumps(stale))
    monkeypatch.setattr(provenance, "_command", "recfuse report " + str(out))  # as the CLI records it
    written = rerender(out)
    fixed = json.loads((out / "results.json").read_text())
    assert next(r for r in fixed["rows"] if r["variant"] == "ift")["ndcg@3_p_users"] == right
    assert out / "results.json" in written and out / "results.csv" in written
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"].startswith("recfuse report") and "results.json" in manifest["files"]
    assert manifest["earlier"][0]["command"] != manifest["command"]  # the run that made the folder, kept
    before = (out / "results.json").read_text()
    rerender(out)  # nothing changed: results.json is left as it is
    assert (out / "results.json").read_text() == before


def test_an_interrupted_run_resumes_without_its_stage_cache_from_the_seeds_it_kept(tiny_llm_dir, tmp_path,
                                                                                  monkeypatch):
    from tests.resuming import run_interrupted_before, run_recording_seeds

    settings = {"servable": False}
    run_interrupted_before(make("direct", "mf", tiny_llm_dir, tmp_path, ["base", "llama4rec"], **settings), 1)
    out = tmp_path / "synthetic" / "direct-mf"
    kept = json.loads((out / "seeds" / "seed0.json").read_text())["result"]
    with np.load(out / "seeds" / "seed0.npz") as z:
        kept_users = {k: z[k] for k in z.files}
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path / "another-machine"))  # no stage or answer cache
    _, ran = run_recording_seeds(make("direct", "mf", tiny_llm_dir, tmp_path, ["base", "llama4rec"], **settings))
    assert ran == [1] and not (out / "seeds").exists()
    data = json.loads((out / "results.json").read_text())
    assert [s["seed"] for s in data["seeds"]] == [0, 1] and data["seeds"][0] == kept
    with np.load(out / "per_user_seed0.npz") as z:
        assert set(z.files) == set(kept_users) and all(np.array_equal(z[k], kept_users[k]) for k in z.files)


def test_ratings_outside_one_to_five_are_refused_where_the_llm_reads_them(tiny_llm_dir, tmp_path):
    """Book-Crossing's 1-10: a 10 would be taught as the digit "1" and read back on a scale of 5, with no error."""
    import pytest

    from recfuse.errors import ConfigError
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "r.csv").write_text("u,i,r,t\n" + "".join(f"{u},{i},{1 + (u * i) % 10},{i}\n"
                                                         for u in range(5) for i in range(6)))
    (folder / "dataset.yaml").write_text("interactions: r.csv\nuser: u\nitem: i\nrating: r\ntimestamp: t\n")

    def build(task, backbone, **settings):
        return Llama4Rec(from_dict(Llama4RecConfig, {"task": task, "dataset": str(folder), "backbone": backbone,
                                                     "out": str(tmp_path / "out"), **settings}))
    with pytest.raises(ConfigError, match="ratings run from 1 to 10, but the rating task reads ratings as a digit"):
        build("rating", "deepfm")
    with pytest.raises(ConfigError, match="but pointwise ranking reads"):
        build("direct", "mf", ranking="pointwise", instruction_tasks=["listwise", "pointwise"])
    build("direct", "mf")  # listwise ranking shows no rating: fine


def test_the_data_augmented_backbone_is_cached_per_llm_answers(tiny_llm_dir, tmp_path, monkeypatch):
    """Two LLMs' item attributes gave one cache key (feature names only): the second run reused the backbone
    trained on the first LLM's attributes."""
    from types import SimpleNamespace

    from recfuse.data import leave_one_out
    from recfuse.llama4rec import augment
    from recfuse.llama4rec.tasks import task_for
    method = make("rating", "deepfm", tiny_llm_dir, tmp_path, ["base", "da_only"])
    split = leave_one_out(method.dataset)
    n = method.dataset.n_items

    def answers(llm, dataset, attribute, **kw):
        return SimpleNamespace(values=[f"{llm.fingerprint}{i % 3}" for i in range(n)], counts={"total": n})
    monkeypatch.setattr(augment, "item_attributes", answers)
    task = task_for(method)
    first, _ = task.with_attributes(split, SimpleNamespace(fingerprint="llm-a"))
    again, _ = task.with_attributes(split, SimpleNamespace(fingerprint="llm-a"))
    other, _ = task.with_attributes(split, SimpleNamespace(fingerprint="llm-b"))
    assert first.fingerprint() == again.fingerprint() != other.fingerprint()


def test_prompts_cut_to_the_context_are_counted_in_the_report():
    from types import SimpleNamespace

    from recfuse.llama4rec.pipeline import approximations
    from recfuse.llama4rec.report import cost_rows
    from recfuse.llama4rec.results import SeedResult

    backend = SimpleNamespace(stats={"prompts_truncated": 3})
    assert approximations(SimpleNamespace(llm=backend, stats={"hits": 9})) == {  # behind the answer cache
        "prompts_truncated": 3, "choices_not_in_top": 0}
    assert approximations(SimpleNamespace()) == {"prompts_truncated": 0, "choices_not_in_top": 0}
    seed = SeedResult(0, {})
    seed.inference = [{"stage": "test", "queries": 40, "seconds": 2.0, "queries_per_second": 20.0,
                       "prompts_truncated": 3}]
    row = next(r for r in cost_rows([seed]) if r["stage"].startswith("LLM prompts cut"))
    assert row["seconds (mean over seeds)"] == "3 (LLM queries: 40)"
