"""Degradations: make an editing model's input from a clean batch, on the device, by name.

Editing models learn to undo a known corruption (BasicSR degrades `gt` into `lq`, LaMa cuts
holes). Rather than storing pairs, each clean batch is degraded as it is drawn, by a chain
of registered ops such as "mask:free-form" or "noise:25+jpeg:40", applied left to right.

Ops take float N x C x H x W batches in [-1, 1] and return tensors in [-1, 1] of the same
dtype and device. Every random draw comes from the caller's `generator` (seeded from the step,
so a resumed run draws the same), made on the generator's device, so one seed gives one
result on any device. Holes are 0.0 (mid-grey); masks are drawn at full size.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ConfigError, DataError
from ..registry import Registry, suggest
from .imageset import to_float, to_uint8


@dataclass
class Degraded:
    """What a degradation makes from a clean batch."""

    source: torch.Tensor                      # N x C' x H/s x W/s, the model's input
    mask: torch.Tensor | None                 # N x 1 x H x W, 1.0 = hole; None without a mask op
    region_labels: torch.Tensor | None = None  # (N,) class of the removed instance (mask:region)


@dataclass(frozen=True)
class Op:
    """One step of a chain. `fn` is `(x, generator) -> x` for an image op, and
    `(x, generator, regions, region_labels) -> (bool N x 1 x H x W hole, labels or None)`
    for a mask op."""

    spec: str
    fn: Callable
    makes_mask: bool = False
    factor: int = 1
    gray: bool = False


DEGRADATIONS: Registry[Callable[[str | None], Op]] = Registry("degradation")
Generator = torch.Generator | None


# --------------------------------------------------------------------------- randomness


def _uniform(x: torch.Tensor, shape: tuple[int, ...], generator: Generator) -> torch.Tensor:
    """Float32 uniforms in [0, 1), drawn on the generator's device, returned on x's."""
    device = x.device if generator is None else generator.device
    return torch.rand(shape, generator=generator, device=device).to(x.device)


def _uniform_int(x: torch.Tensor, shape: tuple[int, ...], low: int, high: int,
                 generator: Generator) -> torch.Tensor:
    """Integers uniform in [low, high] (inclusive), as long, on x's device."""
    return low + (_uniform(x, shape, generator) * (high - low + 1)).long().clamp(max=high - low)


# --------------------------------------------------------------------------- mask ops

def _box_mask(x: torch.Tensor, generator: Generator) -> torch.Tensor:
    """One rectangle per image, sides uniform in [H/4, H/2] (resp. W), wholly inside."""
    n, _, h, w = x.shape
    sides, starts = [], []
    for size in (h, w):
        low = max(1, math.ceil(size / 4))
        side = _uniform_int(x, (n,), low, max(low, size // 2), generator)
        sides.append(side)
        starts.append((_uniform(x, (n,), generator) * (size - side + 1)).long())
    rows = torch.arange(h, device=x.device) - starts[0][:, None]
    cols = torch.arange(w, device=x.device) - starts[1][:, None]
    in_rows = (rows >= 0) & (rows < sides[0][:, None])
    in_cols = (cols >= 0) & (cols < sides[1][:, None])
    return in_rows[:, None, :, None] & in_cols[:, None, None, :]


def _center_mask(x: torch.Tensor) -> torch.Tensor:
    """The centred rectangle of half the height and half the width."""
    n, _, h, w = x.shape
    mask = torch.zeros(n, 1, h, w, dtype=torch.bool, device=x.device)
    top, left = (h - h // 2) // 2, (w - w // 2) // 2
    mask[:, :, top:top + h // 2, left:left + w // 2] = True
    return mask


def _free_form_mask(x: torch.Tensor, generator: Generator, strokes: int = 4,
                    vertices: int = 5, scale: int | None = None) -> torch.Tensor:
    """Brush strokes as LaMa / DeepFill draw them: 1-4 polylines of 2-5 vertices per image,
    any angle, segments 25-75% and width 5-15% of the shorter side, vertices kept inside.
    Holes cover about 20% of an image on average (5-35% for most).

    With `scale`, strokes are drawn as on a `scale`-pixel image whatever the image's size
    (widths and lengths from `scale`, up to 4 strokes per `scale` x `scale` of area), so a
    model trained on crops of that size meets holes of the size it learnt on a whole photo."""
    n, _, h, w = x.shape
    side = scale or min(h, w)
    if scale:
        strokes = max(1, round(strokes * h * w / scale ** 2))
    # Draw counts, widths, start points (pixel centres, so every stroke covers a pixel), steps.
    n_strokes = _uniform_int(x, (n, 1), 1, strokes, generator)
    n_vertices = _uniform_int(x, (n, strokes), 2, vertices, generator)
    radius = ((0.05 + 0.10 * _uniform(x, (n, strokes), generator)) * side).clamp(min=1.0) / 2
    row = (_uniform(x, (n, strokes), generator) * h).floor()
    col = (_uniform(x, (n, strokes), generator) * w).floor()
    angle = _uniform(x, (n, strokes, vertices - 1), generator) * (2 * math.pi)
    length = (0.25 + 0.5 * _uniform(x, (n, strokes, vertices - 1), generator)) * side
    # Walk each polyline, clipping every vertex to the image.
    points = [torch.stack([row, col], -1)]
    for step in range(vertices - 1):
        row = (row + length[..., step] * torch.sin(angle[..., step])).clamp(0, h - 1)
        col = (col + length[..., step] * torch.cos(angle[..., step])).clamp(0, w - 1)
        points.append(torch.stack([row, col], -1))
    points = torch.stack(points, 2)                                   # n, strokes, vertices, 2
    start, end = points[:, :, :-1].flatten(1, 2), points[:, :, 1:].flatten(1, 2)
    valid = ((torch.arange(strokes, device=x.device) < n_strokes)[..., None]
             & (torch.arange(vertices - 1, device=x.device) < n_vertices[..., None] - 1))
    valid = valid.flatten(1)
    radius = radius[..., None].expand(-1, -1, vertices - 1).flatten(1)
    # Rasterise: a pixel is a hole if its distance to a valid segment is at most the radius.
    py = torch.arange(h, device=x.device, dtype=torch.float32).view(1, h, 1)
    px = torch.arange(w, device=x.device, dtype=torch.float32).view(1, 1, w)
    mask = torch.zeros(n, h, w, dtype=torch.bool, device=x.device)
    for k in range(start.shape[1]):
        ay, ax = start[:, k, 0].view(n, 1, 1), start[:, k, 1].view(n, 1, 1)
        vy, vx = end[:, k, 0].view(n, 1, 1) - ay, end[:, k, 1].view(n, 1, 1) - ax
        t = (((py - ay) * vy + (px - ax) * vx) / (vy * vy + vx * vx).clamp(min=1e-12)).clamp(0, 1)
        dist2 = (py - ay - t * vy) ** 2 + (px - ax - t * vx) ** 2
        mask |= (dist2 <= radius[:, k].view(n, 1, 1) ** 2) & valid[:, k].view(n, 1, 1)
    return mask[:, None]


def _region_mask(x: torch.Tensor, generator: Generator, regions: torch.Tensor | None,
                 region_labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixels of one instance per image, picked uniformly among those present, and its class."""
    if regions is None or region_labels is None:
        raise ConfigError("mask:region needs `regions` and `region_labels` "
                          "(a data set with instance maps)")
    n, _, h, w = x.shape
    if regions.shape != (n, h, w) or region_labels.dim() != 2 or region_labels.shape[0] != n:
        raise DataError(f"mask:region: regions {tuple(regions.shape)} and region_labels "
                        f"{tuple(region_labels.shape)} do not fit images {tuple(x.shape)}")
    regions, region_labels = regions.to(x.device), region_labels.to(x.device)
    count = region_labels.shape[1]
    # Mark which instance ids occur in each image (slot 0 collects -1 = no instance).
    present = torch.zeros(n, count + 1, device=x.device)
    present = present.scatter_(1, (regions.flatten(1) + 1).clamp(0, count), 1.0)[:, 1:]
    if bool((regions.max() >= count) | ~present.any(1).all()):   # one host sync
        raise DataError(f"mask:region: every image needs an instance, with ids below {count}")
    # Pick the k-th present id, k uniform below the number present.
    k = (_uniform(x, (n,), generator) * present.sum(1)).long()
    chosen = (present.cumsum(1) <= k[:, None]).sum(1)
    labels = region_labels.gather(1, chosen[:, None]).squeeze(1)
    return (regions == chosen.view(n, 1, 1))[:, None], labels


# --------------------------------------------------------------------------- image ops

def _downscale(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Antialiased bicubic resize by 1/factor (BasicSR's Matlab-like imresize), clamped."""
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise ConfigError(f"downscale:{factor} needs a size divisible by {factor}, got {h}x{w}")
    work = x.to(torch.promote_types(x.dtype, torch.float32))
    out = F.interpolate(work, scale_factor=1 / factor, mode="bicubic", antialias=True,
                        align_corners=False)
    return out.clamp(-1, 1).to(x.dtype)


def _noise(x: torch.Tensor, generator: Generator, sigma: float) -> torch.Tensor:
    """Additive Gaussian noise, sigma in 0-255 units."""
    device = x.device if generator is None else generator.device
    noise = torch.randn(x.shape, generator=generator, device=device).to(x.device, x.dtype)
    return (x + noise * (sigma / 127.5)).clamp(-1, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of RGB as one channel; one channel stays as it is."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ConfigError(f"gray needs 1 or 3 channels, got {x.shape[1]}")
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    return (x * weights.view(1, 3, 1, 1)).sum(1, keepdim=True).clamp(-1, 1)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur, kernel 2*ceil(3*sigma)+1, reflect padding."""
    c, h, w = x.shape[1:]
    radius = math.ceil(3 * sigma)
    if radius >= min(h, w):
        raise ConfigError(f"blur:{sigma:g} needs images larger than {radius} px, got {h}x{w}")
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    out = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return out.clamp(-1, 1)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode each image to JPEG with Pillow at `quality` and decode it (on the CPU)."""
    pixels = to_uint8(x.detach()).cpu().permute(0, 2, 3, 1).numpy()
    decoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            buffer, format="JPEG", quality=quality)
        decoded.append(np.asarray(Image.open(buffer)).reshape(image.shape))
    out = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2)
    return to_float(out).to(x.device, x.dtype)


def _lowlight(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """Darken as synthetic low-light sets do: y = x ** gamma on the [0, 1] scale."""
    return (((x + 1) / 2).clamp(0, 1) ** gamma * 2 - 1).clamp(-1, 1)


def _edges(x: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """A line drawing (pix2pix's edges2photos inputs): black where the Sobel gradient of the
    luma, on the [0, 1] scale, exceeds `threshold`; white elsewhere. One channel."""
    luma = (_gray(x) + 1) / 2
    kernel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
                          device=x.device, dtype=x.dtype) / 4
    padded = F.pad(luma, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kernel.view(1, 1, 3, 3))
    gy = F.conv2d(padded, kernel.t().reshape(1, 1, 3, 3))
    edge = (gx ** 2 + gy ** 2).sqrt() > threshold
    return torch.where(edge, -torch.ones_like(luma), torch.ones_like(luma))


# --------------------------------------------------------------------------- factories

def _register_plain(name: str, fn: Callable, **flags) -> None:
    """Register `name` (no argument) as the op `Op(name, fn, **flags)`."""
    def factory(arg: str | None) -> Op:
        if arg is not None:
            raise ConfigError(f"{name}:{arg}: {name} takes no argument")
        return Op(name, fn, **flags)
    DEGRADATIONS.register(name)(factory)


_register_plain("mask:box", lambda x, g, *_: (_box_mask(x, g), None), makes_mask=True)
_register_plain("mask:center", lambda x, g, *_: (_center_mask(x), None), makes_mask=True)
_register_plain("mask:region", _region_mask, makes_mask=True)
_register_plain("gray", lambda x, g: _gray(x), gray=True)
_register_plain("edges", lambda x, g: _edges(x), gray=True)


def _register_number(name: str, cast: type, ok: Callable[[float], bool], rule: str,
                     example: str, build: Callable[[float], Op]) -> None:
    """Register `name:VALUE`: VALUE is parsed as `cast`, checked by `ok`, passed to `build`."""
    def factory(arg: str | None) -> Op:
        hint = f"{rule} (e.g. {name}:{example})"
        if not arg:
            raise ConfigError(f"{name} needs an argument, {hint}")
        try:
            value = cast(arg)
            valid = math.isfinite(value) and ok(value)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ConfigError(f"{name}:{arg}: the argument must be {hint}")
        return build(value)
    DEGRADATIONS.register(name)(factory)


@DEGRADATIONS.register("mask:free-form")
def _free_form_op(arg: str | None) -> Op:
    """mask:free-form (strokes sized by the image) or mask:free-form:SCALE (sized as on a
    SCALE-pixel image, so whole photos get the holes of the training crops)."""
    if arg is not None and (not arg.isdigit() or int(arg) < 8):
        raise ConfigError(f"mask:free-form:{arg}: the argument must be a size in pixels >= 8 "
                          "(e.g. mask:free-form:64, the training crop's size)")
    scale = None if arg is None else int(arg)
    spec = "mask:free-form" if scale is None else f"mask:free-form:{scale}"
    return Op(spec, lambda x, g, *_: (_free_form_mask(x, g, scale=scale), None), makes_mask=True)


_register_number("downscale", int, lambda v: v >= 2, "an integer >= 2", "4",
                 lambda n: Op(f"downscale:{n}", lambda x, g: _downscale(x, n), factor=n))
_register_number("noise", float, lambda v: v >= 0, "a number >= 0 (0-255 units)", "25",
                 lambda s: Op(f"noise:{s:g}", lambda x, g: _noise(x, g, s)))
_register_number("blur", float, lambda v: v > 0, "a sigma in pixels > 0", "2",
                 lambda s: Op(f"blur:{s:g}", lambda x, g: _blur(x, s)))
_register_number("jpeg", int, lambda v: 1 <= v <= 100, "an integer in 1..100", "40",
                 lambda q: Op(f"jpeg:{q}", lambda x, g: _jpeg(x, q)))
_register_number("lowlight", float, lambda v: v > 0, "a gamma > 0 (typically 2..4)", "3",
                 lambda y: Op(f"lowlight:{y:g}", lambda x, g: _lowlight(x, y)))


# --------------------------------------------------------------------------- chains

class Degradation:
    """A parsed chain of ops; call it on a clean batch to get a `Degraded`."""

    def __init__(self, ops: list[Op]):
        self.ops = tuple(ops)
        self.spec = "+".join(op.spec for op in self.ops)
        self.scale = math.prod(op.factor for op in self.ops)
        self.makes_mask = any(op.makes_mask for op in self.ops)

    def in_channels(self, channels: int) -> int:
        """Channels of `source` for images with `channels` channels."""
        return 1 if any(op.gray for op in self.ops) else channels

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None,
                 regions: torch.Tensor | None = None,
                 region_labels: torch.Tensor | None = None) -> Degraded:
        """Apply the ops left to right; an empty chain returns `images` itself as source.

        Args:
            images: float N x C x H x W in [-1, 1]; never modified.
            generator: source of all randomness; None = global RNG.
            regions: long N x H x W instance id per pixel (-1 = none), for mask:region.
            region_labels: long N x R class of each instance id, for mask:region.

        Example:
            >>> out = parse_degradation("mask:center+noise:10")(torch.zeros(2, 3, 16, 16))
            >>> out.source.shape, out.mask.shape
            (torch.Size([2, 3, 16, 16]), torch.Size([2, 1, 16, 16]))
        """
        source, mask, labels = images, None, None
        for op in self.ops:
            if op.makes_mask:
                hole, labels = op.fn(source, generator, regions, region_labels)
                source = source.masked_fill(hole, 0.0)
                mask = hole.to(images.dtype)
            else:
                source = op.fn(source, generator)
        return Degraded(source, mask, labels)

    def __repr__(self) -> str:
        return f"Degradation({self.spec!r})"


def parse_degradation(spec: str) -> Degradation:
    """Build the chain named by `spec`: ops joined by "+", "name" or "name:argument".

    Raises:
        ConfigError: for an unknown name or bad argument, more than one mask op, or a mask op
            after a downscale; the message names the spec and the offending part.

    Example:
        >>> parse_degradation("downscale:4").scale
        4
        >>> parse_degradation(" noise:25.0 + jpeg:40 ").spec
        'noise:25+jpeg:40'
    """
    ops: list[Op] = []
    parts = [part.strip() for part in spec.split("+")] if spec.strip() else []
    try:
        for part in parts:
            if not part:
                raise ConfigError("an empty op (two '+' in a row, or one at an end)")
            name, arg = part, None
            if part not in DEGRADATIONS and ":" in part:
                name, arg = (text.strip() for text in part.rsplit(":", 1))
            if name not in DEGRADATIONS:   # raises, naming the closer of the two
                DEGRADATIONS.get(part if suggest(part, DEGRADATIONS.names()) else name)
            op = DEGRADATIONS.get(name)(arg)
            if op.makes_mask and any(o.makes_mask for o in ops):
                raise ConfigError(f"{op.spec}: only one mask op per chain")
            if op.makes_mask and any(o.factor > 1 for o in ops):
                raise ConfigError(f"{op.spec} after downscale: masks are drawn at full size, "
                                  "so mask ops must come first")
            ops.append(op)
    except ConfigError as error:
        raise ConfigError(f"degradation {spec!r}: {error}") from None
    return Degradation(ops)
