"""The shared mini-batch pairwise training loop of the torch backbones.

* :class:`PairSampler`: every (user, positive item) training pair gets fresh negatives each epoch, drawn
  for the whole epoch at once with vectorised rejection of the user's training items; extra
  (user, preferred, other) triples (Llama4Rec L4a) join the set with their given "other" item.
* :class:`Backbone`: the torch module a model defines (layer-0 towers, final representations, batch loss).
* :class:`TorchRecommender`: the :class:`~recfuse.models.base.Recommender` around a backbone: the epoch
  loop, early stopping on a *validation* metric (never the test split), seeds, a progress bar that a
  flag turns off, CUDA when present, seconds per epoch in ``train_log``, save / load as npz + JSON.
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recfuse.data.splits import Split
from recfuse.errors import ConfigError, DataError
from recfuse.eval.ranking import evaluate_full_ranking
from recfuse.io import atomic_path, load_npz, save_npz
from recfuse.models.base import Floats, Ids, Recommender
from recfuse.models.torch_utils import EarlyStopping, progress as progress_bar, reproducible, resolve_device, set_seed
from recfuse.models.towers import Tower, item_feature_matrix

# -- losses -----------------------------------------------------------------------------------------


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: mean of ``-log sigmoid(pos - neg)``."""
    return F.softplus(neg - pos).mean()


def l2_reg(*tensors: torch.Tensor) -> torch.Tensor:
    """Half the squared L2 norm of the batch's (layer-0) embeddings, per example of the batch."""
    n = tensors[0].shape[0]
    total = tensors[0].pow(2).sum()  # summed left to right, as sum() would (0 + x is x exactly)
    for t in tensors[1:]:
        total = total + t.pow(2).sum()
    return total / (2 * n)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE between two views (row i of ``a`` and of ``b`` are positives, other rows negatives)."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


# -- sampling ---------------------------------------------------------------------------------------


def check_triples(triples: np.ndarray | None, n_users: int, n_items: int) -> np.ndarray:
    """Validate (n, 3) int (user, preferred item, other item) triples."""
    if triples is None:
        return np.zeros((0, 3), dtype=np.int64)
    t = np.asarray(triples)
    if t.ndim != 2 or t.shape[1] != 3:
        raise DataError(f"extra_triples must have shape (n, 3) of (user, preferred item, other item), got {t.shape}")
    if t.size and not np.issubdtype(t.dtype, np.integer):
        raise DataError(f"extra_triples must hold integer (internal) ids, got dtype {t.dtype}")
    t = t.astype(np.int64)
    if t.size:
        bad_u = (t[:, 0] < 0) | (t[:, 0] >= n_users)
        bad_i = (t[:, 1:] < 0) | (t[:, 1:] >= n_items)
        if bad_u.any():
            raise DataError(f"extra_triples: user index {int(t[bad_u][0, 0])} outside 0..{n_users - 1}")
        if bad_i.any():
            raise DataError(f"extra_triples: item index {int(t[:, 1:][bad_i][0])} outside 0..{n_items - 1}")
    return t


class PairSampler:
    """Training triples for one epoch: (users, positives, negatives of shape (n, n_negatives)).

    Negatives are uniform over items the user has no training interaction with (vectorised rejection
    sampling; a user who has seen every item keeps whatever was drawn), among the items of ``negative_pool``
    (a boolean mask; default: the items with a training interaction). An item that training never saw is
    never a negative either: the model learns nothing of it, so a zero-shot item is as unseen as a new one
    at serving time. Where every item has a training interaction, the draws are those of all items.
    """

    #: largest seen-pair bitset kept (bytes); beyond it, lookups binary-search the sorted pair keys
    MAX_BITSET_BYTES = 32 << 20

    def __init__(self, train: sp.csr_matrix, extra_triples: np.ndarray | None = None, n_negatives: int = 1,
                 seed: int = 0, max_rounds: int = 50, negative_pool: np.ndarray | None = None):
        train = train.tocsr()
        self.n_users, self.n_items = train.shape
        pool = np.diff(train.tocsc().indptr) > 0 if negative_pool is None else np.asarray(negative_pool, bool)
        # None: every item (draws as from range(n_items), so data without unseen items trains as it always did)
        self.pool: np.ndarray | None = None if pool.all() else np.flatnonzero(pool)
        if self.pool is not None and not len(self.pool):
            raise ConfigError("no item can be a negative: none has a training interaction")
        self.users = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(train.indptr))
        self.items = train.indices.astype(np.int64)
        self.keys = np.unique(self.users * self.n_items + self.items)
        # seen-pair lookups: a packed bitset (one bit per user-item pair) when it is small, else a
        # binary search in the sorted keys; the bitset is ~10x faster on ML-100K/1M-sized data
        n_pairs = self.n_users * self.n_items
        self.bits = None
        if n_pairs <= self.MAX_BITSET_BYTES * 8:
            self.bits = np.zeros((n_pairs + 7) // 8, dtype=np.uint8)
            np.bitwise_or.at(self.bits, self.keys >> 3, (1 << (self.keys & 7)).astype(np.uint8))
        self.extra = check_triples(extra_triples, self.n_users, self.n_items)
        if n_negatives < 1:
            raise ConfigError(f"n_negatives must be >= 1, got {n_negatives}")
        self.n_negatives = n_negatives
        self.rng = np.random.default_rng(seed)
        self.max_rounds = max_rounds

    def __len__(self) -> int:
        return len(self.users) + len(self.extra)

    def is_seen(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) is a training interaction."""
        keys = users * self.n_items + items
        if self.bits is not None:
            return ((self.bits[keys >> 3] >> (keys & 7).astype(np.uint8)) & 1).astype(bool)
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, len(self.keys) - 1)
        return self.keys[pos] == keys

    def negatives(self, users: np.ndarray, n: int) -> np.ndarray:
        """(len(users), n) items each user has not interacted with in training."""
        u = np.repeat(users, n)
        neg = self._draw(len(u))
        todo = np.flatnonzero(self.is_seen(u, neg))
        for _ in range(self.max_rounds):
            if not len(todo):
                break
            neg[todo] = self._draw(len(todo))
            todo = todo[self.is_seen(u[todo], neg[todo])]
        return neg.reshape(len(users), n)

    def _draw(self, size: int) -> np.ndarray:
        if self.pool is None:
            return self.rng.integers(self.n_items, size=size)
        return self.pool[self.rng.integers(len(self.pool), size=size)]

    def epoch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One shuffled epoch of (users, positives, negatives)."""
        users = np.concatenate([self.users, self.extra[:, 0]])
        pos = np.concatenate([self.items, self.extra[:, 1]])
        neg = self.negatives(users, self.n_negatives)
        if len(self.extra):
            neg[len(self.users):, 0] = self.extra[:, 2]
        order = self.rng.permutation(len(users))
        return users[order], pos[order], neg[order]


# -- backbone ---------------------------------------------------------------------------------------


class Backbone(nn.Module):
    """A model's torch part: layer-0 towers, final representations, the batch loss.

    Subclasses override :meth:`final` (e.g. graph propagation), :meth:`loss`, and for non-dot-product
    models :meth:`pair_scores`; :meth:`begin_epoch` builds per-epoch state (SGL's dropped-edge views).
    """

    def __init__(self, users: Tower, items: Tower, reg_weight: float = 0.0):
        super().__init__()
        self.users, self.items = users, items
        self.reg_weight = reg_weight

    def ego(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-0 representations of all users and all items."""
        return self.users(), self.items()

    def final(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The representations that score (users, items); by default the layer-0 ones."""
        return self.ego()

    def pair_scores(self, user_rep: torch.Tensor, item_rep: torch.Tensor) -> torch.Tensor:
        """Scores of every user row against every item row: (U, I) -> (len(U), len(I))."""
        return user_rep @ item_rep.T

    def triple_scores(self, user_rep: torch.Tensor, item_rep: torch.Tensor) -> torch.Tensor:
        """Scores of matching rows: user_rep (B, d) with item_rep (B, d) or (B, K, d) -> (B,) or (B, K)."""
        if item_rep.dim() == 3:
            return (user_rep.unsqueeze(1) * item_rep).sum(-1)
        return (user_rep * item_rep).sum(-1)

    def begin_epoch(self, rng: np.random.Generator) -> None:
        """Per-epoch state (default: none)."""

    def cold_items(self, ego: torch.Tensor) -> torch.Tensor:
        """Final representations of items without a training interaction, from their layer-0 ones: what
        :meth:`final` gives such an item (by default its layer-0 representation)."""
        return ego

    def bpr_with_reg(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                     user_rep: torch.Tensor, item_rep: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """BPR on the given final representations (averaged over the ``K`` negatives of each pair) plus
        L2 on the batch's layer-0 embeddings."""
        u = user_rep[users]
        s_pos = self.triple_scores(u, item_rep[pos])
        s_neg = self.triple_scores(u, item_rep[neg])  # (B, K)
        loss = bpr_loss(s_pos.unsqueeze(1), s_neg)
        parts = {"bpr": loss.detach()}
        if self.reg_weight > 0:
            reg = self.reg_weight * self.ego_l2(self.users(users), self.items(pos), self.items(neg))
            loss = loss + reg
            parts["reg"] = reg.detach()
        return loss, parts

    @staticmethod
    def ego_l2(u: torch.Tensor, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """L2 of a batch's layer-0 user, positive and (B, K, d) negative embeddings (negatives averaged over K)."""
        return l2_reg(u, p) + q.pow(2).sum() / (2 * q.shape[0] * q.shape[1])

    def loss(self, users: torch.Tensor, pos: torch.Tensor,
             neg: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """BPR loss of a batch; ``neg`` has shape (B, n_negatives). Returns the loss and its parts
        (detached tensors, so that no batch waits for the device)."""
        if self.users.uses_features or self.items.uses_features:
            user_rep, item_rep = self.final()
            return self.bpr_with_reg(users, pos, neg, user_rep, item_rep)
        # ID tables only: index rows directly (no pass over all items)
        u, p, q = self.users(users), self.items(pos), self.items(neg)
        loss = bpr_loss(self.triple_scores(u, p).unsqueeze(1), self.triple_scores(u, q))
        parts = {"bpr": loss.detach()}
        if self.reg_weight > 0:
            reg = self.reg_weight * self.ego_l2(u, p, q)
            loss = loss + reg
            parts["reg"] = reg.detach()
        return loss, parts


# -- the recommender around a backbone ------------------------------------------------------------


def _adam(params: Iterable[torch.nn.Parameter], **kw: Any) -> torch.optim.Optimizer:
    """Adam, fused (one kernel for all parameters; on the CPU about 1.6x faster per step) where supported."""
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, **kw)


class TorchRecommender(Recommender):
    """A recommender trained by the shared pairwise loop. Subclasses implement :meth:`build_backbone`.

    Common hyper-parameters (every backbone accepts them):

    embedding_dim, epochs (maximum), lr, batch_size, weight_decay (Adam), reg_weight (L2 on the
    batch's layer-0 embeddings), n_negatives, patience (evaluations without improvement of the
    validation metric before stopping; 0 = no early stopping), eval_every (epochs between
    validations), valid_metric (``ndcg@10``...), seed, device (``auto``: CUDA when present),
    item_tower (``id``, ``features`` or ``id+features``: RecLM R2), tower_hidden, fusion (profile
    fusion ``add`` or ``concat``: RecLM R3), init_std, eval_batch_size, and the arrays item_features
    (n_items, d), user_profiles (n_users, p), item_profiles (n_items, p).
    """

    #: 2: negatives only among items with a training interaction (were all items, those seen only in
    #: validation or test included)
    revision: ClassVar[int] = 2
    #: model-specific hyper-parameter defaults, merged over the common ones
    defaults: ClassVar[dict[str, Any]] = {}
    common_defaults: ClassVar[dict[str, Any]] = dict(
        embedding_dim=64, epochs=300, lr=1e-3, batch_size=2048, weight_decay=0.0, reg_weight=1e-4,
        n_negatives=1, patience=10, eval_every=1, valid_metric="ndcg@10", seed=0, device="auto",
        item_tower="id", tower_hidden=[256], fusion="add", init_std=0.1, eval_batch_size=1024,
    )
    ARRAYS: ClassVar[tuple[str, ...]] = ("item_features", "user_profiles", "item_profiles")
    augmentations: ClassVar[frozenset[str]] = frozenset({"extra_triples"})

    # the common hyper-parameters, set from ``params`` by __init__ (a subclass declares its own likewise)
    embedding_dim: int
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    reg_weight: float
    n_negatives: int
    patience: int
    eval_every: int
    valid_metric: str
    seed: int
    device: str
    item_tower: str
    tower_hidden: list[int]
    fusion: str
    init_std: float
    eval_batch_size: int

    def __init__(self, item_features: np.ndarray | None = None, user_profiles: np.ndarray | None = None,
                 item_profiles: np.ndarray | None = None, **params: Any):
        known = {**self.common_defaults, **self.defaults}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ConfigError(f"{type(self).__name__}: unknown hyper-parameter(s) {', '.join(unknown)}; "
                              f"accepted: {', '.join(sorted(known))}")
        merged = {**known, **params}
        if "tower_hidden" in merged:
            merged["tower_hidden"] = list(merged["tower_hidden"])
        super().__init__(**merged)
        for k, v in merged.items():
            setattr(self, k, v)
        self.arrays = {"item_features": item_features, "user_profiles": user_profiles,
                       "item_profiles": item_profiles}
        self.backbone: Backbone | None = None
        self._final: tuple[torch.Tensor, torch.Tensor] | None = None
        self.train_log: dict[str, Any] = {}

    # -- to implement --------------------------------------------------------------------------------
    @abstractmethod
    def build_backbone(self, users: Tower, items: Tower, split: Split | None) -> Backbone:
        """The model's backbone over the given towers (``split`` is None when loading)."""

    # -- construction --------------------------------------------------------------------------------
    def tower_dim(self) -> int:
        """Width of the layer-0 representations (NeuMF needs two embeddings per id)."""
        return self.embedding_dim

    def _towers(self, n_users: int, n_items: int) -> tuple[Tower, Tower]:
        a, dim = self.arrays, self.tower_dim()
        users = Tower(n_users, dim, "id", profiles=a["user_profiles"], hidden=self.tower_hidden,
                      fusion=self.fusion, init_std=self.init_std, name="user")
        items = Tower(n_items, dim, self.item_tower, features=a["item_features"],
                      profiles=a["item_profiles"], hidden=self.tower_hidden, fusion=self.fusion,
                      init_std=self.init_std, name="item")
        return users, items

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.params["device"])

    # -- training ------------------------------------------------------------------------------------
    @reproducible
    def fit(self, split: Split, *, extra_triples: Ids | None = None, insertions: Ids | None = None,
            progress: bool = True) -> Self:
        """Train on ``split.train`` (plus ``extra_triples``); early stopping on ``split.valid`` only.

        ``extra_triples`` (n, 3) of (user, preferred item, other item) join the pairwise training set
        each epoch with their given "other" item as negative (Llama4Rec L4a); they are training
        examples, not graph edges, so graph models propagate over ``split.train`` only. ``insertions``
        (sequential models) raise :class:`~recfuse.errors.ConfigError`. With ``patience=0`` or an empty
        validation split the model trains all ``epochs`` and keeps the last state.
        """
        self.n_users, self.n_items = split.n_users, split.n_items
        if self.item_tower != "id" and self.arrays["item_features"] is None:
            self.arrays["item_features"] = item_feature_matrix(split.dataset)
        set_seed(self.seed)
        device = self.torch_device
        users, items = self._towers(self.n_users, self.n_items)
        self.backbone = self.build_backbone(users, items, split).to(device)
        sampler = PairSampler(split.train_matrix, extra_triples, self.n_negatives, seed=self.seed)
        rng = np.random.default_rng(self.seed + 1)
        opt = _adam(self.backbone.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        metric_name, _, k = self.valid_metric.partition("@")
        k_eval = int(k or 10)
        has_valid = len(split.valid) > 0 and self.patience > 0
        stopper = EarlyStopping(patience=max(self.patience, 1), mode="max")
        if has_valid:
            valid_history, valid_truth = split.history("valid"), split.ground_truth("valid")
        log: dict[str, Any] = {"epoch_seconds": [], "loss": [], "valid_history": [], "eval_seconds": [],
                               "valid_metric": self.valid_metric, "n_train_triples": len(sampler),
                               "n_extra_triples": len(sampler.extra), "device": str(device)}
        bar = progress_bar(range(1, self.epochs + 1), enabled=progress, desc=f"{self.name} epochs")
        for epoch in bar:
            t0 = time.perf_counter()
            self.backbone.train()
            self.backbone.begin_epoch(rng)
            u, p, n = (torch.from_numpy(a).to(device) for a in sampler.epoch())
            running: torch.Tensor | float = 0.0
            batches = 0
            for start in range(0, len(u), self.batch_size):
                sl = slice(start, start + self.batch_size)
                loss, _ = self.backbone.loss(u[sl], p[sl], n[sl])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                running += loss.detach()  # summed on the device: no host sync per batch
                batches += 1
            total = float(running)
            log["epoch_seconds"].append(time.perf_counter() - t0)
            log["loss"].append(total / max(batches, 1))
            postfix = {"loss": f"{total / max(batches, 1):.4f}"}
            if has_valid and (epoch % self.eval_every == 0 or epoch == self.epochs):
                t1 = time.perf_counter()
                self._cache_final()
                res = evaluate_full_ranking(self._score_internal, valid_history, valid_truth, ks=[k_eval],
                                            metrics=[metric_name], batch_size=self.eval_batch_size)
                value = res.mean()[f"{metric_name}@{k_eval}"]
                log["eval_seconds"].append(time.perf_counter() - t1)
                log["valid_history"].append((epoch, value))
                postfix[self.valid_metric] = f"{value:.4f}"
                stop = stopper.step(value, epoch, self.backbone.state_dict())
                if stop:
                    bar.set_postfix(postfix)
                    break
            bar.set_postfix(postfix)
        if has_valid and stopper.best_state is not None:
            self.backbone.load_state_dict(stopper.best_state)
            log["best_epoch"], log["best_valid"] = stopper.best_epoch, stopper.best
        else:
            log["best_epoch"], log["best_valid"] = len(log["epoch_seconds"]), None
        log["epochs_run"] = len(log["epoch_seconds"])
        log["mean_epoch_seconds"] = float(np.mean(log["epoch_seconds"])) if log["epoch_seconds"] else 0.0
        self.train_log = log
        self._cache_final()
        return self

    def _cache_final(self) -> None:
        assert self.backbone is not None
        self.backbone.eval()
        with torch.no_grad():
            u, i = self.backbone.final()
            self._final = (u.detach(), i.detach())

    # -- inference -----------------------------------------------------------------------------------
    def _require_fitted(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._final is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(split) or load(path) first")
        return self._final

    def _fitted_backbone(self) -> Backbone:
        if self.backbone is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(split) or load(path) first")
        return self.backbone

    def _score_internal(self, users: Ids, items: Ids | None = None) -> Floats:
        u_rep, i_rep = self._require_fitted()
        backbone = self._fitted_backbone()
        dev = u_rep.device
        with torch.no_grad():
            ut = u_rep[torch.as_tensor(users, device=dev)]
            it = i_rep if items is None else i_rep[torch.as_tensor(items, device=dev)]
            return backbone.pair_scores(ut, it).float().cpu().numpy()

    def score(self, users: Ids, items: Ids | None = None) -> Floats:
        self._require_fitted()
        users, items = self._check_users(users), self._check_items(items)
        return self._score_internal(users, items)

    def user_embeddings(self) -> Floats:
        """Final user representations (n_users, d) for similar-user search (Llama4Rec L5a)."""
        return self._require_fitted()[0].float().cpu().numpy().copy()

    def item_embeddings(self) -> Floats:
        return self._require_fitted()[1].float().cpu().numpy().copy()

    # -- serving: scores from representations, new items ---------------------------------------------
    @property
    def dot_product(self) -> bool:
        """Whether a score is the dot product of the final user and item representations (every backbone
        but NeuMF's MLP): a user vector can then be solved from item vectors (fold-in)."""
        return type(self._fitted_backbone()).pair_scores is Backbone.pair_scores

    def final_representations(self) -> tuple[Floats, Floats]:
        """The final ``(n_users, d)`` user and ``(n_items, d)`` item representations that score (float32
        copies); :meth:`score_representations` scores any rows of them (or of new ones) as :meth:`score` does."""
        u, i = self._require_fitted()
        return u.float().cpu().numpy().copy(), i.float().cpu().numpy().copy()

    def score_representations(self, users: Floats, items: Floats) -> Floats:
        """Scores ``(len(users), len(items))`` of final user rows against final item rows."""
        backbone = self._fitted_backbone()
        dev = self._require_fitted()[0].device
        with torch.no_grad():
            u = torch.as_tensor(np.asarray(users, np.float32), device=dev)
            i = torch.as_tensor(np.asarray(items, np.float32), device=dev)
            return backbone.pair_scores(u, i).float().cpu().numpy()

    def cold_item_representations(self, features: Floats, profiles: Floats | None = None) -> Floats:
        """Final representations ``(n, d)`` of items never seen in training, from their item feature vectors
        (rows like ``item_features``) and, where the model fuses item profiles (RecLM), their profile
        embeddings (rows like ``item_profiles``): what the model gives an item without a training
        interaction. Only a feature tower (``item_tower`` ``features`` or ``id+features``) can; others raise
        :class:`~recfuse.errors.ConfigError`, as does a profile-fusing tower given no profiles."""
        backbone = self._fitted_backbone()
        with torch.no_grad():
            prof = None if profiles is None else torch.as_tensor(np.asarray(profiles, np.float32))
            ego = backbone.items.feature_rows(torch.as_tensor(np.asarray(features, np.float32)), prof)
            return backbone.cold_items(ego).float().cpu().numpy()

    @property
    def item_profile_dim(self) -> int:
        """Width of the item profile embeddings the model fuses (0: none)."""
        return self._fitted_backbone().items.profile_dim

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """A folder with ``config.json`` (name, hyper-parameters, sizes, train log) and ``weights.npz``."""
        u_rep, i_rep = self._require_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {f"state/{k}": v.detach().cpu().numpy() for k, v in self._fitted_backbone().state_dict().items()}
        shapes = {k: list(np.shape(v)) for k, v in self.arrays.items() if v is not None}
        config = {"model": self.name, "class": f"{type(self).__module__}:{type(self).__qualname__}",
                  "params": self.params, "n_users": self.n_users, "n_items": self.n_items,
                  "array_shapes": shapes, "train_log": self.train_log}
        save_npz(path / "weights.npz", final_users=u_rep.float().cpu().numpy(),
                 final_items=i_rep.float().cpu().numpy(), **state)
        with atomic_path(path / "config.json") as tmp:
            tmp.write_text(json.dumps(config, indent=2, default=float), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Self:
        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path}: no config.json (not a saved {cls.__name__})")
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        weights = load_npz(path / "weights.npz")
        params = dict(config["params"])
        params["device"] = params.get("device", "auto")
        placeholders = {k: np.zeros(s, np.float32) for k, s in config["array_shapes"].items()}
        model = cls(**placeholders, **params)
        model.n_users, model.n_items = config["n_users"], config["n_items"]
        users, items = model._towers(model.n_users, model.n_items)
        backbone = model.backbone = model.build_backbone(users, items, None)
        state = {k[len("state/"):]: torch.from_numpy(v) for k, v in weights.items() if k.startswith("state/")}
        backbone.load_state_dict(state)
        dev = model.torch_device
        backbone.to(dev).eval()
        stored = {"item_features": backbone.items.features, "user_profiles": backbone.users.profiles,
                  "item_profiles": backbone.items.profiles}
        model.arrays = {k: stored[k].cpu().numpy() if k in placeholders else None for k in cls.ARRAYS}
        model._final = (torch.from_numpy(weights["final_users"]).to(dev),
                        torch.from_numpy(weights["final_items"]).to(dev))
        model.train_log = config.get("train_log", {})
        return model
