"""What this machine's processor can do, for choosing precisions."""

from __future__ import annotations

import os
import re
from pathlib import Path

# VOLGAN_CPU_BF16=0 makes volgan treat the CPU as one without native bf16 (fast mode and training
# in fp32, as on AVX2-only CPUs): to compare, or to run the suite's fallback paths on any CPU.
BF16_SWITCH = "VOLGAN_CPU_BF16"


def cpu_has_fast_bf16() -> bool:
    """True if this CPU has native bf16 dot products (AVX-512 BF16 or AMX); otherwise bf16 is emulated and slow.

    ``$VOLGAN_CPU_BF16=0`` answers False on any CPU; unset or ``1``, the CPU's flags decide (bf16 is
    never claimed for a CPU without it); any other value raises ValueError.
    """
    switch = os.environ.get(BF16_SWITCH, "").strip()
    if switch == "0":
        return False
    if switch not in ("", "1"):
        raise ValueError(f"${BF16_SWITCH} must be 0 (treat this CPU as one without native bf16), 1 or unset, got {switch!r}")
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))
