"""Data augmentation for the conventional models (Llama4Rec section 4.2), driven by the LLM's choices.

* direct (4.2.1): random pairs of items a user has not interacted with; the LLM says which one the
  user prefers; (user, preferred, other) joins the BPR training triples.
* sequential (4.2.2): random un-interacted candidates; the LLM picks one; it is inserted at a random
  position of the user's training sequence.
* rating (4.2.3): the LLM supplies a missing item attribute (e.g. director) from in-context examples;
  the answers become a categorical feature. Free text: parse outcomes are counted.

Only training interactions are read, and no item a user has in validation or test is ever proposed
for that user (not even as the unpreferred item of a pair): tests check this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recfuse.data.dataset import Dataset, Feature
from recfuse.data.splits import Split
from recfuse.errors import ConfigError
from recfuse.llama4rec import prompting
from recfuse.data.sequences import user_sequences
from recfuse.llm.base import LLM, choice_probs
from recfuse.llm.parsing import ParseResult, ParseStats, parse_attribute


def _uninteracted(split: Split, user: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """Random items the user has no interaction with in any part of the split (held-out items excluded)."""
    seen = split.known_matrix[user].indices
    pool = np.setdiff1d(np.arange(split.n_items), seen, assume_unique=False)
    return rng.choice(pool, size=min(n, len(pool)), replace=False)


def _recent_history(split: Split, seqs: list[np.ndarray], user: int, max_items: int) -> np.ndarray:
    return split.train.item[seqs[user][::-1][:max_items]]


@dataclass
class PairwiseAugmentation:
    triples: np.ndarray  # (n, 3): user, preferred item, other item
    confidence: np.ndarray  # probability of the preferred answer
    prompts: int


def pairwise_triples(llm: LLM, split: Split, users: np.ndarray, pairs_per_user: int = 1, max_history: int = 10,
                     min_confidence: float = 0.5, seed: int = 0) -> PairwiseAugmentation:
    """Direct-task augmentation: the LLM ranks random pairs of un-interacted items per user."""
    rng = np.random.default_rng(seed)
    seqs = user_sequences(split.train, split.n_users)
    records, prompts, choices = [], [], None
    for u in users:
        hist = _recent_history(split, seqs, u, max_items=max_history)
        for _ in range(pairs_per_user):
            a, b = _uninteracted(split, u, rng, 2)
            text, choices = prompting.pairwise_prompt(split.dataset, hist, a, b)
            records.append((u, a, b))
            prompts.append(text)
    if not prompts:
        return PairwiseAugmentation(np.zeros((0, 3), np.int64), np.zeros(0), 0)
    assert choices is not None, "set along with the first prompt"
    probs = choice_probs(llm.choice_logprobs(prompts, choices))
    rec = np.array(records, dtype=np.int64)
    first = probs[:, 0] >= probs[:, 1]
    triples = np.where(first[:, None], rec, rec[:, [0, 2, 1]])
    conf = np.where(first, probs[:, 0], probs[:, 1])
    keep = conf >= min_confidence
    return PairwiseAugmentation(triples[keep], conf[keep], len(prompts))


def sequence_insertions(llm: LLM, split: Split, users: np.ndarray, n_candidates: int = 5, max_history: int = 10,
                        seed: int = 0) -> np.ndarray:
    """Sequential-task augmentation: (user, position, item) rows; position indexes the training sequence."""
    rng = np.random.default_rng(seed)
    seqs = user_sequences(split.train, split.n_users)
    prompts, cands, rows = [], [], []
    choices: list[str] = []
    for u in users:
        c = _uninteracted(split, u, rng, n_candidates)
        text, choices = prompting.next_item_prompt(split.dataset, _recent_history(split, seqs, u, max_history), c)
        prompts.append(text)
        cands.append(c)
        rows.append(u)
    if not prompts:
        return np.zeros((0, 3), np.int64)
    pick = choice_probs(llm.choice_logprobs(prompts, choices)).argmax(axis=1)
    out = []
    for u, c, p in zip(rows, cands, pick):
        position = int(rng.integers(0, len(seqs[u]) + 1))  # any slot of the training sequence, ends included
        out.append((u, position, int(c[p])))
    return np.array(out, dtype=np.int64)


# a few well-known films as in-context examples for movie datasets (the paper's L4c prompt has examples)
MOVIE_EXAMPLES = {
    "director": [("Toy Story (1995)", "John Lasseter"), ("Star Wars (1977)", "George Lucas"),
                 ("Fargo (1996)", "Joel Coen")],
    "star": [("Toy Story (1995)", "Tom Hanks"), ("Star Wars (1977)", "Mark Hamill"),
             ("Fargo (1996)", "Frances McDormand")],
}


def attribute_examples(attribute: str, noun: str, given: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The in-context examples for asking ``attribute`` of ``noun`` items: those ``given`` for it (the
    ``da_examples`` option: ``[[item title, value], ...]``), else the built-in movie ones on movie data; any
    other case is an error naming the option (movie examples on books would teach the LLM movie answers)."""
    if attribute in given:
        pairs = given[attribute]
        if (not isinstance(pairs, list) or not pairs
                or not all(isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, str) and v.strip()
                                                                               for v in p) for p in pairs)):
            raise ConfigError(f"option 'da_examples.{attribute}' must be a list of [item title, value] pairs of "
                              f"non-empty text, got {pairs!r}")
        return [(str(title), str(value)) for title, value in pairs]
    if noun == "movie" and attribute in MOVIE_EXAMPLES:
        return list(MOVIE_EXAMPLES[attribute])
    builtin = f"built-in ones are for movies: {', '.join(MOVIE_EXAMPLES)}"
    raise ConfigError(f"rating task: no in-context examples for the {noun}s' {attribute!r} ({builtin}); give some "
                      f"with da_examples: {{{attribute}: [[item title, value], ...]}}, or name other da_attributes")


def check_attribute_examples(attributes: Sequence[str], noun: str, given: Mapping[str, Any]) -> None:
    """Before any work: every attribute has examples, and every example set is for an attribute asked for."""
    if unused := sorted(map(str, set(given) - set(attributes))):
        asked = ", ".join(map(str, attributes)) or "none"
        raise ConfigError(f"option 'da_examples': examples for {', '.join(unused)}, which da_attributes does not "
                          f"ask for (it asks for: {asked})")
    for attribute in attributes:
        attribute_examples(attribute, noun, given)


@dataclass
class AttributeAugmentation:
    values: list[str]  # one per item, "" where the answer was unusable
    counts: dict[str, int]  # parse outcomes: valid / invalid / hallucinated


def item_attributes(llm: LLM, dataset: Dataset, attribute: str, *, examples: Sequence[tuple[str, str]],
                    items: np.ndarray | None = None, max_new_tokens: int = 12) -> AttributeAugmentation:
    """Rating-task augmentation: ask the LLM for one attribute of every item (greedy decoding).

    ``examples``: (item title, value) pairs shown first (:func:`attribute_examples`). Answers are parsed by
    :func:`recfuse.llm.parsing.parse_attribute`; an answer that repeats an in-context example's value is counted
    as hallucinated (a copy, not knowledge) and left out.
    """
    examples = list(examples)
    items = np.arange(dataset.n_items) if items is None else items
    prompts = [prompting.attribute_prompt(dataset, i, attribute, examples) for i in items]
    answers = llm.generate(prompts, max_new_tokens=max_new_tokens, temperature=0.0, stop=["\n"])
    stats, copied = ParseStats(), {v.lower() for _, v in examples}
    full = [""] * dataset.n_items
    for i, text in zip(items, answers):
        res = parse_attribute(text)
        if res.ok and str(res.value).lower() in copied:
            res = ParseResult("hallucinated", res.value, text, "copied an in-context example")
        stats.record(attribute, res)
        if res.ok:
            full[int(i)] = str(res.value)
    counts = stats.to_dict()
    return AttributeAugmentation(full, counts)


def add_attribute(dataset: Dataset, name: str, values: Sequence[str], min_count: int = 2) -> None:
    """Add an LLM-supplied attribute as a categorical item feature (values seen fewer than
    ``min_count`` times become missing: a value on one item carries no shared signal)."""
    vals = np.asarray(values, dtype=object)
    uniq, counts = np.unique(vals[vals != ""], return_counts=True)
    frequent = set(uniq[counts >= min_count])
    dataset.item_features.add(Feature.categorical(name, [v if v in frequent else None for v in vals]))
