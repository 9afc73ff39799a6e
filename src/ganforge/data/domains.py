"""Two image domains in one run, for unpaired translation (CycleGAN).

A run sees two domains as a `DomainPair` in three ways:
- `data.name` and `data.name_b` (`--dataset`, `--dataset-b`): any two sources, each loaded
  and conformed as alone (folders, torchvision sets, npz, patches of photos);
- a folder in the CycleGAN repository's layout, `trainA/ trainB/ testA/ testB/`, given as
  `folder:DIR` (see data.folder);
- `styled:BASE`, the measured example: one half of BASE's images (a fixed shuffle) as they
  are (domain A) and the other half re-drawn by a fixed colour and texture transform (domain
  B). The halves are disjoint, so no image of A has its own translation in B: the pairs are
  never seen.

Both domains share `data.resolution` and `data.channels` (a gray domain is repeated to RGB), so
one generator shape serves both directions and the identity loss is defined. Each domain
keeps its own labels, which evaluation uses for content preservation; training ignores them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..errors import DataError
from .imageset import ImageSet, match_channels
from .sources import SOURCES, load_dataset


@dataclass
class DomainPair:
    """Domain A and domain B of an unpaired translation data set (ImageSets or PatchSets)."""

    a: object
    b: object
    source: str = ""

    labels = None
    sources = None

    @property
    def class_names(self) -> list[str]:
        return list(self.a.class_names)

    @property
    def num_classes(self) -> int:
        return 0  # the translation networks take no class; evaluation reads each domain's labels

    @property
    def channels(self) -> int:
        return self.a.channels

    def __len__(self) -> int:
        return min(len(self.a), len(self.b))

    def nbytes(self) -> int:
        return self.a.nbytes() + self.b.nbytes()

    def to(self, device) -> "DomainPair":
        return DomainPair(self.a.to(device), self.b.to(device), self.source)

    def domain(self, which: str):
        """Domain "a" or "b"."""
        if which not in ("a", "b"):
            raise ValueError(f"domain must be 'a' or 'b', got {which!r}")
        return self.a if which == "a" else self.b


def is_two_domain(data) -> bool:
    return isinstance(data, DomainPair)


# The measured example's domain B: gray digits re-drawn in colour on a texture.
STYLED_SEED = 0                         # the fixed shuffle that splits BASE into the two halves
STRIPE_PERIODS = 4.0                    # diagonal stripes across the image
BACKGROUND = ((0.10, 0.12, 0.30), (0.12, 0.42, 0.45))   # navy and teal, alternating stripes
STROKE = ((1.00, 0.45, 0.05), (1.00, 0.90, 0.35))       # orange at the top to yellow at the bottom


def stylise(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W -> uint8 N x 3 x H x W: the ink (the image's luma) is painted with
    a vertical orange-to-yellow gradient over a background of soft navy and teal diagonal
    stripes. A fixed, position-dependent colour transform: invertible where there is ink or
    background, and unlike anything a per-pixel colour map (histogram matching) can make."""
    n, _, h, w = images.shape
    ink = match_channels(images.float(), 1) / 255.0
    yy = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    xx = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * STRIPE_PERIODS * (xx + yy) / 2)
    (bg0, bg1), (fg0, fg1) = (torch.tensor(BACKGROUND), torch.tensor(STROKE))
    background = bg0.view(3, 1, 1) * (1 - stripes) + bg1.view(3, 1, 1) * stripes
    stroke = fg0.view(3, 1, 1) * (1 - yy) + fg1.view(3, 1, 1) * yy
    out = background * (1 - ink) + stroke * ink
    return out.mul(255).round().clamp(0, 255).to(torch.uint8)


@SOURCES.register("styled")
def load_styled(arg, config, split: str) -> DomainPair:
    """`styled:BASE`: A = one half of BASE (a fixed shuffle; as it is), B = the other half, stylised."""
    base = load_dataset(replace(config, name=arg, name_b=""), split)
    if not isinstance(base, ImageSet):
        raise DataError(f"data set 'styled:{arg}': {arg!r} must be a set of whole images "
                        f"(digits, mnist, folder:...), not crops or two domains")
    half = len(base) // 2
    if half == 0:
        raise DataError(f"data set 'styled:{arg}' ({split}) needs at least 2 images, {arg!r} has {len(base)}")
    # Halves of a fixed shuffle: files stored class by class (MNIST's IDX copies often are)
    # would otherwise give the two domains different classes.
    order = torch.randperm(len(base), generator=torch.Generator().manual_seed(STYLED_SEED))
    a = base.subset(order[:half])
    b = base.subset(order[half:2 * half])
    b = ImageSet(stylise(b.images), b.labels, b.class_names, f"styled:{arg} (B)")
    return DomainPair(ImageSet(a.images, a.labels, a.class_names, f"styled:{arg} (A)"), b, f"styled:{arg}")


@SOURCES.register("domain")
def load_domain(arg, config, split: str):
    """`domain:a:NAME` or `domain:b:NAME`: one domain of the two-domain set NAME as a data set
    of its own (evaluation trains a feature classifier per domain with it)."""
    side, _, name = (arg or "").partition(":")
    if side not in ("a", "b") or not name:
        raise DataError(f"data set 'domain:{arg}': expected domain:a:NAME or domain:b:NAME")
    pair = load_dataset(replace(config, name=name, name_b=""), split)
    if not is_two_domain(pair):
        raise DataError(f"data set 'domain:{arg}': {name!r} holds one domain, not two")
    return pair.domain(side)


def domain_config(config, side: str):
    """The DataConfig of one domain of a translation run's `data` section, as a data set of
    its own: data.name or data.name_b when both are given, else domain:SIDE:NAME."""
    if side not in ("a", "b"):
        raise ValueError(f"domain must be 'a' or 'b', got {side!r}")
    if config.name_b:
        return replace(config, name=config.name if side == "a" else config.name_b, name_b="")
    return replace(config, name=f"domain:{side}:{config.name}")
