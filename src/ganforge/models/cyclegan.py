"""`cyclegan`: the networks of unpaired translation (Zhu et al. 2017).

Two generators, G_AB (domain A -> B) and G_BA (B -> A), and two PatchGAN discriminators,
D_A (judges domain A images) and D_B, built in two containers, "G" and "D". The training
loop steps one optimiser per container (as the CycleGAN repository chains both generators'
parameters into one Adam), averages both generators in one EMA, and under torchrun wraps
each container once: one forward of "G" makes every image a step needs, so each parameter
takes part in one DistributedDataParallel forward per phase.

The generator is the ResNet-block network of Johnson et al. the paper uses (`generator:
resnet`): a 7x7 convolution, two stride-2 convolutions down, `blocks` residual blocks
(reflection padding, 3x3 convolutions), two stride-2 transposed convolutions up, a 7x7
convolution to the image and tanh; 6 blocks for 128-pixel images and 9 for 256 in the paper.
`generator: unet` takes pix2pix's U-Net instead. Instance norm by default throughout, as
in the paper (its batch size is 1); image sides must be multiples of 4 (ResNet) or
2**depth (U-Net), and `ganforge translate` pads anything else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from .layers import init_dcgan
from .patchgan import Norm, PatchGAN, check_d_options, check_norm, norm2d
from .registry import MODELS, Architecture, DataShape
from .unet import UNetArgs, UNetGenerator

DIRECTIONS = ("a2b", "b2a")
DOWNSAMPLINGS = 2          # stride-2 layers of the ResNet-block generator (its stride: 4)


@dataclass
class CycleGANArgs:
    generator: Literal["resnet", "unet"] = "resnet"
    blocks: int = 9            # resnet: residual blocks (the paper: 6 at 128 px, 9 at 256 px)
    g_width: int = 64          # ngf: channels of G's first layer
    norm: Norm = "instance"    # norm of G's layers
    dropout: float = 0.0       # dropout inside the residual blocks (the repository's --no_dropout default: 0)
    depth: int = 5             # unet: number of 2x downsamplings
    max_width: int = 512       # unet: cap on channels
    d_width: int = 64          # ndf: channels of each D's first layer
    d_layers: int = 3          # each D's stride-2 layers (3: 70 x 70 patches)
    d_norm: Norm = "instance"  # norm of D's layers

    def check(self):
        if self.generator not in ("resnet", "unet"):
            raise ConfigError(f"model.generator={self.generator!r}: must be resnet or unet")
        for key in ("blocks", "g_width", "depth", "max_width"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key}={getattr(self, key)}: must be at least 1")
        check_norm("model.norm", self.norm)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout={self.dropout}: must be in [0, 1)")
        check_d_options(self)


def resnet_receptive_field(blocks: int) -> int:
    """Side of the input window an output pixel of the ResNet-block generator depends on:
    the 7x7 stem (6), two 3x3 stride-2 convolutions (2 + 4), two 3x3 convolutions per block
    at stride 4 (16 a block), two 3x3 transposed convolutions up (4 + 2) and the 7x7 head (6),
    plus the pixel itself.

    Example:
        >>> resnet_receptive_field(9)
        169
    """
    return 1 + 6 + 2 + 4 + 16 * blocks + 4 + 2 + 6


class ResidualBlock(nn.Module):
    def __init__(self, width: int, norm: str, dropout: float):
        super().__init__()
        bias = norm == "none"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=bias), norm2d(norm, width), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=bias), norm2d(norm, width)]
        self.body = nn.Sequential(*[layer for layer in layers if layer is not None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image N x in_channels x h x w -> image N x channels x h x w in [-1, 1]; h and w
    multiples of 4."""

    def __init__(self, in_channels: int, channels: int, args: CycleGANArgs):
        super().__init__()
        self.in_channels, self.channels, self.num_classes, self.scale = in_channels, channels, 0, 1
        self.stride = 2 ** DOWNSAMPLINGS
        self.receptive_field = resnet_receptive_field(args.blocks)
        bias, width = args.norm == "none", args.g_width
        layers: list[nn.Module | None] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=bias),
                                          norm2d(args.norm, width), nn.ReLU(True)]
        for k in range(DOWNSAMPLINGS):
            c = width * 2 ** k
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), norm2d(args.norm, 2 * c), nn.ReLU(True)]
        inner = width * 2 ** DOWNSAMPLINGS
        layers += [ResidualBlock(inner, args.norm, args.dropout) for _ in range(args.blocks)]
        for k in range(DOWNSAMPLINGS, 0, -1):
            c = width * 2 ** k
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias),
                       norm2d(args.norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*[layer for layer in layers if layer is not None])
        init_dcgan(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels or x.shape[2] % self.stride or x.shape[3] % self.stride:
            raise ValueError(f"the ResNet-block generator expects N x {self.in_channels} x h x w with h "
                             f"and w multiples of {self.stride}, got {tuple(x.shape)} (pad with "
                             f"inference.tiles.run_padded)")
        return self.net(x)


class CycleGenerators(nn.Module):
    """Both generators: `ab` maps domain A to B, `ba` B to A. `forward` makes everything one
    training step needs; `translate` runs one direction (previews, inference)."""

    def __init__(self, make):
        super().__init__()
        self.ab, self.ba = make(), make()
        self.in_channels, self.channels = self.ab.in_channels, self.ab.channels
        self.num_classes, self.scale = 0, 1
        self.stride, self.receptive_field = self.ab.stride, self.ab.receptive_field

    def forward(self, a: torch.Tensor, b: torch.Tensor, identity: bool = True) -> dict[str, torch.Tensor]:
        """fake_b = G_AB(a), rec_a = G_BA(fake_b), fake_a = G_BA(b), rec_b = G_AB(fake_a), and
        with `identity` idt_b = G_AB(b), idt_a = G_BA(a)."""
        out = {"fake_b": self.ab(a), "fake_a": self.ba(b)}
        out["rec_a"], out["rec_b"] = self.ba(out["fake_b"]), self.ab(out["fake_a"])
        if identity:
            out["idt_b"], out["idt_a"] = self.ab(b), self.ba(a)
        return out

    def translate(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction {direction!r}: must be a2b or b2a")
        return (self.ab if direction == "a2b" else self.ba)(x)


class CycleDiscriminators(nn.Module):
    """D_A (`a`) judges domain A images, D_B (`b`) domain B's; `forward(a, b)` scores both."""

    def __init__(self, channels: int, args: CycleGANArgs):
        super().__init__()
        self.a = PatchGAN(channels, 0, args.d_width, args.d_layers, args.d_norm)
        self.b = PatchGAN(channels, 0, args.d_width, args.d_layers, args.d_norm)
        self.layers, self.min_size = self.a.layers, self.a.min_size

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(a), self.b(b)


def build(args: CycleGANArgs, shape: DataShape) -> dict[str, nn.Module]:
    if shape.in_channels and shape.in_channels != shape.channels:
        raise ConfigError(f"model 'cyclegan': both domains need one channel count (data.channels), "
                          f"got {shape.in_channels} and {shape.channels}")
    if args.generator == "resnet":
        stride = 2 ** DOWNSAMPLINGS
        if shape.resolution % stride:
            raise ConfigError(f"data.resolution={shape.resolution}: the ResNet-block generator needs a "
                              f"multiple of {stride}")

        def make():
            return ResnetGenerator(shape.channels, shape.channels, args)
    else:
        unet = UNetArgs(g_width=args.g_width, depth=args.depth, max_width=args.max_width, norm=args.norm,
                        dropout=args.dropout)
        one_domain = DataShape(shape.resolution, shape.channels, in_channels=shape.channels)

        def make():
            return UNetGenerator(unet, one_domain)
    return {"G": CycleGenerators(make), "D": CycleDiscriminators(shape.channels, args)}


MODELS.register("cyclegan")(Architecture(
    CycleGANArgs, build, resolutions=None, channels=(1, 3), objective="cyclegan", labels="never",
    summary="CycleGAN: two ResNet-block (or U-Net) generators A<->B + two PatchGANs; unpaired translation"))
