"""A tiny deterministic LLM backend for the serving tests (``--llm.backend tests.serving.fake_llm:FakeLLM``).

It prefers the first choice, then the second, and so on (a listwise prompt's letters: the order in which the
candidates are shown). ``--llm.model delay=SECONDS`` makes every prompt that slow (the latency budget's test);
``fail=1`` makes every call fail.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np


class FakeLLM:
    def __init__(self, model: str = ""):
        opts = dict(part.split("=", 1) for part in model.split(",") if "=" in part)
        self.delay = float(opts.get("delay", 0))
        self.fail = opts.get("fail") == "1"
        self.calls = 0
        self.name = f"fake({model})"

    @property
    def fingerprint(self) -> str:
        return f"fake-llm-{self.delay}-{self.fail}-{time.time_ns() if self.delay else 0}"

    def choice_logprobs(self, prompts: Sequence, choices: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay * len(prompts))
        if self.fail:
            raise RuntimeError("the fake LLM fails on purpose")
        row = -np.arange(1, len(choices) + 1, dtype=np.float64)
        return np.tile(row, (len(prompts), 1))

    def generate(self, prompts: Sequence, max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, stop: Sequence[str] | None = None, repetition_penalty: float = 1.0) -> list[str]:
        return ["A" for _ in prompts]

    def count_tokens(self, text: str) -> int:
        return len(text.split())
