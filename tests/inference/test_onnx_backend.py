from __future__ import annotations

import pytest
import torch

from volgan.inference.onnx_backend import OnnxRuntimeForward, onnxruntime_available
from volgan.networks import PetUNetGenerator

pytestmark = pytest.mark.skipif(not onnxruntime_available(), reason="needs onnxruntime (the onnx extra)")


def test_each_window_shape_gets_its_own_export():
    """The PET U-Net pads odd shapes to a multiple of 16 in Python: a trace made for one shape
    must not be reused for another."""
    net = PetUNetGenerator(channels=(4, 8), residual=True).eval()
    torch.nn.init.normal_(net.head.weight, std=0.05)
    forward = OnnxRuntimeForward(net, threads=1)
    for shape in [(16, 16, 16), (13, 18, 9), (16, 16, 16)]:
        x = torch.rand(2, 1, *shape)
        with torch.no_grad():
            torch.testing.assert_close(forward(x), net(x), rtol=1e-4, atol=1e-5)
    assert len(forward.sessions) == 2
