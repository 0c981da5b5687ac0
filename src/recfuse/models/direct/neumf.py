"""NeuMF (He et al., WWW 2017): generalised MF and an MLP over (user, item) embeddings, fused.

Each id has one layer-0 vector of width ``2 * embedding_dim``: the first half feeds GMF, the second
the MLP. Trained pointwise with binary cross-entropy on positives and sampled negatives (``loss="bce"``,
as in the paper and RecBole), or pairwise with BPR (``loss="bpr"``, which also uses extra triples as pairs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recfuse.data.splits import Split
from recfuse.errors import ConfigError
from recfuse.models.base import register
from recfuse.models.training import Backbone, TorchRecommender, bpr_loss, l2_reg
from recfuse.models.towers import Tower


def _drop_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """Bernoulli(p) drop mask from 16-bit lanes of 64-bit random words (p in steps of 2**-16).

    ``torch.bernoulli_`` on the CPU draws one random number per element and took a third of NeuMF's
    training step; one draw here serves four elements. ``random_()`` gives 63 random bits: the three
    low 16-bit lanes are uniform over int16, the top one over [0, 2**15).
    """
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_()
    lanes = words.view(torch.int16).view(-1, 4)
    cut = torch.tensor([round(p * 65536) - 32768] * 3 + [round(p * 32768)], dtype=torch.int16)
    return (lanes < cut).view(-1)[:n].view(shape)


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on the CPU (same expectation, keep probability in steps of
    2**-16); elsewhere it is ``nn.Dropout``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        if self.p >= 1:
            return x * 0
        # a product with the scaled keep mask: its backward is one more product (masked_fill's costs ~2x)
        keep = (~_drop_mask(x.shape, self.p)).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * keep


class NeuMFBackbone(Backbone):
    """score(u, i) = w_g . (u_g * i_g) + w_m . MLP(W_u u_m + W_i i_m + b_1) + b.

    The first MLP layer acts on [u_m; i_m]; it is held as its user half ``first_user`` (with the bias)
    and its item half ``first_item``, so that each user's and each item's projection is computed once
    and broadcast-added over pairs, in training (over the batch's users and its unique items) and in
    all-pairs scoring (chunks of users, at most ``max_pairs`` pairs at a time, so memory stays bounded).
    """

    def __init__(self, users: Tower, items: Tower, dim: int, hidden: list[int], dropout: float = 0.1,
                 reg_weight: float = 0.0, loss: str = "bce", max_pairs: int = 1 << 12):
        super().__init__(users, items, reg_weight)
        if loss not in ("bce", "bpr"):
            raise ConfigError(f"NeuMF loss must be 'bce' or 'bpr', not {loss!r}")
        self.dim, self.loss_kind, self.max_pairs = dim, loss, max_pairs
        self.first_user = nn.Linear(dim, hidden[0])
        self.first_item = nn.Linear(dim, hidden[0], bias=False)
        rest: list[nn.Module] = []
        d = hidden[0]
        for h in hidden[1:]:
            rest += [nn.ReLU(), FastDropout(dropout), nn.Linear(d, h)]
            d = h
        self.mlp_rest = nn.Sequential(*rest, nn.ReLU(), FastDropout(dropout))
        self.predict = nn.Linear(dim + d, 1)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _heads(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The prediction layer split into its GMF weights, its MLP weights and its bias."""
        w = self.predict.weight[0]
        return w[:self.dim], w[self.dim:], self.predict.bias[0]

    def _halves(self, rep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return rep[..., :self.dim], rep[..., self.dim:]

    def triple_scores(self, user_rep: torch.Tensor, item_rep: torch.Tensor) -> torch.Tensor:
        """user_rep (B, 2d) with item_rep (B, 2d) or (B, K, 2d) -> (B,) or (B, K)."""
        w_g, w_m, b = self._heads()
        (ug, um), (ig, im) = self._halves(user_rep), self._halves(item_rep)
        hu, wu = self.first_user(um), ug * w_g
        if item_rep.dim() == 3:
            hu, wu = hu.unsqueeze(1), wu.unsqueeze(1)
        return (wu * ig).sum(-1) + self.mlp_rest(hu + self.first_item(im)) @ w_m + b

    def pair_scores(self, user_rep: torch.Tensor, item_rep: torch.Tensor) -> torch.Tensor:
        """All (user, item) pairs, chunked over users; in eval mode the MLP runs in place on each chunk."""
        w_g, w_m, b = self._heads()
        (ug, um), (ig, im) = self._halves(user_rep), self._halves(item_rep)
        hu, hi = self.first_user(um), self.first_item(im)  # (U, h0), (I, h0): once per user and item
        out = torch.addmm(b.expand(1, 1), ug * w_g, ig.T)  # GMF part, (U, I)
        n_items = len(item_rep)
        if n_items == 0 or len(user_rep) == 0:
            return out
        step = max(1, self.max_pairs // n_items)
        fast = not (self.training and torch.is_grad_enabled())
        for s in range(0, len(user_rep), step):
            h = hu[s:s + step, None, :] + hi[None]  # (c, I, h0)
            if fast:
                z = self._mlp_inplace(h.view(-1, h.shape[-1]))
            else:
                z = self.mlp_rest(h).view(-1, len(w_m))
            out[s:s + step] += (z @ w_m).view(-1, n_items)
        return out

    def _mlp_inplace(self, h: torch.Tensor) -> torch.Tensor:
        """``mlp_rest`` without dropout on a fresh (n, h0) tensor, activations computed in place."""
        for m in self.mlp_rest:
            if isinstance(m, nn.ReLU):
                h = h.relu_()
            elif isinstance(m, nn.Linear):
                h = torch.addmm(m.bias, h, m.weight.T)
            elif not isinstance(m, nn.Dropout):
                h = m(h)
        return h

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Scores of each user's positive and ``K`` negatives; the first layer's item half and the
        item embeddings are computed once per unique item of the batch."""
        w_g, w_m, b = self._heads()
        n_neg = neg.shape[1]
        cand = torch.cat([pos.unsqueeze(1), neg], 1)  # (B, 1 + K)
        uniq, inv = torch.unique(cand, return_inverse=True)
        u, it = self.users(users), self.items(uniq)
        (ug, um), (ig, im) = self._halves(u), self._halves(it)
        h = self.first_user(um).unsqueeze(1) + F.embedding(inv, self.first_item(im))  # (B, 1 + K, h0)
        gmf = (F.embedding(inv, ig) * (ug * w_g).unsqueeze(1)).sum(-1)  # (B, 1 + K)
        scores = gmf + self.mlp_rest(h) @ w_m + b
        s_pos, s_neg = scores[:, 0], scores[:, 1:]
        if self.loss_kind == "bce":  # binary cross-entropy: positives 1, negatives 0, halves averaged
            loss = 0.5 * F.softplus(-s_pos).mean() + 0.5 * F.softplus(s_neg).mean()
        else:
            loss = bpr_loss(s_pos.unsqueeze(-1), s_neg)
        parts = {self.loss_kind: loss.detach()}
        if self.reg_weight > 0:
            p, q = F.embedding(inv[:, 0], it), F.embedding(inv[:, 1], it) if n_neg else None
            reg = self.reg_weight * (l2_reg(u, p, q) if q is not None else l2_reg(u, p))
            loss = loss + reg
            parts["reg"] = reg.detach()
        return loss, parts


@register("neumf")
class NeuMF(TorchRecommender):
    """NeuMF: GMF and MLP branches (``mlp_hidden``), ``dropout``, ``loss`` bce or bpr. Also ``ncf``."""

    # init_std 0.01 (RecBole's and the paper's N(0, 0.01)): validation NDCG@10 0.0665 vs 0.0634 with 0.1
    defaults = dict(reg_weight=0.0, mlp_hidden=[128, 64], dropout=0.1, loss="bce", n_negatives=4, init_std=0.01)
    mlp_hidden: list[int]
    dropout: float
    loss: str

    def tower_dim(self) -> int:
        return 2 * self.embedding_dim

    def build_backbone(self, users: Tower, items: Tower, split: Split | None) -> Backbone:
        return NeuMFBackbone(users, items, self.embedding_dim, list(self.mlp_hidden), self.dropout,
                             self.reg_weight, self.loss)


@register("ncf")
class NCF(NeuMF):
    """Alias of :class:`NeuMF`."""
