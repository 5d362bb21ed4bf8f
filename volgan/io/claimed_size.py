"""Check the voxel data a NIfTI header claims against what the file holds and what memory can take.

A header is 348 bytes that anyone can write: a 2 KB gzip file may claim a 2048^3 float32 volume
(32 GiB). Reading it blindly allocates the claim before finding the data missing. These checks
run on the header alone, before any voxel is read:

* an uncompressed file must be at least ``vox_offset + nbytes`` long;
* a gzip file cannot inflate to more than :data:`DEFLATE_MAX_RATIO` times its size (the limit of
  the deflate format), so a claim beyond that is refused outright;
* the memory a read needs (the on-disk array plus its float32 copy) must fit the memory budget:
  ``VOLGAN_MEMORY_BUDGET`` (bytes, or with a ``K``/``M``/``G``/``T`` suffix, or ``none``), by
  default half of the memory the kernel reports available;
* a gzip file whose trailer (its last member's size modulo 2^32) does not confirm the claim is
  inflated once, counting bytes without keeping them, and refused if it holds less.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

from volgan.io.errors import VolumeError

DEFLATE_MAX_RATIO = 1032  # deflate codes at most 258 bytes in 2 bits
BUDGET_ENV = "VOLGAN_MEMORY_BUDGET"
DEFAULT_BUDGET_FRACTION = 0.5
_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_CHUNK = 16 * 1024**2


def human_bytes(n: int) -> str:
    """``n`` bytes in binary units, e.g. ``"32.0 GiB"``."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def available_memory() -> int | None:
    """Bytes the kernel reports available (``MemAvailable``), or free pages, or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget() -> int | None:
    """The most bytes one volume's read may take: ``VOLGAN_MEMORY_BUDGET`` or half the available
    memory; None means no limit (``none`` in the variable, or memory that cannot be measured)."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if not text:
        available = available_memory()
        return None if available is None else int(available * DEFAULT_BUDGET_FRACTION)
    if text.lower() in ("none", "unlimited"):
        return None
    number, suffix = text.upper().rstrip("IB"), ""
    if number and number[-1] in _SUFFIXES:
        number, suffix = number[:-1], number[-1]
    try:
        value = float(number) * _SUFFIXES[suffix]
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{BUDGET_ENV}={text!r}: expected bytes, e.g. 8G, 512M or 1000000000, or 'none'")
    return int(value)


def _claim(shape: tuple[int, ...], dtype: np.dtype) -> str:
    return f"a {'x'.join(map(str, shape))} {dtype} volume"


def _inflated_size(path: str, limit: int) -> int:
    """Bytes the gzip file ``path`` inflates to, counting up to ``limit`` (all members)."""
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while total < limit:
                chunk = fh.read(min(_CHUNK, limit - total))
                if not chunk:
                    break
                total += len(chunk)
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError):
        pass  # truncated or corrupt: what came out before the damage is what it holds
    return total


def check_claimed_size(path: str, shape: tuple[int, ...], dtype: np.dtype, offset: int) -> None:
    """Raise :class:`VolumeError` if the file at ``path`` cannot hold the voxel data its header
    claims (``shape`` of on-disk ``dtype`` from byte ``offset``), or reading it would exceed the
    memory budget. Reads no voxel data except to confirm a gzip claim its trailer does not."""
    dtype = np.dtype(dtype)
    count = math.prod(int(s) for s in shape)
    nbytes = count * dtype.itemsize
    needed = int(offset) + nbytes
    size = os.path.getsize(path)
    claim = f"the header claims {_claim(shape, dtype)} ({nbytes} bytes, {human_bytes(nbytes)}, from byte {offset})"
    compressed = path.lower().endswith(".gz")
    if not compressed and size < needed:
        raise VolumeError(path, f"is truncated: {claim} but the file holds {size} bytes")
    if compressed and needed > size * DEFLATE_MAX_RATIO:
        raise VolumeError(
            path,
            f"is truncated or forged: {claim} but a gzip file of {size} bytes cannot hold more than "
            f"{human_bytes(size * DEFLATE_MAX_RATIO)}",
        )
    budget = memory_budget()
    in_memory = count * (dtype.itemsize + np.dtype(np.float32).itemsize)
    if budget is not None and in_memory > budget:
        source = f"{BUDGET_ENV}" if os.environ.get(BUDGET_ENV, "").strip() else "half of the available memory"
        raise VolumeError(
            path,
            f"is too large to read: {claim}, about {human_bytes(in_memory)} in memory, above the memory budget of "
            f"{human_bytes(budget)} ({source}; set {BUDGET_ENV}, e.g. {BUDGET_ENV}=64G, to change it)",
        )
    if compressed:
        with open(path, "rb") as fh:
            fh.seek(max(size - 4, 0))
            trailer = int.from_bytes(fh.read(4).ljust(4, b"\0"), "little")
        if needed < 2**32 and trailer >= needed:
            return
        inflated = _inflated_size(path, needed)
        if inflated < needed:
            raise VolumeError(
                path,
                f"is truncated: {claim} but it holds only {max(inflated - int(offset), 0)} bytes of voxel data",
            )
