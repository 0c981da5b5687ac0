"""AFM (Xiao et al., 2017): attention-weighted sum of the pairwise field interactions."""

from __future__ import annotations

import torch
from torch import nn

from recfuse.models.base import register
from recfuse.models.rating.base import RatingRecommender
from recfuse.models.rating.layers import AttentionPooling, pairwise_products


class AFMInteraction(nn.Module):
    def __init__(self, dim: int, attention_size: int, dropout: float):
        super().__init__()
        self.pool = AttentionPooling(dim, attention_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dim, 1, bias=False)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.pool(pairwise_products(fields)))).squeeze(-1)


@register("afm")
class AFM(RatingRecommender):
    """Attentional factorization machine for rating prediction. ``attention_size``: the attention net's width."""

    def __init__(self, attention_size: int = 16, **kwargs):
        super().__init__(attention_size=attention_size, **kwargs)

    def build_interaction(self, n_fields: int, dim: int) -> nn.Module:
        return AFMInteraction(dim, int(self.params["attention_size"]), self.params["dropout"])
