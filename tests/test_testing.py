"""recfuse.testing: the shipped conformance classes work in any test suite and catch what they should."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence

import numpy as np
import pytest

from recfuse.llm.base import LLMError, Prompt, check_choices, normalize_prompt
from recfuse.models.baselines import Popularity
from recfuse.testing import LLMConformance, RecommenderConformance


def _text(prompt: Prompt) -> str:
    p = normalize_prompt(prompt)
    return p if isinstance(p, str) else "\n".join(f"{m['role']}: {m['content']}" for m in p)


def _unit(*parts: str) -> float:
    """A deterministic number in [0, 1) from strings."""
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8], 16) / 2**32


class DictLLM:
    """A tiny in-memory backend: log-probabilities from a hash of (prompt, answer), with some mass left to
    other answers; generation writes the prompt's words backwards, one word per token."""

    fingerprint = "dict-llm-v1"

    def choice_logprobs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        choices = check_choices(choices)
        rows = []
        for p in prompts:
            text = _text(p)
            logits = np.array([4.0 * _unit(text, c) for c in choices] + [1.0])  # last: every other answer
            rows.append((logits - np.log(np.exp(logits).sum()))[:-1])
        return np.asarray(rows, dtype=np.float64).reshape(len(prompts), len(choices))

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, stop: Sequence[str] | None = None,
                 repetition_penalty: float = 1.0) -> list[str]:
        out = []
        for p in prompts:
            answer = " ".join(_text(p).split()[::-1][:max_new_tokens])
            for s in stop or ():
                answer = answer.split(s)[0] if s else answer
            out.append(answer)
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class TestDictLLM(LLMConformance):
    """The in-memory backend passes every LLM check."""

    def make_llm(self) -> DictLLM:
        return DictLLM()


class _BatchNormalised(DictLLM):
    """Broken: probabilities normalised over the whole batch instead of per prompt."""

    def choice_logprobs(self, prompts, choices):
        lp = super().choice_logprobs(prompts, choices)
        return lp - np.log(np.exp(lp).sum()) if lp.size else lp


class _Unchecked(DictLLM):
    """Broken: accepts repeated choices and raw, malformed messages."""

    def choice_logprobs(self, prompts, choices):
        return np.full((len(prompts), len(choices)), -1.0)


def test_llm_checks_catch_a_broken_backend():
    checks = LLMConformance()
    with pytest.raises(AssertionError):
        checks.test_batch_scores_as_each_prompt_alone(_BatchNormalised())
    with pytest.raises(pytest.fail.Exception, match="LLMError"):
        checks.test_bad_choices_raise(_Unchecked())
    with pytest.raises(pytest.fail.Exception, match="LLMError"):
        checks.test_malformed_chat_message_raises(_Unchecked())
    assert issubclass(LLMError, RuntimeError)


def test_make_llm_must_be_implemented():
    with pytest.raises(NotImplementedError, match="make_llm"):
        LLMConformance().make_llm()


class TestPopularityThroughItsClass(RecommenderConformance):
    """``model_class`` instead of a registered name; popularity cannot beat itself, so the bar is lowered."""

    model_class = Popularity
    beats_popularity_by = 0.99


USER_TESTS = '''
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recfuse.models.base import Recommender
from recfuse.testing import RecommenderConformance


class CoCounts(Recommender):
    """Cosine item-item co-occurrence: a user's own model, outside recfuse."""

    def __init__(self, seed=0):
        super().__init__(seed=seed)

    def fit(self, split, *, extra_triples=None, insertions=None, progress=True):
        self.n_users, self.n_items = split.n_users, split.n_items
        self.train = split.train_matrix.astype(np.float64).tocsr()
        norms = np.sqrt(np.asarray(self.train.sum(axis=0))).ravel() + 1e-9
        self.sim = (self.train.T @ self.train).toarray() / norms[:, None] / norms[None, :]
        np.fill_diagonal(self.sim, 0.0)
        return self

    def score(self, users, items=None):
        users, items = self._check_users(users), self._check_items(items)
        return np.asarray(self.train[users] @ self.sim)[:, items]

    def save(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        np.savez(Path(path) / "m.npz", sim=self.sim, train=self.train.toarray())

    @classmethod
    def load(cls, path):
        z = np.load(Path(path) / "m.npz")
        m = cls()
        m.sim, m.train = z["sim"], sp.csr_matrix(z["train"])
        m.n_users, m.n_items = m.train.shape
        return m


class BatchNormalised(CoCounts):
    """Broken: each batch's scores divided by the batch's largest one."""

    def score(self, users, items=None):
        s = super().score(users, items)
        return s / s.max()


class TestCoCounts(RecommenderConformance):
    model_class = CoCounts


class TestBatchNormalised(RecommenderConformance):
    model_class = BatchNormalised
'''


def test_recommender_checks_run_in_a_foreign_test_suite(tmp_path):
    """Three lines in a test file outside recfuse (no conftest): a good model passes, a broken one fails."""
    (tmp_path / "test_user_model.py").write_text(textwrap.dedent(USER_TESTS))
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "RECFUSE_CACHE": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "test_user_model.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=600)
    out = res.stdout + res.stderr
    assert "PASSED test_user_model.py::TestCoCounts::test_beats_popularity_on_planted_data" in out, out[-3000:]
    assert "FAILED test_user_model.py::TestCoCounts" not in out, out[-3000:]
    assert "ERROR" not in out, out[-3000:]
    assert "FAILED test_user_model.py::TestBatchNormalised::test_batch_equals_single_user" in out, out[-3000:]
    assert "PASSED test_user_model.py::TestBatchNormalised::test_save_load_round_trip" in out, out[-3000:]


def test_importing_without_pytest_says_what_is_missing():
    code = "import sys; sys.modules['pytest'] = None; import recfuse.testing"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode != 0
    assert "ImportError: recfuse.testing holds pytest test classes and needs pytest" in res.stderr, res.stderr


def test_recfuse_itself_never_imports_the_testing_package():
    code = ("import sys, recfuse, recfuse.models, recfuse.data, recfuse.eval, recfuse.llm, recfuse.cli; "
            "import recfuse.models.direct, recfuse.models.sequential, recfuse.models.rating; "
            "print(any(m == 'recfuse.testing' or m.startswith('recfuse.testing.') for m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
