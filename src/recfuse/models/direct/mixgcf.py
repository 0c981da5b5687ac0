"""MixGCF (Huang et al., KDD 2021): hard negatives synthesised on LightGCN by positive and hop mixing."""

from __future__ import annotations

import torch

from recfuse.data.splits import Split
from recfuse.models.base import register
from recfuse.models.direct.lightgcn import GraphBackbone
from recfuse.models.training import Backbone, TorchRecommender, bpr_loss, l2_reg
from recfuse.models.towers import Tower


class MixGCFBackbone(GraphBackbone):
    """For each (user, positive), ``n_negatives`` sampled candidates; per layer l, each candidate is
    mixed with the positive (``a p_l + (1 - a) n_l``, ``a ~ U(0, 1)``: positive mixing), the candidate
    the user scores highest at that layer is kept (hop mixing), and the kept layers are pooled (mean)
    into one synthetic hard negative for BPR."""

    def synthesise(self, user_rep: torch.Tensor, layers: torch.Tensor, pos: torch.Tensor,
                   cand: torch.Tensor) -> torch.Tensor:
        """user_rep (B, d) pooled users; layers (N_items, L+1, d); pos (B,); cand (B, K) -> (B, d)."""
        p = layers[pos]  # (B, L+1, d)
        n = layers[cand]  # (B, K, L+1, d)
        alpha = torch.rand(n.shape[0], 1, n.shape[2], 1, device=n.device)
        mixed = alpha * p.unsqueeze(1) + (1 - alpha) * n  # positive mixing
        scores = (user_rep[:, None, None, :] * mixed).sum(-1)  # (B, K, L+1)
        best = scores.argmax(dim=1).detach()  # hop mixing: best candidate per layer, (B, L+1)
        chosen = torch.gather(mixed, 1, best[:, None, :, None].expand(-1, 1, -1, mixed.shape[-1])).squeeze(1)
        return chosen.mean(1)  # (B, d) pooled over layers

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        layers = self.layers()
        user_rep, item_rep = self.readout(layers)
        item_layers = torch.stack(layers, dim=1)[self.n_users:]  # (N_items, L+1, d)
        u = user_rep[users]
        neg_rep = self.synthesise(u, item_layers, pos, neg)
        loss = bpr_loss((u * item_rep[pos]).sum(-1), (u * neg_rep).sum(-1))
        parts = {"bpr": float(loss.detach())}
        if self.reg_weight > 0:
            reg = self.reg_weight * l2_reg(self.users(users), self.items(pos), self.items(neg[:, 0]))
            loss = loss + reg
            parts["reg"] = float(reg.detach())
        return loss, parts


@register("mixgcf")
class MixGCF(TorchRecommender):
    """MixGCF on LightGCN; ``n_negatives`` is the candidate pool per positive (paper: 64)."""

    defaults = dict(lr=5e-3, n_layers=2, reg_weight=1e-4, n_negatives=16)

    def build_backbone(self, users: Tower, items: Tower, split: Split | None) -> Backbone:
        return MixGCFBackbone(users, items, split, n_layers=self.n_layers, reg_weight=self.reg_weight,
                              device=self.torch_device)
