"""Small pieces the benchmark scripts share (benchmarks/ is not a package: a script puts its folder on sys.path)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recfuse import provenance

ROOT = Path(__file__).resolve().parent.parent


def parse_params(pairs: list[str], flag: str = "--param") -> dict[str, Any]:
    """``KEY=VALUE`` pairs as a mapping, each VALUE read as JSON (``lr=0.002``, ``keep_last=true``,
    ``cl_views='"prefix"'``); a pair without ``=`` or with a value that is not JSON stops the script, naming it."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError as e:
            raise SystemExit(f"{flag} {pair!r}: the value is not JSON ({e}); quote strings, e.g. "
                             f"{key}='\"text\"'") from None
    return out


def machine() -> str:
    """The machine, as the reports name it (the benchmarks ran on shared CPUs)."""
    return f"{provenance.machine()} (shared)"


def report_files(out: str | Path) -> list[Path]:
    """The files a result written as ``out`` consists of: ``out``.json and ``out``.md (a dot in the name stays)."""
    out = Path(out)
    return [out.parent / f"{out.name}.json", out.parent / f"{out.name}.md"]


def git_state() -> tuple[str | None, bool | None]:
    """``git rev-parse HEAD`` of this repository when the script started and whether tracked files outside
    benchmarks/results differed from it (the code that ran is then not exactly that commit); ``(None, None)``
    outside a git checkout."""
    return provenance.pin_code_state(ROOT)


git_state()  # pinned when a script imports this module: a commit made while it runs is not the code it ran


cpu = provenance.cpu
describe_cpu = provenance.describe_cpu
gpus = provenance.gpus


def _shown(path: str | Path) -> str:
    path = Path(path).absolute()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def write_outputs(outputs: dict[Path, Any], record: bool) -> list[Path]:
    """Write each output (a ``str`` as text with a final newline, anything else as JSON), atomically, and, where
    ``record`` (the committed results folder, not a folder of the user's), ``manifest.json`` beside them."""
    from recfuse.io import write_json, write_text  # lazy: recfuse's I/O, after the script set its environment

    for path, content in outputs.items():
        if isinstance(content, str):
            write_text(path, content + "\n")
        else:
            write_json(path, content)
    files = list(outputs)
    if record:
        write_manifest(files)
    return files


def write_manifest(files: Sequence[str | Path], argv: Sequence[str] | None = None,
                   script: str | Path | None = None) -> dict[str, Any]:
    """Record how ``files`` (a result, all in one folder) were made in ``manifest.json`` beside them
    (:func:`recfuse.provenance.write_manifest`: the command, commit, machine, date and files; a script that saves
    after every step updates its record, an earlier run's record moves into ``earlier``).

    The command line is ``script`` with ``argv`` (default ``sys.argv``), run by this Python. Returns the manifest.
    """
    script = sys.argv[0] if script is None else script
    argv = sys.argv[1:] if argv is None else argv
    command = shlex.join([_shown(sys.executable), _shown(script), *map(str, argv)])
    return provenance.write_manifest(files, command, machine_name=machine(), root=ROOT)
