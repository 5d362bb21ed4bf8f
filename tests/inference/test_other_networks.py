"""Networks volgan has no native form for run through the Predictor, in both modes, on the CPU:
its own generators with a layer renamed, and MONAI's UNet and SegResNet."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from monai.inferers import SlidingWindowInferer
from monai.networks.nets import SegResNet, UNet

from tests.conftest import phantom, randomised
from volgan.data.normalise import LinearScale
from volgan.inference import Predictor
from volgan.inference.cpu.native import native_network
from volgan.networks import MdcsrnGenerator, PetUNetGenerator, RedWganGenerator


class _Renamed:
    """``module`` as its class's code sees it after a layer was renamed from ``old`` to ``new``."""

    def __init__(self, module, old, new):
        self._module, self._old, self._new = module, old, new

    def __getattr__(self, name):
        return getattr(self._module, self._new if name == self._old else name)


@pytest.mark.parametrize("make, old, new", [
    (lambda: PetUNetGenerator(channels=(4, 8), residual=True), "head", "last"),
    (lambda: RedWganGenerator("small"), "out_act", "final_act"),
    (lambda: MdcsrnGenerator("small"), "first", "stem"),
])
def test_a_generator_with_a_renamed_layer_runs_in_pytorch(make, old, new, monkeypatch):
    """The generator's own class, edited so that a layer the native form reads has another name:
    no native form (no error), and the predictor runs it in PyTorch (or ONNX Runtime) with the
    network's result."""
    net = randomised(make())
    arr = phantom((20, 18, 16))
    params = LinearScale(0.0, 100.0)
    expected = Predictor(net, roi_size=(16, 16, 16), device="cpu", backend="torch").predict_array(arr, params=params)
    with torch.no_grad():  # fast mode: one window, the whole volume
        whole = net(torch.from_numpy(arr / 100.0)[None, None]).numpy()[0, 0] * 100.0
    net.add_module(new, net._modules.pop(old))
    forward = type(net).forward
    monkeypatch.setattr(type(net), "forward", lambda self, x: forward(_Renamed(self, old, new), x))
    assert native_network(net) is None
    for fast in (False, True):
        pred = Predictor(net, roi_size=(16, 16, 16), device="cpu", fast=fast, precision="fp32")
        assert pred.backend == "torch" and pred.guard is not None and pred.guard.passed
        out = pred.predict_array(arr, params=params)
        reference = whole if fast else expected
        np.testing.assert_allclose(out, reference, atol=1e-4 * float(reference.max() - reference.min()))


def test_a_subclass_of_a_generator_has_no_native_form():
    class Shifted(RedWganGenerator):
        def forward(self, x):
            return super().forward(x) + 1

    net = randomised(Shifted("small"))
    assert native_network(net) is None
    pred = Predictor(net, roi_size=(16, 16, 16), device="cpu")
    arr = phantom((16, 16, 16))
    params = LinearScale(0.0, 1.0)
    with torch.no_grad():
        expected = net(torch.from_numpy(arr)[None, None]).numpy()[0, 0]
    np.testing.assert_allclose(pred.predict_array(arr, params=params), expected, atol=1e-4 * float(np.ptp(expected)))


@pytest.mark.parametrize("make", [
    lambda: UNet(spatial_dims=3, in_channels=1, out_channels=1, channels=(4, 8, 16), strides=(2, 2), num_res_units=1),
    lambda: SegResNet(spatial_dims=3, init_filters=4, in_channels=1, out_channels=1, blocks_down=(1, 2), blocks_up=(1,),
                      norm=("group", {"num_groups": 2})),
])
def test_monai_networks_run_in_both_modes(make):
    """Default mode equals MONAI's SlidingWindowInferer on the same network; fast mode (one
    whole-volume window, channels-last, the CPU's fast precision) agrees within its precision."""
    torch.manual_seed(0)
    net = make().eval()
    arr = phantom((24, 20, 16))
    params = LinearScale(0.0, 100.0)
    default = Predictor(net, roi_size=(16, 16, 16), overlap=0.25, device="cpu")
    assert default.backend == "torch" and native_network(net) is None
    out = default.predict_array(arr, params=params)
    inferer = SlidingWindowInferer(roi_size=(16, 16, 16), sw_batch_size=2, overlap=0.25, mode="gaussian")
    with torch.no_grad():
        ref = inferer(torch.from_numpy(arr / 100.0).float()[None, None], net).numpy()[0, 0] * 100.0
    scale = float(ref.max() - ref.min())
    np.testing.assert_allclose(out, ref, atol=1e-4 * scale)
    fast = Predictor(net, device="cpu", fast=True)
    assert fast.guard is not None and fast.guard.passed and fast.backend == "torch"
    out_fast = fast.predict_array(arr, params=params)
    with torch.no_grad():
        whole = net(torch.from_numpy(arr / 100.0).float()[None, None]).numpy()[0, 0] * 100.0
    assert np.isfinite(out_fast).all()
    np.testing.assert_allclose(out_fast, whole, atol=(5e-2 if fast.precision != "fp32" else 1e-4) * scale)


def test_the_core_and_a_predictor_off_the_cpu_never_import_the_cpu_accelerator():
    """``volgan.inference`` and a predictor on another device (here PyTorch's "meta" device, which
    runs nothing) work without ``volgan.inference.cpu``; a CPU predictor imports it."""
    code = ("import sys\nfrom torch import nn\nfrom volgan.inference import Predictor\n"
            "pred = Predictor(nn.Conv3d(1, 1, 3, padding=1), device='meta')\n"
            "assert pred.backend == 'torch' and pred.network.weight.device.type == 'meta'\n"
            "print('volgan.inference.cpu' in sys.modules)\n"
            "Predictor(nn.Conv3d(1, 1, 3, padding=1), device='cpu')\n"
            "print('volgan.inference.cpu' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
    with pytest.raises(ValueError, match="CPU only"):
        Predictor(torch.nn.Conv3d(1, 1, 3, padding=1), device="meta", backend="native")
