from __future__ import annotations

import pytest
import torch

from volgan.inference.cpu.onnx_backend import OnnxRuntimeForward, onnxruntime_available
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


def test_depth_major_network_is_exported_once_per_depth():
    """The depth-major rewrite's code depends on the depth only: one export (traced on a small
    plane) serves windows of any height and width, with PyTorch's result."""
    from volgan.inference.cpu.depth_major import depth_major_network
    from volgan.inference.optimise import fold_batchnorm
    from volgan.networks import RedWganGenerator

    torch.manual_seed(0)
    net = fold_batchnorm(RedWganGenerator(channels=(8, 16, 16, 8)).eval())
    torch.nn.init.normal_(net.dec1.weight, std=0.05)
    forward = OnnxRuntimeForward(depth_major_network(net), threads=1, plane_dynamic=True)
    for shape in [(12, 20, 24), (12, 9, 31), (7, 16, 16)]:
        x = torch.rand(2, 1, *shape)
        with torch.no_grad():
            torch.testing.assert_close(forward(x), net(x), rtol=1e-4, atol=1e-5)
    assert len(forward.sessions) == 2
