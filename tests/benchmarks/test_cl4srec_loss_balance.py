"""benchmarks/cl4srec_loss_balance.py: gradient norms of CL4SRec's two losses, on ML-100K with a tiny encoder."""

import math

from tests.benchmarks import load_benchmark


def test_measures_both_gradients_at_each_checkpoint(tmp_path):
    mod = load_benchmark("cl4srec_loss_balance.py")
    report = mod.main(["--epochs", "0", "1", "--batches", "2", "--settings", "dot:0.5", "cos:0.5",
                       "--param", "max_len=8", "--param", "hidden_size=8", "--out", str(tmp_path / "b")])
    rows = report["rows"]
    assert [(r["epochs"], r["similarity"]) for r in rows] == [(0, "dot"), (0, "cos"), (1, "dot"), (1, "cos")]
    for r in rows:
        assert r["next_item_grad"] > 0 and r["contrastive_grad"] > 0 and math.isfinite(r["contrastive_loss"])
        assert math.isclose(r["ratio"], r["contrastive_grad"] / r["next_item_grad"])
    # the same batches for every setting: the next-item gradient does not depend on the contrastive setting
    assert math.isclose(rows[0]["next_item_grad"], rows[1]["next_item_grad"])
    assert rows[0]["next_item_grad"] != rows[2]["next_item_grad"]  # training moved the encoder
    assert "| 1 | cos | 0.5 |" in (tmp_path / "b.md").read_text()
