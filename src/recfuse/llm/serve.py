"""A small OpenAI-compatible server for a local model (the embedded one by default), with log-probabilities.

``recfuse llm serve`` answers ``GET /v1/models``, ``POST /v1/completions`` (``prompt`` a string or a list,
``echo`` and ``logprobs`` supported, so prompts and answers can be scored) and ``POST /v1/chat/completions``
(``logprobs`` and ``top_logprobs`` supported). It lets several processes share one loaded model, and it is
the real server the HTTP backend is tested against (``transformers serve`` returns no log-probabilities,
and llama.cpp's server takes half an hour to build here). For scale, point the HTTP backend at vLLM.

Built on the standard library's threading HTTP server; requests are served one model call at a time,
with first-token scoring requests that arrive together batched into one forward pass.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from recfuse.llm.base import LLMError

log = logging.getLogger(__name__)


class _Batcher:
    """Collects concurrent first-token top-logprob requests for a few milliseconds and runs them together."""

    def __init__(self, llm: Any, lock: threading.Lock, window_s: float = 0.005, max_batch: int = 32):
        self.llm, self.lock, self.window_s, self.max_batch = llm, lock, window_s, max_batch
        self._cv = threading.Condition()
        self._queue: list[dict[str, Any]] = []

    def submit(self, messages: list[dict[str, str]], k: int) -> list[tuple[str, float]]:
        item: dict[str, Any] = {"messages": messages, "k": k, "done": threading.Event()}
        with self._cv:
            self._queue.append(item)
        time.sleep(self.window_s)
        with self.lock:  # the first thread in takes everything queued so far
            if not item["done"].is_set():
                with self._cv:
                    batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                try:
                    kmax = max(b["k"] for b in batch)
                    res = self.llm.next_token_top_logprobs([b["messages"] for b in batch], kmax)
                    for b, r in zip(batch, res):
                        b["result"] = r[:b["k"]]
                except Exception as e:  # noqa: BLE001  (hand the error to every waiter)
                    for b in batch:
                        b["error"] = e
                for b in batch:
                    b["done"].set()
        item["done"].wait()
        if "error" in item:
            raise item["error"]
        return item["result"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: debug log only
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, code: int, obj: Any) -> None:
        body = json.dumps(obj).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, message: str) -> None:
        self._send(code, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [{"id": self.server.model_name, "object": "model",
                                                         "owned_by": "recfuse"}]})
        elif self.path.rstrip("/") in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        try:
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n) or b"{}")
        except (ValueError, json.JSONDecodeError) as e:
            return self._error(400, f"bad JSON body: {e}")
        path = self.path.rstrip("/")
        try:
            if path in ("/v1/completions", "/completions"):
                return self._send(200, self.server.completions(body))
            if path in ("/v1/chat/completions", "/chat/completions"):
                return self._send(200, self.server.chat(body))
        except (LLMError, ValueError, TypeError, KeyError) as e:
            return self._error(400, str(e))
        except Exception as e:  # a server must answer, not die
            log.exception("request failed")
            return self._error(500, f"{type(e).__name__}: {e}")
        self._error(404, f"no route {self.path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], llm: Any, model_name: str):
        super().__init__(addr, _Handler)
        self.llm = llm  # renders with the chat template
        self.raw = llm.with_chat(False)  # completions take raw text
        self.model_name = model_name
        self.lock = threading.Lock()
        self.batcher = _Batcher(llm, self.lock)

    def _gen_kwargs(self, body: dict[str, Any]) -> dict[str, Any]:
        stop = body.get("stop")
        return {"max_new_tokens": int(body.get("max_tokens") or 16),
                "temperature": float(body.get("temperature", 1.0) or 0.0),
                "top_p": float(body.get("top_p", 1.0) or 1.0), "seed": int(body.get("seed") or 0),
                "stop": [stop] if isinstance(stop, str) else stop,
                "repetition_penalty": float(body.get("repetition_penalty") or 1.0)}

    def _envelope(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": f"recfuse-{uuid.uuid4().hex[:12]}", "object": kind, "created": int(time.time()),
                "model": self.model_name, "choices": choices}

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        prompts = body.get("prompt", "")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompt must be a string or a list of strings (token ids are not supported)")
        kw = self._gen_kwargs(body)
        echo = bool(body.get("echo", False))
        want_lp = body.get("logprobs") is not None
        with self.lock:
            texts = self.raw.generate(prompts, **kw) if kw["max_new_tokens"] > 0 else [""] * len(prompts)
            lps = self.raw.token_logprobs([p + t for p, t in zip(prompts, texts)]) if want_lp else None
        choices = []
        for i, (p, t) in enumerate(zip(prompts, texts)):
            c: dict[str, Any] = {"index": i, "text": (p + t) if echo else t, "finish_reason": "length"
                                 if kw["max_new_tokens"] and len(t) else "stop", "logprobs": None}
            if lps is not None:
                lp = lps[i]
                start = 0 if echo else len(p)
                keep = [j for j, off in enumerate(lp["text_offset"]) if off >= start]
                c["logprobs"] = {"tokens": [lp["tokens"][j] for j in keep],
                                 "token_logprobs": [lp["token_logprobs"][j] for j in keep],
                                 "text_offset": [lp["text_offset"][j] - start for j in keep],
                                 "top_logprobs": None}
            choices.append(c)
        return self._envelope("text_completion", choices)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages must be a non-empty list")
        messages = [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]
        kw = self._gen_kwargs(body)
        want_lp = bool(body.get("logprobs", False))
        k = int(body.get("top_logprobs") or 0)
        if k > 20:
            raise ValueError("top_logprobs must be at most 20")
        first_only = want_lp and kw["max_new_tokens"] == 1 and kw["temperature"] == 0
        if first_only:  # the choice-scoring path: batched across concurrent requests
            top = self.batcher.submit(messages, max(k, 1))
            tok, lp = top[0]
            content: list[dict[str, Any]] | None = [{"token": tok, "logprob": lp, "top_logprobs": [{"token": t, "logprob": v}
                                                                       for t, v in top[:k]]}]
            eos = self.llm.tokenizer.eos_token
            text = "" if tok == eos else tok
            msg = {"role": "assistant", "content": text}
            return self._envelope("chat.completion", [{"index": 0, "message": msg, "finish_reason": "length",
                                                       "logprobs": {"content": content}}])
        with self.lock:
            text = self.llm.generate([messages], **kw)[0]
            content = self._chat_logprobs(messages, text, max(k, 1)) if want_lp else None
        return self._envelope("chat.completion", [{
            "index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
            "logprobs": {"content": content} if want_lp else None}])

    def _chat_logprobs(self, messages: list[dict[str, str]], text: str, k: int) -> list[dict[str, Any]]:
        import torch

        llm = self.llm
        prompt_ids = llm.encode(messages)
        comp = llm.tokenizer(text, add_special_tokens=False)["input_ids"] or [llm.tokenizer.eos_token_id]
        x = torch.tensor([prompt_ids + comp], device=llm.device)
        with torch.inference_mode():
            lp = llm.model(input_ids=x, logits_to_keep=len(comp) + 1).logits[0, :-1].float().log_softmax(-1)
        out = []
        for j, t in enumerate(comp):
            top = lp[j].topk(k)
            out.append({"token": llm.tokenizer.decode([t]), "logprob": float(lp[j, t]),
                        "top_logprobs": [{"token": llm.tokenizer.decode([int(i)]), "logprob": float(v)}
                                         for v, i in zip(top.values, top.indices)]})
        return out


def make_server(llm: Any, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None) -> _Server:
    """An OpenAI-compatible server for a :class:`~recfuse.llm.local.LocalLLM` (not yet serving)."""
    return _Server((host, port), llm, model_name if model_name else getattr(llm, "name", "recfuse"))


def serve_in_thread(llm: Any, host: str = "127.0.0.1", port: int = 0,
                    model_name: str | None = None) -> tuple[_Server, str]:
    """Start a server in a background thread; returns it and its base URL (``port=0``: a free port)."""
    srv = make_server(llm, host, port, model_name)
    threading.Thread(target=srv.serve_forever, name="recfuse-llm-serve", daemon=True).start()
    h, p = srv.server_address[:2]
    assert isinstance(h, str), "an AF_INET server's address is (host: str, port)"
    return srv, f"http://{h}:{p}/v1"
