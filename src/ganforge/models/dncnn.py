"""`dncnn`: the denoising CNN of Zhang et al. (2017), with a PatchGAN discriminator for optional
adversarial training.

Residual learning: the network predicts the noise (the difference between its input and the
clean image) and returns input - noise. The noise is simpler to model than the image, and a
net that predicts nothing returns its input unchanged, a safe start for mild degradations
(noise, JPEG artefacts, blur). Hence input and output images must have the same channels and
size.

Layout (DnCNN-S): conv3x3-ReLU; `depth` - 2 layers conv3x3-BN-ReLU; conv3x3 to the image's
channels. With `bn` off the middle layers are conv3x3-ReLU with a bias. The output is not
squashed (the caller clamps to [-1, 1] at inference). Everything is 3x3 and stride 1:
any input size works and an output pixel depends on the `depth` pixels around it.
A hole mask, if the task has one, is an extra input channel; the noise is subtracted from
the image channels only.

`unshuffle` s > 1 is FFDNet's trick (Zhang, Zuo and Zhang 2018): the layers run on the s x s
sub-images of the input (pixel unshuffle: C channels at h x w become C*s*s at h/s x w/s) and
the predicted noise is shuffled back. Each layer costs s*s times less and the receptive field
grows s times, which is what a few CPU minutes need; inputs are padded to a multiple of s
(`stride`).

Initialisation: Kaiming normal (He et al. 2015) for the convolutions (ReLU gain where a ReLU
follows), biases 0, batch-norm gains 1 and biases 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, require_at_least_one
from .patchgan import Norm, build_patchgan, check_d_options, condition_channels
from .registry import MODELS, Architecture, DataShape


@dataclass
class DnCNNArgs:
    depth: int = 17            # conv layers (DnCNN-S: 17)
    width: int = 64            # channels of the hidden layers
    bn: bool = True            # batch norm in the middle layers
    unshuffle: int = 1         # run on s x s sub-images (FFDNet): s*s times cheaper layers
    d_width: int = 64          # ndf: channels of D's first layer
    d_layers: int = 3          # D's stride-2 layers (3: 70 x 70 patches)
    d_norm: Norm = "none"      # norm of D's layers: batch, instance or none
    d_conditional: bool = False  # D also sees the noisy input

    def check(self):
        require_at_least_one("model", self, ("depth", "width", "unshuffle"))
        if self.depth < 2:
            raise ConfigError(f"model.depth={self.depth}: dncnn needs at least 2 layers (first and last)")
        check_d_options(self)


def _conv(c_in: int, c_out: int, relu_after: bool, bias: bool = True) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu" if relu_after else "linear")
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


class DnCNNGenerator(nn.Module):
    """Degraded image (+ mask) N x in_channels x h x w -> restored N x channels x h x w:
    the image channels minus the predicted noise."""

    def __init__(self, args: DnCNNArgs, shape: DataShape):
        super().__init__()
        if shape.in_channels != shape.channels:
            raise ConfigError(f"data.channels={shape.channels}, but the degradation gives "
                              f"{shape.in_channels}-channel inputs: dncnn subtracts a predicted noise "
                              f"from its input, so both need the same channels (unet can change them)")
        if shape.scale != 1:
            raise ConfigError(f"model 'dncnn' keeps the image size, but the degradation's scale "
                              f"(output size / input size) is {shape.scale}; use srresnet for super-resolution")
        self.in_channels = condition_channels(shape)
        self.num_classes = shape.num_classes  # one-hot class-map channels at the end of the input
        s = args.unshuffle
        self.channels, self.scale, self.stride = shape.channels, 1, s
        # An output pixel sees `depth` sub-image cells each way, s pixels each, and where it
        # sits inside its own cell adds up to s - 1 more on one side: radius s * (depth + 1) - 1.
        self.receptive_field = 2 * s * (args.depth + 1) - 1
        w = args.width
        layers: list[nn.Module] = [nn.PixelUnshuffle(s)] if s > 1 else []
        layers += [_conv(self.in_channels * s * s, w, relu_after=True), nn.ReLU()]
        for _ in range(args.depth - 2):
            layers.append(_conv(w, w, relu_after=True, bias=not args.bn))
            layers += [nn.BatchNorm2d(w), nn.ReLU()] if args.bn else [nn.ReLU()]
        layers.append(_conv(w, shape.channels * s * s, relu_after=False))
        if s > 1:
            layers.append(nn.PixelShuffle(s))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"dncnn expects N x {self.in_channels} x h x w, got {tuple(x.shape)}")
        return x[:, :self.channels] - self.net(x)


def build(args: DnCNNArgs, shape: DataShape) -> dict[str, nn.Module]:
    return {"G": DnCNNGenerator(args, shape), "D": build_patchgan(args, shape, "dncnn")}


MODELS.register("dncnn")(Architecture(
    DnCNNArgs, build, resolutions=None, channels=(1, 3), objective="image2image", labels="never",
    summary="DnCNN: predicts the noise and subtracts it (residual learning) + PatchGAN: denoising"))
