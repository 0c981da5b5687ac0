"""Dataset loaders: one :class:`DatasetFormat` per file format, and :func:`load_dataset` by name or path.

Names: ``ml-100k`` (downloaded copy, else the copy shipped in the ``recbole`` wheel, offline),
``ml-1m``, ``bookcrossing``, ``mind-small``, ``netflix`` (after ``recfuse data fetch NAME``), and
``synthetic``. Paths: a folder in any format below (detected from its files), or a single interaction file
of one (read in the format of its folder, or ``format``; the folder's side files, if any, come with it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from recfuse.data.dataset import Dataset
from recfuse.data.fetch import DATASETS, dataset_dir
from recfuse.data.loaders.base import DatasetFormat
from recfuse.data.loaders.bookcrossing import BookCrossing
from recfuse.data.loaders.csv import SPEC_FILE, CsvFormat, CsvSpec
from recfuse.data.loaders.mind import MIND
from recfuse.data.loaders.movielens import MovieLens1M, MovieLens100K
from recfuse.data.loaders.netflix import Netflix
from recfuse.data.loaders.recbole import RecBoleAtomic
from recfuse.data.synthetic import make_synthetic
from recfuse.errors import ConfigError, DataError

FORMATS: dict[str, type[DatasetFormat]] = {
    f.name: f for f in (CsvFormat, MovieLens100K, MovieLens1M, RecBoleAtomic, MIND, Netflix, BookCrossing)
}

__all__ = ["FORMATS", "CsvSpec", "DatasetFormat", "detect_format", "load_dataset", "recbole_ml100k_dir"]


def recbole_ml100k_dir() -> Path | None:
    """The MovieLens-100K atomic files shipped inside the ``recbole`` wheel, if installed."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"
    return path if (path / "ml-100k.inter").is_file() else None


def detect_format(directory: Path) -> DatasetFormat:
    """The format whose files are in ``directory``."""
    for cls in FORMATS.values():
        fmt = cls()
        if fmt.detect(directory):
            return fmt
    raise DataError("no known dataset files here (looked for dataset.yaml, u.data, ratings.dat, *.inter, "
                    "behaviors.tsv, combined_data_*.txt, BX-Book-Ratings.csv)", path=directory)


def _resolve_name(name: str) -> tuple[Path, str]:
    folder = dataset_dir(name)
    if folder.is_dir() and any(folder.iterdir()):
        return folder, name
    if name == "ml-100k":
        shipped = recbole_ml100k_dir()
        if shipped is not None:
            return shipped, name
        raise DataError("MovieLens-100K is neither downloaded nor installed: run `recfuse data fetch ml-100k` "
                        "or `pip install --no-deps recbole` (its wheel ships a copy)")
    raise DataError(f"dataset {name!r} is not downloaded yet: run `recfuse data fetch {name}`"
                    + (f" ({DATASETS[name].manual})" if DATASETS[name].manual else ""))


def load_dataset(name_or_path: str | Path, format: str | None = None, *, name: str | None = None,
                 splits: dict[str, str] | None = None, csv: CsvSpec | dict | None = None,
                 **options: Any) -> Dataset:
    """Load a dataset.

    Args:
        name_or_path: a known name (``ml-100k``, ``ml-1m``, ``bookcrossing``, ``mind-small``,
            ``netflix``, ``synthetic``) or a folder / file.
        format: force a format (``recbole``, ``ml-100k-raw``, ``ml-1m-raw``, ``bookcrossing``, ``mind``,
            ``netflix``, ``csv``) instead of detecting it.
        name: the dataset's display name (default: the folder name).
        splits: predefined ``{'train': file, 'valid': file, 'test': file}`` relative to the folder.
        csv: a column mapping for plain CSV files (instead of a ``dataset.yaml``).
        options: format options (e.g. ``explicit_only``, ``kcore`` for Book-Crossing).
    """
    key = str(name_or_path)
    if key == "synthetic":
        return make_synthetic(**options)
    path = Path(key).expanduser()
    named_file = path if path.is_file() else None
    if key in DATASETS and not path.exists():
        path, name = _resolve_name(key)[0], name or key
    if not path.exists():
        raise DataError(f"no such dataset or path (known names: synthetic, {', '.join(DATASETS)})", path=key)
    if path.is_file():
        # the named file is what is read (a dataset.yaml names the folder's files itself)
        if not (csv is None and path.name == SPEC_FILE):
            splits = splits or {"all": path.name}
        path = path.parent
    if csv is not None:
        fmt: DatasetFormat = CsvFormat(csv if isinstance(csv, CsvSpec) else CsvSpec.from_dict(csv, "csv options"))
    elif format is not None:
        if format not in FORMATS:
            raise ConfigError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
        fmt = FORMATS[format]()
    else:
        try:
            fmt = detect_format(path)
        except DataError as e:
            if named_file is None:
                raise
            raise DataError(f"{e}; nothing says how to read {named_file.name}: name its format, or give a csv "
                            "column mapping") from None
    display = name or path.name
    return fmt.load(path, display, splits=splits, **options)
