"""Small pieces the benchmark scripts share (benchmarks/ is not a package: a script puts its folder on sys.path)."""

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
    """The machine, as the reports name it."""
    return f"{platform.machine()}, {os.cpu_count()} CPUs (shared)"


def report_files(out: str | Path) -> list[Path]:
    """The files a result written as ``out`` consists of: ``out``.json and ``out``.md (a dot in the name stays)."""
    out = Path(out)
    return [out.parent / f"{out.name}.json", out.parent / f"{out.name}.md"]


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state() -> tuple[str | None, bool | None]:
    """``git rev-parse HEAD`` of this repository and whether tracked files outside benchmarks/results differ
    from it (the code that ran is then not exactly that commit); ``(None, None)`` outside a git checkout."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    return commit, None if status is None else bool(status)


def cpu() -> dict[str, Any]:
    """The CPU's model name and the instruction sets that change LLM and training speed here (bf16 units)."""
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


def gpus() -> list[str]:
    """Names of the visible CUDA GPUs (through torch when the script imported it, else nvidia-smi); [] for none."""
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


def _shown(path: str | Path) -> str:
    path = Path(path).absolute()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


#: manifest.json files this process wrote, by path: later writes of the same run update their record
_this_run: dict[Path, dict[str, Any]] = {}


def write_manifest(files: Sequence[str | Path], argv: Sequence[str] | None = None,
                   script: str | Path | None = None) -> dict[str, Any]:
    """Record how ``files`` (a result, all in one folder) were made in ``manifest.json`` beside them.

    The record: the command line (``script`` with ``argv``, default ``sys.argv``), ``git rev-parse HEAD`` and a
    dirty flag, the machine (:func:`machine`, the CPU, the GPUs), the UTC date, and the files. A script that
    saves after every step calls this each time: within one process the record is updated, not repeated. A
    manifest already there from an earlier run (a resumed or updated result, or another result in the folder)
    moves into ``earlier``, newest first. Returns the manifest.
    """
    paths = [Path(f) for f in files]
    folder = paths[0].parent
    if any(p.parent != folder for p in paths):
        raise ValueError(f"a manifest describes files of one folder, got {', '.join(map(str, paths))}")
    target = (folder / "manifest.json").absolute()
    script = sys.argv[0] if script is None else script
    argv = sys.argv[1:] if argv is None else argv
    command = shlex.join([_shown(sys.executable), _shown(script), *map(str, argv)])
    record = _this_run.get(target)
    if record is None or record["command"] != command:
        commit, dirty = git_state()
        record = {"command": command,
                  "git_commit": commit, "git_dirty": dirty, "machine": machine(), "cpu": cpu(), "gpus": gpus(),
                  "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": []}
        earlier: list[dict] = []
        if target.is_file():
            try:
                old = json.loads(target.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                old = None
            if isinstance(old, dict):
                earlier = [{k: v for k, v in old.items() if k != "earlier"}, *old.get("earlier", [])]
        if earlier:
            record["earlier"] = earlier
        _this_run[target] = record
    record["files"] = sorted({*record["files"], *(p.name for p in paths)})
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".manifest.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return record
