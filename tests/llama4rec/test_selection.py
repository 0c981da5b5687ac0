"""What decides whether the LLM is used: natural instruction lists, the validation guard on the LLM's weight,
how well validation foresaw test, and the tuned LLM's answers alone against chance."""

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from recfuse.data import make_synthetic
from recfuse.data.sequences import user_sequences
from recfuse.data.splits import leave_one_out
from recfuse.errors import ConfigError
from recfuse.llama4rec.config import Llama4RecConfig
from recfuse.llama4rec.instructions import inner_split
from recfuse.llama4rec.pipeline import alpha_evidence, choose_alphas, crossfit_evidence, grid_agreement
from recfuse.llama4rec.tasks import RankingQueries, RankingTask, instruction_lists
from recfuse.models.fitting import fit_backbone


def queries(n: int = 400, k: int = 5, seed: int = 0) -> RankingQueries:
    """n users with a top-k list of items 0..k-1 (backbone order); for half of them the held-out item is in
    the list at a uniformly drawn place, for the rest it is outside (item 99)."""
    rng = np.random.default_rng(seed)
    cands = np.tile(np.arange(k), (n, 1))
    truth_items = np.where(rng.random(n) < 0.5, rng.integers(0, k, n), 99)
    truth = sp.csr_matrix((np.ones(n), (np.arange(n), truth_items)), shape=(n, 100))
    return RankingQueries(np.arange(n), cands, truth, rng.random(n))


def task() -> RankingTask:
    return RankingTask(SimpleNamespace(cfg=Llama4RecConfig(ks=[3], candidates=5)))


def test_a_clearly_better_llm_keeps_its_weight_and_noise_does_not():
    q, t = queries(), task()
    truth_pos = np.array([np.flatnonzero(np.isin(q.candidates[r], q.truth[r].indices))[:1] for r in range(q.size)],
                         dtype=object)
    oracle = np.full(q.candidates.shape, 0.01)
    for r, pos in enumerate(truth_pos):
        if len(pos):
            oracle[r, pos[0]] = 0.9
    good = alpha_evidence(t, q, oracle, np.full(q.size, 0.9))
    assert good["mean_diff"] > 0 and good["p"] < 1e-6
    noise = np.random.default_rng(1).random(q.candidates.shape)
    bad = alpha_evidence(t, q, noise, np.full(q.size, 0.9))
    assert not (bad["mean_diff"] > 0 and bad["p"] < 0.05)
    # a weight of zero is exactly the backbone's order: no gain, p = 1
    assert alpha_evidence(t, q, noise, np.zeros(q.size))["p"] == 1.0


def test_cross_fitted_evidence_does_not_reward_the_grids_luck():
    """Pure noise: the best of 25 grid cells measured on the users it was picked on looks like a gain over many
    draws; measured on users it was not picked on (cross-fitted), the gain is gone. A clear signal survives."""
    t, grid, l_range = task(), [0.1, 0.3, 0.5, 0.7, 0.9], (0.0, 1.0)
    in_sample, crossfit = [], []
    for draw in range(12):
        q = queries(n=300, seed=draw)
        noise = np.random.default_rng(100 + draw).random(q.candidates.shape)
        a1, a2, _ = choose_alphas(t, q, noise, grid, l_range)
        from recfuse.llama4rec import aggregation as agg
        in_sample.append(alpha_evidence(t, q, noise, agg.adaptive_alpha(q.l_u, a1, a2, *l_range))["mean_diff"])
        crossfit.append(crossfit_evidence(t, q, noise, grid, l_range, seed=draw)[0]["mean_diff"])
    assert np.mean(in_sample) > 0  # the winner's curse
    assert np.mean(crossfit) < np.mean(in_sample)
    q = queries()
    oracle = np.array([np.isin(q.candidates[r], q.truth[r].indices) for r in range(q.size)], dtype=float) + 0.01
    good, good_gains = crossfit_evidence(t, q, oracle, grid, l_range)
    assert good["mean_diff"] > 0 and good["p"] < 1e-6
    assert good_gains.shape == (q.size,) and good_gains.mean() == pytest.approx(good["mean_diff"])  # kept per user
    # one weight for all users (w/o AA), and every row of one user in one fold, are handled too
    assert crossfit_evidence(t, q, oracle, grid, l_range, adaptive=False)[0]["p"] < 1e-6


def test_diagnostics_read_the_llm_against_chance():
    q, t = queries(), task()
    uniform = np.full(q.candidates.shape, 0.2)
    d = t.diagnostics(q, uniform)
    assert d["chance_top1"] == pytest.approx(0.2) and d["answer_loss"] == pytest.approx(np.log(5))
    assert d["llm_top1"] == pytest.approx(d["backbone_top1"])  # ties keep the backbone's order
    # an answerer that knows only the backbone's order, and how often the answer sits at each place of it, reaches
    # exactly the backbone order loss (the entropy of the answer's place)
    k = q.candidates.shape[1]
    place = np.array([t.diagnostics(q, np.tile(np.eye(k)[j], (q.size, 1)))["llm_top1"] for j in range(k)])
    assert place.sum() == pytest.approx(1.0)
    follows = t.diagnostics(q, np.tile(place, (q.size, 1)))
    assert follows["answer_loss"] == pytest.approx(d["backbone_order_loss"]) and d["backbone_order_loss"] < np.log(k)
    assert 150 < d["users_with_answer_in_list"] < 250
    assert d["chance_top3"] == pytest.approx(0.6) and d["p_top3_vs_chance"] > 0.05  # 3 of 5 candidates
    oracle = np.array([np.isin(q.candidates[r], q.truth[r].indices) for r in range(q.size)], dtype=float) + 0.01
    best = t.diagnostics(q, oracle)
    assert best["llm_top1"] == 1.0 and best["p_top3_vs_chance"] < 1e-9 and best["answer_loss"] < 0.1


def test_grid_agreement():
    v = np.array([[0.1, 0.2], [0.3, 0.4]])
    assert grid_agreement(v, v, 1, 1, False) == (pytest.approx(1.0), 1)
    assert grid_agreement(v, -v, 1, 1, False) == (pytest.approx(-1.0), 4)
    assert grid_agreement(v, np.ones((2, 2)), 0, 0, True)[0] is None  # a flat test grid has no ranking


def test_natural_instruction_lists_hold_their_answer_and_planted_lists_take_every_user():
    ds = make_synthetic(n_users=60, n_items=40, n_topics=3, interactions_per_user=12, seed=0)
    split = leave_one_out(ds, seed=0)
    inner = inner_split(split)
    model, _ = fit_backbone("pop", inner, 0)
    blocked = inner.history("test")
    users, cands, answer = instruction_lists(model, inner, blocked, 10, 1000, "natural", 0)
    assert 0 < len(users) < len(inner.eval_users("test"))
    assert all(a in row for a, row in zip(answer, cands))
    users_p, _, _ = instruction_lists(model, inner, blocked, 10, 1000, "planted", 0)
    assert len(users_p) == len(inner.eval_users("test"))
    # a backbone whose lists never hold the answer gives no natural instruction (the task then tries more folds)
    never = int(np.setdiff1d(np.arange(ds.n_items), inner.test.item)[0])
    blind = SimpleNamespace(recommend=lambda users, k, exclude: (np.full((len(users), k), never), None))
    assert len(instruction_lists(blind, inner, blocked, 3, 10, "natural", 0)[0]) == 0


def test_later_folds_hold_out_earlier_items_and_drop_what_came_after():
    ds = make_synthetic(n_users=30, n_items=40, n_topics=3, interactions_per_user=9, seed=1)
    split = leave_one_out(ds, seed=0)
    seqs = user_sequences(split.train, split.n_users)
    f3 = inner_split(split, fold=3)
    pos = {(int(u), int(i)) for u, i in zip(split.train.user, split.train.item)}
    for u, seq in enumerate(seqs):
        items = split.train.item[seq]
        got_test = f3.test.item[f3.test.user == u]
        got_train = set(f3.train.item[f3.train.user == u].tolist())
        if len(seq) >= 5:
            assert got_test.tolist() == [items[-3]]
            assert got_train == set(items[:-4].tolist())  # the last two items (after the answer) are gone
    assert {(int(u), int(i)) for u, i in zip(f3.train.user, f3.train.item)} <= pos
    assert f3.info["fold"] == 3 and "fold" not in inner_split(split).info


def test_more_instructions_than_users_come_from_more_folds(tmp_path):
    from recfuse.llama4rec.pipeline import Llama4Rec

    cfg = Llama4RecConfig(dataset="synthetic", backbone="pop", instructions=60, candidates=10,
                          instruction_targets="planted", seeds=[0], progress=False, out=str(tmp_path))
    method = Llama4Rec(cfg)
    method.dataset = make_synthetic(n_users=25, n_items=30, n_topics=3, interactions_per_user=10, seed=0)
    dialogues = method.instruction_dialogues(leave_one_out(method.dataset, seed=0), 0)
    assert len(dialogues[True]) == 60  # 25 users: three folds
    assert len({d[0]["content"] for d in dialogues[True]}) == 60  # all different


def test_config_checks_the_new_options():
    with pytest.raises(ConfigError, match="validation_guard"):
        Llama4RecConfig(validation_guard=0)
    with pytest.raises(ConfigError, match="valid_users"):
        Llama4RecConfig(valid_users=-1)
    with pytest.raises(ConfigError, match="instructions"):
        Llama4RecConfig(instructions=0)
    with pytest.raises(ConfigError, match="select_metric"):
        Llama4RecConfig(select_metric="ndcg@10")  # not among --ks 3,5
    with pytest.raises(ConfigError, match="not a ranking metric"):
        Llama4RecConfig(select_metric="rmse")
    Llama4RecConfig(task="rating", select_metric="rmse")  # the rating task selects on RMSE whatever is named


def test_a_backbone_of_another_task_is_refused_before_any_work():
    from recfuse.llama4rec.pipeline import Llama4Rec

    with pytest.raises(ConfigError, match="rating task needs a rating model"):
        Llama4Rec(Llama4RecConfig(task="rating", backbone="lightgcn", dataset="synthetic"))
