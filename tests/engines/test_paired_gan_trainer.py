from __future__ import annotations

import torch
from ignite.engine import Events
from monai.handlers import CheckpointLoader, CheckpointSaver
from torch import nn

from volgan.engines import PairedGanTrainer
from volgan.losses import AdversarialLoss
from volgan.networks import RedWganCritic


class Scale(nn.Module):
    """Tiny generator: learns a per-voxel affine map."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 1, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class CountingCritic(RedWganCritic):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


def make_loader(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        target = torch.rand(2, 1, 4, 8, 8, generator=g)
        batches.append({"image": 0.5 * target + 0.1, "label": target})
    return batches


def make_trainer(max_epochs=1, warmup=0, n_critic=2, handlers=None, conditional=False, critic=None):
    torch.manual_seed(0)
    gen = Scale()
    critic = critic or CountingCritic((4, 8, 8), channels=(4, 4, 4), in_channels=2 if conditional else 1)
    return PairedGanTrainer(
        device="cpu",
        max_epochs=max_epochs,
        train_data_loader=make_loader(),
        generator=gen,
        critic=critic,
        g_optimizer=torch.optim.Adam(gen.parameters(), 1e-2),
        d_optimizer=torch.optim.Adam(critic.parameters(), 1e-3),
        content_loss=nn.MSELoss(),
        adversarial_loss=AdversarialLoss("wgan"),
        adversarial_weight=1e-3,
        n_critic=n_critic,
        warmup_iterations=warmup,
        conditional=conditional,
        train_handlers=handlers,
    )


def test_warmup_leaves_critic_untouched_then_critic_trains():
    trainer = make_trainer(warmup=4)
    before = [p.clone() for p in trainer.critic.parameters()]
    trainer.run()
    assert trainer.critic.calls == 0
    for a, b in zip(before, trainer.critic.parameters()):
        torch.testing.assert_close(a, b)
    assert trainer.state.output[0]["critic"] == 0.0


def test_n_critic_steps_per_generator_step():
    trainer = make_trainer(n_critic=3)
    trainer.run()
    # per iteration: 3 critic steps x (real + fake + gradient penalty) + 1 generator step
    assert trainer.critic.calls == 4 * (3 * 3 + 1)
    out = trainer.state.output[0]  # decollated: one dict per sample
    assert len(trainer.state.output) == 2 and out["pred"].shape == (1, 4, 8, 8)
    assert out["gp"] > 0 and isinstance(out["loss"], float)
    assert {"content", "adversarial", "wasserstein", "critic"} <= set(out)


def test_conditional_critic_sees_source_and_image():
    trainer = make_trainer(conditional=True, n_critic=1)
    trainer.run()
    assert trainer.critic.calls > 0


def test_content_loss_decreases():
    trainer = make_trainer(max_epochs=15, warmup=60)
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output[0]["content"]))
    trainer.run()
    assert losses[-1] < 0.5 * losses[0]


def test_resume_from_checkpoint(tmp_path):
    trainer = make_trainer(max_epochs=2)
    saver = CheckpointSaver(
        save_dir=str(tmp_path),
        save_dict={"generator": trainer.generator, "critic": trainer.critic, "g_optimizer": trainer.g_optimizer,
                   "d_optimizer": trainer.d_optimizer, "trainer": trainer},
        save_final=True,
        final_filename="state.pt",
    )
    saver.attach(trainer)
    trainer.run()
    assert trainer.state.iteration == 8

    resumed = make_trainer(max_epochs=3)
    loader = CheckpointLoader(
        load_path=str(tmp_path / "state.pt"),
        load_dict={"generator": resumed.generator, "critic": resumed.critic, "g_optimizer": resumed.g_optimizer,
                   "d_optimizer": resumed.d_optimizer, "trainer": resumed},
    )
    loader.attach(resumed)
    seen = []
    resumed.add_event_handler(Events.ITERATION_STARTED, lambda e: seen.append(e.state.iteration))
    resumed.run()
    assert seen[0] == 9 and resumed.state.iteration == 12


def test_cpu_amp_trains_both_networks_under_bf16_autocast_only_when_asked():
    dtypes = {}
    for cpu_amp in (True, False):
        torch.manual_seed(0)
        gen, critic = Scale(), RedWganCritic((4, 8, 8), channels=(4, 4, 4))
        seen = []
        gen.conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        trainer = PairedGanTrainer(
            device="cpu", max_epochs=1, train_data_loader=make_loader(n=2), generator=gen, critic=critic,
            g_optimizer=torch.optim.Adam(gen.parameters(), 1e-2), d_optimizer=torch.optim.Adam(critic.parameters(), 1e-3),
            content_loss=nn.MSELoss(), n_critic=1, amp=True, cpu_amp=cpu_amp, decollate=False,
        )
        before = gen.conv.weight.detach().clone()
        trainer.run()
        assert gen.conv.weight.dtype == torch.float32 and not torch.equal(before, gen.conv.weight)
        assert torch.isfinite(torch.tensor(trainer.state.output["loss"]))
        dtypes[cpu_amp] = set(seen)
    assert dtypes[True] == {torch.bfloat16}
    assert dtypes[False] == {torch.float32}
