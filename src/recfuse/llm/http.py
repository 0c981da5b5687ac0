"""OpenAI-compatible HTTP backend: vLLM, llama.cpp's server, ``recfuse llm serve``, hosted APIs.

Two modes:

* ``chat`` (default): ``/chat/completions`` with ``logprobs`` and ``top_logprobs``. A choice's
  log-probability is that of the first answer token matching it (exact for single-token answers:
  ratings, letters, Yes/No). A choice absent from the server's top list (at most 20) gets the smallest
  listed log-probability, an upper bound, and is counted in ``stats["choices_not_in_top"]``.
* ``completions``: ``/completions`` with ``echo`` and ``logprobs``: the server scores prompt + answer,
  exact for answers of any length. Prompts go as raw text; chat-message prompts need ``tokenizer``
  (a local tokenizer folder or id) whose chat template renders them.

Requests run ``concurrency`` at a time, retry with exponential backoff on connection errors, timeouts,
429 and 5xx, and fail with one clear :class:`~recfuse.llm.base.LLMError` when the server is unreachable
or returns no log-probabilities.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from recfuse.io import fingerprint as content_hash
from recfuse.llm.base import LLMError, Prompt, check_choices, normalize_prompt
from recfuse.llm.prompts import approx_tokens

log = logging.getLogger(__name__)


class HTTPLLM:
    """An LLM behind an OpenAI-compatible server.

    ``base_url`` ends in ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``); ``model`` is the served model's name
    (``None``: the first one the server lists); ``api_key`` is sent as a bearer token.
    """

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str | None = None,
                 mode: str = "chat", tokenizer: Any = None, system_prompt: str | None = None,
                 concurrency: int = 8, timeout: float = 60.0, retries: int = 3, backoff: float = 0.5,
                 top_logprobs: int = 20, progress: bool = False):
        try:
            import requests  # noqa: F401
        except ImportError as e:
            raise LLMError("the HTTP backend needs `requests`: pip install 'recfuse[llm]'") from e
        if mode not in ("chat", "completions"):
            raise LLMError(f"mode must be 'chat' or 'completions', not {mode!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.mode = mode
        self.system_prompt = system_prompt
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.top_logprobs = int(top_logprobs)
        self.progress = progress
        self.stats = {"requests": 0, "retries": 0, "choice_calls": 0, "generate_calls": 0,
                      "choices_not_in_top": 0, "boundary_merges": 0}
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.tokenizer = tokenizer
        self._session_local: Any = None
        self._continues_answers = True  # until a server refuses vLLM's continue_final_message
        self.model = model or self._first_model()

    # ------------------------------------------------------------------ transport
    def _session(self):
        import threading

        import requests

        if self._session_local is None:
            self._session_local = threading.local()
        s = getattr(self._session_local, "s", None)
        if s is None:
            s = requests.Session()
            if self.api_key:
                s.headers["Authorization"] = f"Bearer {self.api_key}"
            self._session_local.s = s
        return s

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import requests

        url = f"{self.base_url}{path}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retries"] += 1
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + 0.25 * random.random()))
            try:
                self.stats["requests"] += 1
                r = self._session().request(method, url, json=body, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as e:
                last = e
                continue
            if r.status_code == 429 or r.status_code >= 500:
                last = LLMError(f"{url} answered {r.status_code}: {r.text[:300]}")
                continue
            if r.status_code >= 400:
                raise LLMError(f"{url} refused the request ({r.status_code}): {r.text[:500]}")
            try:
                return r.json()
            except ValueError as e:
                raise LLMError(f"{url} did not answer JSON: {r.text[:300]}") from e
        raise LLMError(f"cannot reach the OpenAI-compatible server at {self.base_url} after "
                       f"{self.retries + 1} attempts ({type(last).__name__}: {last}). Is it running? "
                       f"(start one with `recfuse llm serve`, vLLM or llama.cpp's server)")

    def _first_model(self) -> str:
        data = self._request("GET", "/models").get("data") or []
        if not data:
            raise LLMError(f"the server at {self.base_url} lists no models; pass model=...")
        return str(data[0]["id"])

    def _map(self, fn, items: Sequence[Any], desc: str) -> list[Any]:
        from recfuse.models.torch_utils import progress  # lazy: torch, only for a progress bar

        if len(items) <= 1 or self.concurrency == 1:
            return [fn(x) for x in progress(items, enabled=self.progress, desc=desc)]
        with ThreadPoolExecutor(self.concurrency) as ex:
            return list(progress(ex.map(fn, items), enabled=self.progress, desc=desc, total=len(items)))

    def count_tokens(self, text: str) -> int:
        """Tokens of a text by the local tokenizer when given, else an estimate (prompt budgets)."""
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

        return approx_tokens(text)

    # ------------------------------------------------------------------ identity
    @property
    def fingerprint(self) -> str:
        """Server, model name, mode and prompt rendering."""
        tmpl = getattr(self.tokenizer, "chat_template", None) if self.tokenizer is not None else None
        return content_hash("HTTPLLM", self.base_url, self.model, self.mode, self.system_prompt, tmpl)

    def _messages(self, prompt: Prompt) -> list[dict[str, str]]:
        p = normalize_prompt(prompt)
        msgs = [{"role": "user", "content": p}] if isinstance(p, str) else p
        if self.system_prompt and msgs[0]["role"] != "system":
            msgs = [{"role": "system", "content": self.system_prompt}] + msgs
        return msgs

    def _text(self, prompt: Prompt) -> str:
        p = normalize_prompt(prompt)
        if isinstance(p, str) and self.tokenizer is None:
            return p
        if self.tokenizer is None:
            raise LLMError("completions mode sends raw text: chat-message prompts need tokenizer=... "
                           "(whose chat template renders them), or use mode='chat'")
        msgs = self._messages(p)
        cont = msgs[-1]["role"] == "assistant"
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=not cont,
                                                  continue_final_message=cont)

    # ------------------------------------------------------------ choice scoring
    def choice_logprobs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        """Log-probability of each choice after each prompt, ``(len(prompts), len(choices))``."""
        choices = check_choices(choices)
        self.stats["choice_calls"] += 1
        fn = self._score_chat if self.mode == "chat" else self._score_echo
        rows = self._map(lambda p: fn(p, choices), list(prompts), "scoring")
        return np.asarray(rows, dtype=np.float64).reshape(len(prompts), len(choices))

    def _score_chat(self, prompt: Prompt, choices: list[str]) -> list[float]:
        body = {"model": self.model, "messages": self._messages(prompt), "max_tokens": 1, "temperature": 0.0,
                "logprobs": True, "top_logprobs": self.top_logprobs}
        res = self._request("POST", "/chat/completions", body)
        try:
            content = res["choices"][0]["logprobs"]["content"]
            top = content[0]["top_logprobs"] or [{"token": content[0]["token"], "logprob": content[0]["logprob"]}]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"the server at {self.base_url} returned no log-probabilities for model "
                           f"{self.model!r}; choice scoring needs logprobs/top_logprobs support (vLLM, llama.cpp "
                           f"server and `recfuse llm serve` have it)") from None
        out = []
        floor = min(float(t["logprob"]) for t in top)
        for c in choices:
            hits = [float(t["logprob"]) for t in top if t["token"] == c or t["token"].strip() == c.strip()]
            if hits:
                m = max(hits)
                out.append(m + math.log(sum(math.exp(h - m) for h in hits)))
            else:
                self.stats["choices_not_in_top"] += 1
                out.append(floor)
        return out

    def _score_echo(self, prompt: Prompt, choices: list[str]) -> list[float]:
        text = self._text(prompt)
        body = {"model": self.model, "prompt": [text + c for c in choices], "max_tokens": 0, "echo": True,
                "logprobs": 1, "temperature": 0.0}
        res = self._request("POST", "/completions", body)
        try:
            got = sorted(res["choices"], key=lambda c: c.get("index", 0))
            out = []
            for c, ch in zip(choices, got):
                lp = ch["logprobs"]
                end = len(text) + len(c)
                total = 0.0
                for tok, off, v in zip(lp["tokens"], lp["text_offset"], lp["token_logprobs"]):
                    if off >= end:
                        break  # a generated token, not part of the answer
                    if off + len(tok) > len(text) and v is not None:
                        if off < len(text):
                            self.stats["boundary_merges"] += 1
                        total += float(v)
                out.append(total)
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"the server at {self.base_url} returned no prompt log-probabilities (echo) for "
                           f"{self.model!r}; use mode='chat' or a server that supports echo") from None
        if len(out) != len(choices):
            raise LLMError(f"the server answered {len(out)} completions for {len(choices)} prompts")
        return out

    # ------------------------------------------------------------------ generation
    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, stop: Sequence[str] | None = None,
                 repetition_penalty: float = 1.0) -> list[str]:
        """Generated continuation of each prompt. A ``repetition_penalty`` other than 1 is sent as vLLM's
        (and ``recfuse llm serve``'s) ``repetition_penalty`` field; a server that refuses it says so."""
        self.stats["generate_calls"] += 1
        common: dict[str, Any] = {"model": self.model, "max_tokens": int(max_new_tokens),
                                  "temperature": float(temperature), "top_p": float(top_p), "seed": int(seed)}
        if stop:
            common["stop"] = list(stop)
        if repetition_penalty != 1.0:
            common["repetition_penalty"] = float(repetition_penalty)

        def one(p: Prompt) -> str:
            if self.mode == "chat":
                msgs = self._messages(p)
                body = {**common, "messages": msgs}
                if msgs[-1]["role"] == "assistant" and self._continues_answers:
                    # a started answer: vLLM's extension continues it instead of opening a new turn
                    try:
                        res = self._request("POST", "/chat/completions",
                                            {**body, "continue_final_message": True, "add_generation_prompt": False})
                    except LLMError as e:
                        if "refused" not in str(e):
                            raise
                        log.warning("%s refused continue_final_message; started answers are sent as plain "
                                    "chat turns (the model answers anew)", self.base_url)
                        self._continues_answers = False
                        res = self._request("POST", "/chat/completions", body)
                else:
                    res = self._request("POST", "/chat/completions", body)
                try:
                    return str(res["choices"][0]["message"]["content"] or "")
                except (KeyError, IndexError, TypeError):
                    raise LLMError(f"unexpected chat answer from {self.base_url}: {str(res)[:300]}") from None
            res = self._request("POST", "/completions", {**common, "prompt": self._text(p)})
            try:
                return str(res["choices"][0]["text"])
            except (KeyError, IndexError, TypeError):
                raise LLMError(f"unexpected completion answer from {self.base_url}: {str(res)[:300]}") from None

        return self._map(one, list(prompts), "generating")

    def __repr__(self) -> str:
        return f"HTTPLLM({self.base_url!r}, model={self.model!r}, mode={self.mode!r})"


#: another name for :class:`HTTPLLM`
OpenAICompatibleLLM = HTTPLLM
