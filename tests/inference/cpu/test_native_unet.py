"""The native CPU form of the PET U-Net (PyTorch only: no concatenation or interleaving copies)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import phantom, randomised
from volgan.hardware import cpu_has_fast_bf16
from volgan.inference import Predictor
from volgan.inference.cpu import native_kernels
from volgan.inference.cpu.fused_pointwise import fused_pointwise_available
from volgan.inference.cpu.native import native_network
from volgan.inference.cpu.fused_pointwise import PointwiseConv3d
from volgan.inference.cpu.native_unet import BF16_CHANNEL_MULTIPLE, NativePetUNet, native_dtype_available, widened
from volgan.networks import ConcatenatedGenerator, PetUNetGenerator


@pytest.mark.parametrize("make, shape", [
    (lambda: PetUNetGenerator("small"), (1, 1, 20, 33, 17)),  # padded to multiples of 16 and cropped back
    (lambda: PetUNetGenerator("small", residual=True), (2, 1, 16, 16, 16)),  # a batch
    (lambda: PetUNetGenerator(channels=(4, 8, 8), residual=True, in_channels=2), (1, 2, 9, 13, 30)),  # 2 channels
    (lambda: PetUNetGenerator(channels=(5, 7)), (1, 1, 3, 5, 4)),  # two levels, odd widths
    (lambda: ConcatenatedGenerator(2, "small", residual=True), (1, 1, 18, 17, 16)),  # the paper's chained stages
])
def test_native_unet_computes_the_network(make, shape):
    net = randomised(make())
    native = native_network(net)
    assert native is not None and not native.winograd
    x = torch.randn(*shape)  # negative values: the ReLUs and the residual input matter
    with torch.no_grad():
        ref = net(x)
    y = native(x)
    assert y.shape == ref.shape and (ref > 0).any() and (ref == 0).any()
    assert (y - ref).abs().max() < 1e-5 * (ref.max() - ref.min())


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 64, 64, 64), (2, 1, 20, 33, 17)])
def test_native_unet_with_and_without_fused_convolutions(fused, shape):
    """Fused: every convolution is one oneDNN call with its activation, also for a single small
    window (which PyTorch's own dispatch sends to its reference convolutions); unfused: what runs
    where PyTorch has no oneDNN fused convolutions. Both compute the network."""
    if fused and not fused_pointwise_available():
        pytest.skip("no oneDNN fused convolutions in this build")
    net = randomised(PetUNetGenerator(channels=(16, 32, 64, 128), residual=True))
    native = NativePetUNet(net, fused=fused)
    assert native.fused is fused
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = net(x)
    y = native(x)
    assert (ref > 0).any() and (ref == 0).any()
    assert (y - ref).abs().max() < 1e-5 * (ref.max() - ref.min())


needs_bf16 = pytest.mark.skipif(not native_dtype_available(torch.bfloat16),
                                reason="oneDNN runs no bf16 convolutions on this CPU (needs AVX-512 or AVX-NE-CONVERT)")


@needs_bf16
@pytest.mark.parametrize("make, shape", [
    (lambda: PetUNetGenerator("small", residual=True), (2, 1, 20, 33, 17)),  # a batch, padded and cropped back
    (lambda: PetUNetGenerator(channels=(5, 7)), (1, 1, 3, 5, 4)),  # two levels, odd widths
    (lambda: ConcatenatedGenerator(2, "small", residual=True), (1, 1, 18, 17, 16)),  # the paper's chained stages
])
@pytest.mark.parametrize("kernels", [True, False])
def test_the_bf16_form_computes_the_network_to_bf16_precision(make, shape, kernels, monkeypatch):
    """In bf16 (fast mode on CPUs with AVX-512 BF16), with the C head pass or without a compiler:
    the float32 network's result to within bf16 rounding, in float32."""
    if not kernels:
        monkeypatch.setenv("VOLGAN_NATIVE_KERNELS", "0")
        native_kernels.load_library.cache_clear()
    try:
        net = randomised(make())
        native = native_network(net, dtype=torch.bfloat16)
        assert native is not None and all(getattr(form, "dtype", None) in (None, torch.bfloat16)
                                          for form in getattr(native, "stages", [native]))
        x = torch.randn(*shape)
        with torch.no_grad():
            ref = net(x)
        y = native(x)
    finally:
        native_kernels.load_library.cache_clear()
    assert y.dtype == torch.float32 and y.shape == ref.shape and (ref > 0).any()
    err = (y - ref).abs()
    data_range = float(ref.max() - ref.min())
    assert err.max() < 0.05 * data_range and err.max() > 0  # bf16: 8 significant bits per layer
    assert 10 * torch.log10(data_range**2 / (err**2).mean()) > 35


@pytest.mark.parametrize("channels, residual, in_channels, shape", [
    ((5, 7), False, 1, (1, 1, 3, 5, 4)),  # odd widths
    ((3, 5, 9), True, 1, (2, 1, 9, 7, 5)),  # a batch, three levels
    ((4, 8, 8), True, 2, (1, 2, 9, 13, 30)),  # two image channels (kept as they are)
    ((1, 1), False, 1, (1, 1, 1, 1, 1)),  # one voxel, padded to 4^3 and cropped back
    ((16, 20), True, 1, (1, 1, 4, 4, 4)),  # one level already a multiple
])
def test_widening_keeps_the_function(channels, residual, in_channels, shape):
    """The widened network (zero channels up to a multiple of 16) computes exactly what the network does."""
    net = randomised(PetUNetGenerator(channels=channels, residual=residual, in_channels=in_channels))
    wide = widened(net, 16)
    assert all(c % 16 == 0 for c in wide.channels) and wide.encoder[0][0].in_channels == in_channels
    x = torch.randn(*shape)
    with torch.no_grad():
        assert torch.equal(wide(x), net(x))
    ready = randomised(PetUNetGenerator(channels=(16, 32)))
    assert widened(ready, 16) is ready


@needs_bf16
@pytest.mark.parametrize("channels, in_channels, shape", [
    ((5, 7), 1, (1, 1, 3, 5, 4)),
    ((3, 5, 9), 1, (2, 1, 9, 7, 5)),
    ((4, 8, 8), 2, (1, 2, 9, 13, 30)),
    ((1, 1), 1, (1, 1, 1, 1, 1)),
])
def test_the_bf16_form_runs_only_whole_channel_blocks(channels, in_channels, shape):
    """Odd widths, tiny volumes, a batch, two image channels: every bf16 convolution has a
    multiple of 16 channels in and out (but the image's), and the form computes the network."""
    net = randomised(PetUNetGenerator(channels=channels, residual=True, in_channels=in_channels))
    native = NativePetUNet(net, dtype=torch.bfloat16)
    convolutions = [native.top_part, *native.encoder[1:], *(c for _, parts in native.decoder for _, c in parts)]
    if native.decoded_part is not None:
        convolutions.append(native.decoded_part)
    assert all(isinstance(c, PointwiseConv3d) and c.in_channels % BF16_CHANNEL_MULTIPLE == 0 for c in convolutions)
    assert native.encoder[0].in_channels == in_channels
    assert all(c.out_channels % BF16_CHANNEL_MULTIPLE == 0 for c in native.encoder)
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = net(x)
    y = native(x)
    assert y.shape == ref.shape and bool(torch.isfinite(y).all())
    scale = max(float(ref.max() - ref.min()), float(ref.abs().max()))  # (one voxel: its value)
    assert (y - ref).abs().max() <= 0.05 * scale


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_strided_inputs_give_the_contiguous_inputs_result(dtype):
    """A view with strides (a crop of a larger tensor, channels-last, a batch slice) gives the same
    output as its contiguous copy, and the input is left alone."""
    if not native_dtype_available(dtype):
        pytest.skip("oneDNN runs no bf16 convolutions on this CPU")
    net = randomised(PetUNetGenerator(channels=(5, 7), residual=True))
    native = NativePetUNet(net, dtype=dtype)
    big = torch.randn(3, 1, 12, 14, 10)
    views = [big[1:2, :, 1:10, 2:13, ::2], big[::2, :, :8, :8, :8],
             big[:1].contiguous(memory_format=torch.channels_last_3d), big[:1].permute(0, 1, 4, 3, 2)]
    before = big.clone()
    for view in views:
        assert torch.equal(native(view), native(view.contiguous()))
    assert torch.equal(big, before)


@needs_bf16
@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="fast mode is fp32 on a CPU without native bf16")
def test_fast_mode_runs_the_shipped_unet_natively_in_bf16_within_the_stated_bound():
    """Fast mode on a CPU with native bf16: the native U-Net in bf16 (not PyTorch under autocast), on
    the shipped weights and a simulated 1/10-dose PET scan (SUV / 10, as the bundle feeds it). Its
    two departures from the fp32 default are checked apart, so the bound does not depend on how a
    CPU rounds: one large window instead of the default 64^3 grid (fp32 both: 45.4 dB with the
    0.2.0 weights, bound 45 dB), and bf16 against fp32 in that same window (59.2 dB, bound 55 dB)."""
    from pathlib import Path

    from volgan.inference import load_generator_weights

    net = load_generator_weights(PetUNetGenerator("small", residual=True),
                                 Path(__file__).parents[3] / "bundles" / "pet_lowdose_cgan" / "models" / "model.pt")
    from volgan.degrade import simulate_doses

    activity = phantom((48, 40, 36), seed=11) / 10.0
    arr = simulate_doses(activity, (2.0, 2.0, 2.0), doses=(0.1,), total_counts=8e6, seed=4, iterations=4, subsets=12,
                         post_fwhm_mm=4.0)[0.1] / 10.0
    fast = Predictor(net, device="cpu", fast=True)
    assert (fast.precision, fast.backend) == ("bf16", "native") and fast._form.dtype == torch.bfloat16
    bf16 = fast.predict_array(arr)
    fp32 = Predictor(net, device="cpu", fast=True, precision="fp32").predict_array(arr)
    default = Predictor(net, roi_size=(64, 64, 64), device="cpu").predict_array(arr)

    def psnr(out, ref):
        return 10 * np.log10((ref.max() - ref.min()) ** 2 / np.mean((out - ref) ** 2))

    assert psnr(fp32, default) > 45.0
    assert psnr(bf16, fp32) > 55.0


def test_bf16_runs_natively_only_where_onednn_runs_it():
    """Elsewhere the native U-Net refuses bf16 and the predictor runs PyTorch under autocast."""
    net = PetUNetGenerator("small").eval()
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        NativePetUNet(net, dtype=torch.float16)
    with pytest.raises(ValueError, match="needs oneDNN's fused"):
        NativePetUNet(net, dtype=torch.bfloat16, fused=False)
    if native_dtype_available(torch.bfloat16):
        assert Predictor(net, device="cpu", precision="bf16").backend == "native"
    else:
        assert native_network(net, dtype=torch.bfloat16) is None
        assert Predictor(net, device="cpu", precision="bf16").backend == "torch"
        with pytest.raises(ValueError, match="backend='native' runs a PET U-Net"):
            Predictor(net, device="cpu", precision="bf16", backend="native")


def test_calls_are_independent_and_leave_their_input_alone():
    """A pass reuses its own intermediate storage (the first encoder output's receives the last
    decoder level's output): every call still gives its own input's result, whatever ran before,
    and leaves the input as it was."""
    net = randomised(PetUNetGenerator("small", residual=True))
    native = native_network(net)
    a, b = torch.randn(1, 1, 32, 48, 32), torch.randn(1, 1, 32, 48, 32)
    a0, b0 = a.clone(), b.clone()
    ya, yb, ya_again = native(a), native(b), native(a)
    assert torch.equal(a, a0) and torch.equal(b, b0)
    assert torch.equal(ya, ya_again) and not torch.equal(ya, yb)
    with torch.no_grad():
        ref = net(b)
    assert (yb - ref).abs().max() < 1e-5 * (ref.max() - ref.min())


def test_the_network_is_left_as_it_was():
    net = randomised(PetUNetGenerator("small", residual=True))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    native_network(net)(torch.randn(1, 1, 16, 16, 16))
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    assert all(p.is_contiguous() for p in net.parameters())


class Shifted(PetUNetGenerator):
    def forward(self, x):
        return super().forward(x) + 1


def test_other_structures_are_refused():
    assert native_network(PetUNetGenerator("small").train()) is None  # batch statistics
    assert native_network(ConcatenatedGenerator(2, "small").train()) is None
    assert native_network(Shifted("small").eval()) is None  # a subclass may compute something else
    relu = PetUNetGenerator("small").eval()
    relu.encoder[1][2] = nn.ReLU()
    assert native_network(relu) is None
    dilated = PetUNetGenerator("small").eval()
    dilated.decoder[0][0] = nn.ConvTranspose3d(128, 64, 4, stride=2, padding=1, dilation=2)
    assert native_network(dilated) is None
    stages = ConcatenatedGenerator(2, "small").eval()
    stages.stages[1].decoder[1][2] = nn.Identity()
    assert native_network(stages) is None


@pytest.mark.parametrize("fast", [False, True])
def test_predictor_runs_the_unet_natively_without_a_c_compiler(fast, monkeypatch):
    """``auto`` picks the native form for the PET U-Net on the CPU in fp32 (it needs no compiled
    kernels), in the default and the fast mode, and it matches the PyTorch backend."""
    monkeypatch.setenv("VOLGAN_NATIVE_KERNELS", "0")
    native_kernels.load_library.cache_clear()
    try:
        net = randomised(PetUNetGenerator(channels=(4, 8, 8), residual=True))
        arr = phantom((40, 36, 30))
        native = Predictor(net, roi_size=(16, 16, 16), device="cpu", fast=fast, precision="fp32")
        assert native.backend == "native" and not native.winograd
        torch_pred = Predictor(net, roi_size=(16, 16, 16), device="cpu", fast=fast, precision="fp32", backend="torch")
        ref = torch_pred.predict_array(arr)
        np.testing.assert_allclose(native.predict_array(arr), ref, atol=1e-5 * float(ref.max() - ref.min()))
        assert Predictor(net, device="cpu", backend="native", winograd=False).backend == "native"
    finally:
        native_kernels.load_library.cache_clear()


def test_the_head_without_the_c_pass(monkeypatch):
    """Where the C kernels do not build, the head's two halves, the interleaving, the residual and
    the ReLU run in PyTorch, with the same result."""
    net = randomised(PetUNetGenerator("small", residual=True))
    x = torch.randn(1, 1, 32, 48, 32)
    with_pass = NativePetUNet(net)
    monkeypatch.setattr("volgan.inference.cpu.subpixel_head.load_library", lambda: None)
    without = NativePetUNet(net)
    assert without.head_pass is None and (with_pass.head_pass is not None) is (native_kernels.load_library() is not None)
    with torch.no_grad():
        ref = net(x)
    for native in (with_pass, without):
        assert (native(x) - ref).abs().max() < 1e-5 * (ref.max() - ref.min())
