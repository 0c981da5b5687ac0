"""MIND news recommendation: behaviors.tsv + news.tsv.

Interactions are clicks: the clicked news of each impression at its time, and the user's click
history (which precedes the file's period) one second before the user's first impression. A folder
holding ``*_train`` and ``*_dev`` sub-folders (as MIND ships) loads as a predefined split: train and
dev (used as the test period; MIND's own test set has no labels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recfuse.data.dataset import SPLIT_CODES
from recfuse.data.loaders.base import DatasetFormat
from recfuse.data.readers import LINE, SideTable, read_delimited, to_timestamps
from recfuse.errors import DataError

BEHAVIOR_COLUMNS = ["impression_id", "user", "time", "history", "impressions"]
NEWS_COLUMNS = ["id", "category", "subcategory", "title", "abstract", "url", "title_entities", "abstract_entities"]


def _subdirs(directory: Path) -> dict[str, Path]:
    found = {}
    for sub in sorted(p for p in directory.iterdir() if p.is_dir() and (p / "behaviors.tsv").is_file()):
        low = sub.name.lower()
        if low.endswith("train"):
            found["train"] = sub
        elif low.endswith("dev") or low.endswith("valid"):
            found["test"] = sub
    return found


class MIND(DatasetFormat):
    name = "mind"
    description = "MIND news (behaviors.tsv, news.tsv), optionally *_train / *_dev sub-folders"

    def detect(self, directory: Path) -> bool:
        return (directory / "behaviors.tsv").is_file() or "train" in _subdirs(directory)

    def interaction_files(self, directory: Path) -> dict[str, Path]:
        if (directory / "behaviors.tsv").is_file():
            return {"all": directory / "behaviors.tsv"}
        return {part: sub / "behaviors.tsv" for part, sub in _subdirs(directory).items()}

    def read_interactions(self, path: Path, **options) -> pd.DataFrame:
        df = read_delimited(path, sep="\t", names=BEHAVIOR_COLUMNS, quoting=False, min_fields=3)
        times = to_timestamps(df, "time", path, fmt="%m/%d/%Y %I:%M:%S %p")
        users, items, stamps, is_history = [], [], [], []
        first_seen: dict[str, float] = {}
        for user, t, hist, imps, line in zip(df["user"], times, df["history"], df["impressions"], df[LINE]):
            first_seen[user] = min(t, first_seen.get(user, np.inf))
            for tok in imps.split():
                news, _, label = tok.rpartition("-")
                if label not in ("0", "1") or not news:
                    raise DataError(f"impression {tok!r} is not NEWSID-0 or NEWSID-1", path=path, line=int(line),
                                    field="impressions")
                if label == "1":
                    users.append(user)
                    items.append(news)
                    stamps.append(t)
                    is_history.append(False)
        history = {}
        for user, hist in zip(df["user"], df["history"]):
            if hist and user not in history:
                history[user] = hist.split()
        for user, hist in history.items():
            for news in hist:
                users.append(user)
                items.append(news)
                stamps.append(first_seen[user] - 1.0)
                is_history.append(True)
        return pd.DataFrame({"user": users, "item": items, "timestamp": stamps, "history": is_history})

    def combine(self, frames: list[pd.DataFrame]) -> pd.DataFrame:
        """A click seen in several parts (histories repeat across train and dev) is kept once, the
        earliest; history clicks precede every period, so they belong to train."""
        out = pd.concat(frames, ignore_index=True)
        if "split" in out:
            out.loc[out["history"], "split"] = SPLIT_CODES["train"]
        out = out.sort_values("timestamp", kind="stable").drop_duplicates(["user", "item"], keep="first")
        return out.drop(columns="history").reset_index(drop=True)

    def read_side(self, directory: Path, **options):
        paths = [directory / "news.tsv"] if (directory / "news.tsv").is_file() else \
            [sub / "news.tsv" for sub in _subdirs(directory).values() if (sub / "news.tsv").is_file()]
        if not paths:
            return None, None
        frames = [read_delimited(p, sep="\t", names=NEWS_COLUMNS, quoting=False, min_fields=4) for p in paths]
        news = pd.concat(frames, ignore_index=True).drop_duplicates("id")
        return None, SideTable(news[["id", "category", "subcategory", "title", "abstract", LINE]],
                               {"category": "categorical", "subcategory": "categorical", "title": "text",
                                "abstract": "text"}, str(paths[0]))
