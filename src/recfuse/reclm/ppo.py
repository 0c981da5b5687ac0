"""A small PPO loop over transformers + peft (RecLM R8, eq. 8), since TRL removed its PPO trainer.

Pieces, each tested on its own:

* :func:`gae`: generalised advantage estimation over response tokens;
* :func:`clipped_policy_loss` and :func:`clipped_value_loss`: PPO's clipped surrogate objectives;
* :func:`token_rewards`: per-token reward = -beta * (log pi - log pi_ref), plus the sequence score on the
  last response token (the KL penalty to the reference policy);
* :class:`AdaptiveKLController` (Ziegler et al., 2019) and :class:`FixedKLController`;
* :class:`ValueHeadModel`: a causal LM with a scalar value head on its last hidden state;
* :class:`PPOTrainer`: sample responses, score them, compute advantages, run clipped updates; logs
  reward, KL, beta and the losses per step.

The reference policy is a frozen model given to the trainer (for RecLM: the instruction-tuned LLM).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recfuse._env import return_large_blocks_to_os
from recfuse.config import option
from recfuse.errors import ConfigError
from recfuse.models.torch_utils import progress as bar

log = logging.getLogger(__name__)

RewardFn = Callable[[list[list[int]], list[list[int]]], Sequence[float]]


@dataclass
class PPOConfig:
    """PPO hyper-parameters (defaults sized for a small model on a CPU)."""

    steps: int = option(8, "PPO steps (each: one batch of prompts sampled, scored and optimised)")
    batch_size: int = option(8, "prompts per step")
    mini_batch_size: int = option(4, "sequences per gradient step")
    ppo_epochs: int = option(2, "optimisation passes over each batch")
    lr: float = option(1e-5, "learning rate of the policy (LoRA) and the value head")
    clip: float = option(0.2, "policy ratio clip epsilon")
    value_clip: float = option(0.2, "value clip range")
    value_coef: float = option(0.1, "weight of the value loss")
    gamma: float = option(1.0, "discount")
    lam: float = option(0.95, "GAE lambda")
    init_kl: float = option(0.2, "initial KL coefficient beta")
    adaptive_kl: bool = option(True, "adapt beta towards target_kl (Ziegler et al.)")
    target_kl: float = option(6.0, "target KL (summed over the response) of the adaptive controller")
    kl_horizon: int = option(10000, "horizon of the adaptive controller")
    max_new_tokens: int = option(64, "response length limit")
    temperature: float = option(1.0, "sampling temperature")
    whiten_advantages: bool = option(True, "normalise advantages per batch")
    max_grad_norm: float = option(1.0, "gradient clipping")
    seed: int = option(0, "random seed")


# ------------------------------------------------------------------------------------- the maths

def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns (B, T) over response tokens; ``mask`` marks real tokens (a prefix of each row).

    ``A_t = sum_l (gamma lam)^l delta_{t+l}``, ``delta_t = r_t + gamma V_{t+1} - V_t`` (V after the last
    real token is 0); returns ``A + V``.
    """
    mask = mask.to(values.dtype)
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_v = values[:, t + 1] * mask[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = (delta + gamma * lam * last * (mask[:, t + 1] if t + 1 < T else 0.0)) * mask[:, t]
        adv[:, t] = last
    return adv, (adv + values) * mask


def clipped_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                        clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate ``mean(max(-A r, -A clip(r, 1-e, 1+e)))`` and the clipped fraction."""
    ratio = torch.exp(logp - old_logp)
    loss1 = -adv * ratio
    loss2 = -adv * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(loss1, loss2), mask)
    clipfrac = masked_mean((loss2 > loss1).to(logp.dtype), mask)
    return loss, clipfrac


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip: float) -> torch.Tensor:
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def token_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                  beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards ``-beta (log pi - log pi_ref)`` with the sequence score added on the last real
    token; also the per-sequence KL estimate (sum over real tokens)."""
    m = mask.to(logp.dtype)
    kl = (logp - ref_logp) * m
    rewards = -beta * kl
    last = (m.sum(1).long() - 1).clamp(min=0)
    has = m.sum(1) > 0
    rewards[torch.arange(len(scores), device=rewards.device), last] += torch.where(has, scores, torch.zeros_like(scores))
    return rewards, kl.sum(1)


class FixedKLController:
    def __init__(self, value: float):
        self.value = float(value)

    def update(self, current_kl: float, n_steps: int) -> None:
        """A fixed coefficient does not change."""


class AdaptiveKLController:
    """``beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon`` (Ziegler et al., 2019)."""

    def __init__(self, init: float, target: float, horizon: int):
        if target <= 0 or horizon <= 0:
            raise ConfigError("target_kl and kl_horizon must be positive")
        self.value, self.target, self.horizon = float(init), float(target), int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        err = float(np.clip(current_kl / self.target - 1.0, -0.2, 0.2))
        self.value *= 1.0 + err * n_steps / self.horizon


# ------------------------------------------------------------------------------------ the models

class ValueHeadModel(nn.Module):
    """A causal LM (peft or plain) with a scalar value head on its last hidden state."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        hf: Any = lm  # a transformers (or peft) model: config / get_base_model are not nn.Module attributes
        hidden = hf.config.hidden_size if hasattr(hf, "config") else hf.get_base_model().config.hidden_size
        self.value_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        self.value_head.to(next(lm.parameters()).device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions(attention_mask),
                      output_hidden_states=True)
        return out.logits, self.value_head(out.hidden_states[-1].to(self.value_head.weight.dtype)).squeeze(-1)


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding (as generation computes them)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def response_logprobs(logits: torch.Tensor, ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """Log-probabilities (B, R) of the response tokens ``ids[:, prompt_len:]`` under ``logits``."""
    logits = logits[:, prompt_len - 1:-1].float()
    return torch.gather(F.log_softmax(logits, -1), 2, ids[:, prompt_len:].unsqueeze(-1)).squeeze(-1)


def left_pad(seqs: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        if len(s):
            ids[r, width - len(s):] = torch.tensor(list(s))
            mask[r, width - len(s):] = 1
    return ids, mask


# ----------------------------------------------------------------------------------- the trainer

@dataclass
class PPOLog:
    steps: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        keys = ("reward", "kl", "beta")
        first = {k: self.steps[0][k] for k in keys} if self.steps else {}
        last = {k: self.steps[-1][k] for k in keys} if self.steps else {}
        return {"steps": self.steps, "seconds": self.seconds, "first": first, "last": last}


class PPOTrainer:
    """PPO on ``policy`` (a causal LM, typically peft with trainable LoRA) against a frozen ``reference``.

    ``reward_fn(prompt_ids, response_ids) -> scores`` scores each sampled response (e.g. a reward model
    over decoded text). ``eos_ids`` end a response (its first end token is kept in the response, the rest
    is masked).
    """

    def __init__(self, policy: nn.Module, reference: nn.Module, cfg: PPOConfig, pad_id: int,
                 eos_ids: Sequence[int]):
        self.cfg, self.pad_id, self.eos_ids = cfg, int(pad_id), sorted({int(e) for e in eos_ids})
        self.model = ValueHeadModel(policy)
        self.reference = reference.eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("the policy has no trainable parameters")
        self.opt = torch.optim.Adam(params, lr=cfg.lr)
        self.kl_ctl = (AdaptiveKLController(cfg.init_kl, cfg.target_kl, cfg.kl_horizon) if cfg.adaptive_kl
                       else FixedKLController(cfg.init_kl))
        self.gen = torch.Generator().manual_seed(cfg.seed)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def sample(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(ids, attention mask, prompt width) of prompts + sampled responses (response padding masked)."""
        ids, mask = left_pad(prompts, self.pad_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        lm: Any = self.model.lm  # a transformers (or peft) model: generate is not an nn.Module attribute
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.gen)))
        self.model.eval()
        with torch.no_grad():
            out = lm.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                              temperature=self.cfg.temperature, top_k=0, top_p=1.0,
                              max_new_tokens=self.cfg.max_new_tokens, pad_token_id=self.pad_id,
                              eos_token_id=self.eos_ids or None,
                              cache_implementation="static")  # pre-allocated: no cache copy per token
        resp = out[:, ids.shape[1]:]
        rmask = torch.ones_like(resp)
        if self.eos_ids:
            is_end = torch.isin(resp, torch.tensor(self.eos_ids, device=resp.device))
            after = (is_end.long().cumsum(1) - is_end.long()) > 0  # strictly after the first end token
            rmask = (~after).long()
        return out, torch.cat([mask, rmask], 1), ids.shape[1]

    def step(self, prompts: Sequence[Sequence[int]], reward_fn: RewardFn) -> dict:
        cfg = self.cfg
        ids, att, P = self.sample(prompts)
        rmask = att[:, P:]
        responses = [ids[r, P:][rmask[r].bool()].tolist() for r in range(len(ids))]
        scores = torch.tensor(np.asarray(reward_fn([list(p) for p in prompts], responses), dtype=np.float32),
                              device=self.device)
        with torch.no_grad():
            logits, values = self.model(ids, att)
            old_logp = response_logprobs(logits, ids, P)
            old_values = values[:, P - 1:-1].float()
            ref_logits = self.reference(input_ids=ids, attention_mask=att, position_ids=positions(att)).logits
            ref_logp = response_logprobs(ref_logits, ids, P)
            beta = self.kl_ctl.value
            rewards, kl = token_rewards(scores, old_logp, ref_logp, rmask, beta)
            adv, returns = gae(rewards, old_values, rmask, cfg.gamma, cfg.lam)
            if cfg.whiten_advantages and rmask.sum() > 1:
                adv = masked_whiten(adv, rmask)
        self.model.train()
        stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "clipfrac": []}
        n = len(ids)
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(n, generator=self.gen)
            for s in range(0, n, cfg.mini_batch_size):
                b = order[s:s + cfg.mini_batch_size].to(self.device)
                logits_b, values_b = self.model(ids[b], att[b])
                logp = response_logprobs(logits_b, ids[b], P)
                pl, cf = clipped_policy_loss(logp, old_logp[b], adv[b], rmask[b], cfg.clip)
                vl = clipped_value_loss(values_b[:, P - 1:-1].float(), old_values[b], returns[b], rmask[b],
                                        cfg.value_clip)
                loss = pl + cfg.value_coef * vl
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], cfg.max_grad_norm)
                self.opt.step()
                stats["policy_loss"].append(float(pl.detach()))
                stats["value_loss"].append(float(vl.detach()))
                stats["clipfrac"].append(float(cf.detach()))
        mean_kl = float(kl.mean())
        self.kl_ctl.update(mean_kl, n)
        return {"reward": float(scores.mean()), "kl": mean_kl, "beta": beta,
                "response_tokens": float(rmask.sum(1).float().mean()),
                **{k: float(np.mean(v)) for k, v in stats.items()}}

    def train(self, prompts: Sequence[Sequence[int]], reward_fn: RewardFn, progress: bool = False) -> PPOLog:
        """``cfg.steps`` steps over batches of ``prompts`` (cycled, shuffled per pass)."""

        if not prompts:
            raise ConfigError("PPO needs at least one prompt")
        return_large_blocks_to_os()
        rng = np.random.default_rng(self.cfg.seed)
        order: list[int] = []
        out = PPOLog()
        start = time.perf_counter()
        pbar = bar(range(self.cfg.steps), enabled=progress, desc="PPO")
        for step in pbar:
            while len(order) < self.cfg.batch_size:
                order += rng.permutation(len(prompts)).tolist()
            batch, order = order[:self.cfg.batch_size], order[self.cfg.batch_size:]
            s = self.step([prompts[i] for i in batch], reward_fn)
            s["step"] = step
            out.steps.append(s)
            log.info("PPO step %d: reward %.4f, KL %.4f, beta %.4f", step, s["reward"], s["kl"], s["beta"])
            if hasattr(pbar, "set_postfix"):
                pbar.set_postfix(reward=f"{s['reward']:.3f}", kl=f"{s['kl']:.3f}")
        out.seconds = time.perf_counter() - start
        if not all(math.isfinite(s["reward"]) for s in out.steps):
            raise ConfigError("PPO produced non-finite rewards")
        return out
