"""Running fully convolutional image-to-image networks on images of any size.

A network trained on crops accepts any size that is a multiple of its stride (the product of
its downsampling factors). `run_padded` pads an image up to that multiple and crops the result
back; `run_tiled` does the same tile by tile (Real-ESRGAN's `--tile`), so an image whose
activations do not fit in memory can still be processed. Tiles see `overlap` extra pixels of
context on every side and only their centres are kept, so with an overlap at least the
network's receptive-field radius the tiled result equals the whole-image one.
"""
from __future__ import annotations

import numbers
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError

Net = Callable[[torch.Tensor], torch.Tensor]


def run_padded(fn: Net, x: torch.Tensor, stride: int = 1, scale: int = 1) -> torch.Tensor:
    """Apply `fn` to `x` padded to a multiple of `stride`, and crop the result back.

    Padding goes on the bottom and right edges: reflect padding where the image is larger than
    the pad, replicate padding where it is not (reflection needs pad < size).

    Args:
        fn: maps float N x C x h x w to N x C' x (h * scale) x (w * scale), for h and w
            multiples of `stride`.
        x: float N x C x H x W.
        stride: the network's total downsampling factor.
        scale: the network's upscaling factor (2 for a x2 super-resolution network).

    Returns:
        N x C' x (H * scale) x (W * scale).

    Example:
        >>> y = run_padded(unet, image, stride=16)  # any H, W
    """
    _check_positive(stride=stride, scale=scale)
    if x.dim() != 4:
        raise ValueError(f"expected an N x C x H x W tensor, got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % stride, -width % stride
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    y = fn(x)
    expected = (x.shape[-2] * scale, x.shape[-1] * scale)
    if tuple(y.shape[-2:]) != expected:
        raise ConfigError(f"the network turned a {x.shape[-2]}x{x.shape[-1]} input into "
                          f"{y.shape[-2]}x{y.shape[-1]}, not {expected[0]}x{expected[1]}: "
                          f"check its stride ({stride}) and scale ({scale})")
    return y[..., :height * scale, :width * scale]


def run_tiled(fn: Net, x: torch.Tensor, tile: int, overlap: int, stride: int = 1, scale: int = 1,
              out_device: torch.device | str = "cpu",
              progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Apply `fn` to `x` in overlapping tiles, keeping only the centre of each.

    Tiles are laid on a grid of step `tile`; each is run (through `run_padded`) with `overlap`
    extra pixels of context on every side, clipped at the image border, and only its own
    `tile` x `tile` part of the output is kept. Every output pixel therefore comes from the
    tile in which it lies farthest from a cut edge. With `overlap` at least the receptive-field
    radius of a network with no global operations (no global pooling, attention or
    image-wide normalisation) the result equals `run_padded(fn, x, stride, scale)` up to
    floating point for stride-1 networks; for strided networks an `overlap` that is a multiple
    of `stride` keeps every tile on the whole image's downsampling grid.

    Tiles are passed to `fn` on `x`'s device: keep `x` on the CPU and let `fn` move each tile
    to the accelerator so that only one tile's activations live there. Peak memory is one
    tile's activations plus the input and the output.

    Args:
        fn: the network, as for `run_padded`.
        x: float N x C x H x W.
        tile: tile side in input pixels; a multiple of `stride`.
        overlap: context pixels added on each side of a tile; 0 gives visible seams.
        stride: the network's total downsampling factor.
        scale: the network's upscaling factor.
        out_device: where the N x C' x (H * scale) x (W * scale) output is allocated.
        progress: called as `progress(done, total)` after each tile.

    Example:
        >>> y = run_tiled(lambda t: net(t.cuda()).cpu(), image, tile=256, overlap=16)
    """
    if not isinstance(tile, numbers.Integral) or tile < 1:
        raise ConfigError(f"--tile={tile}: must be a whole number of pixels, at least 1")
    if not isinstance(overlap, numbers.Integral) or overlap < 0:
        raise ConfigError(f"--overlap={overlap}: must be a whole number of pixels, at least 0")
    _check_positive(stride=stride, scale=scale)
    if tile % stride:
        raise ConfigError(f"--tile={tile}: must be a multiple of the network's stride {stride} "
                          f"(e.g. {max(stride, tile // stride * stride)})")
    if x.dim() != 4:
        raise ValueError(f"expected an N x C x H x W tensor, got shape {tuple(x.shape)}")

    height, width = x.shape[-2:]
    rows, cols = range(0, height, tile), range(0, width, tile)
    total = len(rows) * len(cols)
    out = None
    done = 0
    for top in rows:
        for left in cols:
            # Cut the tile with its context, clipped at the border.
            bottom, right = min(top + tile, height), min(left + tile, width)
            y0, x0 = max(top - overlap, 0), max(left - overlap, 0)
            y1, x1 = min(bottom + overlap, height), min(right + overlap, width)
            result = run_padded(fn, x[..., y0:y1, x0:x1], stride, scale)

            # Keep the centre and write it in place.
            if out is None:
                out = torch.empty(x.shape[0], result.shape[1], height * scale, width * scale,
                                  dtype=result.dtype, device=out_device)
            keep = result[..., (top - y0) * scale:(bottom - y0) * scale,
                          (left - x0) * scale:(right - x0) * scale]
            out[..., top * scale:bottom * scale, left * scale:right * scale] = keep.to(out_device)
            del result, keep
            done += 1
            if progress is not None:
                progress(done, total)
    if out is None:  # An empty image: nothing to run, and no channel count to learn.
        raise ValueError(f"cannot tile an empty image of shape {tuple(x.shape)}")
    return out


def choose_overlap(receptive_field: int, cap: int = 64) -> int:
    """A tile overlap that hides seams: the receptive-field radius (half its size), at most `cap`.

    Args:
        receptive_field: the network's receptive field in input pixels (e.g. 7 for three
            3x3 convolutions).
        cap: the largest overlap worth its cost; networks with very large receptive fields
            are in practice dominated by their central pixels.

    Example:
        >>> choose_overlap(7)
        3
    """
    if receptive_field < 1:
        raise ConfigError(f"receptive_field={receptive_field}: must be at least 1")
    if cap < 0:
        raise ConfigError(f"cap={cap}: must be at least 0")
    return min(receptive_field // 2, cap)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ConfigError(f"{name}={value}: must be a whole number, at least 1")
