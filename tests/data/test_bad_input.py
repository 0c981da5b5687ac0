"""Each kind of bad input ends in one clear error naming the file, line or field."""

import re
from pathlib import Path

import numpy as np
import pytest

from recfuse.data import leave_one_out, load_dataset, make_synthetic
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


# ---- the rules of docs/data.md: encodings, numbers, ratings, duplicates ---------------------------------

ROWS = "1\t10\t5\t881250949\n1\t20\t4\t881250950\n2\t10\t3\t881250951\n"


def test_a_utf8_byte_order_mark_is_dropped_not_a_phantom_user(tmp_path):
    (tmp_path / "u.data").write_bytes(b"\xef\xbb\xbf" + ROWS.encode())
    ds = load_dataset(tmp_path)
    assert list(ds.users.ids) == ["1", "2"] and len(ds.interactions) == 3


def test_a_utf16_file_with_its_byte_order_mark_is_read(tmp_path):
    (tmp_path / "x.inter").write_bytes((HEADER + "1\t2\t3\t4\n5\t6\t2\t7\n").encode("utf-16"))
    ds = load_dataset(tmp_path)
    assert list(ds.users.ids) == ["1", "5"] and list(ds.interactions.rating) == [3, 2]


def test_a_binary_file_is_refused_naming_the_line(tmp_path):
    (tmp_path / "u.data").write_bytes(ROWS.encode() + b"3\t\x00\x01\x02\t5\t1\n")
    with pytest.raises(DataError, match=r"u\.data:4: a NUL byte at byte \d+: a binary file"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("rating, what", [("inf", "not a finite number: 'inf'"), ("1e400", "not a finite number"),
                                          ("1e300", "rating '1e300' is above 1,000,000,000"),
                                          ("-3", "rating '-3' is negative")])
def test_a_rating_outside_0_to_max_is_refused_naming_file_and_line(tmp_path, rating, what):
    write(tmp_path, "u.data", ROWS + f"2\t20\t{rating}\t881250952\n")
    with pytest.raises(DataError, match=rf"u\.data:4, field 'rating': {what}"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("layout", ["recbole", "csv", "netflix"])
def test_every_rating_loader_refuses_a_negative_rating(tmp_path, layout):
    if layout == "recbole":
        write(tmp_path, "x.inter", HEADER + "1\t2\t-1\t4\n")
    elif layout == "csv":
        write(tmp_path, "r.csv", "u,i,r\na,b,-1\n")
        write(tmp_path, "dataset.yaml", "interactions: r.csv\nuser: u\nitem: i\nrating: r\n")
    else:
        write(tmp_path, "combined_data_1.txt", "1:\n5,-1,2005-09-06\n")
    with pytest.raises(DataError, match=r":2, field '.*': rating '-1' is negative"):
        load_dataset(tmp_path)


def test_a_non_finite_timestamp_is_refused(tmp_path):
    write(tmp_path, "u.data", ROWS + "2\t20\t4\tinf\n")
    with pytest.raises(DataError, match=r"u\.data:4, field 'timestamp': not a finite number"):
        load_dataset(tmp_path)


def test_duplicate_rows_are_kept_once_and_counted(tmp_path):
    """``cat u.data u.data > u.data``: each interaction once, the notes say so, and a split has test users."""
    write(tmp_path, "u.data", ROWS + ROWS + "2\t30\t4\t881250960\n2\t40\t4\t881250961\n")
    ds = load_dataset(tmp_path)
    assert len(ds.interactions) == 5
    assert any("3 duplicate interaction rows" in n for n in ds.notes)
    assert len(leave_one_out(ds).eval_users("test")) == 2


def test_the_same_interaction_with_two_ratings_is_refused(tmp_path):
    write(tmp_path, "u.data", ROWS + "1\t10\t2\t881250949\n")
    with pytest.raises(DataError, match=r"user '1' rated item '10' at time 881250949 twice, differently \(2 and 5\)"):
        load_dataset(tmp_path)


def test_repeated_interactions_at_different_times_are_kept(tmp_path):
    """Re-consumption (the same item again later) is data, not a duplicate."""
    write(tmp_path, "u.data", ROWS + "1\t10\t5\t881250999\n")
    assert len(load_dataset(tmp_path).interactions) == 4


def test_predefined_parts_are_compared_apart(tmp_path):
    """An interaction in the train file and the same in the test file is not merged across the parts."""
    write(tmp_path, "x.train.inter", HEADER + "1\t2\t3\t4\n1\t3\t3\t5\n")
    write(tmp_path, "x.test.inter", HEADER + "1\t2\t3\t4\n")
    assert len(load_dataset(tmp_path).interactions) == 3


def test_bookcrossing_merges_one_users_ratings_of_one_book(tmp_path):
    write(tmp_path, "BX-Book-Ratings.csv", '"User-ID";"ISBN";"Book-Rating"\n"1";"034545104x";"5"\n'
                                           '"1";"034545104X";"7"\n"2";"0001";"8"\n')
    ds = load_dataset(tmp_path, kcore=0)
    assert len(ds.interactions) == 2 and sorted(ds.interactions.rating.tolist()) == [7, 8]
    assert any("1 repeated ratings" in n for n in ds.notes)


@pytest.mark.parametrize("name", ["BX-Book-Ratings.csv", "BX-Books.csv", "BX-Users.csv"])
def test_bookcrossing_empty_files_are_named(tmp_path, name):
    import shutil
    shutil.copytree(Path(__file__).parents[1] / "fixtures" / "bookcrossing", tmp_path / "bx")
    (tmp_path / "bx" / name).write_text("")
    with pytest.raises(DataError, match=rf"{name.replace('.', '[.]')}: the file is empty"):
        load_dataset(tmp_path / "bx")


@pytest.mark.parametrize("fmt", ["mind", "netflix", "recbole"])
def test_a_forced_format_on_a_folder_of_another_names_what_it_looked_for(fmt):
    with pytest.raises(DataError, match=f"no ({fmt} files here|.inter file)"):
        load_dataset(Path(__file__).parents[1] / "fixtures" / "csv", format=fmt)


# ---- splits checked before training -----------------------------------------------------------------------

def _ds(tmp_path, rows):
    write(tmp_path, "u.data", "".join(f"{u}\t{i}\t4\t{t}\n" for u, i, t in rows))
    return load_dataset(tmp_path)


def test_a_split_without_validation_or_test_says_why(tmp_path):
    from recfuse.data.splits import make_split
    ds = _ds(tmp_path, [(1, 1, 1), (1, 2, 2), (2, 1, 1), (2, 2, 5)])  # two interactions per user: no validation
    with pytest.raises(DataError, match="no validation interaction: no user has 3 or more interactions"):
        make_split(ds, "loo")
    ds = _ds(tmp_path, [(1, 1, 1), (2, 2, 1), (3, 3, 1)])  # one each: no test either
    with pytest.raises(DataError, match="no test interaction: no user has 2 or more interactions"):
        make_split(ds, "loo")
    with pytest.raises(DataError, match=r"no test interaction: all timestamps are one value \(1\); the 0\.8/0\.9 "
                                        "quantiles are both 1, so validation and test are empty"):
        make_split(ds, "temporal")


def test_a_split_whose_test_items_are_all_known_has_no_test_user(tmp_path):
    from recfuse.data.splits import make_split
    # each user's last interaction repeats an earlier item (at another time): nothing new to rank
    ds = _ds(tmp_path, [(u, i, t) for u in (1, 2) for i, t in ((1, 1), (2, 2), (3, 3), (1, 4))])
    with pytest.raises(DataError, match="no user can be evaluated on the test part"):
        make_split(ds, "loo")


def test_a_predefined_split_without_validation_carves_it_from_training(caplog):
    from recfuse.data.splits import make_split, predefined
    ds = load_dataset(Path(__file__).parents[1] / "fixtures" / "mind-predefined")
    own = predefined(ds)
    with pytest.raises(DataError, match="too few training interactions for that share to take any"):
        make_split(ds, "predefined")  # 6 training interactions of 3 users: a tenth of each is none
    split = make_split(ds, "predefined", valid_share=0.5)
    assert len(split.valid) > 0 and len(split.train) + len(split.valid) == len(own.train)
    assert split.test.user.tolist() == own.test.user.tolist() and "carved" in split.protocol
    assert "no validation part" not in caplog.text
    # valid_share=0: kept without validation, allowed with a warning (no early stopping)
    split = make_split(ds, "predefined", valid_share=0)
    assert len(split.valid) == 0 and "no validation part" in caplog.text


# ---- degenerate splits: one error each, saying why -----------------------------------------------------------

def _two_days(tmp_path):
    """Four users, each with interactions on two snapshot days (timestamps 100 and 200)."""
    return _ds(tmp_path, [(u, i, 100 if i < 4 else 200) for u in (1, 2, 3, 4) for i in range(1, 6)])


def test_two_valued_timestamps_with_the_default_fractions_say_why(tmp_path):
    from recfuse.data.splits import make_split
    with pytest.raises(DataError, match=r"all timestamps fall in 2 distinct values; the 0\.8/0\.9 quantiles are both "
                                        r"200, so validation and test are empty: use --split predefined or "
                                        r"--valid-start/--test-start"):
        make_split(_two_days(tmp_path), "temporal")


def test_fractions_whose_test_quantile_is_the_last_timestamp_say_why(tmp_path):
    from recfuse.data.splits import make_split
    ds = _ds(tmp_path, [(u, i, t) for u in (1, 2) for i, t in ((1, 1), (2, 2), (3, 2), (4, 3), (5, 3))])
    with pytest.raises(DataError, match=r"the 0\.2/0\.7 quantiles are 1 and 3 \(the last timestamp\), so test is "
                                        "empty"):
        make_split(ds, "temporal", fractions=(0.2, 0.5, 0.3))


def test_cut_points_by_value(tmp_path):
    from recfuse.data.splits import make_split
    ds = _ds(tmp_path, [(u, i, t) for u in (1, 2) for i, t in ((1, 1), (2, 2), (3, 3), (4, 4))])
    split = make_split(ds, "temporal", valid_start=3, test_start=4, inclusive=True)  # [..3) [3, 4) [4..
    assert (len(split.train), len(split.valid), len(split.test)) == (4, 2, 2)
    with pytest.raises(DataError, match="leaves no training interaction: every interaction is at or after the "
                                        "validation start 1"):
        make_split(ds, "temporal", valid_start=1, test_start=3, inclusive=True)
    with pytest.raises(DataError, match=r"no test interaction: no interaction falls in the test period \(from 9; the "
                                        r"timestamps run from 1 to 4\)"):
        make_split(ds, "temporal", valid_start=3, test_start=9, inclusive=True)
    with pytest.raises(DataError, match=r"no validation interaction: no interaction falls in the validation period "
                                        r"\(from 3 to before 3"):
        make_split(ds, "temporal", valid_start=3, test_start=3, inclusive=True)
    with pytest.raises(ConfigError, match="need both"):
        make_split(ds, "temporal", valid_start=3, inclusive=True)


def _predefined(folder, train, test):
    folder.mkdir()
    tmp_path = folder
    (tmp_path / "train.csv").write_text("u,i,t\n" + "".join(f"{u},{i},{t}\n" for u, i, t in train))
    (tmp_path / "test.csv").write_text("u,i,t\n" + "".join(f"{u},{i},{t}\n" for u, i, t in test))
    (tmp_path / "dataset.yaml").write_text("interactions: {train: train.csv, test: test.csv}\nuser: u\nitem: i\n"
                                           "timestamp: t\n")
    return load_dataset(tmp_path)


def test_degenerate_predefined_splits_say_why(tmp_path):
    from recfuse.data.splits import make_split
    # one training interaction per user: nothing can be carved without taking a user's only one
    ds = _predefined(tmp_path / "a", [(1, 1, 1), (2, 2, 1)], [(1, 2, 2), (2, 1, 2)])
    with pytest.raises(DataError, match="no validation interaction: the dataset has no validation file, and a "
                                        "seeded 0.1 of each user's training interactions"):
        make_split(ds, "predefined")
    # every test interaction repeats an item its user already has: no one to evaluate
    ds = _predefined(tmp_path / "b", [(u, i, 1) for u in (1, 2) for i in (1, 2, 3)], [(1, 1, 2), (2, 2, 2)])
    with pytest.raises(DataError, match="no user can be evaluated on the test part of the predefined"):
        make_split(ds, "predefined")
    # every test interaction is of a user without training history (left out where they cannot be scored)
    ds = _predefined(tmp_path / "c", [(u, i, 1) for u in (1, 2, 5, 6) for i in (1, 2, 3)], [(3, 1, 2), (4, 2, 2)])
    assert len(make_split(ds, "predefined", valid_share=0.5).test) == 2
    with pytest.raises(DataError, match="no test interaction: each of the 2 interaction.s. of the dataset's test file "
                                        "is of a user without training interactions"):
        make_split(ds, "predefined", valid_share=0.5, drop_cold_users=True)


def test_leave_one_out_on_single_interaction_users_says_why(tmp_path):
    from recfuse.data.splits import make_split
    with pytest.raises(DataError, match="no test interaction: no user has 2 or more interactions"):
        make_split(_ds(tmp_path, [(1, 1, 1), (2, 2, 5)]), "loo")


def test_carving_validation_by_time_takes_the_latest_share(tmp_path):
    from recfuse.data.splits import make_split
    rows = [(u, (i + u) % 10 + 1, 10 * i + u) for u in (1, 2, 3) for i in range(1, 11)]  # items shared, times differ
    ds = _predefined(tmp_path / "a", rows, [(u, 11, 200) for u in (1, 2, 3)] + [(1, 2, 200)])
    split = make_split(ds, "predefined", valid_share=0.2)
    assert "latest 0.2" in split.info["validation"]
    assert split.valid.timestamp.min() > split.train.timestamp.max()
    assert len(split.train) + len(split.valid) == 30
