"""Finished seeds kept in the run folder (recfuse.method.FinishedSeeds): a run interrupted after some seeds and
resumed without its stage cache redoes only the seeds it had not finished; a kept seed of other settings, or one
that cannot be read, is run again; the folder goes once the report holds every seed."""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import recfuse.method
from recfuse.cli import main
from recfuse.config import option, to_dict
from recfuse.errors import ConfigError
from recfuse.eval.report import write_report
from recfuse.method import Method, RunReport, register_method


@dataclass
class CountConfig:
    """A method whose seeds record who ran them."""

    value: float = option(0.5, "the metric every seed reports")
    seeds: list[int] = option([0, 1, 2], "random seeds")
    out: str = option("runs/count", "output folder")
    progress: bool = option(True, "progress bars (changes no result)")


class Interrupted(RuntimeError):
    pass


class Counting(Method[CountConfig, dict]):
    """Seeds as dicts with per-user arrays; ``fail_at`` interrupts the run before that seed."""

    name = "counting"
    config_type = CountConfig

    def __init__(self, cfg: CountConfig, fail_at: int | None = None, keeps: bool = True):
        super().__init__(cfg)
        self.ran: list[int] = []
        self.fail_at, self.keeps = fail_at, keeps

    def run_seed(self, seed: int) -> dict:
        if seed == self.fail_at:
            raise Interrupted(f"seed {seed}")
        self.ran.append(seed)
        return {"seed": seed, "hr@1": self.cfg.value + seed, "per_user": {"base": {"hr@1": np.arange(3.0) + seed}}}

    def keeps_seeds(self) -> bool:
        return self.keeps

    def seed_record(self, result: dict) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        if not self.keeps:
            return None
        return {"seed": result["seed"], "hr@1": result["hr@1"]}, {"base__hr@1": result["per_user"]["base"]["hr@1"]}

    def seed_from_record(self, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict:
        return {**data, "per_user": {"base": {"hr@1": arrays["base__hr@1"]}}}

    def output_dir(self) -> Path:
        return Path(self.cfg.out) / "count"

    def write_report(self, results: list[dict]) -> RunReport:
        rows = [{"variant": "base", "hr@1": float(np.mean([r["hr@1"] for r in results]))}]
        seeds = [{"seed": r["seed"], "per_user": r["per_user"]["base"]["hr@1"].tolist()} for r in results]
        write_report(self.output_dir(), rows, config=to_dict(self.cfg), extra={"method": self.name, "seeds": seeds},
                     data_fingerprint=self.data_fingerprint())
        return RunReport(self.output_dir(), rows)

    @classmethod
    def rerender(cls, folder: Path, config: Any, results: dict[str, Any]) -> list[Path]:
        return []


def interrupted_at(cfg: CountConfig, seed: int) -> None:
    with pytest.raises(Interrupted):
        Counting(cfg, fail_at=seed).run()


def test_an_interrupted_run_resumes_at_the_seed_it_had_not_finished(tmp_path):
    cfg = CountConfig(out=str(tmp_path))
    interrupted_at(cfg, 2)
    kept = tmp_path / "count" / "seeds"
    assert sorted(p.name for p in kept.iterdir()) == ["seed0.json", "seed0.npz", "seed1.json", "seed1.npz"]
    method = Counting(CountConfig(out=str(tmp_path), progress=False))  # a setting that changes no result
    method.run()
    assert method.ran == [2]
    results = json.loads((tmp_path / "count" / "results.json").read_text())
    assert [s["per_user"] for s in results["seeds"]] == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    assert results["rows"][0]["hr@1"] == pytest.approx(1.5)
    assert not kept.exists()  # the report holds every seed now
    manifest = json.loads((tmp_path / "count" / "manifest.json").read_text())
    assert "seeds/" not in json.dumps(manifest["files"])
    # the seeds read back name where and with what code they were computed (seed 2 was computed by this run)
    made = manifest["seeds_made_elsewhere"]
    assert sorted(made) == ["0", "1"] and {"git_commit", "machine", "cpu", "date", "command"} <= set(made["0"])


def test_kept_seeds_of_other_settings_or_unreadable_are_run_again(tmp_path, caplog):
    interrupted_at(CountConfig(out=str(tmp_path)), 2)
    other = Counting(CountConfig(out=str(tmp_path), value=0.25, seeds=[0, 1]))
    with caplog.at_level(logging.INFO, logger="recfuse.method"):
        other.run()
    assert other.ran == [0, 1] and "kept with other settings or data" in caplog.text
    interrupted_at(CountConfig(out=str(tmp_path)), 2)
    damaged = tmp_path / "count" / "seeds" / "seed1.json"
    damaged.write_text("{truncated")
    caplog.clear()
    again = Counting(CountConfig(out=str(tmp_path)))
    with caplog.at_level(logging.WARNING, logger="recfuse.method"):
        again.run()
    assert again.ran == [1, 2] and f"{damaged}: cannot be read" in caplog.text
    interrupted_at(CountConfig(out=str(tmp_path)), 2)
    arrays = tmp_path / "count" / "seeds" / "seed0.npz"
    arrays.write_bytes(b"not a zip")  # the JSON is intact, its per-user values are not
    caplog.clear()
    last = Counting(CountConfig(out=str(tmp_path)))
    with caplog.at_level(logging.WARNING, logger="recfuse.method"):
        last.run()
    assert last.ran == [0, 2] and f"{arrays}: cannot be read" in caplog.text
    interrupted_at(CountConfig(out=str(tmp_path)), 2)
    meta = tmp_path / "count" / "seeds" / "seed1.json"
    meta.write_text(json.dumps({"key": json.loads(meta.read_text())["key"]}))  # its key, but no result
    caplog.clear()
    keyed = Counting(CountConfig(out=str(tmp_path)))
    with caplog.at_level(logging.INFO, logger="recfuse.method"):
        keyed.run()
    assert keyed.ran == [1, 2] and f"{meta}: cannot be read (no 'result')" in caplog.text
    assert "kept with other settings" not in caplog.text


def test_a_method_that_keeps_no_seeds_leaves_no_folder(tmp_path):
    with pytest.raises(Interrupted):
        Counting(CountConfig(out=str(tmp_path)), fail_at=1, keeps=False).run()
    assert not (tmp_path / "count" / "seeds").exists()


def test_arrays_of_another_run_are_never_paired_with_a_kept_seeds_result(tmp_path, caplog):
    """Run A kept seed 0; run B (other settings) died after writing seed 0's arrays, before its JSON."""
    interrupted_at(CountConfig(out=str(tmp_path)), 1)
    arrays = tmp_path / "count" / "seeds" / "seed0.npz"
    np.savez(arrays, **{"base__hr@1": np.array([9.0, 9.0, 9.0])})
    method = Counting(CountConfig(out=str(tmp_path)))
    with caplog.at_level(logging.WARNING, logger="recfuse.method"):
        method.run()
    assert method.ran == [0, 1, 2] and "not the arrays its JSON was kept with" in caplog.text


def test_a_quick_pass_removes_only_the_kept_seeds_its_report_holds(tmp_path):
    interrupted_at(CountConfig(out=str(tmp_path)), 2)  # seeds 0 and 1 kept
    Counting(CountConfig(out=str(tmp_path), seeds=[0])).run()  # a one-seed pass of the same settings
    kept = tmp_path / "count" / "seeds"
    assert sorted(p.name for p in kept.iterdir() if p.name != ".report.lock") == ["seed1.json", "seed1.npz"]


def test_a_manifest_that_cannot_be_written_does_not_leave_an_earlier_runs_in_place(tmp_path, monkeypatch, caplog):
    import recfuse.method as method_module

    Counting(CountConfig(out=str(tmp_path))).run()
    manifest = tmp_path / "count" / "manifest.json"
    assert manifest.is_file()

    def disk_full(files, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(method_module, "write_manifest", disk_full)
    with caplog.at_level(logging.WARNING, logger="recfuse.method"):
        Counting(CountConfig(out=str(tmp_path), value=0.25)).run()
    assert not manifest.exists() and "manifest.json of an earlier run there was removed" in caplog.text


def test_seeds_spread_over_processes_sharing_the_folder_make_one_report(tmp_path, caplog):
    """Two processes on one run's seeds: the first to finish keeps its seed and writes no report; the one that
    finds every seed kept writes the report, the same as one process running them all."""
    first = Counting(CountConfig(out=str(tmp_path)))
    with caplog.at_level(logging.INFO, logger="recfuse.method"):
        assert first.run(only_seeds=[1]) is None
    assert first.ran == [1] and "seeds 0, 2 still to run" in caplog.text
    folder = tmp_path / "count"
    assert not (folder / "results.json").exists()
    assert sorted(p.name for p in (folder / "seeds").iterdir()) == ["seed1.json", "seed1.npz"]
    second = Counting(CountConfig(out=str(tmp_path)))
    report = second.run(only_seeds=[2, 0])
    assert second.ran == [0, 2] and report is not None and not (folder / "seeds").exists()
    spread = json.loads((folder / "results.json").read_text())
    alone = Counting(CountConfig(out=str(tmp_path / "alone"))).run()
    assert alone is not None
    assert spread["rows"] == json.loads((alone.out / "results.json").read_text())["rows"]
    assert [s["seed"] for s in spread["seeds"]] == [0, 1, 2]


def test_a_seed_kept_by_another_process_while_this_one_ran_is_read_back(tmp_path, monkeypatch):
    """Seed 0 is not kept when this process starts on seed 1; another process keeps it meanwhile."""
    other = Counting(CountConfig(out=str(tmp_path), seeds=[0, 1]))
    mine = Counting(CountConfig(out=str(tmp_path), seeds=[0, 1]))
    run_seed = mine.run_seed

    def and_meanwhile(seed: int) -> dict:
        assert other.run(only_seeds=[0]) is None  # the other process finishes seed 0 during this one's seed 1
        return run_seed(seed)
    monkeypatch.setattr(mine, "run_seed", and_meanwhile)
    assert mine.run(only_seeds=[1]) is not None
    assert [s["seed"] for s in json.loads((tmp_path / "count" / "results.json").read_text())["seeds"]] == [0, 1]


def test_only_seeds_must_be_the_runs_and_kept(tmp_path):
    with pytest.raises(ConfigError, match=r"seed 5 is not one of the run's seeds \[0, 1, 2\]"):
        Counting(CountConfig(out=str(tmp_path))).run(only_seeds=[5])
    with pytest.raises(ConfigError, match="keeps no finished seeds"):
        Counting(CountConfig(out=str(tmp_path)), keeps=False).run(only_seeds=[0])
    assert not (tmp_path / "count").exists()


def test_a_suite_spread_over_processes_lists_the_run_until_its_last_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(recfuse.method, "_REGISTRY", dict(recfuse.method._REGISTRY))
    register_method(Counting)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"method: counting\nout: {tmp_path / 'out'}\ncommon: {{seeds: [0, 1]}}\n"
                     "runs: [{value: 0.5}]\n")
    assert main(["run", "counting-suite", str(suite), "--only-seed", "0"]) == 0
    listed = json.loads((tmp_path / "out" / "suite.json").read_text())
    assert listed["runs"] == [] and listed["pending"] == ["run (seeds 0, 1: 1 of 2 finished, kept in count/seeds)"]
    assert main(["run", "counting-suite", str(suite), "--only-seed", "1"]) == 0
    listed = json.loads((tmp_path / "out" / "suite.json").read_text())
    assert listed["pending"] == [] and [run["label"] for run in listed["runs"]] == ["run"]


def test_a_suite_runs_a_finished_run_again_once_its_data_changed(tmp_path, monkeypatch, caplog):
    """Same settings, other data (an edited data file): the results are of the old data, so the run is run
    again; results written before reports named their data are reused on their settings alone."""
    monkeypatch.setattr(recfuse.method, "_REGISTRY", dict(recfuse.method._REGISTRY))
    register_method(Counting)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"method: counting\nout: {tmp_path / 'out'}\ncommon: {{seeds: [0]}}\nruns: [{{value: 0.5}}]\n")
    results = tmp_path / "out" / "count" / "results.json"
    monkeypatch.setattr(Counting, "data_fingerprint", lambda self: "data-v1")
    assert main(["run", "counting-suite", str(suite)]) == 0
    assert json.loads(results.read_text())["data_fingerprint"] == "data-v1"
    first = results.stat().st_mtime_ns
    with caplog.at_level(logging.WARNING, logger="recfuse.runner"):
        assert main(["run", "counting-suite", str(suite)]) == 0
    assert "reusing the results already written" in caplog.text and results.stat().st_mtime_ns == first
    monkeypatch.setattr(Counting, "data_fingerprint", lambda self: "data-v2")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(["run", "counting-suite", str(suite)]) == 0
    assert "written on other data" in caplog.text and "reusing" not in caplog.text
    assert json.loads(results.read_text())["data_fingerprint"] == "data-v2"
    older = json.loads(results.read_text())
    del older["data_fingerprint"]  # a report written before reports named their data
    results.write_text(json.dumps(older))
    monkeypatch.setattr(Counting, "data_fingerprint", lambda self: "data-v3")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recfuse.runner"):
        assert main(["run", "counting-suite", str(suite)]) == 0
    assert "reusing the results already written" in caplog.text


def test_one_run_spread_over_two_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(recfuse.method, "_REGISTRY", dict(recfuse.method._REGISTRY))
    register_method(Counting)
    args = ["run", "counting", "--seeds", "0,1", "--out", str(tmp_path)]
    assert main([*args, "--only-seed", "1"]) == 0
    assert "; the report is written by the run that finishes the last of them" in capsys.readouterr().out
    assert not (tmp_path / "count" / "results.json").exists()
    assert main([*args, "--only-seed", "0"]) == 0
    assert [s["seed"] for s in json.loads((tmp_path / "count" / "results.json").read_text())["seeds"]] == [0, 1]


def test_one_process_writes_the_report_of_seeds_shared_by_two(tmp_path):
    """The report's lock: a process that finds it held (another writing the report), or finds a seed no longer
    kept (another wrote the report and removed them), writes nothing."""
    import fcntl

    cfg = CountConfig(out=str(tmp_path), seeds=[0, 1])
    assert Counting(cfg).run(only_seeds=[0]) is None
    kept = Counting(cfg).finished_seeds()
    with open(kept.folder / ".report.lock", "a") as other:  # another process writing the report
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with kept.reporting([0]) as mine:
            assert not mine
        assert Counting(cfg).run(only_seeds=[1]) is None
        assert not (tmp_path / "count" / "results.json").exists()
    with kept.reporting([0, 1]) as mine:
        assert mine
    with kept.reporting([0, 1, 2]) as mine:
        assert not mine  # seed 2 is not kept (a report written meanwhile removed the seeds)
    assert Counting(cfg).run(only_seeds=[1]) is not None  # let go: the last seed's process writes it
    assert not kept.folder.exists()  # the lock goes with the seeds


def test_only_seeds_are_checked_for_every_run_before_any_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(recfuse.method, "_REGISTRY", dict(recfuse.method._REGISTRY))
    register_method(Counting)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"method: counting\nout: {tmp_path / 'out'}\ncommon: {{seeds: [0, 1]}}\n"
                     "runs: [{value: 0.5}, {value: 0.25, seeds: [0], out: " + str(tmp_path / "other") + "}]\n")
    assert main(["run", "counting-suite", str(suite), "--only-seed", "1"]) == 2
    assert "seed 1 is not one of the run's seeds [0]" in capsys.readouterr().err
    assert not (tmp_path / "out" / "count").exists()


def test_recomputing_part_of_a_finished_run_leaves_it_pending(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(recfuse.method, "_REGISTRY", dict(recfuse.method._REGISTRY))
    register_method(Counting)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"method: counting\nout: {tmp_path / 'out'}\ncommon: {{seeds: [0, 1]}}\nruns: [{{value: 0.5}}]\n")
    assert main(["run", "counting-suite", str(suite)]) == 0
    assert main(["run", "counting-suite", str(suite), "--recompute", "--only-seed", "1"]) == 0
    listed = json.loads((tmp_path / "out" / "suite.json").read_text())  # the old report is not the new run's
    assert listed["runs"] == [] and listed["pending"] == ["run (seeds 0, 1: 1 of 2 finished, kept in count/seeds)"]
    # a single run's command adds no seed to a run whose report holds them all
    args = ["run", "counting", "--seeds", "0", "--out", str(tmp_path / "single")]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--only-seed", "0"]) == 0
    assert "already holds every seed of these settings: nothing run" in capsys.readouterr().out
    assert not (tmp_path / "single" / "count" / "seeds").exists()


def test_without_file_locks_the_report_is_written_and_said(tmp_path, monkeypatch, caplog):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="recfuse.method"):
        assert Counting(CountConfig(out=str(tmp_path), seeds=[0])).run() is not None
    assert "no file locks here" in caplog.text and (tmp_path / "count" / "results.json").is_file()


class CountingByValue(Counting):
    """Counting with a folder per value, so that a suite's runs live side by side."""

    name = "counting-by-value"

    def output_dir(self) -> Path:
        return Path(self.cfg.out) / f"count-{self.cfg.value}"


def test_a_run_another_process_finished_meanwhile_is_not_run_again(tmp_path, monkeypatch, caplog):
    """A suite busy with its first run; meanwhile another process finishes its second (its seeds shared)."""
    monkeypatch.setattr(recfuse.method, "_REGISTRY", dict(recfuse.method._REGISTRY))
    register_method(CountingByValue)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"method: counting-by-value\nout: {tmp_path / 'out'}\ncommon: {{seeds: [0]}}\n"
                     "runs: [{value: 0.5}, {value: 0.25}]\n")
    ran = []
    run = CountingByValue.run

    def and_meanwhile(self, only_seeds=None):
        ran.append(self.cfg.value)
        if self.cfg.value == 0.5:  # the other process finishes the second run while the first one runs
            run(CountingByValue(CountConfig(value=0.25, seeds=[0], out=str(tmp_path / "out"))))
        return run(self, only_seeds)
    monkeypatch.setattr(CountingByValue, "run", and_meanwhile)
    with caplog.at_level(logging.INFO, logger="recfuse.runner"):
        assert main(["run", "counting-by-value-suite", str(suite)]) == 0
    assert ran == [0.5] and "finished meanwhile" in caplog.text
    listed = json.loads((tmp_path / "out" / "suite.json").read_text())
    assert listed["pending"] == [] and len(listed["runs"]) == 2
