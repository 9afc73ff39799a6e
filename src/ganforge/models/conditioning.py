"""Class conditioning shared by the architectures: a label embedding joined to the noise
(Mirza & Osindero 2014) for generators, and a projection head (Miyato & Koyama 2018) with
an optional auxiliary classifier (ACGAN, Odena et al. 2017) for discriminators."""
from __future__ import annotations

import torch
from torch import nn


def embed_labels(embedding: nn.Embedding, labels: torch.Tensor) -> torch.Tensor:
    """Class embeddings of `labels`: integer classes (N,), or class weights (N, classes) as
    floats, whose rows mix the classes' embeddings (for interpolating between classes)."""
    if labels.is_floating_point():
        return labels.to(embedding.weight.dtype) @ embedding.weight
    return embedding(labels)


class LabelToNoise(nn.Module):
    """Concatenates a learned class embedding to z; identity for unconditional models."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, dim) if num_classes else None
        self.extra = dim if num_classes else 0

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.embed is None:
            return z
        if labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        return torch.cat([z, embed_labels(self.embed, labels)], dim=1)


class ProjectionHead(nn.Module):
    """Adds <embed(y), phi(x)> to the unconditional logit; `classify(phi)` gives ACGAN's
    auxiliary class logits. Without labels (ACGAN mode) the logit is left as it is."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, features) if num_classes else None
        self.aux = nn.Linear(features, num_classes) if num_classes else None
        if self.embed is not None:
            # Small, like D's other weights: an N(0, 1) start made the projection swamp D's
            # logit and a conditional DCGAN on the digits learnt nothing for ~800 steps.
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, logits: torch.Tensor, phi: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.embed is None or labels is None:
            return logits
        return logits + (self.embed(labels) * phi).sum(1)

    def classify(self, phi: torch.Tensor) -> torch.Tensor:
        return self.aux(phi)


class ConditionalBatchNorm2d(nn.Module):
    """Class-conditional batch norm (de Vries et al. 2017; Miyato & Koyama 2018): batch norm
    without its own affine step, then a per-class gain and bias looked up by label. The gains
    start at 1 and the biases at 0, so it begins as plain batch norm for every class."""

    def __init__(self, features: int, num_classes: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"ConditionalBatchNorm2d needs at least 1 class, got {num_classes}")
        self.num_classes = num_classes
        self.norm = nn.BatchNorm2d(features, eps=eps, momentum=momentum, affine=False)
        self.gain = nn.Embedding(num_classes, features)
        self.bias = nn.Embedding(num_classes, features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        gain = embed_labels(self.gain, labels)[:, :, None, None]
        bias = embed_labels(self.bias, labels)[:, :, None, None]
        return self.norm(x) * gain + bias


def batch_norm(features: int, num_classes: int) -> nn.Module:
    """Class-conditional batch norm for a conditional generator (num_classes > 0), plain
    batch norm otherwise."""
    return ConditionalBatchNorm2d(features, num_classes) if num_classes else nn.BatchNorm2d(features)


def with_labels(layer: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Run one layer of a generator: class-conditional batch norm also takes the labels."""
    return layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
