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
        """user_rep (B, d) pooled users; layers (N_items, L+1, d); pos (B,); cand (B, K) -> (B, d).

        The mixed candidates are scored from dot products (``u . (a p + (1 - a) n) = a u.p + (1 - a) u.n``)
        and only the chosen one per layer is built, never all (B, K, L+1, d) mixtures.
        """
        p = layers[pos]  # (B, L+1, d)
        n_layers = layers.shape[1]
        alpha = torch.rand(len(pos), 1, n_layers, device=layers.device)  # (B, 1, L+1): one per user and layer
        with torch.no_grad():  # the choice is not differentiated: score every candidate without a graph
            s_pos = torch.einsum("bd,bld->bl", user_rep, p)  # (B, L+1)
            s_neg = torch.einsum("bd,bkld->bkl", user_rep, layers[cand])  # (B, K, L+1)
            best = (alpha * s_pos.unsqueeze(1) + (1 - alpha) * s_neg).argmax(dim=1)  # hop mixing, (B, L+1)
        chosen = torch.gather(cand, 1, best)  # (B, L+1): the item kept at each layer
        n_best = layers[chosen, torch.arange(n_layers, device=layers.device)]  # (B, L+1, d)
        a = alpha.squeeze(1).unsqueeze(-1)  # (B, L+1, 1)
        return (a * p + (1 - a) * n_best).mean(1)  # positive mixing of the chosen, pooled over layers

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        layers = self.layers()
        user_rep, item_rep = self.readout(layers)
        item_layers = torch.stack(layers, dim=1)[self.n_users:]  # (N_items, L+1, d)
        u = user_rep[users]
        neg_rep = self.synthesise(u, item_layers, pos, neg)
        loss = bpr_loss((u * item_rep[pos]).sum(-1), (u * neg_rep).sum(-1))
        parts = {"bpr": loss.detach()}
        if self.reg_weight > 0:
            reg = self.reg_weight * l2_reg(self.users(users), self.items(pos), self.items(neg[:, 0]))
            loss = loss + reg
            parts["reg"] = reg.detach()
        return loss, parts


@register("mixgcf")
class MixGCF(TorchRecommender):
    """MixGCF on LightGCN; ``n_negatives`` is the candidate pool per positive (paper: 64)."""

    defaults = dict(lr=5e-3, n_layers=2, reg_weight=1e-4, n_negatives=16)
    n_layers: int

    def build_backbone(self, users: Tower, items: Tower, split: Split | None) -> Backbone:
        return MixGCFBackbone(users, items, split, n_layers=self.n_layers, reg_weight=self.reg_weight,
                              device=self.torch_device)
