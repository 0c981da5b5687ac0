"""Building blocks the rating backbones share: MLP tower, FM interaction, cross network, CIN, attention.

Every block takes the pooled field embeddings ``E`` of shape ``(batch, n_fields, dim)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """Linear -> ReLU -> dropout layers, optionally ending in a linear output of width ``out_dim``."""

    def __init__(self, in_dim: int, hidden: Sequence[int], dropout: float = 0.0, out_dim: int | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_dim, width), nn.ReLU(), nn.Dropout(dropout)]
            in_dim = width
        if out_dim is not None:
            layers.append(nn.Linear(in_dim, out_dim))
            in_dim = out_dim
        self.out_dim = in_dim
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DeepTower(nn.Module):
    """The 'deep' part of DeepFM, DCN, xDeepFM and AutoInt: an MLP over the flattened field embeddings -> scalar."""

    def __init__(self, n_fields: int, dim: int, hidden: Sequence[int], dropout: float):
        super().__init__()
        self.mlp = MLP(n_fields * dim, hidden, dropout, out_dim=1)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        return self.mlp(fields.flatten(1)).squeeze(-1)


def bi_interaction(fields: torch.Tensor) -> torch.Tensor:
    """Sum of all pairwise element-wise products of field embeddings, ``(B, dim)`` (FM's trick, NFM's pooling)."""
    return 0.5 * (fields.sum(dim=1).pow(2) - fields.pow(2).sum(dim=1))


def pairwise_products(fields: torch.Tensor) -> torch.Tensor:
    """Element-wise products of every pair of fields, ``(B, n_pairs, dim)`` (AFM)."""
    n = fields.shape[1]
    rows, cols = torch.triu_indices(n, n, offset=1, device=fields.device)
    return fields[:, rows] * fields[:, cols]


class CrossNetwork(nn.Module):
    """DCN's cross layers: ``x_{l+1} = x_0 * (x_l . w_l) + b_l + x_l``."""

    def __init__(self, in_dim: int, n_layers: int):
        super().__init__()
        self.weights = nn.ParameterList([nn.Parameter(torch.randn(in_dim) * in_dim ** -0.5) for _ in range(n_layers)])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(in_dim)) for _ in range(n_layers)])

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for w, b in zip(self.weights, self.biases):
            x = x0 * (x @ w).unsqueeze(-1) + b + x
        return x


class CIN(nn.Module):
    """xDeepFM's compressed interaction network; returns the sum-pooled feature maps of every layer."""

    def __init__(self, n_fields: int, layer_sizes: Sequence[int]):
        super().__init__()
        self.convs = nn.ModuleList()
        prev = n_fields
        for size in layer_sizes:
            self.convs.append(nn.Conv1d(prev * n_fields, size, kernel_size=1))
            prev = size
        self.out_dim = sum(layer_sizes)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        batch, _, dim = fields.shape
        x0, x, pooled = fields, fields, []
        for conv in self.convs:
            z = torch.einsum("bhd,bmd->bhmd", x, x0).reshape(batch, -1, dim)
            x = torch.relu(conv(z))
            pooled.append(x.sum(dim=2))
        return torch.cat(pooled, dim=1)


class SelfAttentionLayer(nn.Module):
    """AutoInt's interacting layer: multi-head self-attention over fields with a residual projection."""

    def __init__(self, in_dim: int, att_dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if att_dim % heads:
            raise ValueError(f"attention size {att_dim} is not divisible by {heads} heads")
        self.heads = heads
        self.query = nn.Linear(in_dim, att_dim, bias=False)
        self.key = nn.Linear(in_dim, att_dim, bias=False)
        self.value = nn.Linear(in_dim, att_dim, bias=False)
        self.residual = nn.Linear(in_dim, att_dim, bias=False)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f, _ = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, f, self.heads, -1).transpose(1, 2)

        out = nn.functional.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)),
            dropout_p=self.dropout if self.training else 0.0)
        return torch.relu(out.transpose(1, 2).reshape(b, f, -1) + self.residual(x))


class AttentionPooling(nn.Module):
    """AFM's attention over pairwise interactions: softmax(h . relu(W v + b)) weighted sum -> ``(B, dim)``."""

    def __init__(self, dim: int, att_dim: int):
        super().__init__()
        self.att = nn.Sequential(nn.Linear(dim, att_dim), nn.ReLU(), nn.Linear(att_dim, 1, bias=False))

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.att(pairs), dim=1)
        return (weights * pairs).sum(dim=1)
