"""`resnet`: the ResNet GAN of SNGAN (Miyato et al. 2018), with the projection discriminator
and class-conditional batch norm of Miyato & Koyama (2018) for conditional models.

Generator: linear z -> 4x4, residual up-blocks (BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3,
shortcut upsample + conv1x1), BN-ReLU-conv3x3-tanh. Discriminator: SNGAN's optimised first
block, residual down-blocks (ReLU-conv3x3-ReLU-conv3x3-avgpool, shortcut conv1x1-avgpool),
ReLU, global sum pooling, linear to one logit, spectral norm on every layer, no batch norm
(so gradient penalties and R1 apply).

Widths: G's blocks halve their channels at each upsampling, from min(g_width * 2^n, max_width)
at 4x4 down to `g_width` at full resolution; D doubles from `d_width` at its first block,
capped at `d_max_width` (default: max_width), downsamples to 4x4 and adds `d_extra_blocks`
blocks there. With the defaults (64, 64, 1024) at 128 px these are the widths of the
ImageNet networks of Miyato & Koyama. SNGAN's CIFAR-10 network (256 channels in every G block, 128 in every D
block) is g_width=256, max_width=256, d_width=128, d_max_width=128, except that its D stops
downsampling at 8x8 and has two plain blocks there, where this one goes on to 4x4 and has one.

Initialisation, as in the authors' Chainer code: Xavier (Glorot) uniform weights, gain
sqrt(2) on the 3x3 convolutions of the residual paths (they are followed by ReLUs) and gain
1 on the 1x1 shortcuts, G's input linear, G's output convolution and D's output linear;
biases 0; conditional batch-norm gains 1 and biases 0. Convolutions followed by batch norm
have no bias (batch norm cancels it, so it would get no gradient). The projection embedding
keeps `ProjectionHead`'s own small start.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, require_at_least_one
from ..losses.regularizers import add_spectral_norm
from .conditioning import ProjectionHead, batch_norm, with_labels
from .registry import MODELS, Architecture, DataShape, gan_pair

RESOLUTIONS = (16, 32, 64, 128)


@dataclass
class ResNetArgs:
    latent_dim: int = 128
    g_width: int = 64          # G's channels at full resolution (doubling towards 4x4, up to max_width)
    d_width: int = 64          # D's channels in its first block (doubling at each downsampling)
    max_width: int = 1024      # cap on channels in G (and in D unless d_max_width is set)
    d_max_width: Union[int, None] = None  # cap on channels in D (default: max_width)
    d_extra_blocks: int = 1    # D blocks without downsampling at 4x4, after the down-blocks
    spectral_norm: bool = True  # spectral norm on every conv, linear and embedding of D

    def check(self):
        require_at_least_one("model", self, ("latent_dim", "g_width", "d_width", "max_width", "d_max_width"))
        if self.d_extra_blocks < 0:
            raise ConfigError(f"model.d_extra_blocks={self.d_extra_blocks}: must be >= 0")


def _doublings(resolution: int) -> int:
    """The number of 2x up/down-samplings between 4x4 and `resolution`."""
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"data.resolution={resolution}: resnet supports "
                          f"{', '.join(map(str, RESOLUTIONS))}")
    return int(math.log2(resolution // 4))


def g_widths(args: ResNetArgs, resolution: int) -> list[int]:
    """Channels at 4x4 (the linear layer's output), then after each up-block."""
    n = _doublings(resolution)
    return [min(args.g_width * 2 ** (n - i), args.max_width) for i in range(n + 1)]


def d_widths(args: ResNetArgs, resolution: int) -> list[int]:
    """Channels after each block of D: the down-blocks (first one optimised), then the extra ones."""
    n = _doublings(resolution)
    cap = args.max_width if args.d_max_width is None else args.d_max_width
    widths = [min(args.d_width * 2 ** i, cap) for i in range(n)]
    return widths + [widths[-1]] * args.d_extra_blocks


def _conv(c_in: int, c_out: int, kernel: int, gain: float, bias: bool = True) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2, bias=bias)
    nn.init.xavier_uniform_(conv.weight, gain)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


def _linear(c_in: int, c_out: int, bias: bool = True) -> nn.Linear:
    linear = nn.Linear(c_in, c_out, bias=bias)
    nn.init.xavier_uniform_(linear.weight)
    if bias:
        nn.init.zeros_(linear.bias)
    return linear


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GBlock(nn.Module):
    """BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus upsample + conv1x1 (the 1x1 conv runs
    before the nearest upsampling, which gives the same result on a quarter of the pixels)."""

    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        gain = math.sqrt(2)
        self.norm1, self.conv1 = batch_norm(c_in, num_classes), _conv(c_in, c_out, 3, gain, bias=False)
        self.norm2, self.conv2 = batch_norm(c_out, num_classes), _conv(c_out, c_out, 3, gain, bias=False)
        self.shortcut = _conv(c_in, c_out, 1, 1.0, bias=False)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(_up(F.relu(with_labels(self.norm1, x, labels))))
        h = self.conv2(F.relu(with_labels(self.norm2, h, labels)))
        return h + _up(self.shortcut(x))


class DBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv3x3[-avgpool], shortcut conv1x1[-avgpool] (identity when neither
    the width nor the size changes). The `first` (optimised) block has no leading ReLU and
    pools before its shortcut conv. Pooling and a 1x1 conv commute, so the shortcut pools
    first everywhere, on a quarter of the pixels."""

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False):
        super().__init__()
        gain = math.sqrt(2)
        self.down, self.first = down, first
        self.conv1, self.conv2 = _conv(c_in, c_out, 3, gain), _conv(c_out, c_out, 3, gain)
        self.shortcut = _conv(c_in, c_out, 1, 1.0) if down or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        s = x
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        if self.shortcut is not None:
            s = self.shortcut(s)
        return h + s


class Generator(nn.Module):
    def __init__(self, args: ResNetArgs, shape: DataShape):
        super().__init__()
        self.latent_dim, self.resolution, self.channels = args.latent_dim, shape.resolution, shape.channels
        self.num_classes = shape.num_classes
        self.widths = g_widths(args, shape.resolution)
        # No bias: the first block's batch norm removes it.
        self.linear = _linear(args.latent_dim, 4 * 4 * self.widths[0], bias=False)
        self.blocks = nn.ModuleList(GBlock(c_in, c_out, shape.num_classes)
                                    for c_in, c_out in zip(self.widths, self.widths[1:]))
        self.norm = nn.BatchNorm2d(self.widths[-1])
        self.final = _conv(self.widths[-1], shape.channels, 3, 1.0)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if not self.num_classes:
            labels = None
        elif labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        h = self.linear(z.flatten(1)).view(z.shape[0], self.widths[0], 4, 4)
        for block in self.blocks:
            h = block(h, labels)
        return torch.tanh(self.final(F.relu(self.norm(h))))


class Discriminator(nn.Module):
    def __init__(self, args: ResNetArgs, shape: DataShape):
        super().__init__()
        self.num_classes = shape.num_classes
        self.widths = d_widths(args, shape.resolution)
        n = _doublings(shape.resolution)
        blocks, c_in = [], shape.channels
        for i, c_out in enumerate(self.widths):
            blocks.append(DBlock(c_in, c_out, down=i < n, first=i == 0))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.final = _linear(c_in, 1)
        self.project = ProjectionHead(shape.num_classes, c_in)
        if args.spectral_norm:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                with_classes: bool = False):
        """Logits (N,); with `with_classes`, also ACGAN class logits (N, classes)."""
        phi = F.relu(self.blocks(x)).sum((2, 3))
        logits = self.project(self.final(phi).flatten(), phi, labels)
        return (logits, self.project.classify(phi)) if with_classes else logits


build = gan_pair(Generator, Discriminator)


MODELS.register("resnet")(Architecture(
    ResNetArgs, build, RESOLUTIONS,
    summary="SNGAN ResNet: residual up/down-blocks, spectral-norm D, conditional BN + projection",
    # SNGAN's CIFAR-10 settings (Miyato et al. 2018, table 3 and section 4): hinge loss,
    # n_dis = 5 D steps per G step, Adam lr 2e-4, beta1 0, beta2 0.9.
    defaults={"objective": {"loss": "hinge", "d_steps": 5},
              "train": {"lr": 2e-4, "beta1": 0.0, "beta2": 0.9}}))
