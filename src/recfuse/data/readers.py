"""Reading delimited files with errors that name the file, line and field, and building a Dataset.

Every loader goes through :func:`read_delimited` (all values as strings, one ``_line`` column with the
1-based line number of each row) and the converters below, so a malformed, truncated or non-numeric
entry ends in one :class:`~recfuse.errors.DataError` rather than a traceback from inside pandas.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recfuse.data.dataset import Dataset, Feature, FeatureKind, FeatureTable, Interactions, Vocab
from recfuse.errors import DataError

LINE = "_line"
#: entries of an optional numeric column that mean "missing" (Book-Crossing writes NULL)
MISSING_TOKENS = ("", "null", "na", "n/a", "nan", "none")


def read_delimited(path: str | Path, *, sep: str, names: Sequence[str] | None = None, header: bool = False,
                   encoding: str = "utf-8", quoting: bool = True, min_fields: int | None = None) -> pd.DataFrame:
    """Read a delimited text file as strings, adding the line number of each row in column ``_line``.

    ``names`` gives the column names when the file has no header (``header=False``). A row with more
    fields than columns raises; a row with fewer than ``min_fields`` (default: all) is reported as
    truncated. Blank lines are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        raw = path.read_bytes().decode(encoding)
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"not valid {encoding} text (byte {e.start})", path=path, line=line) from None
    if len(sep) > 1:  # pandas' C parser takes one character; '::' (MovieLens-1M) becomes a unit separator
        raw = raw.replace(sep, "\x1f")
        sep = "\x1f"
    if not raw.strip():
        raise DataError("the file is empty", path=path)
    try:
        df = pd.read_csv(io.StringIO(raw), sep=sep, header=0 if header else None,
                         names=None if header else list(names or []) or None, dtype=str,
                         keep_default_na=False, na_filter=False, skip_blank_lines=False, engine="c",
                         quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE, index_col=False)
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m:
            raise DataError(f"expected {m.group(1)} fields, found {m.group(3)}", path=path,
                            line=int(m.group(2))) from None
        raise DataError(f"cannot parse: {e}", path=path) from None
    df.columns = [str(c).strip() for c in df.columns]
    first_line = 2 if header else 1
    df[LINE] = np.arange(first_line, first_line + len(df))
    data_cols = [c for c in df.columns if c != LINE]
    need = len(data_cols) if min_fields is None else min_fields
    if need > 1:
        # pandas pads a short row with empty strings, like empty fields: count the fields ourselves
        rows = csv.reader(io.StringIO(raw), delimiter=sep, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
        counts = np.fromiter((len(r) for r in rows), dtype=np.int64)[1 if header else 0:]
        if len(counts) == len(df):
            short = (counts < need) & (counts > 0)
            if short.any():
                row = int(np.flatnonzero(short)[0])
                missing = data_cols[counts[row]:]
                raise DataError(f"truncated line: {counts[row]} of {len(data_cols)} fields "
                                f"(missing {', '.join(missing)})", path=path, line=int(df[LINE].iloc[row]))
    blank = (df[data_cols].fillna("").astype(str).apply(lambda s: s.str.strip()) == "").all(axis=1)
    return df[~blank.to_numpy()].reset_index(drop=True).fillna("")


def require_columns(df: pd.DataFrame, columns: Sequence[str], path: str | Path) -> None:
    """Raise naming the first missing column and the ones that exist."""
    have = [c for c in df.columns if c != LINE]
    for col in columns:
        if col not in df.columns:
            raise DataError(f"missing column (the file has: {', '.join(have)})", path=path, field=col)


def to_numbers(df: pd.DataFrame, column: str, path: str | Path, *, required: bool = True,
               integer: bool = False) -> np.ndarray:
    """Column ``column`` as float64; a non-numeric (or, if required, empty) entry raises with its line."""
    text = df[column].astype(str).str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() & (~text.str.lower().isin(MISSING_TOKENS) | required)
    if integer:
        bad |= values.notna() & (values != np.floor(values))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        shown = text.iloc[row]
        what = "missing value" if shown.lower() in MISSING_TOKENS else f"not {'an integer' if integer else 'a number'}: {shown!r}"
        raise DataError(what, path=path, line=int(df[LINE].iloc[row]), field=column)
    return values.to_numpy(dtype=np.float64)


def to_timestamps(df: pd.DataFrame, column: str, path: str | Path, fmt: str | None = None) -> np.ndarray:
    """Unix seconds from a numeric column, or from dates (``fmt`` or ISO); bad entries raise with their line."""
    text = df[column].astype(str).str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(np.float64)
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"not a timestamp or date: {text.iloc[row]!r}", path=path,
                        line=int(df[LINE].iloc[row]), field=column)
    return (parsed - pd.Timestamp(0)).dt.total_seconds().to_numpy(np.float64)


@dataclass
class SideTable:
    """Side information of users or items as read from a file: an ``id`` column plus feature columns."""

    frame: pd.DataFrame
    kinds: dict[str, FeatureKind]
    path: str = ""
    multi_sep: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_columns(self.frame, ["id", *self.kinds], self.path)
        ids = self.frame["id"].astype(str).str.strip()
        dup = ids.duplicated()
        if dup.any():
            row = int(np.flatnonzero(dup.to_numpy())[0])
            line = int(self.frame[LINE].iloc[row]) if LINE in self.frame else None
            raise DataError(f"duplicate id {ids.iloc[row]!r}", path=self.path, line=line, field="id")
        self.frame = self.frame.assign(id=ids)

    def features(self, vocab: Vocab) -> FeatureTable:
        """Features aligned with ``vocab`` (ids absent from the table get missing values)."""
        aligned = self.frame.set_index("id").reindex(pd.Index(vocab.ids, dtype=object))
        table = FeatureTable(len(vocab))
        for name, kind in self.kinds.items():
            col = aligned[name]
            if kind == "categorical":
                table.add(Feature.categorical(name, col.tolist()))
            elif kind == "numeric":
                table.add(Feature.numeric(name, col.tolist()))
            elif kind == "text":
                table.add(Feature.text(name, col.tolist()))
            elif kind == "multi":
                sep = self.multi_sep.get(name, "|")
                table.add(Feature.multi(name, [None if not isinstance(v, str) else
                                               (v.split() if sep == " " else v.split(sep)) for v in col]))
            else:
                raise DataError(f"unknown feature kind {kind!r}", path=self.path, field=name)
        return table


def _natural_order(ids: np.ndarray) -> np.ndarray:
    """Unique ids sorted numerically when all are integers, else as strings."""
    uniq = pd.unique(ids)
    try:
        return uniq[np.argsort(uniq.astype(np.int64), kind="stable")]
    except (ValueError, OverflowError):
        return np.sort(uniq.astype(str))


def build_dataset(name: str, interactions: pd.DataFrame, *, users: SideTable | None = None,
                  items: SideTable | None = None, source: str = "", notes: Sequence[str] = ()) -> Dataset:
    """Encode a frame with columns ``user, item[, rating][, timestamp][, split]`` into a :class:`Dataset`.

    The vocabularies hold the users and items that occur in the interactions (numeric ids in numeric
    order); side tables are aligned to them.
    """
    if len(interactions) == 0:
        raise DataError("no interactions", path=source or name)
    u_ext = interactions["user"].astype(str).str.strip().to_numpy()
    i_ext = interactions["item"].astype(str).str.strip().to_numpy()
    user_vocab = Vocab(_natural_order(u_ext), "user")
    item_vocab = Vocab(_natural_order(i_ext), "item")
    inter = Interactions(
        user_vocab.index(u_ext), item_vocab.index(i_ext),
        interactions["rating"].to_numpy(np.float32) if "rating" in interactions else None,
        interactions["timestamp"].to_numpy(np.float64) if "timestamp" in interactions else None,
    )
    notes = list(notes)
    for kind, table, vocab in (("user", users, user_vocab), ("item", items, item_vocab)):
        if table is not None:
            unused = len(set(table.frame["id"]) - set(vocab.ids))
            if unused:
                notes.append(f"{unused} {kind}s in {Path(table.path).name or 'the side file'} have no "
                             "interactions and were left out")
    split = interactions["split"].to_numpy(np.int8) if "split" in interactions else None
    return Dataset(name, user_vocab, item_vocab, inter,
                   users.features(user_vocab) if users is not None else FeatureTable(len(user_vocab)),
                   items.features(item_vocab) if items is not None else FeatureTable(len(item_vocab)),
                   split, source, notes)
