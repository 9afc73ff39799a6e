"""`paired:FOLDER`: real input/target pairs (A -> B) for pix2pix-style translation.

Synthetic pairs (a degradation applied to a clean image) cover restoration; translation
between real domains (facades <-> labels, maps <-> aerial photos, edges <-> shoes) needs pairs
that were photographed or drawn. Two layouts are read:

- pix2pix's aligned layout: each file holds A and B side by side, A (the input) on the left
  half and B (the target) on the right. The image is cut at the middle whatever its shape
  (an odd width loses its middle column).
- Two sub-folders `A/` and `B/` whose files are matched by name without extension
  (`A/0001.png` with `B/0001.jpg`); a name on one side only is an error.

Splits: FOLDER/train and FOLDER/test when they exist (as pix2pix's downloads are laid out);
otherwise FOLDER itself is "train" and there is no "test". Both sides are read like
`folder:` images (any Pillow mode, centre crop, resize to data.resolution, data.channels).
The result is an ImageSet with `images` = B and `sources` = A.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError
from .folder import EXTENSIONS, read_image, require_folder
from .imageset import ImageSet
from .patches import open_image, read_files, to_tensor
from .sources import SOURCES

SHOWN = 3  # unmatched names listed before the count


def _split_folder(root: Path, split: str) -> Path:
    if (root / split).is_dir():
        return root / split
    if split == "train":
        return root
    raise DataError(f"paired folder {str(root)!r} has no test split (no {split}/ sub-folder); "
                    f"point data.name to another folder to evaluate")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in EXTENSIONS)


def _by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in _files(folder):
        if path.stem in found:
            raise DataError(f"paired folder {str(folder)!r} holds two files named {path.stem!r} "
                            f"({found[path.stem].name}, {path.name}); pairs are matched by name")
        found[path.stem] = path
    return found


def _fit(image: Image.Image, resolution: int) -> torch.Tensor:
    return to_tensor(ImageOps.fit(image, (resolution, resolution), method=Image.Resampling.BICUBIC))


def _read_side_by_side(path: Path, resolution: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    image = open_image(path, channels)
    half = image.width // 2
    if half == 0:
        raise ValueError(f"{image.width} pixel(s) wide, too narrow to hold A and B side by side")
    a = image.crop((0, 0, half, image.height))
    b = image.crop((image.width - half, 0, image.width, image.height))
    return _fit(a, resolution), _fit(b, resolution)


def _read_two_files(a: Path, b: Path, resolution: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    def read(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. Pillow's palette-transparency notes
            return torch.from_numpy(np.ascontiguousarray(read_image(path, resolution, channels))).permute(2, 0, 1)

    return read(a), read(b)


def _match(folder: Path) -> list[tuple[Path, Path]]:
    """Files of A/ and B/ paired by name; any name on one side only is an error."""
    a, b = _by_stem(folder / "A"), _by_stem(folder / "B")
    lonely = sorted([f"A/{a[s].name}" for s in a.keys() - b.keys()] +
                    [f"B/{b[s].name}" for s in b.keys() - a.keys()])
    if lonely:
        more = f", and {len(lonely) - SHOWN} more" if len(lonely) > SHOWN else ""
        raise DataError(f"paired folder {str(folder)!r}: {len(lonely)} file(s) have no partner "
                        f"of the same name on the other side: {', '.join(lonely[:SHOWN])}{more}")
    return [(a[stem], b[stem]) for stem in sorted(a)]


@SOURCES.register("paired")
def load_paired(arg, config, split: str) -> ImageSet:
    root = Path(arg)
    require_folder(root, "paired folder")
    folder = _split_folder(root, split)
    has_a, has_b = (folder / "A").is_dir(), (folder / "B").is_dir()
    if has_a != has_b:
        raise DataError(f"paired folder {str(folder)!r} has {'A' if has_a else 'B'}/ but no "
                        f"{'B' if has_a else 'A'}/ sub-folder")

    # Read the pairs: two matched files each, or one file cut in halves.
    resolution, channels = config.resolution, config.channels
    if has_a:
        pairs = dict(_match(folder))
        results = read_files(list(pairs), lambda a: _read_two_files(a, pairs[a], resolution, channels),
                             folder)
        count = len(pairs)
    else:
        files = _files(folder)
        results = read_files(files, lambda path: _read_side_by_side(path, resolution, channels), folder)
        count = len(files)
    if count == 0:
        raise DataError(f"paired folder {str(folder)!r} holds no images (expected A|B images side "
                        f"by side, or A/ and B/ sub-folders; looked for {', '.join(sorted(EXTENSIONS))})")
    pairs_read = [pair for pair in results if pair is not None]
    if not pairs_read:
        raise DataError(f"paired folder {str(folder)!r}: none of its {count} pairs could be read")
    sources = torch.stack([a for a, _ in pairs_read])
    images = torch.stack([b for _, b in pairs_read])
    return ImageSet(images, source=f"paired:{root}", sources=sources)
