"""The SFT label mask, token by token, on the embedded model's chat template."""

import numpy as np
import pytest

from recfuse.llm.sft import IGNORE, as_messages, tokenize_dialogue


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


def test_response_only_loss_equals_the_full_logits_loss(tiny_llm, tokenizer):
    """Logits only where a response token follows give exactly the loss computed over every position."""
    import torch

    from recfuse.llm.sft import response_only_loss, response_positions

    dialogues = [as_messages("Rate Alien (1979) for a sci-fi fan.", "5"),
                 [{"role": "user", "content": "Profile this user: Heat; Alien; Toy Story"},
                  {"role": "assistant", "content": "Likes thrillers and sci-fi."},
                  {"role": "user", "content": "Will they watch Aliens?"}, {"role": "assistant", "content": "Yes"}]]
    encoded = [tokenize_dialogue(tokenizer, d, 512) for d in dialogues]
    width = max(len(i) for i, _ in encoded)
    ids = torch.full((2, width), tokenizer.pad_token_id)
    lab = torch.full((2, width), IGNORE)
    att = torch.zeros((2, width), dtype=torch.long)
    for r, (i, lb) in enumerate(encoded):  # right padding, rows of different lengths
        ids[r, :len(i)], lab[r, :len(lb)], att[r, :len(i)] = torch.tensor(i), torch.tensor(lb), 1
    model = tiny_llm.model
    positions = response_positions(lab)
    assert len(positions) < width / 2  # the point: most positions need no logits
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=att, labels=lab).loss
        fast = response_only_loss(model, ids, att, lab)
    assert torch.allclose(full, fast, atol=1e-5), (float(full), float(fast))


def test_sft_is_reproducible_on_cpu(tiny_llm_dir, tmp_path):
    """Same seed and data, same adapter: SFT runs with deterministic kernels (so a re-run on a fresh machine
    gives the weights whose fingerprint keys the answers cached before), and restores the setting."""
    import torch
    from safetensors.torch import load_file

    from recfuse.llm.sft import SFTConfig, train_sft

    dialogues = [[{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]
                 for i in range(6)]
    cfg = SFTConfig(max_steps=2, batch_size=2, lora_r=4)
    weights = []
    for run in ("a", "b"):
        train_sft(tiny_llm_dir, dialogues, tmp_path / run, cfg, progress=False)
        weights.append(load_file(str(tmp_path / run / "adapter_model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not torch.are_deterministic_algorithms_enabled()


def test_token_budget_parts_give_the_whole_batch_gradient(tiny_llm_dir, tmp_path):
    """Cutting batches into token-bounded parts bounds activation memory and changes nothing else: the adapter
    after two steps equals the one trained on whole batches (up to float rounding)."""
    import torch
    from safetensors.torch import load_file

    from recfuse.llm.sft import SFTConfig, token_budget_parts, train_sft

    assert token_budget_parts([10, 12, 30, 5], 0) == [[0, 1, 2, 3]]
    assert token_budget_parts([10, 12, 30, 5], 40) == [[0, 1], [2], [3]]
    assert token_budget_parts([50], 10) == [[0]]  # a row longer than the budget is a part of its own
    dialogues = [[{"role": "user", "content": "Question " + "word " * i + "?"},
                  {"role": "assistant", "content": f"Answer {i}, " * (1 + i % 3)}] for i in range(8)]
    weights = []
    for run, budget in (("whole", 0), ("parts", 40)):
        cfg = SFTConfig(max_steps=2, batch_size=4, lora_r=4, lora_dropout=0.0, max_tokens_per_pass=budget,
                        bf16="false")
        log = train_sft(tiny_llm_dir, dialogues, tmp_path / run, cfg, progress=False).log
        weights.append(load_file(str(tmp_path / run / "adapter_model.safetensors")))
        assert log["tokens"] <= log["padded_tokens"]
    assert all(torch.allclose(weights[0][k], weights[1][k], atol=1e-5) for k in weights[0])


def test_a_killed_tuning_resumes_from_its_checkpoint_to_the_same_adapter(tiny_llm_dir, tmp_path, monkeypatch):
    """A run that dies at step 4 of 5 (after a checkpoint every step) resumes from step 3 and writes the adapter
    the uninterrupted run writes (dropout on, so the random state is restored too); the losses are whole."""
    import torch
    from safetensors.torch import load_file

    import recfuse.llm.sft as sft

    dialogues = [[{"role": "user", "content": f"Question {i} " + "word " * i + "?"},
                  {"role": "assistant", "content": f"Answer {i}."}] for i in range(10)]
    cfg = sft.SFTConfig(max_steps=5, batch_size=2, lora_r=4, lora_dropout=0.1, bf16="false", warmup_steps=1)
    whole = sft.train_sft(tiny_llm_dir, dialogues, tmp_path / "whole", cfg, progress=False).log
    real_loss, calls = sft.response_only_loss, []

    def dies_at_step_4(*args, **kw):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt("killed")
        return real_loss(*args, **kw)

    ckpt = tmp_path / "checkpoints"
    monkeypatch.setattr(sft, "response_only_loss", dies_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        sft.train_sft(tiny_llm_dir, dialogues, tmp_path / "killed", cfg, progress=False, checkpoint_dir=ckpt,
                      checkpoint_seconds=0)
    assert not (tmp_path / "killed").exists() and (ckpt / sft.CHECKPOINT_FILE).is_file()
    monkeypatch.setattr(sft, "response_only_loss", real_loss)
    from recfuse.stages import stage_cost
    with stage_cost() as cost:  # the steps before the kill count in the stage's cost (as reused work)
        resumed = sft.train_sft(tiny_llm_dir, dialogues, tmp_path / "resumed", cfg, progress=False,
                                checkpoint_dir=ckpt, checkpoint_seconds=0).log
    assert resumed["resumed_from_step"] == 3 and whole["resumed_from_step"] == 0
    assert 0 < cost.reused < resumed["seconds"] and cost.seconds >= resumed["seconds"] - 0.5
    assert np.allclose(resumed["losses"], whole["losses"], atol=1e-6)
    a = load_file(str(tmp_path / "whole" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "adapter_model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_checkpoint_minutes_are_read_from_the_environment(monkeypatch):
    from recfuse.errors import ConfigError
    from recfuse.llm.sft import CHECKPOINT_SECONDS, default_checkpoint_seconds

    monkeypatch.delenv("RECFUSE_CHECKPOINT_MINUTES", raising=False)
    assert default_checkpoint_seconds() == CHECKPOINT_SECONDS
    monkeypatch.setenv("RECFUSE_CHECKPOINT_MINUTES", "2.5")
    assert default_checkpoint_seconds() == 150
    monkeypatch.setenv("RECFUSE_CHECKPOINT_MINUTES", "0")
    assert default_checkpoint_seconds() == float("inf")
    monkeypatch.setenv("RECFUSE_CHECKPOINT_MINUTES", "soon")
    with pytest.raises(ConfigError, match="RECFUSE_CHECKPOINT_MINUTES"):
        default_checkpoint_seconds()
