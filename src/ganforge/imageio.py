"""Image grids, PNG files and npz arrays: the ways generated images leave ganforge."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import atomic


def to_hwc(images: torch.Tensor) -> np.ndarray:
    """uint8 N x C x H x W tensor -> N x H x W x C NumPy array."""
    return images.permute(0, 2, 3, 1).cpu().numpy()


def grid(images: np.ndarray, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile N x H x W x C uint8 images into one H' x W' x C image, `nrow` per row."""
    from torchvision.utils import make_grid

    n = images.shape[0]
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    tiled = make_grid(tensor, nrow=nrow, padding=padding, pad_value=0)
    if images.shape[-1] == 1:
        tiled = tiled[:1]
    return tiled.permute(1, 2, 0).numpy()


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Write one H x W x C uint8 image, atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    with atomic.replacing(path) as tmp:
        pil.save(tmp, format="PNG")


def numbered_paths(folder: str | Path, n: int) -> list[Path]:
    """Where `save_each` writes n images: 000000.png, 000001.png, ..."""
    digits = max(6, len(str(n - 1)))
    return [Path(folder) / f"{i:0{digits}d}.png" for i in range(n)]


def save_each(images: np.ndarray, folder: str | Path) -> list[Path]:
    """One PNG per image: 000000.png, 000001.png, ..."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    paths = numbered_paths(folder, len(images))
    for image, path in zip(images, paths):
        save_png(image, path)
    return paths


def save_npz(images: np.ndarray, path: str | Path, labels: np.ndarray | None = None) -> None:
    """`x`: N x H x W (gray) or N x H x W x 3 uint8; `y`: labels when given. Atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"x": images[..., 0] if images.shape[-1] == 1 else images}
    if labels is not None:
        arrays["y"] = np.asarray(labels, dtype=np.int64)
    with atomic.replacing(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
