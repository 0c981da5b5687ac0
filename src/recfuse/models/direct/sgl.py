"""SGL (Wu et al., SIGIR 2021): LightGCN plus InfoNCE between two edge-dropout views of the graph."""

from __future__ import annotations

import numpy as np
import torch

from recfuse.data.splits import Split
from recfuse.models.base import register
from recfuse.models.direct.lightgcn import GraphBackbone
from recfuse.models.graph import drop_edges
from recfuse.models.training import Backbone, TorchRecommender, info_nce
from recfuse.models.towers import Tower


def contrastive_loss(view1: tuple[torch.Tensor, torch.Tensor], view2: tuple[torch.Tensor, torch.Tensor],
                     users: torch.Tensor, items: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE on the batch's unique users plus on its unique positive items (shared with SimGCL)."""
    u, i = torch.unique(users), torch.unique(items)
    return info_nce(view1[0][u], view2[0][u], temperature) + info_nce(view1[1][i], view2[1][i], temperature)


class SGLBackbone(GraphBackbone):
    """Two views per epoch, each keeping every training edge with probability ``1 - drop_ratio``."""

    def __init__(self, *args, drop_ratio: float = 0.1, ssl_weight: float = 0.1, temperature: float = 0.2,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.drop_ratio, self.ssl_weight, self.temperature = drop_ratio, ssl_weight, temperature
        self.views: list[torch.Tensor] = []

    def begin_epoch(self, rng: np.random.Generator) -> None:
        self.views = [self.adjacency(*drop_edges(self.edge_users, self.edge_items, self.drop_ratio, rng))
                      for _ in range(2)]

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        ego = self.ego_nodes()  # layer 0 once for the clean graph and both views
        user_rep, item_rep = self.readout(self.layers(ego=ego))
        loss, parts = self.bpr_with_reg(users, pos, neg, user_rep, item_rep)
        v1, v2 = (self.readout(self.layers(adj, ego=ego)) for adj in self.views)
        ssl = self.ssl_weight * contrastive_loss(v1, v2, users, pos, self.temperature)
        parts["ssl"] = ssl.detach()
        return loss + ssl, parts


@register("sgl")
class SGL(TorchRecommender):
    """SGL-ED: edge-dropout views, InfoNCE weight ``ssl_weight``, temperature ``temperature``."""

    defaults = dict(lr=5e-3, n_layers=2, reg_weight=1e-4, drop_ratio=0.1, ssl_weight=0.05, temperature=0.5,
                    n_negatives=4)
    n_layers: int
    drop_ratio: float
    ssl_weight: float
    temperature: float

    def build_backbone(self, users: Tower, items: Tower, split: Split | None) -> Backbone:
        return SGLBackbone(users, items, split, n_layers=self.n_layers, reg_weight=self.reg_weight,
                           device=self.torch_device, drop_ratio=self.drop_ratio, ssl_weight=self.ssl_weight,
                           temperature=self.temperature)
