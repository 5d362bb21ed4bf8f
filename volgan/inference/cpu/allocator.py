"""Keep freed host memory for reuse instead of returning it to the OS (glibc only).

glibc serves large allocations (above a threshold that grows to 32 MB) with ``mmap`` and unmaps
them on free, so every large activation of a PyTorch forward pass on the CPU is a fresh mapping
whose pages fault in on first touch; with whole-volume windows that dominates a pass. Serving
every allocation from the heap and keeping freed memory avoids it. The cost: the process
keeps its peak heap size until it exits. ``VOLGAN_KEEP_FREED_MEMORY=0`` in the environment turns
this off.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, <malloc.h>
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap and never trim it (``mallopt``); True if in effect.

    Idempotent; a no-op (False) on other C libraries or when ``VOLGAN_KEEP_FREED_MEMORY=0``.
    """
    global _applied
    if _applied is None:
        _applied = False
        if os.environ.get("VOLGAN_KEEP_FREED_MEMORY", "1") != "0" and platform.libc_ver()[0] == "glibc":
            try:
                mallopt = ctypes.CDLL(None).mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
            # the trim threshold is a size_t in glibc: -1 is "never trim"
            _applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, -1))
            logger.info("host allocator: large allocations kept for reuse (%s)", "on" if _applied else "refused")
    return _applied
