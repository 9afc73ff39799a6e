"""`unet`: the U-Net generator of pix2pix (Isola et al. 2017) with a PatchGAN discriminator,
for image-to-image tasks that keep the image size: translation between paired domains,
inpainting, object replacement, colorization, enhancement.

Why a U-Net: the output shares its layout with the input (edges, holes, objects stay where
they are), so skip connections carry the fine detail across, while the bottleneck gathers
context from far away, which inpainting and colorization need.

Generator: `depth` 4x4 stride-2 convolutions down (LeakyReLU(0.2) before each but the first,
norm after each but the first and the innermost), then `depth` 4x4 stride-2 transposed
convolutions up (ReLU before each, norm after each but the last), each decoder layer but the
innermost taking the encoder features of its size concatenated to the layer below. Widths
double from `g_width` at the first layer up to `max_width`. Optional dropout follows the norm
of the first three decoder layers (pix2pix's 0.5 there is its only noise source; the default
here is 0, for deterministic tasks). The output ends in tanh, as in pix2pix, so it already
lies in [-1, 1]. With g_width=64, max_width=512, depth=8 and batch norm this is pix2pix's
256 x 256 generator; the default depth 5 takes crops from 32 pixels upward (any multiple of
32) and an output pixel can depend on inputs up to 93 pixels away.

The input is the image, then the hole mask, then a one-hot class map, concatenated by the
caller; G has no labels argument. Weights start N(0, 0.02), norm gains N(1, 0.02), as in
pix2pix. With `residual` the net returns its input plus a correction (no tanh; clamped to
[-1, 1]), as DnCNN and VDSR learn, for tasks whose output is the input mended (denoising,
enhancement, inpainting); with a hole, the hole is first filled smoothly from its border
(models/fill.py), so the net starts where a classical fill ends. Instance norm normalises
each image as a whole, so an instance-norm U-Net run in tiles differs from the same net run
on the whole image; batch norm in eval mode does not.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, require_at_least_one
from .fill import smooth_fill
from .layers import init_dcgan, leaky
from .patchgan import Norm, build_patchgan, check_d_options, check_norm, condition_channels, norm2d
from .registry import MODELS, Architecture, DataShape

DROPOUT_LAYERS = 3  # decoder layers next to the bottleneck that take dropout (pix2pix)


@dataclass
class UNetArgs:
    g_width: int = 64          # ngf: channels of the first encoder layer (doubling with depth)
    depth: int = 5             # number of 2x downsamplings; input sides must be multiples of 2**depth
    max_width: int = 512       # cap on channels at the coarse layers
    norm: Norm = "batch"       # norm of G's layers: batch, instance or none
    dropout: float = 0.0       # dropout in the first three decoder layers (pix2pix: 0.5)
    d_width: int = 64          # ndf: channels of D's first layer
    d_layers: int = 3          # D's stride-2 layers (3: 70 x 70 patches)
    d_norm: Norm = "batch"     # norm of D's layers: batch, instance or none
    d_conditional: bool = True  # D also sees G's input (pix2pix's conditional D)
    residual: bool = False     # return the input (holes smoothly filled) plus a learnt correction

    def check(self):
        require_at_least_one("model", self, ("g_width", "depth", "max_width"))
        check_norm("model.norm", self.norm)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout={self.dropout}: must be in [0, 1)")
        check_d_options(self)


def unet_receptive_field(depth: int) -> int:
    """Side of the input window (in pixels) that bounds what one output pixel of a U-Net of
    `depth` levels depends on: 2 * r + 1, r the farthest input pixel from the output pixel
    over every path (down to each level and back up), every output position considered.

    Example:
        >>> unet_receptive_field(5)
        187
    """
    radius = 0
    for turn in range(1, depth + 1):
        for o in range(2 ** depth):
            lo, hi = o, o
            # Back through the transposed convs: output o <- inputs (o - 2) / 2 .. (o + 1) / 2.
            for _ in range(turn):
                lo, hi = -((2 - lo) // 2), (hi + 1) // 2
            # Back through the strided convs: output o <- inputs 2o - 1 .. 2o + 2.
            for _ in range(turn):
                lo, hi = 2 * lo - 1, 2 * hi + 2
            radius = max(radius, o - lo, hi - o)
    return 2 * radius + 1


def _widths(args: UNetArgs) -> list[int]:
    """Channels of each encoder level, from the first (H/2) to the innermost (H/2**depth)."""
    return [min(args.g_width * 2 ** k, args.max_width) for k in range(args.depth)]


def _seq(*layers: nn.Module | None) -> nn.Sequential:
    return nn.Sequential(*[layer for layer in layers if layer is not None])


class UNetGenerator(nn.Module):
    """Image (+ mask + class map) N x in_channels x h x w -> image N x channels x h x w in
    [-1, 1]; h and w must be multiples of `stride` (= 2**depth)."""

    def __init__(self, args: UNetArgs, shape: DataShape):
        super().__init__()
        if shape.scale != 1:
            raise ConfigError(f"model 'unet' keeps the image size, but the data's scale (output "
                              f"size / input size) is {shape.scale}; use srresnet for super-resolution")
        self.in_channels = condition_channels(shape)
        self.num_classes = shape.num_classes  # one-hot class-map channels at the end of the input
        self.channels, self.scale = shape.channels, 1
        self.stride = 2 ** args.depth
        self.receptive_field = unet_receptive_field(args.depth)
        if shape.resolution % self.stride:
            raise ConfigError(f"data.resolution={shape.resolution}: unet with model.depth={args.depth} "
                              f"needs crops whose side is a multiple of {self.stride}; lower model.depth")
        if args.residual and shape.in_channels != shape.channels:
            raise ConfigError(f"model.residual=true adds a correction to the input, but the input "
                              f"has {shape.in_channels} channel(s) and the output {shape.channels} "
                              f"(colorization cannot be residual)")
        self.residual, self.fills_hole = args.residual, args.residual and shape.mask
        widths, depth = _widths(args), args.depth
        bias = args.norm == "none"

        # Encoder: no norm on the first and the innermost layer (pix2pix).
        down = [nn.Conv2d(self.in_channels, widths[0], 4, 2, 1)]
        for k in range(1, depth):
            inner = k == depth - 1
            down.append(_seq(leaky(), nn.Conv2d(widths[k - 1], widths[k], 4, 2, 1, bias=bias or inner),
                             None if inner else norm2d(args.norm, widths[k])))
        self.down = nn.ModuleList(down)

        # Decoder, innermost first: the innermost takes the bottleneck alone, the others the
        # skip features concatenated to the layer below; the last one makes the image.
        up = []
        for k in range(depth - 1, 0, -1):
            c_in = widths[k] if k == depth - 1 else 2 * widths[k]
            dropout = args.dropout > 0 and k >= depth - DROPOUT_LAYERS
            up.append(_seq(nn.ReLU(), nn.ConvTranspose2d(c_in, widths[k - 1], 4, 2, 1, bias=bias),
                           norm2d(args.norm, widths[k - 1]),
                           nn.Dropout(args.dropout) if dropout else None))
        c_in = widths[0] if depth == 1 else 2 * widths[0]
        up.append(_seq(nn.ReLU(), nn.ConvTranspose2d(c_in, shape.channels, 4, 2, 1),
                       None if self.residual else nn.Tanh()))
        self.up = nn.ModuleList(up)
        init_dcgan(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels or x.shape[2] % self.stride or x.shape[3] % self.stride:
            raise ValueError(f"unet expects N x {self.in_channels} x h x w with h and w multiples "
                             f"of {self.stride}, got {tuple(x.shape)} (pad with inference.tiles.run_padded)")
        start = x[:, :self.channels] if self.residual else None
        if self.fills_hole:  # image, then the hole (1 = hole): fill it, then correct the fill
            start = smooth_fill(start, x[:, self.channels:self.channels + 1])
            x = torch.cat([start, x[:, self.channels:]], 1)
        # Encode, keeping every level's features for the skips.
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        # Decode, joining the encoder features of the same size.
        x = self.up[0](skips.pop())
        for layer in self.up[1:]:
            x = layer(torch.cat([skips.pop(), x], dim=1))
        return (start + x).clamp(-1, 1) if self.residual else x


def build(args: UNetArgs, shape: DataShape) -> dict[str, nn.Module]:
    return {"G": UNetGenerator(args, shape), "D": build_patchgan(args, shape, "unet")}


MODELS.register("unet")(Architecture(
    UNetArgs, build, resolutions=None, channels=(1, 3), objective="image2image", labels="optional",
    summary="pix2pix U-Net (skips, tanh) + PatchGAN: translation, inpainting, colorization"))
