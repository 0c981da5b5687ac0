"""Per-user time order of interactions: the one implementation every part of recfuse sorts by.

Interactions are ordered by user, then timestamp; ties in time (and data without timestamps) keep the
order of the file. Splits, sequential models and prompt histories all use it, so "the user's last item"
means the same thing everywhere.
"""

from __future__ import annotations

import numpy as np

from recfuse.data.dataset import Interactions


def time_order(inter: Interactions) -> np.ndarray:
    """Positions of ``inter`` sorted by user, then timestamp (ties and missing timestamps: file order)."""
    n = len(inter)
    ts = np.zeros(n) if inter.timestamp is None else inter.timestamp
    return np.lexsort((np.arange(n), ts, inter.user))


def user_sequences(inter: Interactions, n_users: int) -> list[np.ndarray]:
    """Each user's interaction positions in ``inter`` ordered by time (oldest first; ties keep file order)."""
    order = time_order(inter)
    bounds = np.searchsorted(inter.user[order], np.arange(n_users + 1))
    return [order[bounds[u]:bounds[u + 1]] for u in range(n_users)]


def user_histories(inter: Interactions, n_users: int) -> list[np.ndarray]:
    """Each user's items in ``inter``, oldest first."""
    return [inter.item[pos] for pos in user_sequences(inter, n_users)]
