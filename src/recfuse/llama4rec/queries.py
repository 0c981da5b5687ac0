"""What the LLM is asked: the context a prompt may see at each stage, the examples built from the backbone's
output (listwise candidate lists, pointwise candidates, rated pairs), and the LLM's answers read as
probabilities over the allowed choices (one forward pass, no parsing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recfuse.data.dataset import Dataset, Interactions
from recfuse.data.sequences import user_sequences
from recfuse.data.splits import Split
from recfuse.llama4rec import prompting
from recfuse.llama4rec.instructions import Example, plant_target
from recfuse.llm.base import LLM, choice_probs, expected_value
from recfuse.stages import StageCost


@dataclass
class Context:
    """What prompts may know at one evaluation stage: sequences up to (not including) that stage."""

    split: Split
    stage: str  # "valid" | "test" | "inner"
    seqs: list[np.ndarray]
    inter: Any
    similar: np.ndarray

    def history(self, user: int, max_items: int) -> tuple[np.ndarray, np.ndarray | None]:
        pos = self.seqs[user][::-1][:max_items]
        return self.inter.item[pos], None if self.inter.rating is None else self.inter.rating[pos]


def make_context(split: Split, stage: str, similar: np.ndarray) -> Context:
    inter = split.train if stage in ("valid", "inner") else split.train.concat(split.valid)
    return Context(split, stage, user_sequences(inter, split.n_users), inter, similar)


def ranking_examples(ctx: Context, users: np.ndarray, candidates: np.ndarray, max_history: int, seed: int,
                     targets: np.ndarray | None = None, task: str = "listwise",
                     max_similar: int | None = None) -> list[Example]:
    """Listwise examples: the backbone's candidates (best first), shown under shuffled letters."""
    rng = np.random.default_rng(seed)
    out = []
    for r, u in enumerate(users):
        cands, target = candidates[r], -1
        if targets is not None:
            cands, target = plant_target(cands, int(targets[r]), rng)
        hist, hr = ctx.history(u, max_history)
        sim = int(ctx.similar[u])
        sh, sr = ctx.history(sim, max_similar or max_history) if sim >= 0 else (np.zeros(0, np.int64), None)
        out.append(Example(task, int(u), hist, hr, np.asarray(cands), target, None, sim, sh, sr, None,
                           prompting.presentation_order(len(cands), seed * 1_000_003 + int(u))))
    return out


def listwise_text(ex: Example, dataset: Dataset, augment_prompt: bool) -> tuple[str, list[str], str | None]:
    text, letters = prompting.listwise_prompt(ex, dataset, augment_prompt)
    answer = None
    if ex.target >= 0:
        answer = letters[int(np.flatnonzero(ex.presented == ex.target)[0])]
    return text, letters, answer


def pointwise_examples(ex: Example, rng: np.random.Generator) -> list[Example]:
    """Pointwise instructions from a listwise one: the target with its rating, one other candidate with 1."""
    rating = 5.0 if ex.rating is None else ex.rating
    other = int(rng.choice([i for i in range(len(ex.candidates)) if i != ex.target]))
    mk = lambda item, r: Example("pointwise", ex.user, ex.history, ex.history_ratings, np.array([item]),  # noqa: E731
                                 0, r, ex.similar_user, ex.similar_history, ex.similar_ratings)
    return [mk(ex.candidates[ex.target], rating), mk(ex.candidates[other], 1.0)]


def score_ranking(llm: LLM, examples: list[Example], dataset: Dataset, augment_prompt: bool, mode: str) -> np.ndarray:
    """The LLM's preference for each backbone candidate (columns in backbone order)."""
    if not examples:
        return np.zeros((0, 0))
    k = len(examples[0].candidates)
    if mode == "listwise":
        texts: list[str] = []
        letters: list[str] = []
        for ex in examples:
            text, letters, _ = listwise_text(ex, dataset, augment_prompt)
            texts.append(text)
        probs = choice_probs(llm.choice_logprobs(texts, letters))  # presentation order
        scores = np.empty_like(probs)
        for r, ex in enumerate(examples):
            scores[r, ex.presented] = probs[r]
        return scores
    texts = []
    for ex in examples:
        for c in ex.candidates:
            one = Example("pointwise", ex.user, ex.history, ex.history_ratings, np.array([c]), 0, None,
                          ex.similar_user, ex.similar_history, ex.similar_ratings)
            texts.append(prompting.rating_prompt(one, dataset, augment_prompt))
    values = expected_value(llm.choice_logprobs(texts, prompting.RATING_CHOICES), [1, 2, 3, 4, 5])
    return values.reshape(len(examples), k)




def rating_examples(ctx: Context, part: Interactions, predicted: np.ndarray, max_history: int,
                    max_similar: int | None = None) -> list[Example]:
    """One rating query per held-out interaction of ``part`` (history and similar user as of the stage),
    with the backbone's ``predicted`` rating of it."""
    out = []
    assert part.rating is not None, "rating examples need ratings"
    for u, i, r, p in zip(part.user, part.item, part.rating, predicted):
        hist, hr = ctx.history(int(u), max_history)
        sim = int(ctx.similar[u])
        sh, sr = ctx.history(sim, max_similar or max_history) if sim >= 0 else (np.zeros(0, np.int64), None)
        out.append(Example("rating", int(u), hist, hr, np.array([i]), 0, float(r), sim, sh, sr, float(p)))
    return out


def llm_ratings(llm: LLM, examples: list[Example], dataset: Dataset, augment_prompt: bool) -> np.ndarray:
    """The LLM's expected rating (1-5, under its digit probabilities) of each example's item."""
    texts = [prompting.rating_prompt(ex, dataset, augment_prompt) for ex in examples]
    return expected_value(llm.choice_logprobs(texts, prompting.RATING_CHOICES), [1, 2, 3, 4, 5])


def inference_record(cost: StageCost, **fields: Any) -> dict[str, Any]:
    """One LLM scoring call for the report: its cost in seconds (cached answers at their recorded cost)
    and queries per second, or, where some cached answers carry no recorded cost, the count of those."""
    rec = {**fields, "seconds": cost.seconds}
    rec["queries_per_second"] = fields["queries"] / cost.seconds if cost.complete and cost.seconds > 0 else None
    if not cost.complete:
        rec["answers_without_recorded_cost"] = cost.unknown_answers
    return rec
