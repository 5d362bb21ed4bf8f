"""Accelerated forward passes prove themselves against the plain network before they are trusted.

Every form the :class:`~volgan.inference.Predictor` builds instead of running the network as it is
(volgan's native CPU forms, ONNX Runtime, PyTorch with rewritten layers, reduced precision) runs
once on a probe input next to the plain network in float32 on the same device. A form whose
output is not finite, or differs from the plain network's by more than its precision's bound,
is discarded with one warning naming it and its error, and the plain network runs instead.

The bound is on the largest absolute difference divided by the plain output's range
(:data:`BOUNDS`): float32 forms differ by rounding alone (Winograd, folded BatchNorms, other
summation orders), bf16 and fp16 ones by 8 and 11 significant bits per layer. A verdict is
kept per (network class and weights, form, precision, device) for the life of the process, so a
form is probed, and warned about, once.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

logger = logging.getLogger(__name__)

# largest |form - plain| / range(plain) on the probe, per precision of the form
BOUNDS = {"fp32": 1e-4, "bf16": 0.05, "fp16": 0.02}
# spatial shape of the probe input: divisible by 32 (U-Nets of up to five levels), a few ms
PROBE_SHAPE = (32, 32, 32)

# fingerprint -> (the network, weakly, and its verdict): a fingerprint names a live network only
_verdicts: dict[tuple, tuple[weakref.ref, Verdict]] = {}


@dataclass(frozen=True)
class Verdict:
    """The outcome of probing one form: ``passed``, the relative ``error`` (``inf`` when the output
    was not finite or the form failed) against ``bound``, and why it failed (``reason``)."""

    form: str
    passed: bool
    error: float
    bound: float
    reason: str = ""


def fingerprint(network: nn.Module) -> tuple:
    """What identifies a network's function in this process: its class, and each tensor of its
    state by storage and version (an in-place weight update changes the version)."""
    state = tuple((name, t.data_ptr(), t._version, tuple(t.shape)) for name, t in network.state_dict(keep_vars=True).items())
    return type(network).__module__, type(network).__qualname__, id(network), state


def image_channels(network: nn.Module) -> int:
    """The input channels of the network's first convolution (1 when it has none)."""
    for module in network.modules():
        if isinstance(module, nn.Conv3d):
            return module.in_channels
        if isinstance(module, nn.ConvTranspose3d):
            return module.in_channels
    return 1


def probe_input(channels: int, device: torch.device, shape: tuple[int, int, int] = PROBE_SHAPE) -> torch.Tensor:
    """A seeded probe in the range of normalised images: a bright ball on a dim background, with noise."""
    generator = torch.Generator().manual_seed(0)
    axes = [torch.linspace(-1, 1, s) for s in shape]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    ball = ((grid**2).sum(0) < 0.5).float()
    noise = torch.rand((1, channels, *shape), generator=generator)
    return (0.7 * ball + 0.3 * noise).to(device)


def relative_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    """``max |output - reference| / range(reference)`` (the range at least ``max |reference|``
    times 1e-3, so that a constant reference does not divide by zero); ``inf`` for a non-finite
    output or a shape mismatch."""
    if output.shape != reference.shape or not bool(torch.isfinite(output).all()):
        return float("inf")
    output, reference = output.detach().float(), reference.detach().float()
    scale = max(float(reference.max() - reference.min()), 1e-3 * float(reference.abs().max()), 1e-12)
    return float((output - reference).abs().max()) / scale


@torch.inference_mode()
def check_form(form: str, forward: Callable[[torch.Tensor], torch.Tensor], reference: nn.Module, *,
               precision: str, device: torch.device, network: nn.Module | None = None) -> Verdict:
    """Probe ``forward`` (the form called ``form``) against ``reference`` (the plain network, run in
    float32 on ``device``) once per network, form, precision and device; warn once when it fails.

    ``network``: the network the verdict is kept for (default: ``reference``; e.g. the caller's
    module where ``reference`` is its copy on a GPU). A reference that cannot run the probe (a
    network that needs other input shapes) leaves the form unchecked (passed, error ``nan``),
    logged at info level."""
    network = reference if network is None else network
    key = (fingerprint(network), form, precision, str(device))
    if key in _verdicts and _verdicts[key][0]() is network:
        return _verdicts[key][1]
    bound = BOUNDS[precision]
    x = probe_input(image_channels(reference), device)
    try:
        expected = reference(x.clone()).float()
    except Exception as err:  # e.g. a network that needs larger inputs than the probe
        logger.info("%s left unchecked: the plain network failed on the %s probe (%s: %s)", form, PROBE_SHAPE,
                    type(err).__name__, err)
        verdict = Verdict(form, True, float("nan"), bound, "unchecked")
    else:
        try:
            error = relative_error(forward(x.clone()), expected)
            reason = "" if error <= bound else ("non-finite output" if error == float("inf") else
                                                f"max error {error:.3g} of the output range (bound {bound:g})")
        except Exception as err:
            error, reason = float("inf"), f"{type(err).__name__}: {err}"
        verdict = Verdict(form, error <= bound, error, bound, reason)
        if not verdict.passed:
            logger.warning("%s discarded, the plain network runs instead: on a probe input it gave %s", form, reason)
    _verdicts[key] = (weakref.ref(network), verdict)
    return verdict


def finite_where_input_is(output: torch.Tensor, x: torch.Tensor) -> bool:
    """False when ``output`` has a NaN or infinity although ``x`` has none."""
    return bool(torch.isfinite(output).all()) or not bool(torch.isfinite(x).all())
