"""The PPO loop: hand-computed GAE and clipped losses, zero KL for identical policies, a toy reward that rises."""

import copy

import numpy as np
import pytest
import torch

from recfuse.reclm.ppo import (
    AdaptiveKLController,
    PPOConfig,
    PPOTrainer,
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    token_rewards,
)


def test_gae_matches_hand_computation():
    rewards = torch.tensor([[1.0, 0.0, 2.0], [1.0, 0.0, 9.0]])
    values = torch.tensor([[0.5, 1.0, 1.5], [0.5, 1.0, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # row 0: d2 = 2 - 1.5, d1 = 0 + .9*1.5 - 1, d0 = 1 + .9*1 - .5; A_t = d_t + .72 A_{t+1}
    a2 = 0.5
    a1 = 0.35 + 0.72 * a2
    a0 = 1.4 + 0.72 * a1
    # row 1: the third token is padding: V after the last real token is 0
    b1 = 0.0 - 1.0
    b0 = 1.4 + 0.72 * b1
    assert torch.allclose(adv, torch.tensor([[a0, a1, a2], [b0, b1, 0.0]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[a0 + .5, a1 + 1, a2 + 1.5], [b0 + .5, b1 + 1, 0.0]]), atol=1e-6)


def test_clipped_policy_loss_matches_hand_computation():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 3.0]]))
    adv = torch.tensor([[1.0, 1.0, -1.0, 5.0]])
    mask = torch.tensor([[1, 1, 1, 0]])  # the last token is padding
    loss, clipfrac = clipped_policy_loss(logp, old, adv, mask, clip=0.2)
    # max(-A r, -A clip(r)): -1.2 (clipped), -0.5, 1.1
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.1) / 3, abs=1e-6)
    assert clipfrac.item() == pytest.approx(1 / 3)
    v = clipped_value_loss(torch.tensor([[2.0]]), torch.tensor([[1.0]]), torch.tensor([[3.0]]),
                           torch.tensor([[1]]), clip=0.5)
    assert v.item() == pytest.approx(0.5 * max((2 - 3) ** 2, (1.5 - 3) ** 2))


def test_token_rewards_put_the_score_on_the_last_real_token():
    logp = torch.tensor([[-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -3.0]])
    r, kl = token_rewards(torch.tensor([2.0]), logp, ref, torch.tensor([[1, 1, 0]]), beta=0.1)
    assert torch.allclose(r, torch.tensor([[-0.05, 2.0, 0.0]]))
    assert kl.item() == pytest.approx(0.5)


def test_adaptive_kl_controller():
    c = AdaptiveKLController(0.2, target=1.0, horizon=100)
    c.update(10.0, 10)  # far above target: +20% * 10/100
    assert c.value == pytest.approx(0.2 * 1.02)
    c.update(0.0, 100)  # far below: -20%
    assert c.value == pytest.approx(0.2 * 1.02 * 0.8)


@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      bos_token_id=0, eos_token_id=1, pad_token_id=2)
    return LlamaForCausalLM(cfg)


def _trainer(lm, **kw):
    policy = copy.deepcopy(lm)
    cfg = PPOConfig(**{"steps": 1, "batch_size": 8, "mini_batch_size": 4, "ppo_epochs": 1, "max_new_tokens": 5,
                       "lr": 1e-3, **kw})
    return PPOTrainer(policy, copy.deepcopy(lm), cfg, pad_id=2, eos_ids=[])


def test_kl_is_zero_for_identical_policies(tiny_lm):
    t = _trainer(tiny_lm)
    prompts = [[3, 4, 5], [6, 7], [8, 9, 10, 11]] * 3
    s = t.step(prompts[:8], lambda p, r: [0.0] * len(p))
    assert s["kl"] == pytest.approx(0.0, abs=1e-5)
    assert s["response_tokens"] == 5


def test_eos_ends_the_response(tiny_lm):
    t = _trainer(tiny_lm, max_new_tokens=8)
    t.eos_ids = list(range(16))  # every token ends the response: one token each
    seen = []
    t.step([[3, 4]] * 8, lambda p, r: seen.extend(len(x) for x in r) or [0.0] * len(p))
    assert seen == [1] * 8


def test_toy_reward_goes_up(tiny_lm):
    target = 5

    def reward(prompts, responses):
        return [float(np.mean([t == target for t in r])) for r in responses]

    t = _trainer(tiny_lm, steps=25, batch_size=16, mini_batch_size=8, ppo_epochs=2, lr=3e-2, init_kl=0.01,
                 max_new_tokens=6)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, 16, size=3).tolist() for _ in range(16)]
    log = t.train(prompts, reward)
    rewards = [s["reward"] for s in log.steps]
    assert np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.2
    assert all(np.isfinite([s["kl"], s["policy_loss"], s["value_loss"]]).all() for s in log.steps)
    assert log.steps[-1]["kl"] > 0  # the policy moved away from the reference
