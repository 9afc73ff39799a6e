"""The PatchGAN discriminator of pix2pix (Isola et al. 2017), shared by the image-to-image
families (unet, srresnet, dncnn).

A PatchGAN judges overlapping patches rather than whole images: it is fully convolutional and
returns a map of logits, one per patch, so it works on crops of any size and penalises
structure only at the scale of its receptive field (70 x 70 pixels with pix2pix's three
layers). Layers: a 4x4 stride-2 conv with no norm, `layers - 1` more 4x4 stride-2 convs, one
4x4 stride-1 conv, each followed by the chosen norm and LeakyReLU(0.2), then a 4x4 stride-1
conv to one channel; widths double from `width` up to 8 x `width`, as in pix2pix.

A conditional PatchGAN (pix2pix's) sees the model's input next to the image it judges, so it
can tell whether the output fits the input and not only whether it looks real. The condition
is the G input (image, mask, one-hot class map) at the size of the judged image; for
super-resolution the caller passes the input upsampled (bicubic) to that size.

Convolutions followed by a norm have no bias (the norm removes it, so it would never get a
gradient). Weights start N(0, 0.02) as in pix2pix. Spectral norm, when asked for, is applied
by the objective (`losses.regularizers.add_spectral_norm`), not here.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError, require_at_least_one
from .layers import init_dcgan, leaky
from .registry import DataShape

NORMS = ("batch", "instance", "none")
Norm = Literal["batch", "instance", "none"]


def norm2d(kind: str, features: int) -> nn.Module | None:
    """The 2-d norm layer named `kind` ("batch", "instance" or "none": None).

    Instance norm has no affine parameters and no running statistics, as in pix2pix, so it
    normalises every image by its own statistics in training and in evaluation alike.
    """
    if kind == "batch":
        return nn.BatchNorm2d(features)
    if kind == "instance":
        return nn.InstanceNorm2d(features, affine=False, track_running_stats=False)
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}; valid: {', '.join(NORMS)}")


def check_norm(key: str, value: str) -> None:
    """ConfigError unless `value` names a norm ("model.norm='layer': must be one of ...")."""
    if value not in NORMS:
        raise ConfigError(f"{key}={value!r}: must be one of {', '.join(NORMS)}")


def check_d_options(args) -> None:
    """Check the PatchGAN keys every image-to-image family shares: d_width, d_layers, d_norm."""
    require_at_least_one("model", args, ("d_width", "d_layers"))
    check_norm("model.d_norm", args.d_norm)


def patchgan_receptive_field(d_layers: int) -> int:
    """Side, in pixels, of the patch one logit of a PatchGAN with `d_layers` strided layers sees.

    Each stride-1 4x4 conv adds 3 pixels, each stride-2 4x4 conv doubles the field and adds 2:
    9 * 2**d_layers - 2.

    Example:
        >>> patchgan_receptive_field(3)   # pix2pix's default discriminator
        70
    """
    if d_layers < 1:
        raise ConfigError(f"model.d_layers={d_layers}: must be at least 1")
    return 9 * 2 ** d_layers - 2


def patchgan_output_size(size: int, d_layers: int) -> int:
    """Side of the logit map for an image side of `size` pixels (< 1: the image is too small).

    Example:
        >>> patchgan_output_size(256, 3)   # pix2pix: 256 x 256 images give 30 x 30 patches
        30
    """
    for _ in range(d_layers):
        size = (size + 2 - 4) // 2 + 1
    return size - 2


def patchgan_min_size(d_layers: int) -> int:
    """The smallest image side a PatchGAN with `d_layers` strided layers can judge."""
    size = 1
    while patchgan_output_size(size, d_layers) < 1:
        size += 1
    return size


class PatchGAN(nn.Module):
    """pix2pix's N-layer discriminator: images (and an optional condition) -> patch logits.

    Args:
        channels: channels of the judged images.
        cond_channels: channels of the condition concatenated in front of them (0: none).
        width: channels of the first layer (ndf).
        layers: number of stride-2 layers (pix2pix's n_layers; 3 gives 70 x 70 patches).
        norm: "batch", "instance" or "none".

    Example:
        >>> D = PatchGAN(3, cond_channels=3)
        >>> D(torch.randn(2, 3, 256, 256), torch.randn(2, 3, 256, 256)).shape
        torch.Size([2, 1, 30, 30])
    """

    def __init__(self, channels: int, cond_channels: int = 0, width: int = 64, layers: int = 3,
                 norm: str = "batch"):
        super().__init__()
        self.channels, self.cond_channels, self.layers = channels, cond_channels, layers
        self.receptive_field = patchgan_receptive_field(layers)
        self.min_size = patchgan_min_size(layers)
        widths = [width * min(2 ** i, 8) for i in range(layers + 1)]
        # Strided layers: the first without norm, the others with it.
        body: list[nn.Module] = [nn.Conv2d(channels + cond_channels, widths[0], 4, 2, 1), leaky()]
        for c_in, c_out in zip(widths[:-2], widths[1:-1]):
            body += _conv_norm_act(c_in, c_out, 2, norm)
        # One stride-1 layer, then the logits.
        body += _conv_norm_act(widths[-2], widths[-1], 1, norm)
        body.append(nn.Conv2d(widths[-1], 1, 4, 1, 1))
        self.net = nn.Sequential(*body)
        init_dcgan(self)

    def forward(self, images: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Patch logits N x 1 x h' x w' (h' = patchgan_output_size(H, layers))."""
        if self.cond_channels:
            if condition is None:
                raise ValueError(f"this discriminator is conditional: pass a condition of "
                                 f"{self.cond_channels} channels")
            if condition.shape[1] != self.cond_channels or condition.shape[2:] != images.shape[2:]:
                raise ValueError(f"condition of shape {tuple(condition.shape)} does not fit images "
                                 f"of shape {tuple(images.shape)}: expected N x {self.cond_channels} "
                                 f"x {images.shape[2]} x {images.shape[3]}")
            images = torch.cat([condition, images], dim=1)
        elif condition is not None:
            raise ValueError("this discriminator is unconditional (model.d_conditional=false): "
                             "pass no condition")
        return self.net(images)


def _conv_norm_act(c_in: int, c_out: int, stride: int, norm: str) -> list[nn.Module]:
    layer = norm2d(norm, c_out)
    conv = nn.Conv2d(c_in, c_out, 4, stride, 1, bias=layer is None)
    return [conv, *([layer] if layer is not None else []), leaky()]


def condition_channels(shape: DataShape) -> int:
    """Channels of G's input, hence of a conditional D's condition: image, mask, class map."""
    return shape.in_channels + int(shape.mask) + shape.num_classes


def build_patchgan(args, shape: DataShape, family: str) -> PatchGAN:
    """The D of an image-to-image family from its d_* options. The objective checks its
    `min_size` against the crops, and only when it trains D (an L1-only run never calls it)."""
    cond = condition_channels(shape) if args.d_conditional else 0
    return PatchGAN(shape.channels, cond, args.d_width, args.d_layers, args.d_norm)
