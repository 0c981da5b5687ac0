"""recfuse.io helpers."""

from pathlib import Path

from recfuse.io import with_extension


def test_with_extension_keeps_a_dot_in_the_name():
    assert with_extension("runs/w_0.002", ".json") == Path("runs/w_0.002.json")  # with_suffix: runs/w_0.json
    assert with_extension(Path("a/b"), ".md") == Path("a/b.md")


def test_write_report_writes_json_and_markdown_side_by_side(tmp_path):
    from recfuse.io import read_json, write_report

    write_report(tmp_path / "r_0.5", {"a": 1}, "# A\n")
    assert read_json(tmp_path / "r_0.5.json") == {"a": 1} and (tmp_path / "r_0.5.md").read_text() == "# A\n"
