"""Content-addressed, atomic stage outputs: a rerun (or a run after a crash) redoes nothing already done.

    out = stage_dir("backbone", {"model": "lightgcn", "data": fp, "seed": 0}, build)

``build(tmp)`` writes into a fresh temporary folder; only when it returns is the folder renamed to
``<cache>/stages/<name>/<key hash>/`` (with ``key.json`` beside the outputs). A folder that exists is
complete by construction.

The cache verifies itself: a stage records the size and SHA-256 of every file it wrote (``checksums.json``),
and a stage is reused only when its ``key.json`` is the key its folder is named after and every recorded
file is there with its recorded checksum. A stage that fails (a truncated or replaced file, broken JSON, a
missing ``key.json``) is recomputed with a warning that says why, never used and never a lasting traceback.
A stage written before checksums were recorded is checked as far as its files allow (JSON parses, ``.npz``
and other zip files pass their CRC check) and then has its checksums recorded. ``recfuse cache verify`` checks
the whole cache, ``recfuse cache clean`` removes what fails (:func:`scan_stages`, :func:`clean_stages`).

Costs survive reuse: a stage records the seconds its build took (``cost.json``; work its build reused from
the caches counted at its own recorded cost, so a stage finished after an interruption records the whole),
and :func:`stage_cost`
measures a block of work with every reused stage (and every cached LLM answer, see
:mod:`recfuse.llm.cache`) counted at what it cost when it was computed, so a resumed run reports the
same cost table as an uninterrupted one. Reused work without a recorded cost is counted as unknown.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from recfuse.errors import CacheError
from recfuse.io import (CANNOT_WRITE, atomic_dir, atomic_path, cache_dir, file_sha256, fingerprint, orphaned_temporaries,
                        to_json)

log = logging.getLogger(__name__)


def stage_root() -> Path:
    return cache_dir() / "stages"


@dataclass
class StageCost:
    """Seconds of a block of work, reused work counted at its recorded cost (see :func:`stage_cost`)."""

    wall: float = 0.0  # measured around the block
    reused: float = 0.0  # recorded compute seconds of the reused stages and cached answers inside it
    unknown_stages: int = 0  # reused stages without a recorded cost (written before costs were recorded)
    unknown_answers: int = 0  # cached LLM answers without a recorded cost

    @property
    def seconds(self) -> float:
        return self.wall + self.reused

    @property
    def complete(self) -> bool:
        return not (self.unknown_stages or self.unknown_answers)


_active: list[StageCost] = []


@contextmanager
def stage_cost() -> Iterator[StageCost]:
    """Measure a block: wall seconds plus the recorded cost of whatever it reused from the caches."""
    cost = StageCost()
    _active.append(cost)
    start = time.perf_counter()
    try:
        yield cost
    finally:
        cost.wall = time.perf_counter() - start
        _active.remove(cost)


def add_reused_cost(seconds: float | None, *, answers: int = 0) -> None:
    """Tell the open :func:`stage_cost` blocks that reused work cost ``seconds`` when it was computed
    (``None``: not recorded). ``answers``: how many cached LLM answers that was (0: one stage)."""
    for cost in _active:
        if seconds is not None:
            cost.reused += seconds
        elif answers:
            cost.unknown_answers += answers
        else:
            cost.unknown_stages += 1


KEY_FILE = "key.json"
COST_FILE = "cost.json"
CHECKSUMS_FILE = "checksums.json"
#: files a stage writes about itself that its checksums leave out (cost.json is optional: unreadable, the
#: reused cost is counted as unknown)
META_FILES = (COST_FILE, CHECKSUMS_FILE)


def _stage_files(folder: Path) -> list[Path]:
    """Every file of a stage folder (recursively, key.json included) but its cost and checksums, in order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in META_FILES)


def record_checksums(folder: Path) -> dict[str, dict[str, Any]]:
    """Write ``checksums.json``: the size and SHA-256 of every file of the stage folder."""
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
             for p in _stage_files(folder)}
    (folder / CHECKSUMS_FILE).write_text(to_json({"files": files}))
    return files


def _readable_as_its_kind(path: Path) -> str | None:
    """Why a file of a stage written before checksums is damaged, as far as its kind tells (JSON that does
    not parse, a zip / ``.npz`` that fails its CRC check); None when nothing shows."""
    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            if bad is not None:
                return f"{path.name}: member {bad} fails its CRC check"
        elif path.suffix in (".npz", ".zip"):
            return f"{path.name} is not a complete zip file (truncated?)"
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        return f"{path.name} cannot be read: {e}"
    return None


@dataclass
class StageCheck:
    """A stage folder's state: ``ok``, ``unrecorded`` (written before checksums; nothing wrong found) or
    ``damaged`` (``reason`` says why)."""

    path: Path
    status: str
    reason: str = ""

    @property
    def name(self) -> str:
        return self.path.parent.name

    @property
    def usable(self) -> bool:
        return self.status != "damaged"


#: stage folders this process verified -> the (path, mtime, size) of each file then: a folder whose files were
#: not touched since is not hashed again
_verified: dict[Path, tuple[tuple[str, int, int], ...]] = {}


def _stat_stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple((p.relative_to(folder).as_posix(), p.stat().st_mtime_ns, p.stat().st_size)
                 for p in sorted(folder.rglob("*")) if p.is_file())


def check_stage(folder: Path, key: dict[str, Any] | None = None) -> StageCheck:
    """Verify a stage folder: its ``key.json`` reads (and is ``key``, when given), and every file
    ``checksums.json`` records (key.json among them) is there with its size and SHA-256."""
    def damaged(reason: str) -> StageCheck:
        return StageCheck(folder, "damaged", reason)

    key_file = folder / KEY_FILE
    if not key_file.is_file():
        return damaged("no key.json")
    try:
        stored = json.loads(key_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return damaged(f"key.json cannot be read ({e})")
    if key is not None and json.dumps(stored, sort_keys=True) != json.dumps(json.loads(to_json(key)), sort_keys=True):
        return damaged("key.json differs from the key asked for")
    record = folder / CHECKSUMS_FILE
    if not record.is_file():
        for path in _stage_files(folder):
            reason = _readable_as_its_kind(path)
            if reason:
                return damaged(reason)
        return StageCheck(folder, "unrecorded")
    stamp = _stat_stamp(folder)
    if _verified.get(folder) == stamp:
        return StageCheck(folder, "ok")
    try:
        files = json.loads(record.read_text(encoding="utf-8"))["files"]
        files = {str(k): (int(v["size"]), str(v["sha256"])) for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return damaged(f"checksums.json cannot be read ({type(e).__name__}: {e})")
    for rel, (size, digest) in files.items():
        path = folder / rel
        if not path.is_file():
            return damaged(f"{rel} is missing")
        actual = path.stat().st_size
        if actual != size:
            return damaged(f"{rel} has {actual} bytes, {size} were written" + (" (truncated)" if actual < size else ""))
        if file_sha256(path) != digest:
            return damaged(f"{rel} differs from what was written (SHA-256)")
    _verified[folder] = stamp
    return StageCheck(folder, "ok")


def _recorded_cost(folder: Path) -> float | None:
    try:
        return float(json.loads((folder / COST_FILE).read_text(encoding="utf-8"))["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _discard(folder: Path) -> None:
    """Remove a damaged stage folder (a CacheError naming it when that is not possible)."""
    _verified.pop(folder, None)
    try:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
        elif folder.exists() or folder.is_symlink():
            folder.unlink()
    except OSError as e:
        raise CacheError(f"cannot remove the damaged stage {folder}: {e.strerror or e} (remove it, or run "
                         "`recfuse cache clean`)") from None


def stage_scratch(name: str, key: dict[str, Any], root: Path | None = None) -> Path:
    """A folder of stage ``name`` for ``key`` that outlives a failed or killed build (its checkpoints, to
    resume from), removed once the stage is built: ``<root>/<name>/.resume-<fingerprint>`` (not created here)."""
    root = Path(root) if root is not None else stage_root()
    return root / name / f"{RESUME_PREFIX}{fingerprint(key)}"


RESUME_PREFIX = ".resume-"


def checkpoint_folders(kind: Path, which: Literal["spent", "resumable", "all"] = "spent") -> list[Path]:
    """The :func:`stage_scratch` folders of one stage kind: the spent ones (their stage is built since, so nothing
    will resume from them), the resumable ones (a rerun of a killed build resumes there), or all."""
    folders = [p for p in sorted(kind.glob(f"{RESUME_PREFIX}*")) if p.is_dir()]
    if which == "all":
        return folders
    return [p for p in folders if (kind / p.name[len(RESUME_PREFIX):]).is_dir() == (which == "spent")]


def stage_kinds(root: Path, name: str | None = None) -> list[Path]:
    """The folders of the stage kinds under ``root`` (only ``name``'s, when given) that exist."""
    if not root.is_dir():
        return []
    kinds = [root / name] if name is not None else sorted(p for p in root.iterdir() if not p.name.startswith("."))
    return [k for k in kinds if k.is_dir()]


def stage_dir(name: str, key: dict[str, Any], build: Callable[[Path], Any], root: Path | None = None) -> Path:
    """The output folder of stage ``name`` for ``key``, built by ``build(tmp_folder)`` if missing or if it
    fails verification (:func:`check_stage`; recomputed with a warning naming why)."""
    root = Path(root) if root is not None else stage_root()
    target = root / name / fingerprint(key)
    if target.exists() or target.is_symlink():
        check = check_stage(target, key)
        if check.usable:
            log.debug("stage %s: reusing %s", name, target)
            if check.status == "unrecorded":  # written before checksums: record them now
                try:
                    record_checksums(target)
                except OSError as e:
                    log.debug("stage %s: checksums not recorded (%s)", name, e)
            add_reused_cost(_recorded_cost(target))
            return target
        log.warning("stage %s in %s failed verification (%s): computing it again", name, target, check.reason)
        _discard(target)
    try:
        with atomic_dir(target, keep_existing=True) as tmp:  # a concurrent run that finished first wins
            with stage_cost() as cost:  # what reused work inside the build cost (cached answers, stages) counts too
                build(tmp)
            (tmp / COST_FILE).write_text(to_json({"seconds": cost.seconds}))
            (tmp / KEY_FILE).write_text(to_json(key))
            record_checksums(tmp)
        shutil.rmtree(stage_scratch(name, key, root), ignore_errors=True)  # built: its checkpoints are spent
    except OSError as e:
        if e.errno in CANNOT_WRITE and not isinstance(e, CacheError):
            where = f" ({e.filename})" if e.filename else ""
            raise CacheError(f"cannot write stage {name} to the cache at {root}{where}: {e.strerror or e} (free "
                             "space, or set RECFUSE_CACHE to a writable folder)", e.errno, e.filename) from None
        raise
    return target


def scan_stages(root: Path | None = None, name: str | None = None) -> list[StageCheck]:
    """Every stage folder under ``root`` (of stage ``name`` only, when given), verified."""
    root = Path(root) if root is not None else stage_root()
    return [check_stage(folder) for kind in stage_kinds(root, name)
            for folder in sorted(kind.iterdir()) if not folder.name.startswith(".")]


def clean_stages(root: Path | None = None, name: str | None = None, everything: bool = False,
                 dry_run: bool = False, checkpoints: bool = False) -> list[Path]:
    """Remove damaged stages, the temporary folders of builds and imports whose process died, and spent
    checkpoint folders (``checkpoints``: also those a killed build would resume from; ``everything``: every stage
    and checkpoint); returns what was (``dry_run``: would be) removed."""
    root = Path(root) if root is not None else stage_root()
    doomed: list[Path] = orphaned_temporaries(root, IMPORT_SCRATCH) if root.is_dir() else []
    for kind in stage_kinds(root, name):
        doomed += orphaned_temporaries(kind)
        doomed += checkpoint_folders(kind, "all" if checkpoints or everything else "spent")
        doomed += [c.path for c in scan_stages(root, kind.name) if everything or not c.usable]
    if not dry_run:
        for path in doomed:
            _discard(path)
    return doomed


def export_stages(path: str | Path, root: Path | None = None, name: str | None = None) -> list[StageCheck]:
    """Every verified stage under ``root`` (of stage ``name`` only, when given) into one tar file (gzip when
    ``path`` ends in ``.gz``), written atomically: carry a run's work to another machine (tune on a GPU, evaluate
    on a laptop) with :func:`import_stages` there. Damaged stages are left out; stages written before checksums
    are recorded first. Returns the stages exported."""
    root = Path(root) if root is not None else stage_root()
    exported = []
    with atomic_path(path) as tmp, tarfile.open(tmp, "w:gz" if str(path).endswith(".gz") else "w") as tar:
        for check in scan_stages(root, name):
            if not check.usable:
                log.warning("stage %s/%s not exported: %s", check.name, check.path.name, check.reason)
                continue
            if check.status == "unrecorded":
                record_checksums(check.path)
            tar.add(check.path, arcname=f"{check.name}/{check.path.name}")
            exported.append(check)
    return exported


@dataclass
class ImportResult:
    """What :func:`import_stages` did with each stage of the file."""

    added: list[str]  # "<stage>/<folder>"
    kept: list[str]  # already in the cache (intact): left as they were
    refused: list[tuple[str, str]]  # (stage, why): failed verification, nothing written


IMPORT_SCRATCH = "import"


def _import_refusal(folder: Path) -> str:
    """Why an unpacked stage folder may not enter the cache ("" when it may): it fails its checksums, has none,
    or is filed under a name that is not its key's fingerprint (a run would never find it)."""
    links = [p for p in folder.rglob("*") if p.is_symlink()]
    if links:  # a stage is plain files; a link would point at something the checksums do not cover
        return f"holds a link ({links[0].relative_to(folder)})"
    check = check_stage(folder)
    if not check.usable:
        return check.reason
    if check.status != "ok":
        return "no checksums.json: cannot be verified"
    if fingerprint(json.loads((folder / KEY_FILE).read_text(encoding="utf-8"))) != folder.name:
        return "its folder name is not its key's fingerprint"
    return ""


def import_stages(path: str | Path, root: Path | None = None) -> ImportResult:
    """The stages of an :func:`export_stages` file into the cache under ``root``. Each is unpacked beside the
    cache (nothing outside it: absolute paths, ``..`` and links are refused), verified against the checksums it
    was exported with and its folder name against its key, and only then moved into place; a stage the cache
    holds intact already is kept. A file that is not a stage export is a :class:`CacheError` naming it."""
    root = Path(root) if root is not None else stage_root()
    root.mkdir(parents=True, exist_ok=True)
    result = ImportResult([], [], [])
    # named as atomic_dir names its temporaries, so `recfuse cache clean` removes one a killed import left
    with tempfile.TemporaryDirectory(prefix=f".{IMPORT_SCRATCH}.{os.getpid()}.", dir=root) as unpacked:
        try:
            with tarfile.open(path) as tar:
                tar.extractall(unpacked, filter="data")
        except (OSError, tarfile.TarError) as e:
            raise CacheError(f"{path}: not a stage export recfuse can read ({e})") from None
        folders = [f for kind in sorted(Path(unpacked).iterdir()) if kind.is_dir()
                   for f in sorted(kind.iterdir()) if f.is_dir()]
        if not folders:
            raise CacheError(f"{path}: holds no stage folder (<stage>/<key hash>/, as `recfuse cache export` "
                             "writes)")
        for folder in folders:
            label = f"{folder.parent.name}/{folder.name}"
            why = _import_refusal(folder)
            if why:
                result.refused.append((label, why))
                continue
            target = root / folder.parent.name / folder.name
            if target.exists() and check_stage(target).usable:
                result.kept.append(label)
                continue
            if target.exists():
                _discard(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder, target)
            result.added.append(label)
    return result


def stage_json(name: str, key: dict[str, Any], compute: Callable[[], Any], root: Path | None = None) -> Any:
    """A JSON-serialisable stage result, computed once per key."""
    def build(tmp: Path) -> None:
        (tmp / "result.json").write_text(to_json(compute()))
    return json.loads((stage_dir(name, key, build, root) / "result.json").read_text())


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux ``/proc/self/statm``; None where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def memory_peak(interval: float = 0.05) -> Iterator[list[int]]:
    """Sample this process's resident memory while the block runs; yields a one-element list that holds the
    peak in bytes (0 where it cannot be read)."""
    peak = [resident_bytes() or 0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            peak[0] = max(peak[0], resident_bytes() or 0)

    thread = threading.Thread(target=sample, daemon=True, name="recfuse-memory")
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
        peak[0] = max(peak[0], resident_bytes() or 0)


class TimedStages:
    """Mixin: ``self._timed(name, fn, *args)`` runs ``fn`` and adds its cost (:func:`stage_cost`) to
    ``self.timings[name]``; ``with self._timing(name):`` does the same for a block. Reused work without a
    recorded cost is counted in ``self.unknown_costs[name]``; the process's peak resident memory during the
    stage's blocks in this run (GiB) in ``self.peak_memory[name]``. ``_reset_timings()`` starts them afresh."""

    timings: dict[str, float]
    unknown_costs: dict[str, int]
    peak_memory: dict[str, float]

    def _reset_timings(self) -> None:
        self.timings, self.unknown_costs, self.peak_memory = {}, {}, {}

    @contextmanager
    def _timing(self, name: str) -> Iterator[StageCost]:
        with stage_cost() as cost, memory_peak() as peak:
            yield cost
        self.timings[name] = self.timings.get(name, 0.0) + cost.seconds
        if peak[0]:
            self.peak_memory[name] = max(self.peak_memory.get(name, 0.0), peak[0] / 2 ** 30)
        if not cost.complete:
            self.unknown_costs[name] = self.unknown_costs.get(name, 0) + cost.unknown_stages + cost.unknown_answers

    def _timed(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._timing(name):
            return fn(*args, **kwargs)
