"""BiasMF (Koren et al., 2009) for top-k: score = <user, item> + item bias, trained with BPR.

(A user bias and the global mean do not change a user's ranking, so they are left out.)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recfuse.data.splits import Split
from recfuse.models.base import register
from recfuse.models.training import Backbone, TorchRecommender, bpr_loss, l2_reg
from recfuse.models.towers import Tower


class BiasMFBackbone(Backbone):
    """Final representations carry the bias as a last column: user [u, 1], item [i, b_i]."""

    def __init__(self, users: Tower, items: Tower, reg_weight: float = 1e-4):
        super().__init__(users, items, reg_weight)
        self.item_bias = nn.Parameter(torch.zeros(items.n))

    def final(self) -> tuple[torch.Tensor, torch.Tensor]:
        u, i = self.ego()
        ones = torch.ones(len(u), 1, device=u.device, dtype=u.dtype)
        return torch.cat([u, ones], 1), torch.cat([i, self.item_bias[:, None]], 1)

    def cold_items(self, ego: torch.Tensor) -> torch.Tensor:
        # an item never trained on has the bias it was initialised with: 0
        return torch.cat([ego, torch.zeros(len(ego), 1, device=ego.device, dtype=ego.dtype)], 1)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        u, p, q = self.users(users), self.items(pos), self.items(neg)  # q: (B, K, d)
        s_pos = (u * p).sum(-1) + self.item_bias[pos]
        s_neg = (u.unsqueeze(1) * q).sum(-1) + self.item_bias[neg]
        loss = bpr_loss(s_pos.unsqueeze(1), s_neg)
        parts = {"bpr": loss.detach()}
        if self.reg_weight > 0:
            reg = self.reg_weight * (self.ego_l2(u, p, q) + l2_reg(self.item_bias[pos, None])
                                     + self.item_bias[neg].pow(2).mean() / 2)
            loss = loss + reg
            parts["reg"] = reg.detach()
        return loss, parts


@register("biasmf")
class BiasMF(TorchRecommender):
    """BiasMF with item biases, BPR loss (RecLM's BiasMF backbone)."""

    defaults = dict(reg_weight=1e-4, n_negatives=8)

    def build_backbone(self, users: Tower, items: Tower, split: Split | None) -> Backbone:
        return BiasMFBackbone(users, items, reg_weight=self.reg_weight)

    def user_embeddings(self) -> np.ndarray:
        return super().user_embeddings()[:, :-1]
