"""HTTP backend error handling: retries with backoff, a server without logprobs, bad requests."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from recfuse.llm import LLMError
from recfuse.llm.http import HTTPLLM


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503 to every other request; chat answers carry logprobs only when the server is told to."""

    fail_next = True
    with_logprobs = True
    log_message = lambda *a: None  # noqa: E731

    def _send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._send(200, {"data": [{"id": "toy"}]})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        if cls.fail_next:
            cls.fail_next = False
            return self._send(503, {"error": "busy"})
        cls.fail_next = True
        lp = {"content": [{"token": "Yes", "logprob": -0.1, "top_logprobs": [
            {"token": "Yes", "logprob": -0.1}, {"token": " No", "logprob": -2.5}]}]} if cls.with_logprobs else None
        self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes"},
                                      "logprobs": lp}]})


@pytest.fixture()
def flaky():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_retries_then_succeeds(flaky):
    _Flaky.with_logprobs, _Flaky.fail_next = True, True
    llm = HTTPLLM(flaky, retries=2, backoff=0.01, concurrency=1)
    assert llm.model == "toy"
    lp = llm.choice_logprobs(["q"], ["Yes", "No", "Maybe"])
    np.testing.assert_allclose(lp, [[-0.1, -2.5, -2.5]])  # "Maybe" not listed: the list's floor
    assert llm.stats["retries"] >= 1 and llm.stats["choices_not_in_top"] == 1
    assert llm.generate(["q"]) == ["Yes"]


def test_no_logprobs_is_one_clear_error(flaky):
    _Flaky.with_logprobs, _Flaky.fail_next = False, False
    llm = HTTPLLM(flaky, model="toy", retries=1, backoff=0.01)
    with pytest.raises(LLMError, match="no log-probabilities"):
        llm.choice_logprobs(["q"], ["Yes", "No"])


def test_completions_mode_needs_a_tokenizer_for_messages(flaky):
    llm = HTTPLLM(flaky, model="toy", mode="completions")
    with pytest.raises(LLMError, match="tokenizer"):
        llm.choice_logprobs([[{"role": "user", "content": "q"}]], ["Yes"])
    with pytest.raises(LLMError):
        HTTPLLM(flaky, model="toy", mode="bogus")


class _Strict(_Flaky):
    """A hosted-API-like server: refuses unknown fields (vLLM's continue_final_message) with a 400."""

    bodies: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        if "continue_final_message" in body:
            return self._send(400, {"error": "Unrecognized request argument: continue_final_message"})
        self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "a new answer"}}]})


def test_started_answer_continues_where_supported_else_plain_chat():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Strict)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        llm = HTTPLLM(f"http://127.0.0.1:{srv.server_address[1]}/v1", retries=0, concurrency=1)
        started = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Identities:"}]
        assert llm.generate([started, started]) == ["a new answer", "a new answer"]
        first, retried, later = _Strict.bodies
        assert first["continue_final_message"] is True and first["add_generation_prompt"] is False
        assert "continue_final_message" not in retried and "continue_final_message" not in later  # asked once
        llm.generate(["plain"])
        assert "continue_final_message" not in _Strict.bodies[-1]  # a plain prompt never carries it
    finally:
        srv.shutdown()
