"""benchmarks/reclm_teacher.py's measures: held-out AUC of a profile's embedding, distinctness, and the outputs
(the LLM runs are the script's own; these check what it computes from them)."""

import json

import numpy as np

from tests.benchmarks import load_benchmark


def test_heldout_auc_and_distinctness():
    mod = load_benchmark("reclm_teacher.py")
    items = mod.unit(np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]]))
    profile = mod.unit(np.array([[1.0, 0.1], [1.0, 0.1]]))
    pos, neg = [np.array([0]), np.array([3])], [np.array([1, 3]), np.array([0, 1])]
    assert np.allclose(mod.heldout_auc(profile, items, pos, neg), [1.0, 0.0])  # above both; below both
    tie = mod.heldout_auc(profile[:1], items, [np.array([0])], [np.array([0])])
    assert tie[0] == 0.5
    assert mod.distinctness(profile) < 1e-9 and mod.distinctness(items[:2]) == 1.0


def test_write_outputs_writes_text_and_json_and_records_only_when_asked(tmp_path):
    from tests.benchmarks import load_benchmark as load

    common = load("_common.py")
    files = common.write_outputs({tmp_path / "a.md": "# A", tmp_path / "a.json": {"x": 1}}, record=False)
    assert (tmp_path / "a.md").read_text() == "# A\n" and json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert files == [tmp_path / "a.md", tmp_path / "a.json"] and not (tmp_path / "manifest.json").exists()
