"""recfuse.io helpers."""

from pathlib import Path

from recfuse.io import with_extension


def test_with_extension_keeps_a_dot_in_the_name():
    assert with_extension("runs/w_0.002", ".json") == Path("runs/w_0.002.json")  # with_suffix: runs/w_0.json
    assert with_extension(Path("a/b"), ".md") == Path("a/b.md")
