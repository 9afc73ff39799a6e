"""Losses as pure functions of tensors (logits in, scalar out): no optimiser, no backward."""
from .adversarial import (GAN_LOSSES, GANLoss, hinge_d_loss, hinge_g_loss, lsgan_d_loss,
                          lsgan_g_loss, ns_d_loss, ns_d_loss_smoothed, ns_g_loss, wgan_d_loss,
                          wgan_g_loss)
from .regularizers import (add_spectral_norm, clip_weights_, gradient_penalty, r1_penalty)

__all__ = ["GAN_LOSSES", "GANLoss",
           "ns_d_loss", "ns_d_loss_smoothed", "ns_g_loss", "lsgan_d_loss", "lsgan_g_loss",
           "wgan_d_loss", "wgan_g_loss", "hinge_d_loss", "hinge_g_loss",
           "gradient_penalty", "r1_penalty", "add_spectral_norm", "clip_weights_"]
