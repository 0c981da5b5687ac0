"""Content-addressed, atomic stage outputs: a rerun (or a run after a crash) redoes nothing already done.

    out = stage_dir("backbone", {"model": "lightgcn", "data": fp, "seed": 0}, build)

``build(tmp)`` writes into a fresh temporary folder; only when it returns is the folder renamed to
``<cache>/stages/<name>/<key hash>/`` (with ``key.json`` beside the outputs). A folder that exists is
complete by construction, so it is reused as it is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recfuse.io import atomic_dir, cache_dir, fingerprint, to_json

log = logging.getLogger(__name__)


def stage_root() -> Path:
    return cache_dir() / "stages"


def stage_dir(name: str, key: dict[str, Any], build: Callable[[Path], Any], root: Path | None = None) -> Path:
    """The output folder of stage ``name`` for ``key``, built by ``build(tmp_folder)`` if missing."""
    root = Path(root) if root is not None else stage_root()
    target = root / name / fingerprint(key)
    if (target / "key.json").is_file():
        log.debug("stage %s: reusing %s", name, target)
        return target
    with atomic_dir(target, keep_existing=True) as tmp:  # a concurrent run that finished first wins
        build(tmp)
        (tmp / "key.json").write_text(to_json(key))
    return target


def stage_json(name: str, key: dict[str, Any], compute: Callable[[], Any], root: Path | None = None) -> Any:
    """A JSON-serialisable stage result, computed once per key."""
    def build(tmp: Path) -> None:
        (tmp / "result.json").write_text(to_json(compute()))
    return json.loads((stage_dir(name, key, build, root) / "result.json").read_text())


class TimedStages:
    """Mixin: ``self._timed(name, fn, *args)`` runs ``fn`` and adds its seconds to ``self.timings[name]``."""

    timings: dict[str, float]

    def _timed(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import time

        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
