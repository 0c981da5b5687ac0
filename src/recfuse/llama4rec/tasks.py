"""What differs between Llama4Rec's tasks, behind one small interface the pipeline's single variant loop uses.

* :class:`RankingTask` (direct and sequential recommendation): the LLM re-ranks the backbone's top-k' list;
  a prediction is an order of the candidates; metrics HR@k / NDCG@k; data augmentation adds BPR triples
  (direct) or items inserted into sequences (sequential).
* :class:`RatingTask`: the LLM's expected rating is mixed with the backbone's; a prediction is a rating per
  held-out pair; metrics RMSE / MAE; data augmentation adds LLM-supplied item attributes.

Each task answers: the instruction dialogues (from the training split only), the augmented backbone, the
queries at a stage (what the backbone predicts there), the LLM's scores for them, and how a prediction (the
backbone's own, the LLM's alone, or the two mixed with per-user weights) scores per user.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from typing import Any, ClassVar, Protocol

import numpy as np
import scipy.sparse as sp
from scipy.stats import binomtest

from recfuse.data.dataset import FeatureTable, Interactions
from recfuse.data.splits import Split, Stage
from recfuse.errors import ConfigError, EvaluationError
from recfuse.eval import metrics as M
from recfuse.eval.ranking import hits_of
from recfuse.io import load_npz, read_json, save_npz, write_json
from recfuse.llama4rec import aggregation as agg
from recfuse.llama4rec import augment, prompting
from recfuse.llama4rec.config import Llama4RecConfig
from recfuse.llama4rec.instructions import Example, inner_split
from recfuse.llama4rec.queries import (
    llm_ratings,
    listwise_text,
    make_context,
    pointwise_examples,
    ranking_examples,
    rating_examples,
    score_ranking,
)
from recfuse.llm.base import LLM
from recfuse.llm.prompts import template_key
from recfuse.llm.sft import as_messages
from recfuse.llm.tuning import Dialogue
from recfuse.models.base import NextItemRecommender, RatingPredictor, Recommender
from recfuse.models.fitting import FitLog
from recfuse.models.similar import similar_user_index
from recfuse.stages import StageCost, stage_dir


log = logging.getLogger(__name__)


class TaskHost(Protocol):
    """What a task needs of the method running it: its config, a cached backbone fit, a stage timer."""

    cfg: Llama4RecConfig

    def fit(self, split: Split, seed: int, *, extra_triples: np.ndarray | None = None,
            insertions: np.ndarray | None = None, label: str = "base") -> tuple[Recommender, FitLog]: ...

    def fit_for_instructions(self, split: Split, seed: int) -> tuple[Recommender, FitLog]: ...

    def _timing(self, name: str) -> AbstractContextManager[StageCost]: ...

PerUser = dict[str, np.ndarray]


@dataclass
class RankingQueries:
    """The backbone's top-k' list of each user at one stage, with the held-out truth."""

    users: np.ndarray
    candidates: np.ndarray  # (n, k') backbone order
    truth: sp.csr_matrix  # rows aligned with users
    l_u: np.ndarray  # long-tail coefficient of each user

    @property
    def size(self) -> int:
        return len(self.users)


@dataclass
class RatingQueries:
    """The held-out rated pairs of one stage with the backbone's predicted ratings."""

    part: Interactions
    backbone: np.ndarray  # the backbone's rating of each pair
    l_u: np.ndarray  # long-tail coefficient of each pair's user

    @property
    def size(self) -> int:
        return len(self.part)


def ranking_queries(model: Recommender, split: Split, stage: Stage, k: int, users: np.ndarray | None = None,
                    exclude: sp.csr_matrix | None = None) -> RankingQueries:
    """The backbone's top-k' list per user with held-out items of ``stage`` (training items excluded,
    or ``exclude`` when given)."""
    users = split.eval_users(stage) if users is None else users
    blocked = split.history(stage) if exclude is None else exclude
    if isinstance(model, NextItemRecommender):  # after the stage's sequence: validation never sees its item
        cands, _ = model.recommend(users, k=k, exclude=blocked, stage=stage)
    else:
        cands, _ = model.recommend(users, k=k, exclude=blocked)
    counts = np.diff(split.train_matrix.indptr)
    return RankingQueries(users, cands, split.ground_truth(stage)[users], agg.long_tail_coefficient(counts[users]))


def instruction_lists(model: Recommender, inner: Split, exclude: sp.csr_matrix, k: int, n: int, targets: str,
                      seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The users, backbone top-k' lists and answers of up to ``n`` listwise instructions on the inner split.

    ``natural``: only users whose list holds the answer (seeded sample of them); the LLM then learns the
    situation it meets at test, where the answer, when it is there at all, sits where the backbone put it
    (mostly near the top). ``planted``: a seeded sample of all users, the answer planted in the lists that
    miss it (by :func:`~recfuse.llama4rec.instructions.plant_target`, in :func:`ranking_examples`).
    """
    rng = np.random.default_rng(seed)
    users = inner.eval_users("test")
    if targets == "planted":
        users = np.sort(rng.choice(users, size=min(n, len(users)), replace=False))
    q = ranking_queries(model, inner, "test", k, users, exclude=exclude)
    answer = np.array([q.truth.indices[q.truth.indptr[r]] for r in range(len(users))], dtype=np.int64)
    if targets == "planted":
        return users, q.candidates, answer
    hit = np.flatnonzero((q.candidates == answer[:, None]).any(axis=1))
    log.info("%d of %d inner users have the answer in the instruction backbone's top-%d list", hit.size, len(users), k)
    pick = np.sort(rng.choice(hit, size=min(n, hit.size), replace=False))
    return users[pick], q.candidates[pick], answer[pick]


def ranking_metrics(q: RankingQueries, order: np.ndarray, ks: list[int]) -> PerUser:
    """Per-user HR@k / NDCG@k of the re-ranked candidate lists (truth outside the list: a miss)."""
    ranked = np.take_along_axis(q.candidates, order, axis=1)
    hits = hits_of(ranked, q.truth)
    n_rel = np.diff(q.truth.indptr)
    return M.ranking_metrics(hits, n_rel, ["hr", "ndcg"], [k for k in ks if k <= ranked.shape[1]])


class Task(ABC):
    """One Llama4Rec task for one method instance (its config, dataset and timers)."""

    lower_is_better: ClassVar[bool] = False

    def __init__(self, method: TaskHost):
        self.method = method
        self.cfg = method.cfg

    @property
    @abstractmethod
    def select_metric(self) -> str:
        """The validation metric that chooses alpha1 and alpha2."""

    def prepare(self, split: Split, seed: int) -> None:
        """Per-seed setup before the queries (e.g. which validation users are scored)."""

    @abstractmethod
    def instruction_dialogues(self, split: Split, seed: int) -> dict[bool, list[Dialogue]]:
        """Instruction dialogues with (True) and without (False) prompt augmentation, from training data only."""

    @abstractmethod
    def augment(self, split: Split, seed: int, llm: LLM) -> tuple[Recommender, dict[str, Any]]:
        """The backbone retrained on LLM-augmented data, and what the augmentation did."""

    @abstractmethod
    def queries(self, model: Recommender, split: Split, stage: Stage) -> Any:
        """What the backbone predicts at ``stage`` (``valid`` or ``test``)."""

    @abstractmethod
    def llm_scores(self, llm: LLM, q: Any, model: Recommender, split: Split, stage: Stage, augment_prompt: bool,
                   seed: int) -> np.ndarray:
        """The LLM's answer to each query, as numbers (probabilities or expected ratings)."""

    @abstractmethod
    def own(self, q: Any) -> np.ndarray:
        """The backbone's own prediction."""

    @abstractmethod
    def alone(self, q: Any, scores: np.ndarray) -> np.ndarray:
        """The LLM's prediction alone."""

    @abstractmethod
    def mix(self, q: Any, scores: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Both mixed with per-query weights ``alpha`` on the LLM (eq. 6)."""

    def control_scores(self, control: str, q: Any, split: Split) -> np.ndarray:
        """What a control variant (``mean_mix``, ``bias_mix``) mixes in instead of the LLM's answers."""
        raise ConfigError(f"variant {control!r} is a control for the rating task, not the {self.cfg.task} task")

    @abstractmethod
    def evaluate(self, q: Any, prediction: np.ndarray) -> PerUser:
        """Per-user (or per-pair) values of a prediction."""

    @abstractmethod
    def summarize(self, per_user: PerUser) -> dict[str, float]:
        """The reported metrics from per-user values."""

    def diagnostics(self, q: Any, scores: np.ndarray) -> dict[str, float] | None:
        """Is the tuned LLM learning at all? Task-specific measures of its answers alone (None: none)."""
        return None

    def selection_value(self, per_user: PerUser) -> float:
        return self.summarize(per_user)[self.select_metric]

    @abstractmethod
    def row_users(self, q: Any) -> np.ndarray:
        """The user of each row of ``q``'s per-user values (cross-fitting keeps a user's rows in one fold)."""

    @abstractmethod
    def gains(self, per_user: PerUser) -> np.ndarray:
        """Per-user (or per-pair) values behind the selection metric, oriented so that higher is better
        (for the paired test of the chosen alphas against the backbone's own prediction)."""


class RankingTask(Task):
    """Direct and sequential recommendation: the LLM re-ranks the backbone's top-k' list."""

    def prepare(self, split: Split, seed: int) -> None:
        rng = np.random.default_rng(seed)
        users = split.eval_users("valid")
        if self.cfg.valid_users and self.cfg.valid_users < len(users):
            users = np.sort(rng.choice(users, self.cfg.valid_users, replace=False))
        self.valid_users = users

    @property
    def select_metric(self) -> str:
        return self.cfg.select_metric

    def instruction_dialogues(self, split: Split, seed: int) -> dict[bool, list[Dialogue]]:
        cfg = self.cfg
        examples: list[Example] = []
        rating_of: dict[tuple[int, int], float | None] = {}
        for fold in range(1, cfg.max_instruction_folds + 1):  # more folds only while instructions are missing
            inner = inner_split(split, fold=fold)
            if fold > 1 and len(inner.test) == 0:
                break
            inner_model, _ = self.method.fit_for_instructions(inner, seed)
            # candidates never include an item the user has outside the inner training part and its answer:
            # the outer validation and test parts, and (fold > 1) what the user did after the answer
            blocked = inner.history("test") + split.known_matrix - inner.known_matrix
            fold_seed = seed if fold == 1 else seed + 7919 * (fold - 1)
            users, candidates, targets = instruction_lists(inner_model, inner, blocked, cfg.candidates,
                                                           cfg.instructions - len(examples), cfg.instruction_targets,
                                                           fold_seed)
            ctx = make_context(inner, "inner", similar_user_index(inner_model, inner))
            examples += ranking_examples(ctx, users, candidates, cfg.max_history, fold_seed, targets,
                                         max_similar=cfg.max_similar_history)
            ratings = inner.test.rating.tolist() if inner.test.rating is not None else [None] * len(inner.test)
            rating_of.update(zip(zip(inner.test.user.tolist(), inner.test.item.tolist()), ratings))
            if len(examples) >= cfg.instructions:
                break
        if not examples:
            raise ConfigError(f"no user's top-{cfg.candidates} list from the instruction backbone holds the held-out "
                              "item, so there are no natural listwise instructions: use --instruction-targets "
                              "planted or a larger --candidates")
        if len(examples) < cfg.instructions:
            log.warning("%d listwise instructions from %d inner fold(s), not the %d asked for (raise "
                        "--max-instruction-folds, or --instruction-targets planted)", len(examples), fold,
                        cfg.instructions)
        out: dict[bool, list[Dialogue]] = {True: [], False: []}
        for ex in examples:
            ex.rating = rating_of.get((ex.user, int(ex.candidates[ex.target])))
            for pa in (True, False):
                if "listwise" in cfg.instruction_tasks:
                    text, _, answer = listwise_text(ex, split.dataset, pa)
                    assert answer is not None  # instruction examples hold their answer
                    out[pa].append(as_messages(text, answer))
                if "pointwise" in cfg.instruction_tasks:
                    for p in pointwise_examples(ex, np.random.default_rng(seed + ex.user)):
                        assert p.rating is not None  # pointwise examples carry their rating
                        out[pa].append(as_messages(prompting.rating_prompt(p, split.dataset, pa),
                                                   prompting.rating_text(p.rating)))
        return out

    def augment(self, split: Split, seed: int, llm: LLM) -> tuple[Recommender, dict[str, Any]]:
        cfg, method = self.cfg, self.method
        users = np.flatnonzero(np.diff(split.train_matrix.indptr) > 0)
        key = {"split": split.fingerprint(), "llm": llm.fingerprint, "task": cfg.task, "seed": seed,
               "pairs": cfg.da_pairs_per_user, "cands": cfg.da_candidates, "hist": cfg.max_history,
               **template_key()}
        if cfg.task == "direct":
            def build(tmp: Path) -> None:
                res = augment.pairwise_triples(llm, split, users, cfg.da_pairs_per_user, cfg.max_history, seed=seed)
                save_npz(tmp / "triples.npz", triples=res.triples, confidence=res.confidence)
            with method._timing("data augmentation"):
                z = load_npz(stage_dir("llama4rec-da", key, build) / "triples.npz")
            model, log = method.fit(split, seed, extra_triples=z["triples"], label="augmented")
            return model, {"triples": int(len(z["triples"])), "mean_confidence": float(z["confidence"].mean())
                           if len(z["confidence"]) else None, "train_seconds": log.seconds}

        def build_seq(tmp: Path) -> None:
            rows = augment.sequence_insertions(llm, split, users, cfg.da_candidates, cfg.max_history, seed=seed)
            save_npz(tmp / "insertions.npz", insertions=rows)
        with method._timing("data augmentation"):
            rows = load_npz(stage_dir("llama4rec-da", key, build_seq) / "insertions.npz")["insertions"]
        model, log = method.fit(split, seed, insertions=rows, label="augmented")
        return model, {"insertions": int(len(rows)), "train_seconds": log.seconds}

    def queries(self, model: Recommender, split: Split, stage: Stage) -> RankingQueries:
        return ranking_queries(model, split, stage, self.cfg.candidates,
                               self.valid_users if stage == "valid" else None)

    def llm_scores(self, llm: LLM, q: RankingQueries, model: Recommender, split: Split, stage: Stage,
                   augment_prompt: bool, seed: int) -> np.ndarray:
        ctx = make_context(split, stage, similar_user_index(model, split, stage))
        examples = ranking_examples(ctx, q.users, q.candidates, self.cfg.max_history, seed,
                                    max_similar=self.cfg.max_similar_history)
        return score_ranking(llm, examples, split.dataset, augment_prompt, self.cfg.ranking)

    def own(self, q: RankingQueries) -> np.ndarray:
        return np.tile(np.arange(q.candidates.shape[1]), (len(q.users), 1))

    def alone(self, q: RankingQueries, scores: np.ndarray) -> np.ndarray:
        return agg.order_by_scores(scores)

    def mix(self, q: RankingQueries, scores: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        return agg.aggregate_topk(scores, alpha)

    def evaluate(self, q: RankingQueries, prediction: np.ndarray) -> PerUser:
        return ranking_metrics(q, prediction, self.cfg.ks)

    def summarize(self, per_user: PerUser) -> dict[str, float]:
        if any(len(v) == 0 for v in per_user.values()):
            raise EvaluationError("no user to evaluate: every metric would be NaN")
        return {k: float(v.mean()) for k, v in per_user.items()}

    def gains(self, per_user: PerUser) -> np.ndarray:
        return per_user[self.select_metric]

    def row_users(self, q: RankingQueries) -> np.ndarray:
        return q.users

    def diagnostics(self, q: RankingQueries, scores: np.ndarray) -> dict[str, float] | None:
        """On the users whose list holds a held-out item (the only ones re-ranking can help): how often the LLM's
        first choice is it, against chance (1/k') and the backbone's first place; and, for listwise answers
        (letter probabilities), the loss on the answer letter alone, -log p(answer) renormalised over the k'
        letters, against chance (ln k') and against the loss of an answerer that knows nothing but the
        backbone's order (the entropy of the answer's place in the list, in-sample): following the backbone
        exactly lowers the loss only that far, so how much a tuned LLM could learn by copying it."""
        k = q.candidates.shape[1]
        if len(q.users) == 0 or scores.shape != q.candidates.shape:
            return None
        target = np.full(len(q.users), -1)
        for r in range(len(q.users)):
            hit = np.flatnonzero(np.isin(q.candidates[r], q.truth.indices[q.truth.indptr[r]:q.truth.indptr[r + 1]]))
            if hit.size:
                target[r] = hit[0]
        rows = np.flatnonzero(target >= 0)
        out = {"users_with_answer_in_list": float(len(rows)), "chance_top1": 1.0 / k, "chance_answer_loss": float(np.log(k))}
        if not len(rows):
            return out
        order = agg.order_by_scores(scores[rows])
        rank = np.argmax(order == target[rows][:, None], axis=1)  # the answer's place in the LLM's order
        top = min(3, k)
        out["llm_top1"] = float(np.mean(rank == 0))
        out["backbone_top1"] = float(np.mean(target[rows] == 0))
        # HR@3 against a random order of the same list (the "random-order level"): one-sided binomial test
        out["llm_top3"], out["chance_top3"] = float(np.mean(rank < top)), top / k
        out["backbone_top3"] = float(np.mean(target[rows] < top))
        place = np.bincount(target[rows], minlength=k) / len(rows)  # where the answer sits in the backbone's list
        out["backbone_order_loss"] = float(-np.sum(place[place > 0] * np.log(place[place > 0]))) + 0.0  # not -0.0
        out["p_top3_vs_chance"] = float(binomtest(int(np.sum(rank < top)), len(rows), top / k,
                                                  alternative="greater").pvalue)
        if self.cfg.ranking == "listwise":
            p = scores[rows] / np.clip(scores[rows].sum(axis=1, keepdims=True), 1e-300, None)
            out["answer_loss"] = float(-np.mean(np.log(np.clip(p[np.arange(len(rows)), target[rows]], 1e-12, None))))
        return out


def damped_mean(index: np.ndarray, values: np.ndarray, n: int, damping: float = 10.0) -> np.ndarray:
    """Per index, the sum of its values over (count + ``damping``): a mean shrunk towards 0 where data is few."""
    sums = np.bincount(index, weights=values, minlength=n)
    return sums / (np.bincount(index, minlength=n) + damping)


class RatingTask(Task):
    """Rating prediction: the LLM's expected rating mixed with the backbone's (eqs. 6-7 on the ratings)."""

    lower_is_better = True

    @property
    def select_metric(self) -> str:
        return "rmse"

    def instruction_dialogues(self, split: Split, seed: int) -> dict[bool, list[Dialogue]]:
        cfg, ds = self.cfg, split.dataset
        out: dict[bool, list[Dialogue]] = {True: [], False: []}
        for fold in range(1, cfg.max_instruction_folds + 1):  # more folds only while instructions are missing
            inner = inner_split(split, fold=fold)
            if len(inner.test) == 0:
                break
            inner_model, _ = self.method.fit_for_instructions(inner, seed)
            rng = np.random.default_rng(seed if fold == 1 else seed + 7919 * (fold - 1))
            want = cfg.instructions - len(out[True])
            pick = np.sort(rng.choice(len(inner.test), size=min(want, len(inner.test)), replace=False))
            ctx = make_context(inner, "inner", similar_user_index(inner_model, inner))
            part = inner.test.take(pick)
            examples = rating_examples(ctx, part, self.predict(inner_model, part), cfg.max_history,
                                       cfg.max_similar_history)
            assert part.rating is not None  # rating examples need ratings (checked by rating_examples)
            for pa in (True, False):
                out[pa] += [as_messages(prompting.rating_prompt(ex, ds, pa), prompting.rating_text(float(r)))
                            for ex, r in zip(examples, part.rating)]
            if len(out[True]) >= cfg.instructions:
                break
        if len(out[True]) < cfg.instructions:
            log.warning("%d rating instructions from %d inner fold(s), not the %d asked for (raise "
                        "--max-instruction-folds)", len(out[True]), fold, cfg.instructions)
        return out

    def augment(self, split: Split, seed: int, llm: LLM) -> tuple[Recommender, dict[str, Any]]:
        da_split, counts = self.with_attributes(split, llm)
        model, log = self.method.fit(da_split, seed, label="augmented")
        return model, {"attribute_answers": counts, "train_seconds": log.seconds}

    def with_attributes(self, split: Split, llm: LLM) -> tuple[Split, dict[str, Any]]:
        """The split over a copy of the dataset with LLM-supplied item attributes (cached)."""
        cfg, ds = self.cfg, split.dataset
        examples = {attr: augment.attribute_examples(attr, prompting.item_noun(ds), cfg.da_examples)
                    for attr in cfg.da_attributes}
        key = {"data": ds.fingerprint(), "llm": llm.fingerprint, "attributes": cfg.da_attributes, "examples": examples,
               **template_key()}

        def build(tmp: Path) -> None:
            out = {}
            for attr in cfg.da_attributes:
                res = augment.item_attributes(llm, ds, attr, examples=examples[attr])
                out[attr] = {"values": res.values, "counts": res.counts}
            write_json(tmp / "attributes.json", out)

        with self.method._timing("data augmentation"):
            data = read_json(stage_dir("llama4rec-attributes", key, build) / "attributes.json")
        table = FeatureTable(ds.n_items, list(ds.item_features))
        augmented = replace(ds, item_features=table, notes=list(ds.notes))  # its fingerprint holds the answers
        for attr, res in data.items():
            augment.add_attribute(augmented, f"llm_{attr}", res["values"])
        new_split = Split(augmented, split.train, split.valid, split.test, split.protocol, dict(split.info))
        return new_split, {attr: res["counts"] for attr, res in data.items()}

    def predict(self, model: Recommender, part: Interactions) -> np.ndarray:
        """The backbone's rating of each pair of ``part``."""
        if not isinstance(model, RatingPredictor):
            raise ConfigError(f"--task rating needs a rating backbone (one that predicts ratings); "
                              f"{self.cfg.backbone} is a {model.task} model")
        return np.asarray(model.predict(part.user, part.item), dtype=np.float64)

    def queries(self, model: Recommender, split: Split, stage: Stage) -> RatingQueries:
        part = split.part(stage)
        counts = np.diff(split.train_matrix.indptr)
        return RatingQueries(part, self.predict(model, part), agg.long_tail_coefficient(counts[part.user]))

    def llm_scores(self, llm: LLM, q: RatingQueries, model: Recommender, split: Split, stage: Stage,
                   augment_prompt: bool, seed: int) -> np.ndarray:
        ctx = make_context(split, stage, similar_user_index(model, split, stage))
        examples = rating_examples(ctx, q.part, q.backbone, self.cfg.max_history, self.cfg.max_similar_history)
        return llm_ratings(llm, examples, split.dataset, augment_prompt)

    def own(self, q: RatingQueries) -> np.ndarray:
        return q.backbone

    def alone(self, q: RatingQueries, scores: np.ndarray) -> np.ndarray:
        return scores

    def mix(self, q: RatingQueries, scores: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        return agg.aggregate_ratings(scores, q.backbone, alpha)

    def control_scores(self, control: str, q: RatingQueries, split: Split) -> np.ndarray:
        """A rating of every pair made without an LLM: ``mean_mix`` the training data's mean rating (mixed in,
        it shrinks the backbone's ratings towards the mean, all an LLM answering near the mean would add);
        ``bias_mix`` the mean plus damped user and item biases (a baseline predictor that knows who rates high
        and which items are rated high, as an LLM reading the history and the titles might)."""
        train = split.train
        if train.rating is None:
            raise ConfigError("the rating task needs ratings in the training data")
        if control == "mean_mix":
            return np.full(q.size, float(np.mean(train.rating)))
        if control != "bias_mix":
            raise ConfigError(f"unknown control {control!r}")
        mu, ds = float(np.mean(train.rating)), split.dataset
        b_item = damped_mean(train.item, train.rating - mu, ds.n_items)
        b_user = damped_mean(train.user, train.rating - mu - b_item[train.item], ds.n_users)
        return mu + b_user[q.part.user] + b_item[q.part.item]

    def evaluate(self, q: RatingQueries, prediction: np.ndarray) -> PerUser:
        assert q.part.rating is not None
        err = np.asarray(prediction, dtype=np.float64) - q.part.rating
        return {"se": err ** 2, "ae": np.abs(err)}

    def summarize(self, per_user: PerUser) -> dict[str, float]:
        if len(per_user["se"]) == 0:
            raise EvaluationError("no rated pair to evaluate: RMSE and MAE would be NaN")
        return {"rmse": float(np.sqrt(per_user["se"].mean())), "mae": float(per_user["ae"].mean())}

    def gains(self, per_user: PerUser) -> np.ndarray:
        return -per_user["se"]  # RMSE is chosen on: a smaller squared error is a gain

    def row_users(self, q: RatingQueries) -> np.ndarray:
        return q.part.user


def task_for(method: TaskHost) -> Task:
    """The task object of a method's configured task."""
    return RatingTask(method) if method.cfg.task == "rating" else RankingTask(method)
