"""Inpainting masks read from image files: which pixels of an image are to be filled.

Two conventions are in use and both are read, by one rule:

- An image with transparency (RGBA, LA, PA, or a palette or gray/RGB image with a
  transparent colour) whose alpha channel is not all opaque: the hole is where alpha < 128,
  i.e. where the region was erased in an image editor.
- Anything else: the hole is where the pixel is non-zero, i.e. where its gray value
  (ITU-R 601 luma, before rounding) is above 0: LaMa's white-on-black masks. Every channel
  counts, 16-bit and float masks are compared at their own depth, so no faint mark is lost.
  Masks saved as JPEG carry compression noise that also counts: save masks as PNG.

The mask must have the image's size (no silent resizing of a hole) and hold a hole.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, DataError

ALPHA_HOLE = 128  # alpha below this is a hole
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _alpha(image: Image.Image) -> np.ndarray | None:
    """The alpha channel (uint8) when the image has transparency, else None."""
    if image.mode in ALPHA_MODES:
        return np.asarray(image.getchannel("A"))
    if "transparency" in image.info and image.mode in ("P", "L", "RGB", "1"):
        return np.asarray(image.convert("RGBA").getchannel("A"))
    return None


def _marked(image: Image.Image) -> np.ndarray:
    """Where the (gray) pixel value is non-zero, at the image's own bit depth."""
    if image.mode.startswith("I") or image.mode == "F":
        return np.asarray(image) > 0
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    array = np.asarray(image)
    return array > 0 if array.ndim == 2 else (array > 0).any(axis=-1)


def load_mask(path: str | Path, height: int, width: int) -> torch.Tensor:
    """The hole of an inpainting mask file as float 1 x H x W, 1.0 = hole, 0.0 = keep.

    Args:
        path: an image file; see the module docstring for which pixels are the hole.
        height, width: the size of the image the mask belongs to; the mask must match it.

    Raises:
        DataError: the file is missing or unreadable, its size differs, or it has no hole.

    Example:
        >>> load_mask("mask.png", 256, 256).shape
        torch.Size([1, 256, 256])
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask file {str(path)!r} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            alpha = _alpha(image)
            size = image.size
            if alpha is not None and alpha.min() < 255:
                hole, rule = alpha < ALPHA_HOLE, f"no pixel has alpha below {ALPHA_HOLE}"
            else:
                hole, rule = _marked(image), "every pixel is 0"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"mask file {str(path)!r} cannot be read: {error}") from None
    if size != (width, height):
        raise DataError(f"mask {path.name} is {size[0]}x{size[1]}, the image is {width}x{height} "
                        f"(width x height); make the mask the image's size")
    if not hole.any():
        raise DataError(f"mask {path.name} has no hole ({rule}); holes are non-zero pixels, or "
                        f"transparent ones in an image with alpha")
    return torch.from_numpy(hole.astype(np.float32))[None]


def parse_box(text: str, what: str = "box") -> tuple[int, int, int, int]:
    """'x,y,w,h' -> four ints; `what` names the option in the error (--box, box)."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{what} {text!r}: expected four integers x,y,w,h, e.g. 8,8,16,16") from None
    return x, y, w, h


def box_mask(box: tuple[int, int, int, int], height: int, width: int, where: str = "the image",
             what: str = "box") -> torch.Tensor:
    """A 1 x 1 x H x W hole (1 inside the box) for a box x, y, w, h that must lie inside the
    `where` image of width x height."""
    x, y, w, h = box
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ConfigError(f"{what} {x},{y},{w},{h} does not fit in {where} ({width}x{height})")
    mask = torch.zeros(1, 1, height, width)
    mask[..., y:y + h, x:x + w] = 1
    return mask
