"""RecLM's typed per-seed results: results.json's ``seeds`` entries read back into them and written out again
unchanged, key for key and in order, for every committed RecLM result; the report reads them typed."""

import json
from pathlib import Path

import numpy as np
import pytest

from recfuse.reclm.report import seed_note, summarize
from recfuse.reclm.results import MetricRow, ProfileReport, SeedResult, TeacherInfo

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted((ROOT / "benchmarks" / "results" / "reclm").rglob("results.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name)
def test_committed_seeds_round_trip_byte_for_byte(path):
    seeds = json.loads(path.read_text())["seeds"]
    typed = [SeedResult.from_json(s) for s in seeds]
    assert json.dumps([t.to_json() for t in typed]) == json.dumps(seeds)
    assert all(isinstance(r, MetricRow) for t in typed for r in t.rows)
    assert all(isinstance(p, ProfileReport) for t in typed for p in t.profiles.values())


def test_committed_results_exist():
    assert len(COMMITTED) >= 5


def test_typed_fields_and_unknown_keys():
    data = {"seed": 1, "llm_seed": 0, "split": {"test": 3},
            "rows": [{"backbone": "biasmf", "variant": "augment", "profiles": "mask", "setting": "full_shot",
                      "recall@20": 0.5, "ndcg@20": 0.25, "users": 4, "pool_items": 30, "tied_at_cut": {"20": 1},
                      "epoch_seconds": 0.1, "best_epoch": 2}],
            "profiles": {"mask": {"user": {"fallback": 0}, "item": {"fallback": 1}, "example_user": "x"}},
            "cold_items_test": 2,
            "teacher": {"model": {"model": "m", "backend": "hf"}, "answers": {}, "sampling": {"positives": 1}},
            "tuning": {"mask": {"dialogues": 3}}, "timings": {"profiles": 1.5}, "future_key": [1, 2]}
    r = SeedResult.from_json(data)
    assert (r.seed, r.llm_seed, r.cold_items_test) == (1, 0, 2)
    (row,) = r.rows
    assert row.key == ("biasmf", "augment", "mask", "full_shot") and row.label == "biasmf|augment|mask|full_shot"
    assert row.metrics == {"recall@20": 0.5, "ndcg@20": 0.25} and row.pool_items == 30
    assert isinstance(r.teacher, TeacherInfo) and r.teacher.kd_users is None and r.refinement is None
    assert r.profiles["mask"].llm is None and r.extra == {"future_key": [1, 2]}
    assert json.dumps(r.to_json()) == json.dumps(data)
    # a seed without a teacher (untuned profiles only) writes none
    assert "teacher" not in SeedResult(0, 0, {}).to_json() and "tuning" not in SeedResult(0, 0, {}).to_json()


def test_summary_reads_typed_seeds_and_per_user_values():
    def seed(s, base, aug):
        rows = [MetricRow("biasmf", v, p, "full_shot", {"recall@10": float(np.mean(x)), "ndcg@10": 0.1}, users=3,
                          pool_items=50, tied_at_cut={"10": 0}, epoch_seconds=1.0)
                for v, p, x in (("base", "-", base), ("augment", "reclm", aug))]
        per_user = {r.label: {"recall@10": np.asarray(x, float), "ndcg@10": np.full(3, 0.1)}
                    for r, x in zip(rows, (base, aug))}
        return SeedResult(s, 0, {}, rows=rows, per_user=per_user)

    seeds = [seed(0, [0, 0.5, 0.5], [0.5, 1, 0.5]), seed(1, [0, 0, 0.5], [0.5, 0.5, 1])]
    base, aug = summarize(seeds, [10])
    assert base["recall@10"] == pytest.approx(0.25) and "recall@10_impr" not in base
    assert aug["recall@10"] == pytest.approx(2 / 3) and aug["recall@10_impr"] == pytest.approx(2 / 3 / 0.25 - 1)
    assert 0 <= aug["recall@10_p_users"] <= 1 and "recall@10_p_seeds" in aug
    assert aug["tied_share"] == {"10": 0.0} and aug["pool_items"] == 50
    assert seed_note(seeds)[0].startswith("LLM side (similar users, tuning, profiles) from seed 0")


def test_p_over_users_averages_each_users_values_over_the_seeds(tmp_path):
    """The seeds share the split's users: one pair per user (values averaged over seeds), not one per (seed, user);
    retest_over_users recomputes a stored row's p the same way from per_user_seed<N>.npz."""
    from recfuse.eval.stats import paired_ttest
    from recfuse.io import save_npz
    from recfuse.reclm.report import retest_over_users

    rng = np.random.default_rng(0)
    base_u = rng.random(40)
    gain_u = rng.normal(0.05, 0.2, 40)
    seeds = []
    for s in range(3):
        base = base_u + rng.normal(0, 0.01, 40)
        aug = base_u + gain_u + rng.normal(0, 0.01, 40)
        rows = [MetricRow("biasmf", v, p, "full_shot", {"recall@10": float(np.mean(x)), "ndcg@10": 0.1}, users=40)
                for v, p, x in (("base", "-", base), ("augment", "reclm", aug))]
        per_user = {r.label: {"recall@10": x, "ndcg@10": np.full(40, 0.1)} for r, x in zip(rows, (base, aug))}
        seeds.append(SeedResult(s, 0, {}, rows=rows, per_user=per_user))
        save_npz(tmp_path / f"per_user_seed{s}.npz", **{f"{k}__recall@10": v["recall@10"] for k, v in per_user.items()})
    _, aug_row = summarize(seeds, [10])
    mean = [np.mean([s.per_user[k]["recall@10"] for s in seeds], axis=0)
            for k in ("biasmf|augment|reclm|full_shot", "biasmf|base|-|full_shot")]
    assert aug_row["recall@10_p_users"] == pytest.approx(paired_ttest(*mean)["p"])
    stale = {**aug_row, "recall@10_p_users": 1e-9}
    (fixed,) = retest_over_users([stale], tmp_path, [0, 1, 2])
    assert fixed["recall@10_p_users"] == pytest.approx(aug_row["recall@10_p_users"])
    assert retest_over_users([stale], tmp_path, [0, 1, 2, 3]) == [stale]  # a seed's file missing: unchanged
