"""The report's analysis by long-tail group: thirds of test users by l_u within each seed, tested over users."""

import numpy as np
import pytest

from recfuse.llama4rec.config import Llama4RecConfig
from recfuse.llama4rec.report import LONG_TAIL, long_tail_rows
from recfuse.llama4rec.results import SeedResult


def seed_result(seed: int, n: int = 90) -> SeedResult:
    """The mix gains 1.0 NDCG@3 on the tail third (lowest l_u) and loses 0.5 on the head third."""
    rng = np.random.default_rng(seed)
    l_u = rng.permutation(np.log1p(np.arange(n, dtype=float)))
    base = rng.random(n) * 0.1
    third = np.argsort(np.argsort(l_u)) * 3 // n  # 0 tail, 1 middle, 2 head
    mixed = base + np.where(third == 0, 1.0, np.where(third == 2, -0.5, 0.0)) + rng.normal(0, 0.01, n)
    r = SeedResult(seed, {})
    r.per_user = {"base": {"ndcg@3": base}, "llama4rec": {"ndcg@3": mixed}, LONG_TAIL: {"l_u": l_u}}
    return r


def test_long_tail_groups_show_where_the_mix_gains_and_loses():
    cfg = Llama4RecConfig(variants=["base", "llama4rec"])
    rows = long_tail_rows(cfg, [seed_result(0), seed_result(1)])
    by = {r["group"]: r for r in rows}
    assert [r["group"] for r in rows] == ["tail", "middle", "head"] and all(r["users"] == 30 for r in rows)
    assert by["tail"]["gain"] == pytest.approx(1.0, abs=0.01) and by["tail"]["p"] < 1e-9
    assert by["head"]["gain"] == pytest.approx(-0.5, abs=0.01)
    assert abs(by["middle"]["gain"]) < 0.01
    # results from before the coefficients were kept: no analysis, not an error
    old = seed_result(2)
    del old.per_user[LONG_TAIL]
    assert long_tail_rows(cfg, [old]) == []


def test_for_ratings_a_smaller_error_is_a_gain():
    cfg = Llama4RecConfig(task="rating", backbone="deepfm", variants=["base", "llama4rec"], select_metric="rmse")
    r = SeedResult(0, {})
    l_u = np.linspace(0, 3, 30)
    r.per_user = {"base": {"se": np.ones(30)}, "llama4rec": {"se": np.full(30, 0.5)}, LONG_TAIL: {"l_u": l_u}}
    assert all(row["gain"] == pytest.approx(0.5) for row in long_tail_rows(cfg, [r]))
