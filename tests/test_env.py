"""Process settings: passive OpenMP waiting, and large blocks handed back to the OS after training steps."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest


def test_omp_wait_policy_is_passive_unless_set():
    import recfuse._env  # noqa: F401

    assert os.environ.get("OMP_WAIT_POLICY")


# Run in a fresh interpreter: the malloc setting is process-wide, and a test process that has already freed
# hundreds of MiB of heap (a model converted or trained by an earlier test) serves the new blocks from those
# resident free chunks, so its RSS would not tell whether the setting works.
_PROBE = textwrap.dedent("""
    import torch

    from recfuse._env import return_large_blocks_to_os

    def rss_mib():
        import os
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    assert return_large_blocks_to_os() and return_large_blocks_to_os()  # applies, and again is harmless
    warm = torch.ones(6 << 20, dtype=torch.uint8)
    del warm  # by default, freeing this raises glibc's mmap threshold: later 6 MiB blocks would stay
    before = rss_mib()
    blocks, pins = [], []  # 240 MiB in 6 MiB blocks, each followed by a small live allocation
    for _ in range(40):
        blocks.append(torch.ones(6 << 20, dtype=torch.uint8))
        pins.append(torch.ones(1024, dtype=torch.uint8))
    held = rss_mib()
    del blocks
    after = rss_mib()
    print(before, held, after)
""")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_large_blocks_leave_the_process():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, held, after = map(float, out.stdout.split())
    assert held - before > 200
    assert after - before < 40, (before, held, after)
