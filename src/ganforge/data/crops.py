"""`crops:DIR` and `crops:textures`: labelled square crops of texture photos, split by region.

Texture recognition sets (Brodatz, KTH-TIPS, scikit-image's LBP gallery example) are a few
large photos per class cut into patches. Random patches of one photo overlap, so a random
train/test split of them puts the same pixels on both sides and measures memory, not
recognition. Here each image is split in space instead: test crops come only from its right
quarter (at least one crop wide), train crops only from the columns left of it, so no test
pixel is ever seen in training. Crop positions come from a fixed seed and the image's name:
the same folder always gives the same set, and adding an image leaves the others' crops alone.

DIR holds one sub-folder per class (images of any size at any depth in each), or, with no
sub-folders, one image per class named by its file. `crops:textures` is three photos bundled
in scikit-image's wheel (brick, grass, gravel; 512x512 gray; no download); `crops:textures-8`
adds five more textured photos from the wheel (moon surface, cells under a microscope, a
deep-sky star field, stained tissue, coins on a plain ground), a set on which the three-class
set's ceiling (every method at 100%) no longer hides the differences between methods. Crops are cut at
`data.resolution` pixels, never resized; an image must be at least two crops wide and one
high. Each image gives `TRAIN_CROPS` train or `TEST_CROPS` test crops.
"""
from __future__ import annotations

import math
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .folder import EXTENSIONS, MAX_LISTED, image_folders, require_folder
from .imageset import ImageSet, convert_channels
from .patches import image_files, open_image, read_files, to_tensor
from .sources import SOURCES, SPLITS

TRAIN_CROPS = 200      # crops per image in the train split
TEST_CROPS = 50        # crops per image in the test split
HELD_OUT = 0.25        # share of each image's width (on the right) kept for the test split
SEED = 0
BUNDLED = "textures"
BUNDLED_PHOTOS = ("brick", "grass", "gravel")   # skimage.data names, also the class names
# The harder bundled set: name -> the skimage.data photos of each class (all in the wheel).
BUNDLED_SETS = {
    BUNDLED: BUNDLED_PHOTOS,
    "textures-8": BUNDLED_PHOTOS + ("moon", "cell", "hubble_deep_field", "immunohistochemistry", "coins"),
}


def held_out_start(width: int, size: int) -> int:
    """The first column of an image's held-out (test) region: its right quarter, at least
    one crop wide. The train region is every column left of it.

    Example:
        >>> held_out_start(512, 64), held_out_start(160, 64)
        (384, 96)
    """
    return width - max(math.ceil(width * HELD_OUT), size)


def crop_corners(height: int, width: int, size: int, split: str, count: int, name: str,
                 seed: int = SEED) -> np.ndarray:
    """`count` (top, left) corners of `size` crops inside the `split` region of one image.

    Drawn uniformly from a generator seeded by `seed`, the split and `name`, so each image's
    crops are reproducible and independent of the other images in the set.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if height < size or width < 2 * size:
        raise ValueError(f"a {width}x{height} image is too small for {size} px crops in two regions")
    start = held_out_start(width, size)
    low, high = (0, start - size) if split == "train" else (start, width - size)
    rng = np.random.default_rng([seed, SPLITS.index(split), zlib.crc32(name.encode())])
    tops = rng.integers(0, height - size + 1, count)
    lefts = rng.integers(low, high + 1, count)
    return np.stack([tops, lefts], axis=1)


def cut_crops(images: list[torch.Tensor], names: list[str], labels: list[int], size: int,
              split: str, count: int | None = None, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of every image (uint8 C x H x W each) and their labels, image by image.

    Returns:
        (uint8 N x C x size x size, long N) with N = count x len(images).
    """
    count = (TRAIN_CROPS if split == "train" else TEST_CROPS) if count is None else count
    crops, crop_labels = [], []
    for image, name, label in zip(images, names, labels):
        height, width = image.shape[-2:]
        for top, left in crop_corners(height, width, size, split, count, name, seed).tolist():
            crops.append(image[:, top:top + size, left:left + size])
        crop_labels += [label] * count
    return torch.stack(crops), torch.tensor(crop_labels, dtype=torch.long)


def check_sizes(images: list[torch.Tensor], names: list[str], size: int, where: str) -> None:
    """Every image must hold a train and a test crop side by side: one DataError naming the
    images that do not."""
    small = [f"{name} ({image.shape[-1]}x{image.shape[-2]})" for image, name in zip(images, names)
             if image.shape[-2] < size or image.shape[-1] < 2 * size]
    if small:
        extra = len(small) - MAX_LISTED
        listing = "; ".join(small[:MAX_LISTED]) + (f"; and {extra} more" if extra > 0 else "")
        raise DataError(f"{where}: image(s) smaller than {2 * size}x{size} (two crops wide, one "
                        f"high, at data.resolution={size}): {listing}")


def bundled_textures(channels: int, which: str = BUNDLED
                     ) -> tuple[list[torch.Tensor], list[str], list[int], list[str]]:
    """scikit-image's photos of the bundled set `which` (BUNDLED_SETS) as (images, names,
    labels, class names); colour photos become luma for gray sets, gray ones are repeated
    for RGB sets."""
    import skimage.data

    images = []
    for name in BUNDLED_SETS[which]:
        try:
            array = np.ascontiguousarray(getattr(skimage.data, name)(), dtype=np.uint8)
        except (OSError, ValueError, AttributeError) as error:
            raise DataError(f"data set 'crops:{which}': photo skimage.data.{name} cannot be "
                            f"loaded: {error}") from None
        chw = torch.from_numpy(array)[None] if array.ndim == 2 else torch.from_numpy(array[..., :3]).permute(2, 0, 1)
        images.append(convert_channels(chw.contiguous(), channels))
    names = list(BUNDLED_SETS[which])
    return images, names, list(range(len(names))), names


def folder_textures(root: Path, channels: int) -> tuple[list[torch.Tensor], list[str], list[int], list[str]]:
    """The images of a class-per-sub-folder (or image-per-class) folder, as `bundled_textures`."""
    require_folder(root, "texture folder")
    classes = image_folders(root)
    if classes:
        files, labels = [], []
        for label, name in enumerate(classes):
            found = image_files(root / name)
            files += found
            labels += [label] * len(found)
        loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS]
        if loose:
            print(f"note: {root}: {len(loose)} image(s) beside the class sub-folders are not used",
                  file=sys.stderr)
    else:  # no sub-folders: each image is a class of its own
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS
                       and not p.name.startswith("."))
        labels, classes = list(range(len(files))), [p.stem for p in files]
    if len(classes) < 2:
        held = f"only {classes[0]!r}" if classes else "none"
        raise DataError(f"texture folder {str(root)!r} holds {held}: texture recognition needs at "
                        f"least 2 classes, one sub-folder of images (or one image) per class")
    decoded = read_files(files, lambda path: to_tensor(open_image(path, channels)), root)
    kept = [i for i, image in enumerate(decoded) if image is not None]
    empty = sorted(set(classes) - {classes[labels[i]] for i in kept})
    if empty:
        raise DataError(f"texture folder {str(root)!r}: class(es) {', '.join(empty)} have no "
                        f"readable image")
    names = [files[i].relative_to(root).as_posix() for i in kept]
    return [decoded[i] for i in kept], names, [labels[i] for i in kept], classes


@SOURCES.register("crops")
def load_crops(arg, config, split: str) -> ImageSet:
    if arg is None:
        raise DataError(f"data set 'crops' needs a folder, e.g. crops:/data/textures, or "
                        f"crops:{BUNDLED} (or crops:textures-8) for scikit-image's bundled photos")
    if arg in BUNDLED_SETS:  # a folder of that name is crops:./NAME
        images, names, labels, classes = bundled_textures(config.channels, arg)
        where = f"data set 'crops:{arg}'"
    else:
        images, names, labels, classes = folder_textures(Path(arg), config.channels)
        where = f"texture folder {arg!r}"
    check_sizes(images, names, config.resolution, where)
    crops, crop_labels = cut_crops(images, names, labels, config.resolution, split)
    return ImageSet(crops, crop_labels, classes, f"crops:{arg}")
