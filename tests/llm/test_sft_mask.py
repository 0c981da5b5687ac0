"""The SFT label mask, token by token, on the embedded model's chat template."""

import pytest

from recfuse.llm.sft import IGNORE, as_messages, tokenize_dialogue


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer
    from recfuse.llm.embedded import embedded_model_dir
    return AutoTokenizer.from_pretrained(str(embedded_model_dir()))


def test_two_turn_mask_token_by_token(tokenizer):
    msgs = [{"role": "user", "content": "Profile these users."}, {"role": "assistant", "content": "Likes sci-fi."},
            {"role": "user", "content": "Will they watch Alien?"}, {"role": "assistant", "content": "Yes"}]
    ids, labels = tokenize_dialogue(tokenizer, msgs, max_length=4096)
    assert len(ids) == len(labels)
    # what carries the loss is exactly the two responses, each with its end-of-turn marker
    kept = tokenizer.decode([t for t, lab in zip(ids, labels) if lab != IGNORE])
    assert kept == "Likes sci-fi.<|im_end|>\nYes<|im_end|>\n"
    for t, lab in zip(ids, labels):
        assert lab in (IGNORE, t)  # a label is the token itself or masked, never shifted or altered
    # every query token is masked
    text_masked = tokenizer.decode([t for t, lab in zip(ids, labels) if lab == IGNORE])
    assert "Profile these users." in text_masked and "Will they watch Alien?" in text_masked
    assert "Likes sci-fi." not in text_masked


def test_single_turn_and_truncation_keeps_the_response(tokenizer):
    ids, labels = tokenize_dialogue(tokenizer, as_messages("x " * 500, "4"), max_length=64)
    assert len(ids) == 64
    assert tokenizer.decode([t for t, lab in zip(ids, labels) if lab != IGNORE]) == "4<|im_end|>\n"


def test_dialogue_without_response_is_refused(tokenizer):
    from recfuse.errors import ConfigError
    with pytest.raises(ConfigError, match="at least one assistant response"):
        tokenize_dialogue(tokenizer, [{"role": "user", "content": "hi"}], 100)
