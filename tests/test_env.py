"""Process settings: passive OpenMP waiting, and large blocks handed back to the OS after training steps."""

import os
import platform

import pytest


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_omp_wait_policy_is_passive_unless_set():
    import recfuse._env  # noqa: F401

    assert os.environ.get("OMP_WAIT_POLICY")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_large_blocks_leave_the_process():
    import torch

    from recfuse._env import return_large_blocks_to_os

    assert return_large_blocks_to_os() and return_large_blocks_to_os()  # applies, and again is harmless
    warm = torch.ones(6 << 20, dtype=torch.uint8)
    del warm  # by default, freeing this raises glibc's mmap threshold: later 6 MiB blocks would stay
    before = _rss_mib()
    blocks, pins = [], []  # 240 MiB in 6 MiB blocks, each followed by a small live allocation
    for _ in range(40):
        blocks.append(torch.ones(6 << 20, dtype=torch.uint8))
        pins.append(torch.ones(1024, dtype=torch.uint8))
    held = _rss_mib()
    del blocks
    after = _rss_mib()
    assert held - before > 200
    assert after - before < 40, (before, held, after)
