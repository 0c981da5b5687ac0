"""The base of the sequential recommenders: sequences, the training loop, scoring, embeddings, persistence.

Evaluation protocol (leave-one-out by time):

* Training examples come from the **train** sequences only (plus any LLM insertions, Llama4Rec L4b).
* Early stopping ranks the validation item from the **train** sequence (``stage="valid"``).
* After fitting, :meth:`score` encodes **train + validation item** (``stage="test"``, the default), which is
  what ``split.history("test")`` holds. The test item never enters any input sequence.

Insertions are training data only: scoring and :meth:`user_embeddings` encode the real history.
A model fitted on a split keeps those two sequence sets, so it can be saved and loaded without the split.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch

from recfuse.data.splits import Split, Stage
from recfuse.errors import ConfigError
from recfuse.eval.ranking import evaluate_full_ranking
from recfuse.io import load_npz, read_json, save_npz, write_json
from recfuse.models.base import Floats, Ids, NextItemRecommender
from recfuse.models.sequential.encoder import SequenceEncoder
from recfuse.models.sequential.sequences import Sequences
from recfuse.models.torch_utils import EarlyStopping, reproducible, resolve_device, set_seed
from recfuse.models.torch_utils import progress as progress_bar

def keep_segment(seq: torch.Tensor, start: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Per left-padded row, its real items ``start .. start + count - 1`` (counted from its first real item),
    re-aligned to the right with padding before (the augmentations of CL4SRec and BERT4Rec, batched)."""
    length = seq.shape[1]
    n = (seq > 0).sum(1)
    j = torch.arange(length, device=seq.device)[None, :]
    src = (start - n + count)[:, None] + j  # output j takes real item (start + j - (length - count))
    keep = j >= (length - count)[:, None]
    return torch.where(keep, seq.gather(1, src.clamp(0, length - 1)), torch.zeros_like(seq))


def random_prefix(rows: torch.Tensor) -> torch.Tensor:
    """Each left-padded row cut after a random item that has at least one item before it (the row itself
    when it has a single item), re-aligned to the right: the prefix's last item is in the last column."""
    n = (rows > 0).sum(1)
    # keep the first k real items, k uniform in [2, n] (k = n for rows of fewer than 2 items)
    k = torch.where(n >= 2, 2 + (torch.rand(len(rows), device=rows.device) * (n - 1).clamp(min=1)).floor().long(), n)
    return keep_segment(rows, torch.zeros_like(k), k)


class SequentialRecommender(NextItemRecommender):
    """Transformer over each user's time-ordered items; subclasses define the training loss (:meth:`_loss`).

    Hyper-parameters: ``hidden_size``, ``max_len`` (items kept per sequence, most recent), ``n_layers``,
    ``n_heads``, ``inner_size`` (feed-forward width, default 4 x hidden), ``dropout``, ``attn_dropout``,
    ``epochs`` (maximum), ``lr``, ``weight_decay``, ``batch_size`` (training windows per step),
    ``patience`` (evaluations without a better valid NDCG@10), ``eval_every`` (epochs), ``seed``, ``device``.
    """

    task: ClassVar[str] = "sequential"
    causal: ClassVar[bool] = True
    output_head: ClassVar[bool] = False
    #: width of a training window relative to ``max_len`` (SASRec: input + shifted target = max_len + 1)
    window_extra: ClassVar[int] = 1

    # the hyper-parameters, set from ``params`` by __init__ (a subclass declares its own likewise)
    hidden_size: int
    max_len: int
    n_layers: int
    n_heads: int
    inner_size: int | None
    dropout: float
    attn_dropout: float
    epochs: int
    lr: float
    weight_decay: float
    batch_size: int
    patience: int
    eval_every: int
    seed: int

    def __init__(self, hidden_size: int = 64, max_len: int = 50, n_layers: int = 2, n_heads: int = 2,
                 inner_size: int | None = None, dropout: float = 0.5, attn_dropout: float | None = None,
                 epochs: int = 200, lr: float = 2e-3, weight_decay: float = 0.0, batch_size: int = 64,
                 patience: int = 10, eval_every: int = 1, seed: int = 0, device: str = "auto", **extra: Any):
        if max_len < 2:
            raise ConfigError(f"max_len must be at least 2, got {max_len}")
        if epochs < 1 or batch_size < 1 or patience < 1 or eval_every < 1:
            raise ConfigError("epochs, batch_size, patience and eval_every must be positive")
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        super().__init__(hidden_size=hidden_size, max_len=max_len, n_layers=n_layers, n_heads=n_heads,
                         inner_size=inner_size, dropout=dropout, attn_dropout=attn_dropout, epochs=epochs, lr=lr,
                         weight_decay=weight_decay, batch_size=batch_size, patience=patience,
                         eval_every=eval_every, seed=seed, device=device, **extra)
        for k, v in self.params.items():
            setattr(self, k, v)
        self.device = resolve_device(device)
        self.encoder: SequenceEncoder | None = None
        self.sequences: dict[str, Sequences] = {}
        self.train_log: dict[str, Any] = {}
        self._terms: dict[str, float] = {}  # per-epoch sums of the named loss terms (see _record)

    # -- to be defined by subclasses --------------------------------------------------------------
    @abstractmethod
    def _loss(self, rows: torch.Tensor) -> torch.Tensor:
        """Training loss of a batch of windows (B, max_len + window_extra) of shifted item ids."""

    def _record(self, name: str, value: torch.Tensor) -> None:
        """Add a batch's value of one named part of the loss (unweighted) to the epoch's log
        (``train_log["loss_terms"]``: its mean per batch, per epoch), to see how the parts balance."""
        self._terms[name] = self._terms.get(name, 0.0) + float(value.detach())

    def _inference_input(self, padded: torch.Tensor) -> torch.Tensor:
        """The encoder input that predicts the next item from the last ``max_len`` items (B, max_len)."""
        return padded

    def _epoch_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """The training windows of one epoch (before shuffling): every window once by default."""
        return rows

    # -- training ---------------------------------------------------------------------------------
    def _build_encoder(self) -> SequenceEncoder:
        return SequenceEncoder(self.n_items, self.hidden_size, self.max_len, self.n_layers, self.n_heads,
                               self.inner_size, self.dropout, self.attn_dropout, causal=self.causal,
                               output_head=self.output_head).to(self.device)

    @property
    def net(self) -> SequenceEncoder:
        """The encoder of a fitted (or loaded) model."""
        if self.encoder is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(split) or load(path) first")
        return self.encoder

    @reproducible
    def fit(self, split: Split, *, extra_triples: Ids | None = None, insertions: Ids | None = None,
            progress: bool = True) -> Self:
        """Train on the train sequences; early stopping on valid NDCG@10 (never test).

        ``insertions`` (n, 3) of ``(user, position, item)``: items inserted into the users' *train*
        sequences (Llama4Rec L4b), positions counted in the original train sequence; the dataset is not
        copied. ``extra_triples`` (pairwise augmentation of the direct models) does not apply: it raises
        :class:`~recfuse.errors.ConfigError`.

        ``train_log`` then holds, per epoch: seconds, validation NDCG@10, the mean training loss per batch
        (``train_loss``) and, for a loss with named parts (CL4SRec), each part's unweighted mean (``loss_terms``).
        """
        set_seed(self.seed)
        self.n_users, self.n_items = split.n_users, split.n_items
        train = Sequences.from_interactions(split.train, self.n_users)
        augmented = train if insertions is None or len(insertions) == 0 else train.insert(insertions, self.n_items)
        self.sequences = {"valid": train,
                          "test": train.append(Sequences.from_interactions(split.valid, self.n_users))}
        self.encoder = self._build_encoder()
        rows = torch.as_tensor(augmented.windows(self.max_len + self.window_extra, min_len=2), device=self.device)
        if len(rows) == 0:
            raise ConfigError("no user has two training interactions: nothing to learn a sequence from")
        optimizer = torch.optim.Adam(self.encoder.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        has_valid = len(split.valid) > 0 and split.ground_truth("valid").nnz > 0
        stopper = EarlyStopping(patience=self.patience, mode="max")
        history_valid, truth_valid = (split.history("valid"), split.ground_truth("valid")) if has_valid else (None, None)
        epoch_seconds: list[float] = []
        valid_seconds: list[float] = []
        loss_history: list[float] = []
        term_history: dict[str, list[float]] = {}
        t0 = time.perf_counter()
        bar = progress_bar(range(self.epochs), enabled=progress, desc=f"{self.name} epochs")
        for epoch in bar:
            start = time.perf_counter()
            self.encoder.train()
            epoch_rows = self._epoch_rows(rows)
            order = torch.randperm(len(epoch_rows), device=self.device)
            total, self._terms = 0.0, {}
            for b in range(0, len(epoch_rows), self.batch_size):
                loss = self._loss(epoch_rows[order[b:b + self.batch_size]])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
            epoch_seconds.append(time.perf_counter() - start)
            n_batches = -(-len(epoch_rows) // self.batch_size)
            loss_history.append(total / n_batches)
            for name, value in self._terms.items():
                term_history.setdefault(name, []).append(value / n_batches)
            if has_valid and ((epoch + 1) % self.eval_every == 0 or epoch + 1 == self.epochs):
                start = time.perf_counter()
                ndcg = evaluate_full_ranking(lambda u: self.score(u, stage="valid"), history_valid, truth_valid,
                                             ks=[10], metrics=["ndcg"]).mean()["ndcg@10"]
                valid_seconds.append(time.perf_counter() - start)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{loss_history[-1]:.3f}", valid_ndcg10=f"{ndcg:.4f}")
                if stopper.step(ndcg, epoch, self.encoder.state_dict()):
                    break
        if stopper.best_state is not None:
            self.encoder.load_state_dict(stopper.best_state)
        self.encoder.eval()
        self.train_log = {
            "epoch_seconds": epoch_seconds,
            "valid_seconds": valid_seconds,
            "total_seconds": time.perf_counter() - t0,
            "epochs_run": len(epoch_seconds),
            "best_epoch": stopper.best_epoch if has_valid else len(epoch_seconds) - 1,
            "best_valid_ndcg@10": stopper.best,
            "valid_history": [v for _, v in stopper.history],
            "train_loss": loss_history,
            "loss_terms": term_history,
            "training_windows": len(rows),
            "insertions": 0 if insertions is None else len(insertions),
        }
        return self

    # -- inference --------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.encoder is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(split) or load(path) first")

    def _check_stage(self, stage: str) -> Sequences:
        if stage not in self.sequences:
            raise ConfigError(f"stage must be 'valid' or 'test', not {stage!r}")
        return self.sequences[stage]

    @torch.no_grad()
    def _encode(self, users: Ids, stage: Stage, batch_size: int = 1024) -> torch.Tensor:
        """Hidden state (len(users), H) that predicts each user's next item after the ``stage`` sequence."""
        encoder = self.net
        seqs = self._check_stage(stage)
        was_training = encoder.training
        encoder.eval()
        out = []
        for b in range(0, len(users), batch_size):
            padded = torch.as_tensor(seqs.padded(self.max_len, users[b:b + batch_size]), device=self.device)
            out.append(encoder(self._inference_input(padded))[:, -1])
        encoder.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, self.hidden_size, device=self.device)

    @torch.no_grad()
    def score(self, users: Ids, items: Ids | None = None, *, stage: Stage = "test") -> Floats:
        """Next-item scores (len(users), len(items)) after each user's ``stage`` sequence.

        ``stage="test"`` (default) encodes train + validation items; ``"valid"`` the train items only.
        """
        encoder = self.net
        users, items = self._check_users(users), self._check_items(items)
        h = self._encode(users, stage)
        was_training = encoder.training
        encoder.eval()
        logits = encoder.item_logits(h)
        encoder.train(was_training)
        return logits[:, torch.as_tensor(items, device=self.device)].float().cpu().numpy()

    @torch.no_grad()
    def score_sequences(self, sequences: Sequence[Ids], items: Ids | None = None) -> Floats:
        """Next-item scores ``(len(sequences), len(items))`` after arbitrary item sequences (internal ids,
        oldest first; the last ``max_len`` count): a user who was not in training, or a known user's history
        with newer items appended. An empty sequence is allowed (the encoder sees padding only)."""
        encoder = self.net
        items = self._check_items(items)
        seqs = [self._check_items(np.asarray(s, dtype=np.int64)) if len(s) else np.zeros(0, np.int64)
                for s in sequences]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        packed = Sequences(np.concatenate(seqs) if seqs else np.zeros(0, np.int64),
                           np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        was_training = encoder.training
        encoder.eval()
        padded = torch.as_tensor(packed.padded(self.max_len), device=self.device)
        h = encoder(self._inference_input(padded))[:, -1] if len(seqs) else \
            torch.zeros(0, self.hidden_size, device=self.device)
        logits = encoder.item_logits(h)
        encoder.train(was_training)
        return logits[:, torch.as_tensor(items, device=self.device)].float().cpu().numpy()

    def user_embeddings(self, stage: Stage = "test") -> Floats:
        """The sequence encoding of every user (n_users, hidden_size), as of ``stage`` (for similar-user search)."""
        self._check_fitted()
        return self._encode(np.arange(self.n_users), stage).float().cpu().numpy()

    def item_embeddings(self) -> Floats:
        return self.net.item_emb.weight[1:self.n_items + 1].detach().float().cpu().numpy()

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """A folder: ``config.json`` (hyper-parameters, sizes, training log), ``weights.npz`` (the encoder's
        state, float32) and ``sequences.npz`` (the valid- and test-stage sequences). No pickle, and no
        dependency beyond numpy."""
        encoder = self.net
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_npz(path / "weights.npz", **{k: v.detach().cpu().numpy() for k, v in encoder.state_dict().items()})
        save_npz(path / "sequences.npz", **{f"{stage}_{part}": getattr(s, part)
                                            for stage, s in self.sequences.items() for part in ("items", "indptr")})
        write_json(path / "config.json", {"model": self.name, "params": self.params, "n_users": self.n_users,
                                          "n_items": self.n_items, "train_log": self.train_log})

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Self:
        path = Path(path)
        cfg = read_json(path / "config.json")
        if cfg.get("model") != cls.name:
            raise ConfigError(f"{path} holds a {cfg.get('model')!r} model, not {cls.name!r}")
        params = dict(cfg["params"])
        if device is not None:
            params["device"] = device
        model = cls(**params)
        model.n_users, model.n_items = int(cfg["n_users"]), int(cfg["n_items"])
        model.train_log = cfg.get("train_log", {})
        z = load_npz(path / "sequences.npz")
        model.sequences = {stage: Sequences(z[f"{stage}_items"], z[f"{stage}_indptr"]) for stage in ("valid", "test")}
        encoder = model.encoder = model._build_encoder()
        weights = load_npz(path / "weights.npz")
        encoder.load_state_dict({k: torch.from_numpy(v).to(model.device) for k, v in weights.items()})
        encoder.eval()
        return model
