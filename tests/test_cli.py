"""The command line, end to end on small data."""

import json
from pathlib import Path


from recfuse.cli import build_parser, main

FIXTURES = Path(__file__).parent / "fixtures"
#: a committed suite that no longer changes (the Llama4Rec suite of before issue #30): rendering must reproduce it
ARCHIVED_SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "archive" / "llama4rec" / "suite-before-30"


def test_help_on_every_command():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        text = p.format_help()
        assert len(text) > 50, name


def test_data_describe(capsys):
    assert main(["data", "describe", str(FIXTURES / "ml-100k-raw")]) == 0
    out = capsys.readouterr().out
    assert "| 3 | 4 | 8 |" in out and "genres" in out and "occupation" in out


def test_data_fetch_manual_dataset_explains(capsys):
    assert main(["data", "fetch", "netflix"]) == 2
    assert "Kaggle" in capsys.readouterr().err


def test_train_writes_results(tmp_path, capsys):
    rc = main(["train", "--model", "itemknn", "--dataset", "synthetic", "--seeds", "0,1", "--out", str(tmp_path),
               "--param", "k=20", "--no-progress"])
    assert rc == 0
    out = tmp_path / "synthetic" / "itemknn"
    result = json.loads((out / "results.json").read_text())
    assert [r["seed"] for r in result["rows"]] == [0, 1, "mean"]
    assert result["rows"][0]["hr@10"] > 0.3
    assert "k: 20" in (out / "config.yaml").read_text()
    assert "mean ± std over 2 seeds" in capsys.readouterr().out


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "u.data").write_text("1\t10\tfive\t881250949\n")
    assert main(["data", "describe", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recfuse: error: ") and "field 'rating': not a number: 'five'" in err
    assert "Traceback" not in err


def test_unknown_model(capsys):
    assert main(["train", "--model", "nosuchmodel", "--dataset", "synthetic"]) == 2
    assert "unknown model 'nosuchmodel'" in capsys.readouterr().err


def test_report_rerenders_committed_results_exactly(tmp_path, capsys):
    """``recfuse report``: a Llama4Rec results folder's results.md and heatmaps come back from results.json."""
    import shutil

    src = ARCHIVED_SUITE / "ml-100k" / "direct-mf"
    folder = tmp_path / "direct-mf"
    shutil.copytree(src, folder)
    for f in ["results.md", *(p.name for p in folder.glob("alpha_heatmap_*.png"))]:
        (folder / f).unlink()
    assert main(["report", str(folder)]) == 0
    assert (folder / "results.md").read_text() == (src / "results.md").read_text()
    assert (folder / "alpha_heatmap_valid.png").stat().st_size > 0
    assert main(["report", str(tmp_path)]) != 0
    assert "no results.json" in capsys.readouterr().err


def test_report_rerenders_a_committed_reclm_run(tmp_path):
    """``recfuse report`` on a RecLM run folder: tables.md byte for byte, and the results figure."""
    import shutil

    src = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "reclm" / "ml-100k" / "main"
    folder = tmp_path / "main"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("per_user_*"))
    (folder / "tables.md").unlink()
    (folder / "results.png").unlink()
    assert main(["report", str(folder)]) == 0
    assert (folder / "tables.md").read_text() == (src / "tables.md").read_text()
    assert (folder / "results.png").read_bytes()[:4] == b"\x89PNG"


def test_report_rerenders_a_committed_suite_exactly(tmp_path):
    """``recfuse report`` on a suite's folder: every run folder, then suite.md, from the JSON files alone."""
    import shutil

    src = ARCHIVED_SUITE
    folder = tmp_path / "llama4rec"
    shutil.copytree(src, folder)
    (folder / "suite.md").unlink()
    (folder / "ml-100k" / "direct-mf" / "results.md").unlink()
    assert main(["report", str(folder)]) == 0
    assert (folder / "suite.md").read_text() == (src / "suite.md").read_text()
    assert (folder / "ml-100k" / "direct-mf" / "results.md").read_text() == \
        (src / "ml-100k" / "direct-mf" / "results.md").read_text()
