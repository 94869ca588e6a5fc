"""Keep freed memory for reuse instead of returning it to the kernel after every large buffer.

Why: glibc's malloc serves an allocation above its mmap threshold with fresh pages and trims the
heap's top once more than its trim threshold is free (both adapt, but to sizes seen once, and a
burst of large buffers keeps crossing them). Our processes move bodies, tunnel messages and
payload chunks of 64 KiB to 1 MiB: each such buffer, allocated and freed, came back as fresh
pages, and on our VMs a page fault costs about 4 µs — copying 1 MiB into fresh memory costs
~0.6 ms, into reused memory ~0.07 ms (three copies of a MiB, allocated and freed in a loop:
1.77 ms and 736 faults per round by default, 0.22 ms and none with the thresholds below).
100 MiB each way through a spliced tunnel (tests/tunnel, every party in one process) took ~10%
less time; through bench/debug_tunnel.py the gain is within the machine's noise.

The price is memory kept: up to :data:`TRIM_THRESHOLD` of free heap per malloc arena is not
returned to the kernel (it is reused by the next buffers). Every alien process that moves bulk
data calls :func:`keep_freed_memory` first thing: the manager, the agent, a function's runtime and
``alien debug``. glibc only, through ``mallopt`` (Python has no API for it); elsewhere, or when
the operator set malloc's thresholds in the environment, nothing changes.
"""

from __future__ import annotations

import os
import sys

MMAP_THRESHOLD = 8 * 1024 * 1024
"""Allocations below this come from the heap, not fresh mappings (glibc: 128 KiB, adaptive)."""
TRIM_THRESHOLD = 32 * 1024 * 1024
"""Free memory at the top of a heap kept for reuse (glibc: 128 KiB, adaptive)."""
_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
_OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; whether it did."""
    if not sys.platform.startswith("linux") or any(v in os.environ for v in _OPERATOR_SETTINGS):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):  # type: ignore[union-attr]
            return False
        import ctypes  # only here: a few milliseconds of import the CLI pays once

        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
