import os
import tempfile
from pathlib import Path

# The embedded model is converted once per machine into a stable folder (not the per-session test cache),
# so a rerun of the suite does not pay the ~30 s conversion again.
os.environ.setdefault("RECFUSE_MODEL_CACHE", str(Path(tempfile.gettempdir()) / "recfuse-test-models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest


@pytest.fixture(scope="session")
def embedded_dir():
    from recfuse.llm.embedded import embedded_model_dir

    return embedded_model_dir()


@pytest.fixture(scope="session")
def tokenizer(embedded_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(embedded_dir))


@pytest.fixture(scope="session")
def tiny_llm(tokenizer):
    """A tiny randomly initialised llama with the embedded tokenizer: fast plumbing checks."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from recfuse.llm.local import LocalLLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():  # larger logits so log-probabilities differ visibly between tokens
        model.lm_head.weight.mul_(20.0)
    return LocalLLM(model, tokenizer, batch_size=3, name="tiny-random-llama")


@pytest.fixture(scope="session")
def embedded_llm():
    from recfuse.llm.embedded import load_embedded

    return load_embedded(batch_size=4)
