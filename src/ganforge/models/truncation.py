"""The truncation trick (Brock et al. 2019; Karras et al. 2019): samples nearer the centre of
the latent distribution are more typical and less varied. One rule for every generator, so
sampling, evaluation and synthetic training data truncate the same way. Psi above 1 moves the
other way, away from the centre (more varied, less typical): for a generator that draws each
class narrower than the data (README "Sampling wider than trained")."""
from __future__ import annotations

import torch

from ..errors import ConfigError


MAX_PSI = 2.0   # beyond twice the latent's spread a generator is far outside what it was trained on


def check_truncation(psi: float, name: str = "truncation") -> None:
    if not 0 <= psi <= MAX_PSI:
        raise ConfigError(f"{name}={psi}: must be in [0, {MAX_PSI:g}] (1 is no truncation, below 1 more "
                          f"typical, above 1 more varied)")


def truncated(net: torch.nn.Module, z: torch.Tensor, psi: float | None) -> tuple[torch.Tensor, dict]:
    """The noise and extra forward arguments of `net` for truncation `psi` (None or 1: none):
    style-based generators move w towards their average w inside (psi 0 gives the mean
    image); the others scale z towards its mean 0 by psi, the same idea in z space. Above 1
    both extrapolate: w away from its average, z scaled up (a wider latent).

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
