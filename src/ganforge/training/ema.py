"""Exponential moving average of a network's weights, used for sampling."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps `shadow`, an averaged copy of `net`.

    The decay warms up as min(decay, (1 + step) / (10 + step)) so that short runs are not
    dominated by the random initial weights. Buffers (batch-norm statistics) are copied.
    """

    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        params = [p for p in net.parameters()]
        shadow = [p for p in self.shadow.parameters()]
        torch._foreach_lerp_(shadow, params, 1.0 - decay)
        for mine, theirs in zip(self.shadow.buffers(), net.buffers()):
            mine.copy_(theirs)
