"""`vae`: a convolutional variational autoencoder (Kingma & Welling 2014).

The encoder maps an image to the mean and log-variance of q(z|x); the decoder maps z to
pre-activation logits `a`, whose image is tanh(a) in [-1, 1] (so that p = sigmoid(2a) on the
[0, 1] scale, which the BCE reconstruction uses exactly). Calling the module decodes, so
sampling works as for any generator: `vae(z)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import require_at_least_one
from .dcgan import RESOLUTIONS, _plan
from .layers import leaky
from .registry import MODELS, Architecture, DataShape


@dataclass
class VAEArgs:
    latent_dim: int = 32
    width: int = 32        # channels at the finest encoder / decoder layer, doubling towards 4x4
    max_width: int = 512

    def check(self):
        require_at_least_one("model", self, ("latent_dim", "width", "max_width"))


class VAE(nn.Module):
    def __init__(self, args: VAEArgs, shape: DataShape):
        super().__init__()
        self.latent_dim, self.resolution, self.channels = args.latent_dim, shape.resolution, shape.channels
        self.num_classes = 0
        base, n = _plan(shape.resolution)
        widths = [min(args.width * 2 ** i, args.max_width) for i in range(n)]
        layers, c_in = [], shape.channels
        for c_out in widths:
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), leaky()]
            c_in = c_out
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        flat = widths[-1] * base * base
        self.to_stats = nn.Linear(flat, 2 * args.latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(args.latent_dim, flat), nn.Unflatten(1, (widths[-1], base, base)),
                                         nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=True))
        layers = []
        for c_in, c_out in zip(widths[::-1], widths[::-1][1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
        layers.append(nn.ConvTranspose2d(widths[0], shape.channels, 4, 2, 1))
        self.decoder = nn.Sequential(*layers)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x)."""
        mean, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_latent(z))

    def forward(self, z: torch.Tensor | None, labels: torch.Tensor | None = None, *,
                images: torch.Tensor | None = None):
        """Decode z to images; or, given `images`, one reparameterised pass for training:
        returns (mean, logvar, decoder logits)."""
        if images is None:
            return torch.tanh(self.decode_logits(z))
        mean, logvar = self.encode(images)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        return mean, logvar, self.decode_logits(z)


MODELS.register("vae")(Architecture(
    VAEArgs, lambda args, shape: {"G": VAE(args, shape)}, RESOLUTIONS, objective="vae", labels="never",
    summary="convolutional VAE: strided-conv encoder, transposed-conv decoder"))
