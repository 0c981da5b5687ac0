"""The HTTP backend over several servers of one model: requests spread, a failed one retried on another server,
a dead server dropped from the rotation, and the answer cache resuming a killed run. First against toy servers
in this process (fast, exact), then against three `recfuse llm serve` processes of a tiny random model on
loopback, one of them killed mid-run."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer

import pytest

from recfuse.config import from_dict
from recfuse.errors import ConfigError
from recfuse.llm import LLMError
from recfuse.llm.cache import CachedLLM
from recfuse.llm.config import LLMConfig
from recfuse.llm.http import HTTPLLM
from recfuse.llm.launch import free_port, launch_recfuse_server
from tests.llm.fake_servers import JSONHandler


def toy_server(name: str, status: int = 200):
    """A chat server that answers its own name (or ``status`` with an error), counting what it was asked."""

    class Handler(JSONHandler):
        asked = 0

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            type(self).asked += 1
            time.sleep(0.005)  # a little work, so that requests overlap
            if status != 200:
                return self._send(status, {"error": "busy"})
            self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": name}}]})

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, Handler, f"http://127.0.0.1:{srv.server_address[1]}/v1"


@pytest.fixture()
def toys():
    servers = [toy_server(f"s{i}") for i in range(3)]
    yield servers
    for srv, _, _ in servers:
        srv.shutdown()
        srv.server_close()


def test_requests_spread_over_the_servers(toys):
    llm = HTTPLLM(",".join(url for _, _, url in toys), concurrency=3, retries=0)
    answers = llm.generate([f"q{i}" for i in range(30)], max_new_tokens=2)
    assert set(answers) == {"s0", "s1", "s2"}
    assert all(h.asked >= 5 for _, h, _ in toys) and sum(h.asked for _, h, _ in toys) == 30
    assert llm.stats["failovers"] == 0 and sum(llm.served.values()) == 31  # + the models list


def test_a_dead_server_is_dropped_and_its_requests_go_elsewhere(toys):
    dead_url = f"http://127.0.0.1:{free_port()}/v1"  # nobody listens there
    urls = [toys[0][2], dead_url, toys[1][2]]
    llm = HTTPLLM(urls, model="toy", concurrency=3, retries=0, revive_after=600)
    answers = llm.generate([f"q{i}" for i in range(20)], max_new_tokens=2)  # retries=0: failover is not a retry
    assert set(answers) == {"s0", "s1"} and llm.stats["retries"] == 0
    assert llm.stats["servers_dropped"] == 1 and llm.served[dead_url] == 0
    assert 1 <= llm.stats["failovers"] <= 3  # at most a request or two per thread found it dead, then none


def test_a_server_answering_errors_hands_its_request_to_another(toys):
    srv, handler, busy = toy_server("busy", status=503)
    try:
        llm = HTTPLLM([busy, toys[2][2]], model="toy", concurrency=1, retries=0)
        assert llm.generate(["a", "b", "c", "d"]) == ["s2"] * 4
        assert handler.asked >= 1 and llm.stats["failovers"] == handler.asked
        assert llm.stats["servers_dropped"] == 0  # it answers: busy, not dead
    finally:
        srv.shutdown()
        srv.server_close()


def test_no_server_reachable_is_one_clear_error():
    urls = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(3)]
    with pytest.raises(LLMError, match="cannot reach any of the 3 OpenAI-compatible servers at .* after 6 attempts"):
        HTTPLLM(urls, model="toy", retries=1, backoff=0.01).generate(["q"])


def test_the_config_takes_several_urls():
    a, b = "http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"
    assert from_dict(LLMConfig, {"backend": "http", "base_url": f"{a},{b}/"}).base_url == [a, b]
    assert from_dict(LLMConfig, {"backend": "http", "base_url": [a, b]}).base_url == [a, b]
    assert from_dict(LLMConfig, {}).base_url == [] and from_dict(LLMConfig, {"base_url": ""}).base_url == []
    with pytest.raises(ConfigError, match="lists a server twice"):
        from_dict(LLMConfig, {"backend": "http", "base_url": [a, a]})
    with pytest.raises(ConfigError, match="must be an http:// or https:// URL"):
        from_dict(LLMConfig, {"backend": "http", "base_url": [a, "ftp://x"]})


def test_a_pool_keys_its_answers_by_the_model_not_the_servers(toys):
    urls = [url for _, _, url in toys]
    one = HTTPLLM(urls[0], model="toy")
    assert HTTPLLM(urls, model="toy").fingerprint == HTTPLLM(urls[1:], model="toy").fingerprint
    assert one.fingerprint != HTTPLLM(urls, model="toy").fingerprint  # a single server keeps its old key
    assert one.base_url == urls[0]


# ---- three real servers, one killed mid-run ---------------------------------------------------------------

@pytest.fixture()
def three_servers(tiny_llm_dir):
    args = ["--backend", "hf", "--model", str(tiny_llm_dir), "--dtype", "float32"]
    with ThreadPoolExecutor(3) as ex:
        servers = list(ex.map(lambda _: launch_recfuse_server(threads=1, extra_args=args, timeout=240), range(3)))
    yield servers
    for s in servers:
        s.stop()


class Killed(Exception):
    """The run stops here, as if the process were killed."""


def test_three_servers_one_killed_mid_run_and_a_killed_run_resumes(three_servers, tmp_path):
    urls = [s.url for s in three_servers]
    prompts = [f"Describe user {i} in a few words." for i in range(24)]
    pool = HTTPLLM(urls, concurrency=3, retries=2, backoff=0.05, timeout=60, revive_after=600)
    llm = CachedLLM(pool, tmp_path / "answers.sqlite", chunk_size=4)
    compute, calls = pool.generate, {"n": 0}

    def run_that_is_killed(batch, *a, **k):  # the second chunk kills server 1; the fourth, the run itself
        calls["n"] += 1
        if calls["n"] == 2:
            three_servers[1].proc.kill()
            three_servers[1].proc.wait()
        if calls["n"] == 4:
            raise Killed()
        return compute(batch, *a, **k)

    pool.generate = run_that_is_killed  # type: ignore[method-assign]
    with pytest.raises(Killed):
        llm.generate(prompts, max_new_tokens=4)
    assert len(llm.cache) == 12  # three chunks answered, the third without server 1
    assert all(pool.served[u] > 0 for u in urls)

    # the rerun, with the same list of servers (one of them dead): only the missing half is asked
    again = HTTPLLM(urls, concurrency=3, retries=2, backoff=0.05, timeout=60, revive_after=600)
    assert again.fingerprint == pool.fingerprint
    answers = CachedLLM(again, tmp_path / "answers.sqlite", chunk_size=4).generate(prompts, max_new_tokens=4)
    assert len(answers) == 24 and all(isinstance(a, str) for a in answers)
    assert again.served[urls[1]] == 0 and again.stats["servers_dropped"] == 1
    assert sum(again.served.values()) == 12 + 1  # the missing answers and the models list
    assert again.served[urls[0]] >= 3 and again.served[urls[2]] >= 3  # the live two share the work
    # every server runs the same model: the pool's answers are the single server's
    assert HTTPLLM(urls[0]).generate(prompts[:6], max_new_tokens=4) == answers[:6]


def test_the_config_builds_a_pool(toys):
    from recfuse.llm.config import load_llm

    urls = [url for _, _, url in toys[:2]]
    llm = load_llm(from_dict(LLMConfig, {"backend": "http", "base_url": ",".join(urls), "model": "toy",
                                         "concurrency": 2}))
    assert llm.llm.base_urls == urls and llm.generate(["a", "b", "c", "d"]) and all(
        h.asked for _, h, _ in toys[:2])
