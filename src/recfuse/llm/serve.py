"""A small OpenAI-compatible server for a local model (the embedded one by default), with log-probabilities.

``recfuse llm serve`` answers ``GET /v1/models``, ``POST /v1/completions`` (``prompt`` a string or a list,
``echo`` and ``logprobs`` supported, so prompts and answers can be scored) and ``POST /v1/chat/completions``
(``logprobs`` and ``top_logprobs`` supported). It lets several processes share one loaded model, and it is
the real server the HTTP backend is tested against (``transformers serve`` returns no log-probabilities,
and llama.cpp's server takes half an hour to build here). For scale, point the HTTP backend at vLLM.

Built on FastAPI and uvicorn, as ``recfuse serve`` is (OpenAPI documentation at ``/docs``); requests are
served one model call at a time, with first-token scoring requests that arrive together batched into one
forward pass. Errors keep OpenAI's shape: ``{"error": {"message", "type", "code"}}``, 400 for a bad request.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
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


class _Model:
    """The model behind the server: the OpenAI request bodies in, the response bodies out."""

    def __init__(self, llm: Any, model_name: str):
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


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=code, content={"error": {"message": message, "type": "invalid_request_error",
                                                             "code": code}})


def create_app(llm: Any, model_name: str | None = None) -> FastAPI:
    """The OpenAI-compatible application for a :class:`~recfuse.llm.local.LocalLLM`."""
    model = _Model(llm, model_name if model_name else getattr(llm, "name", "recfuse"))
    app = FastAPI(title="recfuse llm serve", summary=f"{model.model_name}, OpenAI-compatible, with log-probabilities")
    app.state.model = model

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

    def __init__(self, llm: Any, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None):
        self.app = create_app(llm, model_name)
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


def make_server(llm: Any, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None) -> LLMServer:
    """An OpenAI-compatible server for a :class:`~recfuse.llm.local.LocalLLM` (bound, not yet serving)."""
    return LLMServer(llm, host, port, model_name)


def serve_in_thread(llm: Any, host: str = "127.0.0.1", port: int = 0,
                    model_name: str | None = None) -> tuple[LLMServer, str]:
    """Start a server in a background thread; returns it and its base URL (``port=0``: a free port)."""
    srv = make_server(llm, host, port, model_name)
    threading.Thread(target=srv.serve_forever, name="recfuse-llm-serve", daemon=True).start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.01)
    h, p = srv.server_address
    return srv, f"http://{h}:{p}/v1"
