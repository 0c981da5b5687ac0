"""The transformer sequence encoder shared by SASRec, BERT4Rec and CL4SRec.

Post-layer-norm blocks as in SASRec / BERT4Rec (and RecBole): embeddings of items and positions, then
``n_layers`` of multi-head self-attention and a GELU feed-forward layer. ``causal=True`` lets a position see
only itself and the past (SASRec, CL4SRec); ``causal=False`` sees the whole sequence (BERT4Rec). Padding
(id 0, on the left) is never attended to. Item scores are dot products with the (tied) item embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TransformerBlock(nn.Module):
    """Self-attention and feed-forward, each followed by dropout, a residual connection and layer norm."""

    def __init__(self, hidden: int, n_heads: int, inner: int, dropout: float, attn_dropout: float):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden_size {hidden} is not divisible by n_heads {n_heads}")
        self.n_heads, self.attn_dropout = n_heads, attn_dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ff = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), nn.Linear(inner, hidden))
        self.ln_attn = nn.LayerNorm(hidden, eps=1e-12)
        self.ln_ff = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``x`` (B, L, H); ``allowed`` (B, 1, L, L) True where a query position may attend to a key."""
        b, length, h = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, h // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        x = self.ln_attn(x + self.drop(self.out(a.transpose(1, 2).reshape(b, length, h))))
        return self.ln_ff(x + self.drop(self.ff(x)))


class SequenceEncoder(nn.Module):
    """Item sequences (B, L) of shifted ids (0 = padding, ``n_items + 1`` = mask) to hidden states (B, L, H)."""

    def __init__(self, n_items: int, hidden_size: int = 64, max_len: int = 50, n_layers: int = 2, n_heads: int = 2,
                 inner_size: int | None = None, dropout: float = 0.5, attn_dropout: float = 0.5,
                 causal: bool = True, output_head: bool = False):
        super().__init__()
        self.n_items, self.max_len, self.causal = n_items, max_len, causal
        self.mask_id = n_items + 1
        self.item_emb = nn.Embedding(n_items + 2, hidden_size, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, hidden_size)
        self.ln = nn.LayerNorm(hidden_size, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(hidden_size, n_heads, inner_size or 4 * hidden_size,
                                                     dropout, attn_dropout) for _ in range(n_layers))
        # BERT4Rec's output transform (dense + GELU + layer norm) and per-item bias
        self.head = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(),
                                  nn.LayerNorm(hidden_size, eps=1e-12)) if output_head else None
        self.item_bias = nn.Parameter(torch.zeros(n_items)) if output_head else None
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        length = seq.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        pos = torch.arange(self.max_len - length, self.max_len, device=seq.device)  # right-aligned positions
        x = self.drop(self.ln(self.item_emb(seq) + self.pos_emb(pos)[None]))
        allowed = (seq > 0)[:, None, None, :]
        eye = torch.eye(length, dtype=torch.bool, device=seq.device)
        if self.causal:
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        allowed = allowed | eye  # every position sees itself: no empty attention row, no NaN
        for block in self.blocks:
            x = block(x, allowed)
        return x

    def item_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Scores of all items (..., n_items) from hidden states (..., H)."""
        if self.head is not None:
            h = self.head(h)
        logits = h @ self.item_emb.weight[1:self.n_items + 1].T
        return logits if self.item_bias is None else logits + self.item_bias
