"""Each kind of bad input ends in one clear error naming the file, line or field."""

import re
from pathlib import Path

import numpy as np
import pytest

from recfuse.data import leave_one_out, load_dataset, make_split, make_synthetic
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
    with pytest.raises(DataError, match=r"user '1' rated item '10' at time 881250949 twice, differently \(2 and 5, in u\.data:1 and u\.data:4\)"):
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


# -- timestamps, ids, single files, and a quote left open -------------------------------------------------------------


def csv_folder(tmp_path, rows, extra=""):
    write(tmp_path, "r.csv", "u,i,t\n" + rows)
    write(tmp_path, "dataset.yaml", "interactions: r.csv\nuser: u\nitem: i\ntimestamp: t\n" + extra)
    return tmp_path


@pytest.mark.parametrize("value", ["inf", "1e400", "-inf"])
def test_a_non_finite_timestamp_in_a_csv_is_refused_naming_its_line(tmp_path, value):
    csv_folder(tmp_path, f"1,10,100\n1,11,{value}\n2,12,300\n")
    with pytest.raises(DataError, match=rf"r\.csv:3, field 't': not a finite number: '{re.escape(value)}'"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("value, what", [("30O", "not a number: '30O'"), ("", "missing value"),
                                         ("NULL", "missing value")])
def test_one_bad_entry_in_a_numeric_timestamp_column_is_named_not_the_first_good_one(tmp_path, value, what):
    csv_folder(tmp_path, f"1,10,100\n1,11,200\n2,10,{value}\n2,12,300\n")
    with pytest.raises(DataError, match=rf"r\.csv:4, field 't': {what}"):
        load_dataset(tmp_path)


def test_dates_with_and_without_a_time_zone_are_read_as_utc(tmp_path):
    csv_folder(tmp_path, "1,10,2020-01-01T02:00:00+02:00\n1,11,2020-01-01\n1,12,01/02/2020\n")
    assert load_dataset(tmp_path).interactions.timestamp.tolist() == [1577836800.0, 1577836800.0, 1577923200.0]


def test_a_timestamp_format_is_used_even_where_dates_look_like_numbers(tmp_path):
    csv_folder(tmp_path, "1,10,20200101\n1,11,20200102\n", extra="timestamp_format: '%Y%m%d'\n")
    assert load_dataset(tmp_path).interactions.timestamp.tolist() == [1577836800.0, 1577923200.0]


def test_a_quote_left_open_is_refused_naming_the_line_it_opens_on(tmp_path):
    """A stray quote would swallow the next line into one id: one interaction fewer, nothing said."""
    csv_folder(tmp_path, '1,10,100\n1,"11,200\n2,10",300\n2,12,400\n')
    with pytest.raises(DataError, match=r"r\.csv:3, field 'i': a line break inside the id"):
        load_dataset(tmp_path)


def test_rows_after_a_quoted_field_spanning_lines_are_named_by_their_own_line(tmp_path):
    csv_folder(tmp_path, '1,10,100\n"a\nb",11,200\n1,12,300,9\n')
    with pytest.raises(DataError, match=r"r\.csv:5: expected 3 fields, found 4"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("layout", ["ml-100k-raw", "recbole", "netflix", "bookcrossing", "mind"])
def test_every_loader_refuses_an_empty_user_id(tmp_path, layout):
    """An empty id was one phantom user in every format but CSV."""
    files, line = {
        "ml-100k-raw": ({"u.data": "1\t10\t5\t100\n \t11\t4\t200\n"}, 2),
        "recbole": ({"x.inter": HEADER + "1\t10\t5\t100\n\t11\t4\t200\n"}, 3),
        "netflix": ({"combined_data_1.txt": "10:\n1,5,2005-01-01\n ,4,2005-01-02\n"}, 3),
        "bookcrossing": ({"BX-Book-Ratings.csv": '"User-ID";"ISBN";"Book-Rating"\n"1";"a";"5"\n"";"b";"4"\n'}, 3),
        "mind": ({"behaviors.tsv": "1\tU1\t11/11/2019 9:05:58 AM\t\tN1-1\n2\t\t11/11/2019 9:06:58 AM\t\tN2-1\n"}, 2),
    }[layout]
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(DataError, match=rf"\S+:{line}, field '[^']+': missing value"):
        load_dataset(tmp_path, format=layout, **({"kcore": 1} if layout == "bookcrossing" else {}))


def test_a_single_file_path_loads_that_file_not_its_folders_own(tmp_path):
    write(tmp_path, "u.data", ROWS)
    write(tmp_path, "u1.base", "9\t10\t5\t100\n9\t12\t4\t200\n")
    assert load_dataset(tmp_path / "u1.base").users.ids.tolist() == ["9"]
    assert load_dataset(tmp_path / "u1.base", format="ml-100k-raw").users.ids.tolist() == ["9"]
    assert load_dataset(tmp_path / "u.data").users.ids.tolist() == load_dataset(tmp_path).users.ids.tolist()


def test_a_single_csv_file_is_read_with_its_folders_mapping_and_dataset_yaml_names_the_folder(tmp_path):
    csv_folder(tmp_path, "1,10,100\n1,11,200\n")
    write(tmp_path, "other.csv", "u,i,t\n7,10,100\n8,11,200\n")
    assert load_dataset(tmp_path / "other.csv").users.ids.tolist() == ["7", "8"]
    assert load_dataset(tmp_path / "dataset.yaml").users.ids.tolist() == ["1"]


def test_a_single_file_of_no_known_format_says_how_to_read_it(tmp_path):
    write(tmp_path, "log.txt", "a,b\n")
    with pytest.raises(DataError, match=r"nothing says how to read log\.txt: name its format"):
        load_dataset(tmp_path / "log.txt")


def test_items_without_a_row_in_the_side_file_are_counted(tmp_path):
    csv_folder(tmp_path, "1,10,100\n1,11,200\n", extra="items: {file: items.csv, id: i, text: [title]}\n")
    write(tmp_path, "items.csv", "i,title\n10,Alien\n")
    assert any("1 items with interactions have no row in items.csv" in n for n in load_dataset(tmp_path).notes)


def test_repeat_only_test_users_are_counted_in_the_split_not_skipped_quietly(tmp_path, caplog):
    csv_folder(tmp_path, "a,A,1\na,B,2\na,A,3\nb,A,1\nb,B,2\nb,C,3\nc,B,1\nc,C,2\nc,B,3\n")
    split = make_split(load_dataset(tmp_path), "loo")
    assert split.summary()["test_users"] == 1
    assert split.summary()["test_users_with_repeats_only"] == 2
    assert "2 user(s) of the test part are not evaluated" in caplog.text


def test_a_validation_file_emptied_by_dropping_cold_users_is_an_error_not_carved_from_training(tmp_path):
    rows = {"train": [(u, i, 1) for u in (1, 2) for i in (1, 2, 3)], "valid": [(7, 1, 2)], "test": [(1, 4, 3)]}
    for part, part_rows in rows.items():
        (tmp_path / f"{part}.csv").write_text("u,i,t\n" + "".join(f"{u},{i},{t}\n" for u, i, t in part_rows))
    (tmp_path / "dataset.yaml").write_text("interactions: {train: train.csv, valid: valid.csv, test: test.csv}\n"
                                           "user: u\nitem: i\ntimestamp: t\n")
    with pytest.raises(DataError, match="no validation interaction: each of the 1 interaction.s. of the dataset's "
                                        "validation file is of a user without training interactions"):
        make_split(load_dataset(tmp_path), "predefined", drop_cold_users=True)


def test_mind_click_histories_precede_the_whole_period_not_only_their_users_first_impression(tmp_path):
    """A history stamped just before its user's (late) first impression fell inside the period, so a temporal
    split could put clicks made before it into validation or test."""
    write(tmp_path, "behaviors.tsv", "1\tU1\t11/11/2019 9:00:00 AM\t\tN1-1 N2-0\n"
                                     "2\tU2\t11/15/2019 5:00:00 PM\tN9\tN2-1\n")
    ds = load_dataset(tmp_path)
    history = ds.interactions.item == ds.items.index(["N9"])[0]
    assert ds.interactions.timestamp[history].max() < ds.interactions.timestamp[~history].min()
