"""Blocks and initialisation shared by several architectures."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def init_dcgan(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016): conv weights N(0, 0.02), norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.affine:  # (class-conditional: its own gains)
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def leaky() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (Karras et al. 2018): weights start N(0, 1)
    and are scaled by lr_mul / sqrt(fan_in) at run time, so Adam moves every layer at the same
    pace. `lr_mul` < 1 slows a layer down (StyleGAN's mapping network uses 0.01)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.scale, self.lr_mul = lr_mul / math.sqrt(in_features), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate (see EqualLinear); same padding by default."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding: int | None = None, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2 if padding is None else padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class PixelNorm(nn.Module):
    """Normalises each pixel's feature vector to unit mean square (ProGAN's G normalisation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class MinibatchStd(nn.Module):
    """Appends the standard deviation of features across groups of the batch as extra
    channels (Karras et al. 2018), so D can see a lack of variety and punish collapse."""

    def __init__(self, group_size: int = 4, channels: int = 1):
        super().__init__()
        self.group_size, self.channels = group_size, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:                   # the largest group size that divides the batch
            g -= 1
        f = self.channels
        y = x.float().reshape(g, -1, f, c // f, h, w)
        # The variance over the group as the mean squared deviation: torch.var over the
        # leading dim took 20 ms for a 64x384x4x4 batch on CPU (torch 2.14), this 1 ms.
        y = (((y - y.mean(dim=0)) ** 2).mean(dim=0) + 1e-8).sqrt()  # (n/g, f, c/f, h, w)
        y = y.mean(dim=(2, 3, 4)).reshape(-1, f, 1, 1)    # (n/g, f, 1, 1)
        y = y.repeat(g, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)


class PackWithPartners(nn.Module):
    """PacGAN's packing (Lin et al. 2018) for a batch of any mix of classes: each image goes
    to D with `pack - 1` others of its class in the batch (of the batch, without labels)
    stacked on its channels. D then judges sets: a generator that draws one shirt again and
    again hands it sets of near-copies, which real sets of a class never are. Unlike PacGAN's
    split of the batch into disjoint packs, every image keeps its own logit (the batch size,
    the projection's labels and R1's per-image gradient stay as they are); the partners are
    drawn afresh at each call, cyclically within a class in a random order, so an image alone
    in its class is packed with itself. No host sync."""

    def __init__(self, pack: int, num_classes: int = 0):
        super().__init__()
        if pack < 2:
            raise ValueError(f"PackWithPartners needs pack >= 2, got {pack}")
        self.pack, self.groups = pack, max(num_classes, 1)

    def partners(self, labels: torch.Tensor | None, n: int, device) -> list[torch.Tensor]:
        """Index tensors (N,), one per partner: the k-th next image of the same class."""
        group = torch.zeros(n, dtype=torch.long, device=device) if labels is None else labels.long()
        order = (group * n + torch.randperm(n, device=device)).argsort()   # by class, random within
        grouped = group[order]
        # Counted by scatter, not bincount: bincount sizes its output from the largest label,
        # a host sync on a GPU.
        counts = torch.zeros(self.groups, dtype=torch.long, device=device).scatter_add_(
            0, grouped, torch.ones_like(grouped))
        start, count = (counts.cumsum(0) - counts)[grouped], counts[grouped]
        place = torch.arange(n, device=device) - start
        found = []
        for k in range(1, self.pack):
            partner = torch.empty_like(order)
            partner[order] = order[start + (place + k) % count]
            found.append(partner)
        return found

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([x, *(x[p] for p in self.partners(labels, len(x), x.device))], dim=1)
