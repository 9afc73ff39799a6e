"""`spatial`: a fully convolutional texture GAN learned from one image (Spatial GAN, Jetchev,
Bergmann and Vollgraf 2016).

The latent is a field: z_channels of i.i.d. noise per position on a grid `2**upsamplings` times
coarser than the image. G upsamples it (nearest, then a 3x3 convolution, batch norm, ReLU at
each level) to an image; D is a PatchGAN that scores each patch of a crop. Both are fully
convolutional, so a field of any size makes an image of any size (larger than the exemplar),
and the training crops of one photo are a whole data set.

To the generation core it is an ordinary GAN: `latent_dim` is the field of one training crop
flattened (z_channels x (crop / 2**upsamplings)^2), so the loop, previews, EMA, health probes
and checkpoints need nothing new; `G(z)` takes that flat vector or a field N x z_channels x h x w.

Normalisation: batch norm while training; at inference each image is normalised by its own
statistics over its field (instance statistics, with the learnt scale and shift). Running
averages would be wrong twice over: they follow the live weights while samples come from the
EMA copy, and they were gathered on small crops while samples are large fields. A whole field
of one texture holds as many positions as a training batch, so its own statistics are as
steady (measured on the bundled textures: similarity to the exemplar 0.87-0.94 with running
averages, 0.92-0.95 with each field's own).

Tileable outputs: every convolution pads by `padding` (reflect by default, so borders carry no
position signal). `G.tileable(True)` switches them to circular padding: a field on a torus
(periodic i.i.d. noise is periodic) then gives an image that wraps seamlessly, exactly, when the
output size is the field size times 2**upsamplings.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .layers import init_dcgan
from .patchgan import Norm, PatchGAN, check_norm
from .registry import MODELS, Architecture, DataShape


@dataclass
class SpatialArgs:
    z_channels: int = 16         # noise channels per latent position
    upsamplings: int = 4         # the image is 2**upsamplings times the field (16: a latent per 16 px)
    g_width: int = 32            # channels at the finest level (doubling towards the field, to max_width)
    max_width: int = 128
    padding: str = "reflect"     # G's padding: reflect or zeros (tileable sampling uses circular)
    upsample: str = "nearest"    # or bilinear: fewer edges on the field's cell grid, but smeared detail (README)
    d_width: int = 32            # PatchGAN: channels of the first layer
    d_layers: int = 3            # PatchGAN: stride-2 layers (3: 70 x 70 patches)
    d_norm: Norm = "batch"

    def check(self):
        for key in ("z_channels", "upsamplings", "g_width", "max_width", "d_width", "d_layers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key}={getattr(self, key)}: must be at least 1")
        if self.padding not in ("reflect", "zeros"):
            raise ConfigError(f"model.padding={self.padding!r}: must be reflect or zeros")
        if self.upsample not in ("nearest", "bilinear"):
            raise ConfigError(f"model.upsample={self.upsample!r}: must be nearest or bilinear")
        check_norm("model.d_norm", self.d_norm)


class FieldNorm(nn.BatchNorm2d):
    """Batch norm in training; each image's own statistics at inference (see the module's
    docstring). Its state is BatchNorm2d's, so checkpoints keep their keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, use_input_stats=True, eps=self.eps)


class FieldUpsample(nn.Module):
    """x2 upsampling that can wrap: bilinear interpolation at a border reads the opposite
    border when `circular` is on (one wrapped cell of padding, cut off after), so a field on a
    torus stays exactly periodic. Nearest needs no neighbours and ignores the flag."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode, self.circular = mode, False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.circular:
            x = F.pad(x, (1, 1, 1, 1), mode="circular")
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return x[..., 2:-2, 2:-2] if self.circular else x


class SpatialGenerator(nn.Module):
    """Latent field N x z_channels x h x w (or N x latent_dim for one training crop) ->
    image N x channels x (h * stride) x (w * stride) in [-1, 1]."""

    def __init__(self, args: SpatialArgs, shape: DataShape):
        super().__init__()
        self.stride = 2 ** args.upsamplings
        if shape.resolution % self.stride:
            raise ConfigError(f"data.resolution={shape.resolution}: the spatial GAN with model.upsamplings="
                              f"{args.upsamplings} needs crops whose side is a multiple of {self.stride}")
        self.z_channels, self.field = args.z_channels, shape.resolution // self.stride
        self.latent_dim = args.z_channels * self.field ** 2
        self.resolution, self.channels, self.num_classes = shape.resolution, shape.channels, 0
        self.padding = args.padding
        widths = [min(args.g_width * 2 ** k, args.max_width) for k in range(args.upsamplings, -1, -1)]
        layers: list[nn.Module] = [self._conv(args.z_channels, widths[0]), FieldNorm(widths[0]), nn.ReLU(True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [FieldUpsample(args.upsample), self._conv(c_in, c_out),
                       FieldNorm(c_out), nn.ReLU(True)]
        layers += [self._conv(widths[-1], shape.channels, bias=True), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def _conv(self, c_in: int, c_out: int, bias: bool = False) -> nn.Conv2d:
        return nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias, padding_mode=self.padding)

    def tileable(self, on: bool = True) -> None:
        """Circular padding everywhere (a seamless wrap for a periodic field), or back to the
        training padding."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.padding_mode = "circular" if on else self.padding
            elif isinstance(module, FieldUpsample):
                module.circular = on

    def noise(self, n: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A latent field big enough for height x width images (cropped after G)."""
        rows, cols = -(-height // self.stride), -(-width // self.stride)
        return torch.randn(n, self.z_channels, rows, cols, generator=generator)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() == 2:
            z = z.view(len(z), self.z_channels, self.field, self.field)
        return self.net(z)


def build(args: SpatialArgs, shape: DataShape) -> dict[str, nn.Module]:
    return {"G": SpatialGenerator(args, shape),
            "D": PatchGAN(shape.channels, 0, args.d_width, args.d_layers, args.d_norm)}


MODELS.register("spatial")(Architecture(
    SpatialArgs, build, resolutions=None, channels=(1, 3), labels="never",
    summary="Spatial GAN for textures: latent field -> image, PatchGAN; any output size, tileable",
    # Cosine decay and light differentiable augmentation (DiffAugment's, at p 0.2): at 2,000
    # steps the histogram-matched similarity beats random tiling on brick, grass and gravel
    # (README, Textures, measured).
    defaults={"train": {"lr": 2e-4, "beta1": 0.5, "lr_schedule": "cosine"},
              "objective": {"augment": "translation,color,cutout", "augment_p": 0.2}}))
