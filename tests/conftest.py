import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from recfuse.data import leave_one_out, make_synthetic  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_dataset():
    return make_synthetic(n_users=300, n_items=200, n_topics=6, seed=0)


@pytest.fixture(scope="session")
def synthetic_split(synthetic_dataset):
    return leave_one_out(synthetic_dataset)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test writes its cache under a temporary folder (one per session), never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RECFUSE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory):
    """A 2-layer random LLaMA saved with the embedded model's tokenizer and chat template (plumbing tests)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from recfuse.llm.embedded import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path
