"""The stage cache verifies itself (issue #26): a stage whose files were truncated, replaced by random values
of the right shape, broken or left without key.json is recomputed with a warning, never used and never a
lasting traceback; `recfuse cache verify` / `clean` find and remove such stages."""

import errno
import json
import logging
import shutil
import tarfile

import numpy as np
import pytest

from recfuse.cli import main
from recfuse.errors import CacheError
from recfuse.io import fingerprint, load_npz, save_npz
from recfuse.stages import (CHECKSUMS_FILE, check_stage, clean_stages, import_stages, scan_stages, stage_dir, stage_json,
                            stage_root)

KEY = {"stage": "demo", "seed": 0}


def build_weights(calls, value=1.0):
    def build(tmp):
        calls.append(tmp)
        save_npz(tmp / "weights.npz", w=np.full((4, 3), value, np.float32))
        (tmp / "log.json").write_text(json.dumps({"epochs": 3}))
    return build


@pytest.fixture
def built(tmp_path):
    calls = []
    folder = stage_dir("demo", KEY, build_weights(calls), root=tmp_path)
    assert len(calls) == 1 and check_stage(folder, KEY).status == "ok"
    recorded = json.loads((folder / CHECKSUMS_FILE).read_text())["files"]
    assert set(recorded) == {"key.json", "log.json", "weights.npz"}
    return folder, calls


def rerun(tmp_path, calls, caplog):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recfuse.stages"):
        folder = stage_dir("demo", KEY, build_weights(calls), root=tmp_path)
    return folder, caplog.text


def test_an_intact_stage_is_reused(built, tmp_path, caplog):
    folder, calls = built
    again, warned = rerun(tmp_path, calls, caplog)
    assert again == folder and len(calls) == 1 and warned == ""


def test_a_truncated_file_is_recomputed(built, tmp_path, caplog):
    folder, calls = built
    data = (folder / "weights.npz").read_bytes()
    (folder / "weights.npz").write_bytes(data[: len(data) // 2])
    again, warned = rerun(tmp_path, calls, caplog)
    assert len(calls) == 2 and "weights.npz has" in warned and "(truncated)" in warned and "computing it again" in warned
    assert load_npz(again / "weights.npz")["w"].shape == (4, 3) and check_stage(again, KEY).status == "ok"


def test_random_values_of_the_right_shape_are_not_used(built, tmp_path, caplog):
    folder, calls = built
    size = (folder / "weights.npz").stat().st_size
    save_npz(folder / "weights.npz", w=np.random.default_rng(0).random((4, 3), dtype=np.float32))
    assert (folder / "weights.npz").stat().st_size == size  # same shape, same size: only the checksum tells
    again, warned = rerun(tmp_path, calls, caplog)
    assert len(calls) == 2 and "weights.npz differs from what was written (SHA-256)" in warned
    assert (load_npz(again / "weights.npz")["w"] == 1.0).all()


def test_a_stage_without_key_json_is_recomputed_and_the_new_one_used(built, tmp_path, caplog):
    folder, calls = built
    (folder / "key.json").unlink()
    save_npz(folder / "weights.npz", w=np.zeros((4, 3), np.float32))  # what an old folder might hold
    again, warned = rerun(tmp_path, calls, caplog)
    assert len(calls) == 2 and "no key.json" in warned
    assert (again / "key.json").is_file() and (load_npz(again / "weights.npz")["w"] == 1.0).all()


@pytest.mark.parametrize("damage, reason", [
    (lambda f: (f / "log.json").write_text("{broken"), "log.json"),
    (lambda f: (f / "key.json").write_text("{broken"), "key.json cannot be read"),
    (lambda f: (f / "key.json").write_text(json.dumps({"stage": "other"})), "key.json differs"),
    (lambda f: (f / CHECKSUMS_FILE).write_text("[1, 2"), "checksums.json cannot be read"),
    (lambda f: (f / "weights.npz").unlink(), "weights.npz is missing"),
])
def test_each_kind_of_damage_is_named_and_recomputed(built, tmp_path, caplog, damage, reason):
    folder, calls = built
    damage(folder)
    _, warned = rerun(tmp_path, calls, caplog)
    assert len(calls) == 2 and reason in warned


def test_a_broken_json_stage_result_is_recomputed(tmp_path):
    values = iter([{"a": 1}, {"a": 2}])
    first = stage_json("j", {"k": 1}, lambda: next(values), root=tmp_path)
    (tmp_path / "j" / fingerprint({"k": 1}) / "result.json").write_text('{"a": ')
    assert first == {"a": 1} and stage_json("j", {"k": 1}, lambda: next(values), root=tmp_path) == {"a": 2}


def test_a_stage_written_before_checksums_is_checked_as_far_as_it_can_be_then_recorded(built, tmp_path, caplog):
    folder, calls = built
    (folder / CHECKSUMS_FILE).unlink()  # as stages written by earlier versions are
    assert check_stage(folder, KEY).status == "unrecorded"
    again, warned = rerun(tmp_path, calls, caplog)
    assert len(calls) == 1 and warned == "" and (again / CHECKSUMS_FILE).is_file()
    # an old stage whose zip fails its CRC check (or is cut short) is damaged even without checksums
    (folder / CHECKSUMS_FILE).unlink()
    data = bytearray((folder / "weights.npz").read_bytes())
    (folder / "weights.npz").write_bytes(bytes(data[:-30]))
    assert check_stage(folder).status == "damaged"
    _, warned = rerun(tmp_path, calls, caplog)
    assert len(calls) == 2 and "weights.npz" in warned


def test_a_trained_backbone_replaced_by_random_weights_is_retrained(caplog):
    """The issue's case: a backbone stage's weights replaced by random values of the right shape."""
    from recfuse.data import leave_one_out, make_synthetic
    from recfuse.eval.ranking import evaluate_full_ranking
    from recfuse.models.fitting import fit_backbone

    split = leave_one_out(make_synthetic(n_users=40, n_items=30, seed=3))
    params = {"epochs": 2, "embedding_dim": 8}
    model, _ = fit_backbone("bpr", split, 0, params=params)

    def hr(m):
        return evaluate_full_ranking(m.score, split.history("test"), split.ground_truth("test"), ks=[5]).mean()

    folder = next(p for p in (stage_root() / "backbone").iterdir() if (p / "model" / "weights.npz").is_file()
                  and json.loads((p / "key.json").read_text())["split"] == split.fingerprint())
    weights = load_npz(folder / "model" / "weights.npz")
    rng = np.random.default_rng(1)
    save_npz(folder / "model" / "weights.npz", **{k: rng.standard_normal(v.shape).astype(v.dtype) if v.dtype.kind == "f"
                                                    else v for k, v in weights.items()})
    with caplog.at_level(logging.WARNING, logger="recfuse.stages"):
        again, _ = fit_backbone("bpr", split, 0, params=params)
    assert "failed verification" in caplog.text and hr(again) == hr(model)


def test_a_full_disk_names_the_cache_not_a_traceback(tmp_path):
    def build(tmp):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "weights.npz"))

    with pytest.raises(CacheError, match=r"cannot write stage demo to the cache at .*No space left on device"):
        stage_dir("demo", KEY, build, root=tmp_path)
    assert not any(tmp_path.glob("demo/*")) and not any(tmp_path.glob("demo/.*"))  # nothing half-built left


def test_a_cache_root_that_cannot_be_made_is_named(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(CacheError, match="cannot create the cache folder .*file/cache"):
        stage_root()


def test_cache_verify_and_clean_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path))
    good = stage_dir("demo", KEY, build_weights([]))
    bad = stage_dir("demo", {"other": 1}, build_weights([]))
    (bad / "log.json").write_text("{}")
    orphan = good.parent / f".{good.name}.999999999.abcd"  # a build whose process is gone
    orphan.mkdir()
    killed_import = good.parent.parent / ".import.999999999.abcd"  # an import whose process is gone
    (killed_import / "demo" / "0123456789abcdef").mkdir(parents=True)
    spent = good.parent / f".resume-{good.name}"  # checkpoints of a stage built since
    resumable = good.parent / ".resume-0123456789abcdef"  # checkpoints of a killed build, to resume from
    for folder in (spent, resumable):
        folder.mkdir()
        (folder / "step.pt").write_bytes(b"x")
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert "2 stage folder(s): 1 verified, 0 written before checksums" in out and "1 damaged" in out
    assert bad.name in out and "log.json" in out
    assert "1 checkpoint folder(s) of unfinished builds" in out and "demo/.resume-0123456789abcdef" in out
    assert main(["cache", "clean", "--dry-run"]) == 0 and bad.exists()
    assert main(["cache", "clean"]) == 0
    assert not bad.exists() and not orphan.exists() and not killed_import.exists() and good.exists()
    assert not spent.exists() and resumable.exists()  # kept: a rerun resumes from it
    assert main(["cache", "clean", "--checkpoints"]) == 0 and not resumable.exists()
    assert main(["cache", "verify", "--stage", "demo"]) == 0
    assert [c.status for c in scan_stages()] == ["ok"]
    assert main(["cache", "clean", "--all"]) == 0 and not good.exists()
    assert clean_stages() == [] and main(["cache", "verify"]) == 0
    shutil.rmtree(tmp_path / "stages")
    assert main(["cache", "verify"]) == 0  # no stage folder yet: nothing to verify


def test_stages_carried_to_another_machine_are_verified_and_reused(tmp_path, monkeypatch, capsys):
    here, there = tmp_path / "here", tmp_path / "there"
    monkeypatch.setenv("RECFUSE_CACHE", str(here))
    calls: list = []
    stage_dir("demo", KEY, build_weights(calls))
    stage_json("scores", {"seed": 1}, lambda: {"hr@3": 0.25})
    damaged = stage_dir("demo", {"other": 1}, build_weights(calls))
    (damaged / "log.json").write_text("{}")
    archive = tmp_path / "stages.tar.gz"
    assert main(["cache", "export", str(archive)]) == 0
    assert "2 stage(s)" in capsys.readouterr().out  # the damaged one stays behind
    monkeypatch.setenv("RECFUSE_CACHE", str(there))
    assert main(["cache", "import", str(archive)]) == 0
    assert "2 stage(s) added, 0 already there" in capsys.readouterr().out
    calls.clear()
    assert load_npz(stage_dir("demo", KEY, build_weights(calls)) / "weights.npz")["w"].sum() == 12
    assert calls == [] and stage_json("scores", {"seed": 1}, lambda: pytest.fail("recomputed")) == {"hr@3": 0.25}
    assert main(["cache", "import", str(archive)]) == 0  # again: what is there is kept
    assert "0 stage(s) added, 2 already there (kept)" in capsys.readouterr().out
    # only one kind; and an export whose files were changed on the way is refused, nothing written
    only = tmp_path / "sft.tar"
    assert main(["cache", "export", str(only), "--stage", "scores"]) == 0 and "1 stage(s)" in capsys.readouterr().out
    tampered = tmp_path / "tampered.tar"
    unpacked = tmp_path / "unpacked"
    with tarfile.open(only) as tar:
        tar.extractall(unpacked, filter="data")
    result = next(unpacked.glob("scores/*")) / "result.json"
    result.write_text(result.read_text().replace("0.25", "0.99"))  # the same size, other values
    with tarfile.open(tampered, "w") as tar:
        tar.add(unpacked / "scores", arcname="scores")
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("RECFUSE_CACHE", str(fresh))
    assert main(["cache", "import", str(tampered)]) == 1
    out = capsys.readouterr().out
    assert "1 refused" in out and "result.json differs from what was written" in out
    assert not (fresh / "stages" / "scores").exists()
    result.write_text(result.read_text().replace("0.99", "0.25"))
    result.parent.rename(result.parent.with_name("0123456789abcdef"))  # intact, filed under another key
    with tarfile.open(tampered, "w") as tar:
        tar.add(unpacked / "scores", arcname="scores")
    assert main(["cache", "import", str(tampered)]) == 1
    assert "its folder name is not its key's fingerprint" in capsys.readouterr().out
    # a file that is no stage export, and one that would write outside the cache, are errors naming the file
    with tarfile.open(evil := tmp_path / "evil.tar", "w") as tar:
        tar.add(unpacked / "scores", arcname="../outside")
    for bad in (evil, archive.with_name("missing.tar")):
        with pytest.raises(CacheError, match=str(bad.name)):
            import_stages(bad)
    assert not (fresh / "outside").exists() and not (tmp_path / "outside").exists()
    # a link inside a stage (to a file beside it: the data filter lets relative links through) is refused
    folder = next(unpacked.glob("scores/*"))
    (folder / "extra.json").symlink_to("result.json")
    with tarfile.open(linked := tmp_path / "linked.tar", "w") as tar:
        tar.add(unpacked / "scores", arcname="scores")
    assert main(["cache", "import", str(linked)]) == 1
    assert "holds a link (extra.json)" in capsys.readouterr().out


def test_results_that_cannot_be_written_name_the_path(tmp_path, monkeypatch):
    from recfuse.errors import OutputError
    from recfuse.eval.report import write_report
    from recfuse.io import write_json

    (tmp_path / "taken").write_text("a file where the results folder should be")
    with pytest.raises(OutputError, match=r"cannot write .*taken"):
        write_report(tmp_path / "taken", [{"hr@1": 0.5}])

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.replace", full)
    with pytest.raises(OutputError, match=r"cannot write .*results\.json: No space left on device"):
        write_json(tmp_path / "out" / "results.json", {"a": 1})
    assert not list((tmp_path / "out").iterdir())  # no temporary file left behind
