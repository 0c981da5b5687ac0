"""RecBole atomic files: ``NAME.inter`` / ``NAME.user`` / ``NAME.item`` with ``field:type`` headers.

A predefined split is read from ``NAME.train.inter``, ``NAME.valid.inter`` and ``NAME.test.inter``.
Field types map to features: ``token`` -> categorical, ``token_seq`` -> multi-valued (space-separated)
or text for names like ``title``, ``float`` -> numeric. ``float_seq`` fields are not used (noted).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recfuse.data.dataset import FeatureKind
from recfuse.data.loaders.base import DatasetFormat, find_one
from recfuse.data.readers import LINE, SideTable, read_delimited, to_ids, to_numbers, to_ratings
from recfuse.errors import DataError

TYPES = ("token", "token_seq", "float", "float_seq")
TEXT_HINTS = ("title", "name", "text", "abstract", "desc", "review", "summary")
# standard names for the fields of RecBole's MovieLens copies, so every MovieLens source looks alike
RENAMES = {"movie_title": "title", "release_year": "year", "class": "genres"}
NUMERIC_TOKENS = {"age", "release_year", "year"}


def _parse_header(df: pd.DataFrame, path: Path) -> dict[str, tuple[str, str]]:
    """Map each raw column 'name:type' to (name, type)."""
    fields = {}
    for col in df.columns:
        if col == LINE:
            continue
        name, sep, typ = col.rpartition(":")
        if not sep or typ not in TYPES:
            raise DataError(f"header entry {col!r} is not 'name:type' with type in {', '.join(TYPES)}",
                            path=path, line=1, field=col)
        fields[col] = (name, typ)
    return fields


def _read(path: Path) -> tuple[pd.DataFrame, dict[str, tuple[str, str]]]:
    df = read_delimited(path, sep="\t", header=True, quoting=False)
    return df, _parse_header(df, path)


class RecBoleAtomic(DatasetFormat):
    name = "recbole"
    description = "RecBole atomic files (.inter, .user, .item with name:type headers)"

    def __init__(self, user_field: str = "user_id", item_field: str = "item_id", rating_field: str = "rating",
                 time_field: str = "timestamp"):
        self.fields = {"user": user_field, "item": item_field, "rating": rating_field, "timestamp": time_field}
        self.skipped: list[str] = []

    def detect(self, directory: Path) -> bool:
        return find_one(directory, "*.inter") is not None

    def interaction_files(self, directory: Path) -> dict[str, Path]:
        parts = {p: find_one(directory, f"*.{p}.inter") for p in ("train", "valid", "test")}
        if parts["train"] is not None and parts["test"] is not None:
            return {k: v for k, v in parts.items() if v is not None}
        plain = [p for p in sorted(directory.glob("*.inter")) if p.name.count(".") == 1]
        if not plain:
            raise DataError("no .inter file", path=directory)
        return {"all": plain[0]}

    def read_interactions(self, path: Path, **options) -> pd.DataFrame:
        df, fields = _read(path)
        by_name = {name: col for col, (name, _) in fields.items()}
        out = {}
        for key, field in self.fields.items():
            if field in by_name:
                col = by_name[field]
                if key in ("user", "item"):
                    out[key] = to_ids(df, col, path)
                elif key == "rating":
                    out[key] = to_ratings(df, col, path)
                else:
                    out[key] = to_numbers(df, col, path)
            elif key in ("user", "item"):
                raise DataError(f"missing column (the file has: {', '.join(by_name)})", path=path, field=field)
        return pd.DataFrame({**out, LINE: df[LINE]})

    def _side(self, path: Path | None, id_field: str) -> SideTable | None:
        if path is None:
            return None
        df, fields = _read(path)
        by_name = {name: col for col, (name, _) in fields.items()}
        if id_field not in by_name:
            raise DataError(f"missing id column (the file has: {', '.join(by_name)})", path=path, field=id_field)
        frame = pd.DataFrame({"id": df[by_name[id_field]], LINE: df[LINE]})
        kinds: dict[str, FeatureKind] = {}
        multi_sep = {}
        for col, (name, typ) in fields.items():
            if name == id_field:
                continue
            if typ == "float_seq":
                self.skipped.append(f"{path.name}: field '{name}' (float_seq) is not used")
                continue
            new = RENAMES.get(name, name)
            if typ == "float":
                to_numbers(df, col, path, required=False)  # declared numeric: a bad entry is an error
                kinds[new] = "numeric"
            elif typ == "token" and name in NUMERIC_TOKENS:
                kinds[new] = "numeric"  # a token we read as a number: entries like 'unknown' become missing
            elif typ == "token":
                kinds[new] = "categorical"
            elif any(h in name for h in TEXT_HINTS):
                kinds[new] = "text"
            else:
                kinds[new] = "multi"
                multi_sep[new] = " "
            frame[new] = df[col]
        return SideTable(frame, kinds, str(path), multi_sep)

    def read_side(self, directory: Path, **options):
        return (self._side(find_one(directory, "*.user"), self.fields["user"]),
                self._side(find_one(directory, "*.item"), self.fields["item"]))

    def finish(self, dataset, **options):
        dataset.notes.extend(self.skipped)
        return dataset
