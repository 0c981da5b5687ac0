"""Matrix factorisation trained with BPR (Rendle et al., 2009)."""

from __future__ import annotations

from recfuse.data.splits import Split
from recfuse.models.base import register
from recfuse.models.training import Backbone, TorchRecommender
from recfuse.models.towers import Tower


@register("mf")
class MF(TorchRecommender):
    """MF-BPR: score = <user, item>; layer-0 embeddings are the final ones.

    Also registered as ``bpr`` (RecBole's name).
    """

    defaults = dict(reg_weight=1e-4, n_negatives=8)

    def build_backbone(self, users: Tower, items: Tower, split: Split | None) -> Backbone:
        return Backbone(users, items, reg_weight=self.reg_weight)


@register("bpr")
class BPR(MF):
    """Alias of :class:`MF` under RecBole's name."""
