"""`vae`: maximise the evidence lower bound, reconstruction + beta * KL (beta-VAE when beta != 1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import OBJECTIVES, Batch, Objective, ObjectiveEntry, Phase, require_nets


@dataclass
class VAEObjectiveArgs:
    recon: Literal["bce", "mse"] = "bce"   # Bernoulli (BCE) or Gaussian (squared error) decoder
    beta: float = 1.0                      # weight of the KL term

    def check(self):
        if self.beta < 0:
            raise ConfigError(f"objective.beta={self.beta}: must be >= 0")


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, summed over latent dimensions."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


def reconstruction(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Negative log-likelihood per sample (summed over pixels) of `target` in [-1, 1].

    bce: Bernoulli on the [0, 1] scale with p = sigmoid(2 * logits) = (tanh(logits) + 1) / 2.
    mse: squared error on the [0, 1] scale (a Gaussian decoder up to constants).
    """
    target01 = (target + 1) / 2
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(2 * logits, target01, reduction="none")
    else:
        per_pixel = ((torch.tanh(logits) + 1) / 2 - target01).pow(2)
    return per_pixel.flatten(1).sum(1)


class VAEObjective(Objective):
    def __init__(self, args: VAEObjectiveArgs, nets):
        require_nets("vae", nets, ("G",))
        if not hasattr(nets["G"], "encode"):
            raise ConfigError("objective 'vae' needs a model with an encoder (model.name=vae)")
        super().__init__(args, nets)
        self.phases = [Phase("VAE", "G")]

    def loss(self, phase: str, batch: Batch):
        # One call through forward (not encode/decode), so a DDP wrapper syncs the gradients.
        mean, logvar, logits = self.nets["G"](None, images=batch.images)
        recon = reconstruction(logits.float(), batch.images.float(), self.args.recon).mean()
        kl = kl_to_standard_normal(mean.float(), logvar.float()).mean()
        loss = recon + self.args.beta * kl
        return loss, {"loss_VAE": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}


OBJECTIVES.register("vae")(ObjectiveEntry(
    VAEObjectiveArgs, VAEObjective, {"lr": 1e-3, "beta1": 0.9, "lr_schedule": "cosine", "ema_decay": 0.0}))
