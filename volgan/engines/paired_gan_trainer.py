"""Conditional (paired, image-to-image) GAN training on MONAI's ignite-based Trainer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents, default_prepare_batch
from monai.utils.enums import CommonKeys as Keys
from torch import nn
from torch.optim import Optimizer

from volgan.engines.distributed import average_gradients, broadcast_parameters
from volgan.hardware import cpu_has_fast_bf16
from volgan.losses.adversarial import AdversarialLoss
from volgan.losses.gradient_penalty import gradient_penalty


LOSS_TERMS = ("loss", "content", "perceptual", "adversarial", "critic", "gp", "wasserstein")


def loss_terms(output: dict | list) -> dict[str, float]:
    """``output_transform`` for StatsHandler/TensorBoardStatsHandler/MLFlowHandler: every loss term.

    Accepts the batch output or its decollated list (the losses are the same in every item).
    """
    first = output[0] if isinstance(output, list) else output
    return {k: float(first[k]) for k in LOSS_TERMS if k in first}


class PairedGanTrainer(Trainer):
    """Trains a generator ``G(source) -> target`` against a critic on paired patches.

    MONAI's ``GanTrainer`` draws latents and its ``AdversarialTrainer`` has no critic steps or
    gradient penalty; this trainer does conditional image-to-image GAN training as RED-WGAN,
    mDCSRN and the low-dose PET cGAN need:

    - ``n_critic`` critic updates per generator update on the same batch (WGAN-GP: 5);
    - the critic sees the target or ``G(source)``, or with ``conditional=True`` the pair
      ``cat(source, target-or-estimate)`` on the channel axis (pix2pix-style cGAN);
    - generator loss ``content_weight * content + perceptual_weight * perceptual +
      adversarial_weight * adversarial``;
    - a content-only warm-up: for the first ``warmup_iterations`` iterations only the
      generator's content loss is optimised and the critic is left alone;
    - automatic mixed precision when ``amp=True``: fp16 with gradient scaling on CUDA, bf16 autocast
      on CPUs with native bf16 (AVX-512 BF16 or AMX; ``cpu_amp=None`` decides by the CPU flags,
      ``True``/``False`` forces it); the gradient penalty is computed in float32;
    - under ``torch.distributed`` (e.g. ``torchrun``), weights are broadcast from rank 0 at start
      and gradients averaged over ranks, with any backend (gloo on CPU, nccl on GPUs).

    Each iteration's ``engine.state.output`` holds ``image``, ``label``, ``pred`` and the float
    losses ``loss`` (generator total), ``content``, ``adversarial``, ``perceptual``, ``critic``,
    ``gp`` and ``wasserstein`` (``E[D(real)] - E[D(fake)]``); as in MONAI's trainers it is
    decollated into a list of per-sample dicts by default, so MONAI's handlers and bundle tracking
    defaults (``from_engine(['loss'], first=True)``) work, and :func:`loss_terms` logs all terms. Save and
    resume the state with MONAI's CheckpointSaver/CheckpointLoader on
    ``{"generator", "critic", "g_optimizer", "d_optimizer", "trainer"}``.

    Args:
        device: device to train on.
        max_epochs: number of epochs.
        train_data_loader: yields dicts with ``image`` (source) and ``label`` (target).
        generator, critic: the two networks.
        g_optimizer, d_optimizer: their optimisers.
        content_loss: e.g. ``torch.nn.MSELoss()``.
        adversarial_loss: an :class:`~volgan.losses.AdversarialLoss` (``"wgan"`` adds the GP).
        perceptual_loss: optional :class:`~volgan.losses.PerceptualLoss`.
        content_weight, perceptual_weight, adversarial_weight: generator loss weights
            (RED-WGAN: 1, 0.1, 1e-3).
        gp_weight: gradient penalty weight for WGAN (10).
        n_critic: critic steps per generator step.
        warmup_iterations: content-only iterations before adversarial training starts.
        conditional: the critic sees ``cat(source, image)``.
        cpu_amp: bf16 autocast on the CPU when ``amp`` is set (None: where the CPU runs bf16 natively).
        epoch_length, non_blocking, prepare_batch, train_handlers, amp, postprocessing,
        key_train_metric, additional_metrics, decollate: as in ``monai.engines.Trainer``.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader,
        generator: nn.Module,
        critic: nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        content_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        adversarial_loss: AdversarialLoss | None = None,
        perceptual_loss: nn.Module | None = None,
        content_weight: float = 1.0,
        perceptual_weight: float = 0.0,
        adversarial_weight: float = 1e-3,
        gp_weight: float = 10.0,
        n_critic: int = 5,
        warmup_iterations: int = 0,
        conditional: bool = False,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = default_prepare_batch,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        postprocessing: Callable | None = None,
        key_train_metric: dict | None = None,
        additional_metrics: dict | None = None,
        decollate: bool = True,
        cpu_amp: bool | None = None,
    ) -> None:
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        if warmup_iterations < 0:
            raise ValueError(f"warmup_iterations must be >= 0, got {warmup_iterations}")
        device = torch.device(device)
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            postprocessing=postprocessing,
            key_metric=key_train_metric,
            additional_metrics=additional_metrics,
            handlers=train_handlers,
            amp=amp and device.type == "cuda",
            decollate=decollate,
        )
        self.generator, self.critic = generator, critic
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.content_loss = content_loss
        self.adversarial_loss = adversarial_loss or AdversarialLoss("wgan")
        self.perceptual_loss = perceptual_loss
        self.content_weight, self.perceptual_weight = float(content_weight), float(perceptual_weight)
        self.adversarial_weight, self.gp_weight = float(adversarial_weight), float(gp_weight)
        self.n_critic, self.warmup_iterations, self.conditional = int(n_critic), int(warmup_iterations), conditional
        self.cpu_bf16 = bool(amp and device.type == "cpu" and (cpu_has_fast_bf16() if cpu_amp is None else cpu_amp))
        self.g_scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.d_scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        broadcast_parameters(self.generator)
        broadcast_parameters(self.critic)

    # ---------------------------------------------------------------- helpers
    def _autocast(self):
        if self.cpu_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cuda") if self.amp else nullcontext()

    def _critic_input(self, source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return torch.cat([source, image], dim=1) if self.conditional else image

    def _step(self, loss: torch.Tensor, net: nn.Module, opt: Optimizer, scaler: torch.amp.GradScaler) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        average_gradients(net)
        scaler.step(opt)
        scaler.update()

    def _critic_step(self, source: torch.Tensor, target: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        with self._autocast():
            real_scores = self.critic(self._critic_input(source, target))
            fake_scores = self.critic(self._critic_input(source, fake))
            loss = self.adversarial_loss.critic(real_scores.float(), fake_scores.float())
        gp = torch.zeros((), device=target.device)
        if self.adversarial_loss.kind == "wgan" and self.gp_weight > 0:
            gp = gradient_penalty(
                self.critic, target.float(), fake.float(), condition=source.float() if self.conditional else None
            )
            loss = loss + self.gp_weight * gp
        self._step(loss, self.critic, self.d_optimizer, self.d_scaler)
        return {
            "critic": float(loss.detach()),
            "gp": float(gp.detach()),
            "wasserstein": float((real_scores.float().mean() - fake_scores.float().mean()).detach()),
        }

    # ---------------------------------------------------------------- iteration
    def _iteration(self, engine: "PairedGanTrainer", batchdata) -> dict:
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        source, target = batch[0], batch[1]
        engine.state.output = {Keys.IMAGE: source, Keys.LABEL: target}
        adversarial_phase = engine.state.iteration > engine.warmup_iterations and engine.adversarial_weight > 0
        engine.generator.train()
        engine.critic.train()

        stats = {"critic": 0.0, "gp": 0.0, "wasserstein": 0.0}
        if adversarial_phase:
            with torch.no_grad(), engine._autocast():
                fake = engine.generator(source).float()
            for _ in range(engine.n_critic):
                stats = engine._critic_step(source, target, fake)

        with engine._autocast():
            pred = engine.generator(source)
            engine.state.output[Keys.PRED] = pred
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            content = engine.content_loss(pred.float(), target.float())
            loss = engine.content_weight * content
            perceptual = torch.zeros((), device=pred.device)
            adversarial = torch.zeros((), device=pred.device)
            if adversarial_phase and engine.perceptual_loss is not None and engine.perceptual_weight > 0:
                perceptual = engine.perceptual_loss(pred.float(), target.float())
                loss = loss + engine.perceptual_weight * perceptual
            if adversarial_phase:
                adversarial = engine.adversarial_loss.generator(engine.critic(engine._critic_input(source, pred)).float())
                loss = loss + engine.adversarial_weight * adversarial
        engine.state.output[Keys.LOSS] = loss
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        engine._step(loss, engine.generator, engine.g_optimizer, engine.g_scaler)
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.state.output.update(
            {
                Keys.PRED: pred.detach(),
                Keys.LOSS: float(loss.detach()),
                "content": float(content.detach()),
                "perceptual": float(perceptual.detach()),
                "adversarial": float(adversarial.detach()),
                **stats,
            }
        )
        # MONAI decollates the output on this event (when decollate=True)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
