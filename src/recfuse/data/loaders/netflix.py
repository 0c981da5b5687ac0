"""Netflix Prize files: combined_data_*.txt ('MovieID:' lines, then 'CustomerID,Rating,Date') and
movie_titles.csv ('MovieID,YearOfRelease,Title', titles may contain commas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recfuse.data.loaders.base import DatasetFormat
from recfuse.data.readers import LINE, SideTable, read_delimited, to_ids, to_ratings, to_timestamps
from recfuse.errors import DataError


class Netflix(DatasetFormat):
    name = "netflix"
    description = "Netflix Prize (combined_data_*.txt, movie_titles.csv)"

    def detect(self, directory: Path) -> bool:
        return any(directory.glob("combined_data_*.txt"))

    def interaction_files(self, directory: Path) -> dict[str, Path]:
        files = sorted(directory.glob("combined_data_*.txt"))
        if not files:
            return {}
        if len(files) == 1:
            return {"all": files[0]}
        # several files: read them as one
        return {"all": directory}

    def read_interactions(self, path: Path, max_files: int | None = None, **options) -> pd.DataFrame:
        files = sorted(path.glob("combined_data_*.txt"))[:max_files] if path.is_dir() else [path]
        return pd.concat([self._read_one(f) for f in files], ignore_index=True)

    @staticmethod
    def _read_one(path: Path) -> pd.DataFrame:
        df = read_delimited(path, sep=",", names=["customer", "rating", "date"], encoding="latin-1",
                            quoting=False, min_fields=1)
        header = (df["rating"] == "") & (df["date"] == "")
        if len(df) and not header.iloc[0]:
            raise DataError("expected a 'MovieID:' line first", path=path, line=int(df[LINE].iloc[0]))
        heads = df.loc[header, "customer"].str.strip()
        bad = ~heads.str.fullmatch(r"\d+:")
        if bad.any():
            row = heads.index[np.flatnonzero(bad.to_numpy())[0]]
            raise DataError(f"expected 'MovieID:' or 'CustomerID,Rating,Date', got {heads[row]!r}", path=path,
                            line=int(df.loc[row, LINE]))
        movie = pd.Series(np.where(header, df["customer"].str.strip().str.rstrip(":"), None)).ffill()
        body = df[~header.to_numpy()]
        movie = movie[~header.to_numpy()]
        return pd.DataFrame({"user": to_ids(body, "customer", path).to_numpy(), "item": movie.to_numpy(),
                             "rating": to_ratings(body, "rating", path),
                             "timestamp": to_timestamps(body, "date", path, fmt="%Y-%m-%d"),
                             LINE: body[LINE].to_numpy()})

    def read_side(self, directory: Path, **options):
        path = directory / "movie_titles.csv"
        if not path.is_file():
            return None, None
        df = read_delimited(path, sep="\x1e", names=["raw"], encoding="latin-1", quoting=False)
        parts = df["raw"].str.split(",", n=2, expand=True).reindex(columns=range(3))
        if parts[2].isna().any():
            row = int(np.flatnonzero(parts[2].isna().to_numpy())[0])
            raise DataError("expected 'MovieID,YearOfRelease,Title'", path=path, line=int(df[LINE].iloc[row]))
        frame = pd.DataFrame({"id": parts[0].str.strip(), "year": pd.to_numeric(parts[1], errors="coerce"),
                              "title": parts[2].str.strip(), LINE: df[LINE]})
        return None, SideTable(frame, {"title": "text", "year": "numeric"}, str(path))
