"""Hyper-parameters that mean one thing in every model, checked once where a model is built.

:class:`~recfuse.models.base.Recommender` checks the values of these names in every model's ``params``
(a user's model included), so that ``--param epochs=0``, ``lr=-1``, ``batch_size=0``, ``device=cuda:7`` on
a machine without that GPU, or an unknown ``valid_metric`` end in one :class:`~recfuse.errors.ConfigError`
naming the parameter before any training, never in a traceback from inside torch, nor in the metrics of an
untrained model. A model with further constraints checks them itself.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from recfuse.errors import ConfigError
from recfuse.eval.metrics import check_metric_name

#: whole numbers of at least 1
POSITIVE_INTS = ("epochs", "batch_size", "eval_batch_size", "embedding_dim", "hidden_size", "eval_every",
                 "n_negatives", "n_heads", "max_len")
#: whole numbers of at least 0
NON_NEGATIVE_INTS = ("patience", "seed", "n_layers")
#: finite numbers above 0
POSITIVE_FLOATS = ("lr", "temperature")
#: finite numbers of at least 0
NON_NEGATIVE_FLOATS = ("weight_decay", "reg_weight", "init_std")
#: shares: at least 0, below 1
SHARES = ("dropout", "attn_dropout")
#: names whose ``None`` means "as another parameter" (attn_dropout: as dropout)
NONE_MEANS_DEFAULT = ("attn_dropout",)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_hyper_parameters(model: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`~recfuse.errors.ConfigError`, naming ``model`` and the parameter, for any value of a
    common hyper-parameter (the names above, ``device``, ``valid_metric``) outside its range."""
    def bad(name: str, need: str) -> ConfigError:
        return ConfigError(f"{model}: hyper-parameter {name}={params[name]!r}: {need}")

    for name, value in params.items():
        if value is None and name in NONE_MEANS_DEFAULT:
            continue
        if name in POSITIVE_INTS and not (_is_int(value) and value >= 1):
            raise bad(name, "must be a whole number of at least 1")
        if name in NON_NEGATIVE_INTS and not (_is_int(value) and value >= 0):
            raise bad(name, "must be a whole number of at least 0")
        if name in POSITIVE_FLOATS and not (_is_number(value) and math.isfinite(value) and value > 0):
            raise bad(name, "must be a finite number above 0")
        if name in NON_NEGATIVE_FLOATS and not (_is_number(value) and math.isfinite(value) and value >= 0):
            raise bad(name, "must be a finite number of at least 0")
        if name in SHARES and not (_is_number(value) and 0 <= value < 1):
            raise bad(name, "must be a number from 0 up to (not including) 1")
    if params.get("valid_metric") is not None:
        try:
            check_metric_name(params["valid_metric"])
        except ConfigError as e:
            raise ConfigError(f"{model}: hyper-parameter valid_metric: {e}") from None
    if params.get("device") is not None:
        try:
            check_device(params["device"])
        except ConfigError as e:
            raise ConfigError(f"{model}: hyper-parameter device: {e}") from None


def check_device(device: Any) -> None:
    """Raise :class:`~recfuse.errors.ConfigError` unless ``device`` is ``auto``, ``cpu`` or a device this
    machine has (``cuda``, ``cuda:N`` with N below the GPU count, ``mps``)."""
    if device in ("auto", "cpu"):
        return
    import torch  # torch is heavy: imported only for a device other than auto / cpu

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ConfigError(f"{device!r} is not a device (auto, cpu, cuda, cuda:N, mps): {e}") from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{device!r} is not available: this machine has no CUDA GPU that torch can use "
                              "(use auto or cpu)")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"{device!r} is not available: this machine has {count} CUDA GPU(s), "
                              f"cuda:0 to cuda:{count - 1}")
        return
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{device!r} is not available on this machine (use auto or cpu)")
        return
    raise ConfigError(f"{device!r}: recfuse trains on auto, cpu, cuda[:N] or mps")
