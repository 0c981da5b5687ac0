"""Helpers for the tests of runs interrupted and resumed (tests/llama4rec, tests/reclm)."""

from typing import Any

import pytest


def run_interrupted_before(method: Any, seed: int) -> None:
    """``method.run()`` stopped as Ctrl-C would stop it, just before it starts ``seed``."""
    run_seed = method.run_seed

    def interrupted(s: int) -> Any:
        if s == seed:
            raise KeyboardInterrupt
        return run_seed(s)

    method.run_seed = interrupted
    with pytest.raises(KeyboardInterrupt):
        method.run()


def run_recording_seeds(method: Any) -> tuple[Any, list[int]]:
    """``method.run()``'s report, and the seeds it actually ran (not read back from the run folder)."""
    ran: list[int] = []
    run_seed = method.run_seed
    method.run_seed = lambda seed: ran.append(seed) or run_seed(seed)
    return method.run(), ran
