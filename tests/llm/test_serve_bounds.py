"""recfuse llm serve bounds every request: tokens, prompts, prompt length, body size and a stalled body; bad
bodies get 400 with a message, never a 500 (a real server on loopback, the tiny random model)."""

import json
import socket
import time

import pytest
import requests

from recfuse.llm.serve import Limits, serve_in_thread


@pytest.fixture(scope="module")
def server(tiny_llm):
    srv, url = serve_in_thread(tiny_llm, limits=Limits(max_tokens=64, max_prompts=4, body_timeout_s=1.0))
    yield srv, url
    srv.shutdown()


BAD = [
    ("completions", {"prompt": "hi", "max_tokens": 10 ** 9}, "max_tokens must be between 0 and 64"),
    ("completions", {"prompt": "hi", "max_tokens": -1}, "max_tokens must be between"),
    ("completions", {"prompt": "hi", "max_tokens": "many"}, "max_tokens must be a whole number"),
    ("completions", {"prompt": ["a"] * 5}, "prompt must hold 1 to 4 prompts"),
    ("completions", {"prompt": {"text": "a"}}, "prompt must be a string or a list of strings"),
    ("completions", {"prompt": "word " * 5000, "max_tokens": 1}, "the model's context holds"),
    ("completions", {"prompt": "hi", "temperature": float("nan")}, "temperature must be a number"),
    ("chat/completions", {"messages": [{"content": "x"}]}, "string 'role'"),
    ("chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 50}, "top_logprobs"),
    ("chat/completions", {"messages": "hello"}, "messages must be a non-empty list"),
]


@pytest.mark.parametrize("route, body, message", BAD, ids=[b[2][:30] for b in BAD])
def test_bad_requests_are_400_with_a_message(server, route, body, message):
    _, url = server
    r = requests.post(f"{url}/{route}", data=json.dumps(body, allow_nan=True), timeout=30,
                      headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]


def test_a_json_list_as_the_body_is_400(server):
    _, url = server
    r = requests.post(f"{url}/completions", json=["a", "b"], timeout=30)
    assert r.status_code == 400


def test_an_oversized_body_is_refused_at_once_and_a_stalled_one_is_cut_off(server):
    srv, _ = server
    host, port = srv.server_address
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 999999999999\r\n\r\n")
        assert b" 413 " in s.recv(4096).split(b"\r\n")[0] + b" "
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"prompt\"")  # and then nothing more
        first = s.recv(4096)
    status = first.split(b"\r\n")[0]
    # cut off after the 1 s timeout: 408, or 400 where FastAPI's body parser met the timeout first
    assert (b" 408 " in status + b" " or b" 400 " in status + b" ") and 0.9 < time.monotonic() - start < 8


def test_a_good_request_still_works(server):
    _, url = server
    r = requests.post(f"{url}/completions", json={"prompt": "hello", "max_tokens": 3, "temperature": 0}, timeout=60)
    assert r.status_code == 200 and r.json()["choices"][0]["text"] is not None
