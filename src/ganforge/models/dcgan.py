"""`dcgan`: the DCGAN of Radford et al. (2016): transposed-conv generator, strided-conv
discriminator, batch norm, ReLU / LeakyReLU(0.2), tanh output, logits out of D."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .layers import init_dcgan, leaky
from .registry import MODELS, Architecture, DataShape

RESOLUTIONS = (16, 28, 32, 64, 128)


@dataclass
class DCGANArgs:
    latent_dim: int = 100
    g_width: int = 64      # ngf: generator channels at the last hidden layer (doubling towards 4x4)
    d_width: int = 64      # ndf: discriminator channels at the first layer
    max_width: int = 1024  # cap on channels at the coarsest layers

    def check(self):
        for key in ("latent_dim", "g_width", "d_width", "max_width"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key}={getattr(self, key)}: must be at least 1")


def _plan(resolution: int) -> tuple[int, int]:
    """Start size (4, or 7 for 28-pixel images) and the number of 2x up/down-samplings."""
    base = 7 if resolution % 7 == 0 else 4
    doublings = int(round(math.log2(resolution / base)))
    if base * 2 ** doublings != resolution:
        raise ConfigError(f"data.resolution={resolution}: dcgan supports {RESOLUTIONS}")
    return base, doublings


class Generator(nn.Module):
    def __init__(self, args: DCGANArgs, shape: DataShape):
        super().__init__()
        self.latent_dim, self.resolution, self.channels = args.latent_dim, shape.resolution, shape.channels
        self.num_classes = 0
        base, n = _plan(shape.resolution)
        widths = [min(args.g_width * 2 ** (n - 1 - i), args.max_width) for i in range(n)]
        layers = [nn.ConvTranspose2d(args.latent_dim, widths[0], base, 1, 0, bias=False),
                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], shape.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, args: DCGANArgs, shape: DataShape):
        super().__init__()
        base, n = _plan(shape.resolution)
        widths = [min(args.d_width * 2 ** i, args.max_width) for i in range(n)]
        layers = [nn.Conv2d(shape.channels, widths[0], 4, 2, 1, bias=False), leaky()]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), leaky()]
        layers += [nn.Conv2d(widths[-1], 1, base, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).flatten()


def build(args: DCGANArgs, shape: DataShape) -> dict[str, nn.Module]:
    return {"G": Generator(args, shape), "D": Discriminator(args, shape)}


MODELS.register("dcgan")(Architecture(DCGANArgs, build, RESOLUTIONS,
                                      summary="DCGAN: transposed-conv G, strided-conv D, batch norm"))
