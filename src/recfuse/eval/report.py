"""Results on disk: JSON (everything), Markdown and CSV tables, the resolved config beside them."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from recfuse.io import load_npz, make_dir, read_json, write_json, write_text
from recfuse.provenance import write_manifest

log = logging.getLogger(__name__)


def format_value(v: Any, digits: int = 4) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.3g}"
    return "" if v is None else str(v)


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 4) -> str:
    """A GitHub Markdown table of ``rows`` (dicts); columns default to the union of keys in order."""
    if not rows:
        return "(no rows)\n"
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(format_value(r.get(c), digits) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


#: present in a results folder while :func:`write_report` writes it
WRITING = ".report-incomplete"


def finished_run(out_dir: str | Path, config: dict, ignore: Sequence[str] = ("progress",),
                 read_stored: Callable[[dict], dict | None] | None = None,
                 data_fingerprint: str | None = None) -> dict | None:
    """The ``results.json`` of a run already written in ``out_dir`` with the same ``config`` (and, where both
    name one, the same ``data_fingerprint``: the data's content, so an edited data file is run again), else None.

    Configs are compared as :func:`write_report` stores them (``config.yaml``), keys in ``ignore`` aside
    (settings that do not change results). ``read_stored`` turns the stored config into the comparable one
    first (e.g. read back through its config type, so options added since with defaults keep it equal; None
    from it: not comparable). Suites use it to skip finished runs even when the stage cache that produced them
    is gone (another machine, a cleared cache).
    """
    out = Path(out_dir)
    if not (out / "results.json").is_file() or not (out / "config.yaml").is_file():
        return None
    if (out / WRITING).exists():  # a report cut short: its results.json and config.yaml may be of two runs
        return None
    with open(out / "config.yaml", encoding="utf-8") as fh:
        old = yaml.safe_load(fh) or {}
    if read_stored is not None:
        stored = read_stored(old)
        if stored is None:
            return None
        old = yaml.safe_load(yaml.safe_dump(stored, sort_keys=False)) or {}
    # through YAML, as write_report stores it: tuples become lists, and so on
    new = yaml.safe_load(yaml.safe_dump(config, sort_keys=False)) or {}
    if {k: v for k, v in old.items() if k not in ignore} != {k: v for k, v in new.items() if k not in ignore}:
        return None
    results = read_json(out / "results.json")
    if not isinstance(results, dict):  # not a report of recfuse's
        return None
    if data_fingerprint and results.get("data_fingerprint") not in (None, data_fingerprint):
        log.info("%s: written on other data (the data's content changed since): run again", out)
        return None
    return results


def write_report(out_dir: str | Path, rows: Sequence[dict], *, config: dict | None = None,
                 title: str = "results", extra: dict | None = None, columns: Sequence[str] | None = None,
                 data_fingerprint: str | None = None) -> Path:
    """Write ``results.json`` (rows + extra, and the fingerprint of the data the run read, which
    :func:`finished_run` compares), ``results.md``, ``results.csv`` and ``config.yaml``. Until all are
    written a marker says so (:data:`WRITING`): a report killed half-way is never taken as a finished run by
    :func:`finished_run` (its results.json and config.yaml could be of two different runs)."""
    out = make_dir(out_dir)
    write_text(out / WRITING, "a report is being written here; a run killed while writing it leaves this file\n")
    write_json(out / "results.json", {"title": title, "rows": list(rows), **(extra or {}),
                                      **({"data_fingerprint": data_fingerprint} if data_fingerprint else {})})
    write_text(out / "results.md", f"# {title}\n\n" + markdown_table(rows, columns))
    write_text(out / "results.csv", csv_text(rows, columns))
    if config is not None:
        write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    (out / WRITING).unlink()
    return out


def per_user_path(out: Path, seed: int) -> Path:
    """Where a run keeps one seed's per-user values (``<entry>__<value>`` arrays), for tests over users later."""
    return out / f"per_user_seed{seed}.npz"


def flat_per_user(per_user: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A seed's per-user values (entry -> value -> array) as the flat ``<entry>__<value>`` arrays of its npz."""
    return {f"{entry}__{value}": array for entry, values in per_user.items() for value, array in values.items()}


def nested_per_user(flat: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of :func:`flat_per_user`."""
    nested: dict[str, dict[str, np.ndarray]] = {}
    for key, array in flat.items():
        entry, _, value = key.rpartition("__")
        nested.setdefault(entry, {})[value] = array
    return nested


def read_per_user(out: Path, seeds: Sequence[int]) -> list[dict[str, np.ndarray]] | None:
    """Each seed's :func:`per_user_path` file as a dict, in ``seeds``' order; None where any is missing."""
    paths = [per_user_path(out, s) for s in seeds]
    if not paths or not all(p.is_file() for p in paths):
        return None
    return [load_npz(p) for p in paths]


def rewrite_results(out: Path, results: dict, again: dict) -> list[Path]:
    """A re-analysis of results already computed: where ``again`` differs from ``results`` once written as JSON
    (so NaN equals NaN), results.json and results.csv (of ``again["rows"]``) are rewritten and manifest.json
    records it. Returns the files rewritten (none where nothing changed)."""
    def written(value: dict) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    if written(again) == written(results):
        return []
    write_json(out / "results.json", again)
    write_text(out / "results.csv", csv_text(again["rows"]))
    files = [out / "results.json", out / "results.csv"]
    write_manifest(files)
    return files
