"""`srresnet`: a residual super-resolution and restoration network in the style of SRResNet
(Ledig et al. 2017) as simplified by EDSR (Lim et al. 2017), with a PatchGAN discriminator
for adversarial training (SRGAN / ESRGAN-like; train with a reconstruction loss alone for
the best PSNR).

EDSR's changes to SRResNet, kept here: no batch norm (it removes the range flexibility that
restoration needs and costs memory), residual blocks conv3x3-ReLU-conv3x3 whose output is
multiplied by `res_scale` (0.1) before the skip, which keeps deep or wide nets stable.

Layout: conv3x3 head; `n_blocks` residual blocks and a conv3x3, added to the head's output
(the global residual); sub-pixel upsampling (Shi et al. 2016) by the data's scale: a conv3x3
to r*r times the channels and a pixel shuffle, one x2 or x3 stage, or two x2 stages for x4;
a conv3x3 to the output channels. The output is the raw convolution (no tanh: the caller
clamps to [-1, 1] at inference). Everything is 3x3 and stride 1, so any input size works.

Initialisation: Kaiming normal (He et al. 2015) for the convolutions, biases 0; each
upsampling conv is initialised ICNR-style (Aitken et al. 2017): the r*r sub-pixel copies of
each output channel start with the same kernel, so the net starts as a nearest-neighbour
upsampler and shows no checkerboard.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, require_at_least_one
from .patchgan import Norm, build_patchgan, check_d_options, condition_channels
from .registry import MODELS, Architecture, DataShape

SCALES = (1, 2, 3, 4)


@dataclass
class SRResNetArgs:
    n_blocks: int = 16         # residual blocks
    width: int = 64            # channels of every block
    res_scale: float = 0.1     # factor on each block's residual (EDSR)
    d_width: int = 64          # ndf: channels of D's first layer
    d_layers: int = 3          # D's stride-2 layers (3: 70 x 70 patches)
    d_norm: Norm = "none"      # norm of D's layers: batch, instance or none
    d_conditional: bool = False  # D also sees the input, upsampled to the output size

    def check(self):
        require_at_least_one("model", self, ("n_blocks", "width"))
        if not self.res_scale > 0:
            raise ConfigError(f"model.res_scale={self.res_scale}: must be positive")
        check_d_options(self)


def _conv(c_in: int, c_out: int, relu_after: bool = False) -> nn.Conv2d:
    """A 3x3 same-padding conv, Kaiming-normal initialised (ReLU gain where one follows)."""
    conv = nn.Conv2d(c_in, c_out, 3, 1, 1)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu" if relu_after else "linear")
    nn.init.zeros_(conv.bias)
    return conv


class ResBlock(nn.Module):
    """x + res_scale * conv(relu(conv(x)))."""

    def __init__(self, width: int, res_scale: float):
        super().__init__()
        self.conv1, self.conv2 = _conv(width, width, relu_after=True), _conv(width, width)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(torch.relu(self.conv1(x)))


class SubPixelUp(nn.Sequential):
    """conv3x3 to r*r times the channels, then a pixel shuffle: r-times larger, same width."""

    def __init__(self, width: int, r: int):
        conv = _conv(width, width * r * r)
        # ICNR: pixel shuffle sends channel c * r*r + i to sub-pixel i of channel c, so copying
        # one kernel to the r*r channels of each c starts as nearest-neighbour upsampling.
        with torch.no_grad():
            conv.weight.copy_(conv.weight[::r * r].repeat_interleave(r * r, dim=0))
        super().__init__(conv, nn.PixelShuffle(r))


def _stages(scale: int) -> list[int]:
    """The sub-pixel upsampling factors that make `scale`: x4 as two x2 stages."""
    if scale not in SCALES:
        raise ConfigError(f"model 'srresnet' upscales by {', '.join(map(str, SCALES))}, "
                          f"not by the data's scale {scale}")
    return {1: [], 2: [2], 3: [3], 4: [2, 2]}[scale]


class SRResNetGenerator(nn.Module):
    """Image (+ mask) N x in_channels x h x w -> image N x channels x (h*scale) x (w*scale),
    unbounded (clamp at inference)."""

    def __init__(self, args: SRResNetArgs, shape: DataShape):
        super().__init__()
        stages = _stages(shape.scale)
        self.in_channels = condition_channels(shape)
        self.num_classes = shape.num_classes  # one-hot class-map channels at the end of the input
        self.channels, self.scale, self.stride = shape.channels, shape.scale, 1
        if shape.resolution % shape.scale:
            raise ConfigError(f"data.resolution={shape.resolution}: srresnet at scale {shape.scale} "
                              f"needs crops whose side is a multiple of {shape.scale}")
        w = args.width
        self.head = _conv(self.in_channels, w)
        self.body = nn.Sequential(*[ResBlock(w, args.res_scale) for _ in range(args.n_blocks)], _conv(w, w))
        self.tail = nn.Sequential(*[SubPixelUp(w, r) for r in stages], _conv(w, shape.channels))
        # Each 3x3 conv at input resolution reaches one input pixel further: the head, two per
        # block, the body's last and the first upsampling conv (or, at scale 1, the output
        # conv). The convs at finer resolutions together add at most one input pixel.
        radius = 1 + 2 * args.n_blocks + 1 + (2 if stages else 1)
        self.receptive_field = 2 * radius + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"srresnet expects N x {self.in_channels} x h x w, got {tuple(x.shape)}")
        h = self.head(x)
        return self.tail(h + self.body(h))


def build(args: SRResNetArgs, shape: DataShape) -> dict[str, nn.Module]:
    return {"G": SRResNetGenerator(args, shape), "D": build_patchgan(args, shape, "srresnet")}


MODELS.register("srresnet")(Architecture(
    SRResNetArgs, build, resolutions=None, channels=(1, 3), objective="image2image", labels="never",
    summary="EDSR-style residual net, pixel-shuffle x1-x4 + PatchGAN: super-resolution, restoration"))
