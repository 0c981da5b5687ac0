"""Sparse graph propagation checked against dense formulas on a tiny graph."""

from __future__ import annotations

import numpy as np
import torch

from recfuse.models.graph import drop_edges, normalized_adjacency, propagate


def _dense_norm(users, items, n_users, n_items):
    a = np.zeros((n_users + n_items,) * 2)
    for u, i in zip(users, items):
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    deg = a.sum(1)
    d = np.zeros_like(deg)
    d[deg > 0] = deg[deg > 0] ** -0.5
    return d[:, None] * a * d[None, :]


def test_normalized_adjacency_matches_dense():
    users, items = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 0, 2, 2])  # one duplicate edge
    adj = normalized_adjacency(users, items, 4, 3)  # user 3 has no edges
    assert adj.layout == torch.sparse_csr
    np.testing.assert_allclose(adj.to_dense().numpy(), _dense_norm(users, items, 4, 3), atol=1e-6)
    assert adj.to_dense()[3].abs().sum() == 0


def test_propagation_and_gradient_match_dense():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 6, 20), rng.integers(0, 5, 20)
    adj = normalized_adjacency(users, items, 6, 5)
    dense = torch.tensor(_dense_norm(users, items, 6, 5), dtype=torch.float32)
    x = torch.randn(11, 4, requires_grad=True)
    layers = propagate(adj, x, 3)
    out = torch.stack(layers).mean(0)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    ref = torch.stack([x2, dense @ x2, dense @ dense @ x2, dense @ dense @ dense @ x2]).mean(0)
    (ref * w).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), atol=1e-5)


def test_noise_has_the_requested_norm():
    adj = normalized_adjacency(np.array([0, 1]), np.array([1, 0]), 2, 2)
    x = torch.randn(4, 8)
    clean = propagate(adj, x, 1)[1]
    noisy = propagate(adj, x, 1, noise_eps=0.1)[1]
    np.testing.assert_allclose((noisy - clean).norm(dim=1).numpy(), 0.1, rtol=1e-4)


def test_drop_edges_keeps_about_the_right_share():
    rng = np.random.default_rng(0)
    u, i = np.arange(10_000), np.arange(10_000)
    du, di = drop_edges(u, i, 0.2, rng)
    assert abs(len(du) / 10_000 - 0.8) < 0.02
    np.testing.assert_array_equal(du, di)
