"""xDeepFM (Lian et al., 2018): a compressed interaction network (CIN) plus an MLP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recfuse.models.base import register
from recfuse.models.rating.base import RatingRecommender
from recfuse.models.rating.layers import CIN, DeepTower


class XDeepFMInteraction(nn.Module):
    def __init__(self, n_fields: int, dim: int, cin_sizes: Sequence[int], hidden: Sequence[int], dropout: float):
        super().__init__()
        self.cin = CIN(n_fields, cin_sizes)
        self.cin_out = nn.Linear(self.cin.out_dim, 1)
        self.deep = DeepTower(n_fields, dim, hidden, dropout)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        return self.cin_out(self.cin(fields)).squeeze(-1) + self.deep(fields)


@register("xdeepfm")
class XDeepFM(RatingRecommender):
    """xDeepFM for rating prediction. ``cin_layer_sizes``: feature maps per CIN layer; ``hidden_units``: MLP."""

    def __init__(self, cin_layer_sizes: Sequence[int] = (16, 16), hidden_units: Sequence[int] = (128, 64), **kwargs):
        super().__init__(cin_layer_sizes=cin_layer_sizes, hidden_units=hidden_units, **kwargs)

    def build_interaction(self, n_fields: int, dim: int) -> nn.Module:
        p = self.params
        return XDeepFMInteraction(n_fields, dim, p["cin_layer_sizes"], p["hidden_units"], p["dropout"])
