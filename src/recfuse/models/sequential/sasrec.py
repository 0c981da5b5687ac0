"""SASRec (Kang and McAuley, 2018): causal self-attention, next-item prediction at every position."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recfuse.errors import ConfigError
from recfuse.models.base import register
from recfuse.models.sequential.base import SequentialRecommender


@register("sasrec")
class SASRec(SequentialRecommender):
    """SASRec. ``loss="ce"``: softmax cross-entropy over all items (the default: better valid NDCG on
    ML-100K); ``loss="bpr"``: one uniformly sampled negative per position. Other hyper-parameters: see
    :class:`~recfuse.models.sequential.base.SequentialRecommender`."""

    causal = True
    window_extra = 1
    loss: str

    def __init__(self, loss: str = "ce", **kwargs):
        if loss not in ("ce", "bpr"):
            raise ConfigError(f"loss must be 'ce' or 'bpr', not {loss!r}")
        super().__init__(loss=loss, **kwargs)

    def _next_item_loss(self, inp: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-item loss at every non-padding position; also returns the hidden states."""
        encoder = self.net
        h = encoder(inp)
        keep = inp > 0
        hk, tk = h[keep], target[keep] - 1
        if self.loss == "ce":
            return F.cross_entropy(encoder.item_logits(hk), tk), h
        emb = encoder.item_emb.weight
        neg = torch.randint(1, self.n_items + 1, tk.shape, device=inp.device)
        diff = (hk * emb[tk + 1]).sum(-1) - (hk * emb[neg]).sum(-1)
        return -F.logsigmoid(diff).mean(), h

    def _loss(self, rows: torch.Tensor) -> torch.Tensor:
        return self._next_item_loss(rows[:, :-1], rows[:, 1:])[0]
