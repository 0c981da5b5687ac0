"""The LLM protocol every backend honours, and helpers that read its answers as probabilities.

An LLM here answers in two ways:

* ``choice_logprobs(prompts, choices)``: the log-probability of each allowed answer (a rating "1".."5",
  a candidate's letter, "Yes"/"No") as the continuation of each prompt, in one batched pass. A
  multi-token answer scores the sum of its tokens' log-probabilities. Answers are read as probabilities
  over the allowed choices, so nothing has to be parsed from free text.
* ``generate(prompts, max_new_tokens, ...)``: free text (profiles, attribute values), parsed by
  :mod:`recfuse.llm.parsing`, which counts every failure.

A prompt is either a string (one user message; backends apply the model's chat template unless told
not to) or a list of chat messages ``{"role": ..., "content": ...}`` (multi-turn dialogues such as
RecLM's two-turn instruction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeGuard, runtime_checkable

import numpy as np

from recfuse.errors import RecfuseError

Message = Mapping[str, str]
Prompt = str | Sequence[Message]


class LLMError(RecfuseError, RuntimeError):
    """An LLM backend failed: unreachable server, missing log-probabilities, unusable model."""


@runtime_checkable
class LLM(Protocol):
    """What the pipelines need from a language model."""

    @property
    def fingerprint(self) -> str:
        """A stable id of the model and its weights (adapter included): the cache key's first part."""
        ...

    def choice_logprobs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        """Log-probability of each choice as the answer to each prompt: shape ``(len(prompts), len(choices))``."""
        ...

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, stop: Sequence[str] | None = None,
                 repetition_penalty: float = 1.0) -> list[str]:
        """Generated continuation of each prompt (greedy when ``temperature`` is 0). ``repetition_penalty``
        above 1 divides the logits of tokens already in the prompt or answer (CTRL's penalty, as in
        transformers and vLLM): small models otherwise loop on a phrase."""
        ...


@dataclass(frozen=True)
class RequiredPart:
    """A part a generated answer must contain (structured generation in one pass, where a backend can).

    Where the answer would end (at a stop string or the end token) or has used ``within`` new tokens
    without a match of ``marker`` (a regular expression, case-insensitive) in it, ``insert`` is written for the model and the answer goes
    on, up to the call's ``max_new_tokens`` in all. A backend that can (``supports_required_part = True``,
    the local one) takes it as ``generate(..., require=part)``; for the others the caller emulates it in
    two calls (:func:`recfuse.reclm.profiles.structured_answers`).
    """

    marker: str
    insert: str
    within: int

    def key(self) -> list:
        return [self.marker, self.insert, int(self.within)]


class RequiredPartLLM(LLM, Protocol):
    """An :class:`LLM` whose ``generate`` also takes ``require`` (``supports_required_part = True``)."""

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, stop: Sequence[str] | None = None,
                 repetition_penalty: float = 1.0, require: RequiredPart | None = None) -> list[str]:
        ...


def supports_required_part(llm: LLM) -> TypeGuard[RequiredPartLLM]:
    """Whether ``llm`` declares ``supports_required_part``: its ``generate`` takes ``require=``."""
    return bool(getattr(llm, "supports_required_part", False))


def check_choices(choices: Sequence[str]) -> list[str]:
    """Validate a list of allowed answers: non-empty strings, no duplicates."""
    out = [str(c) for c in choices]
    if not out:
        raise LLMError("no choices given: choice_logprobs needs at least one allowed answer")
    if any(c == "" for c in out):
        raise LLMError("a choice is the empty string")
    if len(set(out)) != len(out):
        raise LLMError(f"duplicate choices: {out}")
    return out


def normalize_prompt(prompt: Prompt) -> str | list[dict[str, str]]:
    """A prompt as a plain string or a list of plain message dicts (validated)."""
    if isinstance(prompt, str):
        return prompt
    messages = []
    for m in prompt:
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise LLMError(f"a chat message must be a mapping with 'role' and 'content', got {m!r}")
        messages.append({"role": str(m["role"]), "content": str(m["content"])})
    if not messages:
        raise LLMError("empty list of chat messages")
    return messages


def choice_probs(logprobs: np.ndarray) -> np.ndarray:
    """Probabilities over the allowed choices (softmax of the log-probabilities along the last axis)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    m = np.max(lp, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(lp - m)
    s = e.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = e / s
    return np.where(s > 0, p, 1.0 / lp.shape[-1])


def expected_value(logprobs: np.ndarray, values: Sequence[float]) -> np.ndarray:
    """Expected value of the answer (e.g. a rating) under the choice probabilities."""
    return choice_probs(logprobs) @ np.asarray(values, dtype=np.float64)


def choice_letters(n: int) -> list[str]:
    """Labels for ``n`` candidates: A..Z, then AA, AB, ... (each a short answer the model can emit)."""
    out = []
    for i in range(n):
        s, k = "", i
        while True:
            s = chr(ord("A") + k % 26) + s
            k = k // 26 - 1
            if k < 0:
                break
        out.append(s)
    return out
