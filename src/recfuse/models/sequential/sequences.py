"""Users' item sequences in time order, held once as a flat array with offsets (CSR layout).

Everything here is vectorised numpy: building the sequences, inserting items into them (Llama4Rec L4b),
cutting the left-padded inputs of the encoder and the training windows. Item ids in the padded arrays are
shifted by one: ``0`` is padding, ``n_items + 1`` the mask token of BERT4Rec and CL4SRec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recfuse.data.dataset import Interactions
from recfuse.data.sequences import time_order
from recfuse.errors import DataError

PAD = 0


@dataclass(frozen=True)
class Sequences:
    """Each user's items ordered by time: user ``u`` has ``items[indptr[u]:indptr[u + 1]]`` (internal ids)."""

    items: np.ndarray
    indptr: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def __len__(self) -> int:
        return len(self.items)

    def of(self, user: int) -> np.ndarray:
        """The item sequence of one user, oldest first."""
        return self.items[self.indptr[user]:self.indptr[user + 1]]

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def empty(cls, n_users: int) -> Sequences:
        return cls(np.zeros(0, np.int64), np.zeros(n_users + 1, np.int64))

    @classmethod
    def from_interactions(cls, inter: Interactions, n_users: int,
                          insertions: np.ndarray | None = None, n_items: int | None = None) -> Sequences:
        """Sequences of ``inter`` by user, then timestamp (ties and missing timestamps keep array order).

        ``insertions`` (n, 3) rows of ``(user, position, item)`` put ``item`` before the element at
        ``position`` of the user's sequence (``position == len`` appends); positions refer to the sequence
        before any insertion, and insertions at the same position keep their row order.
        """
        order = time_order(inter)
        users, items = inter.user[order], inter.item[order]
        base = cls(items, _indptr(users, n_users))
        if insertions is None or len(insertions) == 0:
            return base
        return base.insert(insertions, n_items)

    def insert(self, insertions: np.ndarray, n_items: int | None = None) -> Sequences:
        """A new :class:`Sequences` with ``(user, position, item)`` rows inserted (see :meth:`from_interactions`)."""
        ins = np.asarray(insertions)
        if ins.ndim != 2 or ins.shape[1] != 3:
            raise DataError(f"insertions must be an (n, 3) array of (user, position, item), got shape {ins.shape}",
                            field="insertions")
        ins = ins.astype(np.int64)
        u, pos, it = ins[:, 0], ins[:, 1], ins[:, 2]
        bad_u = (u < 0) | (u >= self.n_users)
        if bad_u.any():
            raise DataError(f"insertion row {int(np.flatnonzero(bad_u)[0])}: user {int(u[bad_u][0])} out of range "
                            f"[0, {self.n_users})", field="insertions")
        bad_i = (it < 0) | ((it >= n_items) if n_items is not None else False)
        if np.any(bad_i):
            row = int(np.flatnonzero(bad_i)[0])
            raise DataError(f"insertion row {row}: item {int(it[row])} out of range [0, {n_items})", field="insertions")
        bad_p = (pos < 0) | (pos > self.lengths[u])
        if bad_p.any():
            row = int(np.flatnonzero(bad_p)[0])
            raise DataError(f"insertion row {row}: position {int(pos[row])} outside [0, {int(self.lengths[u[row]])}] "
                            f"for user {int(u[row])}", field="insertions")
        n = len(self.items)
        own_user = np.repeat(np.arange(self.n_users), self.lengths)
        own_pos = np.arange(n) - self.indptr[own_user]
        # sort key: user, position, inserted (0) before original (1), row order
        all_user = np.concatenate([own_user, u])
        all_pos = np.concatenate([own_pos, pos])
        kind = np.concatenate([np.ones(n, np.int8), np.zeros(len(ins), np.int8)])
        tie = np.concatenate([np.zeros(n, np.int64), np.arange(len(ins))])
        order = np.lexsort((tie, kind, all_pos, all_user))
        items = np.concatenate([self.items, it])[order]
        return Sequences(items, _indptr(all_user[order], self.n_users))

    def append(self, other: Sequences) -> Sequences:
        """Per user, this sequence followed by ``other``'s (e.g. train then the validation item)."""
        if other.n_users != self.n_users:
            raise ValueError(f"cannot append sequences of {other.n_users} users to {self.n_users}")
        users = np.concatenate([np.repeat(np.arange(self.n_users), self.lengths),
                                np.repeat(np.arange(other.n_users), other.lengths)])
        order = np.argsort(users, kind="stable")
        items = np.concatenate([self.items, other.items])[order]
        return Sequences(items, _indptr(users[order], self.n_users))

    # -- tensors for the encoder ------------------------------------------------------------------
    def padded(self, max_len: int, users: np.ndarray | None = None) -> np.ndarray:
        """(len(users), max_len) left-padded last ``max_len`` items, ids shifted by one (0 = padding)."""
        users = np.arange(self.n_users) if users is None else np.asarray(users, np.int64)
        ends = self.indptr[users + 1]
        return self._gather(ends, self.indptr[users], max_len)

    def windows(self, width: int, stride: int | None = None, min_len: int = 2) -> np.ndarray:
        """Training windows: (rows, width) left-padded slices covering every sequence, ids shifted by one.

        Each user's windows end at ``len``, ``len - stride``, ... so that with ``stride = width - 1``
        every item but the first is a next-item target exactly once. Users shorter than ``min_len`` are
        skipped.
        """
        stride = width - 1 if stride is None else stride
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        lengths = self.lengths
        n_win = np.where(lengths >= min_len, -(-np.maximum(lengths - 1, 0) // stride), 0)
        n_win = np.where((lengths >= min_len) & (n_win == 0), 1, n_win)
        users = np.repeat(np.arange(self.n_users), n_win)
        k = np.arange(len(users)) - np.repeat(np.cumsum(n_win) - n_win, n_win)
        ends = self.indptr[users + 1] - k * stride
        return self._gather(ends, self.indptr[users], width)

    def _gather(self, ends: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
        idx = ends[:, None] - width + np.arange(width)[None, :]
        real = idx >= starts[:, None]
        if len(self.items) == 0:
            return np.zeros(idx.shape, np.int64)
        return np.where(real, self.items[np.clip(idx, 0, len(self.items) - 1)] + 1, PAD).astype(np.int64)


def _indptr(sorted_users: np.ndarray, n_users: int) -> np.ndarray:
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(sorted_users, minlength=n_users), out=indptr[1:])
    return indptr
