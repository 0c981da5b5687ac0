"""Suite files and the CLI wiring of RecLM."""

import pytest

from recfuse.errors import ConfigError
from recfuse.reclm.report import target_check
from recfuse.runner import load_method_suite


def load_suite(path, overrides=None):
    _, cfgs, out = load_method_suite(path, "reclm", overrides)
    return cfgs, out


def test_suite_file_merges_common_and_runs(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("common: {seeds: [0, 1], backbones: [biasmf]}\nruns:\n  - {dataset: synthetic, tunings: [mask]}\n"
                 "  - {dataset: synthetic, backbones: [lightgcn], name: other}\nout: x\n")
    cfgs, out = load_suite(f, {"seeds": [3]})
    assert [c.backbones for c in cfgs] == [["biasmf"], ["lightgcn"]]
    assert cfgs[0].tunings == ["mask"] and cfgs[1].tunings == ["reclm"]
    assert all(c.seeds == [3] and c.out == "x" for c in cfgs) and str(out) == "x"
    f.write_text("runs: []\n")
    with pytest.raises(ConfigError):
        load_suite(f)
    f.write_text("comon: {seeds: [0, 1]}\nruns:\n  - {dataset: synthetic}\n")  # misspelt: not dropped silently
    with pytest.raises(ConfigError, match=r"s.yaml: unknown suite setting\(s\) comon"):
        load_suite(f)
    # two runs of one dataset need their own folders
    f.write_text("runs:\n  - {dataset: synthetic, seeds: [0, 1]}\n  - {dataset: synthetic, tunings: [mask]}\nout: x\n")
    with pytest.raises(ConfigError, match="runs 1 and 2 would write the same folder"):
        load_suite(f)
    f.write_text("runs:\n  - {dataset: synthetic, name: main}\n  - {dataset: synthetic, name: ablation}\nout: x\n")
    from recfuse.data import make_synthetic
    from recfuse.reclm.report import output_dir
    ds = make_synthetic(n_users=5, n_items=5, seed=0)
    assert [output_dir(c, ds.name).parts[-2:] for c in load_suite(f)[0]] == [(ds.name, "main"), (ds.name, "ablation")]


def test_shipped_configs_load():
    from recfuse.config import resolve
    from recfuse.reclm.config import RecLMConfig, check
    cfgs, _ = load_suite("configs/reclm_ml100k_suite.yaml")
    check(cfgs[0])
    teacher, _ = load_suite("configs/reclm_ml100k_teacher.yaml")  # SmolLM2 teaching Gemma 3 270M
    for c in teacher:
        check(c)
    assert {(c.llm.model, c.teacher.model) for c in teacher} == {("gemma3-270m", "smollm2-135m")}
    assert [c.tunings for c in teacher] == [["untuned"], ["gpt_kd"], ["reclm"]]
    cfg = resolve(RecLMConfig, None, yaml_path="configs/reclm_ml100k.yaml")
    check(cfg)
    assert cfg.seeds == [0, 1, 2] and cfg.select_metric == "recall@20"


def test_target_check():
    rows = [{"backbone": "biasmf", "variant": "base", "profiles": "-", "setting": "zero_shot", "recall@20": 0.1},
            {"backbone": "biasmf", "variant": "augment", "profiles": "reclm", "setting": "zero_shot",
             "recall@20": 0.12}]
    (row,) = target_check(rows)
    assert row["augment above base"] is True


def test_cli_registers_reclm(capsys):
    from recfuse.cli import main
    with pytest.raises(SystemExit) as e:
        main(["run", "reclm", "--help"])
    assert e.value.code == 0
    assert "--tunings" in capsys.readouterr().out


def test_recall_on_a_pool_no_larger_than_k_is_marked_not_measured():
    from recfuse.reclm.report import display, trivial
    base = {"backbone": "biasmf", "variant": "base", "profiles": "-", "setting": "zero_shot", "recall@20": 1.0,
            "recall@20_std": 0.0, "ndcg@20": 0.5, "ndcg@20_std": 0.0, "pool_items": 20, "users": 5}
    aug = {**base, "variant": "augment", "profiles": "reclm", "recall@20_impr": 0.0}
    assert trivial(aug, "recall@20") and not trivial(aug, "recall@10") and not trivial(aug, "ndcg@20")
    assert not trivial({**aug, "pool_items": 21}, "recall@20")
    (row,) = target_check([base, aug])
    assert row["augment above base"].startswith("not measurable")
    shown = display([aug], [20])[0]
    assert shown["recall@20"] == "(1 by construction: pool of 20 items)" and "recall@20 impr" not in shown


def test_ties_at_the_cut_are_shown_beside_the_metric():
    from recfuse.reclm.report import display, summarize
    from recfuse.reclm.results import MetricRow, SeedResult
    row = {"backbone": "simgcl", "variant": "base", "profiles": "-", "setting": "zero_shot", "recall@10": 0.9,
           "ndcg@10": 0.5, "users": 4, "pool_items": 20, "epoch_seconds": 1.0}

    def seed(ties):
        return SeedResult(0, 0, {}, rows=[MetricRow.from_dict({**row, "tied_at_cut": {"10": ties}})])

    reports = [seed(n) for n in (4, 1)]
    (summary,) = summarize(reports, [10])
    assert summary["tied_share"] == {"10": 1.0}  # the worst seed
    assert display([summary], [10])[0]["recall@10"] == "0.9000 ± 0.0000 (ties at the cut: 100% of users)"
    untied = summarize([seed(0)], [10])
    assert display(untied, [10])[0]["recall@10"] == "0.9000 ± 0.0000"


def _row(backbone, variant, profiles, setting, pool, recall):
    return {"backbone": backbone, "variant": variant, "profiles": profiles, "setting": setting, "pool_items": pool,
            **{f"recall@{k}": recall for k in (10, 20, 40)}, **{f"recall@{k}_std": 0.01 for k in (10, 20, 40)},
            "recall@20_p_users": 0.01, "recall@10_p_users": 0.5, "users": 5}


def test_results_figure_shows_an_informative_recall_per_setting(tmp_path):
    from recfuse.reclm.report import bar_labels, plot_metric, plot_results
    rows = [_row(b, v, p, s, pool, r) for b in ("biasmf", "lightgcn")
            for v, p, r in (("base", "-", 0.1), ("augment", "reclm", 0.2), ("wo_user", "reclm", 0.15))
            for s, pool in (("full_shot", 1600), ("zero_shot", 20))]
    assert plot_metric(rows, "full_shot", [10, 20, 40]) == "recall@20"
    assert plot_metric(rows, "zero_shot", [10, 20, 40]) == "recall@10"  # @20 and @40 are 1 on 20 items
    assert plot_metric(rows, "zero_shot", [20, 40]) is None
    assert bar_labels(rows) == [("base", "-"), ("augment", "reclm"), ("wo_user", "reclm")]
    path = plot_results(rows, [10, 20, 40], tmp_path / "results.png", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob("*.tmp.png"))
    assert plot_results([r for r in rows if r["setting"] == "zero_shot"], [20, 40], tmp_path / "none.png", "t") is None
    # the tuning ablation: several profile sources, so Base and Augment per source only
    ablation = rows + [_row("biasmf", v, "mask", "full_shot", 1600, 0.3) for v in ("augment", "wo_item")]
    assert bar_labels(ablation) == [("base", "-"), ("augment", "reclm"), ("augment", "mask")]


def test_suite_report_gathers_the_tuning_ablation_and_names_what_is_left(tmp_path):
    """One run per profile source: suite.md gathers Base and each source's Augment into one table and figure,
    and a suite interrupted after some runs says which are still to run."""
    import json

    import numpy as np

    from recfuse.reclm.report import tuning_ablation
    from recfuse.reclm.report import write_suite

    def rows(source, recall, base_recall=0.1):
        out = [_row(b, "base", "-", s, pool, base_recall) for b in ("biasmf", "lightgcn")
               for s, pool in (("full_shot", 1600), ("zero_shot", 20))]
        out += [{**_row(b, "augment", source, s, pool, recall), "recall@10_impr": recall / base_recall - 1}
                for b in ("biasmf", "lightgcn") for s, pool in (("full_shot", 1600), ("zero_shot", 20))]
        return [{**r, **{f"ndcg@{k}": r[f"recall@{k}"] / 2 for k in (10, 20, 40)},
                 **{f"ndcg@{k}_std": 0.0 for k in (10, 20, 40)}} for r in out]

    runs = [{"dataset": "toy", "name": name, "rows": rows(src, rec), "config": {"ks": [10, 20, 40], "seeds": [0, 1]}}
            for name, src, rec in (("main", "reclm", 0.3), ("tuning-untuned", "untuned", 0.2))]
    rng = np.random.default_rng(0)
    for r in runs:
        folder = tmp_path / "toy" / r["name"]
        folder.mkdir(parents=True)
        (folder / "tables.md").write_text(f"tables of {r['name']}\n")
        src = r["rows"][-1]["profiles"]
        for seed in (0, 1):  # per-user values: the untuned source 0.1 below RecLM's for every user
            np.savez(folder / f"per_user_seed{seed}.npz", **{
                f"{b}|augment|{src}|{s}__{m}": np.full(6, 0.5 if src == "reclm" else 0.4) + rng.normal(0, 0.01, 6)
                for b in ("biasmf", "lightgcn") for s in ("full_shot", "zero_shot")
                for m in ("recall@10", "recall@20", "ndcg@10", "ndcg@20")})
    write_suite(tmp_path, runs, pending=["toy: tuning-mask"])
    md = (tmp_path / "suite.md").read_text()
    assert "Still to run: toy: tuning-mask" in md and "tables of main" in md and "tables of tuning-untuned" in md
    table = md[md.index("## toy: tuning ablation"):]
    assert "runs main, tuning-untuned" in table and "agree exactly" in table
    header = next(line for line in table.splitlines() if line.startswith("| backbone"))
    assert header.split("|")[4:7] == [" base ", " untuned ", " reclm "]  # sources in the paper's order
    assert "| biasmf | zero_shot | recall@10 | 0.1000 ± 0.0100 | 0.2000 ± 0.0100 (+100.0%, p 0.500) |" in table
    assert "recall@20" not in table.split("zero_shot")[1].split("\n")[0]  # 1 by construction on 20 items
    assert (tmp_path / "toy" / "tuning_ablation.png").read_bytes()[:4] == b"\x89PNG"
    versus = table[table.index("against the full method's"):]
    assert "| backbone | setting | metric | untuned - reclm |" in versus
    line = next(x for x in versus.splitlines() if x.startswith("| biasmf | full_shot | recall@20"))
    diff, p = line.split("|")[4].strip().split(" (p ")
    assert abs(float(diff) + 0.1) < 0.02 and float(p.rstrip(")")) < 0.001
    saved = json.loads((tmp_path / "suite.json").read_text())
    assert saved["pending"] == ["toy: tuning-mask"] and len(saved["tuning_ablation"]["toy"]) == 4 + 8
    # Base rows that differ between runs are said to, and each Augment keeps its own run's comparison
    _, note = tuning_ablation([rows("reclm", 0.3), rows("untuned", 0.2, base_recall=0.12)])
    assert "differ by up to 0.0200" in note
    # a run split differently (other users, or another order) is not paired with the first by position
    (tmp_path / "toy" / "tuning-untuned" / "results.json").write_text(json.dumps({"seeds": [{"split": {"test": 9}}]}))
    write_suite(tmp_path, runs, pending=[])
    md = (tmp_path / "suite.md").read_text()
    assert "Not compared over users (their splits differ from the first run's): tuning-untuned." in md
    versus = md[md.index("against the full method's"):]
    assert next(x for x in versus.splitlines() if x.startswith("| biasmf | full_shot | recall@20")).endswith("| - |")
    # one source only: no ablation section
    write_suite(tmp_path, runs[:1])
    assert "tuning ablation" not in (tmp_path / "suite.md").read_text()
    assert "Still to run" not in (tmp_path / "suite.md").read_text()
