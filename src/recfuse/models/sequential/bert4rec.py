"""BERT4Rec (Sun et al., 2019): bidirectional self-attention trained to recover masked items (Cloze task)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recfuse.errors import ConfigError
from recfuse.models.base import register
from recfuse.models.sequential.base import SequentialRecommender


@register("bert4rec")
class BERT4Rec(SequentialRecommender):
    """BERT4Rec. Each training window masks every item with probability ``mask_ratio`` (at least one per
    window); with probability ``last_ratio`` a window masks only its last item instead, the situation of
    inference (RecBole's ``ft_ratio``). Inference appends the mask token to the last ``max_len - 1`` items.
    Defaults follow RecBole 1.2.1 (dropout 0.2, mask ratio 0.2, output dense + GELU + layer norm, item bias)."""

    causal = False
    output_head = True
    window_extra = 0

    def __init__(self, mask_ratio: float = 0.2, last_ratio: float = 0.1, dropout: float = 0.2, **kwargs):
        if not 0 < mask_ratio < 1 or not 0 <= last_ratio <= 1:
            raise ConfigError(f"mask_ratio must be in (0, 1) and last_ratio in [0, 1], got {mask_ratio}, {last_ratio}")
        super().__init__(mask_ratio=mask_ratio, last_ratio=last_ratio, dropout=dropout, **kwargs)

    def _loss(self, rows: torch.Tensor) -> torch.Tensor:
        real = rows > 0
        b = rows.shape[0]
        masked = (torch.rand(rows.shape, device=rows.device) < self.mask_ratio) & real
        last_only = torch.rand(b, device=rows.device) < self.last_ratio
        is_last = torch.zeros_like(real)
        is_last[:, -1] = True  # windows are left-padded: the last column is always a real item
        masked = torch.where(last_only[:, None] | ~masked.any(1, keepdim=True), is_last, masked)
        inp = torch.where(masked, torch.full_like(rows, self.encoder.mask_id), rows)
        h = self.encoder(inp)
        return F.cross_entropy(self.encoder.item_logits(h[masked]), rows[masked] - 1)

    def _inference_input(self, padded: torch.Tensor) -> torch.Tensor:
        mask = torch.full_like(padded[:, :1], self.encoder.mask_id)
        return torch.cat([padded[:, 1:], mask], dim=1)
