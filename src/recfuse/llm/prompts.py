"""Prompt templates for every LLM task of both papers.

Llama4Rec (seed 000, Figure 2 and section 4.2): listwise ranking and pointwise rating prediction with
the optional similar-user history (4.3.1) and backbone prediction (4.3.2); pairwise preference (4.2.1)
and next-item pick (4.2.2) for data augmentation; attribute completion with in-context examples (4.2.3).
RecLM (seed 002, section 2.3.2 and appendix 6.6): user profile, item profile, and the two-turn
collaborative dialogue (turn 1: profiles of the target and similar users; turn 2: Yes/No on a candidate).

Every prompt whose answer is one of a fixed set asks for a short label (a digit, a letter, Yes/No) so
that :meth:`LLM.choice_logprobs` reads the answer as probabilities in one pass. Item text is escaped
(:func:`escape_text`) so that a title cannot break the prompt's structure, and histories are cut to a
token budget keeping the most recent items (:func:`fit_history`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from recfuse.llm.base import choice_letters

if TYPE_CHECKING:
    import numpy as np

TokenCounter = Callable[[str], int]

#: the wording of the project's prompts (these templates, Llama4Rec's prompting and RecLM's profile formats):
#: raise it when a change alters what an LLM is asked. The stages whose outputs come from prompts without
#: holding them (Llama4Rec's augmentations, RecLM's tuning data and profiles) carry it in their keys
#: (:func:`template_key`), so caches built on the old wording are recomputed; tuning is keyed by its dialogues
#: and the answer cache by each prompt, so they need none. ``tests/test_prompt_revision.py`` pins the
#: wording to this number and fails, saying so, when one changes without the other.
TEMPLATE_REVISION = 1


def template_key() -> dict[str, int]:
    """What a stage key holds of the prompts' wording: its revision once raised (nothing at 1, so that stages
    built before revisions existed stay cached)."""
    return {"prompts": TEMPLATE_REVISION} if TEMPLATE_REVISION != 1 else {}


RATING_CHOICES = ["1", "2", "3", "4", "5"]
YES_NO = ["Yes", "No"]
PAIR_CHOICES = ["A", "B"]
SEP = "; "

_CTRL = re.compile(r"[\x00-\x1f\x7f]+")
_SPACES = re.compile(r"\s+")
_SPECIAL = re.compile(r"<\||\|>|\[/?INST\]|<</?SYS>>|</?s>", re.IGNORECASE)


def approx_tokens(text: str) -> int:
    """A tokenizer-free token estimate (about 4 characters per token); pass a real counter when you have one."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def escape_text(text: object, max_chars: int = 200) -> str:
    """Item text made safe inside a prompt: one line, no list separators, no chat-template markers.

    Newlines and control characters become spaces (a title cannot start a new section), ``;`` becomes
    ``,`` (it separates list entries), chat special-token markers such as ``<|im_end|>`` or ``[INST]``
    are defused, and over-long text is cut at ``max_chars`` with an ellipsis.
    """
    s = "" if text is None else str(text)
    s = _CTRL.sub(" ", s)
    s = _SPACES.sub(" ", s).strip()
    s = s.replace(";", ",")
    s = _SPECIAL.sub(lambda m: m.group(0).replace("<", "‹").replace(">", "›").replace("[", "(")
                     .replace("]", ")").replace("|", "¦"), s)
    if len(s) > max_chars:
        s = s[:max_chars - 1].rstrip() + "…"
    return s or "(untitled)"


def fit_history(entries: Sequence[str], budget: int | None, count_tokens: TokenCounter = approx_tokens,
                sep: str = SEP) -> list[str]:
    """The most recent entries of a chronological history whose joined text fits in ``budget`` tokens.

    The newest entries are kept first: the result is the longest suffix whose joined text counts at most
    ``budget`` tokens (found by bisection, so long histories cost a few counts). It stays in chronological
    order (oldest kept first), so the newest items sit right before the question. ``None``: no limit.
    """
    entries = list(entries)
    if budget is None or not entries:
        return entries
    if count_tokens(sep.join(entries)) <= budget:
        return entries
    lo, hi = 0, len(entries)  # fits(lo) is true, fits(hi) is false
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count_tokens(sep.join(entries[-mid:])) <= budget:
            lo = mid
        else:
            hi = mid
    return entries[len(entries) - lo:] if lo else []


def _join(entries: Sequence[str]) -> str:
    return SEP.join(entries) if entries else "(none)"


def _rating_str(r: float) -> str:
    r = float(r)
    return str(int(r)) if r.is_integer() else f"{r:.1f}"


@dataclass
class PromptBuilder:
    """Builds the prompts of both papers.

    ``domain`` names the items ("movie", "book", "news article"); ``history_tokens`` is the token
    budget of each history in a prompt (the most recent items are kept); ``count_tokens`` counts tokens
    (pass ``llm.count_tokens`` for exact budgets; the default estimates); ``max_item_chars`` cuts long
    item text. Item arguments are item texts (``dataset.item_title(i)`` or ``item_description(i)``).
    """

    domain: str = "movie"
    history_tokens: int | None = 400
    count_tokens: TokenCounter = field(default=approx_tokens, repr=False)
    max_item_chars: int = 200

    @property
    def plural(self) -> str:
        d = self.domain
        return d[:-1] + "ies" if d.endswith("y") and d[-2:-1] not in "aeiou" else d + "s"

    def _items(self, items: Sequence[object]) -> list[str]:
        return [escape_text(t, self.max_item_chars) for t in items]

    def history(self, items: Sequence[object], ratings: Sequence[float] | np.ndarray | None = None,
                budget: int | None = -1) -> str:
        """A chronological history as Figure 2 writes it (``Title; Title`` or ``Title: 4; Title: 3``)."""
        texts = self._items(items)
        if ratings is not None:
            texts = [f"{t}: {_rating_str(r)}" for t, r in zip(texts, ratings, strict=True)]
        return _join(fit_history(texts, self.history_tokens if budget == -1 else budget, self.count_tokens))

    def _candidates(self, candidates: Sequence[object]) -> tuple[str, list[str]]:
        labels = choice_letters(len(candidates))
        lines = [f"{lab}. {t}" for lab, t in zip(labels, self._items(candidates))]
        return "\n".join(lines), labels

    # ------------------------------------------------------------ Llama4Rec
    def listwise_ranking(self, history: Sequence[object], candidates: Sequence[object], *,
                         similar_history: Sequence[object] | None = None,
                         backbone_prediction: Sequence[object] | None = None,
                         k: int | None = None) -> tuple[str, list[str]]:
        """Figure 2, top-k: rank the candidates; returns the prompt and the candidates' letters (the choices).

        ``backbone_prediction`` is the backbone's ranked list (item texts); ``similar_history`` the most
        similar user's history. Scoring the letters with ``choice_logprobs`` ranks all candidates in one pass.
        """
        cand, labels = self._candidates(candidates)
        k = k or len(candidates)
        parts = [f"Instruction: Rank the candidate {self.plural} based on the user's historical interactions "
                 f"and make the top {k} recommendations.",
                 f"Interaction History: {self.history(history)}",
                 f"Candidate Items:\n{cand}"]
        if similar_history is not None:
            parts.append(f"Similar User Interaction History: {self.history(similar_history)}")
        if backbone_prediction is not None:
            parts.append(f"Conventional Model Prediction: {_join(self._items(backbone_prediction))}")
        parts.append(f"Answer with the letter of the candidate the user is most likely to enjoy "
                     f"({labels[0]}-{labels[-1]}).")
        return "\n".join(parts), labels

    @staticmethod
    def ranking_response(labels_in_order: Sequence[str]) -> str:
        """The tuning target of a listwise ranking: letters best first (the first letter is what scoring reads)."""
        return ", ".join(labels_in_order)

    def rating_prediction(self, history: Sequence[object], ratings: Sequence[float] | np.ndarray, target: object, *,
                          similar_history: Sequence[object] | None = None,
                          similar_ratings: Sequence[float] | np.ndarray | None = None,
                          backbone_prediction: float | None = None, scale: int = 5) -> str:
        """Figure 2, rating prediction: the user's rating history and a candidate item; answer a digit 1..scale."""
        parts = [f"Instruction: Predict the rating of a target {self.domain} based on the user's historical "
                 f"{self.domain} ratings.",
                 f"Rating History: {self.history(history, ratings)}",
                 f"Candidate Item: {escape_text(target, self.max_item_chars)}"]
        if similar_history is not None:
            parts.append(f"Similar User Rating History: {self.history(similar_history, similar_ratings)}")
        if backbone_prediction is not None:
            parts.append(f"Conventional Model Prediction: {float(backbone_prediction):.1f}")
        parts.append(f"Answer with a single digit from 1 to {scale}.")
        return "\n".join(parts)

    def pointwise_ranking(self, history: Sequence[object], candidate: object, *,
                          similar_history: Sequence[object] | None = None,
                          backbone_score: float | None = None, scale: int = 5) -> str:
        """Pointwise ranking (section 4.5.1) on implicit feedback: how much the user would like one candidate."""
        parts = [f"Instruction: Predict how much the user would like a candidate {self.domain} based on the "
                 f"user's historical interactions, on a scale from 1 (not at all) to {scale} (very much).",
                 f"Interaction History: {self.history(history)}",
                 f"Candidate Item: {escape_text(candidate, self.max_item_chars)}"]
        if similar_history is not None:
            parts.append(f"Similar User Interaction History: {self.history(similar_history)}")
        if backbone_score is not None:
            parts.append(f"Conventional Model Prediction: {float(backbone_score):.1f}")
        parts.append(f"Answer with a single digit from 1 to {scale}.")
        return "\n".join(parts)

    def pairwise_preference(self, history: Sequence[object], item_a: object, item_b: object) -> str:
        """Section 4.2.1 (direct data augmentation): which of two items the user prefers; answer A or B."""
        a, b = self._items([item_a, item_b])
        return "\n".join([
            f"Instruction: Based on the user's historical interactions, decide which of two {self.plural} "
            f"the user prefers.",
            f"Interaction History: {self.history(history)}",
            f"A. {a}", f"B. {b}",
            "Answer with A or B."])

    def next_item_pick(self, history: Sequence[object], candidates: Sequence[object]) -> tuple[str, list[str]]:
        """Section 4.2.2 (sequential data augmentation): the candidate the user most likely interacts with next."""
        cand, labels = self._candidates(candidates)
        prompt = "\n".join([
            f"Instruction: Based on the user's interaction sequence, pick the {self.domain} the user is most "
            f"likely to interact with next.",
            f"Interaction Sequence: {self.history(history)}",
            f"Candidate Items:\n{cand}",
            f"Answer with the letter of one candidate ({labels[0]}-{labels[-1]})."])
        return prompt, labels

    def attribute_completion(self, item: object, attribute: str,
                             examples: Sequence[tuple[object, str]] = ()) -> str:
        """Section 4.2.3 (rating data augmentation): an item's missing attribute, with in-context examples.

        ``examples`` are (item text, value) pairs from items whose attribute is known. The answer is free
        text (a value on one line), read by :func:`recfuse.llm.parsing.parse_attribute`.
        """
        attr = escape_text(attribute, 60)
        lines = [f"Instruction: Give the {attr} of the {self.domain}. Answer with the value only, on one line; "
                 f"answer Unknown if you do not know."]
        for text, value in examples:
            lines.append(f"{self.domain.capitalize()}: {escape_text(text, self.max_item_chars)}\n"
                         f"{attr.capitalize()}: {escape_text(value, 100)}")
        lines.append(f"{self.domain.capitalize()}: {escape_text(item, self.max_item_chars)}\n{attr.capitalize()}:")
        return "\n\n".join(lines)

    # ---------------------------------------------------------------- RecLM
    def user_profile(self, history: Sequence[object], *, user_text: str | None = None,
                     similar_histories: Sequence[Sequence[object]] = ()) -> str:
        """RecLM eq. 5 / Figure 7: a profile of the target user from their and similar users' histories."""
        lines = ["Instruction: You are a recommender system that understands collaborative filtering: users "
                 "with similar interaction histories share preferences. Write a short profile of the target "
                 f"user: the kinds of {self.plural} they enjoy (genres, topics, styles) and what they avoid. "
                 "Use at most 60 words and do not list titles."]
        if user_text:
            lines.append(f"Target user information: {escape_text(user_text, 400)}")
        lines.append(f"Target user history: {self.history(history)}")
        for n, h in enumerate(similar_histories, 1):
            lines.append(f"Similar user {n} history: {self.history(h)}")
        lines.append("Profile of the target user:")
        return "\n".join(lines)

    def item_profile(self, item: object, *, user_profiles: Sequence[str] = (),
                     similar_items: Sequence[tuple[object, str]] = ()) -> str:
        """RecLM Figure 8: an item's profile from its users' profiles, or (cold start) similar items' profiles."""
        lines = [f"Instruction: Write a short profile of the target {self.domain}: which users it appeals to "
                 f"and why. Use at most 60 words."]
        lines.append(f"Target {self.domain}: {escape_text(item, 400)}")
        for n, p in enumerate(user_profiles, 1):
            lines.append(f"Profile of user {n} who interacted with it: {escape_text(p, 400)}")
        for n, (text, prof) in enumerate(similar_items, 1):
            lines.append(f"Similar {self.domain} {n}: {escape_text(text, self.max_item_chars)}\n"
                         f"Its profile: {escape_text(prof, 400)}")
        lines.append(f"Profile of the target {self.domain}:")
        return "\n".join(lines)

    def collaborative_dialogue(self, target_history: Sequence[object],
                               similar_histories: Sequence[Sequence[object]], candidate: object, *,
                               profiles: Sequence[str] | None = None, answer: str | None = None,
                               with_first_response: bool = True) -> list[dict[str, str]]:
        """RecLM section 2.3.2 / Figure 6: the two-turn collaborative instruction as chat messages.

        Turn 1 asks for profiles of the target user and each similar user from their histories; its
        response is ``profiles`` (target first), e.g. from a teacher LLM (omitted when ``None``). Turn 2 asks
        whether the target user will interact with ``candidate``; its response is ``answer`` ("Yes"/"No")
        when given (for tuning), otherwise the messages end with the question (score it with
        ``choice_logprobs(..., YES_NO)``). A positive candidate must already be removed from
        ``target_history`` by the caller (the paper's leakage rule).
        """
        system = ("You are a recommender system that understands collaborative filtering: users with similar "
                  "interaction histories share preferences.")
        q1 = [f"Here are the interaction histories of a target user and {len(similar_histories)} similar "
              f"user(s). Write a short profile for each user: the kinds of {self.plural} they enjoy.",
              f"Target user history: {self.history(target_history)}"]
        for n, h in enumerate(similar_histories, 1):
            q1.append(f"Similar user {n} history: {self.history(h)}")
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(q1)}]
        if profiles is not None and with_first_response:
            names = ["Target user"] + [f"Similar user {n}" for n in range(1, len(similar_histories) + 1)]
            if len(profiles) != len(names):
                raise ValueError(f"{len(profiles)} profiles given for {len(names)} users")
            msgs.append({"role": "assistant",
                         "content": "\n".join(f"{n}: {escape_text(p, 600)}" for n, p in zip(names, profiles))})
        q2 = (f"Based on these profiles and collaborative filtering, will the target user interact with this "
              f"{self.domain}? {escape_text(candidate, self.max_item_chars)}\nAnswer Yes or No.")
        msgs.append({"role": "user", "content": q2})
        if answer is not None:
            msgs.append({"role": "assistant", "content": answer})
        return msgs


def rating_choices(scale: int = 5) -> list[str]:
    """The allowed answers of a rating prompt: "1".."scale"."""
    return [str(i) for i in range(1, scale + 1)]


def item_texts(dataset, items: Sequence[int], description: bool = False,
               fields: Sequence[str] | None = None) -> list[str]:
    """Prompt text of internal items from a :class:`~recfuse.data.Dataset`: titles, or one-line descriptions."""
    if description:
        return [dataset.item_description(int(i), fields) for i in items]
    return [dataset.item_title(int(i)) for i in items]
