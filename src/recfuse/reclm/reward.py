"""The reward model of RecLM's refinement (R8, section 2.4, eq. 6-7, appendix 6.6 / Figure 9).

A sequence-classification head (one scalar) on the LLM, LoRA-tuned with the pairwise Bradley-Terry loss
``-log sigmoid(r(Q, R+) - r(Q, R-))`` on (query, better profile, worse profile). The better profile is
the teacher's; worse ones come from:

* **profile substitution**: a similar user's profile (``substitution``), or the user's own identities
  with the neighbour's interests (``mixed``);
* **low-quality outputs**: a missing part (``missing``), repeated content (``repetition``), ``empty``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recfuse._env import return_large_blocks_to_os
from recfuse.config import from_dict, option, to_dict
from recfuse.errors import ConfigError
from recfuse.reclm.profiles import format_profile

log = logging.getLogger(__name__)
KINDS = ("substitution", "mixed", "missing", "repetition", "empty")
_SPLIT = re.compile(r"^\s*Identities:\s*(.*?);\s*Interests:\s*(.*)$", re.DOTALL)


@dataclass
class Pair:
    query: str
    better: str
    worse: str
    kind: str


def split_profile(profile: str) -> tuple[str, str]:
    """(identities, interests) of a canonical profile; the whole text as interests otherwise."""
    m = _SPLIT.match(profile)
    return (m.group(1).strip(), m.group(2).strip()) if m else ("", profile.strip())


def worse_profile(kind: str, own: str, neighbour: str, rng: np.random.Generator) -> str:
    """One negative response of the given kind."""
    ident, inter = split_profile(own)
    n_ident, n_inter = split_profile(neighbour)
    if kind == "substitution":
        return neighbour
    if kind == "mixed":
        return format_profile(ident or n_ident, n_inter)
    if kind == "missing":
        return f"Identities: {ident}" if rng.random() < 0.5 else f"Interests: {inter}"
    if kind == "repetition":
        words = inter.split()
        chunk = " ".join(words[: max(1, min(4, len(words)))]) or "movies"
        return format_profile(ident, ", ".join([chunk] * 6))
    if kind == "empty":
        return ""
    raise ConfigError(f"unknown negative kind {kind!r}; choose from {', '.join(KINDS)}")


def preference_pairs(queries: Sequence[str], profiles: Sequence[str], neighbours: Sequence[str],
                     kinds: Sequence[str] = KINDS, per_query: int = 2, seed: int = 0) -> list[Pair]:
    """``per_query`` pairs per query, cycling through ``kinds``; ``neighbours[i]`` is the profile of query
    i's similar user (substitution, mixed). Pairs whose worse text equals the better one are skipped."""
    rng = np.random.default_rng(seed)
    out, k = [], 0
    for i, (q, p) in enumerate(zip(queries, profiles, strict=True)):
        for _ in range(per_query):
            kind = kinds[k % len(kinds)]
            k += 1
            w = worse_profile(kind, p, neighbours[i], rng)
            if w.strip() != p.strip():
                out.append(Pair(q, p, w, kind))
    return out


@dataclass
class RewardConfig:
    """Reward-model training."""

    lora: bool = option(True, "train a LoRA adapter and the head (False: all weights)")
    lora_r: int = option(8, "LoRA rank")
    lr: float = option(1e-4, "learning rate")
    epochs: float = option(1.0, "passes over the pairs")
    batch_size: int = option(4, "pairs per step")
    max_length: int = option(768, "longest (query + response) in tokens; longer ones lose their oldest tokens")
    pairs_per_query: int = option(2, "negative kinds per query (cycled over substitution, mixed, missing, "
                                     "repetition, empty)")
    eval_pairs: int = option(32, "pairs the accuracy before and after training is measured on (a seeded sample; "
                                 "0: all; scoring every pair twice costs about two thirds of the training)")
    seed: int = option(0, "random seed")


def render(tokenizer, query: str, response: str) -> str:
    """The text the reward model reads: the query as a chat turn, then the response (no end marker)."""
    prefix = tokenizer.apply_chat_template([{"role": "user", "content": query}], tokenize=False,
                                           add_generation_prompt=True)
    return prefix + response


class RewardModel:
    """A scalar head on the LLM; :meth:`train` (pairwise), :meth:`score`, :meth:`save` / :meth:`load`."""

    def __init__(self, model_dir: str | Path, adapter: str | Path | None = None, cfg: RewardConfig | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.cfg = cfg or RewardConfig()
        self.model_dir = str(model_dir)
        torch.manual_seed(self.cfg.seed)
        self.tok = AutoTokenizer.from_pretrained(self.model_dir)
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.tok.padding_side = "right"
        model = AutoModelForSequenceClassification.from_pretrained(self.model_dir, num_labels=1,
                                                                   dtype=torch.float32)
        model.config.pad_token_id = self.tok.pad_token_id
        if adapter is not None:
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, str(adapter))
        elif self.cfg.lora:
            from peft import LoraConfig, get_peft_model
            model = get_peft_model(model, LoraConfig(r=self.cfg.lora_r, lora_alpha=2 * self.cfg.lora_r,
                                                     target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS"))
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device)

    def _batch(self, queries: Sequence[str], responses: Sequence[str]):
        texts = [render(self.tok, q, r) for q, r in zip(queries, responses, strict=True)]
        self.tok.truncation_side = "left"
        return self.tok(texts, return_tensors="pt", padding=True, truncation=True,
                        max_length=self.cfg.max_length, add_special_tokens=False).to(self.device)

    def rewards(self, queries: Sequence[str], responses: Sequence[str]):
        enc = self._batch(queries, responses)
        return self.model(**enc).logits.squeeze(-1)

    def score(self, queries: Sequence[str], responses: Sequence[str], batch_size: int = 8) -> np.ndarray:
        import torch

        self.model.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(queries), batch_size):
                out.append(self.rewards(queries[s:s + batch_size], responses[s:s + batch_size]).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def accuracy(self, pairs: Sequence[Pair]) -> dict:
        """Share of pairs where the better response scores higher, overall and per kind."""
        b = self.score([p.query for p in pairs], [p.better for p in pairs])
        w = self.score([p.query for p in pairs], [p.worse for p in pairs])
        ok = b > w
        per = {k: float(ok[[p.kind == k for p in pairs]].mean()) for k in sorted({p.kind for p in pairs})}
        return {"accuracy": float(ok.mean()) if len(ok) else float("nan"), "per_kind": per}

    def train(self, pairs: Sequence[Pair], progress: bool = False) -> dict:
        """Pairwise (Bradley-Terry) training; returns the log (losses, accuracy before and after)."""
        import math

        import torch
        import torch.nn.functional as F

        from recfuse.models.torch_utils import progress as bar  # lazy: torch

        if not pairs:
            raise ConfigError("no preference pairs to train the reward model on")
        return_large_blocks_to_os()
        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed)
        probe = pairs
        if 0 < cfg.eval_pairs < len(pairs):
            probe = [pairs[i] for i in np.sort(rng.choice(len(pairs), cfg.eval_pairs, replace=False))]
        before = self.accuracy(probe)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        steps = max(1, math.ceil(cfg.epochs * len(pairs) / cfg.batch_size))
        losses: list[float] = []
        order: list[int] = []
        start = time.perf_counter()
        self.model.train()
        for _ in bar(range(steps), enabled=progress, desc="reward model"):
            while len(order) < cfg.batch_size:
                order += rng.permutation(len(pairs)).tolist()
            idx, order = order[:cfg.batch_size], order[cfg.batch_size:]
            batch = [pairs[i] for i in idx]
            r = self.rewards([p.query for p in batch] * 2, [p.better for p in batch] + [p.worse for p in batch])
            loss = -F.logsigmoid(r[:len(batch)] - r[len(batch):]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        after = self.accuracy(probe)
        return {"config": to_dict(cfg), "pairs": len(pairs), "steps": steps, "seconds": time.perf_counter() - start,
                "loss_first": losses[0], "loss_last": losses[-1], "losses": losses,
                "train_accuracy_before": before, "train_accuracy_after": after, "accuracy_pairs": len(probe),
                "kinds": {k: sum(p.kind == k for p in pairs) for k in KINDS}}

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if hasattr(self.model, "peft_config"):
            self.model.save_pretrained(str(path / "adapter"))
        else:
            self.model.save_pretrained(str(path / "model"))
            self.tok.save_pretrained(str(path / "model"))
        (path / "reward.json").write_text(json.dumps({"base": self.model_dir, "config": to_dict(self.cfg)}))

    @classmethod
    def load(cls, path: str | Path) -> RewardModel:

        path = Path(path)
        meta = json.loads((path / "reward.json").read_text())
        cfg = from_dict(RewardConfig, meta["config"])
        if (path / "adapter").is_dir():
            return cls(meta["base"], adapter=path / "adapter", cfg=cfg)
        return cls(path / "model", cfg=cfg)
