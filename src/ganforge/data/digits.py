"""`digits`: scikit-learn's bundled 1,797 handwritten 8x8 digits, the default, offline data set."""
from __future__ import annotations

import math

import torch

from .imageset import ImageSet
from .sources import SOURCES

TEST_SHARE = 0.2  # fixed 80/20 split, drawn once with seed 0


@SOURCES.register("digits")
def load_digits(arg, config, split: str) -> ImageSet:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    # Scale the 0..16 ink levels to 0..255 bytes.
    images = torch.from_numpy(bunch.images).mul(255.0 / 16.0).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_test = math.ceil(len(images) * TEST_SHARE)  # 360, as sklearn's train_test_split
    chosen = order[n_test:] if split == "train" else order[:n_test]
    chosen = chosen.sort().values
    return ImageSet(images[chosen], labels[chosen], [str(d) for d in range(10)], "digits")


load_digits.native_resolution = 8
