"""`progressive`: ProGAN (Karras et al. 2018): G and D grow from 4x4 to the full resolution
during training, each new resolution faded in smoothly; equalised learning rate, pixel norm
in G, minibatch standard deviation in D.

The training loop, objectives and sampling know nothing of growth: the networks always take
and give images at the full data resolution. At a stage of resolution r, G makes r x r
images and repeats each pixel up to the full size (nearest), and D average-pools its input
down to r x r first, so reals and fakes go through the same down-sampling. The loop calls
`set_step(step)` before every step; the stage and fade-in alpha it sets are buffers, so a
checkpoint holds them and a generator rebuilt from one is at the stage it was trained at.

Every block exists from the start (the optimiser covers them all); a block takes part once
its stage is reached. The toRGB / fromRGB layers of the coarser resolutions fall idle when
the next resolution has faded in (as in the paper): `idle_parameters()` names them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, require_at_least_one
from .conditioning import LabelToNoise, ProjectionHead
from .layers import EqualConv2d, EqualLinear, MinibatchStd, PixelNorm
from .registry import MODELS, Architecture, DataShape, gan_pair

RESOLUTIONS = (8, 16, 32, 64, 128, 256)
GAIN = math.sqrt(2.0)  # He gain of the paper's equalised layers, applied after each LeakyReLU
# How the current stage runs: no fade-in (stage 0, or alpha 1), the old path alone (alpha 0),
# or both paths blended.
STABLE, OLD, BLEND = "stable", "old", "blend"


@dataclass
class ProgressiveArgs:
    latent_dim: int = 128
    g_width: int = 16        # G channels at the full resolution (doubling towards 4x4, up to max_width)
    d_width: int = 16        # D channels at the full resolution (doubling towards 4x4, up to max_width)
    max_width: int = 128     # cap on channels at the coarse resolutions (the paper: 512)
    stage_steps: int = 250   # training steps per resolution: fade in over the first fade_fraction, then stable
    fade_fraction: float = 0.5  # share of a new stage spent fading it in (alpha 0 -> 1); 0: no fade
    start_resolution: int = 4   # first stage (a power of two, 4 up to the data resolution)
    embed_dim: int = 32      # conditional models: size of the class embedding joined to z
    mbstd_group: int = 4     # minibatch standard deviation: samples per group (1: off)

    def check(self):
        require_at_least_one("model", self, ("latent_dim", "g_width", "d_width", "max_width", "stage_steps",
                                              "embed_dim", "mbstd_group"))
        if not 0 <= self.fade_fraction <= 1:
            raise ConfigError(f"model.fade_fraction={self.fade_fraction}: must be in [0, 1]")
        r = self.start_resolution
        if r < 4 or r & (r - 1):
            raise ConfigError(f"model.start_resolution={r}: must be a power of two, at least 4")


def stage_resolutions(args: ProgressiveArgs, resolution: int) -> list[int]:
    """The resolution of each stage: start_resolution, doubling up to `resolution`."""
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"data.resolution={resolution}: progressive supports {RESOLUTIONS}")
    if args.start_resolution > resolution:
        raise ConfigError(f"model.start_resolution={args.start_resolution}: above the data "
                          f"resolution {resolution}")
    return [args.start_resolution * 2 ** i
            for i in range(int(math.log2(resolution // args.start_resolution)) + 1)]


def schedule(step: int, stage_steps: int, stages: int, fade_fraction: float = 0.5) -> tuple[int, float]:
    """(stage, alpha) at `step`: stage k covers steps [k, k + 1) * stage_steps (the last
    stage lasts for ever); a stage after the first fades in with alpha rising linearly from 0
    to 1 over its first fade_fraction * stage_steps steps. Stage 0 is always at alpha 1."""
    stage = min(max(step, 0) // stage_steps, stages - 1)
    if stage == 0:
        return 0, 1.0
    fade = fade_fraction * stage_steps
    into = step - stage * stage_steps
    return stage, 1.0 if into >= fade else into / fade


def _mode(stage: int, alpha: float) -> str:
    return STABLE if stage == 0 or alpha >= 1 else OLD if alpha <= 0 else BLEND


def _after_load(module: "_Growing", incompatible_keys) -> None:
    module._sync_from_buffers()


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * GAIN


def _width(base: int, cap: int, r: int, full: int) -> int:
    return min(base * full // r, cap)


class _Growing(nn.Module):
    """Stage and alpha as buffers (saved in checkpoints), mirrored in Python values so that
    the forward pass never reads a device tensor back (no host sync per call). The forward
    pass branches on the stage and the fade mode only, and blends with the alpha buffer, so a
    compiled network recompiles when the stage or mode changes, not at every alpha."""

    def _init_growth(self, args: ProgressiveArgs, resolution: int):
        self.stages = stage_resolutions(args, resolution)
        self.stage_steps, self.fade_fraction = args.stage_steps, args.fade_fraction
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))
        self.register_buffer("alpha", torch.ones(()))
        self._stage, self._alpha, self._mode = 0, 1.0, STABLE
        self.register_load_state_dict_post_hook(_after_load)

    def _sync_from_buffers(self) -> None:
        stage = int(self.stage)
        if not 0 <= stage < len(self.stages):
            raise ValueError(f"stage {stage} outside 0..{len(self.stages) - 1} for this network")
        self._stage, self._alpha = stage, float(self.alpha)
        self._mode = _mode(stage, self._alpha)

    def set_step(self, step: int) -> None:
        """Follow the growth schedule: the stage and fade-in alpha of training step `step`."""
        self.set_stage(*schedule(step, self.stage_steps, len(self.stages), self.fade_fraction))

    def set_stage(self, stage: int, alpha: float = 1.0) -> None:
        if not 0 <= stage < len(self.stages) or not 0 <= alpha <= 1:
            raise ValueError(f"stage {stage}, alpha {alpha}: stage must be in 0..{len(self.stages) - 1}, "
                             f"alpha in [0, 1]")
        alpha = float(np.float32(alpha))  # as the buffer holds it, so a reloaded net computes the same
        if (stage, alpha) != (self._stage, self._alpha):  # most steps change nothing
            self._stage, self._alpha, self._mode = stage, alpha, _mode(stage, alpha)
            self.stage.fill_(stage)
            self.alpha.fill_(alpha)

    @property
    def current_resolution(self) -> int:
        return self.stages[self._stage]

    def idle_parameters(self) -> list[str]:
        """Names of the parameters the current stage (and alpha) does not use: blocks not yet
        grown and the toRGB / fromRGB layers of resolutions already faded out."""
        used = self._used_parts()
        return [name for name, _ in self.named_parameters()
                if name.split(".")[0] in self._growing_parts and ".".join(name.split(".")[:2]) not in used]

    def _used_parts(self) -> set[str]:
        """The growing parts ("blocks.8", "to_rgb.16", ...) the current stage runs."""
        r, blocks, rgb = self.current_resolution, *self._growing_parts
        used = {f"{blocks}.{s}" for s in _doublings(4, r)} | {f"{rgb}.{r}"}
        if self._mode != STABLE:
            used.add(f"{rgb}.{r // 2}")
            if self._mode == OLD:
                used -= {f"{blocks}.{r}", f"{rgb}.{r}"}
        return used


class Generator(_Growing):
    def __init__(self, args: ProgressiveArgs, shape: DataShape):
        super().__init__()
        self.latent_dim, self.resolution, self.channels = args.latent_dim, shape.resolution, shape.channels
        self.num_classes = shape.num_classes
        self._init_growth(args, shape.resolution)
        full = shape.resolution
        width = partial(_width, args.g_width, args.max_width, full=full)  # channels at r x r
        self.condition = LabelToNoise(shape.num_classes, args.embed_dim)
        self.norm = PixelNorm()
        self.dense = EqualLinear(args.latent_dim + self.condition.extra, width(4) * 16)
        self.conv4 = EqualConv2d(width(4), width(4), 3)
        # blocks["8"] turns 4x4 features into 8x8 ones, and so on.
        self.blocks = nn.ModuleDict({
            str(r): nn.ModuleList([EqualConv2d(width(r // 2), width(r), 3), EqualConv2d(width(r), width(r), 3)])
            for r in _doublings(4, full)})
        self.to_rgb = nn.ModuleDict({str(r): EqualConv2d(width(r), shape.channels, 1) for r in self.stages})
        self._growing_parts = ("blocks", "to_rgb")

    def _block(self, r: int, h: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        for conv in self.blocks[str(r)]:
            h = self.norm(_act(conv(h)))
        return h

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm(self.condition(z.flatten(1), labels))
        h = self.norm(_act(self.dense(h).view(h.shape[0], -1, 4, 4)))
        h = self.norm(_act(self.conv4(h)))
        r, mode = self.current_resolution, self._mode
        for s in _doublings(4, r if mode == STABLE else r // 2):
            h = self._block(s, h)
        if mode == STABLE:
            x = self.to_rgb[str(r)](h)
        else:  # h is at r / 2: blend the new block's output into the upsampled old one
            x = F.interpolate(self.to_rgb[str(r // 2)](h), scale_factor=2, mode="nearest")
            if mode == BLEND:
                x = x + self.alpha * (self.to_rgb[str(r)](self._block(r, h)) - x)
        # tanh bounds the output to [-1, 1] as the package's generators promise (the paper's
        # G is linear); nearest upsampling commutes with it, so it is applied at r x r.
        x = torch.tanh(x)
        if r < self.resolution:
            x = F.interpolate(x, scale_factor=self.resolution // r, mode="nearest")
        return x


class Discriminator(_Growing):
    def __init__(self, args: ProgressiveArgs, shape: DataShape):
        super().__init__()
        self.resolution, self.channels = shape.resolution, shape.channels
        self.num_classes = shape.num_classes
        self._init_growth(args, shape.resolution)
        full = shape.resolution
        width = partial(_width, args.d_width, args.max_width, full=full)  # channels at r x r
        self.from_rgb = nn.ModuleDict({str(r): EqualConv2d(shape.channels, width(r), 1) for r in self.stages})
        # blocks["8"] turns 8x8 features into 4x4 ones, and so on.
        self.blocks = nn.ModuleDict({
            str(r): nn.ModuleList([EqualConv2d(width(r), width(r), 3), EqualConv2d(width(r), width(r // 2), 3)])
            for r in _doublings(4, full)})
        self.mbstd = MinibatchStd(args.mbstd_group) if args.mbstd_group > 1 else None
        extra = 1 if self.mbstd is not None else 0
        self.conv4 = EqualConv2d(width(4) + extra, width(4), 3)
        self.dense4 = EqualConv2d(width(4), width(4), 4, padding=0)  # the paper's 4x4 -> 1 dense layer
        self.final = EqualLinear(width(4), 1)
        self.project = ProjectionHead(shape.num_classes, width(4))
        self._growing_parts = ("blocks", "from_rgb")

    def _block(self, r: int, h: torch.Tensor) -> torch.Tensor:
        for conv in self.blocks[str(r)]:
            h = _act(conv(h))
        return F.avg_pool2d(h, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                with_classes: bool = False):
        """Logits (N,); with `with_classes`, also ACGAN class logits (N, classes)."""
        r, mode = self.current_resolution, self._mode
        if r < self.resolution:
            x = F.avg_pool2d(x, self.resolution // r)
        if mode != STABLE:  # blend the new block's output into the old path
            h = _act(self.from_rgb[str(r // 2)](F.avg_pool2d(x, 2)))
            if mode == BLEND:
                h = h + self.alpha * (self._block(r, _act(self.from_rgb[str(r)](x))) - h)
            r //= 2
        else:
            h = _act(self.from_rgb[str(r)](x))
        for s in reversed(_doublings(4, r)):
            h = self._block(s, h)
        if self.mbstd is not None:
            h = self.mbstd(h)
        h = _act(self.conv4(h))
        phi = _act(self.dense4(h)).flatten(1)
        logits = self.project(self.final(phi).flatten(), phi, labels)
        return (logits, self.project.classify(phi)) if with_classes else logits


def _doublings(low: int, high: int) -> list[int]:
    """Resolutions 2 * low, 4 * low, ..., high (empty when high <= low)."""
    out, r = [], low * 2
    while r <= high:
        out.append(r)
        r *= 2
    return out


build = gan_pair(Generator, Discriminator)


MODELS.register("progressive")(Architecture(
    ProgressiveArgs, build, RESOLUTIONS,
    summary="ProGAN: growing G and D (4x4 up, faded in), equalised lr, pixel norm, minibatch std",
    # The paper's training set-up: WGAN-GP (lambda 10) and Adam(lr 1e-3, betas (0, 0.99)).
    defaults={"objective": {"loss": "wgan-gp", "drift": 0.001}, "train": {"lr": 1e-3, "beta1": 0.0, "beta2": 0.99}}))
