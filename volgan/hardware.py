"""What this machine's processor can do, for choosing precisions."""

from __future__ import annotations

import re
from pathlib import Path


def cpu_has_fast_bf16() -> bool:
    """True if this CPU has native bf16 dot products (AVX-512 BF16 or AMX); otherwise bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))
