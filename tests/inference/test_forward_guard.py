"""Accelerated forms prove themselves on a probe before the predictor trusts them (forward_guard)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import phantom, randomised
from volgan.data.normalise import LinearScale
from volgan.inference import Predictor
from volgan.inference.forward_guard import BOUNDS, check_form, relative_error
from volgan.networks import PetUNetGenerator

GUARD = "volgan.inference.forward_guard"


def _net():
    return randomised(PetUNetGenerator(channels=(4, 8), residual=True))


def _warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and "discarded" in r.getMessage()]


class WrongForm:
    """A native form that computes something else (``kind``: garbage, NaN, or an exception)."""

    winograd = False

    def __init__(self, network, kind):
        self.network, self.kind, self.calls = network, kind, 0

    def __call__(self, x):
        self.calls += 1
        if self.kind == "raise":
            raise RuntimeError("primitive creation failed")
        y = self.network(x)
        return torch.full_like(y, 7e28) if self.kind == "garbage" else torch.full_like(y, float("nan"))


@pytest.mark.parametrize("kind, reason", [("garbage", "max error"), ("nan", "non-finite output"),
                                          ("raise", "RuntimeError: primitive creation failed")])
def test_a_wrong_form_is_discarded_with_one_warning_and_the_plain_network_runs(kind, reason, monkeypatch, caplog):
    net = _net()
    forms = []

    def wrong_native(network, winograd=True, dtype=torch.float32):
        forms.append(WrongForm(network, kind))
        return forms[-1]

    monkeypatch.setattr("volgan.inference.cpu.native_network", wrong_native)
    arr = phantom((20, 18, 16))
    with caplog.at_level(logging.WARNING):
        pred = Predictor(net, roi_size=(16, 16, 16), device="cpu")
        again = Predictor(net, roi_size=(16, 16, 16), device="cpu")  # the same network and form: no second probe
        out = pred.predict_array(arr)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and warnings[0].name == GUARD
    assert "PetUNetGenerator as native WrongForm in fp32 on cpu" in warnings[0].getMessage()
    assert reason in warnings[0].getMessage()
    assert not pred.guard.passed and pred.guard is again.guard and forms[0].calls == 1 and forms[1].calls == 0
    assert (pred.backend, pred.precision, pred.form_name()) == ("torch", "fp32", None) and pred.network is net
    plain = Predictor(net, roi_size=(16, 16, 16), device="cpu", backend="torch").predict_array(arr)
    np.testing.assert_allclose(out, plain, atol=1e-5 * float(plain.max() - plain.min()))


def test_a_form_within_its_bound_is_kept(caplog):
    net = _net()
    with caplog.at_level(logging.WARNING):
        pred = Predictor(net, roi_size=(16, 16, 16), device="cpu")
    assert pred.backend == "native" and pred.guard.passed and 0 <= pred.guard.error <= BOUNDS["fp32"]
    assert not _warnings(caplog)


def test_the_bound_is_per_precision():
    """A 1 % error passes as bf16 rounding and fails as fp32."""
    net = _net()

    def off(x):
        y = net(x)
        return y + 0.01 * (y.max() - y.min())

    assert relative_error(off(torch.rand(1, 1, 8, 8, 8)), net(torch.rand(1, 1, 8, 8, 8))) > 0
    assert check_form("off by 1 %", off, net, precision="bf16", device=torch.device("cpu")).passed
    verdict = check_form("off by 1 %", off, net, precision="fp32", device=torch.device("cpu"))
    assert not verdict.passed and 0.009 < verdict.error < 0.011


def test_a_network_that_cannot_run_the_probe_leaves_the_form_unchecked():
    class NeedsBig(nn.Module):
        def forward(self, x):
            if x.shape[-1] < 64:
                raise ValueError("needs 64 voxels a side")
            return x

    verdict = check_form("anything", lambda x: x, NeedsBig(), precision="fp32", device=torch.device("cpu"))
    assert verdict.passed and np.isnan(verdict.error) and verdict.reason == "unchecked"


class NanOnLarge:
    """Right on the probe, NaN on windows larger than it (a form that fails on some shapes only)."""

    winograd = False

    def __init__(self, network):
        self.network = network

    def __call__(self, x):
        y = self.network(x)
        return y if x.shape[-1] <= 32 else torch.full_like(y, float("nan"))


def test_a_non_finite_window_output_falls_back_to_the_plain_network(monkeypatch, caplog):
    net = _net()
    monkeypatch.setattr("volgan.inference.cpu.native_network", lambda network, *a, **k: NanOnLarge(network))
    arr = phantom((40, 36, 34))
    pred = Predictor(net, roi_size=(40, 36, 34), device="cpu")
    assert pred.backend == "native" and pred.guard.passed
    with caplog.at_level(logging.WARNING):
        out = pred.predict_array(arr)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "NaN or infinite" in warnings[0].getMessage() and pred.backend == "torch"
    assert np.isfinite(out).all()
    plain = Predictor(net, roi_size=(40, 36, 34), device="cpu", backend="torch").predict_array(arr)
    np.testing.assert_allclose(out, plain, atol=1e-5 * float(plain.max() - plain.min()))


def test_a_plain_network_with_non_finite_output_is_an_error():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv3d(1, 1, 3, padding=1)

        def forward(self, x):
            return torch.log(self.conv(x) - 1e6)  # NaN everywhere

    pred = Predictor(Broken(), roi_size=(16, 16, 16), device="cpu", backend="torch")
    with pytest.raises(FloatingPointError, match="Broken gave NaN or infinite values for a finite input window"):
        pred.predict_array(phantom((16, 16, 16)))


def test_non_finite_input_is_not_the_forms_fault():
    """A NaN in the input may give NaN in the output: the form stays."""
    net = _net()
    pred = Predictor(net, roi_size=(16, 16, 16), device="cpu")
    arr = phantom((16, 16, 16))
    arr[3, 4, 5] = np.nan
    out = pred.predict_array(arr, params=LinearScale(0.0, 100.0))
    assert pred.backend == "native" and np.isnan(out).any()
