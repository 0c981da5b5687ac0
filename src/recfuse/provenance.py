"""Where a result came from: ``manifest.json`` beside it, with the command, the git commit, the machine and the date.

    write_manifest([out / "results.json", out / "results.md"], command="recfuse run reclm --seeds 0,1")

The record holds the command line, ``git rev-parse HEAD`` of the source checkout recfuse runs from and whether
its tracked files differ from that commit (``null`` for both outside a checkout, e.g. an installed wheel),
the machine (architecture, CPU model and the instruction sets that change training and LLM speed, GPUs), the
UTC date, and the files the record describes. A process that saves a result step by step calls
:func:`write_manifest` after every step: within one process and command the record is updated, not repeated.
A manifest already in the folder from an earlier run (a resumed or updated result) moves into ``earlier``,
newest first.

``recfuse run`` writes one beside every method run's ``results.json`` (and one beside a suite's
``suite.json``); the benchmark scripts write theirs through ``benchmarks/_common.py``.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recfuse.io import write_text

#: the package's folder (``<checkout>/src/recfuse`` when recfuse runs from a source checkout)
PACKAGE_DIR = Path(__file__).resolve().parent
#: paths of a checkout left out of the dirty check: committed results change without the code changing
RESULTS_PATHS = ("benchmarks/results",)


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def source_checkout() -> Path | None:
    """The git checkout recfuse's own source lives in (``<root>/src/recfuse`` is this package), else None
    (an installed copy inside some other repository does not count)."""
    top = _git(PACKAGE_DIR, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    root = Path(top).resolve()
    return root if (root / "src" / "recfuse").resolve() == PACKAGE_DIR else None


#: where a file not yet committed is code that may have run (a new method, model or config)
CODE_PATHS = ("src", "configs")


def git_state(root: Path | None = None, exclude: Sequence[str] = RESULTS_PATHS) -> tuple[str | None, bool | None]:
    """``git rev-parse HEAD`` of ``root`` (default: :func:`source_checkout`) and whether tracked files outside
    ``exclude`` differ from it, or new files not committed sit in :data:`CODE_PATHS` (the code that ran is
    then not exactly that commit); ``(None, None)`` outside a git checkout."""
    root = source_checkout() if root is None else root
    if root is None:
        return None, None
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".",
                  *(f":(exclude){p}" for p in exclude))
    # new files of code or configuration that are not committed (a method being written) change the code too
    new_code = _git(root, "status", "--porcelain", "--untracked-files=normal", "--", *CODE_PATHS)
    if status is None or new_code is None:
        return commit, None
    return commit, bool(status) or any(line.startswith("??") for line in new_code.splitlines())


def machine() -> str:
    """The machine in a few words: architecture and CPU count."""
    return f"{platform.machine()}, {os.cpu_count()} CPUs"


def cpu() -> dict[str, Any]:
    """The CPU's model name and the instruction sets that change LLM and training speed (bf16 units)."""
    name, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            fields = dict(line.split(":", 1) for line in fh.read().split("\n\n")[0].splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        name, flags = fields.get("model name"), set(fields.get("flags", "").split())
    except OSError:
        pass
    name = name or platform.processor() or None
    return {"model": name, "count": os.cpu_count(),
            "flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})}


BF16_UNITS = ("amx_bf16", "avx512_bf16")


def describe_cpu(info: dict[str, Any]) -> str:
    """One line for a :func:`cpu` record (what every timing names): model, cores and its bf16 units, which
    decide whether bf16 is fast (AMX / AVX512-BF16 yes, AVX2 no)."""
    units = [f for f in BF16_UNITS if f in info.get("flags", [])]
    return (f"{info.get('model') or 'CPU'}, {info.get('count', '?')} cores, "
            + (f"bf16 units: {', '.join(units)}" if units else "no bf16 units"))


def gpus() -> list[str]:
    """Names of the visible CUDA GPUs (through torch when the process imported it, else nvidia-smi); [] for none."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception:  # noqa: BLE001 - a broken CUDA set-up means no usable GPU for the record
            return []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return [line.split(":", 1)[1].split("(UUID")[0].strip() for line in out.splitlines() if ":" in line]
    return []


_command: str | None = None


def set_command(argv: Sequence[str]) -> None:
    """Record the command line this process runs (the ``recfuse`` CLI calls it with its arguments)."""
    global _command
    _command = shlex.join([str(a) for a in argv])


#: the code's state when this process started its work, by checkout (:func:`pin_code_state`)
_pinned: dict[tuple[str, tuple[str, ...]], tuple[str | None, bool | None]] = {}


def _pin_key(root: Path | None, exclude: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    return str(source_checkout() if root is None else root), tuple(exclude)


def pin_code_state(root: Path | None = None, exclude: Sequence[str] = RESULTS_PATHS) -> tuple[str | None, bool | None]:
    """Record the checkout's commit and dirty state now, as the code this process runs (the CLI and the benchmark
    scripts call it at start): a run's manifest names the commit it started from, not a commit made while it
    ran (it adds ``git_commit_at_write`` where the two differ)."""
    key = _pin_key(root, exclude)
    if key not in _pinned:
        _pinned[key] = git_state(root, exclude)
    return _pinned[key]


def current_command() -> str:
    """The command recorded by :func:`set_command`, else this process's own command line (the Python API)."""
    if _command is not None:
        return _command
    return shlex.join([Path(sys.executable).name, *map(str, sys.argv)])


#: manifest.json files this process wrote, by path: later writes of the same run update their record
_this_run: dict[Path, dict[str, Any]] = {}


def write_manifest(files: Sequence[str | Path], command: str | None = None, *, machine_name: str | None = None,
                   root: Path | None = None, exclude: Sequence[str] = RESULTS_PATHS) -> dict[str, Any]:
    """Record how ``files`` (a result, all in one folder) were made in ``manifest.json`` beside them.

    ``command``: the command line (default :func:`current_command`); ``machine_name``: the machine in words
    (default :func:`machine`); ``root`` / ``exclude``: the checkout whose commit is recorded and the paths its
    dirty check leaves out (default: recfuse's own checkout, :data:`RESULTS_PATHS`). Returns the manifest.
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise ValueError("a manifest describes at least one file")
    folder = paths[0].parent
    if any(p.parent != folder for p in paths):
        raise ValueError(f"a manifest describes files of one folder, got {', '.join(map(str, paths))}")
    target = (folder / "manifest.json").absolute()
    command = current_command() if command is None else command
    record = _this_run.get(target)
    if record is None or record["command"] != command:
        now = git_state(root, exclude)
        commit, dirty = _pinned.get(_pin_key(root, exclude), now)
        record = {"command": command, "git_commit": commit, "git_dirty": dirty,
                  **({"git_commit_at_write": now[0]} if now[0] != commit else {}),
                  "machine": machine() if machine_name is None else machine_name, "cpu": cpu(), "gpus": gpus(),
                  "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": []}
        earlier: list[dict[str, Any]] = []
        if target.is_file():
            try:
                old = json.loads(target.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = None
            if isinstance(old, dict):
                before = old.get("earlier", [])
                earlier = [{k: v for k, v in old.items() if k != "earlier"},
                           *(before if isinstance(before, list) else [])]
        if earlier:
            record["earlier"] = earlier
        _this_run[target] = record
    record["files"] = sorted({*record["files"], *(p.name for p in paths)})
    write_text(target, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return record


def recorded_files(folder: Path) -> set[str]:
    """The names of the files ``folder``'s manifest.json says how they were made (its latest record and the
    earlier ones); empty where there is none or it cannot be read."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(manifest, dict):
        return set()
    earlier = manifest.get("earlier")
    records = [manifest, *(earlier if isinstance(earlier, list) else [])]
    return {name for r in records if isinstance(r, dict) and isinstance(r.get("files"), list)
            for name in r["files"] if isinstance(name, str)}


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Modification time (ns) and size of each file directly in ``folder`` (empty when there is no folder)."""
    if not folder.is_dir():
        return {}
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir() if p.is_file()}


def files_written_since(folder: Path, before: dict[str, tuple[int, int]]) -> list[Path]:
    """The files directly in ``folder`` that are new or changed since ``before`` (:func:`folder_state`), the
    manifest and hidden files aside: what a run that started then wrote there."""
    now = folder_state(folder)
    return sorted(folder / name for name, state in now.items()
                  if before.get(name) != state and not name.startswith(".") and name != "manifest.json")
