import json

import numpy as np
import pytest
from scipy import stats

from recfuse.eval.report import markdown_table, write_report
from recfuse.eval.stats import mean_std, paired_ttest, relative_improvement
from recfuse.io import write_json


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([5.0]) == (5.0, 0.0)


def test_paired_ttest_matches_hand_computation():
    a, b = np.array([0.5, 0.6, 0.7, 0.9]), np.array([0.4, 0.6, 0.5, 0.6])
    d = a - b
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    res = paired_ttest(a, b)
    assert res["t"] == pytest.approx(t)
    assert res["p"] == pytest.approx(2 * stats.t.sf(abs(t), df=3))
    assert paired_ttest(a, a)["p"] == 1.0
    with pytest.raises(ValueError, match="one length"):
        paired_ttest(a, b[:2])


def test_relative_improvement():
    assert relative_improvement(0.0645, 0.0455) == pytest.approx(0.0645 / 0.0455 - 1)
    assert relative_improvement(1.0306, 1.0487, lower_is_better=True) == pytest.approx((1.0487 - 1.0306) / 1.0487)


def test_write_report(tmp_path):
    rows = [{"model": "mf", "hr@3": 0.05}, {"model": "lightgcn", "hr@3": 0.06, "note": "x"}]
    write_report(tmp_path, rows, config={"seed": 0}, title="t")
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == rows
    assert "| lightgcn | 0.0600 | x |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "results.csv").read_text().splitlines()[0] == "model,hr@3,note"
    assert "seed: 0" in (tmp_path / "config.yaml").read_text()
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave nothing behind
    assert markdown_table([]) == "(no rows)\n"


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert not list(tmp_path.glob(".*tmp"))


def test_finished_run_needs_the_same_config(tmp_path):
    from recfuse.eval.report import finished_run
    config = {"seeds": (0, 1), "lr": 0.01, "progress": True}
    assert finished_run(tmp_path, config) is None  # nothing written yet
    write_report(tmp_path, [{"variant": "base", "hr@3": 0.5}], config=config)
    assert finished_run(tmp_path, config)["rows"] == [{"variant": "base", "hr@3": 0.5}]
    assert finished_run(tmp_path, {**config, "progress": False}) is not None  # does not change results
    assert finished_run(tmp_path, {**config, "lr": 0.02}) is None
    assert finished_run(tmp_path, {**config, "seeds": [0, 1, 2]}) is None


def test_seeds_that_share_their_users_are_tested_over_users_not_over_rows():
    """Three seeds evaluating the same users give correlated values: each user is one pair (values averaged over
    the seeds), not three; seeds of different users are concatenated."""
    from scipy import stats

    from recfuse.eval.stats import paired_over_users

    rng = np.random.default_rng(0)
    user_effect = rng.normal(0.02, 0.1, 200)  # what a user gains, whatever the seed
    a = [user_effect + rng.normal(0, 0.01, 200) for _ in range(3)]
    b = [np.zeros(200)] * 3
    per_user = paired_over_users(a, b)
    assert per_user["pooled"] == 1.0 and per_user["n"] == 200
    assert per_user["p"] == pytest.approx(stats.ttest_1samp(np.mean(a, axis=0), 0).pvalue)
    concatenated = stats.ttest_1samp(np.concatenate(a), 0).pvalue
    assert concatenated < per_user["p"] / 3  # counting each user three times overstates the evidence
    users = np.arange(200)
    assert paired_over_users(a, b, [users] * 3)["pooled"] == 1.0
    other = paired_over_users(a, b, [users, users[::-1], users])  # other rows: not the same users
    assert other["pooled"] == 0.0 and other["n"] == 600
    assert paired_over_users([a[0], a[1][:150]], [b[0], b[1][:150]])["n"] == 350
    with pytest.raises(ValueError):
        paired_over_users([], [])


def test_differences_equal_only_up_to_rounding_are_tested_not_declared_significant():
    """The constant-difference shortcut fired for any differences within 1e-8 of the first: p 0 for noise."""
    noise = paired_ttest([0.1 + 2e-9, 0.2 - 3e-9, 0.5 + 1e-9], [0.1, 0.2, 0.5])
    assert noise["p"] > 0.5
    assert paired_ttest([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])["p"] == 1.0
    assert paired_ttest([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])["p"] == 0.0  # exactly constant and non-zero


def test_a_report_cut_short_is_never_reused_as_a_finished_run(tmp_path, monkeypatch):
    """results.json of one run beside config.yaml of another (a kill between the two writes) was reused."""
    from recfuse.eval import report
    from recfuse.eval.report import finished_run

    write_report(tmp_path, [{"ndcg": 0.1}], config={"lr": 1})
    assert finished_run(tmp_path, {"lr": 1})["rows"] == [{"ndcg": 0.1}]
    calls = []

    def killed(path, text):
        calls.append(path)
        if str(path).endswith("config.yaml"):
            raise KeyboardInterrupt
        return report_write_text(path, text)
    report_write_text = report.write_text
    monkeypatch.setattr(report, "write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        write_report(tmp_path, [{"ndcg": 0.99}], config={"lr": 2})
    assert finished_run(tmp_path, {"lr": 1}) is None and finished_run(tmp_path, {"lr": 2}) is None
    monkeypatch.undo()
    write_report(tmp_path, [{"ndcg": 0.99}], config={"lr": 2})
    assert finished_run(tmp_path, {"lr": 2})["rows"] == [{"ndcg": 0.99}]
