"""Book-Crossing CSVs: BX-Book-Ratings.csv / BX-Books.csv / BX-Users.csv (';', the original dump) or
Ratings.csv / Books.csv / Users.csv (',', the common re-upload).

The data has no timestamps: splits use a seeded random order. Rating 0 marks an implicit interaction;
``explicit_only`` (default) keeps ratings 1-10. A 5-core filter is applied (``kcore``, default 5).
ISBNs are compared in upper case (``034545104x`` and ``034545104X`` are one book); where a user rated one book
twice (so, or in two lines), the later line holds, and the dataset's notes count those merged.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recfuse.data.loaders.base import DatasetFormat, find_one
from recfuse.data.readers import (LINE, SideTable, read_delimited, read_text, require_columns, to_ids, to_numbers,
                                  to_ratings)
from recfuse.data.splits import kcore as kcore_filter
from recfuse.errors import DataError

RATINGS = ("BX-Book-Ratings.csv", "Ratings.csv")


def _sep(path: Path) -> str:
    lines = read_text(path, "latin-1").splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise DataError("the file is empty", path=path)
    return ";" if first.count(";") > first.count(",") else ","


def _read(path: Path) -> pd.DataFrame:
    return read_delimited(path, sep=_sep(path), header=True, encoding="latin-1")


class BookCrossing(DatasetFormat):
    name = "bookcrossing"
    description = "Book-Crossing CSVs (BX-Book-Ratings.csv, BX-Books.csv, BX-Users.csv)"

    def __init__(self) -> None:
        self.merged = 0

    def detect(self, directory: Path) -> bool:
        return find_one(directory, *RATINGS) is not None

    def interaction_files(self, directory: Path) -> dict[str, Path]:
        found = find_one(directory, *RATINGS)
        return {"all": found if found is not None else directory / RATINGS[0]}  # a missing file is named on reading

    def read_interactions(self, path: Path, explicit_only: bool = True, **options) -> pd.DataFrame:
        df = _read(path)
        require_columns(df, ["User-ID", "ISBN", "Book-Rating"], path)
        rating = to_ratings(df, "Book-Rating", path)
        out = pd.DataFrame({"user": to_ids(df, "User-ID", path), "item": to_ids(df, "ISBN", path).str.upper(),
                            "rating": rating, LINE: df[LINE]})
        if explicit_only:
            out = out[out["rating"] > 0]
        kept = out.drop_duplicates(["user", "item"], keep="last")
        self.merged += len(out) - len(kept)
        return kept.reset_index(drop=True)

    def read_side(self, directory: Path, **options):
        users = items = None
        path = find_one(directory, "BX-Users.csv", "Users.csv")
        if path is not None:
            df = _read(path)
            require_columns(df, ["User-ID", "Location", "Age"], path)
            to_numbers(df, "Age", path, required=False)
            frame = pd.DataFrame({"id": df["User-ID"], "location": df["Location"], "age": df["Age"],
                                  LINE: df[LINE]})
            users = SideTable(frame, {"location": "categorical", "age": "numeric"}, str(path))
        path = find_one(directory, "BX-Books.csv", "Books.csv")
        if path is not None:
            df = _read(path)
            require_columns(df, ["ISBN", "Book-Title", "Book-Author", "Year-Of-Publication", "Publisher"], path)
            frame = pd.DataFrame({"id": df["ISBN"].str.strip().str.upper(), "title": df["Book-Title"],
                                  "author": df["Book-Author"],
                                  "year": pd.to_numeric(df["Year-Of-Publication"], errors="coerce"),
                                  "publisher": df["Publisher"], LINE: df[LINE]})
            frame = frame.drop_duplicates("id")
            items = SideTable(frame, {"title": "text", "author": "categorical", "year": "numeric",
                                      "publisher": "categorical"}, str(path))
        return users, items

    def finish(self, dataset, kcore: int = 5, **options):
        out = kcore_filter(dataset, kcore) if kcore > 1 else dataset
        out.notes.append("no timestamps: leave-one-out uses a seeded random order")
        if self.merged:
            out.notes.append(f"{self.merged} repeated ratings of one book by one user (ISBNs compared in upper case) "
                             "merged: the later line holds")
        return out
