"""volgan's C kernels: compiled on first use with the system C compiler, cached, run on all threads.

The kernels fuse memory-bound passes into one pass each: those around a depth-Winograd
convolution (``kernels/winograd_depth.c``, :mod:`volgan.inference.cpu.native_winograd`), a
BatchNorm with the ELU after it (``kernels/affine_elu.c``, :mod:`volgan.inference.cpu.norm_elu`), and
the reads and the gathering of a dense block's parts (``kernels/dense_parts.c``,
:mod:`volgan.inference.cpu.dense_parts`); and one computes the PET U-Net's last layer, too narrow for
oneDNN's convolutions, with the passes after it (``kernels/subpixel_head.c``,
:mod:`volgan.inference.cpu.subpixel_head`).
They are plain C11 with no dependencies but the vector extensions of GCC and Clang
(``kernels/elementwise.h`` holds what the sources share, ``kernels/parallel.c`` the job loops'
thread count),
compiled with ``-O3 -march=native`` (about a second) into one shared library cached under
``$VOLGAN_KERNEL_CACHE`` (default ``~/.cache/volgan/kernels``, see :func:`cache_dir`). The cache
key covers the sources, the flags, the compiler and the CPU's feature flags, so a cache shared
between machines of different CPUs never runs code built for another one. Compilation goes to a
temporary file that is renamed into place, so concurrent processes (``torchrun``) are safe.

A library built with OpenMP whose runtime does not load here (linked against one the dynamic
loader cannot find) is rebuilt without OpenMP, beside it in the cache.
Without a working C compiler (``$CC``, default ``cc``), or with ``VOLGAN_NATIVE_KERNELS=0``,
:func:`load_library` returns ``None`` and callers fall back to other backends.

The kernels' job loops are OpenMP loops, built with ``-fopenmp`` when the compiler takes it. They
then run on the OpenMP runtime PyTorch already loaded (``libgomp.so.1`` of PyTorch's Linux wheels:
the dynamic loader reuses a library already loaded under the same name), i.e. on the threads that
run its convolutions, with ``torch.get_num_threads()`` threads. Otherwise, and whenever loading
the kernels maps an OpenMP runtime of their own (:func:`loaded_openmp_sonames`), the work is split into contiguous job
ranges run on that many Python threads (``ctypes`` releases the GIL during each call). Why: after
each oneDNN convolution PyTorch's OpenMP threads spin-wait for their next parallel region, and on
few cores they take the cores from Python threads (``benchmarks/kernel_threads.py`` compares
the two; the outputs are identical).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

KERNELS = Path(__file__).with_name("kernels")
SOURCES = (KERNELS / "winograd_depth.c", KERNELS / "affine_elu.c", KERNELS / "dense_parts.c", KERNELS / "subpixel_head.c",
           KERNELS / "parallel.c")
HEADERS = (KERNELS / "elementwise.h",)
# no -ffast-math: exp_nonpositive rounds with a float addition that re-association would remove;
# -ffp-contract=fast: fused multiply-adds, which -std=c11 alone turns off
FLAGS = ("-O3", "-march=native", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=fast", "-std=c11", "-shared", "-fPIC")
OPENMP_FLAG = "-fopenmp"  # tried first; without it the same sources build for Python threads
# shared-library names of OpenMP runtimes (GNU, LLVM, Intel)
OPENMP_RUNTIMES = ("libgomp", "libomp", "libiomp")
# the names under which compilers' -fopenmp links them (GCC, Clang, Intel)
OPENMP_SONAMES = ("libgomp.so.1", "libomp.so", "libomp.so.5", "libiomp5.so")

_i64, _ptr, _f32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float
SIGNATURES = {
    # x, x_stride, d, elu, scale, shift, alpha, batch, depth, plane, channels, tiles, begin, end
    "winograd_input": (_ptr, _i64, _ptr, ctypes.c_int, _ptr, _ptr, _f32, _i64, _i64, _i64, _i64, _i64, _i64, _i64),
    # m (6 pointers), y, y_stride, residual, r_stride, scale, shift, slope, batch, depth, plane,
    # channels, tiles, begin, end
    "winograd_output": (ctypes.POINTER(_ptr), _ptr, _i64, _ptr, _i64, _ptr, _ptr, _f32, _i64, _i64, _i64, _i64, _i64,
                        _i64, _i64),
    # x, y, scale, shift, alpha, channels, pitch, chunk, voxels, begin, end
    "affine_elu_f32": (_ptr, _ptr, _ptr, _ptr, _f32, _i64, _i64, _i64, _i64, _i64, _i64),
    "affine_elu_bf16": (_ptr, _ptr, _ptr, _ptr, _f32, _i64, _i64, _i64, _i64, _i64, _i64),
    # parts, part channels, part paired, n parts, y, scale, shift, alpha, channels, depth, plane, chunk, begin, end
    "affine_elu_parts_f32": (_ptr, _ptr, _ptr, _i64, _ptr, _ptr, _ptr, _f32, _i64, _i64, _i64, _i64, _i64, _i64),
    "affine_elu_parts_bf16": (_ptr, _ptr, _ptr, _i64, _ptr, _ptr, _ptr, _f32, _i64, _i64, _i64, _i64, _i64, _i64),
    # parts, part channels, part paired, n parts, y, value size, channels, depth, plane, chunk, begin, end
    "gather_parts": (_ptr, _ptr, _ptr, _i64, _ptr, _i64, _i64, _i64, _i64, _i64, _i64, _i64),
    # x, channels, w, z, residual, out, depth, height, width, begin, end
    "subpixel_head_f32": (_ptr, _i64, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _i64, _i64),
    "subpixel_head_bf16": (_ptr, _i64, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _i64, _i64),
}


def cache_dir() -> Path:
    """``$VOLGAN_KERNEL_CACHE``, else ``~/.cache/volgan/kernels`` (``$XDG_CACHE_HOME``), else, when
    that cannot be created (a read-only home), a per-user folder in the temporary directory."""
    if "VOLGAN_KERNEL_CACHE" in os.environ:
        return Path(os.environ["VOLGAN_KERNEL_CACHE"])
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "volgan" / "kernels"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"volgan-kernels-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def private_folder(path: Path) -> Path:
    """``path`` created (mode 0700) if missing, and checked: a real folder (not a link) owned by
    this user and writable by nobody else. Anything else raises :class:`PermissionError`: a folder
    another user can write to could hold a library planted for this process to load."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    problem = _ownership_problem(info, stat.S_ISDIR)
    if problem:
        raise PermissionError(f"kernel cache {path}: {problem}; refusing to build or load kernels there")
    return path


def _ownership_problem(info: os.stat_result, kind) -> str:
    if not kind(info.st_mode):
        return "not a plain folder/file (a link or something else)"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return f"owned by uid {info.st_uid}, not by this user (uid {os.getuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    return ""


def _digest_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trusted_library(target: Path) -> bool:
    """Whether ``target`` may be loaded: a regular file owned by this user, writable by nobody else,
    whose SHA-256 is the one recorded when volgan built it (the name already carries the hash of the
    sources, flags, compiler and CPU it was built from). An untrusted file raises
    :class:`PermissionError` when its owner or permissions are wrong; a file that fails only the
    hash (e.g. an interrupted or foreign build in a private cache) returns False, to be rebuilt."""
    info = os.lstat(target)
    problem = _ownership_problem(info, stat.S_ISREG)
    if problem:
        raise PermissionError(f"{target}: {problem}; refusing to load it")
    digest = _digest_path(target)
    try:
        return digest.read_text().strip() == _file_sha256(target)
    except OSError:
        return False


def _cpu_features() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _compiler_identity(compiler: str) -> str:
    """The compiler's resolved path, size and modification time: a compiler upgraded or replaced in
    place gets a build of its own, without running the compiler."""
    path = os.path.realpath(compiler)
    info = os.stat(path)
    return f"{path} {info.st_size} {info.st_mtime_ns}"


def _build(compiler: str, target: Path, openmp: bool) -> None:
    """Compile into ``target``: with OpenMP when asked for and the compiler takes it, else without."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", prefix=".build-", dir=target.parent)
    os.close(fd)
    try:
        for flags in ((*FLAGS, OPENMP_FLAG), FLAGS) if openmp else (FLAGS,):
            result = subprocess.run([compiler, *flags, "-o", tmp, *map(str, SOURCES)], capture_output=True,
                                    encoding="utf-8", errors="replace", timeout=300)
            if result.returncode == 0:
                break
        else:
            raise RuntimeError(f"{compiler} failed on {', '.join(s.name for s in SOURCES)}: {result.stderr.strip()[-2000:]}")
        digest_tmp = _digest_path(Path(tmp))
        digest_tmp.write_text(_file_sha256(Path(tmp)))
        os.replace(digest_tmp, _digest_path(target))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def load_library() -> ctypes.CDLL | None:
    """The compiled kernels (built on first use), or ``None`` if they cannot be built here."""
    if os.environ.get("VOLGAN_NATIVE_KERNELS", "1") == "0":
        return None
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        logger.info("native kernels unavailable: no C compiler (set CC)")
        return None
    try:
        key = hashlib.sha256("\0".join(
            [*(f.read_text() for f in SOURCES + HEADERS), " ".join((*FLAGS, OPENMP_FLAG)), _compiler_identity(compiler),
             _cpu_features(),
             platform.machine()]
        ).encode()).hexdigest()[:20]
        target = private_folder(cache_dir()) / f"volgan_kernels-{key}.so"
        try:
            library, mapped_own_runtime = _load(compiler, target, openmp=True)
        except PermissionError:
            raise
        except OSError as err:
            if not target.exists():  # not built (e.g. an unwritable cache): a second build would fail alike
                raise
            # built, but it does not load here (e.g. the OpenMP runtime it links to is missing)
            logger.info("native kernels did not load (%s): building them without OpenMP", err)
            library, mapped_own_runtime = _load(compiler, cache_dir() / f"volgan_kernels-{key}-serial.so", openmp=False)
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        logger.warning("native kernels unavailable: %s", err)
        return None
    for name, argtypes in SIGNATURES.items():
        function = getattr(library, name)
        function.argtypes, function.restype = argtypes, None
    library.volgan_openmp.argtypes, library.volgan_openmp.restype = (), ctypes.c_int
    library.volgan_set_threads.argtypes, library.volgan_set_threads.restype = (ctypes.c_int,), None
    # a runtime mapped by the kernels alone would be a second thread pool next to PyTorch's: then
    # each call runs serially (1 thread: the default), on the Python threads of run_jobs
    library.openmp_jobs = bool(library.volgan_openmp()) and not mapped_own_runtime
    if library.volgan_openmp() and mapped_own_runtime:
        logger.info("native kernels on Python threads: loading them mapped an OpenMP runtime of their own")
    return library


def _load(compiler: str, target: Path, openmp: bool) -> tuple[ctypes.CDLL, bool]:
    """``target`` (built first if missing) loaded, and whether loading it mapped an OpenMP runtime
    that was not mapped before."""
    if not target.exists() or not trusted_library(target):
        logger.info("compiling native kernels into %s", target)
        _build(compiler, target, openmp)
        if not trusted_library(target):
            raise PermissionError(f"{target}: changed while it was built; refusing to load it")
    runtimes = loaded_openmp_sonames if platform.system() == "Linux" else openmp_runtimes
    before = runtimes()
    library = ctypes.CDLL(str(target))
    return library, before is None or runtimes() != before


def loaded_openmp_sonames() -> frozenset[str]:
    """Which of the OpenMP runtimes that ``-fopenmp`` links (GNU, LLVM, Intel) are loaded in this
    process, by shared-library name (``dlopen`` with ``RTLD_NOLOAD``, Linux). The dynamic loader
    resolves the kernels' dependency on such a name to a library already loaded under it, so the
    set grows exactly when loading the kernels maps a runtime of their own. Cheaper than reading
    ``/proc/self/maps`` (:func:`openmp_runtimes`)."""
    loaded = set()
    for name in OPENMP_SONAMES:
        try:
            ctypes.CDLL(name, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        except OSError:  # not loaded
            continue
        loaded.add(name)
    return frozenset(loaded)


def openmp_runtimes() -> set[str] | None:
    """Files of the OpenMP runtimes mapped into this process (Linux: from ``/proc/self/maps``);
    None where that cannot be read."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    # a mapping line ends with the mapped file's path (after five fields)
    paths = {fields[5] for line in maps.splitlines() if "omp" in line and len(fields := line.split(maxsplit=5)) == 6}
    return {p for p in paths if Path(p).name.startswith(OPENMP_RUNTIMES)}


def kernels_use_openmp() -> bool:
    """True when the loaded kernels run their job loops on OpenMP threads of the runtime PyTorch
    had already loaded: then :func:`run_jobs` calls each kernel once."""
    library = load_library()
    return library is not None and library.openmp_jobs


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="volgan-kernel")


def run_jobs(function, args: tuple, jobs: int) -> None:
    """``function(*args, begin, end)`` over ``[0, jobs)``: in one call when the kernels run on
    OpenMP threads (:func:`kernels_use_openmp`), else split into one contiguous range per Python
    thread."""
    threads = max(1, min(torch.get_num_threads(), jobs))
    if kernels_use_openmp():
        load_library().volgan_set_threads(threads)  # this thread's PyTorch setting
        function(*args, 0, jobs)
        return
    if threads == 1:
        function(*args, 0, jobs)
        return
    bounds = [jobs * i // threads for i in range(threads + 1)]
    futures = [_pool(threads).submit(function, *args, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    for future in futures:
        future.result()
