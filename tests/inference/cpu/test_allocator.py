from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")

# allocate and free a 256 MB buffer; report resident memory (kB) before the free and after
PROBE = """
import sys
from volgan.inference.cpu.allocator import keep_freed_memory
def rss_kb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
applied = keep_freed_memory()
buf = bytearray(256 * 2**20)
held = rss_kb()
del buf
print(applied, keep_freed_memory(), held, rss_kb())
"""


def probe(env_value: str | None) -> tuple[bool, bool, int, int]:
    env = {k: v for k, v in os.environ.items() if k != "VOLGAN_KEEP_FREED_MEMORY"}
    if env_value is not None:
        env["VOLGAN_KEEP_FREED_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, encoding="utf-8", errors="replace", env=env, check=True).stdout.split()
    return out[0] == "True", out[1] == "True", int(out[2]), int(out[3])


def test_freed_memory_is_kept_for_reuse():
    applied, again, held, after = probe(None)
    assert applied and again
    assert after > held - 64 * 1024  # the 256 MB stay mapped (reused by the next large tensor)


def test_environment_turns_it_off():
    applied, _, held, after = probe("0")
    assert not applied
    assert after < held - 192 * 1024  # glibc's default: a large block is unmapped on free
