"""`npz:PATH`: a NumPy archive with `x` (N x H x W or N x H x W x C, uint8) and optional `y`."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .imageset import ImageSet
from .sources import SOURCES


@SOURCES.register("npz")
def load_npz(arg, config, split: str) -> ImageSet:
    path = Path(arg)
    if not path.is_file():
        raise DataError(f"npz file {str(path)!r} does not exist")
    if split != "train":
        raise DataError(f"npz file {str(path)!r} has no {split!r} split; pass a separate file")
    try:
        opened = np.load(path, allow_pickle=False)
        if not isinstance(opened, np.lib.npyio.NpzFile):
            raise DataError(f"npz file {str(path)!r} is a single .npy array, not an .npz archive "
                            f"with 'x' (save with numpy.savez(path, x=..., y=...))")
        with opened as archive:
            if "x" not in archive.files:
                raise DataError(f"npz file {str(path)!r} has no array 'x' (it holds: "
                                f"{', '.join(archive.files) or 'nothing'})")
            x = archive["x"]
            y = archive["y"] if "y" in archive.files else None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise DataError(f"npz file {str(path)!r} cannot be read: {error}") from None
    if x.dtype != np.uint8:
        raise DataError(f"npz file {str(path)!r}: 'x' must be uint8 (0..255), got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"npz file {str(path)!r}: 'x' must be N x H x W or N x H x W x C with "
                        f"C 1 or 3, got shape {x.shape}")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    labels, names = None, []
    if y is not None:
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"npz file {str(path)!r}: 'y' must be {len(x)} integer labels, got "
                            f"{y.dtype} of shape {y.shape}")
        if len(y) and y.min() < 0:
            raise DataError(f"npz file {str(path)!r}: 'y' holds a negative label ({y.min()})")
        labels = torch.from_numpy(y.astype(np.int64))
        names = [str(c) for c in range(int(y.max()) + 1 if len(y) else 0)]
    return ImageSet(images, labels, names, f"npz:{path}")
