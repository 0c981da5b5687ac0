"""HTTP backend error handling: retries with backoff, a server without logprobs, bad requests."""

import json
import threading
import time
from http.server import ThreadingHTTPServer

import numpy as np
import pytest

from recfuse.llm import LLMError
from recfuse.llm.http import HTTPLLM
from tests.llm.fake_servers import JSONHandler


class _Flaky(JSONHandler):
    """Answers 503 to every other request; chat answers carry logprobs only when the server is told to."""

    fail_next = True
    with_logprobs = True

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


# ---- misbehaving servers on loopback (issue #26): slow, stalled, malformed, NaN; every one bounded in time ----

class _Bad(JSONHandler):
    """A server that misbehaves as ``mode`` says."""

    mode = "trickle"

    def do_GET(self):  # noqa: N802
        models = {"models_list": [["toy"]], "models_str": "toy", "models_null": None}
        self._send(200, json.dumps({"data": models.get(type(self).mode, [{"id": "toy"}])}).encode())

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        mode = type(self).mode
        if mode == "trickle":  # headers at once, then one byte at a time, forever
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
            return
        if mode == "500":
            return self._send(500, b'{"error": "out of memory"}')
        if mode == "list":
            return self._send(200, b"[1, 2, 3]")
        lp = {"nan": "NaN", "positive": 3.0, "string": "high"}.get(mode, -0.5)
        top = None if mode == "null_top" else [{"token": "Yes", "logprob": lp}, {"token": "No", "logprob": -1.0}]
        entry = {"token": "Yes", "logprob": lp, "top_logprobs": top}
        if mode == "missing_entry":
            entry = {"token": "Yes"}
        body = json.dumps({"choices": [{"index": 0, "message": {"content": "Yes"}, "logprobs": {"content": [entry]}}]})
        self._send(200, body.replace('"NaN"', "NaN").encode())


@pytest.fixture()
def bad():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Bad)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_a_server_that_trickles_its_answer_is_cut_at_the_deadline(bad):
    _Bad.mode = "trickle"
    llm = HTTPLLM(bad, model="toy", retries=1, backoff=0.01, timeout=5, deadline=0.5, concurrency=1)
    start = time.monotonic()
    with pytest.raises(LLMError, match="deadline of 0.5 s"):
        llm.generate(["q"])
    assert time.monotonic() - start < 4  # two attempts of about 0.5 s each, not 200 x 0.05 s each


@pytest.mark.parametrize("mode, message", [
    ("nan", "sent nan as a log-probability"), ("positive", "sent 3.0 as a log-probability"),
    ("string", "sent 'high' as a log-probability"), ("missing_entry", "no log-probabilities"),
    ("list", "another shape than the API's"),
])
def test_nonsense_log_probabilities_are_refused_not_averaged(bad, mode, message):
    _Bad.mode = mode
    llm = HTTPLLM(bad, model="toy", retries=0, concurrency=1)
    with pytest.raises(LLMError, match=message):
        llm.choice_logprobs(["q"], ["Yes", "No"])


def test_a_null_top_logprobs_falls_back_to_the_answer_token(bad):
    _Bad.mode = "null_top"
    lp = HTTPLLM(bad, model="toy", retries=0, concurrency=1).choice_logprobs(["q"], ["Yes", "No"])
    assert lp.tolist() == [[-0.5, -0.5]]  # "No" is not listed: the list's floor, counted


def test_an_error_on_every_attempt_is_not_called_unreachable(bad):
    _Bad.mode = "500"
    with pytest.raises(LLMError, match=r"is running but answered an error on every one of 2 attempts \(HTTP 500, 500"):
        HTTPLLM(bad, model="toy", retries=1, backoff=0.01).generate(["q"])


@pytest.mark.parametrize("mode", ["models_list", "models_str"])
def test_a_models_list_of_another_shape_is_named(bad, mode):
    _Bad.mode = mode
    with pytest.raises(LLMError, match="another shape than the API's"):
        HTTPLLM(bad, retries=0)


def test_a_base_url_that_is_not_http_is_refused():
    for url in ("ftp://127.0.0.1/v1", "127.0.0.1:8000/v1", ""):
        with pytest.raises(LLMError, match="must start with http:// or https://"):
            HTTPLLM(url, model="m")
