"""`patches:FOLDER`: a few large images kept whole, served as random square crops.

Super-resolution and denoising models train on crops of a few big photos (BasicSR's
`paired_random_crop`, SinGAN's single image) and are evaluated fully convolutionally on the
whole images. Resizing such photos to one small square, as `folder:` does, would throw away
the very detail they are trained to restore, so a PatchSet keeps every image at its own size
and `sample` cuts the crops. The crop size is `data.resolution`.

Split: when FOLDER has both a `train/` and a `test/` sub-folder they are the splits;
otherwise every image under FOLDER is "train" and there is no "test".
"""
from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .folder import EXTENSIONS, MAX_LISTED, _to_8bit, require_folder
from .sources import SOURCES


@dataclass
class PatchSet:
    """Whole uint8 images (each C x H x W, sizes free) and their names, for random crops.

    Mirrors ImageSet where that makes sense (`channels`, `source`, `len`, `nbytes`, `to`),
    and has no labels. `resolution` is the crop size `load_dataset` was asked for.

    Example:
        >>> data = PatchSet([torch.zeros(3, 40, 60, dtype=torch.uint8)], ["a.png"], resolution=16)
        >>> data.sample(8, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([8, 3, 16, 16])
    """

    images: list[torch.Tensor]
    names: list[str]
    source: str = ""
    resolution: int = 0

    labels = None
    num_classes = 0

    def __post_init__(self):
        self.images, self.names = list(self.images), list(self.names)
        if len(self.names) != len(self.images):
            raise ValueError(f"{len(self.names)} names for {len(self.images)} images")
        for image, name in zip(self.images, self.names):
            if image.dtype != torch.uint8 or image.dim() != 3:
                raise ValueError(f"image {name!r} must be uint8 C x H x W, got {image.dtype} "
                                 f"{tuple(image.shape)}")
            if image.shape[0] != self.images[0].shape[0]:
                raise ValueError(f"image {name!r} has {image.shape[0]} channels, "
                                 f"{self.names[0]!r} has {self.images[0].shape[0]}")

    @property
    def class_names(self) -> list[str]:
        return []

    @property
    def channels(self) -> int:
        return self.images[0].shape[0] if self.images else 0

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(height, width) of each image."""
        return [(image.shape[1], image.shape[2]) for image in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def nbytes(self) -> int:
        return sum(image.numel() for image in self.images)

    def to(self, device: torch.device | str) -> "PatchSet":
        return PatchSet([image.to(device) for image in self.images], self.names, self.source,
                        self.resolution)

    def subset(self, index: Sequence[int] | torch.Tensor) -> "PatchSet":
        """The images at `index` (whole images, not crops)."""
        index = index.tolist() if isinstance(index, torch.Tensor) else list(index)
        return PatchSet([self.images[i] for i in index], [self.names[i] for i in index],
                        self.source, self.resolution)

    def full_images(self) -> list[torch.Tensor]:
        """Every image whole, for evaluation on full-size images."""
        return list(self.images)

    def sample(self, n: int, size: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` random `size` x `size` crops as uint8 N x C x size x size, on the images' device.

        Each crop comes from an image drawn with probability proportional to its area (so
        every pixel is equally likely to be seen), at a uniform position inside it. Images
        smaller than `size` on either side are never drawn. All random numbers come from
        `generator` (a CPU generator; None uses torch's global one), wherever the images are.

        Args:
            n: how many crops.
            size: their side; default `resolution`, the crop size the set was loaded for.
            generator: the torch.Generator (CPU) that makes the draw repeatable.
        """
        size = size or self.resolution
        if size < 1:
            raise ValueError(f"crop size must be at least 1, got {size}")
        heights = torch.tensor([h for h, _ in self.sizes], dtype=torch.float64)
        widths = torch.tensor([w for _, w in self.sizes], dtype=torch.float64)
        fits = (heights >= size) & (widths >= size)
        if not bool(fits.any()):
            raise DataError(f"data set {self.source!r}: no image is at least {size}x{size} "
                            f"(the crop size)")
        if n == 0:
            return torch.empty(0, self.channels, size, size, dtype=torch.uint8,
                               device=self.images[0].device)
        # Draw the images by area, then a uniform top-left corner in each (on the CPU).
        weights = heights * widths * fits
        chosen = torch.multinomial(weights, n, replacement=True, generator=generator)
        corner = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        tops = (corner[:, 0] * (heights[chosen] - size + 1)).floor().long()
        lefts = (corner[:, 1] * (widths[chosen] - size + 1)).floor().long()
        crops = [self.images[i][:, top:top + size, left:left + size]
                 for i, top, left in zip(chosen.tolist(), tops.tolist(), lefts.tolist())]
        return torch.stack(crops)


def image_files(root: Path) -> list[Path]:
    """Every image file under `root` (any depth), sorted, hidden files and folders left out."""
    found = []
    for dirpath, dirnames, names in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / name for name in names
                  if Path(name).suffix.lower() in EXTENSIONS and not name.startswith(".")]
    return sorted(found)


def open_image(path: Path, channels: int) -> Image.Image:
    """Decode any Pillow mode (16-bit, transparent, palette, CMYK, ...) to 8-bit L or RGB
    at full size, as `folder:` does before it resizes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. Pillow's palette-transparency notes
        with Image.open(path) as image:
            image.load()
            image = _to_8bit(image)
            return image.convert("L" if channels == 1 else "RGB")


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An 8-bit L or RGB Pillow image as uint8 C x H x W."""
    array = np.asarray(image, dtype=np.uint8)
    array = array[..., None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def read_files(files: list[Path], read: Callable[[Path], object], root: Path) -> list:
    """`read(path)` for every file, in threads; a file that cannot be decoded gives None and
    is reported (by name, with a count) on stderr, so one bad file never stops a long run."""
    def attempt(path):
        try:
            return read(path), None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            return None, f"{path.relative_to(root)} ({error})"

    # Pillow releases the GIL while it decodes.
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        results = list(pool.map(attempt, files))
    bad = [why for _, why in results if why is not None]
    if bad:
        print(f"warning: skipped {len(bad)} unreadable image file(s) in {root}: {_listing(bad)}",
              file=sys.stderr)
    return [value for value, _ in results]


def keep_croppable(images: list[torch.Tensor], names: list[str], size: int,
                   where: str) -> tuple[list[torch.Tensor], list[str]]:
    """The images at least `size` x `size`; the others are named in a warning on stderr.

    Raises:
        DataError: when no image is large enough.
    """
    keep = [i for i, image in enumerate(images) if min(image.shape[-2:]) >= size]
    small = [f"{name} ({image.shape[-1]}x{image.shape[-2]})"
             for image, name in zip(images, names) if min(image.shape[-2:]) < size]
    if not keep:
        raise DataError(f"{where}: every image is smaller than the crop size {size}x{size} "
                        f"(data.resolution={size}): {_listing(small)}")
    if small:
        print(f"warning: {where}: skipped {len(small)} image(s) smaller than the crop size "
              f"{size}x{size}: {_listing(small)}", file=sys.stderr)
    return [images[i] for i in keep], [names[i] for i in keep]


def _listing(items: list[str]) -> str:
    extra = len(items) - MAX_LISTED
    return "; ".join(items[:MAX_LISTED]) + (f"; and {extra} more" if extra > 0 else "")


def _split_folder(root: Path, split: str) -> Path:
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root / split
    if split != "train":
        raise DataError(f"patch folder {str(root)!r} has no test split (it needs both train/ "
                        f"and test/ sub-folders); point data.name to another folder to evaluate")
    return root


@SOURCES.register("patches")  # patches:FOLDER, or patches:FILE for a single image
def load_patches(arg, config, split: str) -> PatchSet:
    root = Path(arg)
    if root.is_file():  # one image (a texture exemplar): its crops are the whole data set
        if split != "train":
            raise DataError(f"patch source {str(root)!r} is one image: it has no test split")
        folder, files = root.parent, [root]
    else:
        require_folder(root, "patch folder")
        folder = _split_folder(root, split)
        files = image_files(folder)
    if not files:
        raise DataError(f"patch folder {str(folder)!r} holds no images "
                        f"(looked for {', '.join(sorted(EXTENSIONS))}, at any depth)")
    decoded = read_files(files, lambda path: to_tensor(open_image(path, config.channels)), folder)
    kept = [i for i, image in enumerate(decoded) if image is not None]
    if not kept:
        raise DataError(f"patch folder {str(folder)!r}: none of its {len(files)} image files "
                        f"could be read")
    names = [files[i].relative_to(folder).as_posix() for i in kept]
    images, names = keep_croppable([decoded[i] for i in kept], names, config.resolution,
                                   f"patch folder {str(folder)!r}")
    return PatchSet(images, names, f"patches:{root}", config.resolution)
