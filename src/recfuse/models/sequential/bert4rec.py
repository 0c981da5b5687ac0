"""BERT4Rec (Sun et al., 2019): bidirectional self-attention trained to recover masked items (Cloze task)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recfuse.errors import ConfigError
from recfuse.models.base import register
from recfuse.models.sequential.base import SequentialRecommender, random_prefix


@register("bert4rec")
class BERT4Rec(SequentialRecommender):
    """BERT4Rec. Each training window masks every item with probability ``mask_ratio`` (at least one per
    window); with probability ``last_ratio`` a window masks only its last item instead, the situation of
    inference (RecBole's ``ft_ratio``), after cutting the window at a random item when ``random_cut`` (so every
    item, not only each window's last, is such a target: RecBole's prefix samples, drawn instead of enumerated).
    Each epoch draws ``masks_per_window`` independent maskings of every window (a masked window gives about
    ``mask_ratio x max_len`` targets, where SASRec's gives ``max_len``).
    Inference appends the mask token to the last ``max_len - 1`` items.
    Architecture as RecBole 1.2.1's (dropout 0.2, mask ratio 0.2, output dense + GELU + layer norm, item bias)."""

    # last_ratio 0.5, random_cut, masks_per_window 8: the best of 9 settings on ML-100K validation NDCG@10 (0.1210,
    # against 0.1110 for the earlier last_ratio 0.1 / no cut / 1 masking): benchmarks/results/sequential_bert4rec_probes.md

    causal = False
    output_head = True
    window_extra = 0
    mask_ratio: float
    last_ratio: float
    random_cut: bool
    masks_per_window: int

    def __init__(self, mask_ratio: float = 0.2, last_ratio: float = 0.5, random_cut: bool = True,
                 masks_per_window: int = 8, dropout: float = 0.2, **kwargs):
        if not 0 < mask_ratio < 1 or not 0 <= last_ratio <= 1:
            raise ConfigError(f"mask_ratio must be in (0, 1) and last_ratio in [0, 1], got {mask_ratio}, {last_ratio}")
        if masks_per_window < 1:
            raise ConfigError(f"masks_per_window must be a positive integer, got {masks_per_window}")
        super().__init__(mask_ratio=mask_ratio, last_ratio=last_ratio, random_cut=random_cut,
                         masks_per_window=masks_per_window, dropout=dropout, **kwargs)

    def _epoch_rows(self, rows: torch.Tensor) -> torch.Tensor:
        return rows.repeat(self.masks_per_window, 1) if self.masks_per_window > 1 else rows

    def _loss(self, rows: torch.Tensor) -> torch.Tensor:
        real = rows > 0
        masked = (torch.rand(rows.shape, device=rows.device) < self.mask_ratio) & real
        last_only = torch.rand(rows.shape[0], device=rows.device) < self.last_ratio
        if self.random_cut:  # a last-only window is cut at a random item first (RecBole's prefixes)
            rows = torch.where(last_only[:, None], random_prefix(rows), rows)
        is_last = torch.zeros_like(real)
        is_last[:, -1] = True  # windows are left-padded: the last column is always a real item
        masked = torch.where(last_only[:, None] | ~masked.any(1, keepdim=True), is_last, masked)
        encoder = self.net
        inp = torch.where(masked, torch.full_like(rows, encoder.mask_id), rows)
        h = encoder(inp)
        return F.cross_entropy(encoder.item_logits(h[masked]), rows[masked] - 1)

    def _inference_input(self, padded: torch.Tensor) -> torch.Tensor:
        mask = torch.full_like(padded[:, :1], self.net.mask_id)
        return torch.cat([padded[:, 1:], mask], dim=1)
