"""Losses as pure functions of tensors (logits in, scalar out): no optimiser, no backward."""
from .adversarial import GAN_LOSSES, GANLoss

__all__ = ["GAN_LOSSES", "GANLoss"]
