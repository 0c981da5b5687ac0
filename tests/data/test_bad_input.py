"""Each kind of bad input ends in one clear error naming the file, line or field."""

import re

import numpy as np
import pytest

from recfuse.data import load_dataset, make_synthetic
from recfuse.data.splits import kcore
from recfuse.errors import ConfigError, DataError, UnknownIdError

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_malformed_line_names_file_and_line(tmp_path):
    write(tmp_path, "x.inter", HEADER + "1\t2\t3\t4\n1\t3\t4\t5\t6\n")
    with pytest.raises(DataError, match=r"x\.inter:3: expected 4 fields, found 5"):
        load_dataset(tmp_path)


def test_truncated_line(tmp_path):
    write(tmp_path, "x.inter", HEADER + "1\t2\t3\t4\n1\t3")
    with pytest.raises(DataError, match=r"x\.inter:3: truncated line: 2 of 4 fields \(missing rating:float"):
        load_dataset(tmp_path)


def test_truncated_raw_movielens(tmp_path):
    write(tmp_path, "u.data", "1\t10\t5\t881250949\n1\t20\n")
    with pytest.raises(DataError, match=r"u\.data:2: truncated line"):
        load_dataset(tmp_path)


def test_missing_column(tmp_path):
    write(tmp_path, "r.csv", "user,item\na,b\n")
    write(tmp_path, "dataset.yaml", "interactions: r.csv\nrating: stars\n")
    with pytest.raises(DataError, match=r"r\.csv, field 'stars': missing column \(the file has: user, item\)"):
        load_dataset(tmp_path)


def test_missing_id_column_in_recbole(tmp_path):
    write(tmp_path, "x.inter", "uid:token\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match=r"x\.inter, field 'user_id': missing column"):
        load_dataset(tmp_path)


def test_non_numeric_rating(tmp_path):
    write(tmp_path, "u.data", "1\t10\t5\t881250949\n1\t20\tfive\t881250950\n")
    with pytest.raises(DataError, match=r"u\.data:2, field 'rating': not a number: 'five'"):
        load_dataset(tmp_path)


def test_bad_header_type(tmp_path):
    write(tmp_path, "x.inter", "user_id:token\titem_id:string\n1\t2\n")
    with pytest.raises(DataError, match=r"x\.inter:1, field 'item_id:string': header entry"):
        load_dataset(tmp_path)


def test_bad_timestamp(tmp_path):
    write(tmp_path, "r.csv", "u,i,t\na,b,2020-01-01\na,c,yesterday\n")
    write(tmp_path, "dataset.yaml", "interactions: r.csv\nuser: u\nitem: i\ntimestamp: t\n")
    with pytest.raises(DataError, match=r"r\.csv:3, field 't': not a timestamp or date: 'yesterday'"):
        load_dataset(tmp_path)


def test_empty_file(tmp_path):
    write(tmp_path, "u.data", "")
    with pytest.raises(DataError, match=r"u\.data: the file is empty"):
        load_dataset(tmp_path)


def test_not_utf8(tmp_path):
    (tmp_path / "x.inter").write_bytes(HEADER.encode() + b"1\t\xff\t3\t4\n")
    with pytest.raises(DataError, match=r"x\.inter:2: not valid utf-8 text"):
        load_dataset(tmp_path)


def test_duplicate_side_id(tmp_path):
    write(tmp_path, "u.data", "1\t10\t5\t881250949\n")
    write(tmp_path, "u.user", "1|24|M|technician|85711\n1|25|F|other|1\n")
    with pytest.raises(DataError, match=r"u\.user:2, field 'id': duplicate id '1'"):
        load_dataset(tmp_path)


def test_unknown_id():
    ds = make_synthetic(n_users=10, n_items=20, seed=0)
    with pytest.raises(UnknownIdError, match=re.escape("unknown user id(s): 'nobody' (1 in all)")):
        ds.users.index(["u1", "nobody"])
    with pytest.raises(UnknownIdError, match="unknown item id"):
        ds.items.index("i999")


def test_empty_after_filtering():
    ds = make_synthetic(n_users=10, n_items=20, interactions_per_user=5, seed=0)
    with pytest.raises(DataError, match=r"empty after 50/50-core filtering"):
        kcore(ds, 50)
    with pytest.raises(DataError, match="no interactions are left after filtering"):
        ds.filter(np.zeros(len(ds.interactions), dtype=bool))


def test_unknown_dataset_name_and_path():
    with pytest.raises(DataError, match="no such dataset or path"):
        load_dataset("no-such-dataset")


def test_unknown_format(tmp_path):
    write(tmp_path, "notes.txt", "hello\n")
    with pytest.raises(DataError, match="no known dataset files here"):
        load_dataset(tmp_path)
    with pytest.raises(ConfigError, match="unknown format 'xml'"):
        load_dataset(tmp_path, format="xml")


def test_bad_dataset_yaml(tmp_path):
    write(tmp_path, "dataset.yaml", "interactions: r.csv\ncolumns: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) columns"):
        load_dataset(tmp_path)


def test_bad_mind_impression(tmp_path):
    write(tmp_path, "behaviors.tsv", "1\tU1\t11/15/2019 8:55:22 AM\tN1\tN3-1 N4-x\n")
    with pytest.raises(DataError, match=r"behaviors\.tsv:1, field 'impressions': impression 'N4-x'"):
        load_dataset(tmp_path)


def test_bad_netflix_header(tmp_path):
    write(tmp_path, "combined_data_1.txt", "1:\n5,3,2005-09-06\nmovie two\n")
    with pytest.raises(DataError, match=r"combined_data_1\.txt:3: expected 'MovieID:'"):
        load_dataset(tmp_path)
