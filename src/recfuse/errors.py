"""The exceptions recfuse raises on bad input: each names the file, line or field at fault."""

from __future__ import annotations

from pathlib import Path


class RecfuseError(Exception):
    """Base class of every error recfuse raises on purpose."""


class DataError(RecfuseError, ValueError):
    """Malformed, truncated or inconsistent input data.

    The message always starts with the location: ``file:line`` or ``file`` and, where known,
    the field (column) at fault.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = []
        if self.path is not None:
            where.append(self.path if line is None else f"{self.path}:{line}")
        elif line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class UnknownIdError(RecfuseError, KeyError):
    """An external user or item id that the dataset's vocabulary does not hold."""

    def __init__(self, kind: str, ids: list):
        self.kind = kind
        self.ids = ids
        shown = ", ".join(repr(i) for i in ids[:5]) + (" ..." if len(ids) > 5 else "")
        super().__init__(f"unknown {kind} id(s): {shown} ({len(ids)} in all)")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ConfigError(RecfuseError, ValueError):
    """A configuration value or command-line option that cannot be used."""


class EvaluationError(RecfuseError, ValueError):
    """An evaluation that gives no number worth reporting: no user to evaluate, or a model whose predictions
    are not finite (a NaN metric is never reported as a result)."""


class OutputError(RecfuseError, OSError):
    """A file that cannot be written (a read-only folder, a full disk, a file where a folder should be); the
    message names the path. ``errno`` and ``filename`` are those of the underlying OS error."""

    def __init__(self, message: str, errno: int | None = None, filename: str | None = None):
        super().__init__(message)
        self.errno = errno
        self.filename = filename

    def __str__(self) -> str:  # OSError would print "[Errno ...]" first
        return str(self.args[0])


class CacheError(OutputError):
    """The on-disk cache cannot be written or read (a read-only folder, a full disk); names the path."""
