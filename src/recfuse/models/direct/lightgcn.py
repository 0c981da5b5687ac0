"""LightGCN (He et al., 2020): ID embeddings smoothed over the normalised user-item graph."""

from __future__ import annotations

import numpy as np
import torch

from recfuse.data.splits import Split
from recfuse.models.base import register
from recfuse.models.graph import normalized_adjacency, propagate
from recfuse.models.training import Backbone, TorchRecommender
from recfuse.models.towers import Tower


class GraphBackbone(Backbone):
    """Shared by LightGCN, MixGCF, SGL and SimGCL: the training graph and layer propagation.

    Final representations are the mean of layers 0..L (``include_ego``) or 1..L (SimGCL); without
    layer 0, a node with no training edge (a cold-start item) would be all zeros whatever its features,
    so such nodes keep their layer 0.
    A backbone rebuilt by ``load`` has no graph; it scores from the saved final representations.
    """

    def __init__(self, users: Tower, items: Tower, split: Split | None, n_layers: int = 3,
                 reg_weight: float = 1e-4, include_ego: bool = True, device: torch.device | str = "cpu"):
        super().__init__(users, items, reg_weight)
        self.n_users, self.n_items = users.n, items.n
        self.n_layers, self.include_ego, self.device = n_layers, include_ego, torch.device(device)
        self.adj: torch.Tensor | None = None
        self.isolated: torch.Tensor | None = None  # nodes without a training edge, if any (users, then items)
        if split is not None:
            self.edge_users = split.train.user.astype(np.int64)
            self.edge_items = split.train.item.astype(np.int64)
            self.adj = self.adjacency(self.edge_users, self.edge_items)
            degree = np.concatenate([np.bincount(self.edge_users, minlength=self.n_users),
                                     np.bincount(self.edge_items, minlength=self.n_items)])
            if (degree == 0).any():
                self.isolated = torch.from_numpy(degree == 0).to(self.device)

    def adjacency(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        return normalized_adjacency(users, items, self.n_users, self.n_items, self.device)

    def ego_nodes(self) -> torch.Tensor:
        """Layer-0 representations of all nodes (users first, then items)."""
        return torch.cat(self.ego())

    def layers(self, adj: torch.Tensor | None = None, noise_eps: float = 0.0,
               ego: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Layer embeddings of all nodes (users first, then items); ``ego`` reuses layer 0 computed by
        :meth:`ego_nodes` (models that propagate several views per batch)."""
        adj = self.adj if adj is None else adj
        if adj is None:
            raise RuntimeError("this graph model has no training graph (loaded from disk); refit it to train")
        return propagate(adj, self.ego_nodes() if ego is None else ego, self.n_layers, noise_eps)

    def readout(self, layers: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean over layers, split into (users, items); without ``include_ego``, isolated nodes keep layer 0."""
        if self.include_ego or len(layers) == 1:
            x = torch.stack(layers).mean(0)
        else:
            x = torch.stack(layers[1:]).mean(0)
            if self.isolated is not None:
                x = torch.where(self.isolated[:, None], layers[0], x)
        return x[:self.n_users], x[self.n_users:]

    def final(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.readout(self.layers())

    def cold_items(self, ego: torch.Tensor) -> torch.Tensor:
        # a node without edges is zero after every layer: the mean of layers 0..L is ego / (L + 1),
        # and without include_ego it keeps layer 0 (see readout)
        return ego / (self.n_layers + 1) if self.include_ego else ego

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        user_rep, item_rep = self.final()
        return self.bpr_with_reg(users, pos, neg, user_rep, item_rep)


@register("lightgcn")
class LightGCN(TorchRecommender):
    """LightGCN: ``n_layers`` rounds of propagation over D^-1/2 A D^-1/2, mean of all layers, BPR loss."""

    # lr 5e-3: on ML-100K validation NDCG@10 0.0753 at epoch 33 vs 0.0736 at epoch 143 with 1e-3
    defaults = dict(lr=5e-3, n_layers=2, reg_weight=1e-4, n_negatives=4)
    n_layers: int

    def build_backbone(self, users: Tower, items: Tower, split: Split | None) -> Backbone:
        return GraphBackbone(users, items, split, n_layers=self.n_layers, reg_weight=self.reg_weight,
                             device=self.torch_device)
