"""Plain CSV (or TSV) files with a column mapping, given as options or as ``dataset.yaml`` in the folder.

Example ``dataset.yaml``::

    interactions: ratings.csv          # or {train: a.csv, valid: b.csv, test: c.csv}
    sep: ","
    user: userId
    item: movieId
    rating: rating                     # optional
    timestamp: timestamp               # optional: numbers (unix seconds) or dates
    timestamp_format: null             # e.g. "%Y-%m-%d"
    items:                             # optional side file
      file: movies.csv
      id: movieId
      text: [title]                    # text features
      categorical: [studio]
      multi: {genres: "|"}             # multi-valued, with their separator
      numeric: [year]
    users: {file: users.csv, id: userId, categorical: [gender], numeric: [age]}
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from recfuse.data.dataset import FeatureKind
from recfuse.data.loaders.base import DatasetFormat
from recfuse.data.readers import (LINE, SideTable, read_delimited, read_text, require_columns, to_ids, to_numbers,
                                  to_ratings, to_timestamps)
from recfuse.errors import ConfigError, DataError

SPEC_FILE = "dataset.yaml"


@dataclass
class SideSpec:
    file: str
    id: str
    text: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    multi: dict[str, str] = field(default_factory=dict)


@dataclass
class CsvSpec:
    """Which columns hold what. ``interactions`` is one file or a mapping train/valid/test -> file."""

    interactions: str | dict[str, str]
    user: str = "user"
    item: str = "item"
    rating: str | None = None
    timestamp: str | None = None
    timestamp_format: str | None = None
    sep: str = ","
    encoding: str = "utf-8"
    items: SideSpec | None = None
    users: SideSpec | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> CsvSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        if "interactions" not in data:
            raise ConfigError(f"{source}: missing key 'interactions'")
        data = dict(data)
        for key in ("items", "users"):
            if data.get(key) is not None:
                try:
                    data[key] = SideSpec(**data[key])
                except TypeError as e:
                    raise ConfigError(f"{source}: '{key}': {e}") from None
        return cls(**data)


class CsvFormat(DatasetFormat):
    name = "csv"
    description = "CSV/TSV files with a column mapping (dataset.yaml or options)"

    def __init__(self, spec: CsvSpec | None = None):
        self.spec = spec

    def detect(self, directory: Path) -> bool:
        return (directory / SPEC_FILE).is_file()

    def _spec(self, directory: Path) -> CsvSpec:
        if self.spec is None:
            path = directory / SPEC_FILE
            if not path.is_file():
                raise DataError(f"no {SPEC_FILE} describing the columns (or pass a CsvSpec)", path=directory)
            try:
                data = yaml.safe_load(read_text(path)) or {}
            except yaml.YAMLError as e:
                raise DataError(f"not valid YAML: {e}", path=path) from None
            if not isinstance(data, dict):
                raise DataError("expected a mapping of keys (interactions, user, item, ...) to values", path=path)
            self.spec = CsvSpec.from_dict(data, str(path))
        return self.spec

    def interaction_files(self, directory: Path) -> dict[str, Path]:
        spec = self._spec(directory)
        if isinstance(spec.interactions, dict):
            return {k: directory / v for k, v in spec.interactions.items()}
        return {"all": directory / spec.interactions}

    def read_interactions(self, path: Path, **options) -> pd.DataFrame:
        spec = self._spec(path.parent)
        df = read_delimited(path, sep=spec.sep, header=True, encoding=spec.encoding)
        cols = [c for c in (spec.user, spec.item, spec.rating, spec.timestamp) if c]
        require_columns(df, cols, path)
        out = pd.DataFrame({"user": to_ids(df, spec.user, path), "item": to_ids(df, spec.item, path), LINE: df[LINE]})
        if spec.rating:
            out["rating"] = to_ratings(df, spec.rating, path)
        if spec.timestamp:
            out["timestamp"] = to_timestamps(df, spec.timestamp, path, spec.timestamp_format)
        return out

    def _side(self, directory: Path, side: SideSpec | None) -> SideTable | None:
        if side is None:
            return None
        path = directory / side.file
        spec = self._spec(directory)
        df = read_delimited(path, sep=spec.sep, header=True, encoding=spec.encoding)
        kinds: dict[str, FeatureKind] = {}
        for kind, names in (("text", side.text), ("categorical", side.categorical), ("numeric", side.numeric),
                            ("multi", list(side.multi))):
            for n in names:
                kinds[n] = kind  # type: ignore[assignment]
        require_columns(df, [side.id, *kinds], path)
        for n in side.numeric:
            to_numbers(df, n, path, required=False)
        frame = df[[*kinds, LINE]].assign(id=df[side.id])
        return SideTable(frame, kinds, str(path), dict(side.multi))

    def read_side(self, directory: Path, **options):
        spec = self._spec(directory)
        return self._side(directory, spec.users), self._side(directory, spec.items)
