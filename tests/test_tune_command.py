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


def test_a_tuning_is_cached_by_the_base_weights_not_the_base_folders_path(tmp_path, monkeypatch):
    """Other weights copied into the same folder reused the adapter tuned on the old ones."""
    from types import SimpleNamespace

    from recfuse.llm import tuning
    from recfuse.llm.config import LLMConfig
    from recfuse.llm.sft import SFTConfig

    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"old weights")
    trained = []

    def fake_train(base_dir, dialogues, out, cfg, progress=False, checkpoint_dir=None):
        trained.append((base_dir / "model.safetensors").read_bytes())
        out.mkdir(parents=True)
        (out / "adapter.bin").write_bytes(trained[-1])
        return SimpleNamespace(log={"seconds": 1.0})
    monkeypatch.setattr(tuning, "train_sft", fake_train)
    llm = LLMConfig(backend="hf", model=str(base))
    dialogues = [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]]
    first, _ = tuning.tune(llm, SFTConfig(), dialogues, "t")
    assert tuning.tune(llm, SFTConfig(), dialogues, "t")[0] == first and len(trained) == 1
    (base / "model.safetensors").write_bytes(b"new weights")
    adapter, _ = tuning.tune(llm, SFTConfig(), dialogues, "t")
    assert len(trained) == 2 and (adapter / "adapter.bin").read_bytes() == b"new weights"
    # the same weights in another folder (another machine's cache root, after `recfuse cache import`): reused
    elsewhere = tmp_path / "elsewhere" / "base"
    elsewhere.mkdir(parents=True)
    (elsewhere / "model.safetensors").write_bytes(b"new weights")
    assert tuning.tune(LLMConfig(backend="hf", model=str(elsewhere)), SFTConfig(), dialogues, "t")[0] == adapter
    assert len(trained) == 2
