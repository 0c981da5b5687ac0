"""recfuse.io helpers."""

from pathlib import Path

import numpy as np

from recfuse.io import fingerprint, with_extension


def test_with_extension_keeps_a_dot_in_the_name():
    assert with_extension("runs/w_0.002", ".json") == Path("runs/w_0.002.json")  # with_suffix: runs/w_0.json
    assert with_extension(Path("a/b"), ".md") == Path("a/b.md")


def test_write_report_writes_json_and_markdown_side_by_side(tmp_path):
    from recfuse.io import read_json, write_report

    write_report(tmp_path / "r_0.5", {"a": 1}, "# A\n")
    assert read_json(tmp_path / "r_0.5.json") == {"a": 1} and (tmp_path / "r_0.5.md").read_text() == "# A\n"


def test_fingerprint_of_an_object_array_is_of_its_values_not_its_pointers():
    import subprocess
    import sys

    code = ("import numpy as np; from recfuse.io import fingerprint; "
            "print(fingerprint(np.array(['Alien', 'Heat', None], dtype=object)))")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 1
    assert fingerprint(np.array(["a", "b"], dtype=object)) != fingerprint(np.array(["a", "c"], dtype=object))


def test_a_concurrent_run_that_finished_first_wins_even_between_the_check_and_the_rename(tmp_path, monkeypatch):
    """The other process's folder landed after ours checked for it: the rename failed with ENOTEMPTY."""
    import os

    from recfuse.io import atomic_dir

    target = tmp_path / "stage"
    real_replace = os.replace

    def other_lands_first(src, dst):
        (Path(dst) / "theirs").mkdir(parents=True)
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", other_lands_first)
    with atomic_dir(target, keep_existing=True) as tmp:
        (tmp / "ours").write_text("x")
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert [p.name for p in tmp_path.iterdir()] == ["stage"]  # our temporary folder is gone
