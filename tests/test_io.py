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
