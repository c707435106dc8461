"""timelayers.allocator: after ``import timelayers`` an array made and freed again
and again reuses its memory (no new page faults), unless the environment sets
glibc's allocator itself."""

import os
import subprocess
import sys

import pytest

from timelayers import allocator

pytestmark = pytest.mark.skipif(allocator._glibc() is None, reason="the C library is not glibc")

# page faults of 20 rounds of a 4 MiB array made, written and freed (after a first one)
FAULTS = """
import resource, sys
import timelayers, numpy as np
np.ones(1 << 20, np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = np.ones(1 << 20, np.float32)
    del a
print(timelayers.allocator.KEEPS_FREED_MEMORY,
      resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(**env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True,
                         check=True, env={**clean, **env}).stdout.split()
    return out[0] == "True", int(out[1])


def test_freed_arrays_are_reused_unless_the_environment_sets_the_allocator():
    kept, n = faults()
    assert kept and n < 100                      # 20 x 1,024 pages would be 20,480
    for env in ({"MALLOC_MMAP_THRESHOLD_": "131072"},
                {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}):
        kept, n = faults(**env)
        assert not kept and n > 20 * 200         # every round maps and faults its pages again
