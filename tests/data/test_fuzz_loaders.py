"""A generated corpus of damaged input files, per loader format (hypothesis): every damaged copy of a fixture
either loads into a dataset that keeps the rules of docs/data.md, or ends in one RecfuseError; never a
traceback, never a dataset with a phantom id or a non-finite rating.

Bounded: a fixed number of examples per format, derandomized (the same corpus on every run and machine)."""

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recfuse.data import load_dataset
from recfuse.data.readers import MAX_RATING
from recfuse.errors import RecfuseError

FIXTURES = Path(__file__).parents[1] / "fixtures"
#: each format's fixture folder and the files a damage may hit (interactions first)
FORMATS = {
    "ml-100k-raw": ["u.data", "u.item", "u.user"],
    "ml-1m-raw": ["ratings.dat", "movies.dat", "users.dat"],
    "recbole": ["tiny.inter", "tiny.item", "tiny.user"],
    "csv": ["ratings.csv", "movies.csv", "dataset.yaml"],
    "mind": ["behaviors.tsv", "news.tsv"],
    "netflix": ["combined_data_1.txt", "movie_titles.csv"],
    "bookcrossing": ["BX-Book-Ratings.csv", "BX-Books.csv", "BX-Users.csv"],
}
SNIPPETS = [b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b"\r", b"\n", b"\t", b",", b";", b"::", b"|", b'"', b"inf", b"-1",
            b"1e300", b"nan", b"NULL", b"\xe9", b"\x8f\xff", b"1:", b"\n\n", b"N1-1", b"x" * 50]


@st.composite
def damages(draw, size: int):
    """One damage of a file of ``size`` bytes: (kind, position, bytes)."""
    kind = draw(st.sampled_from(["truncate", "insert", "overwrite", "delete_line", "repeat_line", "repeat_file",
                                 "empty", "binary", "bom", "utf16"]))
    pos = draw(st.integers(0, max(size, 1)))
    data = draw(st.one_of(st.sampled_from(SNIPPETS), st.binary(min_size=1, max_size=8)))
    return kind, pos, data


def damage(raw: bytes, kind: str, pos: int, data: bytes) -> bytes:
    lines = raw.split(b"\n")
    line = pos % max(len(lines), 1)
    if kind == "truncate":
        return raw[:pos]
    if kind == "insert":
        return raw[:pos] + data + raw[pos:]
    if kind == "overwrite":
        return raw[:pos] + data + raw[pos + len(data):]
    if kind == "delete_line":
        return b"\n".join(lines[:line] + lines[line + 1:])
    if kind == "repeat_line":
        return b"\n".join(lines[:line + 1] + lines[line:])
    if kind == "repeat_file":
        return raw + raw
    if kind == "empty":
        return b""
    if kind == "binary":
        return bytes((b * 37 + pos) % 256 for b in data * 40)
    if kind == "bom":
        return b"\xef\xbb\xbf" + raw
    return raw.decode("latin-1").encode("utf-16")


def check_loads_or_refuses(fmt: str, target: str, kind: str, pos: int, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / fmt
        shutil.copytree(FIXTURES / fmt, folder)
        path = folder / target
        path.write_bytes(damage(path.read_bytes(), kind, pos, data))
        try:
            ds = load_dataset(folder, **({"kcore": 0} if fmt == "bookcrossing" else {}))
        except RecfuseError:
            return
        # loaded: it must keep the rules
        inter = ds.interactions
        assert len(inter) > 0 and ds.n_users > 0 and ds.n_items > 0
        for ids in (ds.users.ids, ds.items.ids):
            assert not any("\ufeff" in str(i) or "\x00" in str(i) or "ï»¿" in str(i) for i in ids)
        if inter.rating is not None:
            assert np.isfinite(inter.rating).all() and (inter.rating >= 0).all() and (inter.rating <= MAX_RATING).all()
        if inter.timestamp is not None:
            assert np.isfinite(inter.timestamp).all()
        keys = np.column_stack([inter.user, inter.item] + ([inter.timestamp] if inter.timestamp is not None else [])
                               + ([ds.predefined_split] if ds.predefined_split is not None else []))
        assert len(np.unique(keys, axis=0)) == len(keys), "duplicate interactions left in"
        ds.describe()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_damaged_files_load_correctly_or_end_in_one_clear_error(fmt):
    sizes = {t: (FIXTURES / fmt / t).stat().st_size for t in FORMATS[fmt]}

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(FORMATS[fmt]).flatmap(lambda t: st.tuples(st.just(t), damages(sizes[t]))))
    def run(case):
        target, (kind, pos, data) = case
        check_loads_or_refuses(fmt, target, kind, pos, data)

    run()
