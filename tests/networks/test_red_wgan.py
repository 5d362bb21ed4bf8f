from __future__ import annotations

import pytest
import torch

from volgan.networks import RedWganCritic, RedWganGenerator


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_docstrings():
    assert n_params(RedWganGenerator("paper")) == 2_326_273
    assert n_params(RedWganGenerator("small")) == 582_529
    critic = RedWganCritic((6, 32, 32))
    assert n_params(critic.features) == 277_568 and n_params(critic.score) == 786_433


@pytest.mark.parametrize("shape", [(2, 1, 6, 32, 32), (1, 1, 13, 9, 17)])
def test_generator_shape_and_non_negative_output(shape):
    net = RedWganGenerator("small").eval()
    y = net(torch.randn(shape))
    assert y.shape == shape
    assert (y >= 0).all()


def test_generator_residual_path_from_input():
    """With all convolutions zeroed the generator is ReLU(input): the input skip connection."""
    net = RedWganGenerator("small").eval()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv3d):
            torch.nn.init.zeros_(m.weight)
            torch.nn.init.zeros_(m.bias)
    x = torch.randn(1, 1, 6, 8, 8)
    torch.testing.assert_close(net(x), torch.relu(x))


def test_untrained_generator_is_the_identity_on_non_negative_images():
    x = torch.rand(1, 1, 6, 16, 16)
    torch.testing.assert_close(RedWganGenerator("small").eval()(x), x)


def test_gradients_reach_every_parameter():
    gen, critic = RedWganGenerator("small"), RedWganCritic((6, 16, 16))
    torch.nn.init.normal_(gen.dec1.weight, std=0.1)  # leave the identity start
    x = torch.rand(2, 1, 6, 16, 16)
    critic(gen(x)).mean().backward()
    for name, p in list(gen.named_parameters()) + list(critic.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_torchscript_matches_eager():
    gen = RedWganGenerator("small").eval()
    scripted = torch.jit.script(gen)
    x = torch.rand(1, 1, 8, 12, 10)
    torch.testing.assert_close(scripted(x), gen(x))
    critic = RedWganCritic((6, 16, 16)).eval()
    torch.testing.assert_close(torch.jit.script(critic)(torch.rand(2, 1, 6, 16, 16)).shape, torch.Size([2, 1]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="preset"):
        RedWganGenerator("huge")
    with pytest.raises(ValueError, match="four"):
        RedWganGenerator(channels=(8, 16))
    with pytest.raises(ValueError, match="patches"):
        RedWganCritic((6, 16, 16))(torch.rand(1, 1, 6, 16, 8))
