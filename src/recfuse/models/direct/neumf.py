"""NeuMF (He et al., WWW 2017): generalised MF and an MLP over (user, item) embeddings, fused.

Each id has one layer-0 vector of width ``2 * embedding_dim``: the first half feeds GMF, the second
the MLP. Trained pointwise with binary cross-entropy on positives and sampled negatives (``loss="bce"``,
as in the paper and RecBole), or pairwise with BPR (``loss="bpr"``, which also uses extra triples as pairs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recfuse.data.splits import Split
from recfuse.errors import ConfigError
from recfuse.models.base import register
from recfuse.models.training import Backbone, TorchRecommender, bpr_loss, l2_reg
from recfuse.models.towers import Tower


class NeuMFBackbone(Backbone):
    def __init__(self, users: Tower, items: Tower, dim: int, hidden: list[int], dropout: float = 0.1,
                 reg_weight: float = 0.0, loss: str = "bce", max_pairs: int = 1 << 20):
        super().__init__(users, items, reg_weight)
        if loss not in ("bce", "bpr"):
            raise ConfigError(f"NeuMF loss must be 'bce' or 'bpr', not {loss!r}")
        self.dim, self.loss_kind, self.max_pairs = dim, loss, max_pairs
        # the first MLP layer acts on [u; i]: split into its user and item halves so that all-pairs
        # scoring adds a per-user and a per-item projection instead of concatenating every pair
        self.first_user = nn.Linear(dim, hidden[0])
        self.first_item = nn.Linear(dim, hidden[0], bias=False)
        rest: list[nn.Module] = []
        d = hidden[0]
        for h in hidden[1:]:
            rest += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(d, h)]
            d = h
        self.mlp_rest = nn.Sequential(*rest, nn.ReLU(), nn.Dropout(dropout))
        self.predict = nn.Linear(dim + d, 1)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _combine(self, gmf: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.predict(torch.cat([gmf, self.mlp_rest(h)], -1)).squeeze(-1)

    def triple_scores(self, user_rep: torch.Tensor, item_rep: torch.Tensor) -> torch.Tensor:
        d = self.dim
        if item_rep.dim() == 3:
            user_rep = user_rep.unsqueeze(1).expand(-1, item_rep.shape[1], -1)
        gmf = user_rep[..., :d] * item_rep[..., :d]
        h = self.first_user(user_rep[..., d:]) + self.first_item(item_rep[..., d:])
        return self._combine(gmf, h)

    def pair_scores(self, user_rep: torch.Tensor, item_rep: torch.Tensor) -> torch.Tensor:
        d = self.dim
        hu, hi = self.first_user(user_rep[:, d:]), self.first_item(item_rep[:, d:])
        step = max(1, self.max_pairs // max(len(item_rep), 1))
        out = []
        for s in range(0, len(user_rep), step):
            gmf = user_rep[s:s + step, None, :d] * item_rep[None, :, :d]
            out.append(self._combine(gmf, hu[s:s + step, None] + hi[None]))
        return torch.cat(out) if out else user_rep.new_zeros(0, len(item_rep))

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        u, p, q = self.users(users), self.items(pos), self.items(neg.reshape(-1)).reshape(*neg.shape, -1)
        s_pos, s_neg = self.triple_scores(u, p), self.triple_scores(u, q)
        if self.loss_kind == "bce":
            loss = F.binary_cross_entropy_with_logits(s_pos, torch.ones_like(s_pos)) * 0.5 + \
                F.binary_cross_entropy_with_logits(s_neg, torch.zeros_like(s_neg)) * 0.5
        else:
            loss = bpr_loss(s_pos.unsqueeze(-1), s_neg).mean()
        parts = {self.loss_kind: float(loss.detach())}
        if self.reg_weight > 0:
            reg = self.reg_weight * l2_reg(u, p, q[:, 0])
            loss = loss + reg
            parts["reg"] = float(reg.detach())
        return loss, parts


@register("neumf")
class NeuMF(TorchRecommender):
    """NeuMF: GMF and MLP branches (``mlp_hidden``), ``dropout``, ``loss`` bce or bpr. Also ``ncf``."""

    defaults = dict(reg_weight=0.0, mlp_hidden=[128, 64], dropout=0.1, loss="bce", n_negatives=4)

    def tower_dim(self) -> int:
        return 2 * self.embedding_dim

    def build_backbone(self, users: Tower, items: Tower, split: Split | None) -> Backbone:
        return NeuMFBackbone(users, items, self.embedding_dim, list(self.mlp_hidden), self.dropout,
                             self.reg_weight, self.loss)


@register("ncf")
class NCF(NeuMF):
    """Alias of :class:`NeuMF`."""
