"""Small pieces the benchmark scripts share (benchmarks/ is not a package: a script puts its folder on sys.path)."""

from __future__ import annotations

import json
import os
import platform
from typing import Any


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
