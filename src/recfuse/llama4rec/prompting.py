"""Llama4Rec's prompts (Figure 2) from id-level :class:`~.instructions.Example` records, rendered with
the shared :class:`recfuse.llm.prompts.PromptBuilder` (escaping, token budgets, Figure 2 wording).

Every answer is a short choice the LLM is scored on, never free text: a candidate's letter (listwise
ranking, next-item pick, pairwise preference) or a rating digit (rating prediction, pointwise ranking).

* Candidates appear under letters in a seeded shuffle, so a letter's position says nothing.
* Prompt augmentation (PA) adds the most similar user's history (4.3.1) and the conventional model's
  prediction (4.3.2): its ranking of the candidates, written as their letters (short: the titles are
  already in the prompt), or its predicted rating.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from recfuse.data.dataset import Dataset
from recfuse.errors import ConfigError
from recfuse.llama4rec.instructions import Example
from recfuse.llm.prompts import PAIR_CHOICES, RATING_CHOICES, PromptBuilder  # noqa: F401  (re-exported)

# item ids as the callers hold them: lists, or rows/slices of numpy arrays
ItemIds = Sequence[int] | np.ndarray

NOUNS = {"ml": "movie", "netflix": "movie", "bookcrossing": "book", "book": "book", "mind": "news article"}


def item_noun(dataset: Dataset) -> str:
    """'movie', 'book', ... from the dataset's name (default 'item')."""
    name = dataset.name.lower()
    return next((noun for prefix, noun in NOUNS.items() if name.startswith(prefix)), "item")


@lru_cache(maxsize=32)
def builder(noun: str) -> PromptBuilder:
    return PromptBuilder(domain=noun, max_item_chars=80)


def _builder(dataset: Dataset) -> PromptBuilder:
    return builder(item_noun(dataset))


def item_text(dataset: Dataset, item: int | np.integer) -> str:
    """'Title (Year)' where the dataset has a year, else the title."""
    title = dataset.item_title(int(item))
    if "year" in dataset.item_features:
        year = dataset.item_features["year"].require_values()[int(item)]
        if np.isfinite(year):
            return f"{title} ({int(year)})"
    return title


def _texts(dataset: Dataset, items: ItemIds) -> list[str]:
    return [item_text(dataset, i) for i in items]


def check_rating_scale(dataset: Dataset, why: str) -> None:
    """:class:`~recfuse.errors.ConfigError` where the dataset's ratings leave the 1 to 5 that the LLM's prompts,
    tuning targets and answer digits use (``why``: what reads them): a rating of 10 would be taught as the digit
    "1" and read back on a scale of 5, with no error."""
    rating = dataset.interactions.rating
    if rating is None or not len(rating):
        return
    low, high = float(rating.min()), float(rating.max())
    if low < 1 or high > len(RATING_CHOICES):
        raise ConfigError(f"{dataset.name}: ratings run from {low:g} to {high:g}, but {why} reads ratings as a digit "
                          f"from 1 to {len(RATING_CHOICES)} (the paper's MovieLens scale): rescale the ratings to "
                          "1..5 first (e.g. Book-Crossing's 1-10: (r + 1) // 2)")


def rating_text(r: float) -> str:
    return str(int(r)) if float(r).is_integer() else f"{r:.1f}"


def presentation_order(n: int, seed: int) -> np.ndarray:
    """The seeded shuffle in which ``n`` candidates are shown (index into the backbone's order)."""
    return np.random.default_rng(seed).permutation(n)


def listwise_prompt(ex: Example, dataset: Dataset, augment: bool) -> tuple[str, list[str]]:
    """Listwise ranking prompt and its answer choices (the letters, in presentation order)."""
    shown = ex.presented if ex.presented is not None else np.arange(len(ex.candidates))
    pb = _builder(dataset)
    similar = _texts(dataset, ex.similar_history[::-1]) if augment and ex.similar_user >= 0 else None
    # the letters of the candidates in the backbone's order: candidate c is shown at position p
    letters_at = {int(c): p for p, c in enumerate(shown)}
    prompt, letters = pb.listwise_ranking(_texts(dataset, ex.history[::-1]),
                                          _texts(dataset, ex.candidates[shown]), similar_history=similar)
    if augment:
        order = ", ".join(letters[letters_at[c]] for c in range(len(ex.candidates)))
        head, _, tail = prompt.rpartition("\nAnswer with")
        prompt = f"{head}\nConventional Model Prediction (best first): {order}\nAnswer with{tail}"
    return prompt, letters


def rating_prompt(ex: Example, dataset: Dataset, augment: bool) -> str:
    """Rating prediction (and pointwise ranking) prompt: answer with one digit 1-5."""
    history = ex.history[::-1]
    ratings = ex.history_ratings[::-1] if ex.history_ratings is not None else None
    pb = _builder(dataset)
    target = item_text(dataset, ex.candidates[0])
    sim_items = ex.similar_history[::-1] if augment and ex.similar_user >= 0 else None
    if ratings is None:  # implicit feedback: pointwise ranking wording
        return pb.pointwise_ranking(_texts(dataset, history), target,
                                    similar_history=None if sim_items is None else _texts(dataset, sim_items),
                                    backbone_score=ex.backbone_rating if augment else None)
    sim_ratings = None
    if sim_items is not None:
        sim_ratings = ex.similar_ratings[::-1] if ex.similar_ratings is not None else None
    return pb.rating_prediction(_texts(dataset, history), ratings, target,
                                similar_history=None if sim_items is None or sim_ratings is None
                                else _texts(dataset, sim_items),
                                similar_ratings=sim_ratings,
                                backbone_prediction=ex.backbone_rating if augment else None)


def pairwise_prompt(dataset: Dataset, history: ItemIds, first: int, second: int) -> tuple[str, list[str]]:
    """Data augmentation, direct task (4.2.1): which of two items the user prefers (answer A or B).

    ``history`` is most recent first."""
    return (_builder(dataset).pairwise_preference(_texts(dataset, np.asarray(history)[::-1]),
                                                  item_text(dataset, first), item_text(dataset, second)),
            list(PAIR_CHOICES))


def next_item_prompt(dataset: Dataset, history: ItemIds, candidates: ItemIds) -> tuple[str, list[str]]:
    """Data augmentation, sequential task (4.2.2): the candidate the user most likely picks next."""
    return _builder(dataset).next_item_pick(_texts(dataset, np.asarray(history)[::-1]), _texts(dataset, candidates))


def attribute_prompt(dataset: Dataset, item: int | np.integer, attribute: str, examples: Sequence[tuple[str, str]]) -> str:
    """Data augmentation, rating task (4.2.3): in-context examples, then the item's missing attribute."""
    return _builder(dataset).attribute_completion(item_text(dataset, item), attribute, examples)
