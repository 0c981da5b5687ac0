"""benchmarks/llm_shared_prefix.py: a tiny run writes both paths side by side (the real embedded model, fp32)."""

import json

from tests.benchmarks import load_benchmark


def test_a_tiny_run_scores_both_ways_alike(tmp_path):
    llm_shared_prefix = load_benchmark("llm_shared_prefix.py")
    assert llm_shared_prefix.main(["--users", "2", "--candidates", "3", "--repeats", "1", "--dtypes", "float32", "--histories", "8",
                                   "--out", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "llm_shared_prefix.json").read_text())["rows"]
    assert row["prompts"] == 6 and row["most likely digit agrees"] == 1.0
    assert float(row["max |log-prob diff|"]) < 1e-3 and row["speed-up"] > 0
    assert not (tmp_path / "manifest.json").exists()  # a folder of the user's: no manifest
    assert "| 8 | smollm2-135m | float32 | 6 |" in (tmp_path / "llm_shared_prefix.md").read_text()
