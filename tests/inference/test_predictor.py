from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import oblique_affine, phantom
from volgan.inference import Predictor
from volgan.inference.optimise import cpu_has_fast_bf16
from volgan.io import Volume
from volgan.networks import RedWganGenerator


class Identity(nn.Module):
    def forward(self, x):
        return x * 1.0


class Double(nn.Module):
    def forward(self, x):
        return 2.0 * x


@pytest.mark.parametrize("shape", [(40, 33, 21), (9, 7, 5)])
def test_identity_network_returns_the_input_in_input_units(shape):
    """Normalisation is inverted and windows are stitched seamlessly, for volumes larger and
    smaller than the window."""
    arr = phantom(shape) * 37.0 + 5.0
    vol = Volume(arr, oblique_affine(), path="x.nii.gz", units="a.u.")
    out = Predictor(Identity(), roi_size=(16, 16, 16), overlap=0.5, device="cpu").predict(vol)
    assert out.shape == vol.shape and out.units == "a.u."
    np.testing.assert_allclose(out.affine, vol.affine)
    np.testing.assert_allclose(out.array, arr, rtol=1e-5, atol=1e-3)


def test_output_is_in_input_units_for_a_scaling_network():
    arr = phantom() * 1000.0
    out = Predictor(Double(), roi_size=(8, 8, 8), device="cpu").predict_array(arr)
    np.testing.assert_allclose(out, 2 * arr, rtol=1e-5, atol=1e-2)


def test_checkpoint_is_loaded_from_training_state(tmp_path):
    torch.manual_seed(0)
    trained = RedWganGenerator("small")
    torch.save({"generator": trained.state_dict(), "critic": {}}, tmp_path / "state.pt")
    fresh = RedWganGenerator("small")
    Predictor(fresh, checkpoint=tmp_path / "state.pt", device="cpu")
    for a, b in zip(fresh.state_dict().values(), trained.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_channels_last_matches_default_layout():
    torch.manual_seed(0)
    net = RedWganGenerator("small")
    arr = phantom((20, 20, 12))
    ref = Predictor(net, roi_size=(16, 16, 8), device="cpu").predict_array(arr)
    fast = Predictor(net, roi_size=(16, 16, 8), device="cpu", channels_last=True).predict_array(arr)
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-4 * float(arr.max()))


def test_rejects_unknown_precision():
    with pytest.raises(ValueError, match="precision"):
        Predictor(Identity(), precision="int4")


def trained_like_generator() -> RedWganGenerator:
    """The small RED-WGAN with non-trivial BatchNorm statistics and output layer (not the identity)."""
    torch.manual_seed(0)
    net = RedWganGenerator("small").eval()
    nn.init.normal_(net.dec1.weight, std=0.02)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("shape", [(40, 36, 30), (9, 20, 5)])
def test_default_mode_matches_monai_sliding_window_inference(shape):
    """fp32 mode reproduces monai.inferers.SlidingWindowInferer (gaussian, same windows), padding
    volumes smaller than the window as MONAI does, to < 1e-4 of the data range."""
    from monai.inferers import SlidingWindowInferer

    from volgan.data.normalise import PercentileScaler

    net = trained_like_generator()
    arr = phantom(shape)
    params = PercentileScaler().fit(arr)
    with torch.no_grad():
        x = torch.from_numpy(params.apply(arr))[None, None]
        ref = SlidingWindowInferer((16, 16, 16), sw_batch_size=1, overlap=0.25, mode="gaussian")(x, net)
    ref = params.invert(ref[0, 0].numpy())
    out = Predictor(net, roi_size=(16, 16, 16), sw_batch_size=3, device="cpu").predict_array(arr)
    assert np.abs(out - ref).max() < 1e-4 * (ref.max() - ref.min())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fast_mode_agrees_with_fp32_within_the_stated_bound(precision):
    """Fast mode (larger windows, channels-last, folded BatchNorm; in bf16 with the bundle's
    fp32 share) stays within 45 dB PSNR of the fp32 default on the shipped denoiser and a noisy
    phantom."""
    from pathlib import Path

    if precision == "bf16" and not cpu_has_fast_bf16():
        pytest.skip("this CPU has no native bf16 (emulated bf16 takes minutes here)")
    net = RedWganGenerator("small")
    weights = Path(__file__).parents[2] / "bundles" / "mri_denoise_redwgan" / "models" / "model.pt"
    arr = phantom((48, 40, 36)) + np.random.default_rng(0).normal(0, 5, (48, 40, 36)).clip(0).astype(np.float32)
    ref = Predictor(net, checkpoint=weights, roi_size=(24, 24, 24), device="cpu").predict_array(arr)
    fast = Predictor(net, checkpoint=weights, device="cpu", fast=True, max_window=(32, 32, 32), margin=16,
                     precision=precision, fp32_share=0.03)
    out = fast.predict_array(arr)
    assert len(fast.plan(arr.shape)) == 8 and fast.precision == precision
    data_range = ref.max() - ref.min()
    psnr = 10 * np.log10(data_range**2 / np.mean((out - ref) ** 2))
    assert psnr > 45.0, psnr


def test_rejects_impossible_backends():
    with pytest.raises(ValueError, match="backend must be"):
        Predictor(Identity(), device="cpu", backend="tensorrt")
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'native', 'torch'\), got 'onnxruntime'"):
        Predictor(Identity(), device="cpu", backend="onnxruntime")
    from volgan.inference.cpu import build_forward

    with pytest.raises(ValueError, match="backend must be one of"):
        build_forward(Identity(), "cpu", "fp32", False, "onnxruntime")
    with pytest.raises(ValueError, match="runs on the CPU only"):
        Predictor(Identity(), device="meta", backend="native")


def test_fast_mode_batches_large_windows_one_at_a_time():
    """Fast mode's batches hold at most FAST_BATCH_VOXELS voxels (activation memory scales with
    the batch); the default grid keeps sw_batch_size."""
    from volgan.inference.predictor import FAST_BATCH_VOXELS

    fast = Predictor(Identity(), device="cpu", fast=True, sw_batch_size=4, backend="torch")
    large, small = fast.plan((192, 224, 192)), fast.plan((40, 40, 40))
    assert fast.batch_size(large) == 1 and math.prod(large.window) > FAST_BATCH_VOXELS
    assert fast.batch_size(small) == 4
    grid = Predictor(Identity(), device="cpu", sw_batch_size=4, backend="torch")
    assert grid.batch_size(grid.plan((192, 224, 192))) == 4


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_pet_unet_reproduces_monai(backend):
    """The PET U-Net (strided and transposed convolutions) runs natively by default on the CPU
    (test_native_unet.py), or in PyTorch with its transposed convolutions in sub-pixel form; both
    reproduce MONAI's sliding-window result to < 1e-4 of the data range."""
    from monai.inferers import SlidingWindowInferer

    from volgan.data.normalise import PercentileScaler
    from volgan.networks import PetUNetGenerator

    torch.manual_seed(0)
    net = PetUNetGenerator(channels=(4, 8, 8), residual=True).eval()
    for p in net.parameters():
        nn.init.normal_(p, std=0.2)
    pred = Predictor(net, roi_size=(16, 16, 16), device="cpu", backend=backend)
    assert not pred.winograd
    assert (pred.backend, pred.subpixel) == (("torch", 3) if backend == "torch" else ("native", 0))
    arr = phantom((40, 36, 30))
    params = PercentileScaler().fit(arr)
    with torch.no_grad():
        ref = SlidingWindowInferer((16, 16, 16), sw_batch_size=1, overlap=0.25, mode="gaussian")(
            torch.from_numpy(params.apply(arr))[None, None], net)
    ref = params.invert(ref[0, 0].numpy())
    assert np.abs(pred.predict_array(arr) - ref).max() < 1e-4 * (ref.max() - ref.min())


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_the_callers_network_is_left_as_it_was(backend):
    """Predictor set-up (device move, channels-last) works on a copy even when nothing is folded."""
    net = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.Conv3d(4, 1, 3, padding=1)).eval()  # nothing to fold or convert: no copy on the way
    before = {k: v.clone() for k, v in net.state_dict().items()}
    Predictor(net, device="cpu", fast=True, backend=backend).predict_array(phantom((12, 10, 9)))
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    assert all(p.is_contiguous() for p in net.parameters())  # not converted to channels-last


def _mean_filter() -> nn.Module:
    """A 3x3x3 mean filter with zero padding: at a volume's border it sees the padding's zeros."""
    conv = nn.Conv3d(1, 1, 3, padding=1, bias=False)
    nn.init.constant_(conv.weight, 1.0 / 27)
    return conv


def test_an_edge_margin_shows_the_network_a_mirrored_edge_instead_of_zero_padding():
    from scipy import ndimage

    x = np.random.default_rng(5).random((10, 9, 8)).astype(np.float32) + 1.0
    mirrored = ndimage.uniform_filter(x, 3, mode="reflect")  # scipy's "reflect" repeats the edge voxel
    # one window covering the whole (grown) volume: only the volume's own border meets zero padding
    plain = Predictor(_mean_filter(), roi_size=x.shape, device="cpu").predict_array(x)
    grown = Predictor(_mean_filter(), roi_size=(14, 13, 12), device="cpu", edge_margin=2).predict_array(x)
    assert grown.shape == x.shape and grown.flags.c_contiguous
    np.testing.assert_allclose(grown, mirrored, rtol=1e-5)
    interior = (slice(1, -1),) * 3
    np.testing.assert_allclose(plain[interior], mirrored[interior], rtol=1e-5)
    assert np.all(plain[0] < mirrored[0] - 0.1)  # the zero padding darkens the border without the margin
    with pytest.raises(ValueError, match="edge_margin"):
        Predictor(_mean_filter(), device="cpu", edge_margin=-1)
