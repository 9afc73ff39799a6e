"""The in-memory image set every source produces, and the conversions shared by all sources."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class ImageSet:
    """A whole data set as one uint8 tensor (N x C x H x W), labels optional.

    Kept as uint8 (4x smaller than float) so that it fits on the training device; batches
    are converted to floats in [-1, 1] by `to_float` where they are used.
    """

    images: torch.Tensor
    labels: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 N x C x H x W, got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.labels)} labels for {len(self.images)} images")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.labels is not None else 0

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    def to(self, device: torch.device | str) -> "ImageSet":
        labels = None if self.labels is None else self.labels.to(device)
        return ImageSet(self.images.to(device), labels, self.class_names, self.source)

    def subset(self, index: torch.Tensor) -> "ImageSet":
        """The images (and labels) at `index`."""
        labels = None if self.labels is None else self.labels[index]
        return ImageSet(self.images[index], labels, self.class_names, self.source)

    def nbytes(self) -> int:
        return self.images.numel() + (0 if self.labels is None else self.labels.numel() * 8)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding to nearest."""
    return images.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def conform(images: torch.Tensor, resolution: int, channels: int, chunk: int = 4096) -> torch.Tensor:
    """Resize a uint8 N x C x H x W batch to `resolution` and convert it to `channels`.

    Square images are resized (antialiased bilinear); other shapes are centre-cropped to a
    square first. Gray becomes RGB by repetition, RGB becomes gray by ITU-R 601 luma.
    """
    out = []
    for start in range(0, images.shape[0], chunk):
        part = images[start:start + chunk]
        height, width = part.shape[-2:]
        if height != width:
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            part = part[..., top:top + side, left:left + side]
        part = part.float()
        if part.shape[1] != channels:
            if channels == 3:
                part = part.repeat(1, 3, 1, 1)
            else:
                weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
                part = (part[:, :3] * weights).sum(1, keepdim=True)
        if part.shape[-1] != resolution:
            part = F.interpolate(part, size=(resolution, resolution), mode="bilinear",
                                 align_corners=False, antialias=part.shape[-1] > resolution)
        out.append(part.round_().clamp_(0, 255).to(torch.uint8))
    if not out:
        return torch.empty(0, channels, resolution, resolution, dtype=torch.uint8)
    return torch.cat(out)
