"""Non-learned baselines: global popularity and item-based k-nearest neighbours."""

from __future__ import annotations

from pathlib import Path
from typing import Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recfuse.data.splits import Split
from recfuse.io import load_npz, save_npz
from recfuse.models.base import Floats, Ids, Recommender, register


@register("pop")
class Popularity(Recommender):
    """Scores every item by its number of training interactions (the same list for every user)."""

    counts: npt.NDArray[np.float32]  # set by fit / load

    def __init__(self, seed: int = 0):
        super().__init__()

    def fit(self, split: Split, *, extra_triples: Ids | None = None, insertions: Ids | None = None,
            progress: bool = True) -> Self:
        """Count each item's training interactions (no augmentation applies)."""
        self.n_users, self.n_items = split.n_users, split.n_items
        self.counts = split.train.counts_per_item(self.n_items).astype(np.float32)
        return self

    def score(self, users: Ids, items: Ids | None = None) -> Floats:
        users, items = self._check_users(users), self._check_items(items)
        return np.broadcast_to(self.counts[items], (len(users), len(items))).copy()

    def save(self, path: str | Path) -> None:
        save_npz(Path(path), counts=self.counts, n_users=np.array(self.n_users))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        z = load_npz(path)
        m = cls()
        m.counts, m.n_users, m.n_items = z["counts"], int(z["n_users"]), len(z["counts"])
        return m


@register("itemknn")
class ItemKNN(Recommender):
    """Item-based collaborative filtering: cosine similarity of item columns, top ``k`` neighbours kept."""

    similarity: sp.csr_matrix  # set by fit / load
    train_matrix: sp.csr_matrix

    def __init__(self, k: int = 100, shrink: float = 10.0, seed: int = 0):
        super().__init__(k=k, shrink=shrink)
        self.k, self.shrink = k, shrink

    def fit(self, split: Split, *, extra_triples: Ids | None = None, insertions: Ids | None = None,
            progress: bool = True) -> Self:
        """Item-item cosine similarities of the training matrix (no augmentation applies)."""
        self.n_users, self.n_items = split.n_users, split.n_items
        x = split.train_matrix.tocsc()
        norms = np.sqrt(np.asarray(x.power(2).sum(axis=0))).ravel()
        sim = (x.T @ x).tocsr().astype(np.float32)
        sim.setdiag(0)
        sim.eliminate_zeros()
        denom = norms[sim.nonzero()[0]] * norms[sim.nonzero()[1]] + self.shrink + 1e-8
        sim.data = sim.data / denom.astype(np.float32)
        self.similarity = _keep_top_k_per_row(sim, self.k)
        self.train_matrix = split.train_matrix
        return self

    def score(self, users: Ids, items: Ids | None = None) -> Floats:
        users, items = self._check_users(users), self._check_items(items)
        scores = np.asarray((self.train_matrix[users] @ self.similarity).todense())
        return scores[:, items]

    def item_embeddings(self) -> Floats:
        raise NotImplementedError("ItemKNN has no item embeddings")

    def save(self, path: str | Path) -> None:
        s, t = self.similarity.tocsr(), self.train_matrix.tocsr()
        save_npz(Path(path), s_data=s.data, s_indices=s.indices, s_indptr=s.indptr, t_indices=t.indices,
                 t_indptr=t.indptr, shape=np.array([self.n_users, self.n_items]), k=np.array(self.k),
                 shrink=np.array(self.shrink))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        z = load_npz(path)
        m = cls(k=int(z["k"]), shrink=float(z["shrink"]))
        m.n_users, m.n_items = (int(v) for v in z["shape"])
        m.similarity = sp.csr_matrix((z["s_data"], z["s_indices"], z["s_indptr"]), shape=(m.n_items, m.n_items))
        m.train_matrix = sp.csr_matrix((np.ones(len(z["t_indices"]), np.float32), z["t_indices"], z["t_indptr"]),
                                       shape=(m.n_users, m.n_items))
        return m


def _keep_top_k_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    m = m.tocsr()
    rows, cols, vals = [], [], []
    for r in range(m.shape[0]):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        if hi - lo > k:
            keep = np.argpartition(-m.data[lo:hi], k - 1)[:k] + lo
        else:
            keep = np.arange(lo, hi)
        rows.append(np.full(len(keep), r))
        cols.append(m.indices[keep])
        vals.append(m.data[keep])
    if not rows:
        return m
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape)
