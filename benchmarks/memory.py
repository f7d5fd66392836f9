"""glibc malloc settings for the CPU benchmarks.

glibc returns freed buffers above its mmap threshold (at most 32 MB) straight to the OS, so every
new activation of that size is mapped afresh and page-faults on first touch; on the VMs measured
here that costs ~20 ms for a 51 MB tensor (ResNet-50 stage 1 at batch 2 x 8), more than the work
done on it. `keep_freed_memory()` makes malloc keep freed memory for reuse, as a caching allocator
would; the same is available without code through the environment variables
MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824.
"""
from __future__ import annotations

import ctypes

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap and never trim it; False where glibc is not there."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # (mallopt takes a C int: the trim threshold is 1 GiB, more than these benchmarks free at once)
    return bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_MMAP_MAX, 0))


def malloc_setting(kept: bool) -> str:
    """How a benchmark's table was measured, for its caption."""
    return "freed memory kept by malloc" if kept else "default malloc (large buffers page-fault afresh)"
