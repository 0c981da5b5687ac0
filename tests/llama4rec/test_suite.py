"""Suite mode of Llama4Rec: finished runs are reused, not recomputed."""

import pytest

from recfuse.errors import ConfigError

from recfuse.config import to_dict
from recfuse.eval.report import write_report
from recfuse.io import read_json
from recfuse.llama4rec.pipeline import Llama4Rec
from recfuse.llama4rec.report import output_dir
from recfuse.llama4rec.results import SeedResult
from recfuse.runner import load_method_suite, run_suite


def test_suite_reuses_a_finished_run_with_the_same_settings(tmp_path, monkeypatch):
    f = tmp_path / "s.yaml"
    f.write_text(f"common: {{dataset: synthetic, seeds: [0]}}\nruns:\n  - {{task: direct, backbone: mf}}\n"
                 f"out: {tmp_path / 'out'}\n")
    _, (cfg,), _ = load_method_suite(f, "llama4rec")
    method = Llama4Rec(cfg)
    rows = [{"variant": "base", "hr@3": 0.25}]
    write_report(output_dir(cfg, method.dataset.name), rows, config=to_dict(cfg),
                 extra={"display": [{"method": "Base", "hr@3": "0.2500"}]})

    def must_not_run(self, only_seeds=None):
        raise AssertionError("a finished run was recomputed")

    monkeypatch.setattr(Llama4Rec, "run", must_not_run)
    res = read_json(run_suite(f, "llama4rec") / "suite.json")
    assert res["runs"][0]["rows"] == rows
    assert "0.2500" in (tmp_path / "out" / "suite.md").read_text()
    with pytest.raises(AssertionError, match="recomputed"):
        run_suite(f, "llama4rec", reuse=False)
    with pytest.raises(AssertionError, match="recomputed"):  # other settings: not the same run
        run_suite(f, "llama4rec", {"instructions": 7})


def test_suite_shows_a_run_finished_on_other_seeds(tmp_path, monkeypatch):
    """A point run on seed 0 first stays in a 3-seed suite's report (with its one seed, marked as pending for the
    other two) instead of being dropped; selected, it is run on all three; and a 3-seed run stays in a 1-seed pass."""
    f = tmp_path / "s.yaml"
    f.write_text(f"common: {{dataset: synthetic, seeds: [0, 1, 2]}}\nruns:\n  - {{task: direct, backbone: mf}}\n"
                 f"  - {{task: direct, backbone: lightgcn}}\nout: {tmp_path / 'out'}\n")
    _, (mf, lightgcn), _ = load_method_suite(f, "llama4rec")
    def write(cfg, config):
        write_report(output_dir(cfg, "synthetic"), [{"variant": "base", "hr@3": 0.25}], config=config,
                     extra={"display": [{"method": "Base", "hr@3": "0.2500"}]})

    write(mf, to_dict(mf) | {"seeds": [0]})
    ran, in_report = [], []  # what ran, and which runs the suite's report held as each began

    def fake_run(self, only_seeds=None):  # stands for a real run: its results on every configured seed
        ran.append((self.cfg.backbone, self.cfg.seeds))
        in_report.append([e["backbone"] for e in read_json(tmp_path / "out" / "suite.json")["runs"]])
        write(self.cfg, to_dict(self.cfg))

    monkeypatch.setattr(Llama4Rec, "run", fake_run)
    suite = read_json(run_suite(f, "llama4rec", only={"backbone": "lightgcn"}) / "suite.json")
    assert ran == [("lightgcn", [0, 1, 2])]
    assert [(e["backbone"], e["config"]["seeds"]) for e in suite["runs"]] == [("mf", [0]), ("lightgcn", [0, 1, 2])]
    assert suite["pending"] == ["direct: mf (seeds 0, 1, 2: 1 of 3 done)"]
    assert "1 of 3 done" in (tmp_path / "out" / "suite.md").read_text()
    suite = read_json(run_suite(f, "llama4rec", only={"backbone": "mf"}) / "suite.json")
    assert ran[-1] == ("mf", [0, 1, 2])  # selected, the partial run is run on every seed
    assert in_report == [["mf"], ["mf", "lightgcn"]]  # its seed 0 while it runs, and the finished run after it
    assert "pending" not in suite or not suite["pending"]
    # a quick pass on seed 0 keeps the 3-seed run it does not select (on its 3 seeds, nothing pending)
    suite = read_json(run_suite(f, "llama4rec", {"seeds": [0]}, only={"backbone": "lightgcn"}) / "suite.json")
    assert ran[-1] == ("lightgcn", [0])
    assert [(e["backbone"], e["config"]["seeds"]) for e in suite["runs"]] == [("mf", [0, 1, 2]), ("lightgcn", [0])]
    assert not suite.get("pending")


def test_suite_report_names_the_seeds_an_interrupted_run_kept(tmp_path, monkeypatch):
    f = tmp_path / "s.yaml"
    f.write_text(f"common: {{dataset: synthetic, seeds: [0, 1, 2], servable: false}}\nruns:\n"
                 f"  - {{task: direct, backbone: mf}}\n  - {{task: direct, backbone: lightgcn}}\nout: {tmp_path / 'out'}\n")
    _, (mf, _), _ = load_method_suite(f, "llama4rec")
    kept = Llama4Rec(mf).finished_seeds()
    for seed in (0, 2):
        kept.save(seed, SeedResult(seed, {}).to_json(), {})
    Llama4Rec(load_method_suite(f, "llama4rec", {"instructions": 7})[1][0]).finished_seeds().save(1, {}, {})
    def interrupted(self, only_seeds=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Llama4Rec, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):  # the report written before the first run is what is checked
        run_suite(f, "llama4rec", only={"backbone": "lightgcn"})
    suite = read_json(tmp_path / "out" / "suite.json")
    assert suite["pending"] == ["direct: mf (seeds 0, 1, 2: 2 of 3 finished, kept in synthetic/direct-mf/seeds)",
                                "direct: lightgcn"]


def test_the_suites_compute_table_sums_each_runs_stages_over_its_seeds(tmp_path):
    """Minutes per run and stage (summed over seeds), per seed, the whole suite, and the machine each ran on."""
    from recfuse.io import write_json
    from recfuse.llama4rec.suite import compute_rows, run_machine

    one = {"seeds": [{"timings": {"backbone training": 60.0, "LLM inference": 120.0}},
                     {"timings": {"backbone training": 60.0, "LLM inference": 240.0}}]}
    two = {"seeds": [{"timings": {"instruction tuning": 600.0}}]}
    write_json(tmp_path / "manifest.json", {"cpu": {"model": "Xeon", "count": 2, "flags": ["avx2"]}, "gpus": []})
    assert run_machine(tmp_path) == "Xeon, 2 cores, no bf16 units"
    write_json(tmp_path / "manifest.json", {"cpu": {"model": "Xeon", "count": 2, "flags": ["amx_bf16", "avx2"]}})
    assert run_machine(tmp_path) == "Xeon, 2 cores, bf16 units: amx_bf16"
    assert run_machine(tmp_path / "missing") == "not recorded"
    rows = compute_rows(["direct: mf", "rating: deepfm"], [one, two], ["Xeon", "Xeon"])
    assert rows[0]["seeds"] == 2 and rows[0]["backbone training (min)"] == 2.0
    assert rows[0]["LLM inference (min)"] == 6.0 and rows[0]["total (min)"] == 8.0 and rows[0]["per seed (min)"] == 4.0
    assert rows[1]["instruction tuning (min)"] == 10.0 and rows[1]["total (min)"] == 10.0
    assert rows[2]["run"] == "whole suite" and rows[2]["seeds"] == 3 and rows[2]["total (min)"] == 18.0
    assert rows[2]["LLM inference (min)"] == 6.0


def test_data_augmentation_table_is_readable():
    """Parse counts of attribute answers become one cell per attribute; examples stay out of the table."""
    from recfuse.llama4rec.report import augmentation_rows

    counts = {"valid": 704, "invalid": 755, "hallucinated": 223, "total": 1682, "valid_rate": 704 / 1682}
    reports = [{"seed": 0, "data_augmentation": {
        "attribute_answers": {"director": {"director": counts, "examples": {"director": [{"raw": "John Lasseter"}]}}},
        "train_seconds": 15.939540776}},
        {"seed": 1, "data_augmentation": {"triples": 943, "mean_confidence": 0.60826896}}]
    rows = augmentation_rows([SeedResult.from_json(r) for r in reports])
    assert rows[0] == {"seed": 0, "director answers": "704 valid, 755 invalid, 223 hallucinated of 1682 (42% valid)",
                       "train_seconds": 15.9395}
    assert rows[1] == {"seed": 1, "triples": 943, "mean_confidence": 0.6083}


def test_a_suite_with_axes_runs_every_point_and_writes_the_scaling_study(tmp_path, tiny_llm_dir):
    """axes repeat every run per combination (own folders, smallest first); the suite report adds summary.json
    (one row per task, backbone, llm, instructions, variant, seed), learning.json, scaling.md and figures; and
    `recfuse report` re-renders it from the files."""
    from recfuse.data import make_synthetic
    from recfuse.runner import rerender_suite

    f = tmp_path / "scaling.yaml"
    f.write_text(
        "method: llama4rec\n"
        "common: {dataset: synthetic, seeds: [0], variants: [base, ift, llama4rec], candidates: 5, ks: [3, 5],\n"
        f"         backbone_params: {{epochs: 2}}, sft: {{max_steps: 1, lora_r: 4}}, progress: false,\n"
        f"         llm: {{backend: hf, model: '{tiny_llm_dir}', dtype: float32}}}}\n"
        "axes: {instructions: [4, 8]}\n"
        "runs:\n  - {task: direct, backbone: mf}\n"
        f"out: {tmp_path / 'out'}\n")
    _, cfgs, out = load_method_suite(f)
    assert [c.instructions for c in cfgs] == [4, 8]
    assert len({c.out for c in cfgs}) == 2
    small = make_synthetic(n_users=15, n_items=30, n_topics=3, interactions_per_user=8, seed=0)
    import recfuse.llama4rec.pipeline as pl
    original = pl.load_dataset
    pl.load_dataset = lambda name: small  # the tiny synthetic data of the other pipeline tests
    try:
        run_suite(f, only={"instructions": 8})  # one point now: the report lists the other as still to run
        first = read_json(out / "suite.json")
        assert len(first["runs"]) == 1 and first["pending"] == ["direct: mf [instructions-4]"]
        with pytest.raises(ConfigError, match="no such option"):
            run_suite(f, only={"no_such": 1})
        run_suite(f)  # the rest; the finished point is reused
    finally:
        pl.load_dataset = original
    summary = read_json(out / "summary.json")
    assert len(summary) == 2 * 4  # 2 points x (3 variants + Llama4Rec always mixed) x 1 seed
    assert sorted({r["variant"] for r in summary}) == ["base", "ift", "llama4rec", "llama4rec_always_mixed"]
    assert {r["instructions"] for r in summary} == {4, 8}
    assert set(summary[0]) == {"task", "backbone", "llm", "ranking", "instructions", "variant", "seed", "hr@3",
                               "ndcg@3", "hr@5", "ndcg@5", "hr@10"}
    assert (out / "scaling_direct-mf.png").stat().st_size > 1000
    assert "| llm | instructions | variant | seeds |" in (out / "scaling.md").read_text()
    suite = read_json(out / "suite.json")
    assert [e["folder"] for e in suite["runs"]] == ["instructions-4/synthetic/direct-mf",
                                                    "instructions-8/synthetic/direct-mf"]
    (out / "summary.json").unlink()
    rerender_suite(out)
    assert read_json(out / "summary.json") == summary


def test_pointwise_ranking_runs_beside_listwise_and_is_a_line_of_its_own(tmp_path):
    """One backbone with both rankings: two folders, two labels, two lines in the scaling study; two runs that
    would write one folder are refused."""
    from recfuse.llama4rec.scaling import write_scaling

    f = tmp_path / "s.yaml"
    runs = ("  - {task: direct, backbone: mf}\n  - {task: direct, backbone: mf, ranking: pointwise, "
            "instruction_tasks: [listwise, pointwise]}\n")
    f.write_text(f"common: {{dataset: synthetic, seeds: [0]}}\nruns:\n{runs}out: {tmp_path / 'out'}\n")
    method, cfgs, _ = load_method_suite(f, "llama4rec")
    assert [method.run_label(c) for c in cfgs] == ["direct: mf", "direct: mf (pointwise)"]
    assert [output_dir(c, "synthetic").name for c in cfgs] == ["direct-mf", "direct-mf-pointwise"]
    f.write_text(f"common: {{dataset: synthetic, seeds: [0]}}\nruns:\n{runs}  - {{task: direct, backbone: mf}}\n"
                 f"out: {tmp_path / 'out'}\n")
    with pytest.raises(ConfigError, match="runs 1 and 3 would write the same folder"):
        load_method_suite(f, "llama4rec")

    seed = {"seed": 0, "variants": {v: {"metrics": {"hr@3": 0.1, "ndcg@3": 0.05}} for v in ("base", "ift")}}
    configs = [{**to_dict(c), "instructions": 128} for c in cfgs]
    write_scaling(tmp_path, configs, [{"seeds": [seed]}, {"seeds": [seed]}])
    assert {r["ranking"] for r in read_json(tmp_path / "summary.json")} == {"listwise", "pointwise"}
    table = (tmp_path / "scaling.md").read_text()
    assert "| smollm2-135m | 128 | ift |" in table and "| smollm2-135m (pointwise) | 128 | ift |" in table


def test_scaling_keeps_points_that_differ_in_another_setting_apart(tmp_path):
    """An axis other than the instructions and the LLM (here LoRA dropout) makes lines of their own: their rows
    name the setting, and neither the table nor the mean pools the two settings' seeds."""
    from recfuse.llama4rec.scaling import line_settings, write_scaling

    cfg = {"task": "direct", "backbone": "mf", "llm": {"model": "smollm2-135m"}, "instructions": 128,
           "out": "x", "seeds": [0]}
    configs = [{**cfg, "sft": {"lora_dropout": d, "lora_r": 16}, "out": f"p{d}"} for d in (0.0, 0.05)]
    assert line_settings(configs) == ["sft.lora_dropout=0.0", "sft.lora_dropout=0.05"]
    assert line_settings([configs[0], {**configs[0], "out": "y", "seeds": [1]}]) == ["", ""]  # nothing that counts

    def seed(ift):
        return {"seed": 0, "variants": {"base": {"metrics": {"hr@3": 0.05, "ndcg@3": 0.0}},
                                        "ift": {"metrics": {"hr@3": ift, "ndcg@3": 0.0}}}}
    write_scaling(tmp_path, configs, [{"seeds": [seed(0.04)]}, {"seeds": [seed(0.06)]}])
    rows = [r for r in read_json(tmp_path / "summary.json") if r["variant"] == "ift"]
    assert [(r["setting"], r["hr@3"]) for r in rows] == [("sft.lora_dropout=0.0", 0.04), ("sft.lora_dropout=0.05", 0.06)]
    table = (tmp_path / "scaling.md").read_text()
    assert "| smollm2-135m (sft.lora_dropout=0.0) | 128 | ift | 1 | 0.0400 ± 0.0000 (-0.0100) |" in table
    assert "| smollm2-135m (sft.lora_dropout=0.05) | 128 | ift | 1 | 0.0600 ± 0.0000 (+0.0100) |" in table


def test_scaling_compares_each_point_with_base_on_its_own_seeds(tmp_path):
    """A point run on seeds 0-2 and one on seed 0 alone have different Bases: each variant is shown as its change
    against Base on the same seeds, so runs equal to their Base sit on the Base line whatever their seeds."""
    from recfuse.llama4rec.scaling import change_against_base, write_scaling

    cfg = {"task": "direct", "backbone": "mf", "llm": {"model": "smollm2-135m"}}
    base_of = {0: 0.06, 1: 0.05, 2: 0.04}

    def seed(s, ift):
        return {"seed": s, "variants": {"base": {"metrics": {"hr@3": base_of[s], "ndcg@3": 0.0}},
                                        "llama4rec": {"metrics": {"hr@3": base_of[s], "ndcg@3": 0.0},
                                                      "always_mixed_metrics": {"hr@3": ift, "ndcg@3": 0.0}},
                                        "ift": {"metrics": {"hr@3": ift, "ndcg@3": 0.0}}}}
    configs = [{**cfg, "instructions": 128}, {**cfg, "instructions": 512}]
    results = [{"seeds": [seed(0, 0.05), seed(1, 0.04), seed(2, 0.03)]}, {"seeds": [seed(0, 0.07)]}]
    write_scaling(tmp_path, configs, results)
    points: dict = {}
    for r in read_json(tmp_path / "summary.json"):
        points.setdefault((r["llm"], r["instructions"], r["variant"]), []).append(r)
    assert change_against_base(points, "smollm2-135m", 128, "llama4rec", "hr@3") == [0.0, 0.0, 0.0]
    assert change_against_base(points, "smollm2-135m", 512, "ift", "hr@3") == pytest.approx([0.01])
    assert change_against_base(points, "smollm2-135m", 128, "ift", "hr@3") == pytest.approx([-0.01] * 3)
    table = (tmp_path / "scaling.md").read_text()
    assert "| smollm2-135m | 128 | llama4rec | 3 | 0.0500 ± 0.0100 (+0.0000) |" in table
    assert "| smollm2-135m | 512 | ift | 1 | 0.0700 ± 0.0000 (+0.0100) |" in table
    assert "| smollm2-135m | 512 | llama4rec_always_mixed | 1 | 0.0700 ± 0.0000 (+0.0100) |" in table
    assert (tmp_path / "scaling_direct-mf.png").stat().st_size > 1000


def test_scaling_lists_llama4rec_always_mixed_against_base_per_run(tmp_path):
    """scaling.md's 'Always mixed against Base': each run that recorded it, with the selection metric (RMSE for
    rating), its p over users and the long-tail gains; runs from before it was recorded are left out."""
    from recfuse.llama4rec.scaling import always_mixed_rows, write_scaling

    seed = {"seed": 0, "variants": {v: {"metrics": {"rmse": 1.0, "mae": 0.8}} for v in ("base", "llama4rec")}}
    rating = {"seeds": [seed], "always_mixed": [
        {"variant": "base", "rmse": 1.0132, "mae": 0.79},
        {"variant": "llama4rec", "rmse": 1.0013, "mae": 0.78, "rmse_p_users": 0.0029}],
        "long_tail": [{"variant": "Llama4Rec always mixed", "group": "tail", "gain": 0.0321, "p": 0.102},
                      {"variant": "Llama4Rec", "group": "tail", "gain": 0.0, "p": 1.0}]}
    configs = [{"task": "rating", "backbone": "deepfm", "llm": {"model": "smollm2-135m"}, "instructions": 128},
               {"task": "direct", "backbone": "mf", "llm": {"model": "smollm2-135m"}, "instructions": 128}]
    older = {"seeds": [{"seed": 0, "variants": {"base": {"metrics": {"hr@3": 0.1, "ndcg@3": 0.05}}}}]}
    rows = always_mixed_rows(configs, [rating, older])
    assert len(rows) == 1 and rows[0]["metric"] == "rmse" and rows[0]["always mixed"] == "1.0013 (-0.0119)"
    assert rows[0]["p over users"] == "0.0029" and rows[0]["tail"] == "+0.0321 (p 0.1)" and rows[0]["head"] == "-"
    write_scaling(tmp_path, configs, [rating, older])
    assert "## Always mixed against Base" in (tmp_path / "scaling.md").read_text()
