"""benchmarks/_common.py: the pieces the benchmark scripts share."""

import json
import re

import pytest

from tests.benchmarks import ROOT, load_benchmark


def test_parse_params_reads_json_values_and_names_a_bad_pair():
    common = load_benchmark("_common.py")
    assert common.parse_params(["lr=0.002", "keep_last=true", 'cl_views="prefix"', "x=1e-3"]) == {
        "lr": 0.002, "keep_last": True, "cl_views": "prefix", "x": 0.001}
    with pytest.raises(SystemExit, match="--set expects KEY=VALUE, got 'lr'"):
        common.parse_params(["lr"], "--set")
    with pytest.raises(SystemExit, match="'cl_views=prefix': the value is not JSON"):
        common.parse_params(["cl_views=prefix"])


def test_write_manifest_records_the_run_beside_its_result_and_keeps_earlier_runs(tmp_path):
    common = load_benchmark("_common.py")
    files = common.report_files(tmp_path / "res" / "w_0.5")
    assert [f.name for f in files] == ["w_0.5.json", "w_0.5.md"]  # a dot in the name stays
    first = common.write_manifest(files, ["--seed", "1", "--note", "a b"], "benchmarks/x.py")
    assert json.loads((tmp_path / "res" / "manifest.json").read_text()) == first
    assert first["command"].endswith("benchmarks/x.py --seed 1 --note 'a b'")
    assert first["machine"] == common.machine() and first["cpu"]["count"] >= 1 and isinstance(first["gpus"], list)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["date"])
    assert first["files"] == ["w_0.5.json", "w_0.5.md"] and "earlier" not in first
    if (ROOT / ".git").exists():  # a checkout: the commit and whether the code differs from it
        assert re.fullmatch(r"[0-9a-f]{40}", first["git_commit"]) and isinstance(first["git_dirty"], bool)
    # the same run saving again (after its next step) updates its record instead of adding one
    again = common.write_manifest([tmp_path / "res" / "extra.json"], ["--seed", "1", "--note", "a b"], "benchmarks/x.py")
    assert again["date"] == first["date"] and again["files"] == ["extra.json", "w_0.5.json", "w_0.5.md"]
    assert "earlier" not in again
    # a later run (another process) writing there keeps the earlier record, newest first
    later = load_benchmark("_common.py").write_manifest(files, ["--seed", "2"], "benchmarks/x.py")
    assert later["command"].endswith("--seed 2") and later["files"] == ["w_0.5.json", "w_0.5.md"]
    assert later["earlier"] == [again]
    third = load_benchmark("_common.py").write_manifest(files, [], "benchmarks/x.py")
    assert [e["command"] for e in third["earlier"]] == [later["command"], again["command"]]
    with pytest.raises(ValueError, match="one folder"):
        common.write_manifest([tmp_path / "a" / "x.json", tmp_path / "b" / "x.md"], [], "benchmarks/x.py")
