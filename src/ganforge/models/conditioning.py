"""Class conditioning shared by the architectures: a label embedding joined to the noise
(Mirza & Osindero 2014) for generators, and a projection head (Miyato & Koyama 2018) with
an optional auxiliary classifier (ACGAN, Odena et al. 2017) for discriminators.

Every conditioning module has a `condition_strength` (1: fully conditional, 0: the labels
have no effect), which `set_condition_strength` sets on a whole network: transitional
training (Shahbazi et al. 2023) starts a conditional model unconditionally and fades the
labels in, against the collapse within classes that conditioning causes early on.
It is training state of the objective, not a weight: a saved model samples at 1."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


def embed_labels(embedding: nn.Embedding, labels: torch.Tensor) -> torch.Tensor:
    """Class embeddings of `labels`: integer classes (N,), or class weights (N, classes) as
    floats, whose rows mix the classes' embeddings (for interpolating between classes)."""
    if labels.is_floating_point():
        return labels.to(embedding.weight.dtype) @ embedding.weight
    return embedding(labels)


class LabelToNoise(nn.Module):
    """Concatenates a learned class embedding to z; identity for unconditional models. Size 0
    only where the labels reach G another way (`labels_elsewhere`: its class-conditional norm)."""

    def __init__(self, num_classes: int, dim: int, labels_elsewhere: bool = False):
        super().__init__()
        if num_classes and (dim < 0 or (dim == 0 and not labels_elsewhere)):
            # With no embedding (and no class-conditional norm) G would ignore its labels.
            raise ConfigError(f"model.embed_dim={dim}: a conditional generator needs a class embedding "
                              "of size 1 or more (dcgan: or 0 with model.g_class_norm=true, which gives "
                              "the labels to its batch norm)")
        self.conditional = bool(num_classes)
        self.embed = nn.Embedding(num_classes, dim) if num_classes and dim else None
        self.extra = dim if num_classes else 0
        self.condition_strength = 1.0

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return z
        if labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        if self.embed is None:
            return z
        return torch.cat([z, at_strength(embed_labels(self.embed, labels), self.condition_strength)], dim=1)


class ProjectionHead(nn.Module):
    """Adds <embed(y), phi(x)> to the unconditional logit; `classify(phi)` gives ACGAN's
    auxiliary class logits. Without labels (ACGAN mode) the logit is left as it is."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, features) if num_classes else None
        self.aux = nn.Linear(features, num_classes) if num_classes else None
        self.condition_strength = 1.0
        if self.embed is not None:
            # Small, like D's other weights: an N(0, 1) start made the projection swamp D's
            # logit and a conditional DCGAN on the digits learnt nothing for ~800 steps.
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, logits: torch.Tensor, phi: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.embed is None or labels is None:
            return logits
        return logits + at_strength((self.embed(labels) * phi).sum(1), self.condition_strength)

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
        self.condition_strength = 1.0   # between 0 and 1: the gain and bias move from 1 and 0 toward the class's

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        gain = embed_labels(self.gain, labels)[:, :, None, None]
        bias = embed_labels(self.bias, labels)[:, :, None, None]
        if self.condition_strength != 1:
            gain = 1 + self.condition_strength * (gain - 1)
            bias = self.condition_strength * bias
        return self.norm(x) * gain + bias


class ClassSpread(nn.Module):
    """Appends, as one extra channel, how spread out each image's class is in the batch: the
    standard deviation of the features over the batch's images of the same label (unbiased
    variance, averaged over channels and positions; 0 for a class met once). ProGAN's
    minibatch standard deviation mixes the classes, so a model drawing one shirt again and
    again still shows a batch as varied as real; per class, D sees the collapse within a
    class directly. At strength s the value is s x the class's spread + (1 - s) x the whole
    batch's (the batch as one class); without labels (ACGAN mode) the whole batch's."""

    def __init__(self, num_classes: int):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"ClassSpread needs a conditional model, got {num_classes} classes")
        self.num_classes = num_classes
        self.condition_strength = 1.0
        # The last labelled batch's spread per class and images per class ((K,), (K,)): what
        # the objective's spread matching (objective.spread_match) compares, fakes to reals.
        self.class_spread: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        n, _, h, w = x.shape
        flat, strength = x.float().flatten(1), self.condition_strength
        self.class_spread = None
        if labels is None or strength == 0:
            spread = _batch_spread(flat)
        else:
            self.class_spread = class_spreads(flat, labels, self.num_classes)
            std, counts = self.class_spread
            spread = at_strength(torch.where(counts >= 2, std, torch.zeros_like(std))[labels], strength)
            if strength != 1:
                spread = spread + (1 - strength) * _batch_spread(flat)
        return torch.cat([x, spread.to(x.dtype).view(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


def class_spreads(flat: torch.Tensor, labels: torch.Tensor, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class's feature standard deviation in the batch (unbiased variance averaged over
    features, then its root) and its number of images: (K,), (K,). A class met once or not
    at all has no spread (its value is meaningless; its count says so)."""
    member = F.one_hot(labels, classes).to(flat.dtype).T            # (K, N)
    counts = member.sum(1, keepdim=True)                             # (K, 1)
    sums = member @ flat                                             # (K, D)
    # Sums of squares about the class means from the raw moments: the work stays (K, D), not (N, D).
    squares = (member @ (flat * flat) - sums * sums / counts.clamp(min=1)).clamp(min=0)
    std = (squares / (counts - 1).clamp(min=1) + 1e-8).sqrt().mean(1)
    return std, counts.squeeze(1)


def _batch_spread(flat: torch.Tensor) -> torch.Tensor:
    """Per image, the whole batch's feature standard deviation (the batch as one class) (N,)."""
    std, _ = class_spreads(flat, torch.zeros(len(flat), dtype=torch.long, device=flat.device), 1)
    return (std if len(flat) >= 2 else torch.zeros_like(std)).expand(len(flat))


def at_strength(term: torch.Tensor, strength: float) -> torch.Tensor:
    """A conditioning term at `strength` (left as it is at 1, so exported graphs stay the same)."""
    return term if strength == 1 else strength * term


def set_condition_strength(net: nn.Module, strength: float) -> None:
    """Set how strongly every conditioning module of `net` follows the labels (0 to 1)."""
    for module in net.modules():
        if hasattr(module, "condition_strength"):
            module.condition_strength = float(strength)


def batch_norm(features: int, num_classes: int) -> nn.Module:
    """Class-conditional batch norm for a conditional generator (num_classes > 0), plain
    batch norm otherwise."""
    return ConditionalBatchNorm2d(features, num_classes) if num_classes else nn.BatchNorm2d(features)


def with_labels(layer: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Run one layer of a generator: class-conditional batch norm also takes the labels."""
    return layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
