"""benchmarks/sequential_last_item.py: what the most recent item adds; trained models kept and reloaded."""

import numpy as np
import pytest

from recfuse.models.sequential import Sequences

from tests.benchmarks import load_benchmark


def load():
    return load_benchmark("sequential_last_item.py")


def test_without_last_item_drops_each_users_last():
    seqs = Sequences(np.array([1, 2, 3, 4, 5]), np.array([0, 3, 4, 4, 5]))  # [1 2 3], [4], [], [5]
    cut = load().without_last_item(seqs)
    assert [cut.of(u).tolist() for u in range(4)] == [[1, 2], [], [], []]


def test_analyses_trained_models_and_reloads_them(tmp_path):
    mod = load()
    args = ["--models", "sasrec", "--param", "epochs=1", "--param", "max_len=8", "--param", "hidden_size=8",
            "--saved", str(tmp_path / "models"), "--out", str(tmp_path / "r")]
    first = mod.main(args)
    row = first["models"]["sasrec"]["test"]
    assert 0 <= row["hr@10_without_last"] <= 1 and row["top10_train_count"] > 0 and row["target_train_count"] > 0
    assert row["ndcg@10"] != row["ndcg@10_without_last"]  # the last item changes the ranking
    assert (tmp_path / "models" / "sasrec" / "config.json").is_file()
    again = mod.main(args)  # loaded, not retrained: the same numbers
    assert again["models"] == first["models"]
    with pytest.raises(SystemExit, match="other settings"):
        mod.main(args[:-4] + ["--seed", "1"] + args[-4:])
    assert "| sasrec | valid |" in (tmp_path / "r.md").read_text()
