"""A cheap in-training watch on mode collapse, class by class.

At log steps the loop samples a few images of each class from fixed noise and compares how
far apart they are with how far apart real training images of that class are (mean
pairwise distance of images pooled to a small size and standardised one by one, so that shape
differences count and pixel noise and brightness do not: a collapsed class is often one image
drawn a little lighter or darker). A generator that draws one shirt per class, however
sharp, scores far below 1; real images of one class score about 1 against each other.
It needs no feature network, so it runs from the first step and on any data set. The
health controller reads `class_diversity_min` (the worst class) and acts on a low streak.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageSet, to_float

PROBE_SIZE = 16       # images are pooled to at most this many pixels a side before comparing
REAL_PER_CLASS = 64   # real images per class that set each class's spread


def _spread(images: torch.Tensor) -> float:
    """Mean pairwise L2 distance of float images N x C x H x W, pooled to PROBE_SIZE and
    standardised per image (zero mean, unit standard deviation)."""
    size = min(PROBE_SIZE, images.shape[-1])
    pooled = F.adaptive_avg_pool2d(images.float(), size).flatten(1)
    pooled = (pooled - pooled.mean(1, keepdim=True)) / (pooled.std(1, keepdim=True) + 1e-6)
    distances = torch.cdist(pooled, pooled)
    n = len(pooled)
    return float(distances.sum() / max(n * (n - 1), 1))


class ClassDiversityProbe:
    """Per-class diversity of a generator's samples, relative to the real images' own.

    Example:
        >>> probe = ClassDiversityProbe(train_set, num_classes=10, latent_dim=100)
        >>> probe(G_ema)["class_diversity_min"]
    """

    def __init__(self, data: ImageSet, num_classes: int, latent_dim: int, per_class: int = 8,
                 seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        groups = range(num_classes) if num_classes and data.labels is not None else [None]
        self.classes, self.real_spread = [], []
        for c in groups:
            if hasattr(data, "sample"):  # images of any size (one texture photo): random crops
                spread = _spread(to_float(data.sample(REAL_PER_CLASS, generator=generator)))
                if spread > 0:
                    self.classes.append(c)
                    self.real_spread.append(spread)
                continue
            index = torch.arange(len(data.images)) if c is None else \
                torch.nonzero(data.labels.cpu() == c).flatten()
            if len(index) < 2:
                continue  # a class without two real images has no spread to compare with
            pick = index[torch.randperm(len(index), generator=generator)[:REAL_PER_CLASS]]
            spread = _spread(to_float(data.images[pick.to(data.images.device)]))
            if spread > 0:
                self.classes.append(c)
                self.real_spread.append(spread)
        self.z = torch.randn(len(self.classes) * per_class, latent_dim, generator=generator)
        self.per_class = per_class

    @torch.no_grad()
    def __call__(self, net: nn.Module) -> dict[str, float]:
        """{'class_diversity_min', 'class_diversity_mean'}: samples' spread over the real
        spread, per class (the whole set for unconditional models). Samples in eval mode,
        as evaluation and sampling do; `net`'s mode is restored."""
        if not self.classes:
            return {}
        device = next(net.parameters()).device
        conditional = self.classes[0] is not None
        labels = torch.tensor(self.classes).repeat_interleave(self.per_class).to(device) \
            if conditional else None
        was_training = net.training
        net.eval()
        try:
            images = net(self.z.to(device), labels).float()
        finally:
            net.train(was_training)
        ratios = [_spread(images[i * self.per_class:(i + 1) * self.per_class]) / real
                  for i, real in enumerate(self.real_spread)]
        return {"class_diversity_min": round(min(ratios), 4),
                "class_diversity_mean": round(sum(ratios) / len(ratios), 4)}
