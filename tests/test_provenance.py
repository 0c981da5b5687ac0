"""manifest.json beside results: recfuse.provenance's record (command, git commit, machine, date, files), written
by every method run (``recfuse run NAME``) and suite, and never touched by ``recfuse report``."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import recfuse.method
from recfuse import provenance
from recfuse.cli import main
from recfuse.config import option, to_dict
from recfuse.eval.report import markdown_table, write_report
from recfuse.io import write_text
from recfuse.method import Method, RunReport, register_method

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_records_the_command_commit_machine_and_keeps_earlier_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "_command", None)
    files = [tmp_path / "res" / "results.json", tmp_path / "res" / "results.md"]
    first = provenance.write_manifest(files, "recfuse run toy --seeds 0")
    assert json.loads((tmp_path / "res" / "manifest.json").read_text()) == first
    assert first["command"] == "recfuse run toy --seeds 0" and first["files"] == ["results.json", "results.md"]
    assert first["machine"] == provenance.machine() and first["cpu"]["count"] >= 1 and isinstance(first["gpus"], list)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["date"]) and "earlier" not in first
    if provenance.source_checkout() is not None:  # run from a checkout: its commit and whether the code differs
        assert re.fullmatch(r"[0-9a-f]{40}", first["git_commit"]) and isinstance(first["git_dirty"], bool)
    # the same command saving again updates its record; another command keeps the earlier one
    again = provenance.write_manifest([tmp_path / "res" / "tables.md"], "recfuse run toy --seeds 0")
    assert again["files"] == ["results.json", "results.md", "tables.md"] and "earlier" not in again
    later = provenance.write_manifest(files, "recfuse run toy --seeds 1")
    assert later["earlier"] == [again]
    # without a recorded command: this process's own command line (the Python API)
    assert provenance.current_command().split()[0] == Path(__import__("sys").executable).name
    provenance.set_command(["recfuse", "run", "toy", "--note", "a b"])
    assert provenance.current_command() == "recfuse run toy --note 'a b'"
    with pytest.raises(ValueError, match="one folder"):
        provenance.write_manifest([tmp_path / "a" / "x", tmp_path / "b" / "y"], "c")


def test_a_damaged_earlier_manifest_is_replaced_not_fatal(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    record = provenance.write_manifest([tmp_path / "results.json"], "recfuse run x")
    assert "earlier" not in record and json.loads((tmp_path / "manifest.json").read_text()) == record


@dataclass
class ToyConfig:
    """A method that trains nothing."""

    value: float = option(0.5, "the metric every seed reports")
    seeds: list[int] = option([0], "random seeds")
    out: str = option("runs/toy", "output folder")


class Toy(Method[ToyConfig, dict]):
    name = "toy-provenance"
    title = "Toy"
    config_type = ToyConfig

    def run_seed(self, seed):
        return {"seed": seed, "hr@1": self.cfg.value}

    def output_dir(self):
        return Path(self.cfg.out) / "toy"

    def write_report(self, results):
        rows = [{"variant": "toy", "hr@1": sum(r["hr@1"] for r in results) / len(results)}]
        write_report(self.output_dir(), rows, config=to_dict(self.cfg), title="toy",
                     extra={"method": self.name, "seeds": results})
        self.rerender(self.output_dir(), self.cfg, {"rows": rows})
        return RunReport(self.output_dir(), rows)

    @classmethod
    def rerender(cls, folder, config, results):
        write_text(folder / "table.md", markdown_table(results["rows"]))
        return [folder / "table.md"]


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(recfuse.method, "_REGISTRY", dict(recfuse.method._REGISTRY))
    monkeypatch.setattr(provenance, "_command", None)
    register_method(Toy)
    return Toy


def test_a_method_run_writes_its_manifest_beside_results_json(toy, tmp_path):
    out = tmp_path / "runs"
    (out / "toy").mkdir(parents=True)
    (out / "toy" / "notes.txt").write_text("a file of the user's, not of the run")
    assert main(["run", "toy-provenance", "--seeds", "0,1", "--out", str(out)]) == 0
    manifest = json.loads((out / "toy" / "manifest.json").read_text())
    assert manifest["command"] == f"recfuse run toy-provenance --seeds 0,1 --out {out}"
    assert manifest["files"] == ["config.yaml", "results.csv", "results.json", "results.md", "table.md"]
    assert {"git_commit", "git_dirty", "machine", "cpu", "gpus", "date"} <= set(manifest)

    # recfuse report re-renders the tables and leaves the manifest as the run wrote it
    before = (out / "toy" / "manifest.json").read_text()
    assert main(["report", str(out / "toy")]) == 0
    assert (out / "toy" / "manifest.json").read_text() == before

    # a re-rendering that adds a file (a figure added since the run) records that file, under its own command
    tables = Toy.rerender

    def with_figure(cls, folder, config, results):
        write_text(folder / "figure.svg", "<svg/>")
        return [*tables(folder, config, results), folder / "figure.svg"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Toy, "rerender", classmethod(with_figure))
        assert main(["report", str(out / "toy")]) == 0
        added = json.loads((out / "toy" / "manifest.json").read_text())
        assert added["command"] == f"recfuse report {out / 'toy'}" and added["files"] == ["figure.svg"]
        assert added["earlier"][0]["files"] == manifest["files"]
        again = (out / "toy" / "manifest.json").read_text()
        assert main(["report", str(out / "toy")]) == 0
        assert (out / "toy" / "manifest.json").read_text() == again  # known now: nothing more to record

    # the Python API records the process's own command line
    Toy(ToyConfig(value=0.25, out=str(tmp_path / "api"))).run()
    api = json.loads((tmp_path / "api" / "toy" / "manifest.json").read_text())
    assert "recfuse run" not in api["command"] and "results.json" in api["files"]


def test_a_suite_writes_a_manifest_for_its_report_and_each_run(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.yaml").write_text("runs:\n  - {value: 0.5}\nout: suite-out\n")
    assert main(["run", "toy-provenance-suite", "suite.yaml"]) == 0
    suite = json.loads((tmp_path / "suite-out" / "manifest.json").read_text())
    assert suite["command"] == "recfuse run toy-provenance-suite suite.yaml"
    assert suite["files"] == ["suite.json", "suite.md"]
    run = json.loads((tmp_path / "suite-out" / "toy" / "manifest.json").read_text())
    assert "results.json" in run["files"]

    # a suite report that writes into a run's folder (RecLM's tuning ablation figure): recorded there too
    def write_suite(out, entries, pending=()):
        write_text(out / "toy" / "across_runs.md", "a table over the suite's runs")
        return [out / "suite.md", out / "toy" / "across_runs.md"]
    monkeypatch.setattr(Toy, "write_suite", staticmethod(write_suite))
    assert main(["run", "toy-provenance-suite", "suite.yaml"]) == 0
    run = json.loads((tmp_path / "suite-out" / "toy" / "manifest.json").read_text())
    assert run["command"] == "recfuse run toy-provenance-suite suite.yaml" and "across_runs.md" in run["files"]
    again = (tmp_path / "suite-out" / "toy" / "manifest.json").read_text()
    monkeypatch.setattr(provenance, "_this_run", {})  # another process: a new record only for a new file
    assert main(["run", "toy-provenance-suite", "suite.yaml"]) == 0
    assert (tmp_path / "suite-out" / "toy" / "manifest.json").read_text() == again


@pytest.mark.parametrize("manifest", ['{"earlier": null, "files": ["a.md"]}', '{"files": 5}', '{"files": "ab.md"}',
                                      '[1, 2]', '{"files": ["a.md", 3, null]}', "not json"])
def test_recorded_files_of_odd_manifests(tmp_path, manifest):
    (tmp_path / "manifest.json").write_text(manifest)
    assert provenance.recorded_files(tmp_path) <= {"a.md"}


def test_a_manifest_that_cannot_be_written_does_not_lose_the_results(toy, tmp_path, monkeypatch, caplog):
    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(recfuse.method, "write_manifest", full_disk)
    report = Toy(ToyConfig(out=str(tmp_path))).run()
    assert (report.out / "results.json").is_file() and not (report.out / "manifest.json").exists()
    assert "manifest.json could not be" in caplog.text


def test_a_manifest_names_the_commit_the_run_started_from(tmp_path, monkeypatch):
    """A commit made while a long run works is not the code it ran: the pinned start state is recorded, and
    the commit at write time beside it."""
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("commit", "-qm", "first")
    start = git("rev-parse", "HEAD")
    monkeypatch.setattr(provenance, "_pinned", {})
    assert provenance.pin_code_state(repo) == (start, False)
    (repo / "code.py").write_text("x = 2\n")
    git("commit", "-qam", "second, while the run works")
    later = git("rev-parse", "HEAD")
    record = provenance.write_manifest([tmp_path / "out" / "r.json"], "a long run", root=repo)
    assert record["git_commit"] == start and record["git_commit_at_write"] == later
    assert provenance.pin_code_state(repo) == (start, False)  # pinned once per process


def test_a_new_uncommitted_source_file_marks_the_code_as_not_the_commit(tmp_path):
    import subprocess

    from recfuse.provenance import git_state

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    assert git_state(tmp_path)[1] is False
    (tmp_path / "notes.txt").write_text("not code\n")
    assert git_state(tmp_path)[1] is False
    (tmp_path / "src" / "new_method.py").write_text("y = 2\n")
    assert git_state(tmp_path)[1] is True
