"""MIND news recommendation: behaviors.tsv + news.tsv.

Interactions are clicks: the clicked news of each impression at its time, and the user's click
history (which precedes the file's period) one second before the file's first impression, so that a temporal
split never puts a click made before the period into validation or test. A user's click
of one news item is kept once, the earliest (histories repeat across train and dev; a news item clicked again
is not a second preference): the dataset's notes count the repeated clicks left out. A folder
holding ``*_train`` and ``*_dev`` sub-folders (as MIND ships) loads as a predefined split: train and
dev (used as the test period; MIND's own test set has no labels).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from recfuse.data.dataset import SPLIT_CODES
from recfuse.data.loaders.base import DatasetFormat
from recfuse.data.readers import LINE, SideTable, read_delimited, to_ids, to_timestamps
from recfuse.errors import DataError

log = logging.getLogger(__name__)

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

    def __init__(self) -> None:
        self.repeated = 0  # repeated clicks of one news item by one user, left out by combine

    def detect(self, directory: Path) -> bool:
        return (directory / "behaviors.tsv").is_file() or "train" in _subdirs(directory)

    def interaction_files(self, directory: Path) -> dict[str, Path]:
        if (directory / "behaviors.tsv").is_file():
            return {"all": directory / "behaviors.tsv"}
        return {part: sub / "behaviors.tsv" for part, sub in _subdirs(directory).items()}

    def read_interactions(self, path: Path, **options) -> pd.DataFrame:
        df = read_delimited(path, sep="\t", names=BEHAVIOR_COLUMNS, quoting=False, min_fields=3)
        times = to_timestamps(df, "time", path, fmt="%m/%d/%Y %I:%M:%S %p")
        period_start = float(times.min()) if len(times) else 0.0
        df = df.assign(user=to_ids(df, "user", path))
        users, items, stamps, is_history, lines = [], [], [], [], []
        for user, t, hist, imps, line in zip(df["user"], times, df["history"], df["impressions"], df[LINE]):
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
                    lines.append(line)
        history: dict[str, tuple[list[str], int]] = {}
        for user, hist, line in zip(df["user"], df["history"], df[LINE]):
            if hist and user not in history:
                history[user] = hist.split(), line
        for user, (hist, line) in history.items():
            for news in hist:
                users.append(user)
                items.append(news)
                stamps.append(period_start - 1.0)
                is_history.append(True)
                lines.append(line)
        return pd.DataFrame({"user": users, "item": items, "timestamp": stamps, "history": is_history, LINE: lines})

    def combine(self, frames: list[pd.DataFrame]) -> pd.DataFrame:
        """A click seen in several parts (histories repeat across train and dev) is kept once, the
        earliest; history clicks precede every period, so they belong to train."""
        out = pd.concat(frames, ignore_index=True)
        if "split" in out:
            out.loc[out["history"], "split"] = SPLIT_CODES["train"]
        first = out.sort_values("timestamp", kind="stable").drop_duplicates(["user", "item"], keep="first")
        # a history seen again in another part is the same clicks, not a repeat
        again = out[~out.index.isin(first.index)]
        self.repeated = int((~again["history"]).sum())
        return first.drop(columns="history").reset_index(drop=True)

    def finish(self, dataset, **options):
        if self.repeated:
            note = (f"{self.repeated} repeated clicks of a news item by the same user left out (the earliest click "
                    "is kept)")
            log.warning("%s: %s", dataset.source or dataset.name, note)
            dataset.notes.append(note)
        return dataset

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
