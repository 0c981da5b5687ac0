"""MovieLens raw files: 100K (u.data, u.item, u.user) and 1M (ratings.dat, movies.dat, users.dat)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from recfuse.data.loaders.base import DatasetFormat
from recfuse.data.readers import LINE, SideTable, read_delimited, require_columns, to_ids, to_numbers, to_ratings

ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western"]
# from the ML-1M README
ML1M_OCCUPATIONS = ["other", "academic/educator", "artist", "clerical/admin", "college/grad student",
                    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
                    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
                    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer"]
_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


def split_title_year(titles: pd.Series) -> tuple[list[str], list[float]]:
    """'Toy Story (1995)' -> ('Toy Story', 1995.0); no year -> NaN."""
    names, years = [], []
    for t in titles.astype(str):
        m = _YEAR.search(t)
        names.append(t[: m.start()].strip() if m else t.strip())
        years.append(float(m.group(1)) if m else np.nan)
    return names, years


def _ratings(path: Path, sep: str) -> pd.DataFrame:
    df = read_delimited(path, sep=sep, names=["user", "item", "rating", "timestamp"], encoding="latin-1")
    return pd.DataFrame({"user": to_ids(df, "user", path), "item": to_ids(df, "item", path),
                         "rating": to_ratings(df, "rating", path),
                         "timestamp": to_numbers(df, "timestamp", path, integer=True), LINE: df[LINE]})


class MovieLens100K(DatasetFormat):
    name = "ml-100k-raw"
    description = "MovieLens-100K raw files: u.data, u.item, u.user"

    def detect(self, directory: Path) -> bool:
        return (directory / "u.data").is_file()

    def interaction_files(self, directory: Path) -> dict[str, Path]:
        return {"all": directory / "u.data"}

    def read_interactions(self, path: Path, **options) -> pd.DataFrame:
        return _ratings(path, "\t")

    def read_side(self, directory: Path, **options):
        users = items = None
        if (directory / "u.user").is_file():
            path = directory / "u.user"
            df = read_delimited(path, sep="|", names=["id", "age", "gender", "occupation", "zip_code"],
                                encoding="latin-1")
            to_numbers(df, "age", path)  # validates
            users = SideTable(df, {"age": "numeric", "gender": "categorical", "occupation": "categorical",
                                   "zip_code": "categorical"}, str(path))
        if (directory / "u.item").is_file():
            path = directory / "u.item"
            genres = ML100K_GENRES
            if (directory / "u.genre").is_file():
                g = read_delimited(directory / "u.genre", sep="|", names=["genre", "code"], encoding="latin-1")
                genres = g.sort_values("code", key=lambda s: s.astype(int))["genre"].tolist()
            cols = ["id", "title", "release_date", "video_release_date", "imdb_url", *genres]
            df = read_delimited(path, sep="|", names=cols, encoding="latin-1", quoting=False, min_fields=5)
            flags = np.column_stack([to_numbers(df, g, path, required=False) for g in genres]) \
                if len(df) else np.zeros((0, len(genres)))
            names, years = split_title_year(df["title"])
            item_frame = pd.DataFrame({"id": df["id"], "title": names, "year": years,
                                       "genres": ["|".join(g for g, f in zip(genres, row) if f == 1) for row in flags],
                                       LINE: df[LINE]})
            items = SideTable(item_frame, {"title": "text", "year": "numeric", "genres": "multi"}, str(path))
        return users, items


class MovieLens1M(DatasetFormat):
    name = "ml-1m-raw"
    description = "MovieLens-1M raw files: ratings.dat, movies.dat, users.dat ('::' separated)"

    def detect(self, directory: Path) -> bool:
        return (directory / "ratings.dat").is_file()

    def interaction_files(self, directory: Path) -> dict[str, Path]:
        return {"all": directory / "ratings.dat"}

    def read_interactions(self, path: Path, **options) -> pd.DataFrame:
        return _ratings(path, "::")

    def read_side(self, directory: Path, **options):
        users = items = None
        if (directory / "users.dat").is_file():
            path = directory / "users.dat"
            df = read_delimited(path, sep="::", names=["id", "gender", "age", "occupation", "zip_code"],
                                encoding="latin-1")
            occ = to_numbers(df, "occupation", path, integer=True).astype(int)
            df["occupation"] = [ML1M_OCCUPATIONS[o] if 0 <= o < len(ML1M_OCCUPATIONS) else str(o) for o in occ]
            to_numbers(df, "age", path)
            users = SideTable(df, {"age": "numeric", "gender": "categorical", "occupation": "categorical",
                                   "zip_code": "categorical"}, str(path))
        if (directory / "movies.dat").is_file():
            path = directory / "movies.dat"
            df = read_delimited(path, sep="::", names=["id", "title", "genres"], encoding="latin-1", quoting=False)
            require_columns(df, ["id", "title", "genres"], path)
            names, years = split_title_year(df["title"])
            frame = pd.DataFrame({"id": df["id"], "title": names, "year": years, "genres": df["genres"],
                                  LINE: df[LINE]})
            items = SideTable(frame, {"title": "text", "year": "numeric", "genres": "multi"}, str(path))
        return users, items
