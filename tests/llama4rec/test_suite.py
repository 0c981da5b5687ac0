"""Suite mode of Llama4Rec: finished runs are reused, not recomputed."""

import pytest

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

    def must_not_run(self):
        raise AssertionError("a finished run was recomputed")

    monkeypatch.setattr(Llama4Rec, "run", must_not_run)
    res = read_json(run_suite(f, "llama4rec") / "suite.json")
    assert res["runs"][0]["rows"] == rows
    assert "0.2500" in (tmp_path / "out" / "suite.md").read_text()
    with pytest.raises(AssertionError, match="recomputed"):
        run_suite(f, "llama4rec", reuse=False)
    with pytest.raises(AssertionError, match="recomputed"):  # other settings: not the same run
        run_suite(f, "llama4rec", {"instructions": 7})


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
