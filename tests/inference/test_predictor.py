from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import oblique_affine, phantom
from volgan.inference import Predictor
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


def test_stitch_device_choice():
    p = Predictor(Identity(), device="cpu")
    assert p._stitch_device(10**9).type == "cpu"
    p.device = torch.device("cuda")
    assert p._stitch_device(10**9).type == "cpu"
    assert p._stitch_device(10).type == "cuda"
    p.stitch_on_cpu = False
    assert p._stitch_device(10**9).type == "cuda"


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
