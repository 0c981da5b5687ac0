"""Every committed result says how it was made: each file under benchmarks/results is listed by the manifest.json
of its folder (the command, git commit and machine that wrote it), and each file a manifest lists is there."""

import json
import subprocess
from pathlib import Path

import pytest

from recfuse.provenance import recorded_files

ROOT = Path(__file__).parents[1]
RESULTS = "benchmarks/results"
#: committed files no command writes, and why
NOT_MADE_BY_A_COMMAND = {
    "benchmarks/results/archive/reclm/teacher/parser-v2/blind_judgement.json":
        "a reader's blind judgement of the profiles in blind.md (the judge and the order of reading are in it)",
}


def committed_results() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", RESULTS], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [Path(line) for line in listed.stdout.splitlines() if line]


def needs_a_record(path: Path) -> bool:
    """Notes (README.md) are people's words; a run's ``seeds/`` are the finished seeds of a run still going,
    which its report records once written."""
    return (path.name not in ("manifest.json", "README.md") and "seeds" not in path.parent.parts
            and path.as_posix() not in NOT_MADE_BY_A_COMMAND)


def test_every_committed_result_is_in_its_folders_manifest():
    unrecorded = [p.as_posix() for p in committed_results()
                  if needs_a_record(p) and p.name not in recorded_files(ROOT / p.parent)]
    assert not unrecorded, "files no manifest.json records (rerun the command that makes them, or " \
                           "`recfuse report FOLDER` for a figure of a results folder): " + ", ".join(unrecorded)


def test_every_file_a_manifest_lists_is_committed():
    committed = {p.as_posix() for p in committed_results()}
    missing = []
    for manifest in (p for p in committed_results() if p.name == "manifest.json"):
        record = json.loads((ROOT / manifest).read_text(encoding="utf-8"))
        missing += [(manifest.parent / name).as_posix() for name in record.get("files", [])
                    if (manifest.parent / name).as_posix() not in committed]
    assert not missing, "listed by the latest record of their manifest.json but not committed: " + ", ".join(missing)


def test_the_exceptions_are_still_there():
    assert all((ROOT / path).is_file() for path in NOT_MADE_BY_A_COMMAND)
