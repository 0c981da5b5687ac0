"""RecLM's reinforcement refinement (R8): a reward model on teacher-vs-worse profiles
(:func:`train_reward_model`), then PPO on the instruction-tuned LLM with a KL penalty to it, the reference
policy (:func:`refine_with_ppo`). The pipeline caches the two as separate stages."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from recfuse.reclm.ppo import PPOConfig, PPOTrainer
from recfuse.reclm.reward import RewardConfig, RewardModel, preference_pairs


def train_reward_model(base: Path, data: dict, reward_cfg: RewardConfig, seed: int,
                       progress: bool = False) -> tuple[RewardModel, dict]:
    """The pairwise reward model on ``data`` (reward_queries / reward_better / reward_neighbour) and its log."""
    pairs = preference_pairs(list(data["reward_queries"]), data["reward_better"], data["reward_neighbour"],
                             per_query=reward_cfg.pairs_per_query, seed=seed)
    rm = RewardModel(base, cfg=reward_cfg)
    rm_log = rm.train(pairs, progress=progress)
    rm_log.pop("losses", None)
    return rm, rm_log


def refine_with_ppo(base: Path, adapter: Path, rm: RewardModel, queries: list[str], out: Path,
                    ppo_cfg: PPOConfig, n_prompts: int, seed: int, progress: bool = False) -> dict:
    """PPO from ``adapter`` on the first ``n_prompts`` of ``queries``, rewarded by ``rm``, with a KL penalty
    to the tuned model; saves the refined adapter to ``out`` and returns the log."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(base))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    torch.manual_seed(seed)
    policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32),
                                       str(adapter), is_trainable=True)
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32),
                                          str(adapter)).merge_and_unload()

    def ids(q: str) -> list[int]:
        # token ids (a BatchEncoding in newer transformers); the stub's return union also has str and batches
        out_: Any = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=True, add_generation_prompt=True)
        return list(out_["input_ids"] if hasattr(out_, "keys") else out_)

    prompts = [ids(q) for q in queries[:max(1, n_prompts)]]
    query_of = {tuple(p): q for p, q in zip(prompts, queries)}

    def reward_fn(prompt_ids: list[list[int]], responses: list[list[int]]) -> list[float]:
        texts = [tok.decode(r, skip_special_tokens=True).strip()  # type: ignore[union-attr]  # stub: one sequence -> str
                 for r in responses]
        return rm.score([query_of[tuple(p)] for p in prompt_ids], texts).tolist()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    policy.to(device)
    reference.to(device)
    trainer = PPOTrainer(policy, reference, ppo_cfg, pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id])
    ppo_log = trainer.train(prompts, reward_fn, progress=progress)
    policy.save_pretrained(str(out))
    return {"ppo": ppo_log.to_dict(), "prompts": len(prompts), "seconds": time.perf_counter() - start}
