"""Small helpers shared by the torch backbones: device, seeds, early stopping, progress bars."""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm


def resolve_device(device: str | None = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def set_seed(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def deterministic_kernels() -> Iterator[None]:
    """Deterministic torch kernels inside the block, the previous setting restored after it.

    Multi-threaded CPU scatter-adds (the backward of an indexed gather such as ``emb[users]``) add in a
    varying order, so the same seed gave a different model run to run (text BiasMF on ML-100K, 2 threads:
    Recall@20 0.1226 and 0.1206; 0.1211 both times with these kernels, as with 1 thread). Ops without a
    deterministic kernel warn instead of failing."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def reproducible(train: Callable[P, R]) -> Callable[P, R]:
    """Decorate a training function (a ``fit`` method, SFT) so that on a machine without CUDA it runs with
    :func:`deterministic_kernels`: same seed, same model, at little cost on CPU. With CUDA, torch's faster
    kernels are kept (deterministic CUDA kernels also need ``CUBLAS_WORKSPACE_CONFIG``)."""
    @functools.wraps(train)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        if torch.cuda.is_available():
            return train(*args, **kwargs)
        with deterministic_kernels():
            return train(*args, **kwargs)
    return wrapped


def progress(iterable: Iterable[T], enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm progress bar that a flag turns off."""
    return tqdm(iterable, disable=not enabled, leave=False, dynamic_ncols=True, **kwargs)


@dataclass
class EarlyStopping:
    """Stop when the validation metric has not improved for ``patience`` evaluations.

    ``mode`` is ``max`` (NDCG, HR) or ``min`` (RMSE). Keeps a copy of the best state.
    """

    patience: int = 5
    mode: str = "max"
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = -1
    best_state: dict | None = None
    bad_rounds: int = 0
    history: list = field(default_factory=list)

    def step(self, value: float, epoch: int, state: dict | None = None) -> bool:
        """Record ``value``; returns True when training should stop."""
        self.history.append((epoch, float(value)))
        better = self.best is None or (value > self.best + self.min_delta if self.mode == "max"
                                       else value < self.best - self.min_delta)
        if better:
            self.best, self.best_epoch, self.bad_rounds = float(value), epoch, 0
            if state is not None:
                self.best_state = {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in state.items()}
        else:
            self.bad_rounds += 1
        return self.bad_rounds >= self.patience
