"""Keep the samples the discriminator rates best: discriminator rejection sampling (Azadi et al.
2019) in its top-share form. Draw n / share candidates, score each with the run's own
discriminator, keep the n best (within each class for conditional models, so the classes keep
their counts). A discriminator with R1 is a smooth judge of realism, so this buys precision
for little recall; without R1 it buys little (README, "Keeping the best samples"). One rule for
sampling, evaluation and synthetic training data."""
from __future__ import annotations

import math

import torch

from ..data.imageset import to_float
from ..errors import ConfigError


def check_keep_best(share: float, name: str = "keep_best") -> None:
    if not 0 < share <= 1:
        raise ConfigError(f"{name}={share}: must be in (0, 1] (the share of candidates kept; 1 keeps all)")


def pool_size(n: int, share: float) -> int:
    """How many candidates to draw so that the best `share` of them are `n` images."""
    return max(n, math.ceil(n / share - 1e-9))


def pool_labels(labels: torch.Tensor | None, size: int) -> torch.Tensor | None:
    """The candidates' labels: the requested ones, repeated, so that every class has at least as
    many candidates as it has requested images (and about 1/share times as many)."""
    if labels is None or len(labels) == 0:
        return labels
    return labels[torch.arange(size) % len(labels)]


def best_indices(scores: torch.Tensor, candidates: torch.Tensor | None, labels: torch.Tensor | None,
                 n: int) -> torch.Tensor:
    """Indices of the kept candidates, one per requested image: the `n` highest `scores`
    (in the candidates' order), or for requested `labels` the best candidates of each
    label, placed where that label was asked for.

    Example:
        >>> best_indices(torch.tensor([0.1, 0.9, 0.5]), None, None, 2).tolist()
        [1, 2]
    """
    if labels is None:
        return scores.topk(n).indices.sort().values
    chosen = torch.empty(n, dtype=torch.long)
    for label in labels.unique():
        wanted = (labels == label).nonzero().flatten()
        pool = (candidates == label).nonzero().flatten()
        best = pool[scores[pool].topk(len(wanted)).indices.sort().values]
        chosen[wanted] = best
    return chosen


class Critic:
    """A trained discriminator as a judge of images (uint8, or float in [-1, 1]):
    `critic(images, labels)` gives one realism score (the logit) per image. `use_labels` is False for runs whose discriminator
    is trained without labels (ACGAN mode, `objective.acgan_weight`): its plain logit judges.

    Example:
        >>> critic = Critic(nets["D"], use_labels=True)
        >>> critic(images, labels).shape
        torch.Size([16])
    """

    def __init__(self, net: torch.nn.Module, use_labels: bool = True, batch_size: int = 500):
        self.net, self.use_labels, self.batch_size = net.eval().requires_grad_(False), use_labels, batch_size

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        device = next(self.net.parameters()).device
        scores = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size].to(device)
            batch = to_float(batch) if batch.dtype == torch.uint8 else batch.float()
            given = labels[start:start + self.batch_size].to(device) \
                if labels is not None and self.use_labels else None
            out = self.net(batch, given)
            scores.append((out[0] if isinstance(out, tuple) else out).float().flatten().cpu())
        return torch.cat(scores) if scores else torch.empty(0)


def critic_uses_labels(meta: dict) -> bool:
    """Whether a run's discriminator was trained with the labels (from its checkpoint header)."""
    return bool(meta["shape"].get("num_classes")) and not meta["config"]["objective"].get("acgan_weight")
