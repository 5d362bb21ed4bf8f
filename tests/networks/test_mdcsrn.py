"""mDCSRN generator and critic: shapes, parameter counts, gradients, TorchScript."""

from __future__ import annotations

import pytest
import torch

from volgan.networks import MdcsrnCritic, MdcsrnGenerator


@pytest.mark.parametrize("preset, n_params", [("paper", 402_593), ("small", 101_457)])
def test_generator_parameter_counts(preset, n_params):
    assert sum(p.numel() for p in MdcsrnGenerator(preset).parameters()) == n_params


def test_generator_topology_is_b4u4_with_multi_level_reconstruction():
    net = MdcsrnGenerator("paper")
    assert net.first.out_channels == 32  # 2k, k = 16
    assert len(net.blocks) == 4 and all(len(b.units) == 4 for b in net.blocks)
    assert [u.conv.in_channels for u in net.blocks[0].units] == [32, 48, 64, 80]
    assert all(u.conv.out_channels == 16 and u.conv.kernel_size == (3, 3, 3) for b in net.blocks for u in b.units)
    assert all(c.in_channels == 96 and c.out_channels == 32 and c.kernel_size == (1, 1, 1) for c in net.compressors)
    # first conv + the 4 compressors, 2k maps each, concatenated into a 1x1x1 reconstruction
    assert net.reconstruction.in_channels == 5 * 32 and net.reconstruction.kernel_size == (1, 1, 1)


@pytest.mark.parametrize("shape", [(2, 1, 12, 16, 20), (1, 1, 7, 9, 5)])
def test_generator_keeps_the_grid(shape):
    assert MdcsrnGenerator("small")(torch.rand(shape)).shape == shape


def test_untrained_residual_generator_is_identity_and_published_variant_is_not():
    x = torch.rand(1, 1, 8, 8, 8)
    torch.testing.assert_close(MdcsrnGenerator("small").eval()(x), x)
    assert not torch.allclose(MdcsrnGenerator("small", global_residual=False).eval()(x), x)


def test_every_generator_parameter_gets_a_gradient():
    net = MdcsrnGenerator("small", global_residual=False)
    net(torch.rand(2, 1, 8, 8, 8)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_critic_shape_widths_and_gradient():
    critic = MdcsrnCritic(patch_size=(32, 32, 16), preset="paper")
    widths = [m.out_channels for m in critic.features if isinstance(m, torch.nn.Conv3d)]
    strides = [m.stride[0] for m in critic.features if isinstance(m, torch.nn.Conv3d)]
    assert widths == [64, 64, 128, 128, 256, 256, 512, 512] and strides == [1, 2] * 4
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in critic.modules())
    assert critic.head[0].out_features == 1024 and critic.head[-1].out_features == 1
    x = torch.rand(2, 1, 32, 32, 16, requires_grad=True)
    out = critic(x)
    assert out.shape == (2, 1)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_critic_scores_each_sample_independently():
    """LayerNorm (not BatchNorm): a sample's score does not depend on the rest of the batch."""
    critic = MdcsrnCritic(patch_size=(16, 16, 16), preset="small").train()
    x = torch.rand(3, 1, 16, 16, 16)
    torch.testing.assert_close(critic(x)[:1], critic(x[:1]))


def test_critic_rejects_other_patch_sizes():
    with pytest.raises(ValueError, match="multiples of 16"):
        MdcsrnCritic(patch_size=(24, 32, 32))
    with pytest.raises(ValueError, match="built for patches"):
        MdcsrnCritic(patch_size=(16, 16, 16), preset="small")(torch.rand(1, 1, 32, 16, 16))


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset"):
        MdcsrnGenerator("huge")


def test_torchscript_matches_eager():
    net = MdcsrnGenerator("small").eval()
    torch.nn.init.normal_(net.reconstruction.weight, std=0.1)
    scripted = torch.jit.script(net)
    x = torch.rand(1, 1, 10, 12, 8)
    torch.testing.assert_close(scripted(x), net(x))
    critic = MdcsrnCritic(patch_size=(16, 16, 16), preset="small").eval()
    y = torch.rand(2, 1, 16, 16, 16)
    torch.testing.assert_close(torch.jit.script(critic)(y), critic(y))
