"""The in-memory image set every source produces, and the conversions shared by all sources."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

REGION_DTYPES = (torch.int16, torch.int32, torch.int64)


@dataclass
class ImageSet:
    """A whole data set as one uint8 tensor (N x C x H x W), labels optional.

    Kept as uint8 (4x smaller than float) so that it fits on the training device; batches
    are converted to floats in [-1, 1] by `to_float` where they are used. Image-to-image
    sources add, per image:

    - `sources`: uint8 N x C' x H' x W', the input (A side) of a real pair whose target
      (B side) is `images`, as pix2pix's aligned data sets hold them.
    - `regions`: integer N x H x W (int16 keeps it small), the instance id of each pixel,
      -1 where there is none; `region_labels`: long N x R, the class of each instance id.
    """

    images: torch.Tensor
    labels: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)
    source: str = ""
    sources: torch.Tensor | None = None
    regions: torch.Tensor | None = None
    region_labels: torch.Tensor | None = None

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 N x C x H x W, got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        n = len(self.images)
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"{len(self.labels)} labels for {n} images")
        if self.sources is not None:
            if self.sources.dtype != torch.uint8 or self.sources.dim() != 4 or len(self.sources) != n:
                raise ValueError(f"sources must be uint8 N x C x H x W with N={n}, got "
                                 f"{self.sources.dtype} {tuple(self.sources.shape)}")
        if self.regions is not None:
            if (self.regions.dtype not in REGION_DTYPES or self.regions.dim() != 3
                    or self.regions.shape != (n, *self.images.shape[-2:])):
                raise ValueError(f"regions must be int16/int32/int64 N x H x W = "
                                 f"{(n, *self.images.shape[-2:])}, got {self.regions.dtype} "
                                 f"{tuple(self.regions.shape)}")
        if self.region_labels is not None:
            if (self.region_labels.dtype != torch.long or self.region_labels.dim() != 2
                    or len(self.region_labels) != n):
                raise ValueError(f"region_labels must be long N x R with N={n}, got "
                                 f"{self.region_labels.dtype} {tuple(self.region_labels.shape)}")
            if self.regions is None:
                raise ValueError("region_labels given without regions")

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

    def _map(self, fn) -> "ImageSet":
        """A copy with `fn` applied to every tensor field that is set."""
        def apply(tensor):
            return None if tensor is None else fn(tensor)

        return ImageSet(fn(self.images), apply(self.labels), self.class_names, self.source,
                        sources=apply(self.sources), regions=apply(self.regions),
                        region_labels=apply(self.region_labels))

    def to(self, device: torch.device | str) -> "ImageSet":
        return self._map(lambda tensor: tensor.to(device))

    def subset(self, index: torch.Tensor) -> "ImageSet":
        """The images (and labels, sources, regions) at `index`."""
        return self._map(lambda tensor: tensor[index.to(tensor.device)]
                         if isinstance(index, torch.Tensor) else tensor[index])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in
                   (self.images, self.labels, self.sources, self.regions, self.region_labels)
                   if t is not None)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding to nearest."""
    return images.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def conform(images: torch.Tensor, resolution: int, channels: int, chunk: int = 4096) -> torch.Tensor:
    """Resize a uint8 N x C x H x W batch to `resolution` and convert it to `channels`.

    Square images are resized (antialiased bilinear); other shapes are centre-cropped to a
    square first. Gray becomes RGB by repetition, RGB becomes gray by ITU-R 601 luma. A set
    already at its size and channels is returned as it is (a memory-mapped set stays mapped).
    """
    if images.shape[1] == channels and tuple(images.shape[-2:]) == (resolution, resolution):
        return images
    out = []
    for start in range(0, images.shape[0], chunk):
        part = images[start:start + chunk]
        part = _centre_square(part)
        part = match_channels(part.float(), channels)
        if part.shape[-1] != resolution:
            part = F.interpolate(part, size=(resolution, resolution), mode="bilinear",
                                 align_corners=False, antialias=part.shape[-1] > resolution)
        out.append(part.round_().clamp_(0, 255).to(torch.uint8))
    if not out:
        return torch.empty(0, channels, resolution, resolution, dtype=torch.uint8)
    return torch.cat(out)


def _centre_square(part: torch.Tensor) -> torch.Tensor:
    """The centred square of the last two dimensions (what `conform` keeps of a non-square image)."""
    height, width = part.shape[-2:]
    if height == width:
        return part
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return part[..., top:top + side, left:left + side]


def match_channels(part: torch.Tensor, channels: int) -> torch.Tensor:
    """Float N x C x H x W to `channels`: gray to RGB by repetition, RGB to gray by ITU-R 601 luma."""
    if part.shape[1] == channels:
        return part
    if channels == 3:
        return part.repeat(1, 3, 1, 1)
    weights = torch.tensor([0.299, 0.587, 0.114], device=part.device).view(1, 3, 1, 1)
    return (part[:, :3] * weights).sum(1, keepdim=True)


def convert_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """A uint8 C x H x W or N x C x H x W image with `channels` channels, size unchanged.

    The same conversion as `conform` (repetition, or ITU-R 601 luma rounded to nearest), for
    images of any size such as a PatchSet's.

    Example:
        >>> convert_channels(torch.full((3, 5, 7), 200, dtype=torch.uint8), 1).shape
        torch.Size([1, 5, 7])
    """
    single = image.dim() == 3
    batch = image.unsqueeze(0) if single else image
    if batch.shape[1] == channels:
        return image
    out = match_channels(batch.float(), channels).round_().clamp_(0, 255).to(torch.uint8)
    return out[0] if single else out


def conform_regions(regions: torch.Tensor, resolution: int, chunk: int = 4096) -> torch.Tensor:
    """Instance ids (N x H x W) brought to `resolution` the way `conform` brings their images:
    the same centre square, then nearest-neighbour resizing so that no id is blended."""
    out = []
    for start in range(0, regions.shape[0], chunk):
        part = _centre_square(regions[start:start + chunk])
        if part.shape[-1] != resolution:
            # Float32 holds every int16 id exactly; "nearest-exact" samples pixel centres.
            part = F.interpolate(part[:, None].float(), size=(resolution, resolution),
                                 mode="nearest-exact")[:, 0].to(regions.dtype)
        out.append(part)
    if not out:
        return regions.new_empty(0, resolution, resolution)
    return torch.cat(out)
