"""RecLM instruction data: section 2.3.2's sampling rules and the two-turn label mask, token by token."""

import numpy as np
import pytest

from recfuse.data import make_synthetic
from recfuse.llm.prompts import PromptBuilder
from recfuse.llm.sft import IGNORE, tokenize_dialogue
from recfuse.reclm import instructions as ins
from recfuse.data.sequences import user_histories as histories
from recfuse.reclm.profiles import format_profile, parse_structured_profile


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from recfuse.llm.embedded import embedded_model_dir
    return AutoTokenizer.from_pretrained(str(embedded_model_dir()))


@pytest.fixture(scope="module")
def data():
    ds = make_synthetic(n_users=20, n_items=40, n_topics=2, interactions_per_user=8, seed=1)
    hist = histories(ds.interactions, ds.n_users)
    rng = np.random.default_rng(0)
    similar = np.stack([rng.choice([v for v in range(ds.n_users) if v != u], 2, replace=False)
                        for u in range(ds.n_users)])
    return ds, hist, similar


def test_sampling_follows_section_2_3_2(data):
    ds, hist, similar = data
    samples, info = ins.sample_collaborative(hist, similar, range(ds.n_users), 30, np.random.default_rng(0))
    assert info["positives"] == info["negatives"] == len(samples) // 2 > 0
    for s in samples:
        own = set(hist[s.user].tolist())
        theirs = set().union(*(set(hist[v].tolist()) for v in s.similar))
        assert s.candidate in theirs
        if s.label:  # in the target's and a neighbour's history, removed from turn 1
            assert s.candidate in own
            assert s.candidate not in s.target_history
            assert len(s.target_history) == len(hist[s.user]) - 1
        else:  # in a neighbour's history, never the target's
            assert s.candidate not in own
            assert np.array_equal(s.target_history, hist[s.user])


def _expected_mask(tokenizer, messages, ids):
    """Independently: a token carries the loss iff it lies inside an assistant turn's content or its end marker."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] == ids
    spans, pos = [], 0
    for m in messages:
        head = f"<|im_start|>{m['role']}\n"
        start = text.index(head, pos) + len(head)
        end = text.index("<|im_end|>", start) + len("<|im_end|>\n")
        if m["role"] == "assistant":
            spans.append((start, end))
        pos = end
    return [any(a <= s and e <= b for a, b in spans) for s, e in enc["offset_mapping"]]


def test_two_turn_label_mask_token_by_token(tokenizer, data):
    ds, hist, similar = data
    samples, _ = ins.sample_collaborative(hist, similar, range(ds.n_users), 4, np.random.default_rng(0))
    builder = PromptBuilder()
    for s in samples:
        profiles = [format_profile("a student", f"likes topic {k}") for k in range(1 + len(s.similar))]
        msgs = ins.two_turn_dialogue(builder, ds, hist, s, profiles)
        assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
        assert msgs[-1]["content"] == ("Yes" if s.label else "No")
        ids, labels = tokenize_dialogue(tokenizer, msgs, max_length=100_000)
        expected = _expected_mask(tokenizer, msgs, ids)
        assert [lab != IGNORE for lab in labels] == expected
        assert all(lab == i for lab, i in zip(labels, ids) if lab != IGNORE)
        # the two unmasked spans decode to the two responses
        spans, cur = [], []
        for i, lab in zip(ids, labels):
            if lab != IGNORE:
                cur.append(i)
            elif cur:
                spans.append(cur)
                cur = []
        if cur:
            spans.append(cur)
        assert len(spans) == 2
        assert tokenizer.decode(spans[0]).startswith(msgs[2]["content"])
        assert tokenizer.decode(spans[1]).startswith(msgs[4]["content"])
        # no query token carries the loss: the candidate's title appears only in masked text
        masked_text = tokenizer.decode([i for i, lab in zip(ids, labels) if lab == IGNORE])
        assert ds.item_title(s.candidate) in masked_text


def test_naive_is_single_turn_and_kd_is_profile_distillation(tokenizer, data):
    ds, hist, similar = data
    samples, _ = ins.sample_collaborative(hist, similar, range(ds.n_users), 2, np.random.default_rng(0))
    msgs = ins.naive_dialogue(PromptBuilder(), ds, hist, samples[0])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert "Target user history" in msgs[1]["content"] and "Yes or No" in msgs[1]["content"]
    ids, labels = tokenize_dialogue(tokenizer, msgs, 100_000)
    assert tokenizer.decode([i for i, lab in zip(ids, labels) if lab != IGNORE]).startswith(msgs[-1]["content"])
    kd = ins.kd_dialogue("prompt", format_profile("x y", "z w"))
    assert kd[-1] == {"role": "assistant", "content": "Identities: x y; Interests: z w"}


@pytest.mark.parametrize("text,status", [
    ("Identities: a young student; Interests: science fiction and thrillers", "valid"),
    ("identity - retired teacher\ninterests: old westerns, musicals", "valid"),
    ("The user likes science fiction movies a lot and thrillers", "invalid"),  # no structure
    ("Identities: a; Interests: b", "invalid"),  # too short
    ("", "invalid"),
    ("Identities: fan fan fan fan fan fan fan fan fan; Interests: fan fan fan fan", "invalid"),  # repetition
])
def test_structured_profile_parsing(text, status):
    res = parse_structured_profile(text)
    assert res.status == status
    if res.ok:
        assert res.value.startswith("Identities: ") and "; Interests: " in res.value
