"""Small helpers shared by the torch backbones: device, seeds, early stopping, progress bars."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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


def progress(iterable: Iterable, enabled: bool = True, **kwargs: Any):
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
