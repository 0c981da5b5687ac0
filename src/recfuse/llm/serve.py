"""A small OpenAI-compatible server for a local model (the embedded one by default), with log-probabilities.

``recfuse llm serve`` answers ``GET /v1/models``, ``POST /v1/completions`` (``prompt`` a string or a list,
``echo`` and ``logprobs`` supported, so prompts and answers can be scored) and ``POST /v1/chat/completions``
(``logprobs`` and ``top_logprobs`` supported). It lets several processes share one loaded model, and it is
the real server the HTTP backend is tested against (``transformers serve`` returns no log-probabilities,
and llama.cpp's server takes half an hour to build here). For scale, point the HTTP backend at vLLM.

Built on FastAPI and uvicorn, as ``recfuse serve`` is (OpenAPI documentation at ``/docs``); requests are
served one model call at a time, with first-token scoring requests that arrive together batched into one
forward pass. Errors keep OpenAI's shape: ``{"error": {"message", "type", "code"}}``, 400 for a bad request.
Every request is bounded (:class:`Limits`): tokens asked for, prompts per request, prompt length against the
model's context, body size (413), and a body that stops arriving (cut off: 408, or 400 where the body parser
meets the timeout first).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import uvicorn
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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


@dataclass(frozen=True)
class Limits:
    """What one request may ask: bounded, so that no request can exhaust the server's memory or time."""

    max_tokens: int = 2048  # tokens generated per prompt
    max_prompts: int = 64  # prompts in one /completions request
    max_prompt_tokens: int = 0  # tokens of one prompt plus its answer (0: the model's context length)
    max_body_bytes: int = 8 << 20  # a request body larger than this is refused at once (413)
    body_timeout_s: float = 30.0  # a client that sends no more of its body for this long is cut off (408)


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float, whole: bool = False) -> Any:
    """A numeric field of a request body, checked: a clear ValueError (400) names it otherwise."""
    raw = body.get(name)
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw != raw or (whole and raw != int(raw)):
        raise ValueError(f"{name} must be a {'whole ' if whole else ''}number, not {raw!r}")
    if not low <= raw <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, not {raw!r}")
    return int(raw) if whole else float(raw)


class _Model:
    """The model behind the server: the OpenAI request bodies in, the response bodies out."""

    def __init__(self, llm: Any, model_name: str, limits: Limits | None = None):
        self.llm = llm  # renders with the chat template
        self.raw = llm.with_chat(False)  # completions take raw text
        self.model_name = model_name
        self.limits = limits or Limits()
        config = getattr(getattr(llm, "model", None), "config", None)
        self.context = self.limits.max_prompt_tokens or int(getattr(config, "max_position_embeddings", 0) or 8192)
        self.lock = threading.Lock()
        self.batcher = _Batcher(llm, self.lock)

    def _gen_kwargs(self, body: dict[str, Any]) -> dict[str, Any]:
        stop = body.get("stop")
        if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list)
                                                                 and all(isinstance(x, str) for x in stop))):
            raise ValueError("stop must be a string or a list of strings")
        return {"max_new_tokens": _number(body, "max_tokens", 16, 0, self.limits.max_tokens, whole=True),
                "temperature": _number(body, "temperature", 1.0, 0, 100),
                "top_p": _number(body, "top_p", 1.0, 1e-9, 1) or 1.0,
                "seed": _number(body, "seed", 0, 0, 2 ** 32 - 1, whole=True),
                "stop": [stop] if isinstance(stop, str) else stop,
                "repetition_penalty": _number(body, "repetition_penalty", 1.0, 1e-3, 100)}

    def _check_length(self, prompt: Any, max_new_tokens: int) -> None:
        n = len(self.llm.encode(prompt)) if not isinstance(prompt, str) else self.llm.count_tokens(prompt)
        if n + max_new_tokens > self.context:
            raise ValueError(f"the prompt has {n} tokens and asks for {max_new_tokens} more: the model's context holds "
                             f"{self.context}")

    def _envelope(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": f"recfuse-{uuid.uuid4().hex[:12]}", "object": kind, "created": int(time.time()),
                "model": self.model_name, "choices": choices}

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        prompts = body.get("prompt", "")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompt must be a string or a list of strings (token ids are not supported)")
        if not prompts or len(prompts) > self.limits.max_prompts:
            raise ValueError(f"prompt must hold 1 to {self.limits.max_prompts} prompts, not {len(prompts)}")
        kw = self._gen_kwargs(body)
        for p in prompts:
            self._check_length(p, kw["max_new_tokens"])
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
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise ValueError("each message must be an object with a string 'role' (and 'content')")
        messages = [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]
        kw = self._gen_kwargs(body)
        self._check_length(messages, kw["max_new_tokens"])
        want_lp = bool(body.get("logprobs", False))
        k = _number(body, "top_logprobs", 0, 0, 20, whole=True)
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


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=code, content={"error": {"message": message, "type": "invalid_request_error",
                                                             "code": code}})


class _BodyGuard:
    """ASGI middleware: a body announced larger than ``max_bytes`` is refused at once (413), and a client that
    stops sending its body for ``timeout_s`` is answered 408 and cut off, so no connection is held forever."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await _send_error(send, 413, f"a request body may hold at most {self.max_bytes} bytes")
        started = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def timed_receive() -> Any:
            return await asyncio.wait_for(receive(), self.timeout_s)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except asyncio.TimeoutError:
            if not started:
                await _send_error(send, 408, f"no more of the request body for {self.timeout_s:g} s")


async def _send_error(send: Any, code: int, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": code}}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def create_app(llm: Any, model_name: str | None = None, limits: Limits | None = None) -> FastAPI:
    """The OpenAI-compatible application for a :class:`~recfuse.llm.local.LocalLLM`, its requests bounded by
    ``limits``."""
    limits = limits or Limits()
    model = _Model(llm, model_name if model_name else getattr(llm, "name", "recfuse"), limits)
    app = FastAPI(title="recfuse llm serve", summary=f"{model.model_name}, OpenAI-compatible, with log-probabilities")
    app.state.model = model
    app.add_middleware(_BodyGuard, max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s)

    @app.get("/v1/models")
    @app.get("/models", include_in_schema=False)
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model.model_name, "object": "model", "owned_by": "recfuse"}]}

    @app.get("/health")
    @app.get("/v1/health", include_in_schema=False)
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    def answer(handler: Any, body: dict[str, Any] | None) -> Any:
        try:
            return handler(body or {})
        except (LLMError, ValueError, TypeError, KeyError) as e:
            return _error(400, str(e))

    @app.post("/v1/completions")
    @app.post("/completions", include_in_schema=False)
    def completions(body: Annotated[dict[str, Any] | None, Body()] = None) -> Any:
        return answer(model.completions, body)

    @app.post("/v1/chat/completions")
    @app.post("/chat/completions", include_in_schema=False)
    def chat(body: Annotated[dict[str, Any] | None, Body()] = None) -> Any:
        return answer(model.chat, body)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "bad JSON body: " + "; ".join(str(e.get("msg", e)) for e in exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = f"no route {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return _error(exc.status_code, message)

    @app.exception_handler(Exception)
    def internal(request: Request, exc: Exception) -> JSONResponse:  # a server must answer, not die
        log.exception("request failed")
        return _error(500, f"{type(exc).__name__}: {exc}")

    return app


class LLMServer:
    """uvicorn serving :func:`create_app` on a socket bound (and listening) at construction, so that
    ``server_address`` holds the real port at once (``port=0``: a free one)."""

    def __init__(self, llm: Any, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None,
                 limits: Limits | None = None):
        self.app = create_app(llm, model_name, limits)
        self.model_name = self.app.state.model.model_name
        self.socket = socket.create_server((host, port), reuse_port=False)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (or, in the main thread, Ctrl-C / SIGTERM)."""
        self._server.run(sockets=[self.socket])

    def shutdown(self) -> None:
        self._server.should_exit = True

    def server_close(self) -> None:
        self.socket.close()


def make_server(llm: Any, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None,
                limits: Limits | None = None) -> LLMServer:
    """An OpenAI-compatible server for a :class:`~recfuse.llm.local.LocalLLM` (bound, not yet serving)."""
    return LLMServer(llm, host, port, model_name, limits)


def serve_in_thread(llm: Any, host: str = "127.0.0.1", port: int = 0, model_name: str | None = None,
                    limits: Limits | None = None) -> tuple[LLMServer, str]:
    """Start a server in a background thread; returns it and its base URL (``port=0``: a free port)."""
    srv = make_server(llm, host, port, model_name, limits)
    threading.Thread(target=srv.serve_forever, name="recfuse-llm-serve", daemon=True).start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.01)
    h, p = srv.server_address
    return srv, f"http://{h}:{p}/v1"
