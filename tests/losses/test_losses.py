from __future__ import annotations

import pytest
import torch
from torch import nn

from volgan.losses import AdversarialLoss, Conv3dFeatures, PerceptualLoss, SliceVgg19Features, gradient_penalty


class Linear(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x.flatten(1) * self.w.flatten()).sum(1, keepdim=True)


@pytest.mark.parametrize("norm, expected", [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25)])
def test_gradient_penalty_of_linear_critic(norm, expected):
    torch.manual_seed(0)
    w = torch.randn(1, 4, 4, 4)
    w = w / w.norm() * norm
    real, fake = torch.randn(3, 1, 4, 4, 4), torch.randn(3, 1, 4, 4, 4)
    gp = gradient_penalty(Linear(w), real, fake)
    assert float(gp.detach()) == pytest.approx(expected, abs=1e-5)


def test_gradient_penalty_is_differentiable_for_the_critic():
    critic = Linear(torch.randn(1, 4, 4, 4) * 3)
    gradient_penalty(critic, torch.randn(2, 1, 4, 4, 4), torch.randn(2, 1, 4, 4, 4)).backward()
    assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def test_gradient_penalty_conditional_concatenates_condition():
    seen = {}

    def critic(x):
        seen["channels"] = x.shape[1]
        return x.sum((1, 2, 3, 4))

    gradient_penalty(critic, torch.randn(2, 1, 4, 4, 4), torch.randn(2, 1, 4, 4, 4), condition=torch.randn(2, 1, 4, 4, 4))
    assert seen["channels"] == 2


def test_adversarial_losses():
    real, fake = torch.tensor([[2.0], [4.0]]), torch.tensor([[1.0], [-1.0]])
    wgan = AdversarialLoss("wgan")
    assert float(wgan.critic(real, fake)) == pytest.approx(0.0 - 3.0)
    assert float(wgan.generator(fake)) == pytest.approx(0.0)
    ls = AdversarialLoss("lsgan")
    assert float(ls.critic(torch.ones(2, 1), torch.zeros(2, 1))) == 0.0
    assert float(ls.generator(torch.zeros(2, 1))) == 1.0
    bce = AdversarialLoss("bce")
    big = torch.full((2, 1), 20.0)
    assert float(bce.critic(big, -big)) < 1e-6
    assert float(bce.generator(-big)) > 10
    with pytest.raises(ValueError, match="unknown"):
        AdversarialLoss("hinge")


def test_perceptual_loss_loads_local_weights_and_only_trains_prediction(tmp_path):
    torch.manual_seed(0)
    net = Conv3dFeatures()
    path = tmp_path / "features.pt"
    torch.save(net.state_dict(), path)
    loss = PerceptualLoss(Conv3dFeatures(), path)
    for a, b in zip(loss.feature_net.parameters(), net.parameters()):
        torch.testing.assert_close(a, b)
    target = torch.rand(1, 1, 8, 8, 8)
    assert float(loss(target, target)) == 0.0
    pred = torch.rand(1, 1, 8, 8, 8, requires_grad=True)
    value = loss(pred, target)
    value.backward()
    assert value > 0 and pred.grad is not None
    assert all(p.grad is None for p in loss.feature_net.parameters())
    loss.train()
    assert not loss.feature_net.training


def test_perceptual_loss_missing_file_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_feature_net.py"):
        PerceptualLoss(Conv3dFeatures(), tmp_path / "missing.pt")


def test_slice_vgg_accepts_torchvision_layout(tmp_path):
    vgg = SliceVgg19Features(n_layers=4)
    full = SliceVgg19Features()
    state = {f"features.{k}": v for k, v in full.features.state_dict().items()}
    torch.save(state, tmp_path / "vgg.pt")
    loss = PerceptualLoss(vgg, tmp_path / "vgg.pt")
    torch.testing.assert_close(loss.feature_net.features[0].weight, full.features[0].weight)
    x = torch.rand(1, 1, 3, 16, 16)
    assert loss.feature_net(x).shape == (3, 64, 16, 16)
