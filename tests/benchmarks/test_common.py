"""benchmarks/_common.py: the pieces the benchmark scripts share."""

import pytest

from tests.benchmarks import load_benchmark


def test_parse_params_reads_json_values_and_names_a_bad_pair():
    common = load_benchmark("_common.py")
    assert common.parse_params(["lr=0.002", "keep_last=true", 'cl_views="prefix"', "x=1e-3"]) == {
        "lr": 0.002, "keep_last": True, "cl_views": "prefix", "x": 0.001}
    with pytest.raises(SystemExit, match="--set expects KEY=VALUE, got 'lr'"):
        common.parse_params(["lr"], "--set")
    with pytest.raises(SystemExit, match="'cl_views=prefix': the value is not JSON"):
        common.parse_params(["cl_views=prefix"])
