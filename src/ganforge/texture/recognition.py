"""Texture recognition without learning: multi-radius LBP histograms and a nearest neighbour.

The baseline a trained CNN has to beat, done as scikit-image's gallery example "Local Binary
Pattern for texture classification" does it: each image is described by histograms of
rotation-invariant uniform local binary patterns at three radii (8 points at radius 1, 16 at
2, 24 at 3: fine to coarse structure), and labelled as its nearest training image under the
chi-square histogram distance. Nothing is fitted beyond storing the training histograms, so
a gap between this and a CNN is what learning bought.

Codes within R pixels of the border compare against padding, not the texture, so each
histogram counts only the interior. Colour images are described by their luma.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data import ImageSet, convert_channels
from ..errors import DataError
from .analysis import multiscale_lbp

SCALES = ((8, 1), (16, 2), (24, 3))   # (points P, radius R) of each LBP histogram
CHUNK = 4_000_000                     # test x train x bins values per distance block


def lbp_histograms(images: torch.Tensor, scales=SCALES) -> np.ndarray:
    """uint8 N x C x H x W -> float64 N x sum(P + 2): per image, analysis.multiscale_lbp of
    its luma (the uniform LBP histograms at each scale, interior pixels only).

    Example:
        >>> lbp_histograms(torch.zeros(2, 1, 32, 32, dtype=torch.uint8)).shape
        (2, 54)
    """
    margin = max(radius for _, radius in scales)
    if min(images.shape[-2:]) <= 2 * margin:
        raise DataError(f"the LBP baseline needs images larger than {2 * margin}x{2 * margin} "
                        f"(radius {margin} on each side), got {images.shape[-1]}x{images.shape[-2]}")
    gray = convert_channels(images.cpu(), 1)[:, 0].numpy()
    return np.stack([multiscale_lbp(image, scales) for image in gray]) if len(gray) else \
        np.empty((0, sum(points + 2 for points, _ in scales)))


def chi_square(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chi-square distances between the rows of `a` (M x B) and `b` (N x B): M x N,
    sum over bins of (a - b)^2 / (a + b), empty bins counting 0."""
    rows = max(1, CHUNK // max(1, b.size))
    out = np.empty((len(a), len(b)))
    for start in range(0, len(a), rows):
        x = a[start:start + rows, None, :]
        total, diff = x + b[None], x - b[None]
        out[start:start + rows] = np.divide(diff * diff, total, out=np.zeros_like(total),
                                            where=total > 0).sum(-1)
    return out


class LBPNearestNeighbour:
    """1-nearest-neighbour on LBP histograms; `fit` on one ImageSet, `report` on another.

    `predict` and `class_names` match TrainedClassifier's, so its `report` (accuracy,
    per-class precision/recall/F1, confusion matrix) is shared rather than copied.

    Example:
        >>> baseline = LBPNearestNeighbour().fit(train)
        >>> baseline.report(test)["accuracy"]
    """

    def __init__(self, scales=SCALES):
        self.scales = tuple(tuple(scale) for scale in scales)
        self.class_names: list[str] = []

    def fit(self, data: ImageSet) -> "LBPNearestNeighbour":
        if data.labels is None or len(data) == 0:
            raise DataError(f"data set {data.source!r}: the LBP baseline needs labelled images to fit")
        self.histograms = lbp_histograms(data.images, self.scales)
        self.labels = data.labels.cpu().numpy()
        self.class_names = list(data.class_names)
        return self

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The label of each image's nearest training histogram (long N)."""
        distances = chi_square(lbp_histograms(images, self.scales), self.histograms)
        return torch.from_numpy(self.labels[distances.argmin(1)]).long()

    def report(self, data: ImageSet) -> dict:
        """The evaluation report of `ganforge classify eval`, in its shape."""
        from ..inference.classifier import TrainedClassifier

        if data.class_names != self.class_names:
            raise DataError(f"data set {data.source!r} has classes {data.class_names}, the LBP "
                            f"baseline was fitted on {self.class_names}")
        return TrainedClassifier.report(self, data)


def lbp_baseline(train: ImageSet, test: ImageSet, scales=SCALES) -> dict:
    """Fit the LBP nearest-neighbour baseline on `train` and report it on `test`."""
    return LBPNearestNeighbour(scales).fit(train).report(test)
