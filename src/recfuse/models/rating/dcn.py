"""DCN (Wang et al., 2017): a cross network and an MLP in parallel over the stacked field embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recfuse.models.base import register
from recfuse.models.rating.base import RatingRecommender
from recfuse.models.rating.layers import MLP, CrossNetwork


class DCNInteraction(nn.Module):
    def __init__(self, n_fields: int, dim: int, cross_layers: int, hidden: Sequence[int], dropout: float):
        super().__init__()
        width = n_fields * dim
        self.cross = CrossNetwork(width, cross_layers)
        self.deep = MLP(width, hidden, dropout)
        self.out = nn.Linear(width + self.deep.out_dim, 1)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        x0 = fields.flatten(1)
        return self.out(torch.cat([self.cross(x0), self.deep(x0)], dim=1)).squeeze(-1)


@register("dcn")
class DCN(RatingRecommender):
    """Deep & Cross Network for rating prediction. ``cross_layers``; ``hidden_units`` of the deep part."""

    def __init__(self, cross_layers: int = 2, hidden_units: Sequence[int] = (128, 64), **kwargs):
        super().__init__(cross_layers=cross_layers, hidden_units=hidden_units, **kwargs)

    def build_interaction(self, n_fields: int, dim: int) -> nn.Module:
        p = self.params
        return DCNInteraction(n_fields, dim, int(p["cross_layers"]), p["hidden_units"], p["dropout"])
