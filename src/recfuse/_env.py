"""Process-wide settings that must be in place before torch is imported.

With OpenMP's default busy-wait policy, torch on a small shared machine spins and runs up to
10x slower. Passive waiting costs nothing on large machines, so it is the default here; a user
who sets the variable themselves keeps their value.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
