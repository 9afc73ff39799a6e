"""Gram matrices of a fixed random multi-scale CNN: texture statistics without downloaded weights.

Random convolutional filters capture texture well enough for Gram-matrix synthesis and
comparison (Ustyuzhaninov et al., "Texture synthesis using shallow convolutional networks
with random filters", 2016): what matters is many filters at several scales, not trained
ones. The network here is fixed by its seed, so every Gram matrix ganforge computes (in
synthesis, in analysis, in evaluation) lives in the same feature space.

Layers: `SCALES` blocks, each a 3x3 convolution to `width` channels and ReLU, the blocks
separated by 2x average pooling, on the image's luma and colour (RGB; gray is repeated).
Weights are He-normal from the seed and never trained.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCALES = 4          # feature maps at 1, 1/2, 1/4, 1/8 of the image size
WIDTH = 64          # filters per scale
SEED = 1234         # the network's weights: fixed, so every Gram matrix shares one space


class RandomFeatures(nn.Module):
    """Multi-scale feature maps of a fixed random CNN (inputs: float N x 1|3 x H x W in [-1, 1]).

    Example:
        >>> grams = RandomFeatures().grams(images)   # one N x 64 x 64 matrix per scale
    """

    def __init__(self, scales: int = SCALES, width: int = WIDTH, seed: int = SEED):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        layers, c_in = [], 3
        for _ in range(scales):
            conv = nn.Conv2d(c_in, width, 3, padding=1, padding_mode="reflect")
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / (9 * c_in)) ** 0.5)
                conv.bias.zero_()
            layers.append(conv)
            c_in = width
        self.layers = nn.ModuleList(layers)
        self.requires_grad_(False).eval()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        maps = []
        for k, conv in enumerate(self.layers):
            if k:
                x = F.avg_pool2d(x, 2)
            x = F.relu(conv(x))
            maps.append(x)
        return maps

    def grams(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Per scale, the N x C x C Gram matrix of the feature maps, averaged over positions."""
        return [gram(x) for x in self(images)]


def gram(features: torch.Tensor) -> torch.Tensor:
    """N x C x H x W feature maps -> N x C x C, F F^T / (H W)."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)
