"""`mosaic:BASE`: 2x2 scenes of labelled objects, the data set of object replacement.

Object replacement ("make the 3 in the top-right corner a 7") needs scenes whose objects have
known places and classes. Real scene data sets with instance masks are large downloads; a
mosaic of four tiles from any labelled set (`digits`, `mnist`, `fashion-mnist`, or
`npz:PATH` with labels) gives the same structure offline: `regions` holds the tile index
0..3 of every pixel (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) and
`region_labels` the class of each tile. `labels` is None (a scene has no one class), but
`class_names` are the base's, so a class can be asked for by name.

Each mosaic is data.resolution square (which must be even); its tiles are the base's images
loaded at data.resolution / 2. The base's images are shuffled by a fixed permutation (seed 0
for "train", 1 for "test", the test mosaics coming from the base's test split) and taken in
groups of four, so every base image appears at most once: N = len(base) // 4.
"""
from __future__ import annotations

import dataclasses

import torch

from ..errors import ConfigError, DataError
from .imageset import ImageSet
from .sources import SOURCES, load_dataset

SEEDS = {"train": 0, "test": 1}
TILES = 4


def tile_regions(resolution: int) -> torch.Tensor:
    """int16 resolution x resolution map of the tile index (0 1 / 2 3) of each pixel.

    Example:
        >>> tile_regions(4)[:, [0, 3]].tolist()
        [[0, 1], [0, 1], [2, 3], [2, 3]]
    """
    half = resolution // 2
    rows = (torch.arange(resolution) >= half).to(torch.int16)
    cols = (torch.arange(resolution) >= half).to(torch.int16)
    return rows[:, None] * 2 + cols[None, :]


def mosaic_order(n_base: int, split: str) -> torch.Tensor:
    """The base indices of each mosaic's four tiles: long (n_base // 4) x 4."""
    order = torch.randperm(n_base, generator=torch.Generator().manual_seed(SEEDS[split]))
    count = n_base // TILES
    return order[:count * TILES].view(count, TILES)


@SOURCES.register("mosaic")
def load_mosaic(arg, config, split: str) -> ImageSet:
    if arg is None:
        raise DataError("data set 'mosaic' needs a labelled base set after the colon, "
                        "e.g. mosaic:digits or mosaic:npz:/path/to/set.npz")
    if config.resolution % 2:
        raise ConfigError(f"data.resolution={config.resolution}: mosaic:{arg} needs an even "
                          f"resolution (it holds 2x2 tiles of resolution/2)")
    base = load_dataset(dataclasses.replace(config, name=arg, resolution=config.resolution // 2), split)
    if not isinstance(base, ImageSet) or base.labels is None:
        raise DataError(f"data set 'mosaic:{arg}': the base set {arg!r} has no labels; the tiles "
                        f"need classes (use digits, mnist, fashion-mnist, or npz with 'y')")
    order = mosaic_order(len(base), split)
    if len(order) == 0:
        raise DataError(f"data set 'mosaic:{arg}' ({split}): the base set holds {len(base)} "
                        f"image(s), fewer than the {TILES} of one mosaic")

    # Lay the four tiles out as 0 1 / 2 3.
    tiles = base.images[order]  # N x 4 x C x h x w
    top = torch.cat([tiles[:, 0], tiles[:, 1]], dim=-1)
    bottom = torch.cat([tiles[:, 2], tiles[:, 3]], dim=-1)
    images = torch.cat([top, bottom], dim=-2)
    regions = tile_regions(config.resolution).expand(len(order), -1, -1).contiguous()
    return ImageSet(images, None, list(base.class_names), f"mosaic:{arg}", regions=regions,
                    region_labels=base.labels[order])
