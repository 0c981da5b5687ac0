"""CL4SRec (Xie et al., 2022): SASRec plus a contrastive loss between two augmented views of each sequence.

The augmentations (crop, mask, reorder) are vectorised over the batch: every row draws its own operator
and its own random crop / mask / segment, with no Python loop over sequences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recfuse.errors import ConfigError
from recfuse.models.base import register
from recfuse.models.sequential.base import keep_segment, random_prefix
from recfuse.models.sequential.encoder import SequenceEncoder
from recfuse.models.sequential.sasrec import SASRec


def crop(seq: torch.Tensor, eta: float) -> torch.Tensor:
    """Keep a random contiguous ``max(1, floor(eta * n))`` items of each left-padded row (n real items)."""
    n = (seq > 0).sum(1)
    c = torch.clamp((eta * n).floor().long(), min=1)
    start = (torch.rand(seq.shape[0], device=seq.device) * (n - c + 1)).floor().long()
    return keep_segment(seq, start, c)


def mask(seq: torch.Tensor, gamma: float, mask_id: int) -> torch.Tensor:
    """Replace each real item by the mask token with probability ``gamma``."""
    hit = (torch.rand(seq.shape, device=seq.device) < gamma) & (seq > 0)
    return torch.where(hit, torch.full_like(seq, mask_id), seq)


def reorder(seq: torch.Tensor, beta: float) -> torch.Tensor:
    """Shuffle a random contiguous segment of ``floor(beta * n)`` real items of each row."""
    b, length = seq.shape
    n = (seq > 0).sum(1)
    r = (beta * n).floor().long()
    start = length - n + (torch.rand(b, device=seq.device) * (n - r + 1)).floor().long()
    j = torch.arange(length, device=seq.device)[None, :].expand(b, length)
    inside = (j >= start[:, None]) & (j < (start + r)[:, None])
    key = torch.where(inside, start[:, None] + torch.rand(b, length, device=seq.device) * r[:, None], j.float())
    return seq.gather(1, key.argsort(dim=1))


def augment(seq: torch.Tensor, eta: float, gamma: float, beta: float, mask_id: int) -> torch.Tensor:
    """One random view per row: crop, mask or reorder, chosen uniformly per row."""
    op = torch.randint(0, 3, (seq.shape[0], 1), device=seq.device)
    return torch.where(op == 0, crop(seq, eta), torch.where(op == 1, mask(seq, gamma, mask_id), reorder(seq, beta)))


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float, similarity: str = "dot") -> torch.Tensor:
    """NT-Xent: each view's positive is the other view of the same row, negatives all other 2B - 2 views;
    ``similarity`` "dot" (the paper's) or "cos" (dot of unit vectors: the loss cannot be lowered by norms alone)."""
    z = torch.cat([z1, z2])
    if similarity == "cos":
        z = F.normalize(z, dim=-1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = len(z1)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, target)


@register("cl4srec")
class CL4SRec(SASRec):
    """CL4SRec: SASRec's next-item loss + ``cl_weight`` x contrastive loss between two augmented views
    (crop ``eta``, mask ``gamma``, reorder ``beta``) of each training sequence, on the sequence encoding
    at the last position, with ``temperature`` and ``similarity`` ("dot" as in the paper, or "cos").

    ``projection="mlp"`` compares the views through a small head (linear, ReLU, linear; SimCLR's projection)
    instead of the encoding itself, so the views' invariance is asked of the head's output, not of the vector
    that scores the next item; the paper's ``"none"`` is the default.

    ``keep_last=True`` (default) leaves each view's most recent item in place (crop, mask and reorder act on the
    items before it), so the views do not teach the encoder to discount the most recent item, which tells the most
    about the next one (benchmarks/results/sequential_last_item.md); ``False`` augments the whole sequence, as in
    the paper.

    ``cl_views="window"`` (default) augments each training window (the user's last ``max_len`` items, or an
    older slice of a long history); ``"prefix"`` first cuts each window after a random item (at least two kept),
    so the views are of histories of every length, as in implementations that train on every prefix of every
    sequence (RecBole's).
    """

    # keep_last, cl_weight 0.002, temperature 0.5: the best mean ML-100K validation NDCG@10 over 3 seeds (0.1257,
    # above SASRec's 0.1202; without keep_last 0.1195, the earlier default 0.05 0.1128; one-seed probes of 0.005-0.2,
    # cosine, a projection head and prefix views all lower). The dot-product contrastive gradient is ~300-700x the
    # next-item one on the encoder, so only small weights leave the next-item loss in charge:
    # benchmarks/results/sequential_cl4srec_probes/ (summary.md, loss_balance.md)
    cl_weight: float
    temperature: float
    eta: float
    gamma: float
    beta: float
    similarity: str
    projection: str
    cl_views: str
    keep_last: bool

    def __init__(self, cl_weight: float = 0.002, temperature: float = 0.5, eta: float = 0.6, gamma: float = 0.3,
                 beta: float = 0.6, similarity: str = "dot", projection: str = "none", cl_views: str = "window",
                 keep_last: bool = True, **kwargs):
        if cl_weight < 0 or temperature <= 0 or not all(0 <= x <= 1 for x in (eta, gamma, beta)):
            raise ConfigError("cl_weight >= 0, temperature > 0 and eta, gamma, beta in [0, 1] are required")
        if similarity not in ("dot", "cos"):
            raise ConfigError(f"similarity must be 'dot' or 'cos', not {similarity!r}")
        if projection not in ("none", "mlp"):
            raise ConfigError(f"projection must be 'none' or 'mlp', not {projection!r}")
        if cl_views not in ("window", "prefix"):
            raise ConfigError(f"cl_views must be 'window' or 'prefix', not {cl_views!r}")
        super().__init__(cl_weight=cl_weight, temperature=temperature, eta=eta, gamma=gamma, beta=beta,
                         similarity=similarity, projection=projection, cl_views=cl_views, keep_last=keep_last,
                         **kwargs)

    def _build_encoder(self) -> SequenceEncoder:
        encoder = super()._build_encoder()
        if self.projection == "mlp":  # part of the encoder: trained, saved and restored with it
            h = self.hidden_size
            encoder.cl_head = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h)).to(self.device)
            encoder.cl_head.apply(SequenceEncoder._init)
        return encoder

    def _view(self, seq: torch.Tensor) -> torch.Tensor:
        """One augmented view per row; with ``keep_last``, of the items before the last (the last column:
        windows are left-padded), the last appended unchanged."""
        mask_id = self.net.mask_id
        if not self.keep_last:
            return augment(seq, self.eta, self.gamma, self.beta, mask_id)
        return torch.cat([augment(seq[:, :-1], self.eta, self.gamma, self.beta, mask_id), seq[:, -1:]], 1)

    def _loss(self, rows: torch.Tensor) -> torch.Tensor:
        inp = rows[:, :-1]
        rec, _ = self._next_item_loss(inp, rows[:, 1:])
        if self.cl_weight == 0:
            return rec
        source = random_prefix(inp) if self.cl_views == "prefix" else inp  # both views of the same prefix
        z = self.net(torch.cat([self._view(source), self._view(source)]))[:, -1]
        if self.projection == "mlp":
            z = self.net.get_submodule("cl_head")(z)
        z1, z2 = z.chunk(2)
        cl = info_nce(z1, z2, self.temperature, self.similarity)
        self._record("next_item", rec)
        self._record("contrastive", cl)
        return rec + self.cl_weight * cl
