"""DeepFM (Guo et al., 2017): FM second-order interactions plus an MLP over the field embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recfuse.models.base import register
from recfuse.models.rating.base import RatingRecommender
from recfuse.models.rating.layers import DeepTower, bi_interaction


class DeepFMInteraction(nn.Module):
    def __init__(self, n_fields: int, dim: int, hidden: Sequence[int], dropout: float):
        super().__init__()
        self.deep = DeepTower(n_fields, dim, hidden, dropout)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        return bi_interaction(fields).sum(dim=1) + self.deep(fields)


@register("deepfm")
class DeepFM(RatingRecommender):
    """DeepFM for rating prediction. ``hidden_units``: widths of the deep part."""

    def __init__(self, hidden_units: Sequence[int] = (128, 64), **kwargs):
        super().__init__(hidden_units=hidden_units, **kwargs)

    def build_interaction(self, n_fields: int, dim: int) -> nn.Module:
        return DeepFMInteraction(n_fields, dim, self.params["hidden_units"], self.params["dropout"])
