"""Adversarial losses on discriminator logits, registered by name.

Each entry gives the discriminator's loss from (real logits, fake logits) and the
generator's loss from fake logits. All are means over the batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..registry import Registry


@dataclass(frozen=True)
class GANLoss:
    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]


GAN_LOSSES: Registry[GANLoss] = Registry("GAN loss")


def ns_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), written with softplus for stability on logits."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def ns_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z))."""
    return F.softplus(-fake).mean()


GAN_LOSSES.register("ns")(GANLoss(ns_d_loss, ns_g_loss))
