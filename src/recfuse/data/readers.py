"""Reading delimited files with errors that name the file, line and field, and building a Dataset.

Every loader goes through :func:`read_delimited` (all values as strings, one ``_line`` column with the
1-based line number of each row) and the converters below, so a malformed, truncated or non-numeric
entry ends in one :class:`~recfuse.errors.DataError` rather than a traceback from inside pandas.

The rules every file meets (docs/data.md):

* a byte-order mark is read, never kept: a UTF-8 one is dropped, a UTF-16 one means the file is UTF-16;
* a file with NUL bytes (a binary file, a file in another encoding) is refused, naming the line;
* numbers are finite (``inf`` or ``1e400`` is refused; ``nan``, ``NULL`` and empty are missing values);
* ratings (:func:`to_ratings`) are finite numbers from 0 to :data:`MAX_RATING`, refused naming file:line otherwise;
* duplicate interactions (:func:`merge_duplicates`): rows equal in user, item, time (where the data has times),
  rating and split part are one interaction, kept once (the dataset's notes count them); rows equal in user,
  item, time and part whose ratings differ are refused, since the data does not say which rating holds.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recfuse.data.dataset import Dataset, Feature, FeatureKind, FeatureTable, Interactions, Vocab
from recfuse.errors import DataError

log = logging.getLogger(__name__)
LINE = "_line"
#: the file an interaction row was read from (with its ``_line``: what an error about the row names)
FILE = "_file"
#: entries of an optional numeric column that mean "missing" (Book-Crossing writes NULL)
MISSING_TOKENS = ("", "null", "na", "n/a", "nan", "none")
#: the largest rating accepted (play counts and the like included); a larger one is a damaged file
MAX_RATING = 1e9
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """A text file's content: a UTF-8 byte-order mark dropped, a UTF-16 one decoding the file as UTF-16;
    undecodable bytes or NUL bytes (a binary file) raise naming the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    data = path.read_bytes()
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    elif data[:2] in UTF16_BOMS:
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise DataError(f"not valid UTF-16 text (its byte-order mark says UTF-16; byte {e.start})",
                            path=path) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"a NUL byte at byte {nul}: a binary file, or text in an encoding other than {encoding} "
                        "(UTF-16 needs its byte-order mark)", path=path, line=data[:nul].count(b"\n") + 1)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"not valid {encoding} text (byte {e.start})", path=path, line=line) from None


def read_delimited(path: str | Path, *, sep: str, names: Sequence[str] | None = None, header: bool = False,
                   encoding: str = "utf-8", quoting: bool = True, min_fields: int | None = None) -> pd.DataFrame:
    """Read a delimited text file as strings, adding the line number of each row in column ``_line``.

    ``names`` gives the column names when the file has no header (``header=False``). A row with more
    fields than columns raises; a row with fewer than ``min_fields`` (default: all) is reported as
    truncated. Blank lines are skipped.
    """
    path = Path(path)
    raw = read_text(path, encoding)
    if len(sep) > 1:  # pandas' C parser takes one character; '::' (MovieLens-1M) becomes a unit separator
        raw = raw.replace(sep, "\x1f")
        sep = "\x1f"
    if not raw.strip():
        raise DataError("the file is empty", path=path)
    try:
        with warnings.catch_warnings():
            # pandas drops the extra fields of a first row longer than the header with only a warning
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(io.StringIO(raw), sep=sep, header=0 if header else None,
                             names=None if header else list(names or []) or None, dtype=str,
                             keep_default_na=False, na_filter=False, skip_blank_lines=False, engine="c",
                             quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE, index_col=False)
    except pd.errors.ParserWarning:
        first = next(i for i, line in enumerate(raw.splitlines(), 1) if line.strip() and (i > 1 or not header))
        raise DataError(f"more fields than the {'header names' if header else 'format has'}", path=path,
                        line=first) from None
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m:
            line = int(m.group(2))  # pandas counts rows: a quoted field spanning lines is one
            if quoting:
                starts = _fields_and_lines(raw, sep, quoting, path)[1]
                line = int(starts[line - 1]) if line <= len(starts) else line
            raise DataError(f"expected {m.group(1)} fields, found {m.group(3)}", path=path, line=line) from None
        raise DataError(f"cannot parse: {e}", path=path) from None
    except (ValueError, csv.Error) as e:  # e.g. a stray carriage return inside a field of a binary file
        raise DataError(f"cannot parse as delimited text: {e}", path=path) from None
    df.columns = [str(c).strip() for c in df.columns]
    first_line = 2 if header else 1
    df[LINE] = np.arange(first_line, first_line + len(df))
    data_cols = [c for c in df.columns if c != LINE]
    need = len(data_cols) if min_fields is None else min_fields
    if need > 1 or quoting:
        # pandas pads a short row with empty strings, like empty fields: count the fields ourselves; and a
        # quoted field may span lines: number each row by the physical line it starts on
        counts, starts = _fields_and_lines(raw, sep, quoting, path)
        skip = 1 if header else 0
        counts, starts = counts[skip:], starts[skip:]
        if len(counts) == len(df):
            df[LINE] = starts
        if need > 1 and len(counts) == len(df):
            short = (counts < need) & (counts > 0)
            if short.any():
                row = int(np.flatnonzero(short)[0])
                missing = data_cols[counts[row]:]
                raise DataError(f"truncated line: {counts[row]} of {len(data_cols)} fields "
                                f"(missing {', '.join(missing)})", path=path, line=int(df[LINE].iloc[row]))
    blank = (df[data_cols].fillna("").astype(str).apply(lambda s: s.str.strip()) == "").all(axis=1)
    return df[~blank.to_numpy()].reset_index(drop=True).fillna("")


def _fields_and_lines(raw: str, sep: str, quoting: bool, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The number of fields of each row of ``raw`` and the physical line each row starts on (1-based)."""
    rows = csv.reader(io.StringIO(raw), delimiter=sep, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
    counts, ends = [], []
    try:
        for row in rows:
            counts.append(len(row))
            ends.append(rows.line_num)
    except csv.Error as e:  # a lone carriage return inside a field: not text written as delimited rows
        raise DataError(f"cannot parse as delimited text: {e}", path=path) from None
    end = np.asarray(ends, dtype=np.int64)
    return np.asarray(counts, dtype=np.int64), np.concatenate([[1], end[:-1] + 1]) if len(end) else end


def to_ids(df: pd.DataFrame, column: str, path: str | Path) -> pd.Series:
    """Column ``column`` as ids (strings, surrounding blanks stripped); an empty id, or one with a line break
    in it (a quote opened in a field and never closed on its line), raises naming its line."""
    ids = df[column].astype(str).str.strip()
    bad = (ids == "") | ids.str.contains(r"[\r\n]", regex=True)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        what = ("missing value" if ids.iloc[row] == "" else
                f"a line break inside the id {ids.iloc[row][:40]!r}: a quote opened on this line is not closed "
                "before the line ends")
        raise DataError(what, path=path, line=int(df[LINE].iloc[row]), field=column)
    return ids


def require_columns(df: pd.DataFrame, columns: Sequence[str], path: str | Path) -> None:
    """Raise naming the first missing column and the ones that exist."""
    have = [c for c in df.columns if c != LINE]
    for col in columns:
        if col not in df.columns:
            raise DataError(f"missing column (the file has: {', '.join(have)})", path=path, field=col)


def to_numbers(df: pd.DataFrame, column: str, path: str | Path, *, required: bool = True,
               integer: bool = False) -> np.ndarray:
    """Column ``column`` as float64; a non-numeric, infinite (or, if required, empty) entry raises with its line."""
    text = df[column].astype(str).str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() & (~text.str.lower().isin(MISSING_TOKENS) | required)
    infinite = values.notna() & ~np.isfinite(values.to_numpy(dtype=np.float64))
    bad |= infinite
    if integer:
        bad |= values.notna() & ~infinite & (values != np.floor(values))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        shown = text.iloc[row]
        what = ("missing value" if shown.lower() in MISSING_TOKENS else
                f"not a finite number: {shown!r}" if infinite.iloc[row] else
                f"not {'an integer' if integer else 'a number'}: {shown!r}")
        raise DataError(what, path=path, line=int(df[LINE].iloc[row]), field=column)
    return values.to_numpy(dtype=np.float64)


def to_ratings(df: pd.DataFrame, column: str, path: str | Path) -> np.ndarray:
    """Column ``column`` as ratings: finite numbers from 0 to :data:`MAX_RATING`; any other entry raises
    naming its line (a signed scale, such as Jester's -10..10, needs shifting to start at 0 first)."""
    values = to_numbers(df, column, path)
    bad = (values < 0) | (values > MAX_RATING)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        what = "negative" if values[row] < 0 else f"above {MAX_RATING:,.0f}"
        raise DataError(f"rating {df[column].iloc[row].strip()!r} is {what}: ratings are numbers from 0 to "
                        f"{MAX_RATING:,.0f} (shift a signed scale to start at 0)", path=path,
                        line=int(df[LINE].iloc[row]), field=column)
    return values


def to_timestamps(df: pd.DataFrame, column: str, path: str | Path, fmt: str | None = None) -> np.ndarray:
    """Unix seconds from dates in format ``fmt``, or, without one, from a numeric column (unix seconds) or ISO
    dates (a time zone, where given, is taken into account; none means UTC); bad entries raise with their line.

    A column whose entries are mostly numbers is numeric: an entry that is not a finite number is named (a typo
    in one entry does not make the column dates)."""
    text = df[column].astype(str).str.strip()
    if fmt is None and len(text) and pd.to_numeric(text, errors="coerce").notna().mean() >= 0.5:
        return to_numbers(df, column, path)
    missing = text.str.lower().isin(MISSING_TOKENS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format": bad entries are named below
            given = text.where(~missing, None)
            parsed = pd.to_datetime(given, format=fmt or "ISO8601", errors="coerce", utc=True)
            other = parsed.isna() & ~missing
            if fmt is None and other.any():  # dates not in ISO 8601 (e.g. 01/31/2020): each read on its own
                parsed[other] = pd.to_datetime(given[other], format="mixed", errors="coerce", utc=True)
    except (ValueError, TypeError, OverflowError) as e:
        raise DataError(f"cannot read as dates{f' in format {fmt!r}' if fmt else ''}: {e}", path=path,
                        field=column) from None
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        what = ("missing value" if missing.iloc[row] else
                f"not a {f'date in format {fmt!r}' if fmt else 'timestamp or date'}: {text.iloc[row]!r}")
        raise DataError(what, path=path, line=int(df[LINE].iloc[row]), field=column)
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(np.float64)


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


def merge_duplicates(frame: pd.DataFrame, source: str) -> tuple[pd.DataFrame, int]:
    """``frame`` (``user, item[, rating][, timestamp][, split]``, ids stripped) with each duplicate interaction
    kept once (its first row), and how many rows were dropped. Rows with the same user, item, time and split
    part but different ratings raise :class:`~recfuse.errors.DataError` naming them (without times, the same
    user and item rated twice differently)."""
    keys = [c for c in ("user", "item", "timestamp", "split") if c in frame]
    repeated = frame.duplicated(keys, keep=False)
    if not repeated.any():
        return frame, 0
    if "rating" in frame:
        spread = frame[repeated].groupby(keys, sort=False)["rating"].agg(["min", "max"])
        conflict = spread[spread["min"] != spread["max"]]
        if len(conflict):
            key = conflict.index[0]
            parts = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
            when = f" at time {parts['timestamp']:.15g}" if "timestamp" in parts else " (the data has no times)"
            raise DataError(f"user {parts['user']!r} rated item {parts['item']!r}{when} twice, differently "
                            f"({conflict['min'].iloc[0]:g} and {conflict['max'].iloc[0]:g}{_rows_of(frame, parts)}): "
                            f"the data does not say which holds; {len(conflict)} such interaction(s) in all",
                            path=source)
    kept = frame[~frame.duplicated(keys, keep="first").to_numpy()]
    return kept, len(frame) - len(kept)


def _rows_of(frame: pd.DataFrame, values: dict) -> str:
    """", in file:line and file:line" for the rows of ``frame`` equal to ``values`` where the loader kept where its
    rows came from (``_file``, ``_line``); "" where it did not."""
    if LINE not in frame:
        return ""
    match = np.ones(len(frame), dtype=bool)
    for column, value in values.items():
        match &= frame[column].to_numpy() == value
    rows = frame[match]
    files = rows[FILE] if FILE in rows else pd.Series([""] * len(rows), index=rows.index)
    return ", in " + " and ".join(f"{name}:{line}" if name else f"line {line}"
                                  for name, line in zip(files, rows[LINE]))


def build_dataset(name: str, interactions: pd.DataFrame, *, users: SideTable | None = None,
                  items: SideTable | None = None, source: str = "", notes: Sequence[str] = ()) -> Dataset:
    """Encode a frame with columns ``user, item[, rating][, timestamp][, split]`` into a :class:`Dataset`.

    The vocabularies hold the users and items that occur in the interactions (numeric ids in numeric
    order); side tables are aligned to them.
    """
    if len(interactions) == 0:
        raise DataError("no interactions", path=source or name)
    interactions = interactions.assign(user=interactions["user"].astype(str).str.strip(),
                                       item=interactions["item"].astype(str).str.strip())
    if "rating" in interactions:
        rating = interactions["rating"].to_numpy(np.float64)
        bad = ~np.isfinite(rating) | (rating < 0) | (rating > MAX_RATING)
        if bad.any():
            raise DataError(f"rating {rating[bad][0]!r} of user {interactions['user'].iloc[int(np.flatnonzero(bad)[0])]!r}"
                            f": ratings are finite numbers from 0 to {MAX_RATING:,.0f}", path=source or name)
    interactions, merged = merge_duplicates(interactions, source or name)
    notes = list(notes)
    if merged:
        log.warning("%s: %d duplicate interaction row(s) (same user, item, time and rating) kept once",
                    source or name, merged)
        notes.append(f"{merged} duplicate interaction rows (same user, item, time and rating) kept once")
    u_ext = interactions["user"].to_numpy()
    i_ext = interactions["item"].to_numpy()
    user_vocab = Vocab(_natural_order(u_ext), "user")
    item_vocab = Vocab(_natural_order(i_ext), "item")
    inter = Interactions(
        user_vocab.index(u_ext), item_vocab.index(i_ext),
        interactions["rating"].to_numpy(np.float32) if "rating" in interactions else None,
        interactions["timestamp"].to_numpy(np.float64) if "timestamp" in interactions else None,
    )
    for kind, table, vocab in (("user", users, user_vocab), ("item", items, item_vocab)):
        if table is not None:
            listed, seen = set(table.frame["id"]), set(vocab.ids)
            where = Path(table.path).name or "the side file"
            if unused := len(listed - seen):
                notes.append(f"{unused} {kind}s in {where} have no interactions and were left out")
            if unlisted := len(seen - listed):
                notes.append(f"{unlisted} {kind}s with interactions have no row in {where}: their side features "
                             "are missing values")
    split = interactions["split"].to_numpy(np.int8) if "split" in interactions else None
    return Dataset(name, user_vocab, item_vocab, inter,
                   users.features(user_vocab) if users is not None else FeatureTable(len(user_vocab)),
                   items.features(item_vocab) if items is not None else FeatureTable(len(item_vocab)),
                   split, source, notes)
