"""Structured profiles (RecLM R6, R7): "Identities: ...; Interests: ...", generated, validated and counted.

* user profiles from the user's history and the most similar users' histories (eq. 5);
* item profiles of items with training interactions from the profiles of their users (appendix 6.6);
* cold-start item profiles from the most similar items by raw text embedding, and their profiles.

Profiles are written by structured generation (:func:`structured_answers`): the answer is started with
"Identities:" for the model, and where its line ends without "Interests:", a second pass starts that part
too, so even a small model answers in the format. Every answer is then parsed by
:func:`parse_structured_profile`; an invalid one (too short, repetitive, a part missing or trivial) is
counted in a :class:`~recfuse.llm.parsing.ParseStats` and replaced by a fallback built from the data
(recent titles), also counted, so no profile is silently empty.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recfuse.data.dataset import Dataset
from recfuse.llm.base import LLM, Prompt, RequiredPart, normalize_prompt, supports_required_part
from recfuse.llm.parsing import ParseResult, ParseStats, parse_profile
from recfuse.llm.prompts import PromptBuilder, escape_text
from recfuse.reclm.text import nearest

# item ids as the callers hold them: lists, or rows/slices of numpy arrays
ItemIds = Sequence[int] | np.ndarray

USER_FORMAT = ("Answer in exactly this format: Identities: <who the user is, e.g. age group, occupation, "
               "taste>; Interests: <the kinds of {plural} they enjoy and avoid>")
ITEM_FORMAT = ("Answer in exactly this format: Identities: <the kinds of users it appeals to>; "
               "Interests: <what the {domain} offers them>")
_PART = re.compile(r"(identit(?:y|ies)|interests?)\s*[:\-]\s*", re.IGNORECASE)
_INTERESTS = re.compile(r"interests?\s*:", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"<[^<>\n]{1,80}>")  # the format's "<who the user is ...>" copied, not filled in
IDENTITIES_HEAD = "Identities:"
#: changes when what counts as a valid profile changes (in the profiles stage's key: cached profiles parsed
#: by older rules are not reused); 2: copied <placeholders> are invalid; 3: so are field names echoed back;
#: 4: so is a profile written word for word for many users or items (:func:`shared_verbatim`)
PARSER_VERSION = 4
INTERESTS_INSERT = "; Interests:"


#: the words of both format instructions: an "Identities" part made (almost) only of them lists the fields
_FORMAT_WORDS = frozenset(re.findall(r"[a-z]+", (USER_FORMAT + ITEM_FORMAT).lower())) - {"plural", "domain"}


def _format_echo(part: str, share: float = 0.7) -> bool:
    """Whether ``part`` ("Age Group; Occupation; Taste") is at least ``share`` words of the format instruction
    and has no number: the fields named back instead of filled in."""
    if re.search(r"\d", part):
        return False
    words = re.findall(r"[a-z]+", part.lower())
    return bool(words) and sum(w in _FORMAT_WORDS for w in words) >= share * len(words)


def format_profile(identities: str, interests: str) -> str:
    """The canonical one-line profile text."""
    return f"Identities: {identities.strip().rstrip(';')}; Interests: {interests.strip().rstrip(';')}"


def parse_structured_profile(text: str, min_words: int = 2) -> ParseResult:
    """A structured profile: valid when both parts are present, non-trivial and the text is not degenerate.

    The value is the canonical text (:func:`format_profile`).
    """
    base = parse_profile(text, min_words=min_words * 2)
    if not base.ok:
        return base
    parts: dict[str, str] = {}
    matches = list(_PART.finditer(base.value))
    for n, m in enumerate(matches):
        end = matches[n + 1].start() if n + 1 < len(matches) else len(base.value)
        key = "identities" if m.group(1).lower().startswith("identit") else "interests"
        parts.setdefault(key, base.value[m.end():end].strip().strip(";,. \n"))
    missing = [k for k in ("identities", "interests") if len(parts.get(k, "").split()) < min_words]
    if missing:
        return ParseResult("invalid", None, text, f"missing {' and '.join(missing)}")
    if any(_PLACEHOLDER.search(parts[k]) for k in ("identities", "interests")):
        return ParseResult("invalid", None, text, "copies the format's <placeholders>")
    if _format_echo(parts["identities"]):
        return ParseResult("invalid", None, text, "names the format's fields instead of filling them in")
    return ParseResult("valid", format_profile(parts["identities"], parts["interests"]), text)


def with_format(prompt: str, fmt: str) -> str:
    """Insert the format instruction before the prompt's final "Profile of ...:" line."""
    head, _, last = prompt.rpartition("\n")
    return f"{head}\n{fmt}\n{last}" if head else f"{fmt}\n{prompt}"


def prefilled(prompt: Prompt, head: str) -> list[dict[str, str]]:
    """Chat messages whose assistant answer already starts with ``head`` (the model continues it)."""
    p = normalize_prompt(prompt)
    msgs = [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
    if msgs[-1]["role"] == "assistant":
        return msgs[:-1] + [{"role": "assistant", "content": msgs[-1]["content"] + head}]
    return msgs + [{"role": "assistant", "content": head}]


def _continued(head: str, answer: str) -> str:
    """``head`` + the model's continuation (a backend that ignored the started answer repeats it: kept once)."""
    a = answer.strip()
    if a.lower().startswith(head.split(":")[0].lower()):
        return a
    return f"{head} {a}"


def structured_answers(llm: LLM, prompts: Sequence[Prompt], max_new_tokens: int = 96,
                       repetition_penalty: float = 1.0) -> list[str]:
    """Raw one-line profiles in the "Identities: ...; Interests: ..." format.

    Every answer is started with "Identities:" and ends at the end of its line. Where the model would end
    the line (or has written ``max_new_tokens`` tokens) without "Interests:", "; Interests:" is written for
    it and it goes on for up to ``max(16, max_new_tokens // 2)`` more tokens. A backend that supports
    :class:`~recfuse.llm.base.RequiredPart` (the local one) does this in one pass; with the others it takes
    two batched calls: pass 1 writes the line, and where it has no "Interests:", pass 2 starts
    "Identities: <what pass 1 wrote, up to its first ';'>; Interests:". The texts still go through
    :func:`parse_structured_profile`: the format is guaranteed, the content is not.
    ``repetition_penalty`` goes to every call.
    """
    if not prompts:
        return []
    penalty: dict[str, Any] = {"repetition_penalty": repetition_penalty} if repetition_penalty != 1.0 else {}
    rest_tokens = max(16, max_new_tokens // 2)
    if supports_required_part(llm):
        part = RequiredPart(_INTERESTS.pattern, INTERESTS_INSERT, within=max_new_tokens)
        answers = llm.generate([prefilled(p, IDENTITIES_HEAD) for p in prompts],
                               max_new_tokens=max_new_tokens + rest_tokens, stop=["\n"], require=part, **penalty)
        return [_continued(IDENTITIES_HEAD, a) for a in answers]
    first = llm.generate([prefilled(p, IDENTITIES_HEAD) for p in prompts], max_new_tokens=max_new_tokens,
                         stop=["\n"], **penalty)
    texts = [_continued(IDENTITIES_HEAD, a) for a in first]
    todo = [r for r, t in enumerate(texts) if not _INTERESTS.search(t)]
    if todo:
        heads = []
        for r in todo:
            ident = texts[r][len(IDENTITIES_HEAD):].split(";")[0].strip().rstrip(".,")
            heads.append(f"{IDENTITIES_HEAD} {ident}{INTERESTS_INSERT}")
        rest = llm.generate([prefilled(prompts[r], h) for r, h in zip(todo, heads)],
                            max_new_tokens=rest_tokens, stop=["\n"], **penalty)
        for r, h, a in zip(todo, heads, rest):
            texts[r] = _continued(h, a)
    return texts


def titles(dataset: Dataset, items: Sequence[int]) -> list[str]:
    return [dataset.item_title(int(i)) for i in items]


def history_texts(dataset: Dataset, items: ItemIds) -> list[str]:
    """Items as prompts show them: the title with its categorical side information (genres, category)."""
    return [dataset.item_brief(int(i)) for i in items]


def fallback_user_profile(dataset: Dataset, history: ItemIds, n: int = 5) -> str:
    recent = [escape_text(t, 60) for t in titles(dataset, list(history)[-n:])]
    return format_profile("unknown", ", ".join(recent) or "unknown")


def fallback_item_profile(dataset: Dataset, item: int | np.integer) -> str:
    return fallback_profile_of_description(dataset.item_description(int(item)))


def fallback_profile_of_description(description: str) -> str:
    """The profile an item gets where no LLM wrote one: its description (:meth:`Dataset.item_description`)."""
    return format_profile("unknown", escape_text(description, 200))


@dataclass
class ProfileSet:
    """Profiles of users or items, with the parse counts and which rows fell back."""

    texts: list[str]
    fallback: np.ndarray
    stats: ParseStats = field(default_factory=ParseStats)

    def report(self) -> dict:
        return {**self.stats.to_dict(), "fallback": int(self.fallback.sum()), "rows": len(self.texts)}


def shared_verbatim(results: Sequence[ParseResult], share: float = 0.01, at_least: int = 3) -> list[ParseResult]:
    """``results`` with every valid profile that at least ``at_least`` rows and ``share`` of all rows got word for
    word (case and spacing aside) made invalid: a profile written the same for many users (or items) says
    nothing about any one of them (small models fall back on one stock answer)."""
    key = [" ".join(r.value.lower().split()) if r.ok else None for r in results]
    counts = Counter(k for k in key if k is not None)
    limit = max(at_least, math.ceil(share * len(results)))
    return [ParseResult("invalid", None, r.raw, f"the same profile word for word for {counts[k]} rows")
            if k is not None and counts[k] >= limit else r for r, k in zip(results, key)]


def generate_profiles(llm: LLM, prompts: list[str], task: str, fallbacks: list[str], max_new_tokens: int,
                      stats: ParseStats, repetition_penalty: float = 1.0) -> tuple[list[str], np.ndarray]:
    """Generate (structured, :func:`structured_answers`), parse (:func:`parse_structured_profile`, then
    :func:`shared_verbatim` over all rows; counted under ``task``) and replace invalid answers by
    ``fallbacks``; returns the texts and which rows fell back."""
    answers = structured_answers(llm, prompts, max_new_tokens, repetition_penalty)
    parsed = shared_verbatim([parse_structured_profile(ans) for ans in answers])
    texts, fb = [], np.zeros(len(prompts), dtype=bool)
    for r, (res, alt) in enumerate(zip(parsed, fallbacks, strict=True)):
        stats.record(task, res)
        texts.append(res.value if res.ok else alt)
        fb[r] = not res.ok
    return texts, fb


def user_profile_prompt(builder: PromptBuilder, dataset: Dataset, history: ItemIds,
                        similar_histories: Sequence[ItemIds], user: int | None = None) -> str:
    """Eq. 5: the target's and its neighbours' histories -> the target's structured profile; with ``user``,
    the target's side information too (R4: user text), where the dataset has any."""
    p = builder.user_profile(history_texts(dataset, history),
                             user_text=dataset.user_brief(user) if user is not None else None,
                             similar_histories=[history_texts(dataset, h) for h in similar_histories])
    return with_format(p, USER_FORMAT.format(plural=builder.plural))


def user_profiles(llm: LLM, builder: PromptBuilder, dataset: Dataset, hist: list[np.ndarray],
                  similar: np.ndarray, users: np.ndarray, max_new_tokens: int = 96,
                  user_info: bool = True, repetition_penalty: float = 1.0) -> ProfileSet:
    """Profiles of ``users`` (rows in the order of ``users``); ``similar`` is (n_users, k) neighbours;
    ``user_info`` shows each target's side information."""
    prompts = [user_profile_prompt(builder, dataset, hist[u], [hist[s] for s in similar[u] if s >= 0],
                                   int(u) if user_info else None)
               for u in users]
    stats = ParseStats()
    texts, fb = generate_profiles(llm, prompts, "user_profile", [fallback_user_profile(dataset, hist[u]) for u in users],
                                  max_new_tokens, stats, repetition_penalty)
    return ProfileSet(texts, fb, stats)


def item_profiles(llm: LLM, builder: PromptBuilder, dataset: Dataset, train: sp.csr_matrix,
                  user_texts: Sequence[str], text_emb: np.ndarray, max_users: int = 3, n_similar: int = 2,
                  max_new_tokens: int = 96, repetition_penalty: float = 1.0,
                  written: np.ndarray | None = None) -> ProfileSet:
    """Profiles of every item (appendix 6.6).

    Items with training interactions: from the profiles of up to ``max_users`` of their users (the
    lowest user ids, deterministic; where ``written`` marks the users whose profiles the LLM wrote, those
    first). Cold items (no training interaction): from the ``n_similar`` warm items nearest by raw text
    embedding (``text_emb``, unit rows) and their profiles.
    """

    n_items = train.shape[1]
    csc = train.tocsc()
    counts = np.diff(csc.indptr)
    warm = np.flatnonzero(counts > 0)
    cold = np.flatnonzero(counts == 0)
    stats = ParseStats()
    texts = [""] * n_items
    fb = np.zeros(n_items, dtype=bool)
    fmt = ITEM_FORMAT.format(domain=builder.domain)
    prompts = []
    for i in warm:
        users = csc.indices[csc.indptr[i]:csc.indptr[i + 1]]
        if written is not None:  # the LLM's profiles first, then fallbacks; by id within each (a stable sort)
            users = users[np.argsort(~written[users], kind="stable")]
        users = users[:max_users]
        prompts.append(with_format(builder.item_profile(dataset.item_description(int(i)),
                                                        user_profiles=[user_texts[u] for u in users]), fmt))
    got, f = generate_profiles(llm, prompts, "item_profile", [fallback_item_profile(dataset, i) for i in warm],
                               max_new_tokens, stats, repetition_penalty)
    for i, t, b in zip(warm, got, f):
        texts[i], fb[i] = t, b
    if len(cold):
        if not len(warm):
            raise ValueError("no item has a training interaction: cold items have no similar profiled item")
        near = warm[nearest(text_emb[cold], text_emb[warm], n_similar)]
        prompts = [with_format(builder.item_profile(
            dataset.item_description(int(i)),
            similar_items=[(dataset.item_title(int(j)), texts[j]) for j in near[r]]), fmt)
            for r, i in enumerate(cold)]
        got, f = generate_profiles(llm, prompts, "cold_item_profile", [fallback_item_profile(dataset, i) for i in cold],
                                   max_new_tokens, stats, repetition_penalty)
        for i, t, b in zip(cold, got, f):
            texts[i], fb[i] = t, b
    return ProfileSet(texts, fb, stats)
