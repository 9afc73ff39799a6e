"""`folder:PATH`: any directory of images; class sub-folders become labels.

Every Pillow mode is read (L, RGB, RGBA, P, CMYK, I;16, ...): transparency is laid over
white, 16-bit gray is scaled to 8 bits. Unreadable or truncated files are skipped and
reported by name with a count, so one bad file never stops a long run.
"""
from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError
from .imageset import ImageSet
from .sources import SOURCES

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}
MAX_LISTED = 10  # bad files named one by one before the report just counts


def list_images(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Image files under `root` with their class index; classes are the sub-folders, sorted."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = [c for c in classes if any(_is_image(f) for f in _walk(root / c))]
    if classes:
        files, labels = [], []
        for index, name in enumerate(classes):
            found = sorted(f for f in _walk(root / name) if _is_image(f))
            files += found
            labels += [index] * len(found)
        return files, labels, classes
    files = sorted(f for f in root.iterdir() if _is_image(f))
    return files, [], []


def _walk(folder: Path):
    for dirpath, _, names in os.walk(folder):
        for name in names:
            yield Path(dirpath) / name


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS and not path.name.startswith(".") and path.is_file()


def read_image(path: Path, resolution: int, channels: int) -> np.ndarray:
    """Decode one file to uint8 H x W x C at `resolution` (centre crop, then resize)."""
    with Image.open(path) as image:
        image.load()
        image = _to_8bit(image)
        image = image.convert("L" if channels == 1 else "RGB")
    image = ImageOps.fit(image, (resolution, resolution), method=Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _to_8bit(image: Image.Image) -> Image.Image:
    """Bring high-bit-depth and transparent images to an 8-bit mode Pillow converts exactly."""
    if image.mode.startswith("I") or image.mode == "F":
        array = np.asarray(image).astype(np.float64)
        if image.mode == "F" and array.max(initial=0) <= 1.0:
            array = array * 255.0
        elif image.mode.startswith("I;16") or array.max(initial=0) > 255:
            array = array / 257.0
        return Image.fromarray(np.clip(array.round(), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image


@SOURCES.register("folder")
def load_folder(arg, config, split: str) -> ImageSet:
    root = Path(arg)
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist or is not a directory")
    if split != "train":
        raise DataError(f"image folder {str(root)!r} has no {split!r} split; point to another folder")
    files, labels, classes = list_images(root)
    if not files:
        raise DataError(f"image folder {str(root)!r} holds no images "
                        f"(looked for {', '.join(sorted(EXTENSIONS))}, also in class sub-folders)")

    def read(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. Pillow's palette-transparency notes
                return read_image(path, config.resolution, config.channels), None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            return None, f"{path.relative_to(root)} ({error})"

    # Decode in threads: Pillow releases the GIL while it decodes.
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        results = list(pool.map(read, files))
    kept = [i for i, (array, _) in enumerate(results) if array is not None]
    bad = [why for _, why in results if why is not None]
    if bad:
        shown = "; ".join(bad[:MAX_LISTED]) + (f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else "")
        print(f"warning: skipped {len(bad)} unreadable image file(s) in {root}: {shown}", file=sys.stderr)
    if not kept:
        raise DataError(f"image folder {str(root)!r}: none of its {len(files)} image files could be read")
    images = torch.from_numpy(np.stack([results[i][0] for i in kept])).permute(0, 3, 1, 2).contiguous()
    label_tensor = torch.tensor([labels[i] for i in kept], dtype=torch.long) if classes else None
    return ImageSet(images, label_tensor, classes, f"folder:{root}")
