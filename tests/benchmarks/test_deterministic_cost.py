"""benchmarks/deterministic_cost.py: epochs with and without deterministic kernels, alternated."""

import contextlib
import math

import recfuse.models.torch_utils as torch_utils

from tests.benchmarks import load_benchmark


def test_times_both_ways_and_only_one_way_is_deterministic(tmp_path, monkeypatch):
    mod = load_benchmark("deterministic_cost.py")
    entered = []
    real = torch_utils.deterministic_kernels

    @contextlib.contextmanager
    def counting():
        entered.append(1)
        with real():
            yield
    monkeypatch.setattr(torch_utils, "deterministic_kernels", counting)
    report = mod.main(["--models", "bpr", "--threads", "1", "--epochs", "1", "--repeats", "2", "--out", str(tmp_path / "d")])
    (row,) = report["rows"]
    assert len(entered) == 2  # the two deterministic fits; the two default ones bypass the kernels' switch
    assert len(row["runs"]["deterministic"]) == len(row["runs"]["default"]) == 2
    assert math.isclose(row["ratio"], row["deterministic"] / row["default"])
    assert row["same_curve"]  # one thread: the default kernels add in a fixed order too
    assert "| bpr | 1 |" in (tmp_path / "d.md").read_text()
