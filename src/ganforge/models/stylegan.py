"""`stylegan`: a StyleGAN2-style generator and residual discriminator (Karras et al. 2020,
"Analyzing and Improving the Image Quality of StyleGAN").

Generator: a mapping network z -> w (pixel norm, `mapping_layers` equalised-lr linear
layers with lr_mul 0.01, LeakyReLU(0.2)) feeds a synthesis network that starts from a
learned 4x4 constant. Every 3x3 convolution is modulated by a per-layer affine map of w
and demodulated (weight demodulation replaces StyleGAN's AdaIN); each is followed by
per-pixel noise with a learned per-channel strength (zero at the start), a bias and
LeakyReLU(0.2) x sqrt(2). Images are made by the skip architecture: a modulated 1x1 toRGB
(no demodulation) at every resolution, upsampled and summed. Training uses style mixing
regularisation and keeps a moving average of w for the truncation trick.

Discriminator: StyleGAN2's residual D: fromRGB at full resolution, residual blocks
(3x3 conv, 3x3 conv after a 2x downsampling, 1x1 skip after the same downsampling, the
sum scaled by 1/sqrt(2)), minibatch standard deviation (groups of 4), a 3x3 conv, a
linear layer to features and a linear layer to one logit; a projection head on those
features makes it class-conditional.

Deviations from the paper, made for this package:
- The image goes through tanh, so G's output is in [-1, 1] as every generator here must
  be (StyleGAN2's output is unbounded).
- Resampling: 2x upsampling is bilinear (align_corners=False), which is exactly the
  separable [1, 3, 3, 1] / 4 upsampling filter of the paper, with edge replication instead
  of zero padding; it is applied before the first 3x3 conv of a block instead of the
  paper's transposed conv followed by an FIR blur. D downsamples with the [1, 3, 3, 1]
  blur at stride 2 (zero padding, as StyleGAN2) before its strided layers' convs.
- The modulated convolution modulates activations instead of weights (as StyleGAN2-ADA
  does in training): input channels x styles, one shared convolution, output channels x
  demodulation coefficients. It equals the paper's per-sample weights in one grouped
  convolution (kept as `ModulatedConv2d(..., fused=True)` and tested against it) and is
  much faster on a CPU: at 32 px, g_width 32, batch 64, G's forward and backward went
  from ~4 s to ~0.6 s, as N x out x in x k x k per-sample weights are never built.
- Noise strengths are per channel (StyleGAN2 learns one scalar per layer; StyleGAN1 had
  per-channel strengths), which contains the scalar case.
- No path-length regulariser and no lazy-regularisation correction of Adam's lr/betas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, require_at_least_one
from .conditioning import ProjectionHead, at_strength, embed_labels
from .layers import EqualConv2d, EqualLinear, MinibatchStd, PixelNorm
from .registry import MODELS, Architecture, DataShape, gan_pair

RESOLUTIONS = (8, 16, 32, 64, 128, 256)
SQRT2 = math.sqrt(2.0)


@dataclass
class StyleGANArgs:
    latent_dim: int = 128         # size of z
    w_dim: int = 128              # size of the intermediate latent w (and of the class embedding)
    mapping_layers: int = 4       # mapping network layers (8 in the paper; fewer suit small data)
    g_width: int = 64             # generator channels at the finest resolution (doubling towards 4x4)
    d_width: int = 64             # discriminator channels at the finest resolution (doubling towards 4x4)
    max_width: int = 256          # cap on channels at the coarse resolutions
    style_mixing: float = 0.9     # probability per training batch of mixing two w's at a random layer
    mapping_lr_mul: float = 0.01  # learning-rate multiplier of the mapping network
    w_avg_beta: float = 0.995     # decay of the moving average of w (the truncation centre)
    mbstd_group: int = 4          # minibatch-std group size in D

    def check(self):
        require_at_least_one("model", self, ("latent_dim", "w_dim", "mapping_layers", "g_width", "d_width",
                                              "max_width", "mbstd_group"))
        if not 0 <= self.style_mixing <= 1:
            raise ConfigError(f"model.style_mixing={self.style_mixing}: must be in [0, 1]")
        if not self.mapping_lr_mul > 0:
            raise ConfigError(f"model.mapping_lr_mul={self.mapping_lr_mul}: must be positive")
        if not 0 <= self.w_avg_beta < 1:
            raise ConfigError(f"model.w_avg_beta={self.w_avg_beta}: must be in [0, 1)")


def _log2(resolution: int) -> int:
    log = int(round(math.log2(resolution)))
    if resolution not in RESOLUTIONS or 2 ** log != resolution:
        raise ConfigError(f"data.resolution={resolution}: stylegan supports {RESOLUTIONS}")
    return log


def _act(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(0.2) with StyleGAN's sqrt(2) gain (keeps unit second moment)."""
    return F.leaky_relu(x, 0.2) * SQRT2


def _upsample(x: torch.Tensor) -> torch.Tensor:
    """2x upsampling with the [1, 3, 3, 1] / 4 filter (bilinear, edges replicated)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """2x downsampling: the separable [1, 3, 3, 1] blur (sum 1) at stride 2, zero padding 1."""
    c = x.shape[1]
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], device=x.device, dtype=x.dtype)
    k = torch.outer(k, k)
    k = (k / k.sum()).expand(c, 1, 4, 4)
    return F.conv2d(x, k, stride=2, padding=1, groups=c)


# The generator.
class ModulatedConv2d(nn.Module):
    """Convolution whose input channels are scaled per sample by styles = affine(w), then
    (with `demodulate`) whose output channels are rescaled to unit expected variance:
    w'_ijk = s_i w_ijk, w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps). Weights are
    equalised (N(0, 1), scaled by 1/sqrt(fan_in) at run time); the affine's bias starts
    at 1 so styles start near 1. `up` upsamples the input 2x before the convolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True, up: bool = False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.demodulate, self.up = kernel_size, demodulate, up
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = False) -> torch.Tensor:
        """`fused`: build the per-sample weights and run one grouped convolution (the form
        of the paper). The default computes the same thing without per-sample weights:
        scale the input channels by the styles, convolve with the shared weight, scale the
        output channels by the demodulation coefficients rsqrt(sum_i s_i^2 sum_k w_oik^2),
        which on a CPU is several times faster (per-sample weights at 256 channels are
        N x 256 x 256 x 3 x 3 numbers per layer)."""
        styles = self.affine(w) * self.scale                             # (N, in)
        if fused:
            return self._fused(x, styles)
        weight = self.weight.to(x.dtype)
        x = x * styles[:, :, None, None].to(x.dtype)
        if self.up:
            x = _upsample(x)
        x = F.conv2d(x, weight, padding=self.kernel_size // 2)
        if self.demodulate:
            # sum over (in, k, k) of (s_i w_oik)^2 = s^2 @ (sum_k w_ok^2)^T
            d = torch.rsqrt(styles.square() @ self.weight.square().sum((2, 3)).t() + 1e-8)  # (N, out)
            x = x * d[:, :, None, None].to(x.dtype)
        return x

    def _fused(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        weight = self.weight[None] * styles[:, None, :, None, None]     # (N, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum((2, 3, 4), keepdim=True) + 1e-8)
        if self.up:
            x = _upsample(x)
        h, wd = x.shape[2], x.shape[3]
        weight = weight.reshape(n * self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        out = F.conv2d(x.reshape(1, n * self.in_channels, h, wd), weight.to(x.dtype),
                       padding=self.kernel_size // 2, groups=n)
        return out.reshape(n, self.out_channels, h, wd)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally after 2x upsampling), noise, bias, LeakyReLU x sqrt(2).

    Noise: fresh N(0, 1) per pixel and sample in training mode; in eval mode a fixed map
    drawn at construction (a buffer, saved with the weights), so sampling is deterministic.
    An explicit `noise` map (N or 1 x 1 x r x r) replaces both, so an exported graph can take
    the noise as an input instead of drawing it."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv(x, w)
        if noise is not None:
            noise = noise.to(x.dtype)
        elif self.training:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        else:
            noise = self.noise_const.to(x.dtype)
        x = x + noise * self.noise_strength.view(1, -1, 1, 1).to(x.dtype)
        return _act(x + self.bias.view(1, -1, 1, 1).to(x.dtype))


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation, plus a bias."""

    def __init__(self, in_channels: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias.view(1, -1, 1, 1).to(x.dtype)


class SynthesisBlock(nn.Module):
    """One resolution: (upsample +) conv0, conv1, toRGB. The 4x4 block has only conv1 (its
    input is the learned constant), as in StyleGAN2."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, channels: int):
        super().__init__()
        self.conv0 = (SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
                      if resolution > 4 else None)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, channels, w_dim)
        self.num_conv = 2 if self.conv0 is not None else 1

    def forward(self, x, img, ws, noise=None):
        """`ws` (N, num_conv + 1, w_dim): one w per conv and one for toRGB; `noise`: None or
        one map per conv."""
        noise = noise or [None] * self.num_conv
        i = 0
        if self.conv0 is not None:
            x = self.conv0(x, ws[:, 0], noise[0])
            i = 1
        x = self.conv1(x, ws[:, i], noise[i])
        y = self.torgb(x, ws[:, i + 1])
        img = y if img is None else _upsample(img) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image logits (N, channels, R, R), before tanh.

    Layer i takes ws[:, i]; each toRGB shares its w with the next block's first conv, so
    num_ws = 2 log2(R) - 2, and ws[:, :k] with small k are the coarse styles. `noise`, when
    given, holds one map per conv layer (num_ws - 1 of them, coarsest first, shapes from
    `noise_shapes`) in place of the layers' own noise."""

    def __init__(self, args: StyleGANArgs, shape: DataShape):
        super().__init__()
        top = _log2(shape.resolution)
        resolutions = [2 ** i for i in range(2, top + 1)]
        width = {r: min(args.g_width * shape.resolution // r, args.max_width) for r in resolutions}
        self.const = nn.Parameter(torch.randn(width[4], 4, 4))
        self.blocks = nn.ModuleList(
            SynthesisBlock(width[max(r // 2, 4)], width[r], args.w_dim, r, shape.channels)
            for r in resolutions)
        self.w_dim = args.w_dim
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1

    def noise_shapes(self) -> list[tuple[int, int, int]]:
        """(1, r, r) of each conv layer's noise map, in the order `forward` takes them."""
        return [tuple(layer.noise_const.shape[1:]) for block in self.blocks
                for layer in (block.conv0, block.conv1) if layer is not None]

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        if noise is not None and len(noise) != self.num_ws - 1:
            raise ValueError(f"noise must hold {self.num_ws - 1} maps (one per conv layer), got {len(noise)}")
        if ws.dim() == 2:
            ws = ws[:, None].expand(-1, self.num_ws, -1)
        if ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        x = self.const[None].expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        img, i = None, 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, i:i + block.num_conv + 1],
                           None if noise is None else noise[i:i + block.num_conv])
            i += block.num_conv
        return img


class MappingNetwork(nn.Module):
    """z (and a class) -> w. Keeps `w_avg`, a moving average of w over training forwards."""

    def __init__(self, args: StyleGANArgs, num_classes: int):
        super().__init__()
        self.norm = PixelNorm()
        self.embed = nn.Embedding(num_classes, args.w_dim) if num_classes else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight)
        self.condition_strength = 1.0   # conditioning.set_condition_strength: 0 to 1
        features = args.latent_dim + (args.w_dim if num_classes else 0)
        self.layers = nn.ModuleList()
        for _ in range(args.mapping_layers):
            self.layers.append(EqualLinear(features, args.w_dim, lr_mul=args.mapping_lr_mul))
            features = args.w_dim
        self.w_avg_beta = args.w_avg_beta
        self.register_buffer("w_avg", torch.zeros(args.w_dim))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                truncation: float | torch.Tensor = 1.0, update_w_avg: bool = True) -> torch.Tensor:
        x = self.norm(z.flatten(1))
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels")
            x = torch.cat([x, at_strength(self.norm(embed_labels(self.embed, labels)), self.condition_strength)], dim=1)
        for layer in self.layers:
            x = _act(layer(x))
        if self.training and update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if isinstance(truncation, torch.Tensor) or truncation != 1:  # a tensor: an exported graph's input
            x = self.w_avg.to(x.dtype).lerp(x, truncation)
        return x


class Generator(nn.Module):
    """G(z, labels=None, truncation=1.0, noise=None) -> images in [-1, 1].

    `mapping(z, labels)` gives w (N, w_dim); `synthesis(ws)` renders ws (N, num_ws, w_dim)
    (layer 0 coarsest), for style mixing and editing. In training mode, with probability
    `style_mixing` per batch, the layers from a random crossover index on take the w of a
    second z. Truncation moves w towards `w_avg`: w_avg + psi (w - w_avg). `noise`: None (the
    layers' own: fresh in training, fixed in eval) or one map per conv layer (see
    `SynthesisNetwork.forward`)."""

    supports_truncation = True

    def __init__(self, args: StyleGANArgs, shape: DataShape):
        super().__init__()
        self.latent_dim, self.w_dim = args.latent_dim, args.w_dim
        self.resolution, self.channels, self.num_classes = shape.resolution, shape.channels, shape.num_classes
        self.style_mixing = args.style_mixing
        self.mapping = MappingNetwork(args, shape.num_classes)
        self.synthesis = SynthesisNetwork(args, shape)
        self.num_ws = self.synthesis.num_ws

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                truncation: float | torch.Tensor = 1.0, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        w = self.mapping(z, labels, truncation)
        ws = w[:, None].repeat(1, self.num_ws, 1)
        if self.training and self.style_mixing > 0 and torch.rand(()).item() < self.style_mixing:
            cutoff = int(torch.randint(1, self.num_ws, ()))
            w2 = self.mapping(torch.randn_like(z), labels, truncation, update_w_avg=False)
            ws[:, cutoff:] = w2[:, None]
        return torch.tanh(self.synthesis(ws, noise))


# The discriminator.
class DBlock(nn.Module):
    """Residual block: conv3x3, downsample + conv3x3 on one path, downsample + 1x1 on the
    skip path, (sum) / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(_downsample(x))
        x = _act(self.conv0(x))
        x = _act(self.conv1(_downsample(x)))
        return (x + y) * (1 / SQRT2)


class Discriminator(nn.Module):
    def __init__(self, args: StyleGANArgs, shape: DataShape):
        super().__init__()
        top = _log2(shape.resolution)
        resolutions = [2 ** i for i in range(top, 1, -1)]          # R, R/2, ..., 4
        width = {r: min(args.d_width * shape.resolution // r, args.max_width) for r in resolutions}
        self.fromrgb = EqualConv2d(shape.channels, width[shape.resolution], 1)
        self.blocks = nn.Sequential(*(DBlock(width[r], width[r // 2]) for r in resolutions[:-1]))
        c = width[4]
        self.mbstd = MinibatchStd(args.mbstd_group, 1)
        self.conv = EqualConv2d(c + 1, c, 3)
        self.fc = EqualLinear(c * 16, c)
        self.out = EqualLinear(c, 1)
        self.num_classes = shape.num_classes
        self.project = ProjectionHead(shape.num_classes, c)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                with_classes: bool = False):
        """Logits (N,); with `with_classes`, also ACGAN class logits (N, classes)."""
        h = self.blocks(_act(self.fromrgb(x)))
        h = _act(self.conv(self.mbstd(h)))
        phi = _act(self.fc(h.flatten(1)))
        logits = self.project(self.out(phi).flatten(), phi if self.num_classes else None, labels)
        return (logits, self.project.classify(phi)) if with_classes else logits


build = gan_pair(Generator, Discriminator)


MODELS.register("stylegan")(Architecture(
    StyleGANArgs, build, RESOLUTIONS,
    summary="StyleGAN2: mapping network, modulated/demodulated convs, noise, skip G, residual D",
    defaults={"objective": {"loss": "ns", "r1_gamma": 0.1, "r1_every": 16},
              "train": {"lr": 0.0025, "beta1": 0.0, "beta2": 0.99, "ema_decay": 0.999}}))
