"""Supervised instruction tuning with the loss on the response tokens only (Llama4Rec L7, RecLM R4/R5).

A small, explicit loop over transformers + peft + accelerate:

* examples are chat dialogues; every ``assistant`` turn is a response whose tokens carry the loss,
  every other token (system, user queries, template markup) is masked with -100 — so the same code
  serves single-turn instructions and RecLM's two-turn collaborative dialogue;
* LoRA by default (``lora=False`` for full-parameter tuning); cosine schedule with warm-up;
* ``accelerate`` runs it on CPU, one GPU, or many (``accelerate launch --config_file
  configs/accelerate/deepspeed_zero3.yaml ...``); bf16 and gradient checkpointing for 7B models;
* the result (an adapter or a full model) is written atomically with its training log;
* with a ``checkpoint_dir``, a resumable checkpoint (trainable weights, optimizer, schedule, random state,
  the losses so far) is saved every ``checkpoint_seconds``: a run killed mid-tuning resumes from its last
  checkpoint and ends with the adapter the uninterrupted run would have written (the batch stream is
  replayed from the seed, so the same examples follow).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recfuse._env import return_large_blocks_to_os
from recfuse.config import option, to_dict
from recfuse.errors import ConfigError
from recfuse.io import atomic_dir
from recfuse.stages import add_reused_cost

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)
IGNORE = -100


@dataclass
class SFTConfig:
    """Instruction-tuning hyper-parameters (defaults sized for the embedded model on a CPU)."""

    lora: bool = option(True, "train a LoRA adapter (False: full-parameter tuning)")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA scaling alpha")
    lora_dropout: float = option(0.05, "LoRA dropout")
    target_modules: list[str] = option(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                        "down_proj"], "modules that get LoRA adapters")
    lr: float = option(5e-4, "peak learning rate (paper, full-parameter 7B: 2e-5)")
    epochs: float = option(1.0, "passes over the instructions (ignored when max_steps > 0)")
    max_steps: int = option(0, "optimizer steps (0: from epochs)")
    batch_size: int = option(4, "examples per optimizer step (per device, before accumulation)")
    grad_accum: int = option(1, "gradient accumulation steps")
    warmup_steps: int = option(5, "linear warm-up steps before the cosine decay (paper: 50)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_length: int = option(1024, "longest tokenized example; longer ones lose their oldest prompt tokens")
    max_tokens_per_pass: int = option(0, "most padded tokens in one forward/backward pass: larger batches are cut "
                                            "into parts whose gradients add up to the batch's (same result, "
                                            "activation memory bounded; 0: whole batches)")
    group_by_length: bool = option(True, "batch examples of similar length (shuffled within groups of 16 batches, "
                                         "batches in random order): less padding, the same examples per epoch")
    gradient_checkpointing: bool = option(True, "recompute activations in the backward pass instead of keeping "
                                                "them: on a 2-core CPU less than half the memory, somewhat slower "
                                                "(benchmarks/results/llm/tuning has both); on a GPU with memory to spare, "
                                                "--no-sft.gradient-checkpointing is faster")
    bf16: str = option("auto", "bf16 mixed precision: auto (CUDA with bf16 support, or a CPU with bf16 units), "
                               "true, false")
    seed: int = option(0, "random seed (shuffling, LoRA init)")


def tokenize_dialogue(tokenizer, messages: Sequence[dict], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels of a chat dialogue: labels = ids on assistant turns, -100 elsewhere.

    Each assistant turn's tokens are found as the difference between the template rendered up to that
    turn and the template rendered up to the turn before it (with the generation prompt), so the mask
    follows whatever chat template the model has.
    """
    messages = [dict(m) for m in messages]
    if not any(m["role"] == "assistant" for m in messages):
        raise ConfigError("an instruction example needs at least one assistant response")
    ids: list[int] = []
    labels: list[int] = []

    def render(msgs, gen):
        out = tokenizer.apply_chat_template(msgs, tokenize=True, add_generation_prompt=gen)
        return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)

    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = render(messages[:i], True)
        upto = render(messages[: i + 1], False)
        if upto[: len(prefix)] != prefix:
            raise ConfigError("the chat template does not render dialogues incrementally; cannot mask queries")
        # everything before this turn that is not yet in ids is query / markup: masked
        labels += [IGNORE] * (len(prefix) - len(ids))
        ids = list(prefix)
        response = upto[len(prefix):]
        ids += response
        labels += response
    tail = render(messages, False)
    if tail[: len(ids)] == ids and len(tail) > len(ids):  # trailing non-assistant turns
        labels += [IGNORE] * (len(tail) - len(ids))
        ids = tail
    if len(ids) > max_length:  # drop the oldest tokens, never the responses' end
        cut = len(ids) - max_length
        ids, labels = ids[cut:], labels[cut:]
    return ids, labels


def response_positions(labels):
    """Sequence positions whose next token carries the loss in any row of a (batch, length) label tensor.

    Only these positions need LM-head logits: with ~3 response tokens per 400-token instruction, computing
    the vocabulary projection everywhere is most of the head's cost and memory for nothing.
    """
    import torch
    return torch.nonzero((labels[:, 1:] != IGNORE).any(dim=0)).flatten()


def response_only_loss(model, input_ids, attention_mask, labels, reduction: str = "mean"):
    """Cross-entropy over the response tokens (mean, or ``reduction="sum"``), with logits computed only where a
    response token follows.

    The mean equals ``model(..., labels=labels).loss`` (the shifted next-token loss over non-masked tokens).
    """
    import torch
    positions = response_positions(labels)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=positions).logits
    targets = labels[:, positions + 1]
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                             ignore_index=IGNORE, reduction=reduction)


def token_budget_parts(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Consecutive parts of a batch (indices) whose padded size (rows x longest row) stays within ``max_tokens``
    (0: one part); a row longer than the budget is a part of its own. Activation memory follows the part."""
    if max_tokens <= 0:
        return [list(range(len(lengths)))]
    parts: list[list[int]] = [[]]
    width = 0
    for i, n in enumerate(lengths):
        if parts[-1] and max(width, n) * (len(parts[-1]) + 1) > max_tokens:
            parts.append([])
            width = 0
        parts[-1].append(i)
        width = max(width, n)
    return parts


def length_grouped(order: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                   group: int = 16) -> list[np.ndarray]:
    """Batches of similar length from a shuffled ``order``: each run of ``group`` batches' worth of examples is
    sorted by length and cut into batches, and the batches are shuffled, so an epoch still sees every example
    once and batch order stays random, with far less padding than random batches."""
    out = []
    span = batch_size * group
    for s in range(0, len(order), span):
        part = order[s:s + span]
        part = part[np.argsort(lengths[part], kind="stable")]
        out += [part[b:b + batch_size] for b in range(0, len(part), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def as_messages(prompt, response: str) -> list[dict]:
    """A (prompt, response) pair as chat messages; ``prompt`` may already be a message list."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return [*map(dict, prompt), {"role": "assistant", "content": response}]


@dataclass
class SFTResult:
    path: Path
    log: dict = field(default_factory=dict)


#: how often a resumable checkpoint is saved by default (seconds; RECFUSE_CHECKPOINT_MINUTES overrides)
CHECKPOINT_SECONDS = 600.0
CHECKPOINT_FILE = "checkpoint.pt"


def default_checkpoint_seconds() -> float:
    """Seconds between resumable checkpoints: ``RECFUSE_CHECKPOINT_MINUTES`` (0: none) or 10 minutes."""
    raw = os.environ.get("RECFUSE_CHECKPOINT_MINUTES")
    if raw is None or not raw.strip():
        return CHECKPOINT_SECONDS
    try:
        minutes = float(raw)
    except ValueError:
        raise ConfigError(f"RECFUSE_CHECKPOINT_MINUTES must be a number of minutes, got {raw!r}") from None
    return minutes * 60.0 if minutes > 0 else math.inf


def train_sft(model_dir: str | Path, dialogues: Sequence[Sequence[dict]], out_dir: str | Path,
              cfg: SFTConfig | None = None, progress: bool = True, checkpoint_dir: str | Path | None = None,
              checkpoint_seconds: float | None = None) -> SFTResult:
    """Fine-tune the model in ``model_dir`` on chat ``dialogues``; write the adapter (or model) to ``out_dir``.
    Reproducible on CPU: the same seed and data give the same adapter (deterministic kernels).

    ``checkpoint_dir``: where a resumable checkpoint is kept every ``checkpoint_seconds`` (default
    :func:`default_checkpoint_seconds`), and resumed from when one is there; it must belong to these
    dialogues, model and settings alone (:func:`recfuse.llm.tuning.tune` keys it by them). One process only
    (under several, nothing is checkpointed)."""
    from recfuse.models.torch_utils import reproducible  # lazy: torch

    every = default_checkpoint_seconds() if checkpoint_seconds is None else checkpoint_seconds
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None and int(os.environ.get("WORLD_SIZE", "1")) == 1 else None
    return reproducible(_train_sft)(model_dir, dialogues, out_dir, cfg, progress, ckpt, every)


def _save_checkpoint(folder: Path, state: dict) -> None:
    """``folder/checkpoint.pt``, replaced atomically (a kill mid-save leaves the previous one)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{CHECKPOINT_FILE}.{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, folder / CHECKPOINT_FILE)


def _load_checkpoint(folder: Path | None, total_steps: int) -> dict | None:
    """The checkpoint in ``folder`` if there is a usable one (same number of steps), else None."""
    import torch

    path = folder / CHECKPOINT_FILE if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged file: start over, saying so
        log.warning("instruction tuning: checkpoint %s unreadable (%s): starting from step 0", path, e)
        return None
    if state.get("total_steps") != total_steps or not 0 < state.get("step", 0) < total_steps:
        return None
    return state


def _train_sft(model_dir: str | Path, dialogues: Sequence[Sequence[dict]], out_dir: str | Path,
               cfg: SFTConfig | None, progress: bool, checkpoint_dir: Path | None = None,
               checkpoint_seconds: float = math.inf) -> SFTResult:
    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup

    return_large_blocks_to_os()  # variable-length batches: keep freed activations from piling up

    from recfuse.models.torch_utils import progress as bar  # lazy: torch

    cfg = cfg or SFTConfig()
    if not dialogues:
        raise ConfigError("no instruction examples to tune on")
    torch.manual_seed(cfg.seed)
    from recfuse.llm.local import cpu_bf16_fast  # lazy: torch and transformers
    use_bf16 = cfg.bf16 == "true" or (cfg.bf16 == "auto" and (
        (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        or (not torch.cuda.is_available() and cpu_bf16_fast())))
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # one process: a run before may have set another precision
        from accelerate.state import AcceleratorState
        AcceleratorState._reset_state(reset_partial_state=True)
    acc = Accelerator(mixed_precision="bf16" if use_bf16 else "no")
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model: PreTrainedModel | PeftModel = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if cfg.gradient_checkpointing:
        # transformers 5 renamed it (the old name warns); either recomputes each layer's activations
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
        model.config.use_cache = False
    if cfg.lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                 lora_dropout=cfg.lora_dropout, target_modules=cfg.target_modules,
                                                 task_type="CAUSAL_LM"))
    encoded = [tokenize_dialogue(tok, d, cfg.max_length) for d in dialogues]
    n_response = sum(sum(1 for x in lab if x != IGNORE) for _, lab in encoded)
    if n_response == 0:
        raise ConfigError("every response was truncated away: raise max_length")
    rng = np.random.default_rng(cfg.seed)
    steps_per_epoch = math.ceil(len(encoded) / (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, min(cfg.warmup_steps, total_steps // 2), total_steps)
    model, opt, sched = acc.prepare(model, opt, sched)
    model.train()

    lengths = np.array([len(ids) for ids, _ in encoded])

    def batches():
        while True:  # a fresh shuffle each epoch
            order = rng.permutation(len(encoded))
            chunks = [order[s:s + cfg.batch_size] for s in range(0, len(order), cfg.batch_size)]
            if cfg.group_by_length:
                chunks = length_grouped(order, lengths, cfg.batch_size, rng)
            for chunk in chunks:
                yield [encoded[i] for i in chunk]

    def collate(batch):
        width = max(len(ids) for ids, _ in batch)
        pad = tok.pad_token_id
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        lab = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        att = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (i, lb) in enumerate(batch):  # right padding for training
            ids[r, :len(i)] = torch.tensor(i)
            lab[r, :len(lb)] = torch.tensor(lb)
            att[r, :len(i)] = 1
        return ids.to(acc.device), lab.to(acc.device), att.to(acc.device)

    padded_tokens = tokens_seen = 0
    losses: list[float] = []
    stream = batches()
    first_step, elapsed_before = 0, 0.0
    trainable = {n: p for n, p in acc.unwrap_model(model).named_parameters() if p.requires_grad}
    resumed = _load_checkpoint(checkpoint_dir, total_steps)
    if resumed is not None:  # replay the batch stream to where it stopped, then restore every state
        first_step = int(resumed["step"])
        for _ in range(first_step * cfg.grad_accum):
            next(stream)
        with torch.no_grad():
            for n, value in resumed["weights"].items():
                trainable[n].copy_(value)
        opt.load_state_dict(resumed["optimizer"])
        sched.load_state_dict(resumed["scheduler"])
        torch.set_rng_state(resumed["torch_rng"])
        if resumed.get("cuda_rng") is not None and torch.cuda.is_available():  # dropout masks drawn on the GPU
            torch.cuda.set_rng_state_all(resumed["cuda_rng"])
        losses = [float(x) for x in resumed["losses"]]
        padded_tokens, tokens_seen = int(resumed["padded_tokens"]), int(resumed["tokens_seen"])
        elapsed_before = float(resumed["seconds"])
        add_reused_cost(elapsed_before)  # the steps before the checkpoint: the stage's cost counts them too
        log.info("instruction tuning: resumed from step %d of %d (%s)", first_step, total_steps, checkpoint_dir)
    start = last_save = time.perf_counter()
    pbar = bar(range(first_step, total_steps), enabled=progress and acc.is_local_main_process,
               desc="instruction tuning")
    for step in pbar:
        # one optimizer step: grad_accum batches, each in token-bounded parts; the loss is the mean over every
        # response token of the step, so the parts' gradients add up to exactly the whole step's
        step_batches = [next(stream) for _ in range(cfg.grad_accum)]
        n_targets = sum(sum(1 for x in lab[1:] if x != IGNORE) for b in step_batches for _, lab in b)
        step_loss = 0.0
        for batch in step_batches:
            for part in token_budget_parts([len(i) for i, _ in batch], cfg.max_tokens_per_pass):
                ids, lab, att = collate([batch[i] for i in part])
                padded_tokens += ids.numel()
                tokens_seen += int(att.sum())
                loss = response_only_loss(model, ids, att, lab, reduction="sum") / max(n_targets, 1)
                acc.backward(loss)
                step_loss += float(loss.detach())
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(step_loss)
        if hasattr(pbar, "set_postfix"):
            pbar.set_postfix(loss=f"{losses[-1]:.3f}")
        now = time.perf_counter()
        if checkpoint_dir is not None and step + 1 < total_steps and now - last_save >= checkpoint_seconds:
            _save_checkpoint(checkpoint_dir, {
                "step": step + 1, "total_steps": total_steps,
                "weights": {n: p.detach().cpu().clone() for n, p in trainable.items()},
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "losses": losses, "padded_tokens": padded_tokens, "tokens_seen": tokens_seen,
                "seconds": elapsed_before + now - start})
            last_save = time.perf_counter()
    seconds = elapsed_before + time.perf_counter() - start
    out = Path(out_dir)
    log_data = {"config": to_dict(cfg), "examples": len(encoded), "response_tokens": n_response,
                "steps": total_steps, "bf16": use_bf16, "seconds": seconds, "seconds_per_step": seconds / total_steps,
                "tokens": tokens_seen, "padded_tokens": padded_tokens, "tokens_per_second": tokens_seen / seconds,
                "loss_first": losses[0], "loss_last": losses[-1], "losses": losses, "lora": cfg.lora,
                "resumed_from_step": first_step}
    if acc.is_main_process:
        with atomic_dir(out) as tmp:
            acc.unwrap_model(model).save_pretrained(str(tmp))
            if not cfg.lora:
                tok.save_pretrained(str(tmp))
            (tmp / "training_log.json").write_text(json.dumps(log_data, indent=2))
    acc.wait_for_everyone()
    log.info("instruction tuning: %d steps, %.1f s/step, loss %.3f -> %.3f", total_steps,
             seconds / total_steps, losses[0], losses[-1])
    return SFTResult(out, log_data)
