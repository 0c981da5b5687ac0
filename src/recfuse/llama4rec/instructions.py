"""Instruction examples for Llama4Rec (section 4.5.1), built from the training split only.

Instruction tuning must see the situation the LLM meets at inference: a history, a candidate list from
the backbone that does *not* know the answer, and the answer. So the training split is split once more,
leave-one-out inside it (:func:`inner_split`): the last training item of each user becomes the target,
and an *instruction backbone* trained on the rest supplies candidates, similar users and predictions.
Validation and test interactions never enter: they are not in ``split.train``.

Examples are id-level records; :mod:`recfuse.llama4rec.prompting` renders them as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recfuse.data.sequences import user_sequences
from recfuse.data.splits import Split


def inner_split(split: Split, min_interactions: int = 3, fold: int = 1) -> Split:
    """Leave-one-out inside the training split: per user with >= ``min_interactions`` training
    interactions, the last one becomes the inner ``test`` (and the one before it the inner ``valid``,
    for the instruction backbone's early stopping). The outer valid / test never appear.

    ``fold`` j > 1 moves the cut j - 1 items back in each user's sequence (users with at least
    ``min_interactions + j - 1`` items): the j-th last training item is the target, the one before it
    validation, the earlier ones training, and the user's later items are left out, so the backbone never
    sees what came after the target. Folds give more than one instruction per user (for thousands of
    instructions on a small dataset); users too short for a fold keep all their items in its training part.
    """
    if fold < 1:
        raise ValueError(f"fold counts from 1, not {fold}")
    train = split.train
    seqs = user_sequences(train, split.n_users)
    test_pos: list[int] = []
    valid_pos: list[int] = []
    dropped: list[int] = []
    for seq in seqs:
        if len(seq) >= min_interactions + fold - 1:
            test_pos.append(seq[-fold])
            valid_pos.append(seq[-fold - 1])
            dropped.extend(seq[len(seq) - fold + 1:])
    held = np.zeros(len(train), dtype=bool)
    held[test_pos] = True
    held[valid_pos] = True
    held[dropped] = True
    is_valid = np.zeros(len(train), dtype=bool)
    is_valid[valid_pos] = True
    is_test = np.zeros(len(train), dtype=bool)
    is_test[test_pos] = True
    name = "inner leave-one-out" if fold == 1 else f"inner leave-one-out at the {fold}th last item"
    return Split(split.dataset, train.take(~held), train.take(is_valid), train.take(is_test),
                 protocol=f"{name} of ({split.protocol}) training split",
                 info={"outer_protocol": split.protocol, **({"fold": fold} if fold > 1 else {})})


@dataclass
class Example:
    """One instruction (or one inference query) at the id level.

    ``history`` / ``history_ratings``: the user's items before the target, most recent first.
    ``candidates``: in the backbone's order (best first) for ranking tasks; ``target`` is the index
    of the right answer among them (-1 at inference when it is not there). For rating tasks
    ``candidates`` holds the one item to rate and ``rating`` the answer.
    """

    task: str  # "listwise" | "pointwise" | "rating"
    user: int
    history: np.ndarray
    history_ratings: np.ndarray | None
    candidates: np.ndarray
    target: int = -1
    rating: float | None = None
    similar_user: int = -1
    similar_history: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    similar_ratings: np.ndarray | None = None
    backbone_rating: float | None = None
    presented: np.ndarray | None = None  # order in which candidates appear in the prompt (indices)


def plant_target(candidates: np.ndarray, target_item: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Make sure the target is among the candidates: kept where the backbone put it, else it takes the
    place of a uniformly drawn candidate. Returns the candidates and the target's index."""
    hit = np.flatnonzero(candidates == target_item)
    if hit.size:
        return candidates, int(hit[0])
    candidates = candidates.copy()
    slot = int(rng.integers(len(candidates)))
    candidates[slot] = target_item
    return candidates, slot
