"""AutoInt (Song et al., 2019): stacked multi-head self-attention over fields, plus an MLP."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from recfuse.models.base import register
from recfuse.models.rating.base import RatingRecommender
from recfuse.models.rating.layers import DeepTower, SelfAttentionLayer


class AutoIntInteraction(nn.Module):
    def __init__(self, n_fields: int, dim: int, layers: int, heads: int, attention_size: int,
                 hidden: Sequence[int], dropout: float):
        super().__init__()
        sizes = [dim] + [attention_size] * layers
        self.attention = nn.Sequential(*(SelfAttentionLayer(a, b, heads) for a, b in itertools.pairwise(sizes)))
        self.att_out = nn.Linear(n_fields * sizes[-1], 1)
        self.deep = DeepTower(n_fields, dim, hidden, dropout) if hidden else None

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        out = self.att_out(self.attention(fields).flatten(1)).squeeze(-1)
        return out + self.deep(fields) if self.deep is not None else out


@register("autoint")
class AutoInt(RatingRecommender):
    """AutoInt for rating prediction. ``attention_layers``, ``heads``, ``attention_size``; ``hidden_units``
    of the optional MLP (empty: attention only)."""

    def __init__(self, attention_layers: int = 2, heads: int = 2, attention_size: int = 16,
                 hidden_units: Sequence[int] = (128, 64), **kwargs):
        super().__init__(attention_layers=attention_layers, heads=heads, attention_size=attention_size,
                         hidden_units=hidden_units, **kwargs)

    def build_interaction(self, n_fields: int, dim: int) -> nn.Module:
        p = self.params
        return AutoIntInteraction(n_fields, dim, int(p["attention_layers"]), int(p["heads"]),
                                  int(p["attention_size"]), p["hidden_units"], p["dropout"])
