from __future__ import annotations

import pytest
import torch

from volgan.losses import AdversarialLoss
from volgan.networks import ConcatenatedGenerator, PetPatchDiscriminator, PetUNetGenerator


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_the_presets():
    assert n_params(PetUNetGenerator("paper")) == 24_656_577
    assert n_params(PetUNetGenerator("small")) == 1_543_857


@pytest.mark.parametrize("shape", [(2, 1, 32, 32, 32), (1, 1, 20, 33, 17), (1, 1, 5, 7, 9)])
def test_generator_keeps_any_shape_and_is_non_negative(shape):
    net = PetUNetGenerator("small").eval()
    y = net(torch.randn(shape))
    assert y.shape == shape and (y >= 0).all()


def test_residual_generator_starts_as_the_identity_on_pet_values():
    x = torch.rand(1, 1, 20, 33, 17)
    torch.testing.assert_close(PetUNetGenerator("small", residual=True).eval()(x), x)


def test_plain_generator_does_not_start_as_the_identity():
    x = torch.rand(1, 1, 16, 16, 16)
    assert (PetUNetGenerator("small").eval()(x) - x).abs().max() > 1e-3


def test_skip_connections_carry_fine_detail():
    """With the bottleneck's output zeroed, the output still depends on the input via the skips."""
    net = PetUNetGenerator(channels=(4, 8)).eval()
    with torch.no_grad():
        for p in net.encoder[-1].parameters():
            p.zero_()
    x = torch.rand(1, 1, 8, 8, 8)
    x2 = x.clone()
    x2[0, 0, 2, 2, 2] += 1.0
    assert not torch.allclose(net(x), net(x2))


def test_concatenated_generator_refines_the_first_stage_output():
    net = ConcatenatedGenerator(2, channels=(4, 8)).eval()
    x = torch.rand(1, 1, 16, 16, 16)
    torch.testing.assert_close(net(x), net.stages[1](net.stages[0](x)))


def test_frozen_stages_get_no_gradients_and_keep_their_batchnorm_statistics():
    net = ConcatenatedGenerator(2, channels=(4, 8)).freeze_stages(1)
    net.train()
    running = net.stages[0].encoder[1][1].running_mean.clone()
    net(torch.rand(2, 1, 16, 16, 16) * 5).mean().backward()
    assert all(p.grad is None for p in net.stages[0].parameters())
    assert all(p.grad is not None for p in net.stages[1].parameters())
    torch.testing.assert_close(net.stages[0].encoder[1][1].running_mean, running)
    assert not net.stages[0].training and net.stages[1].training


def test_discriminator_scores_patches_of_the_conditioned_pair():
    d = PetPatchDiscriminator((8, 16, 32, 64))
    assert d(torch.rand(2, 2, 32, 32, 32)).shape == (2, 1, 2, 2, 2)
    with pytest.raises(RuntimeError):
        d(torch.rand(2, 1, 32, 32, 32))  # the condition is missing


def test_one_cgan_step_reaches_every_parameter():
    gen, disc = PetUNetGenerator(channels=(4, 8, 16)), PetPatchDiscriminator((4, 8, 16, 32))
    low, full = torch.rand(2, 1, 32, 32, 32), torch.rand(2, 1, 32, 32, 32)
    adv = AdversarialLoss("bce")
    fake = gen(low)
    loss = adv.generator(disc(torch.cat([low, fake], 1))) + 300.0 * (fake - full).abs().mean()
    loss = loss + adv.critic(disc(torch.cat([low, full], 1)), disc(torch.cat([low, fake.detach()], 1)))
    loss.backward()
    for name, p in list(gen.named_parameters()) + list(disc.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_torchscript_matches_eager():
    net = PetUNetGenerator("small", residual=True).eval()
    torch.nn.init.normal_(net.head.weight, std=0.01)
    x = torch.rand(1, 1, 18, 24, 20)
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


def test_bad_presets_are_refused():
    with pytest.raises(ValueError, match="preset"):
        PetUNetGenerator("huge")
    with pytest.raises(ValueError, match="stages"):
        ConcatenatedGenerator(0)
