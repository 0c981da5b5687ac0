"""Choice scoring, padding and caching on a tiny random llama (exact maths, fast)."""

import numpy as np
import pytest
import torch

from recfuse.llm import CachedLLM, LLMError, choice_probs
from recfuse.llm.base import LLM

PROMPTS = [
    "Rate the movie Alien (1979) from 1 to 5.",
    "Is this a short prompt?",
    "A much longer prompt about the user's history: Toy Story (1995); Heat (1995); Casino (1995); "
    "Babe (1995); Seven (1995). Will the user like Jumanji (1995)?",
    [{"role": "user", "content": "First turn"}, {"role": "assistant", "content": "A profile."},
     {"role": "user", "content": "Second turn: Yes or No?"}],
]
CHOICES = ["Yes", "No", "Maybe not", "1 2 3", "5"]


def manual_logprob(llm, prompt, choice):
    ids = llm.encode(prompt) + llm.choice_token_ids(choice)
    n = len(llm.choice_token_ids(choice))
    with torch.no_grad():
        lp = llm.model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return sum(float(lp[len(ids) - n - 1 + j, ids[len(ids) - n + j]]) for j in range(n))


def test_protocol(tiny_llm):
    assert isinstance(tiny_llm, LLM)
    assert isinstance(CachedLLM(tiny_llm), LLM)


def test_choice_ids_come_from_the_tokenizer(tiny_llm, tokenizer):
    digits = [tiny_llm.choice_token_ids(str(d)) for d in range(1, 6)]
    assert all(len(d) == 1 for d in digits) and len({d[0] for d in digits}) == 5
    assert digits[2] == tokenizer("3", add_special_tokens=False)["input_ids"]
    assert len(tiny_llm.choice_token_ids("Maybe not")) > 1


def test_multi_token_choices_equal_manual_sum(tiny_llm):
    got = tiny_llm.choice_logprobs(PROMPTS, CHOICES)
    assert got.shape == (len(PROMPTS), len(CHOICES))
    want = np.array([[manual_logprob(tiny_llm, p, c) for c in CHOICES] for p in PROMPTS])
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.all(got < 0)


def test_left_padding_matches_single_prompts(tiny_llm):
    batched = tiny_llm.choice_logprobs(PROMPTS, CHOICES)  # batch_size 3: padded batches
    single = np.vstack([tiny_llm.choice_logprobs([p], CHOICES) for p in PROMPTS])
    np.testing.assert_allclose(batched, single, atol=1e-4)
    gen_b = tiny_llm.generate(PROMPTS, max_new_tokens=6)
    gen_s = [tiny_llm.generate([p], max_new_tokens=6)[0] for p in PROMPTS]
    assert gen_b == gen_s


def test_single_token_choices_right_padded_equal_manual_and_single_prompts(tiny_llm):
    """Single-token answers take the right-padded, mask-free path: same values as each prompt alone."""
    choices = ["1", "2", "3", "4", "5"]
    assert all(len(tiny_llm.choice_token_ids(c)) == 1 for c in choices)
    batched = tiny_llm.choice_logprobs(PROMPTS, choices)  # batch_size 3: prompts of different lengths
    want = np.array([[manual_logprob(tiny_llm, p, c) for c in choices] for p in PROMPTS])
    np.testing.assert_allclose(batched, want, atol=1e-4)
    single = np.vstack([tiny_llm.choice_logprobs([p], choices) for p in PROMPTS])
    np.testing.assert_allclose(batched, single, atol=1e-4)
    top = tiny_llm.next_token_top_logprobs(PROMPTS, 3)
    for p, row in zip(PROMPTS, top, strict=True):
        with torch.no_grad():
            lp = tiny_llm.model(input_ids=torch.tensor([tiny_llm.encode(p)])).logits[0, -1].float().log_softmax(-1)
        np.testing.assert_allclose([v for _, v in row], lp.topk(3).values.numpy(), atol=1e-4)


def test_prompts_that_open_alike_are_scored_from_one_shared_prefix(tiny_llm):
    """One user's pointwise prompts differ only in the candidate near the end: the shared opening is run once
    and its keys and values reused; the scores equal each prompt scored whole."""
    from recfuse.llm.local import shared_prefix_groups

    history = "The user watched " + "; ".join(f"Movie number {i} (19{i + 10})" for i in range(30)) + ". "
    prompts = [history + f"How would the user rate Candidate {c}{'!' * c} from 1 to 5?" for c in range(7)]
    prompts += PROMPTS[:3]  # prompts of their own, scored whole beside them
    choices = ["1", "2", "3", "4", "5"]
    before = tiny_llm.stats["prompts_with_shared_prefix"]
    got = tiny_llm.choice_logprobs(prompts, choices)
    assert tiny_llm.stats["prompts_with_shared_prefix"] - before == 7
    want = np.array([[manual_logprob(tiny_llm, p, c) for c in choices] for p in prompts])
    np.testing.assert_allclose(got, want, atol=1e-4)

    groups = shared_prefix_groups([[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 2, 3], [9, 9, 9, 9], [1, 2, 7]], 2, 8)
    assert [(n, sorted(idx.tolist())) for n, idx in groups] == [(2, [0, 1, 2, 4])]  # n leaves [1, 2, 3] a token
    assert [len(idx) for _, idx in shared_prefix_groups([[1, 2, 3, k] for k in range(5)], 2, 2)] == [2, 2]
    # two users' prompts share the instruction (2 tokens) but each user's share more: one group per user
    two_users = [[1, 2, 3, 4, 5, 6], [1, 2, 8, 9, 9], [1, 2, 3, 4, 5, 7], [1, 2, 8, 9, 8]]
    assert [(n, sorted(idx.tolist())) for n, idx in shared_prefix_groups(two_users, 2, 8)] == [(5, [0, 2]),
                                                                                                (4, [1, 3])]


def test_choice_probs_sum_to_one(tiny_llm):
    p = choice_probs(tiny_llm.choice_logprobs(PROMPTS[:2], ["1", "2", "3", "4", "5"]))
    np.testing.assert_allclose(p.sum(1), 1.0)


def test_bad_choices_raise(tiny_llm):
    with pytest.raises(LLMError):
        tiny_llm.choice_logprobs(PROMPTS[:1], [])
    with pytest.raises(LLMError):
        tiny_llm.choice_logprobs(PROMPTS[:1], ["Yes", "Yes"])


def test_cache_skips_the_model_on_rerun(tiny_llm, tmp_path):
    db = tmp_path / "answers.sqlite"
    first = CachedLLM(tiny_llm, db)
    calls0 = tiny_llm.stats["choice_calls"]
    a = first.choice_logprobs(PROMPTS, CHOICES)
    assert tiny_llm.stats["choice_calls"] == calls0 + 1
    g = first.generate(PROMPTS[:2], max_new_tokens=4)
    gen_calls = tiny_llm.stats["generate_calls"]
    # a new process-like wrapper on the same file: nothing is asked again
    second = CachedLLM(tiny_llm, db)
    b = second.choice_logprobs(PROMPTS, CHOICES)
    assert second.generate(PROMPTS[:2], max_new_tokens=4) == g
    assert tiny_llm.stats["choice_calls"] == calls0 + 1 and tiny_llm.stats["generate_calls"] == gen_calls
    assert second.stats == {"hits": len(PROMPTS) + 2, "misses": 0, "model_calls": 0}
    np.testing.assert_array_equal(a, b)
    # a resumed run with new prompts asks only for those
    before = tiny_llm.stats["prompts_scored"]
    second.choice_logprobs(PROMPTS + ["a new prompt"], CHOICES)
    assert tiny_llm.stats["prompts_scored"] == before + 1
    # other decoding settings or choices are other keys
    second.generate(PROMPTS[:1], max_new_tokens=5)
    assert tiny_llm.stats["generate_calls"] == gen_calls + 1


def test_fingerprint_follows_the_weights(tiny_llm, tokenizer):
    from recfuse.llm.local import LocalLLM

    fp = tiny_llm.fingerprint
    other = LocalLLM(tiny_llm.model, tokenizer, name="tiny-random-llama")
    assert other.fingerprint == fp
    assert tiny_llm.with_chat(False).fingerprint != fp
    with torch.no_grad():
        p = next(tiny_llm.model.parameters())
        old = p.clone()
        p.add_(1.0)
        try:
            assert other.refresh_fingerprint() != fp
        finally:
            p.copy_(old)
    assert other.refresh_fingerprint() == fp


def test_exported_answers_resume_a_run_on_a_fresh_cache(tiny_llm, tmp_path):
    """An exported answer cache imported elsewhere answers the same run without the model (a new machine)."""
    from recfuse.cli import main
    from recfuse.errors import DataError
    from recfuse.llm.cache import AnswerCache

    first = CachedLLM(tiny_llm, tmp_path / "here.sqlite")
    scores = first.choice_logprobs(PROMPTS, CHOICES)
    texts = first.generate(PROMPTS[:2], max_new_tokens=4)
    assert main(["llm", "cache", "--cache", str(tmp_path / "here.sqlite"), "export", str(tmp_path / "a.jsonl.gz")]) == 0
    assert main(["llm", "cache", "--cache", str(tmp_path / "there.sqlite"), "import", str(tmp_path / "a.jsonl.gz")]) == 0
    calls = dict(tiny_llm.stats)
    there = CachedLLM(tiny_llm, tmp_path / "there.sqlite")
    np.testing.assert_array_equal(there.choice_logprobs(PROMPTS, CHOICES), scores)
    assert there.generate(PROMPTS[:2], max_new_tokens=4) == texts
    assert tiny_llm.stats == calls and there.stats["misses"] == 0
    # importing again adds nothing and keeps what is there
    assert there.cache.import_answers(tmp_path / "a.jsonl.gz") == {"read": len(PROMPTS) + 2, "added": 0,
                                                                    "already_here": len(PROMPTS) + 2}
    # a damaged file names its line, and adds nothing
    (tmp_path / "a.jsonl").write_text('{"key": "%s", "value": "x", "seconds": 1.0}\n' % ("a" * 64)
                                      + '{"key": "short", "value": "y"}\n')
    fresh = AnswerCache(tmp_path / "fresh.sqlite")
    with pytest.raises(DataError, match=r"a\.jsonl, line 2"):
        fresh.import_answers(tmp_path / "a.jsonl")
    assert len(fresh) == 0


def test_truncation_keeps_the_answer_slot(tokenizer):
    import copy

    from recfuse.llm.local import LocalLLM

    llm = LocalLLM(copy.deepcopy(_tiny_model(len(tokenizer))), tokenizer, max_prompt_tokens=20)
    ids = llm.encode("word " * 200)
    assert len(ids) == 20 and llm.stats["prompts_truncated"] == 1
    assert tokenizer.decode(ids).endswith("assistant\n")
    # a budget that cuts prompts gives other answers: another fingerprint (the default, the context, keeps its own)
    model = _tiny_model(len(tokenizer))
    default = LocalLLM(copy.deepcopy(model), tokenizer).fingerprint
    assert LocalLLM(copy.deepcopy(model), tokenizer, max_prompt_tokens=128).fingerprint == default
    assert LocalLLM(copy.deepcopy(model), tokenizer, max_prompt_tokens=20).fingerprint != default


def _tiny_model(vocab):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128)
    return LlamaForCausalLM(cfg).eval()


def test_adapter_is_applied_and_fingerprinted(tokenizer, tmp_path):
    from peft import LoraConfig, get_peft_model

    from recfuse.llm.local import LocalLLM

    torch.manual_seed(1)
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    _tiny_model(len(tokenizer)).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    peft_model = get_peft_model(_tiny_model(len(tokenizer)).from_pretrained(base_dir),
                                LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(adapter_dir)
    plain = LocalLLM(base_dir, dtype="float32")
    tuned = LocalLLM(base_dir, adapter=adapter_dir, dtype="float32")
    assert plain.fingerprint != tuned.fingerprint and tuned.adapter == str(adapter_dir)
    a = plain.choice_logprobs(PROMPTS[:2], CHOICES)
    b = tuned.choice_logprobs(PROMPTS[:2], CHOICES)
    assert not np.allclose(a, b)
    assert LocalLLM(base_dir, adapter=adapter_dir, dtype="float32").fingerprint == tuned.fingerprint
    # merged into the weights by default: same answers as the separate low-rank layers, none left behind
    separate = LocalLLM(base_dir, adapter=adapter_dir, dtype="float32", merge_adapter=False)
    assert not any("lora" in name for name, _ in tuned.model.named_modules())
    assert any("lora" in name for name, _ in separate.model.named_modules())
    np.testing.assert_allclose(separate.choice_logprobs(PROMPTS[:2], CHOICES), b, atol=1e-5)
    assert separate.fingerprint != tuned.fingerprint  # cached answers of the two are never mixed
    with pytest.raises(LLMError):
        LocalLLM(base_dir, adapter=tmp_path / "missing")


def test_generation_stops_at_stop_strings(tiny_llm):
    full = tiny_llm.generate(PROMPTS[:2], max_new_tokens=12)
    stop = [full[0][3:5]] if len(full[0]) > 5 else ["\n"]
    cut = tiny_llm.generate(PROMPTS[:2], max_new_tokens=12, stop=stop)
    for f, c in zip(full, cut):
        assert f.startswith(c) and stop[0] not in c


def test_static_and_dynamic_kv_cache_generate_the_same(tiny_llm):
    """The pre-allocated (static) cache is a speed choice: greedy and seeded sampled answers are unchanged,
    for a batch of prompts of different lengths (left padding)."""
    import copy

    dynamic = copy.copy(tiny_llm)
    dynamic.kv_cache = "dynamic"
    assert tiny_llm.kv_cache == "static"
    for kw in ({}, {"temperature": 0.8, "seed": 3}):
        assert tiny_llm.generate(PROMPTS, max_new_tokens=10, **kw) == dynamic.generate(PROMPTS, max_new_tokens=10, **kw)
    with pytest.raises(LLMError, match="kv_cache"):
        type(tiny_llm)(tiny_llm.model, tiny_llm.tokenizer, kv_cache="paged")


def test_repetition_penalty_changes_answers_and_the_cache_key(tiny_llm, tmp_path):
    plain = tiny_llm.generate(PROMPTS, max_new_tokens=12)
    penalized = tiny_llm.generate(PROMPTS, max_new_tokens=12, repetition_penalty=3.0)
    assert plain != penalized  # the random model repeats itself; the penalty steers it elsewhere
    cached = CachedLLM(tiny_llm, tmp_path / "c.sqlite")
    assert cached.generate(PROMPTS, max_new_tokens=12) == plain
    assert cached.generate(PROMPTS, max_new_tokens=12, repetition_penalty=3.0) == penalized  # not the cached plain
    assert cached.stats["misses"] == 2 * len(PROMPTS) and cached.stats["hits"] == 0
    assert cached.generate(PROMPTS, max_new_tokens=12, repetition_penalty=3.0) == penalized
    assert cached.stats["hits"] == len(PROMPTS)


def test_required_part_is_written_where_the_answer_would_end(tiny_llm, tmp_path):
    from recfuse.llm.base import RequiredPart

    plain = tiny_llm.generate(PROMPTS, max_new_tokens=12)
    # never written by the model: inserted after `within` tokens, then the model goes on
    part = RequiredPart("zzqx", " ZZQX:", within=3)
    short = tiny_llm.generate(PROMPTS, max_new_tokens=3)
    forced = tiny_llm.generate(PROMPTS, max_new_tokens=12, require=part)
    for s_, f in zip(short, forced):
        assert f.startswith(s_ + " ZZQX:") and len(f) > len(s_ + " ZZQX:")
    # already there (any character matches): nothing changes
    assert tiny_llm.generate(PROMPTS, max_new_tokens=12, require=RequiredPart(r"[\s\S]", " ZZQX:", 3)) == plain
    # where the answer would stop (the random model writes only newlines: at once), the insert comes first
    assert set(plain[0]) == {"\n"} and tiny_llm.generate(PROMPTS[:1], max_new_tokens=12, stop=["\n"]) == [""]
    cont = tiny_llm.generate(PROMPTS[:1], max_new_tokens=12, stop=["\n"], require=RequiredPart("zzqx", " ZZQX:", 12))[0]
    assert cont.startswith(" ZZQX:") and "\n" not in cont
    # cached under its own key
    cached = CachedLLM(tiny_llm, tmp_path / "c.sqlite")
    assert cached.generate(PROMPTS, max_new_tokens=12) == plain
    assert cached.generate(PROMPTS, max_new_tokens=12, require=part) == forced
    assert cached.stats["hits"] == 0


class _Crashy:
    """An LLM that fails on its second call (a crash mid-run)."""

    fingerprint = "crashy"

    def __init__(self):
        self.calls = 0

    def choice_logprobs(self, prompts, choices):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("killed")
        return -np.ones((len(prompts), len(choices))) * self.calls

    def generate(self, prompts, max_new_tokens=128, temperature=0.0, top_p=1.0, seed=0, stop=None):
        return ["x"] * len(prompts)


def test_cache_keeps_finished_chunks_after_a_crash(tmp_path):
    crashy = _Crashy()
    cached = CachedLLM(crashy, tmp_path / "c.sqlite", chunk_size=2)
    prompts = [f"p{i}" for i in range(5)]
    with pytest.raises(RuntimeError):
        cached.choice_logprobs(prompts, ["a", "b"])
    resumed = CachedLLM(crashy, tmp_path / "c.sqlite", chunk_size=2)
    out = resumed.choice_logprobs(prompts, ["a", "b"])
    assert resumed.stats["hits"] == 2 and resumed.stats["misses"] == 3 and crashy.calls == 4
    np.testing.assert_array_equal(out[:2], -1.0)  # the chunk finished before the crash, not recomputed


def test_cache_shows_one_bar_over_the_chunks_when_the_model_shows_progress(tmp_path, capsys):
    crashy = _Crashy()
    cached = CachedLLM(crashy, tmp_path / "c.sqlite", chunk_size=2)
    cached.generate(["p0"])
    cached.generate([f"p{i}" for i in range(5)])  # progress off: no bar
    assert "answers" not in capsys.readouterr().err
    crashy.progress = True
    cached.generate([f"q{i}" for i in range(2)])  # one chunk: the model's own bar is enough
    assert "answers" not in capsys.readouterr().err
    cached.generate([f"p{i}" for i in range(9)])
    err = capsys.readouterr().err
    assert "generate answers (cached: 5)" in err and "/4 " in err  # 9 asked, 5 cached: 4 to compute


def test_choice_ids_match_in_context_tokenization(tiny_llm, tokenizer):
    for p in PROMPTS:
        text = tiny_llm.render(p)
        for c in CHOICES:
            joined = tokenizer(text + c, add_special_tokens=False)["input_ids"]
            assert joined == tiny_llm.encode(p) + tiny_llm.choice_token_ids(c)


def test_worker_processes_answer_as_one_process(tiny_llm_dir):
    """``workers=2``: the batches go to two spawned processes (own model copies); greedy and sampled answers,
    structured generation and choice scores are those of one process; changed weights stop the workers."""
    import torch

    from recfuse.llm.base import RequiredPart
    from recfuse.llm.local import LocalLLM

    prompts = [f"Tell me about movie number {i}." + " More." * (i % 4) for i in range(7)]
    one = LocalLLM(tiny_llm_dir, batch_size=2, dtype="float32")
    two = LocalLLM(tiny_llm_dir, batch_size=2, dtype="float32", workers=2)
    try:
        part = RequiredPart("interests?:", "; Interests:", within=3)
        for kw in ({"max_new_tokens": 5}, {"max_new_tokens": 5, "temperature": 1.0, "seed": 3},
                   {"max_new_tokens": 8, "require": part, "stop": ["\n"]}):
            assert two.generate(prompts, **kw) == one.generate(prompts, **kw)
        assert two._workers_state["pool"] is not None  # the batches did go to the workers
        assert two.with_chat(False)._workers_state is two._workers_state  # views share the workers
        choices = ["Yes", "No", "Maybe not"]
        np.testing.assert_allclose(two.choice_logprobs(prompts, choices), one.choice_logprobs(prompts, choices),
                                   atol=1e-5)
        assert one.fingerprint == two.fingerprint
        with torch.no_grad():
            next(two.model.parameters()).add_(1.0)
        two.refresh_fingerprint()  # weights changed in memory: the workers' copies are stale
        assert two._workers_state["pool"] is None
        two.generate(prompts[:4], max_new_tokens=2)
        assert two._workers_state["pool"] is None
    finally:
        two.close()


def test_a_damaged_answer_cache_names_its_file_and_a_damaged_answer_is_asked_again(tmp_path, caplog):
    import sqlite3

    from recfuse.errors import CacheError
    from recfuse.llm.cache import AnswerCache

    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheError, match=r"junk\.sqlite: cannot open the LLM answer cache"):
        AnswerCache(junk)
    cache = AnswerCache(tmp_path / "a.sqlite")
    cache.put_many([("k1", [1.0]), ("k2", [2.0])])
    with sqlite3.connect(tmp_path / "a.sqlite") as conn:
        conn.execute("UPDATE answers SET value = '[1.0,' WHERE key = 'k1'")
    assert cache.get_many(["k1", "k2"]) == {"k2": [2.0]}
    assert "1 cached answer(s) cannot be read: asked again" in caplog.text
