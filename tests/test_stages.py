"""Stage outputs and their costs: a reused stage or cached answer counts at what it cost when computed."""

import json
import sqlite3
import time

import numpy as np
import pytest

from recfuse.llm.cache import CachedLLM
from recfuse.stages import stage_cost, stage_dir


def test_reused_stage_counts_at_its_recorded_cost(tmp_path):
    builds = []

    def build(tmp):
        builds.append(tmp)
        time.sleep(0.2)
        (tmp / "out.txt").write_text("x")

    with stage_cost() as first:
        d = stage_dir("demo", {"a": 1}, build, root=tmp_path)
    recorded = json.loads((d / "cost.json").read_text())["seconds"]
    assert recorded >= 0.2 and first.complete
    with stage_cost() as again:
        assert stage_dir("demo", {"a": 1}, build, root=tmp_path) == d
    assert len(builds) == 1 and abs(again.seconds - again.wall - recorded) < 1e-9 and again.complete

    (d / "cost.json").unlink()  # a stage written before costs were recorded: counted as unknown
    with stage_cost() as old:
        stage_dir("demo", {"a": 1}, build, root=tmp_path)
    assert old.unknown_stages == 1 and not old.complete


def test_a_stage_built_from_reused_work_records_its_whole_cost(tmp_path):
    """A stage finished after an interruption reuses what was done before (an inner stage here, cached answers
    in practice): its recorded cost counts that work at its recorded cost, not only the build's own seconds."""
    def inner(tmp):
        (tmp / "part.txt").write_text("p")

    def outer(tmp):
        stage_dir("part", {"b": 1}, inner, root=tmp_path)  # reused: done before the interruption
        (tmp / "out.txt").write_text("x")

    part = stage_dir("part", {"b": 1}, inner, root=tmp_path)
    (part / "cost.json").write_text(json.dumps({"seconds": 100.0}))  # what it cost back then
    whole = stage_dir("whole", {"a": 1}, outer, root=tmp_path)
    recorded = json.loads((whole / "cost.json").read_text())["seconds"]
    assert 100.0 <= recorded < 101.0
    with stage_cost() as again:  # reused later: the whole counts
        stage_dir("whole", {"a": 1}, outer, root=tmp_path)
    assert again.seconds >= 100.0


class _Slow:
    fingerprint = "slow-v1"

    def choice_logprobs(self, prompts, choices):
        time.sleep(0.05 * len(prompts))
        return np.full((len(prompts), len(choices)), -1.0)


def test_cached_answers_carry_their_cost_and_old_caches_migrate(tmp_path):
    path = tmp_path / "answers.sqlite"
    with sqlite3.connect(path) as conn:  # the schema before answers recorded their cost
        conn.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    llm = CachedLLM(_Slow(), path)
    with stage_cost() as first:
        llm.choice_logprobs(["p1", "p2", "p3"], ["a", "b"])
    with stage_cost() as again:
        llm.choice_logprobs(["p1", "p2", "p3"], ["a", "b"])
    assert llm.stats["hits"] == 3 and again.complete
    assert abs(again.seconds - first.seconds) < 0.05 + again.wall
    with sqlite3.connect(path) as conn:  # an answer cached by an older version: cost unknown
        conn.execute("INSERT INTO answers (key, value) VALUES ('old', '[-1.0, -1.0]')")
    from recfuse.llm.cache import answer_key

    key = answer_key("choice", "slow-v1", "p4", ["a", "b"])
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO answers (key, value) VALUES (?, '[-2.0, -2.0]')", (key,))
    with stage_cost() as mixed:
        out = llm.choice_logprobs(["p1", "p4"], ["a", "b"])
    assert out[1, 0] == -2.0 and mixed.unknown_answers == 1 and not mixed.complete


def test_half_built_stages_of_dead_processes_are_swept(tmp_path):
    """A stage killed mid-build (SIGKILL, out of memory) leaves its temporary folder; the next build of the same
    stage removes it, but never one of a live process (a concurrent build)."""
    import os
    import shutil
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    calls = []
    key = {"x": 1}
    first = stage_dir("demo", key, lambda tmp: (tmp / "out.txt").write_text("1"), root=tmp_path)
    orphan = first.parent / f".{first.name}x.{dead_pid}.abc"  # another stage's name: untouched
    mine_dead = first.parent / f".{first.name}.{dead_pid}.abc"
    mine_live = first.parent / f".{first.name}.{os.getpid()}.abc"
    for d in (orphan, mine_dead, mine_live):
        d.mkdir()
    shutil.rmtree(first)
    stage_dir("demo", key, lambda tmp: calls.append((tmp / "out.txt").write_text("2")), root=tmp_path)
    assert calls and not mine_dead.exists() and mine_live.exists() and orphan.exists()


def test_sigterm_interrupts_the_command_like_ctrl_c(capsys, monkeypatch):
    """`kill` reaches the CLI as KeyboardInterrupt: finally-blocks clean up and the exit code is 130."""
    import argparse
    import os
    import signal

    from recfuse import cli

    def command(args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("not interrupted")

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=command, verbose=False)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main([]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_stage_scratch_folder_outlives_a_failed_build_and_goes_once_built(tmp_path):
    """Checkpoints of a long build (SFT) live in the stage's scratch folder: kept when the build dies, so the
    next build resumes from them, removed once the stage is built; stage scans do not list it."""
    from recfuse.stages import scan_stages, stage_dir, stage_scratch

    key = {"what": "long"}
    scratch = stage_scratch("long", key, root=tmp_path)

    def dies(tmp):
        scratch.mkdir(parents=True, exist_ok=True)
        (scratch / "checkpoint").write_text("step 3")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stage_dir("long", key, dies, root=tmp_path)
    assert (scratch / "checkpoint").read_text() == "step 3" and scan_stages(tmp_path) == []
    seen = []
    folder = stage_dir("long", key, lambda tmp: seen.append((scratch / "checkpoint").read_text()), root=tmp_path)
    assert seen == ["step 3"] and folder.is_dir() and not scratch.exists()
