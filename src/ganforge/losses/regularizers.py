"""Discriminator regularisers as pure functions.

The penalties return a scalar tensor that the caller adds (weighted) to D's loss; they never
call ``backward`` or step an optimiser. They differentiate D with ``create_graph=True``, so
the penalty back-propagates into D's parameters. D is called as ``D(x, labels)``.

Penalties that differentiate D per sample assume D treats samples independently (no
batch-norm in train mode in the critic, as Gulrajani et al. 2017 advise).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import ConfigError

SPECTRAL_NORM_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def _input_grad(D: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """d(sum of D(x, labels))/dx, with the graph kept for a second differentiation."""
    out = D(x, labels)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     labels: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): mean over the batch of (||grad_x D(x_hat)||_2 - 1)^2.

    x_hat = eps * real + (1 - eps) * fake, with eps ~ U(0, 1) drawn per sample (shape
    N x 1 x 1 x 1 for images) from ``generator`` if given; ``fake`` is detached. The caller
    multiplies by lambda (``GANLoss.gradient_penalty``, 10 in the paper) and adds it to D's loss.
    """
    real, fake = real.detach(), fake.detach()
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake "
                         f"{tuple(fake.shape)} differ in shape")
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad = _input_grad(D, x_hat, labels)
    norm = torch.linalg.vector_norm(grad.flatten(1), ord=2, dim=1)
    return (norm - 1).pow(2).mean()


def r1_penalty(D: nn.Module, real: torch.Tensor,
               labels: torch.Tensor | None = None) -> torch.Tensor:
    """R1 penalty (Mescheder et al. 2018): mean over the batch of ||grad_x D(x)||_2^2 on reals.

    The caller multiplies by gamma / 2 and adds it to D's loss. With lazy regularisation
    (StyleGAN2: apply it only every k D steps) multiply by k as well, i.e. gamma / 2 * k,
    so that its average strength is unchanged.
    """
    x = real.detach().requires_grad_(True)
    grad = _input_grad(D, x, labels)
    return grad.flatten(1).pow(2).sum(1).mean()


def add_spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every Conv2d, ConvTranspose2d, Linear and
    Embedding weight in ``module`` (itself included), in place, with the maintained
    ``torch.nn.utils.parametrizations.spectral_norm``. Layers already parametrised on ``weight``
    are left as they are, so calling it twice is harmless. Returns ``module``.

    The power iteration advances on each forward in train mode; in eval mode the last
    estimate is used.
    """
    layers = [m for m in module.modules() if isinstance(m, SPECTRAL_NORM_LAYERS)]
    unknown = [name for name, m in module.named_modules() if not isinstance(m, SPECTRAL_NORM_LAYERS)
               and isinstance(getattr(m, "weight", None), nn.Parameter) and m.weight.dim() >= 2]
    if unknown:
        raise ConfigError(f"spectral norm (objective.spectral_norm): layers {', '.join(unknown[:3])}{' ...' if len(unknown) > 3 else ''} "
                          f"({type(module.get_submodule(unknown[0])).__name__}) are not plain conv/linear "
                          f"layers (e.g. equalised learning rate); this model does not take spectral norm")
    for layer in layers:
        if not parametrize.is_parametrized(layer, "weight"):
            spectral_norm(layer, "weight", n_power_iterations=n_power_iterations)
    return module


def clip_weights_(module: nn.Module, c: float) -> nn.Module:
    """WGAN weight clipping (Arjovsky et al. 2017): clamp every parameter of ``module`` to
    [-c, c] in place, without recording gradients. Call it after each D step. Returns ``module``."""
    if not c > 0:
        raise ConfigError(f"clip c={c}: must be positive")
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)
    return module
