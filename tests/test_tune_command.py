import json

import pytest

from recfuse.llm.tuning import read_dialogues, write_dialogues
from recfuse.errors import DataError


def test_dialogues_round_trip(tmp_path):
    d = [[{"role": "user", "content": "Rate it"}, {"role": "assistant", "content": "4"}]]
    write_dialogues(tmp_path / "d.jsonl", d)
    assert read_dialogues(tmp_path / "d.jsonl") == d


def test_bad_dialogue_line_is_named(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"d\.jsonl:2: not a dialogue"):
        read_dialogues(p)
    p.write_text(json.dumps({"messages": [{"role": "user"}]}) + "\n")
    with pytest.raises(DataError, match=r"d\.jsonl:1: not a dialogue \(each message needs"):
        read_dialogues(p)
