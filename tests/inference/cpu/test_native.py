"""The native CPU forms of mDCSRN and RED-WGAN (depth Winograd, PyTorch 2D convolutions, fused C
passes) and their kernels."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import phantom, randomised
from volgan.inference import Predictor
from volgan.inference.cpu import native_kernels
from volgan.inference.cpu.fused_pointwise import fused_pointwise_available
from volgan.inference.cpu.native import native_network
from volgan.inference.cpu.native_dense import NativeMdcsrn
from volgan.inference.cpu.native_red_wgan import NativeRedWgan
from volgan.inference.optimise import cpu_has_fast_bf16
from volgan.networks import MdcsrnGenerator, RedWganGenerator

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="needs a C compiler")


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """load_library() rebuilt from scratch in an empty cache; the cached library restored afterwards."""
    monkeypatch.setenv("VOLGAN_KERNEL_CACHE", str(tmp_path / "cache"))
    native_kernels.load_library.cache_clear()
    yield tmp_path / "cache"
    native_kernels.load_library.cache_clear()


@pytest.mark.parametrize("make, shape", [
    (lambda: MdcsrnGenerator("small"), (1, 1, 13, 17, 11)),  # depth not a multiple of the tile
    (lambda: MdcsrnGenerator("small"), (2, 1, 8, 9, 10)),  # a batch
    (lambda: MdcsrnGenerator("small"), (1, 1, 1, 6, 5)),  # a single plane: every neighbour is padding
    (lambda: MdcsrnGenerator("small", global_residual=False), (1, 1, 6, 7, 8)),  # the published network
    (lambda: MdcsrnGenerator(k=4, blocks=2, units=3, in_channels=2), (1, 2, 9, 8, 7)),  # channels not multiples of 8
])
def test_native_mdcsrn_computes_the_network(make, shape):
    net = randomised(make())
    native = native_network(net)
    assert native is not None
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = net(x)
    y = native(x)
    assert y.shape == ref.shape
    assert (y - ref).abs().max() < 1e-5 * (ref.max() - ref.min())


@pytest.mark.parametrize("make, shape", [
    (lambda: RedWganGenerator("small"), (1, 1, 13, 17, 11)),
    (lambda: RedWganGenerator("small"), (2, 1, 8, 9, 10)),
    (lambda: RedWganGenerator("small"), (1, 1, 1, 6, 5)),
    (lambda: RedWganGenerator(channels=(8, 16, 24, 40), in_channels=2), (1, 2, 9, 8, 7)),  # not multiples of 8
])
def test_native_red_wgan_computes_the_network(make, shape):
    net = randomised(make())
    native = native_network(net)
    assert native is not None
    x = torch.randn(*shape)  # negative values too: the output ReLU and the residual input matter
    with torch.no_grad():
        ref = net(x)
    y = native(x)
    assert y.shape == ref.shape and (ref > 0).any()
    assert (y - ref).abs().max() < 1e-5 * (ref.max() - ref.min())


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("form", [NativeMdcsrn, NativeRedWgan])
def test_first_layer_with_and_without_fused_convolutions(form, fused):
    """The one-channel first layer through oneDNN's fused convolution (which PyTorch's own dispatch
    sends to its reference convolution for a 64^3 window) or through ``F.conv3d``: both compute the
    network, on a one-window batch of the default mode's size."""
    if fused and not fused_pointwise_available():
        pytest.skip("no oneDNN fused convolutions in this build")
    net = randomised(MdcsrnGenerator("small") if form is NativeMdcsrn else RedWganGenerator("small"))
    native = form(net, native_kernels.load_library(), fused=fused)
    x = torch.randn(1, 1, 64, 64, 64)
    with torch.no_grad():
        ref = net(x)
    assert (native(x) - ref).abs().max() < 1e-5 * (ref.max() - ref.min())


def test_network_is_unchanged_and_the_paper_preset_runs():
    net = randomised(MdcsrnGenerator("paper"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        ref = net(x)
    assert (native_network(net)(x) - ref).abs().max() < 1e-5 * (ref.max() - ref.min())
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_other_networks_and_layers_are_refused():
    assert native_network(nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv3d(8, 1, 3, padding=1)).eval()) is None
    assert native_network(RedWganGenerator("small").train()) is None
    assert native_network(RedWganGenerator(channels=(4, 4, 8, 8)).eval()) is None  # too narrow for Winograd
    relu = RedWganGenerator("small").eval()
    relu.post3[1] = nn.ReLU()
    assert native_network(relu) is None
    assert native_network(MdcsrnGenerator("small").train()) is None  # batch statistics, not the running ones
    relu = MdcsrnGenerator("small").eval()
    relu.blocks[1].units[2].act = nn.ReLU()
    assert native_network(relu) is None
    dilated = MdcsrnGenerator("small").eval()
    dilated.blocks[0].units[0].conv = nn.Conv3d(16, 8, 3, padding=2, dilation=2)
    assert native_network(dilated) is None
    reflected = MdcsrnGenerator("small").eval()
    reflected.first = nn.Conv3d(1, 16, 3, padding=1, padding_mode="reflect")
    assert native_network(reflected) is None


def test_kernel_elu_matches_torch_over_the_whole_range():
    """The input kernel's ELU (branch-free exp) against torch's, read back through the transform:
    a one-plane volume leaves only input plane 1 of tile 0, and d_5 = 4 * ELU(x)."""
    library = native_kernels.load_library()
    x = torch.cat([torch.linspace(-100, 20, 4001), torch.linspace(-1e-3, 1e-3, 999), torch.tensor([0.0, -87.5, -1e4])])
    plane, alpha = x.numel(), 0.7
    d = torch.full((6, 1, plane, 1), float("nan"))
    one, zero = torch.ones(1), torch.zeros(1)
    library.winograd_input(x.data_ptr(), 1, d.data_ptr(), 1, one.data_ptr(), zero.data_ptr(), alpha, 1, 1, plane, 1, 1, 0, 1)
    expected = nn.functional.elu(x, alpha=alpha)
    torch.testing.assert_close(d[5].flatten() / 4, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(d[0].flatten(), torch.zeros(plane))  # planes -1 and 3 are padding; 4 * s0 - 5 * s2 + s4 = 0


@pytest.mark.parametrize("make", [lambda: MdcsrnGenerator("small"), lambda: RedWganGenerator("small")])
def test_predictor_runs_natively_and_matches_pytorch(make):
    net = randomised(make())
    arr = phantom((22, 19, 17))
    native = Predictor(net, roi_size=(16, 16, 16), device="cpu")
    assert native.backend == "native" and native.winograd
    torch_pred = Predictor(net, roi_size=(16, 16, 16), device="cpu", backend="torch")
    ref = torch_pred.predict_array(arr)
    np.testing.assert_allclose(native.predict_array(arr), ref, atol=1e-5 * float(ref.max() - ref.min()))
    assert Predictor(net, device="cpu", fast=True, precision="fp32").backend == "native"
    # fast mode's own precision: bf16 in PyTorch on a CPU with native bf16, else fp32 natively
    assert Predictor(net, device="cpu", fast=True).backend == ("torch" if cpu_has_fast_bf16() else "native")
    assert Predictor(net, device="cpu", winograd=False).backend == "torch"
    with pytest.raises(ValueError, match="backend='native' runs a PET U-Net generator"):
        Predictor(nn.Sequential(nn.Conv3d(1, 1, 3, padding=1)), device="cpu", backend="native")
    with pytest.raises(ValueError, match="with winograd=True and a C compiler"):
        Predictor(net, device="cpu", backend="native", winograd=False)


def test_without_kernels_auto_falls_back_and_native_is_refused(fresh_library, monkeypatch):
    monkeypatch.setenv("CC", str(fresh_library / "no-such-compiler"))
    assert native_kernels.load_library() is None
    net = MdcsrnGenerator("small").eval()
    assert native_network(net) is None and native_network(RedWganGenerator("small").eval()) is None
    assert Predictor(net, device="cpu").backend == "torch"
    with pytest.raises(ValueError, match="and a C compiler"):
        Predictor(net, device="cpu", backend="native")
    native_kernels.load_library.cache_clear()
    monkeypatch.delenv("CC")
    monkeypatch.setenv("VOLGAN_NATIVE_KERNELS", "0")
    assert native_kernels.load_library() is None


def test_kernels_build_once_into_the_cache_even_from_concurrent_processes(fresh_library):
    """Four processes start with an empty cache at once: all load the kernels, and exactly one
    library with its digest (no temporary files) is left in the cache."""
    code = ("from volgan.inference.cpu.native_kernels import load_library\n"
            "lib = load_library(); assert lib is not None; print(lib._name)")
    env = {**os.environ, "VOLGAN_KERNEL_CACHE": str(fresh_library)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, encoding="utf-8", errors="replace") for _ in range(4)]
    paths = {p.communicate(timeout=300)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(paths) == 1
    name = os.path.basename(paths.pop())
    assert sorted(f.name for f in fresh_library.iterdir()) == [name, name + ".sha256"]  # the library and its digest
    library = native_kernels.load_library()  # this process: the cached file, not a rebuild
    assert isinstance(library, ctypes.CDLL) and len(list(fresh_library.iterdir())) == 2


def test_a_failing_compiler_leaves_no_file_behind(fresh_library, monkeypatch, tmp_path):
    failing = tmp_path / "cc"
    failing.write_text("#!/bin/sh\necho 'cc: internal error' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setenv("CC", str(failing))
    assert native_kernels.load_library() is None
    assert not fresh_library.exists() or list(fresh_library.iterdir()) == []


def test_a_cache_home_that_cannot_be_created_falls_back_to_the_temporary_directory(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # ~/.cache under a file: mkdir fails, even for root
    monkeypatch.delenv("VOLGAN_KERNEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(native_kernels.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    assert native_kernels.cache_dir().parent == tmp_path / "tmp"


def _run_elu_and_native(library_threads: bool, monkeypatch):
    """AffineELU on a channel range of a bf16 buffer and the native mDCSRN form, with the kernels'
    jobs on OpenMP threads or (``library_threads=False``) split between Python threads."""
    from volgan.inference.cpu.norm_elu import AffineELU

    library = native_kernels.load_library()
    monkeypatch.setattr(native_kernels, "kernels_use_openmp", lambda: library_threads)
    library.volgan_set_threads(1)  # serial calls on the Python-thread path; run_jobs sets it otherwise
    torch.manual_seed(0)
    buffer = torch.randn(2, 48, 9, 10, 11).to(torch.bfloat16).contiguous(memory_format=torch.channels_last_3d)
    norm = randomised(nn.BatchNorm3d(40)).eval()
    elu = AffineELU(norm)(buffer[:, :40])
    net = randomised(MdcsrnGenerator("small"))
    native = native_network(net)(torch.randn(1, 1, 13, 17, 11, generator=torch.Generator().manual_seed(1)))
    return elu, native


def test_kernels_on_openmp_threads_compute_what_python_threads_do(monkeypatch):
    library = native_kernels.load_library()
    if not library.volgan_openmp():
        pytest.skip("the C compiler here builds without OpenMP")
    assert native_kernels.kernels_use_openmp()  # built with -fopenmp and sharing PyTorch's runtime
    for on_openmp, on_python in zip(_run_elu_and_native(True, monkeypatch), _run_elu_and_native(False, monkeypatch)):
        assert torch.equal(on_openmp, on_python)


def test_loading_the_kernels_maps_no_second_openmp_runtime():
    """In a fresh process that imported PyTorch, loading the kernels maps no OpenMP runtime of
    their own: their loops run on PyTorch's threads (when built with OpenMP)."""
    code = ("import torch\nfrom volgan.inference.cpu import native_kernels as k\n"
            "before = k.openmp_runtimes(); lib = k.load_library(); after = k.openmp_runtimes()\n"
            "print(before == after, bool(lib.volgan_openmp()), lib.openmp_jobs)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    assert out.returncode == 0, out.stderr
    same, built_with_openmp, openmp_jobs = out.stdout.split()
    assert same == "True" and openmp_jobs == built_with_openmp


def _assert_kernels_compute_batchnorm_elu():
    """The loaded kernels' BatchNorm + ELU pass (AffineELU) against PyTorch's."""
    from volgan.inference.cpu.norm_elu import AffineELU

    x = torch.randn(1, 24, 6, 7, 9).contiguous(memory_format=torch.channels_last_3d)
    norm = randomised(nn.BatchNorm3d(24)).eval()
    torch.testing.assert_close(AffineELU(norm)(x), nn.functional.elu(norm(x)), rtol=1e-5, atol=1e-5)


def test_a_compiler_without_openmp_builds_kernels_for_python_threads(fresh_library, monkeypatch, tmp_path):
    compiler = shutil.which(os.environ.get("CC", "cc"))
    no_openmp = tmp_path / "cc"
    no_openmp.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && {{ echo "no OpenMP" >&2; exit 1; }}; done\n'
                         f'exec {compiler} "$@"\n')
    no_openmp.chmod(0o755)
    monkeypatch.setenv("CC", str(no_openmp))
    library = native_kernels.load_library()
    assert library is not None and not library.volgan_openmp() and not native_kernels.kernels_use_openmp()
    _assert_kernels_compute_batchnorm_elu()


def test_kernels_whose_openmp_runtime_does_not_load_are_rebuilt_without_it(fresh_library, monkeypatch, tmp_path):
    """An OpenMP build that links a runtime the dynamic loader cannot find (here: one deleted after
    linking) fails to load; the kernels are built again without OpenMP and computed with."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    gone = tmp_path / "runtime"
    gone.mkdir()
    wrapper = tmp_path / "cc"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = -fopenmp ] && openmp=1; done\n'
        f'[ -z "$openmp" ] && exec {compiler} "$@"\n'
        f'echo "int volgan_gone_runtime(void) {{ return 0; }}" | {compiler} -x c -shared -fPIC -o {gone}/libgoneomp.so - || exit 1\n'
        f'{compiler} "$@" -L{gone} -Wl,--no-as-needed -lgoneomp || exit 1\n'
        f"rm {gone}/libgoneomp.so\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", str(wrapper))
    library = native_kernels.load_library()
    assert library is not None and not library.volgan_openmp() and not native_kernels.kernels_use_openmp()
    libraries = [f for f in fresh_library.iterdir() if f.suffix == ".so"]
    assert sorted(f.name.endswith("-serial.so") for f in libraries) == [False, True]
    _assert_kernels_compute_batchnorm_elu()


def test_loaded_runtime_names_agree_with_the_mapped_files():
    """The runtime check that loading uses (``dlopen`` of the names ``-fopenmp`` links, without
    loading anything) sees the runtimes that ``/proc/self/maps`` shows: PyTorch's GNU one here."""
    files = native_kernels.openmp_runtimes()
    if files is None:
        pytest.skip("no /proc/self/maps here")
    names = native_kernels.loaded_openmp_sonames()
    assert names <= set(native_kernels.OPENMP_SONAMES)
    stems = {Path(f).name.split(".so")[0] for f in files}
    assert {n.split(".so")[0] for n in names} <= stems
    if any(Path(f).name == "libgomp.so.1" for f in files):
        assert "libgomp.so.1" in names


def test_a_compiler_replaced_in_place_gets_a_build_of_its_own(fresh_library, monkeypatch, tmp_path):
    """The cache key names the compiler by its file: the same path with other contents (an
    upgrade) builds again instead of loading what the old compiler built."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    wrapper = tmp_path / "cc"
    wrapper.write_text(f'#!/bin/sh\nexec {compiler} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", str(wrapper))
    assert native_kernels.load_library() is not None
    assert len(list(fresh_library.glob("*.so"))) == 1
    native_kernels.load_library.cache_clear()
    wrapper.write_text(f'#!/bin/sh\n# upgraded\nexec {compiler} "$@"\n')
    assert native_kernels.load_library() is not None
    assert len(list(fresh_library.glob("*.so"))) == 2
