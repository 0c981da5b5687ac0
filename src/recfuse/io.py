"""Atomic writes, JSON helpers and the cache directory."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.errors import CacheError, DataError, OutputError


def cache_dir() -> Path:
    """Root of recfuse's on-disk cache: ``$RECFUSE_CACHE`` or ``~/.cache/recfuse``."""
    root = os.environ.get("RECFUSE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "recfuse")
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheError(f"cannot create the cache folder {path}: {e.strerror or e} (set RECFUSE_CACHE to a "
                         "writable folder)") from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    An OS error that means the file cannot be written (no space, read-only, no permission, a file where a
    folder should be) becomes an :class:`~recfuse.errors.OutputError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _cannot_write(path, e) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as e:
        if isinstance(e, OutputError) or e.errno not in CANNOT_WRITE:
            raise
        raise _cannot_write(path, e) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


#: OS errors that mean a file cannot be written there (rather than a bug)
CANNOT_WRITE = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.ENOTDIR, errno.EEXIST,
                errno.EISDIR}


def make_dir(path: str | Path) -> Path:
    """``path`` as a folder, made with its parents where missing; an :class:`~recfuse.errors.OutputError`
    naming it when it cannot be (a file in the way, no permission, no space)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cannot_write(path, e) from None
    return path


def _cannot_write(path: Path, e: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {e.strerror or e}", e.errno, str(path))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def orphaned_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Temporary folders in ``folder`` (of target ``name``, or of any) left by processes that died mid-build
    (killed, out of memory): :func:`atomic_dir`'s ``.<name>.<pid>.<random>`` whose pid is no longer alive.
    Those of live processes (a concurrent build) are not listed."""
    out = []
    for path in folder.glob(f".{name}.*" if name is not None else ".*"):
        rest = path.name[len(name) + 2:] if name is not None else path.name[1:]
        parts = rest.split(".") if name is not None else rest.rsplit(".", 2)[-2:]
        pid = parts[0]
        if path.is_dir() and len(parts) == 2 and pid.isdigit() and not _pid_alive(int(pid)):
            out.append(path)
    return out


def _sweep_orphans(target: Path) -> None:
    """Remove temporary folders of ``target`` left by processes that died mid-build (killed, out of memory).

    Temporary folders carry their builder's pid (``.<name>.<pid>.<random>``); those of live processes (a
    concurrent build) are left alone.
    """
    for path in orphaned_temporaries(target.parent, target.name):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; it becomes ``target`` only if the block succeeds.

    ``keep_existing``: if ``target`` appeared meanwhile (a concurrent run finished first), keep it and
    drop ours; otherwise ours replaces it. A crash leaves no half-written ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_orphans(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            if keep_existing:
                return
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError as e:  # a concurrent run put its own in place between the check and the rename
            if not (keep_existing and e.errno in (errno.ENOTEMPTY, errno.EEXIST) and target.is_dir()):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def with_extension(path: str | Path, ext: str) -> Path:
    """``path`` with ``ext`` (".json") appended to its name: ``runs/w_0.5`` gives ``runs/w_0.5.json``, where
    ``Path.with_suffix`` would give ``runs/w_0.json`` (a dot in an output name is part of the name)."""
    path = Path(path)
    return path.parent / f"{path.name}{ext}"


def write_report(out: str | Path, report: Any, markdown: str) -> None:
    """A result as ``out``.json (the data) and ``out``.md (its readable form), each written atomically."""
    write_json(with_extension(out, ".json"), report)
    write_text(with_extension(out, ".md"), markdown)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any) -> str:
    """JSON text of ``obj``, numpy scalars and arrays included."""
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=True)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text(path, to_json(obj) + "\n")


def read_json(path: str | Path) -> Any:
    """A JSON file's content; one that is not JSON is a :class:`~recfuse.errors.DataError` naming it (a missing
    file stays an ``OSError``)."""
    with open(path, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"not valid JSON ({e})", path=path) from None


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Save arrays to an ``.npz`` file atomically (never pickled)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            # numpy's stub lets any ``**kwds`` key be ``allow_pickle`` (a bool), so no dict of arrays type-checks
            np.savez(fh, **arrays)  # type: ignore[arg-type]


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (never unpickled); a damaged one is a :class:`~recfuse.errors.DataError`
    naming it (a missing file stays an ``OSError``)."""
    if not Path(path).is_file():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise DataError(f"not a readable .npz file of arrays ({type(e).__name__}: {e})", path=path) from None


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(*parts: Any) -> str:
    """A short stable content hash of JSON-serialisable parts (used as cache keys)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            h.update(part)
        elif isinstance(part, np.ndarray) and part.dtype == object:  # its bytes are pointers: hash the values
            h.update(b"object")
            h.update(json.dumps(part.tolist(), sort_keys=True, default=_json_default).encode())
        elif isinstance(part, np.ndarray):
            h.update(str(part.dtype).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=_json_default).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]
