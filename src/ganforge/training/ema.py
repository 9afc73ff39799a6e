"""Exponential moving average of a network's weights, used for sampling.

Batch-norm running statistics (running_mean, running_var) are averaged with the same decay
as the weights, not copied from the live network. The shadow runs in eval mode, so it
normalises with these statistics, and they must describe the activations of the averaged
weights. The live network's statistics describe its own latest weights, which sit away from
the average while training moves fast (a GAN's G): copying them paired averaged weights with
another network's normalisation. Statistics averaged over the same window as the weights
follow the averaged network (as timm's ModelEmaV2 and BigGAN's EMA do). Every other buffer
is copied: step-driven state (progressive growing's stage and fade-in) must equal the live
network's, and StyleGAN's w_avg is already a moving average (copied, as NVIDIA's code does).
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps `shadow`, an averaged copy of `net`.

    The decay warms up as min(decay, (1 + step) / (10 + step)) so that short runs are not
    dominated by the initial weights. Batch-norm running statistics are averaged like the
    weights; other buffers are copied.

    Args:
        net: the network to average (its weights now are the shadow's start).
        decay: the share of the old average kept at each update once warmed up.
        frozen: names of parameters kept fixed (train.freeze): their average is left as it
            is, so a frozen part of the shadow stays what it was loaded as.

    Example:
        >>> ema = EMA(G, decay=0.999)
        >>> ema.update(G, step)          # after each optimiser step of G
        >>> images = ema.shadow(z)
    """

    def __init__(self, net: nn.Module, decay: float, frozen: set[str] = frozenset()):
        self.decay = decay
        self.shadow = copy.deepcopy(net).eval().requires_grad_(False)
        self._averaged = _running_statistics(self.shadow)
        self._moving = [i for i, (name, _) in enumerate(net.named_parameters()) if name not in frozen]

    @torch.no_grad()
    def update(self, net: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        params, shadow = list(net.parameters()), list(self.shadow.parameters())
        params, shadow = [params[i] for i in self._moving], [shadow[i] for i in self._moving]
        torch._foreach_lerp_(shadow, params, 1.0 - decay)
        for (name, mine), theirs in zip(self.shadow.named_buffers(), net.buffers()):
            if name in self._averaged:
                mine.lerp_(theirs, 1.0 - decay)
            else:
                mine.copy_(theirs)
        for mine, theirs in zip(self.shadow.modules(), net.modules()):
            if hasattr(theirs, "condition_strength"):   # fading labels in: the shadow samples as G trains
                mine.condition_strength = theirs.condition_strength

    @torch.no_grad()
    def restart_from(self, net: nn.Module) -> None:
        """Make the shadow an exact copy of `net` (weights and buffers): where averaging
        starts when EMA is switched on for a run that had none."""
        self.shadow.load_state_dict(net.state_dict())


def _running_statistics(net: nn.Module) -> set[str]:
    """Names of the batch-norm (and tracked instance-norm) running means and variances."""
    names = set()
    for prefix, module in net.named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            names.update(f"{prefix}.{key}" if prefix else key for key in ("running_mean", "running_var"))
    return names
