"""The suite's Tables 2-4: every backbone of the paper keeps its rows (measured, still to run, or not in the suite),
beside the paper's numbers, with the run's cost."""

from recfuse.llama4rec.paper import PAPER_BACKBONES, PAPER_TABLES, ablation_table, has_ablations, headline, paper_tables
from recfuse.llama4rec.suite import label_parts, run_seconds, weight_kept


def test_the_paper_tables_hold_all_thirteen_backbones():
    assert sum(len(b) for b in PAPER_BACKBONES.values()) == 13
    assert all(("ml-100k", b) in PAPER_TABLES for bs in PAPER_BACKBONES.values() for b in bs)
    assert headline("ml-100k", "lightgcn") == {"metric": "hr@3", "base": 0.0492, "llama4rec": 0.0647}
    assert headline("ml-100k", "deepfm")["ift"] == 1.2792 and headline("ml-1m", "mf") is None


def test_tables_show_measured_pending_and_missing_backbones():
    rows = [{"variant": "base", "hr@3": 0.06, "hr@3_std": 0.001, "ndcg@3": 0.05, "ndcg@3_std": 0.002},
            {"variant": "llama4rec", "hr@3": 0.066, "hr@3_std": 0.001, "hr@3_impr": 0.1, "ndcg@3": 0.055,
             "ndcg@3_std": 0.002, "ndcg@3_impr": 0.1, "ndcg@3_p_users": 0.012, "ndcg@3_p_seeds": 0.2}]
    md = paper_tables("ml-100k", [{"task": "direct", "backbone": "lightgcn", "rows": rows, "seeds": 3,
                                   "seconds": 5400.0}], [("sequential", "sasrec")])
    assert md.count("### Table") == 3
    line = next(x for x in md.splitlines() if x.startswith("| lightgcn | Base"))
    assert "0.0600 ± 0.0010" in line and "0.0492" in line and "3 seed(s), 90 min" in line
    mixed = next(x for x in md.splitlines() if "Llama4Rec" in x and "0.0660" in x)
    assert "(+10.0%)" in mixed and "0.012" in mixed and "0.0647" in mixed
    assert "| sasrec | Base | - | 0.0187" in md and "still to run" in md
    assert "| autoint | Base |" in md and "not in this suite" in md
    assert "always mixed" not in md
    # where a run recorded Llama4Rec always mixed (the paper's protocol), a row of its own under Llama4Rec
    always = [rows[0], {**rows[1], "hr@3": 0.07, "hr@3_impr": 0.1667, "ndcg@3_p_users": 0.003}]
    md = paper_tables("ml-100k", [{"task": "direct", "backbone": "lightgcn", "rows": rows, "seeds": 3,
                                   "seconds": 5400.0, "always_mixed": always}], [])
    lines = md.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("|  | Llama4Rec always mixed |"))
    assert lines[at - 1].startswith("|  | Llama4Rec |") and "0.0700 ± 0.0010 (+16.7%)" in lines[at]
    assert "| 0.003 |" in lines[at] and "| - |" in lines[at]  # no paper number: the paper's Llama4Rec row is it
    assert "*Llama4Rec always mixed*" in md and "Mean mix" not in md
    # the rating task's control (the mean rating mixed in instead of the LLM's answers) below it
    rating = [{"variant": "base", "rmse": 1.03, "rmse_std": 0.002}, {"variant": "llama4rec", "rmse": 1.02},
              {"variant": "mean_mix", "rmse": 1.025, "rmse_impr": 0.005, "rmse_p_users": 0.04}]
    md = paper_tables("ml-100k", [{"task": "rating", "backbone": "afm", "rows": rating[:2], "seeds": 3,
                                   "seconds": 60.0, "always_mixed": rating}], [])
    lines = md.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("|  | Mean mix (no LLM) always mixed |"))
    assert lines[at - 1].startswith("|  | Llama4Rec always mixed |") and "1.0250 (+0.5%)" in lines[at]
    assert "*Mean mix / Bias mix (no LLM) always mixed*" in md


def test_run_cost_and_labels():
    assert run_seconds({"seeds": [{"timings": {"a": 10.0, "b": 5.0}}, {"timings": {"a": 1.0}}]}) == 16.0
    assert label_parts("direct: lightgcn") == ("direct", "lightgcn")
    assert label_parts("rating: deepfm [instructions-128]") == ("rating", "deepfm")


def test_table_5_shows_each_ablation_as_run_and_always_mixed_beside_the_paper():
    def row(variant, ndcg, **more):
        return {"variant": variant, "hr@3": ndcg + 0.01, "hr@3_std": 0.001, "ndcg@3": ndcg, "ndcg@3_std": 0.002,
                **more}
    as_run = [row("base", 0.05), row("ift", 0.03), row("wo_da", 0.05), row("llama4rec", 0.05)]
    always = [row("base", 0.05), row("wo_da", 0.045, **{"ndcg@3_p_users": 0.031}), row("llama4rec", 0.052)]
    md = ablation_table("ml-100k", "lightgcn", as_run, always, {"wo_da": 0, "llama4rec": 1}, 3)
    lines = {x.split(" | ")[0].strip("| "): x for x in md.splitlines() if x.startswith("| ")}
    assert "Table 5" in md and "LightGCN on ML-1M" in md and "w/o PA" not in lines  # only the variants run
    assert "| 0.0550 ± 0.0010 | 0.0450 ± 0.0020 | 0.031 | 0 of 3 seeds | 0.0294 (+3.9%) |" in lines["w/o DA"]
    assert "0.0520 ± 0.0020 |  | 1 of 3 seeds | 0.0304 (+7.4%) | 0.0222 (+9.4%) |" in lines["Llama4Rec"]
    assert lines["IFT"].count("0.0300 ± 0.0020") == 2 and "0.0268 (-5.3%)" in lines["IFT"]  # IFT mixes nothing
    assert has_ablations(["base", "wo_aa"]) and not has_ablations(["base", "ift", "llama4rec"])
    seeds = [{"variants": {"base": {}, "wo_da": {"llm_weight_used": True}}},
             {"variants": {"base": {}, "wo_da": {"llm_weight_used": False}}}]
    assert weight_kept({"seeds": seeds}) == {"wo_da": 1}


def test_a_pointwise_run_of_a_backbone_is_a_row_of_its_own_not_overwritten():
    def run(ranking, value):
        return {"task": "direct", "backbone": "lightgcn", "ranking": ranking, "seeds": 1, "seconds": 60.0,
                "rows": [{"variant": "base", "hr@3": value}]}
    md = paper_tables("ml-100k", [run("listwise", 0.06), run("pointwise", 0.03)], [])
    assert "| lightgcn | Base | 0.0600" in md
    assert "| lightgcn (pointwise) | Base | 0.0300" in md and "0.0492" in md.split("lightgcn (pointwise)")[1]


def test_the_p_column_says_whether_base_is_the_best_baseline_as_the_paper_tests_against():
    def run(backbone, ift):
        return {"task": "direct", "backbone": backbone, "seeds": 1, "seconds": 60.0,
                "rows": [{"variant": "base", "ndcg@3": 0.05}, {"variant": "ift", "ndcg@3": ift}]}
    assert "the best baseline on every measured backbone" in paper_tables("ml-100k", [run("mf", 0.04)], [])
    md = paper_tables("ml-100k", [run("mf", 0.04), run("lightgcn", 0.06)], [])
    assert "while IFT is the better baseline on direct lightgcn" in md
