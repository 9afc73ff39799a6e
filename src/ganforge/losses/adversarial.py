"""Adversarial losses on discriminator logits, registered by name.

Each entry gives the discriminator's loss from (real logits, fake logits) and the
generator's loss from fake logits. All are means over the batch, pure functions of the
logits (no optimiser, no backward).

An entry also says what else its paper's training loop needs, as data for the objective:

- ``clip``: clamp every discriminator parameter to ``[-clip, clip]`` after each D step
  (WGAN's weight clipping; see :func:`ganforge.losses.regularizers.clip_weights_`).
- ``gradient_penalty``: the weight of the WGAN-GP gradient penalty added to the D loss
  (see :func:`ganforge.losses.regularizers.gradient_penalty`); 0 means none.
- ``threshold``: the logit at which D's verdict turns from fake to real (0 for ns and hinge,
  0.5 for lsgan's targets 0 and 1), which D's accuracy and ADA's over-fitting measure read;
  None for a Wasserstein critic, whose scores carry an arbitrary offset.

Every loss computes in float32 at least: logits that come out of a bf16 or fp16 autocast
region are upcast first, so a loss is the same number whatever precision D ran in.

Registered names: ``ns``, ``lsgan``, ``wgan``, ``wgan-gp``, ``hinge``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import Registry


@dataclass(frozen=True)
class GANLoss:
    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]
    clip: float | None = None          # WGAN weight clipping c: clamp D's parameters after each D step
    gradient_penalty: float = 0.0      # WGAN-GP lambda: weight of the gradient penalty in D's loss
    threshold: float | None = 0.0      # logit where D's verdict turns real; None: no fixed one (a critic)

    def real_score(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits shifted so that > 0 means "D calls this real": what ADA's E[sign] reads.

        Raises:
            ConfigError: for a loss without a fixed threshold (wgan, wgan-gp).

        Example:
            >>> GAN_LOSSES.get("lsgan").real_score(torch.tensor([1.0, 0.0]))
            tensor([ 0.5000, -0.5000])
        """
        if self.threshold is None:
            raise ConfigError("this loss's critic scores have no fixed real/fake threshold "
                              "(an arbitrary offset), so no over-fitting sign can be read from them")
        return logits - self.threshold if self.threshold else logits

    def accuracy(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """How often D is right, averaged over the real and the fake half: a 0-dim tensor.

        A loss without a fixed threshold (a critic) is judged at the midpoint of this
        batch's mean real and mean fake score, which no offset of the scores moves.

        Example:
            >>> GAN_LOSSES.get("ns").accuracy(torch.tensor([2.0, -1.0]), torch.tensor([-3.0]))
            tensor(0.7500)
        """
        threshold = self.threshold
        if threshold is None:
            threshold = (real.float().mean() + fake.float().mean()) / 2
        return ((real > threshold).float().mean() + (fake < threshold).float().mean()) / 2


GAN_LOSSES: Registry[GANLoss] = Registry("GAN loss")


def _fp32(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits as float32 (float32 and float64 pass through unchanged)."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


# ns: the non-saturating BCE loss of Goodfellow et al. 2014 -----------------------------

def ns_d_loss(real: torch.Tensor, fake: torch.Tensor, *, real_target: float = 1.0) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), written with softplus for stability on logits.

    ``real_target`` < 1 gives one-sided label smoothing (Salimans et al. 2016): the real term
    becomes BCE-with-logits against the target ``real_target`` (e.g. 0.9), i.e.
    ``real_target * softplus(-real) + (1 - real_target) * softplus(real)``; the fake term
    (target 0) is unchanged. Bind it with ``functools.partial(ns_d_loss, real_target=0.9)``
    or use :func:`ns_d_loss_smoothed`.
    """
    if not 0.0 <= real_target <= 1.0:
        raise ConfigError(f"real_target={real_target}: must be in [0, 1]")
    real, fake = _fp32(real), _fp32(fake)
    real_term = F.softplus(-real).mean()
    if real_target != 1.0:
        real_term = real_target * real_term + (1.0 - real_target) * F.softplus(real).mean()
    return real_term + F.softplus(fake).mean()


def ns_d_loss_smoothed(real: torch.Tensor, fake: torch.Tensor,
                       real_target: float = 0.9) -> torch.Tensor:
    """:func:`ns_d_loss` with one-sided label smoothing: D's real target is ``real_target``
    (default 0.9) instead of 1; the fake target stays 0."""
    return ns_d_loss(real, fake, real_target=real_target)


def ns_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z))."""
    return F.softplus(-_fp32(fake)).mean()


# lsgan: least squares (Mao et al. 2017), a=0 (fake), b=1 (real), c=1 (G's target) ---------

def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]."""
    real, fake = _fp32(real), _fp32(fake)
    return 0.5 * (real - 1.0).pow(2).mean() + 0.5 * fake.pow(2).mean()


def lsgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """1/2 E[(D(G(z)) - 1)^2]."""
    return 0.5 * (_fp32(fake) - 1.0).pow(2).mean()


# wgan / wgan-gp: Wasserstein critic (Arjovsky et al. 2017; Gulrajani et al. 2017) ---------

def wgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The critic minimises E[D(G(z))] - E[D(x)] (it scores reals high)."""
    return _fp32(fake).mean() - _fp32(real).mean()


def wgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """The generator minimises -E[D(G(z))]."""
    return -_fp32(fake).mean()


# hinge (Lim & Ye 2017; Miyato et al. 2018; Zhang et al. 2019, SAGAN) ----------------------

def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    real, fake = _fp32(real), _fp32(fake)
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]."""
    return -_fp32(fake).mean()


GAN_LOSSES.register("ns")(GANLoss(ns_d_loss, ns_g_loss))
GAN_LOSSES.register("lsgan")(GANLoss(lsgan_d_loss, lsgan_g_loss, threshold=0.5))
GAN_LOSSES.register("wgan")(GANLoss(wgan_d_loss, wgan_g_loss, clip=0.01, threshold=None))
GAN_LOSSES.register("wgan-gp")(GANLoss(wgan_d_loss, wgan_g_loss, gradient_penalty=10.0, threshold=None))
GAN_LOSSES.register("hinge")(GANLoss(hinge_d_loss, hinge_g_loss))
