"""NFM (He and Chua, 2017): bi-interaction pooling of the field embeddings, then an MLP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recfuse.models.base import register
from recfuse.models.rating.base import RatingRecommender
from recfuse.models.rating.layers import MLP, bi_interaction


class NFMInteraction(nn.Module):
    def __init__(self, dim: int, hidden: Sequence[int], dropout: float):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim)
        self.dropout = nn.Dropout(dropout)
        self.mlp = MLP(dim, hidden, dropout, out_dim=1)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.dropout(self.norm(bi_interaction(fields)))).squeeze(-1)


@register("nfm")
class NFM(RatingRecommender):
    """Neural factorization machine for rating prediction. ``hidden_units``: widths of the MLP."""

    def __init__(self, hidden_units: Sequence[int] = (64,), **kwargs):
        super().__init__(hidden_units=hidden_units, **kwargs)

    def build_interaction(self, n_fields: int, dim: int) -> nn.Module:
        return NFMInteraction(dim, self.params["hidden_units"], self.params["dropout"])
