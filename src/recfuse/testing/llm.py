"""Conformance test class for LLM backends: inherit it, say how to build the backend, and pytest runs the checks.

::

    from recfuse.testing import LLMConformance

    class TestMyBackend(LLMConformance):
        def make_llm(self):
            return MyBackend(...)

What the pipelines rely on, for any backend (:class:`recfuse.llm.base.LLM`):

* ``fingerprint``: a non-empty string, stable from one read to the next (the answer cache's key);
* ``choice_logprobs(prompts, choices)``: float log-probabilities of shape ``(len(prompts), len(choices))``,
  finite and at most 0, columns in the order of ``choices`` (whatever the order), a batch scoring as each
  prompt alone, and (for answers none of which is the start of another) a total probability of at most 1;
  no prompts give a ``(0, len(choices))`` array; no choices, an empty choice or a repeated one raise
  :class:`~recfuse.llm.base.LLMError`;
* prompts as strings or as lists of chat messages; a malformed message raises ``LLMError``;
* ``generate(prompts, ...)``: one string per prompt (none for no prompts); greedy decoding is deterministic
  and a batch answers as each prompt alone; an answer stops before a ``stop`` string;
* ``count_tokens(text)`` (used for prompt budgets): a non-negative int, 0 for ``""``, more for longer text;
* a backend behind :class:`~recfuse.llm.cache.CachedLLM` answers as it does alone.

Set the class attributes to fit a backend: ``prompts``, ``choices`` (single-token answers, none the start of
another), ``multi_token_choices`` (scored for shape only; empty to skip), ``atol`` (batch vs single; raise it
for half-precision weights), ``deterministic`` (False for a backend whose greedy answers vary run to run, e.g.
a shared remote server).
To reuse a backend a suite already builds, override the ``llm`` fixture instead of :meth:`make_llm`::

    class TestTinyLlama(LLMConformance):
        @pytest.fixture(scope="class")
        @classmethod
        def llm(cls, tiny_llm):
            return tiny_llm
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from recfuse.llm.base import LLM, LLMError, Prompt
from recfuse.llm.cache import CachedLLM


class LLMConformance:
    """The checks every LLM backend passes; subclass it and implement :meth:`make_llm`."""

    #: prompts of different lengths, the last a two-turn chat
    prompts: ClassVar[Sequence[Prompt]] = (
        "Rate the movie Alien (1979) from 1 to 5.",
        "Is this a short prompt?",
        "The user watched Toy Story (1995); Heat (1995); Casino (1995); Babe (1995); Seven (1995). "
        "Will the user like Jumanji (1995)? Answer Yes or No.",
        ({"role": "user", "content": "Describe the user in one sentence."},
         {"role": "assistant", "content": "A fan of 1990s comedies."},
         {"role": "user", "content": "Will they like Jumanji (1995)? Yes or No?"}),
    )
    #: single-token answers, none the start of another (their probabilities add up to at most 1)
    choices: ClassVar[Sequence[str]] = ("1", "2", "3", "4", "5")
    #: answers of several tokens, checked for shape and sign only; () to skip
    multi_token_choices: ClassVar[Sequence[str]] = ("Yes", "No", "Maybe not")
    #: tolerance of log-probabilities compared across batches, orders and the cache (float32 weights; a bfloat16
    #: model pads batches differently enough to need about 0.2: the embedded SmolLM2 differs by up to 0.16)
    atol: ClassVar[float] = 1e-4
    #: greedy generation gives the same text on every call, alone or in a batch
    deterministic: ClassVar[bool] = True
    max_new_tokens: ClassVar[int] = 8

    def make_llm(self) -> LLM:
        """The backend under test (built once per class)."""
        raise NotImplementedError(f"{type(self).__name__}: implement make_llm() to return the backend under test")

    @pytest.fixture(scope="class")
    @classmethod
    def llm(cls) -> Iterator[LLM]:
        """The backend under test; closed afterwards when it has a ``close()``."""
        backend = cls().make_llm()
        yield backend
        close = getattr(backend, "close", None)
        if callable(close):
            close()

    # -- identity --------------------------------------------------------------------------------
    def test_follows_the_protocol(self, llm: LLM) -> None:
        assert isinstance(llm, LLM), f"{type(llm).__name__} lacks fingerprint, choice_logprobs or generate"

    def test_fingerprint_is_a_stable_string(self, llm: LLM) -> None:
        fp = llm.fingerprint
        assert isinstance(fp, str) and fp, "the fingerprint must be a non-empty string"
        assert llm.fingerprint == fp

    # -- choice scoring --------------------------------------------------------------------------
    def test_choice_logprobs_shape_and_sign(self, llm: LLM) -> None:
        for choices in (self.choices, self.multi_token_choices):
            if not choices:
                continue
            lp = np.asarray(llm.choice_logprobs(list(self.prompts), list(choices)))
            assert lp.shape == (len(self.prompts), len(choices))
            assert np.issubdtype(lp.dtype, np.floating)
            assert np.isfinite(lp).all(), "every choice needs a finite log-probability"
            assert (lp <= 1e-6).all(), "log-probabilities are at most 0"

    def test_choice_probabilities_add_up_to_at_most_one(self, llm: LLM) -> None:
        lp = np.asarray(llm.choice_logprobs(list(self.prompts), list(self.choices)), dtype=np.float64)
        total = np.exp(lp).sum(axis=1)
        assert (total <= 1.0 + self.atol).all(), f"probability mass over disjoint answers above 1: {total}"

    def test_columns_follow_the_order_of_choices(self, llm: LLM) -> None:
        choices = list(self.choices)
        forward = np.asarray(llm.choice_logprobs(list(self.prompts), choices))
        backward = np.asarray(llm.choice_logprobs(list(self.prompts), choices[::-1]))
        np.testing.assert_allclose(backward, forward[:, ::-1], atol=self.atol)

    def test_batch_scores_as_each_prompt_alone(self, llm: LLM) -> None:
        batched = np.asarray(llm.choice_logprobs(list(self.prompts), list(self.choices)))
        single = np.vstack([np.asarray(llm.choice_logprobs([p], list(self.choices))) for p in self.prompts])
        np.testing.assert_allclose(batched, single, atol=self.atol)

    def test_no_prompts_no_rows(self, llm: LLM) -> None:
        assert np.asarray(llm.choice_logprobs([], list(self.choices))).shape == (0, len(self.choices))
        assert list(llm.generate([], max_new_tokens=self.max_new_tokens)) == []

    def test_bad_choices_raise(self, llm: LLM) -> None:
        prompt = [self.prompts[0]]
        for bad in ([], [self.choices[0], self.choices[0]], [""]):
            with pytest.raises(LLMError):
                llm.choice_logprobs(prompt, bad)

    def test_malformed_chat_message_raises(self, llm: LLM) -> None:
        bad: Any = [[{"content": "a message without a role"}]]
        with pytest.raises(LLMError):
            llm.choice_logprobs(bad, list(self.choices))

    # -- generation ------------------------------------------------------------------------------
    def test_generate_answers_each_prompt(self, llm: LLM) -> None:
        out = llm.generate(list(self.prompts), max_new_tokens=self.max_new_tokens)
        assert isinstance(out, list) and len(out) == len(self.prompts)
        assert all(isinstance(t, str) for t in out)

    def test_greedy_generation_is_deterministic_and_batch_free(self, llm: LLM) -> None:
        if not self.deterministic:
            pytest.skip("the backend's greedy answers are not deterministic")
        first = llm.generate(list(self.prompts), max_new_tokens=self.max_new_tokens)
        assert llm.generate(list(self.prompts), max_new_tokens=self.max_new_tokens) == first
        alone = [llm.generate([p], max_new_tokens=self.max_new_tokens)[0] for p in self.prompts]
        assert alone == first

    def test_generation_stops_before_a_stop_string(self, llm: LLM) -> None:
        if not self.deterministic:
            pytest.skip("the backend's greedy answers are not deterministic")
        full = llm.generate(list(self.prompts), max_new_tokens=self.max_new_tokens)
        longest = max(full, key=len)
        stop = longest[len(longest) // 2:len(longest) // 2 + 2] if len(longest) >= 4 else "\n"
        cut = llm.generate(list(self.prompts), max_new_tokens=self.max_new_tokens, stop=[stop])
        for whole, part in zip(full, cut, strict=True):
            assert stop not in part and whole.startswith(part), (stop, whole, part)

    # -- token counting --------------------------------------------------------------------------
    def test_count_tokens(self, llm: LLM) -> None:
        count = getattr(llm, "count_tokens", None)
        if count is None:
            pytest.skip("the backend has no count_tokens (prompt budgets fall back to an estimate)")
        text = "The user watched Toy Story (1995) and Heat (1995)."
        n = count(text)
        assert isinstance(n, int) and n > 0
        assert count("") == 0
        assert count(" ".join([text] * 4)) > n

    # -- behind the answer cache -----------------------------------------------------------------
    def test_answers_the_same_behind_the_cache(self, llm: LLM, tmp_path: Any) -> None:
        cached = CachedLLM(llm, tmp_path / "answers.sqlite")
        assert isinstance(cached, LLM) and cached.fingerprint == llm.fingerprint
        direct = np.asarray(llm.choice_logprobs(list(self.prompts), list(self.choices)))
        np.testing.assert_allclose(cached.choice_logprobs(list(self.prompts), list(self.choices)), direct,
                                   atol=self.atol)
        again = CachedLLM(llm, tmp_path / "answers.sqlite")  # a fresh wrapper on the same file: all hits
        np.testing.assert_allclose(again.choice_logprobs(list(self.prompts), list(self.choices)), direct,
                                   atol=self.atol)
        assert again.stats["misses"] == 0
        if self.deterministic:
            assert cached.generate(list(self.prompts), max_new_tokens=self.max_new_tokens) == \
                llm.generate(list(self.prompts), max_new_tokens=self.max_new_tokens)
