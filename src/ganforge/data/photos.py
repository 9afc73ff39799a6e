"""`photos`: real photographs that ship inside the scikit-image and scikit-learn wheels.

They give super-resolution, denoising, inpainting and colorization a data set of real,
full-size photos that needs no download (every one below was checked to load with the
network off; skimage.data names such as eagle, lily or kidney download on first use and are
left out). They come as a PatchSet: whole images for random crops of `data.resolution`.

Fixed split, so evaluation runs on photos the model never saw:

- "test" (3 natural RGB photos): skimage coffee (600x400), skimage chelsea (451x300, the
  same photo as skimage.data.cat, which is therefore not used), sklearn flower (640x427).
- "train" (15): skimage astronaut, camera, rocket, hubble_deep_field, immunohistochemistry,
  coins, moon, grass, gravel, brick, page, text, cell, the left view of stereo_motorcycle;
  sklearn china. (retina is left out: at 1411x1411 and mostly black it would fill most crops,
  which are drawn in proportion to area.)
- `photos:color` keeps only the colour photos of each split (astronaut, rocket,
  hubble_deep_field, immunohistochemistry, stereo_motorcycle, china; all 3 test photos):
  colorization must not learn that photos are gray.

Also left out: drawings and synthetic images (logo, colorwheel, horse, checkerboard, ...),
the motion-blurred clock, and microaneurysms (102x102, smaller than most crops).
Gray photos are repeated to RGB when data.channels is 3; RGB photos become their ITU-R 601
luma when it is 1.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import DataError
from .patches import PatchSet, keep_croppable, to_tensor
from .sources import SOURCES

TRAIN = ["skimage:astronaut", "skimage:camera", "skimage:rocket", "skimage:hubble_deep_field",
         "skimage:immunohistochemistry", "skimage:coins", "skimage:moon",
         "skimage:grass", "skimage:gravel", "skimage:brick", "skimage:page", "skimage:text",
         "skimage:cell", "skimage:stereo_motorcycle", "sklearn:china"]
TEST = ["skimage:coffee", "skimage:chelsea", "sklearn:flower"]


def photo(name: str) -> np.ndarray:
    """One photo by its name above, as the library gives it (uint8 H x W or H x W x 3).

    Example:
        >>> photo("skimage:coffee").shape
        (400, 600, 3)
    """
    library, _, key = name.partition(":")
    try:
        if library == "sklearn":
            from sklearn.datasets import load_sample_image

            return load_sample_image(f"{key}.jpg")
        import skimage.data

        if key == "stereo_motorcycle":
            return skimage.data.stereo_motorcycle()[0]
        return getattr(skimage.data, key)()
    except (OSError, ValueError, ImportError, AttributeError) as error:
        raise DataError(f"data set 'photos': photo {name!r} cannot be loaded: {error}") from None


@SOURCES.register("photos")
def load_photos(arg, config, split: str) -> PatchSet:
    if arg not in (None, "color"):
        raise DataError(f"data set 'photos:{arg}': the only option is photos:color (colour photos "
                        f"only); the photos are a fixed set, see ganforge.data.photos")
    names = TRAIN if split == "train" else TEST
    arrays = {name: photo(name) for name in names}  # each photo decoded once
    if arg == "color":
        names = [name for name in names if arrays[name].ndim == 3]
    mode = "L" if config.channels == 1 else "RGB"
    images = [to_tensor(Image.fromarray(arrays[name]).convert(mode)) for name in names]
    images, names = keep_croppable(images, names, config.resolution, f"data set 'photos' ({split})")
    return PatchSet(images, names, "photos", config.resolution)
