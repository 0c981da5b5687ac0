"""Downloading the public datasets into the cache, with checksums.

``recfuse data fetch NAME`` downloads, verifies and extracts into ``<cache>/datasets/NAME``. Where the
publisher gives no checksum, the SHA-256 of the first download is recorded beside it and every later
download must match it. Extraction is atomic: a crash leaves no half-extracted folder.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from recfuse.errors import ConfigError, DataError, RecfuseError
from recfuse.io import cache_dir, read_json, write_json


@dataclass(frozen=True)
class Source:
    url: str
    md5: str | None = None  # published checksum of the archive, if any
    subdir: str = ""  # folder inside the archive that holds the files


@dataclass(frozen=True)
class PublicDataset:
    name: str
    description: str
    sources: tuple[Source, ...]
    manual: str = ""  # instructions when the data cannot be downloaded automatically


DATASETS: dict[str, PublicDataset] = {
    "ml-100k": PublicDataset("ml-100k", "MovieLens-100K (GroupLens)", (
        Source("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723",
               "ml-100k"),)),
    "ml-1m": PublicDataset("ml-1m", "MovieLens-1M (GroupLens)", (
        Source("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906",
               "ml-1m"),)),
    "mind-small": PublicDataset("mind-small", "MIND-small news recommendation (Microsoft)", (
        Source("https://mind201910small.blob.core.windows.net/release/MINDsmall_train.zip", None, ""),
        Source("https://mind201910small.blob.core.windows.net/release/MINDsmall_dev.zip", None, "")),
        manual="Accept the MIND licence at https://msnews.github.io; if the links fail, unzip MINDsmall_train "
               "and MINDsmall_dev into <cache>/datasets/mind-small/{MINDsmall_train,MINDsmall_dev}/"),
    "bookcrossing": PublicDataset("bookcrossing", "Book-Crossing (Ziegler et al. 2005)", (
        Source("http://www2.informatik.uni-freiburg.de/~cziegler/BX/BX-CSV-Dump.zip", None, ""),),
        manual="If the original link is gone, put BX-Book-Ratings.csv, BX-Books.csv and BX-Users.csv into "
               "<cache>/datasets/bookcrossing/"),
    "netflix": PublicDataset("netflix", "Netflix Prize", (), manual=(
        "The Netflix Prize data needs a Kaggle login: download 'netflix-prize-data', then put "
        "combined_data_*.txt and movie_titles.csv into <cache>/datasets/netflix/")),
}


def dataset_dir(name: str) -> Path:
    return cache_dir() / "datasets" / name


def _download(url: str, dest: Path, progress: bool) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                      disable=not progress) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as e:
        raise RecfuseError(f"cannot download {url}: {e}") from None


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, source: Source, record: Path) -> str:
    """Check ``path`` against the published MD5, else against the SHA-256 recorded at the first download."""
    sha = _digest(path, "sha256")
    if source.md5 is not None:
        got = _digest(path, "md5")
        if got != source.md5:
            raise DataError(f"checksum mismatch: MD5 {got}, expected {source.md5} (from {source.url})", path=path)
        return sha
    known = read_json(record) if record.is_file() else {}
    if source.url in known and known[source.url] != sha:
        raise DataError(f"checksum mismatch: SHA-256 {sha}, first download had {known[source.url]}", path=path)
    known[source.url] = sha
    write_json(record, known)
    return sha


def fetch(name: str, force: bool = False, progress: bool = True) -> Path:
    """Download, verify and extract a public dataset; returns its folder (skips work already done)."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; fetchable: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    target = dataset_dir(name)
    if target.is_dir() and any(target.iterdir()) and not force:
        return target
    if not spec.sources:
        raise RecfuseError(f"{spec.description} cannot be downloaded automatically. {spec.manual}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        for source in spec.sources:
            archive = staging / source.url.rsplit("/", 1)[-1]
            _download(source.url, archive, progress)
            verify(archive, source, target.parent / f"{name}.sha256.json")
            sub = staging / archive.stem if len(spec.sources) > 1 else staging
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(sub / "_x")
            inner = sub / "_x" / source.subdir if source.subdir else sub / "_x"
            for item in inner.iterdir():
                shutil.move(str(item), sub / item.name)
            shutil.rmtree(sub / "_x", ignore_errors=True)
            archive.unlink()
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, RecfuseError) and spec.manual:
            raise RecfuseError(f"{e}. {spec.manual}") from None
        raise
    return target
