"""The studio's work: what one request computes, as plain functions that return PNG bytes.

They run on the work queue's threads. Uploads are written to a private temporary folder and
read back with the same readers `ganforge edit` uses (any Pillow mode, EXIF rotation, alpha
kept apart and put back on the result; masks by ganforge.data.masks' one rule), so the studio
and the command line agree on every image.
"""
from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..data.imageset import match_channels
from ..data.masks import box_mask, load_mask
from ..errors import DataError, GanforgeError
from ..imageio import grid, to_hwc
from ..inference import read_image_file, write_image_file
from ..inference.latent import interpolate
from .runs import StudioRun


class TooLarge(GanforgeError):
    """A request or an image is over one of the server's limits (the message names it)."""


@dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes:
        max_upload_bytes: the whole request body (image + mask + fields).
        max_side: the longer side of an uploaded image, a mask and an edit's result, in pixels.
        max_n: images in one sampled grid.
        max_steps: images along one interpolation.
        tile: images with a longer side run in overlapping tiles of this many pixels (bounded
            memory, as `ganforge edit --tile`).
    """

    max_upload_bytes: int = 8 * 2**20
    max_side: int = 2048
    max_n: int = 64
    max_steps: int = 32
    tile: int = 512

    def public(self) -> dict:
        return {"max_upload_mb": self.max_upload_bytes / 2**20, "max_side": self.max_side,
                "max_n": self.max_n, "max_steps": self.max_steps, "tile": self.tile}


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 H x W x C (C 1 or 3) -> PNG file bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


def image_size(data: bytes, what: str, limits: Limits) -> tuple[int, int]:
    """(width, height) from an upload's header, without decoding its pixels; 422-type errors
    for bytes that are not an image and TooLarge for a side over `limits.max_side`."""
    if not data:
        raise DataError(f"the {what} is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise DataError(f"the {what} is not an image file Pillow can read") from None
    if max(width, height) > limits.max_side:
        raise TooLarge(f"the {what} is {width}x{height}; this studio takes sides up to "
                       f"{limits.max_side} px (ganforge serve --max-side)")
    return width, height


def warm_up() -> None:
    """Make one tiny grid, so that torchvision (seconds to import on a busy machine) is loaded
    before the server says it is ready rather than during the first request."""
    grid(np.zeros((1, 2, 2, 1), np.uint8))


def sample_grid(run: StudioRun, n: int, seed: int, cls: int | None, truncation: float | None,
                nrow: int | None, keep_best: float | None = None) -> bytes:
    """`n` samples of a generation run as one grid PNG (the same seed gives the same grid);
    `keep_best`: the best share of candidates by the run's discriminator."""
    labels = None if cls is None else [cls] * n
    images = run.model.sample(n, seed=seed, labels=labels, truncation=truncation, keep_best=keep_best)
    return png_bytes(grid(images, nrow=nrow))


def interpolation_strip(run: StudioRun, seed_from: int, seed_to: int, steps: int,
                        cls: int | None, cls_to: int | None) -> bytes:
    """The images between two seeds (and classes) of a generation run, as one row PNG."""
    frames = to_hwc(interpolate(run.model.net, seed_from, seed_to, steps, cls, cls_to))
    return png_bytes(grid(frames, nrow=len(frames)))


def edit_upload(run: StudioRun, image: bytes, mask: bytes | None, box: tuple[int, int, int, int] | None,
                cls: int | None, direction: str | None, limits: Limits) -> bytes:
    """Edit (or translate) one uploaded image file; the result as PNG bytes, with the
    upload's alpha put back.

    Args:
        run: an editing or translation run.
        image: the uploaded file's bytes (checked by `image_size` first).
        mask: a mask file's bytes (inpaint, replace): white on black, or transparent = hole.
        box: x, y, width, height of a rectangular hole instead of a mask.
        cls: the class to draw (replace).
        direction: a2b or b2a (translation runs).
        limits: the tile size for large images.
    """
    model = run.model
    with tempfile.TemporaryDirectory(prefix="ganforge-studio-") as folder:
        # Decode the upload as `ganforge edit` decodes a file.
        source = Path(folder) / "upload"
        source.write_bytes(image)
        try:
            decoded = read_image_file(source)
        except DataError as error:
            raise DataError(str(error).replace(str(source), "the uploaded image")) from None
        tensor = torch.from_numpy(decoded.pixels).permute(2, 0, 1)[None].float() * 2 - 1
        height, width = tensor.shape[-2:]
        tile = limits.tile if max(height, width) > limits.tile else None

        # Run the network.
        if run.kind == "translate":
            result = model.translate_tensor(tensor, direction, tile)
        else:
            hole = None
            if mask is not None:
                mask_path = Path(folder) / "mask.png"
                mask_path.write_bytes(mask)
                hole = load_mask(mask_path, height, width)[None]
            elif box is not None:
                hole = box_mask(box, height, width)
            labels = None if cls is None else torch.tensor([cls])
            result = model.edit_tensor(match_channels(tensor, model.in_channels), hole, labels, tile)
            if tensor.shape[1] == 1 and model.in_channels == model.channels == 3:
                result = match_channels(result, 1)  # a gray photo through an RGB model stays gray

        # Encode the result as `ganforge edit` writes it.
        target = Path(folder) / "result.png"
        pixels = ((result[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
        write_image_file(target, pixels, decoded.alpha, decoded.bits)
        return target.read_bytes()


