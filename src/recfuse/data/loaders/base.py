"""The shape every file format follows: find interaction files, read them, read side tables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from recfuse.data.dataset import SPLIT_CODES, Dataset
from recfuse.data.readers import FILE, SideTable, build_dataset
from recfuse.errors import ConfigError, DataError


class DatasetFormat:
    """A file format. Subclasses implement :meth:`detect`, :meth:`interaction_files`,
    :meth:`read_interactions` and, if the format has side files, :meth:`read_side`.

    ``read_interactions`` returns a frame with columns ``user, item`` and, where the format has them,
    ``rating`` and ``timestamp``.
    """

    name = "format"
    description = ""

    def detect(self, directory: Path) -> bool:
        raise NotImplementedError

    def interaction_files(self, directory: Path) -> dict[str, Path]:
        """``{'all': path}``, or ``{'train': ..., 'valid': ..., 'test': ...}`` for a predefined split."""
        raise NotImplementedError

    def read_interactions(self, path: Path, **options: Any) -> pd.DataFrame:
        raise NotImplementedError

    def read_side(self, directory: Path, **options: Any) -> tuple[SideTable | None, SideTable | None]:
        return None, None

    def combine(self, frames: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(frames, ignore_index=True)

    def finish(self, dataset: Dataset, **options: Any) -> Dataset:
        """Format-specific post-processing (e.g. BookCrossing's 5-core filter)."""
        return dataset

    def load(self, directory: Path, name: str, splits: Mapping[str, str | Path] | None = None,
             **options: Any) -> Dataset:
        """Load a directory; ``splits`` names predefined train / valid / test files (relative to it)."""
        directory = Path(directory)
        files = {k: directory / v for k, v in splits.items()} if splits else self.interaction_files(directory)
        if not files:  # e.g. --format mind on a folder of another format
            raise DataError(f"no {self.name} files here (the {self.name} format: {self.description})", path=directory)
        for part in files:
            if part != "all" and part not in SPLIT_CODES:
                raise ConfigError(f"unknown split part {part!r} (use train, valid, test)")
        if "all" in files and len(files) > 1:
            raise ConfigError("give one file of all interactions ('all') or a split's files (train, valid, test), "
                              "not both")
        if splits and "all" not in files and "train" not in files:
            raise ConfigError("a predefined split needs at least a 'train' file")
        frames = []
        for part, path in files.items():
            frame = self.read_interactions(path, **options)
            if len(frame) == 0:
                raise DataError("no interactions in the file", path=path)
            frame = frame.assign(**{FILE: path.name})  # where each row came from, for errors naming it
            if part != "all":
                frame = frame.assign(split=SPLIT_CODES[part])
            frames.append(frame)
        users, items = self.read_side(directory, **options)
        dataset = build_dataset(name, self.combine(frames), users=users, items=items, source=str(directory))
        return self.finish(dataset, **options)


def find_one(directory: Path, *patterns: str) -> Path | None:
    """The first file in ``directory`` matching one of ``patterns`` (glob), or None."""
    for pattern in patterns:
        hits = sorted(directory.glob(pattern))
        if hits:
            return hits[0]
    return None
