"""RecLM instruction data (R4, R5; section 2.3 and appendix 6.4).

* :func:`sample_collaborative`: the candidates of the second turn, exactly as section 2.3.2: 50% positives
  (an item of the target's training history that also appears in a similar user's history; removed from
  the target's history shown in turn 1, so the answer does not leak), 50% negatives (an item of a similar
  user's history the target never interacted with in training). Both sets are truncated to the same size.
* :func:`two_turn_dialogue` (Mask / full RecLM): turn 1 writes the profiles of the target and similar users
  (responses from the teacher), turn 2 answers Yes/No; both responses carry the loss, queries are masked
  (:func:`recfuse.llm.sft.tokenize_dialogue`).
* :func:`naive_dialogue` (Naive): a single turn, histories and candidate in one query, Yes/No answer.
* :func:`kd_dialogue` (GPT_KD): profile distillation, the inference prompt (eq. 5) -> the teacher's profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recfuse.data.dataset import Dataset
from recfuse.llm.prompts import YES_NO, PromptBuilder
from recfuse.llm.sft import as_messages
from recfuse.reclm.profiles import history_texts, user_profile_prompt

VARIANTS = ("gpt_kd", "naive", "mask")


@dataclass
class CollabSample:
    """One second-turn example: the target, its similar users, the candidate and its label."""

    user: int
    similar: list[int]
    candidate: int
    label: bool
    target_history: np.ndarray  # turn-1 history of the target (a positive candidate removed)


def sample_collaborative(hist: list[np.ndarray], similar: np.ndarray, users: Sequence[int] | np.ndarray, n: int,
                         rng: np.random.Generator) -> tuple[list[CollabSample], dict]:
    """Up to ``n`` samples, half positive and half negative (section 2.3.2); also counts for the report.

    ``hist`` holds each user's training items (oldest first); ``similar`` (n_users, k) the neighbours
    (-1: none). A positive needs at least one other item left in the target's history.
    """
    pos: list[CollabSample] = []
    neg: list[CollabSample] = []
    no_pos = no_neg = 0
    for u in users:
        u = int(u)
        sims = [int(s) for s in similar[u] if s >= 0]
        own = set(hist[u].tolist())
        theirs = set().union(*(set(hist[s].tolist()) for s in sims)) if sims else set()
        shared = sorted(own & theirs)
        if shared and len(own) > 1:
            v = int(rng.choice(shared))
            pos.append(CollabSample(u, sims, v, True, hist[u][hist[u] != v]))
        else:
            no_pos += 1
        unseen = sorted(theirs - own)
        if unseen:
            neg.append(CollabSample(u, sims, int(rng.choice(unseen)), False, hist[u]))
        else:
            no_neg += 1
    m = min(len(pos), len(neg), n // 2)

    def take(xs: list[CollabSample]) -> list[CollabSample]:
        return [xs[i] for i in np.sort(rng.choice(len(xs), m, replace=False))] if m else []

    out = take(pos) + take(neg)
    order = rng.permutation(len(out))
    info = {"samples": len(out), "positives": m, "negatives": m, "users_without_positive": no_pos,
            "users_without_negative": no_neg}
    return [out[i] for i in order], info


def answer(label: bool) -> str:
    return YES_NO[0] if label else YES_NO[1]


def turn1_prompts(builder: PromptBuilder, dataset: Dataset, hist: list[np.ndarray],
                  s: CollabSample, user_info: bool = True) -> list[str]:
    """The teacher's profile prompts for turn 1: the target (its leakage-free history, neighbours as
    context), then each similar user from their own history; ``user_info`` shows their side information."""
    out = [user_profile_prompt(builder, dataset, s.target_history, [hist[v] for v in s.similar],
                               s.user if user_info else None)]
    out += [user_profile_prompt(builder, dataset, hist[v], [], v if user_info else None) for v in s.similar]
    return out


def two_turn_dialogue(builder: PromptBuilder, dataset: Dataset, hist: list[np.ndarray], s: CollabSample,
                      profiles: Sequence[str]) -> list[dict]:
    """Figure 6: system, turn-1 query, profiles (response 1), turn-2 query, Yes/No (response 2)."""
    return builder.collaborative_dialogue(history_texts(dataset, s.target_history),
                                          [history_texts(dataset, hist[v]) for v in s.similar],
                                          dataset.item_brief(s.candidate), profiles=list(profiles),
                                          answer=answer(s.label))


def naive_dialogue(builder: PromptBuilder, dataset: Dataset, hist: list[np.ndarray], s: CollabSample) -> list[dict]:
    """The Naive variant: one turn (histories and the candidate in one query), Yes/No response."""
    msgs = builder.collaborative_dialogue(history_texts(dataset, s.target_history),
                                          [history_texts(dataset, hist[v]) for v in s.similar],
                                          dataset.item_brief(s.candidate))
    system, queries = msgs[0], [m["content"] for m in msgs[1:]]
    return [system, *as_messages("\n".join(queries), answer(s.label))]


def kd_dialogue(prompt: str, teacher_profile: str) -> list[dict]:
    """GPT_KD: the inference prompt and the teacher's (validated) profile."""
    return as_messages(prompt, teacher_profile)
