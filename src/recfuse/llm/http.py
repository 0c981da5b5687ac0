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

Several servers of one model (``base_url`` a list, or comma-separated URLs): each request goes to the live
server with the fewest requests in flight (taking turns on ties); a failed request is sent at once to another
server it has not tried, and backs off only when it has tried them all; a server that cannot be reached twice
in a row leaves the rotation (the others take its share) and is tried again by one request every
``revive_after`` seconds, so a restarted server comes back. The last live server is never dropped. Answers of
a pool are keyed in the answer cache by the served model, not by the servers, so a killed run resumes
with more, fewer or other servers of that model.

Bounds: ``timeout`` limits each wait for the server, ``deadline`` a whole request however slowly the server
trickles its answer; a server that answers an error on every attempt is told apart from one that cannot be
reached; every log-probability read is checked (a finite number, at most 0), and an answer of another shape
than the API's ends in an LLMError naming the server, never in a traceback or a NaN averaged into a result.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
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

    ``base_url`` ends in ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``), or is several such URLs (a list, or
    comma-separated) of servers of one model; ``model`` is the served model's name (``None``: the first one
    the server lists); ``api_key`` is sent as a bearer token.
    """

    def __init__(self, base_url: str | Sequence[str], model: str | None = None, *, api_key: str | None = None,
                 mode: str = "chat", tokenizer: Any = None, system_prompt: str | None = None,
                 concurrency: int = 8, timeout: float = 60.0, retries: int = 3, backoff: float = 0.5,
                 top_logprobs: int = 20, progress: bool = False, deadline: float = 600.0,
                 revive_after: float = 30.0):
        try:
            import requests  # noqa: F401
        except ImportError as e:
            raise LLMError("the HTTP backend needs `requests`: pip install 'recfuse[llm]'") from e
        if mode not in ("chat", "completions"):
            raise LLMError(f"mode must be 'chat' or 'completions', not {mode!r}")
        self.base_urls = split_urls(base_url)
        if not self.base_urls:
            raise LLMError(f"the server's URL must start with http:// or https://, not {base_url!r} (e.g. "
                           "http://127.0.0.1:8000/v1)")
        for url in self.base_urls:
            if not url.startswith(("http://", "https://")):
                raise LLMError(f"the server's URL must start with http:// or https://, not {url!r}")
        if len(set(self.base_urls)) < len(self.base_urls):
            raise LLMError(f"a server is listed twice in {', '.join(self.base_urls)}")
        if not (timeout > 0 and deadline > 0):
            raise LLMError(f"timeout and deadline must be positive seconds, not {timeout!r} and {deadline!r}")
        self.deadline = float(deadline)
        self.base_url = ", ".join(self.base_urls)  # one server: its URL, as always
        self.revive_after = float(revive_after)
        self._lock = threading.Lock()
        self._in_flight = {u: 0 for u in self.base_urls}
        self._failures = {u: 0 for u in self.base_urls}  # connection failures in a row
        self._dead_until = {u: 0.0 for u in self.base_urls}  # out of rotation until then (0: live)
        self._turn = 0
        self.served = {u: 0 for u in self.base_urls}  # answers per server
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
                      "choices_not_in_top": 0, "boundary_merges": 0, "failovers": 0, "servers_dropped": 0}
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

    def _fetch(self, method: str, url: str, body: dict[str, Any] | None) -> tuple[int, bytes]:
        """One request: its status and body, read in pieces so that the whole takes at most ``deadline``
        seconds (``timeout`` bounds each wait for the server)."""
        import urllib3

        start = time.monotonic()
        r = self._session().request(method, url, json=body, timeout=self.timeout, stream=True)
        try:
            chunks: list[bytes] = []
            # read1: whatever has arrived (a plain read would wait for a whole chunk from a trickling server)
            read = getattr(r.raw, "read1", r.raw.read)
            while True:
                try:
                    chunk = read(65536, decode_content=True)
                except urllib3.exceptions.HTTPError as e:  # the socket's timeout, a broken connection
                    raise _Unreachable(f"{url}: {type(e).__name__}: {e}") from None
                if not chunk:
                    break
                chunks.append(chunk)
                if time.monotonic() - start > self.deadline:
                    raise _DeadlinePassed(f"{url} was still answering after the deadline of {self.deadline:g} s "
                                          f"({sum(map(len, chunks))} bytes so far)")
            return r.status_code, b"".join(chunks)
        finally:
            r.close()

    # ------------------------------------------------------------------ servers
    def _pick(self, tried: set[str]) -> str | None:
        """The server for the next attempt: among live servers not yet tried by this request, the one with the
        fewest requests in flight (taking turns on ties); a dropped server is tried again once its
        ``revive_after`` has passed. None when every live server has been tried."""
        now = time.monotonic()
        with self._lock:
            live = [u for u in self.base_urls if u not in tried and self._dead_until[u] <= now]
            if not live:
                return None
            self._turn += 1
            n = len(self.base_urls)
            url = min(live, key=lambda u: (self._in_flight[u], (self.base_urls.index(u) - self._turn) % n))
            if self._dead_until[url]:  # a dropped server on probation: one request at a time
                self._dead_until[url] = now + self.revive_after
            self._in_flight[url] += 1
            return url

    def _done(self, url: str, reachable: bool) -> None:
        """Book the end of an attempt on ``url``; a server unreachable twice in a row leaves the rotation
        (never the last live one)."""
        with self._lock:
            self._in_flight[url] -= 1
            if reachable:
                if self._dead_until[url]:
                    log.warning("the server at %s answers again: back in the rotation", url)
                self._failures[url], self._dead_until[url] = 0, 0.0
                return
            self._failures[url] += 1
            if self._failures[url] < 2 or len(self.base_urls) == 1:
                return
            now = time.monotonic()
            others = [u for u in self.base_urls if u != url and self._dead_until[u] <= now]
            if others and not self._dead_until[url]:
                self._dead_until[url] = now + self.revive_after
                self.stats["servers_dropped"] += 1
                log.warning("the server at %s cannot be reached: out of the rotation (%d live: %s); tried again in "
                            "%g s", url, len(others), ", ".join(others), self.revive_after)
            elif self._dead_until[url]:
                self._dead_until[url] = now + self.revive_after

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import requests

        last: Exception | None = None
        answered: list[int] = []  # statuses of attempts a server answered with an error
        attempts, backoffs = 0, 0
        tried: set[str] = set()
        while True:
            server = self._pick(tried)
            if server is None:  # every live server failed this request: back off, then try them again
                if backoffs >= self.retries:
                    break
                backoffs += 1
                self.stats["retries"] += 1
                time.sleep(self.backoff * 2 ** (backoffs - 1) * (1 + 0.25 * random.random()))
                tried = set()
                server = self._pick(tried)
                if server is None:  # every server dropped at once (each by other requests): the first one
                    with self._lock:
                        server = self.base_urls[0]
                        self._in_flight[server] += 1
            elif tried:
                self.stats["failovers"] += 1
            tried.add(server)
            attempts += 1
            url = f"{server}{path}"
            try:
                self.stats["requests"] += 1
                status, raw = self._fetch(method, url, body)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    _DeadlinePassed, _Unreachable) as e:
                self._done(server, reachable=False)
                last = e
                continue
            except requests.RequestException as e:  # an invalid URL, too many redirects, ...
                self._done(server, reachable=False)
                raise LLMError(f"cannot send the request to {url}: {type(e).__name__}: {e}") from None
            self._done(server, reachable=True)
            text = raw.decode("utf-8", errors="replace")
            if status == 429 or status >= 500:
                answered.append(status)
                last = LLMError(f"{url} answered {status}: {text[:300]}")
                continue
            if status >= 400:
                raise LLMError(f"{url} refused the request ({status}): {text[:500]}")
            try:
                out = json.loads(raw)
            except ValueError:
                raise LLMError(f"{url} did not answer JSON: {text[:300]}") from None
            if not isinstance(out, dict):
                raise LLMError(f"{url} answered JSON of another shape than the API's (a {type(out).__name__}, "
                               f"not an object): {text[:300]}")
            with self._lock:
                self.served[server] += 1
            return out
        where = (f"the server at {self.base_url}" if len(self.base_urls) == 1
                 else f"the {len(self.base_urls)} servers at {self.base_url}")
        if answered and len(answered) == attempts:
            raise LLMError(f"{where} {'is' if len(self.base_urls) == 1 else 'are'} running but answered an error "
                           f"on every one of {len(answered)} attempts (HTTP {', '.join(map(str, answered))}; "
                           f"429: too many requests, 5xx: a server error): {last}")
        which = (f"the OpenAI-compatible server at {self.base_url}" if len(self.base_urls) == 1
                 else f"any of the {len(self.base_urls)} OpenAI-compatible servers at {self.base_url}")
        raise LLMError(f"cannot reach {which} after {attempts} attempts ({type(last).__name__}: {last}). Is it running? "
                       f"(start one with `recfuse llm serve`, vLLM or llama.cpp's server)")

    def _first_model(self) -> str:
        res = self._request("GET", "/models")
        data = res.get("data")
        if not data:
            raise LLMError(f"the server at {self.base_url} lists no models; pass model=...")
        if not isinstance(data, list) or not isinstance(data[0], dict) or not data[0].get("id"):
            raise LLMError(f"the server at {self.base_url} lists its models in another shape than the API's "
                           f"({str(res)[:200]}); pass model=...")
        return str(data[0]["id"])

    def _logprob(self, value: Any) -> float:
        """A log-probability the server sent: a finite number of at most 0 (else an LLMError)."""
        try:
            lp = float(value)
        except (TypeError, ValueError):
            lp = math.nan
        if not math.isfinite(lp) or lp > 1e-6:
            raise LLMError(f"the server at {self.base_url} sent {value!r} as a log-probability (model "
                           f"{self.model!r}): log-probabilities are finite numbers of at most 0")
        return min(lp, 0.0)

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
        """Server, model name, mode and prompt rendering; for a pool of servers, the model name without the
        servers (servers of one model answer alike, so a run resumes with other servers)."""
        tmpl = getattr(self.tokenizer, "chat_template", None) if self.tokenizer is not None else None
        if len(self.base_urls) > 1:
            return content_hash("HTTPLLM-pool", self.model, self.mode, self.system_prompt, tmpl)
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
            top = [(str(t["token"]), self._logprob(t["logprob"])) for t in top]
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(f"the server at {self.base_url} returned no log-probabilities for model "
                           f"{self.model!r}; choice scoring needs logprobs/top_logprobs support (vLLM, llama.cpp "
                           f"server and `recfuse llm serve` have it)") from None
        if not top:
            raise LLMError(f"the server at {self.base_url} returned an empty top_logprobs list for {self.model!r}")
        out = []
        floor = min(lp for _, lp in top)
        for c in choices:
            hits = [lp for tok, lp in top if tok == c or tok.strip() == c.strip()]
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
                        total += self._logprob(v)
                out.append(total)
        except (KeyError, IndexError, TypeError, AttributeError):
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


def split_urls(base_url: str | Sequence[str]) -> list[str]:
    """Server URLs from one URL, comma-separated URLs or a list of them (without trailing slashes)."""
    parts = base_url.split(",") if isinstance(base_url, str) else [p for u in base_url for p in str(u).split(",")]
    return [p.strip().rstrip("/") for p in parts if p.strip()]


class _DeadlinePassed(Exception):
    """A request ran past its overall deadline (retried like a timeout)."""


class _Unreachable(Exception):
    """The connection failed while the answer was read (retried like a connection error)."""


#: another name for :class:`HTTPLLM`
OpenAICompatibleLLM = HTTPLLM
