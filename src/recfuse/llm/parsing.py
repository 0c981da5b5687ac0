"""Parsers for the LLM's free text, each answer judged valid, invalid or hallucinated, with counts.

* **valid**: usable as asked.
* **invalid**: empty, malformed, degenerate (repetition), or "unknown".
* **hallucinated**: well-formed but naming something that does not exist (a candidate not offered, an
  attribute value outside the known vocabulary).

Nothing is dropped silently: :class:`ParseStats` counts every outcome per task and keeps a few raw
examples of failures; its :meth:`~ParseStats.to_dict` goes into the run's report.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["valid", "invalid", "hallucinated"]
STATUSES: tuple[Status, ...] = ("valid", "invalid", "hallucinated")


@dataclass
class ParseResult:
    """One parsed answer: its status, the value read (``None`` when invalid), the raw text, and why."""

    status: Status
    value: Any
    raw: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "valid"


@dataclass
class ParseStats:
    """Counts of valid / invalid / hallucinated answers per task, with a few raw failures for inspection."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    max_examples: int = 5

    def record(self, task: str, result: ParseResult) -> ParseResult:
        """Count one result (and return it, so parsing and counting read as one call)."""
        c = self.counts.setdefault(task, {s: 0 for s in STATUSES})
        c[result.status] += 1
        if result.status != "valid":
            ex = self.examples.setdefault(task, [])
            if len(ex) < self.max_examples:
                ex.append({"status": result.status, "reason": result.reason, "raw": result.raw[:300]})
        return result

    def merge(self, other: ParseStats) -> ParseStats:
        for task, c in other.counts.items():
            mine = self.counts.setdefault(task, {s: 0 for s in STATUSES})
            for s, n in c.items():
                mine[s] += n
        for task, ex in other.examples.items():
            self.examples.setdefault(task, []).extend(ex[: self.max_examples])
        return self

    def to_dict(self) -> dict[str, Any]:
        """``{task: {valid, invalid, hallucinated, total, valid_rate}, "examples": {...}}`` for the report."""
        out: dict[str, Any] = {}
        for task, c in self.counts.items():
            total = sum(c.values())
            out[task] = {**c, "total": total, "valid_rate": c["valid"] / total if total else float("nan")}
        if self.examples:
            out["examples"] = self.examples
        return out


_LEAD = re.compile(r"^\s*(?:answer|output|response|value)\s*[:\-]\s*", re.IGNORECASE)
_UNKNOWN = {"", "unknown", "n/a", "na", "none", "not available", "i don't know", "i do not know", "-", "?"}


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def _norm(s: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", s.lower()).strip()


def is_degenerate(text: str, max_repeat_share: float = 0.5) -> bool:
    """Whether text is mostly one repeated word or line (a common failure of small models)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) >= 3 and len(set(lines)) <= len(lines) * (1 - max_repeat_share):
        return True
    words = _norm(text).split()
    if len(words) >= 8:
        top = max(words.count(w) for w in set(words))
        if top > len(words) * max_repeat_share:
            return True
        trigrams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        if len(set(trigrams)) < len(trigrams) * (1 - max_repeat_share):
            return True
    return False


def parse_profile(text: str, min_words: int = 5, max_words: int = 400,
                  forbidden: Sequence[str] = ()) -> ParseResult:
    """A user or item profile: valid when it has ``min_words`` words or more and is not degenerate.

    Over-long text is cut at ``max_words``. ``forbidden`` strings (e.g. the prompt's own labels) that the
    answer merely echoes back make it invalid.
    """
    raw = text
    s = _LEAD.sub("", text.strip())
    s = re.sub(r"^\s*(?:profile(?: of the target (?:user|\w+))?\s*:)\s*", "", s, flags=re.IGNORECASE)
    words = s.split()
    if len(words) < min_words:
        return ParseResult("invalid", None, raw, f"too short ({len(words)} words)")
    if is_degenerate(s):
        return ParseResult("invalid", None, raw, "repetitive")
    low = s.lower()
    for f in forbidden:
        if f and low.startswith(f.lower()):
            return ParseResult("invalid", None, raw, f"echoes the prompt ({f!r})")
    if len(words) > max_words:
        s = " ".join(words[:max_words])
    return ParseResult("valid", s.strip(), raw)


def parse_attribute(text: str, vocabulary: Sequence[str] | None = None, numeric: bool = False,
                    cutoff: float = 0.85) -> ParseResult:
    """An attribute value (director, genre, page count) from the answer's first line.

    ``numeric``: the first number is read (none: invalid). ``vocabulary``: the value must match a known
    value (case and punctuation ignored, near matches above ``cutoff`` accepted and mapped to the known
    spelling); an unknown value is *hallucinated*. "Unknown" and empty answers are invalid.
    """
    line = _LEAD.sub("", _first_line(text))
    line = re.sub(r"^[A-Z][A-Za-z ]{0,30}:\s*", "", line) if ":" in line[:32] else line
    line = line.strip().strip("\"'`*").rstrip(".").strip()
    if line.lower() in _UNKNOWN:
        return ParseResult("invalid", None, text, "no value")
    if numeric:
        m = re.search(r"-?\d+(?:[.,]\d+)?", line)
        if not m:
            return ParseResult("invalid", None, text, "no number")
        return ParseResult("valid", float(m.group(0).replace(",", ".")), text)
    if vocabulary is not None:
        normed = {_norm(v): v for v in vocabulary}
        key = _norm(line)
        if key in normed:
            return ParseResult("valid", normed[key], text)
        close = difflib.get_close_matches(key, list(normed), n=1, cutoff=cutoff)
        if close:
            return ParseResult("valid", normed[close[0]], text, "near match")
        return ParseResult("hallucinated", line, text, "not in the known values")
    if is_degenerate(line):
        return ParseResult("invalid", None, text, "repetitive")
    return ParseResult("valid", line, text)


def parse_choice(text: str, choices: Sequence[str]) -> ParseResult:
    """A generated short answer (a rating, Yes/No, a letter) matched against the allowed choices."""
    s = _LEAD.sub("", _first_line(text)).strip().strip("\"'`*.").strip()
    if not s:
        return ParseResult("invalid", None, text, "empty")
    for c in choices:
        if s.lower() == c.lower():
            return ParseResult("valid", c, text)
    for c in choices:  # "4 stars", "Yes, because ...", "B."
        if re.match(rf"^{re.escape(c)}(?![0-9A-Za-z])", s, re.IGNORECASE):
            return ParseResult("valid", c, text)
    return ParseResult("invalid", None, text, "not one of the choices")


def parse_ranking(text: str, candidates: Sequence[str], labels: Sequence[str] | None = None,
                  cutoff: float = 0.9) -> ParseResult:
    """A generated ranking, read as candidate indices best first.

    Entries (split on newlines, ``;`` or ``,`` between letters) are matched to the candidates by their
    ``labels`` ("A", "B." or "(C)") or by title (case and punctuation ignored; near matches above
    ``cutoff``). Duplicates are dropped. An entry matching no candidate makes the answer *hallucinated*
    (the matched part is still returned as the value); no match at all is *invalid*.
    """
    s = _LEAD.sub("", text.strip())
    if not s:
        return ParseResult("invalid", None, text, "empty")
    by_label = {lab.lower(): i for i, lab in enumerate(labels or [])}
    by_title = {_norm(t): i for i, t in enumerate(candidates)}
    parts = [p.strip() for p in re.split(r"[\n;]+", s) if p.strip()]
    if labels and len(parts) == 1:
        parts = [p.strip() for p in parts[0].split(",") if p.strip()]
    order: list[int] = []
    unknown: list[str] = []
    for p in parts:
        p = re.sub(r"^\s*(?:\d+[.)]\s+|[-*•]\s*)", "", p)  # list numbering or bullets
        idx = None
        m = re.match(r"^\(?([A-Za-z]{1,2})[.):]?(?:\s+|$)", p)
        if by_label and m and m.group(1).lower() in by_label:
            idx = by_label[m.group(1).lower()]
            rest = p[m.end():].strip()
            if rest and _norm(rest) in by_title and by_title[_norm(rest)] != idx:
                idx = by_title[_norm(rest)]
        else:
            key = _norm(p)
            if key in by_title:
                idx = by_title[key]
            else:
                close = difflib.get_close_matches(key, list(by_title), n=1, cutoff=cutoff)
                idx = by_title[close[0]] if close else None
        if idx is None:
            unknown.append(p)
        elif idx not in order:
            order.append(idx)
    if not order:
        return ParseResult("invalid" if not unknown or not parts else "hallucinated", None, text,
                           "no candidate recognised")
    if unknown:
        return ParseResult("hallucinated", order, text, f"{len(unknown)} entries are not candidates")
    return ParseResult("valid", order, text)
