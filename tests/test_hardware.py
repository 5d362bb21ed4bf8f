from __future__ import annotations

import pytest

from volgan.hardware import BF16_SWITCH, cpu_has_fast_bf16
from volgan.inference import Predictor
from volgan.networks import RedWganGenerator


def test_the_switch_makes_fast_mode_fp32_on_any_cpu(monkeypatch):
    """VOLGAN_CPU_BF16=0: no native bf16 claimed, so fast mode picks fp32 as on an AVX2-only CPU."""
    monkeypatch.setenv(BF16_SWITCH, "0")
    assert cpu_has_fast_bf16() is False
    net = RedWganGenerator(channels=(2, 2, 2, 2)).eval()
    assert Predictor(net, device="cpu", fast=True).precision == "fp32"


def test_unset_the_cpu_decides(monkeypatch):
    monkeypatch.delenv(BF16_SWITCH, raising=False)
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    assert cpu_has_fast_bf16() == any(f" {flag}" in flags for flag in ("avx512_bf16", "amx_bf16"))
    monkeypatch.setenv(BF16_SWITCH, "1")  # never claims more than the CPU has
    assert cpu_has_fast_bf16() == any(f" {flag}" in flags for flag in ("avx512_bf16", "amx_bf16"))


@pytest.mark.parametrize("value", ["yes", "2", "on"])
def test_other_values_are_refused_with_the_variable_named(monkeypatch, value):
    monkeypatch.setenv(BF16_SWITCH, value)
    with pytest.raises(ValueError, match=BF16_SWITCH):
        cpu_has_fast_bf16()
