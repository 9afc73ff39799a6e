"""The truncation trick (Brock et al. 2019; Karras et al. 2019): samples nearer the centre of
the latent distribution are more typical and less varied. One rule for every generator, so
sampling, evaluation and synthetic training data truncate the same way."""
from __future__ import annotations

import torch

from ..errors import ConfigError


def check_truncation(psi: float, name: str = "truncation") -> None:
    if not 0 <= psi <= 1:
        raise ConfigError(f"{name}={psi}: must be in [0, 1] (1 is no truncation)")


def truncated(net: torch.nn.Module, z: torch.Tensor, psi: float | None) -> tuple[torch.Tensor, dict]:
    """The noise and extra forward arguments of `net` for truncation `psi` (None or 1: none):
    style-based generators move w towards their average w inside (psi 0 gives the mean
    image); the others scale z towards its mean 0 by psi, the same idea in z space.

    Example:
        >>> z, extra = truncated(G, torch.randn(16, G.latent_dim), 0.7)
        >>> images = G(z, labels, **extra)
    """
    if psi is None or psi == 1:
        return z, {}
    check_truncation(psi)
    if getattr(net, "supports_truncation", False):
        return z, {"truncation": psi}
    return z * psi, {}
