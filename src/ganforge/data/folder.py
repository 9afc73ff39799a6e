"""`folder:PATH`: any directory of images; class sub-folders become labels.

Every Pillow mode is read (L, RGB, RGBA, P, CMYK, I;16, ...): transparency is laid over
white, 16-bit gray is scaled to 8 bits. Unreadable or truncated files are skipped and
reported by name with a count, so one bad file never stops a long run.

Sub-folders named by numbers of one width, two digits or more (FFHQ's 00000/, 01000/, ...),
are shards of one set, not classes: such a set is read as unlabelled. The decoded set is kept in
the data cache (`ganforge.data.cache`) as a memory-mapped array, so later runs skip decoding
and a set larger than RAM is paged in as batches read it.
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError
from .cache import cached_array, digest
from .imageset import ImageSet
from .sources import SOURCES

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}
MAX_LISTED = 10  # bad files named one by one before the report just counts
DECODER = 1  # bump when read_image's output changes: cached sets are then decoded again


def list_images(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Image files under `root` with their class index; classes are the sub-folders, sorted.

    Numbered shard folders (see `numbered_shards`) give every file under them, unlabelled.
    """
    classes = image_folders(root)
    if numbered_shards(classes):
        files = sorted(f for name in classes for f in _walk(root / name) if _is_image(f))
        return files, [], []
    if classes:
        files, labels = [], []
        for index, name in enumerate(classes):
            found = sorted(f for f in _walk(root / name) if _is_image(f))
            files += found
            labels += [index] * len(found)
        return files, labels, classes
    files = sorted(f for f in root.iterdir() if _is_image(f))
    return files, [], []


def image_folders(root: Path) -> list[str]:
    """The sub-folders of `root` that hold images (at any depth), sorted."""
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [name for name in names if any(_is_image(f) for f in _walk(root / name))]


def numbered_shards(names: list[str]) -> bool:
    """Whether sub-folder names are shard numbers rather than classes: all numbers written
    with one width of at least two digits, as FFHQ's 00000/, 01000/, ... 69000/. Single
    digits (0/ ... 9/, a common layout of digit classes) stay classes.

    Example:
        >>> numbered_shards(["00000", "01000"]), numbered_shards(["0", "1"]), numbered_shards(["cat", "dog"])
        (True, False, False)
    """
    return bool(names) and all(re.fullmatch(r"[0-9]{2,}", name) and len(name) == len(names[0])
                               for name in names)


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


def require_folder(root: Path, what: str) -> Path:
    """`root` when it is a directory, else one DataError line naming it (`what`: "image folder")."""
    if not root.is_dir():
        raise DataError(f"{what} {str(root)!r} does not exist or is not a directory")
    return root


def is_cyclegan_layout(root: Path) -> bool:
    """The CycleGAN repository's layout: trainA/ and trainB/ (and testA/, testB/) side by side."""
    return (root / "trainA").is_dir() and (root / "trainB").is_dir()


def _domain_folder(root: Path, split: str, side: str) -> Path:
    folder = root / f"{split}{side}"
    if not folder.is_dir():
        raise DataError(f"image folder {str(root)!r} (trainA/ trainB/ layout) has no {folder.name}/; "
                        f"the {split} split needs {split}A/ and {split}B/")
    return folder


@SOURCES.register("folder")
def load_folder(arg, config, split: str):
    root = Path(arg)
    require_folder(root, "image folder")
    if is_cyclegan_layout(root):
        from .domains import DomainPair
        return DomainPair(*(load_folder(str(_domain_folder(root, split, side)), config, "train")
                            for side in "AB"), f"folder:{root}")
    if split != "train":
        raise DataError(f"image folder {str(root)!r} has no {split!r} split; point to another folder")
    files, labels, classes = list_images(root)
    if not files:
        raise DataError(f"image folder {str(root)!r} holds no images "
                        f"(looked for {', '.join(sorted(EXTENSIONS))}, also in class sub-folders)")
    if not classes:
        shards = image_folders(root)
        if numbered_shards(shards):
            print(f"note: {root}: its {len(shards)} numbered sub-folders ({shards[0]}/, ...) are read "
                  f"as shards of one unlabelled set, not as classes", file=sys.stderr)
    array, meta = decoded(root, files, config.resolution, config.channels)
    skipped = set(meta["skipped"])
    if skipped:
        why = meta["why"]
        shown = "; ".join(why[:MAX_LISTED]) + (f"; and {len(why) - MAX_LISTED} more" if len(why) > MAX_LISTED else "")
        print(f"warning: skipped {len(why)} unreadable image file(s) in {root}: {shown}", file=sys.stderr)
    # A view of the memory map: indexing a batch copies just that batch.
    images = torch.from_numpy(array[:meta["count"]])
    label_tensor = None
    if classes:
        label_tensor = torch.tensor([label for i, label in enumerate(labels) if i not in skipped],
                                    dtype=torch.long)
    return ImageSet(images, label_tensor, classes, f"folder:{root}")


def decoded(root: Path, files: list[Path], resolution: int, channels: int) -> tuple[np.ndarray, dict]:
    """The files decoded into a cached uint8 N x C x H x W memory map, and what was skipped.

    The cache entry is named by the folder, resolution and channel count, and is valid while
    every file keeps its name, size and modification time. Images are decoded straight into
    the map (no stacked second copy); unreadable files are dropped by moving the later
    images down, so the first `meta["count"]` rows are the readable files in order.

    Returns:
        (array, meta): meta holds `count`, `skipped` (indices into `files`) and `why`
        (one "name (error)" line per skipped file).
    """
    root_id = str(root.resolve())
    listing = []
    for path in files:
        stat = path.stat()
        listing.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    key = digest([DECODER, root_id, listing, resolution, channels])
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", root.resolve().name)[:40] or "folder"
    slot = f"{name}-{resolution}px-{channels}ch-{digest([root_id, resolution, channels])}"

    def fill(array: np.ndarray) -> dict:
        def read(index: int):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # e.g. Pillow's palette-transparency notes
                    array[index] = read_image(files[index], resolution, channels).transpose(2, 0, 1)
                return None
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
                return f"{files[index].relative_to(root)} ({error})"

        # Decode in threads, each into its own row: Pillow releases the GIL while it decodes.
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
            results = list(pool.map(read, range(len(files))))
        skipped = [i for i, why in enumerate(results) if why is not None]
        if len(skipped) == len(files):
            raise DataError(f"image folder {str(root)!r}: none of its {len(files)} image files could be read")
        # Close the gaps of unreadable files, row by row.
        kept = [i for i, why in enumerate(results) if why is None]
        for row, index in enumerate(kept):
            if row != index:
                array[row] = array[index]
        return {"count": len(kept), "skipped": skipped, "why": [results[i] for i in skipped]}

    return cached_array("folders", slot, key, (len(files), channels, resolution, resolution), fill)
