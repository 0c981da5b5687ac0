"""Sparse user-item graphs for the graph backbones (LightGCN, MixGCF, SGL, SimGCL).

The bipartite graph of ``n_users + n_items`` nodes is held as a torch sparse CSR matrix with the
symmetric normalisation ``D^-1/2 A D^-1/2``; nothing of size users x items is ever dense, so data
with millions of interactions fit in memory. Propagation uses a custom autograd function that
exploits the symmetry of the matrix (the backward pass is one more sparse product, no transpose).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch


def normalized_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                         device: torch.device | str = "cpu") -> torch.Tensor:
    """``D^-1/2 A D^-1/2`` of the bipartite graph with edges (user, item) as a torch sparse CSR tensor.

    Duplicate edges collapse; nodes without edges get an all-zero row (and stay at zero after a layer).
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    r = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    r.data[:] = 1.0  # duplicates collapse to one edge
    n = n_users + n_items
    adj = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(deg)
    nz = deg > 0
    inv_sqrt[nz] = deg[nz] ** -0.5
    d = sp.diags(inv_sqrt.astype(np.float32))
    adj = (d @ adj @ d).tocsr().astype(np.float32)
    adj.sort_indices()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": it is what we want
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(torch.from_numpy(adj.indptr.astype(np.int64)),
                                       torch.from_numpy(adj.indices.astype(np.int64)),
                                       torch.from_numpy(adj.data), size=(n, n),
                                       check_invariants=False).to(device)


def drop_edges(users: np.ndarray, items: np.ndarray, ratio: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Keep each edge with probability ``1 - ratio`` (SGL's edge-dropout view)."""
    if not 0 <= ratio < 1:
        raise ValueError(f"edge drop ratio must be in [0, 1), got {ratio}")
    keep = rng.random(len(users)) >= ratio
    return users[keep], items[keep]


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ x`` for a symmetric sparse ``A``; the gradient w.r.t. ``x`` is ``A @ grad``."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, torch.sparse.mm(ctx.adj, grad)


def spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sparse (symmetric) matrix times dense matrix, differentiable in ``x``."""
    if x.requires_grad:
        return _SymmetricSpMM.apply(adj, x)
    return torch.sparse.mm(adj, x)


def propagate(adj: torch.Tensor, ego: torch.Tensor, n_layers: int,
              noise_eps: float = 0.0) -> list[torch.Tensor]:
    """Layer embeddings ``[e0, A e0, A^2 e0, ...]`` (``n_layers + 1`` tensors).

    ``noise_eps > 0`` adds SimGCL's uniform noise of norm ``eps`` in the direction of each layer's sign.
    """
    layers = [ego]
    x = ego
    for _ in range(n_layers):
        x = spmm(adj, x)
        if noise_eps > 0:
            noise = torch.nn.functional.normalize(torch.rand_like(x), dim=-1)
            x = x + torch.sign(x) * noise * noise_eps
        layers.append(x)
    return layers
