"""Rebuild a trained generator from a checkpoint (config + safetensors), no training code."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import checkpoint
from ..config import from_dict
from ..data.imageset import to_float, to_uint8
from ..errors import ConfigError
from ..imageio import to_hwc
from ..models import DataShape, build_models
from ..models.rejection import Critic, best_indices, check_keep_best, critic_uses_labels, pool_labels, pool_size
from ..models.truncation import truncated
from ..rundir import find_checkpoint
from .classes import class_index


@torch.inference_mode()
def generate(net: torch.nn.Module, n: int, seed: int = 0, labels: torch.Tensor | None = None,
             batch_size: int = 500, truncation: float | None = None, progress=None,
             critic: Critic | None = None, keep_best: float | None = None) -> torch.Tensor:
    """`n` images from a generator as uint8 N x C x H x W on the CPU. The noise comes from
    `seed` alone, so the same seed gives the same images at any batch size. `progress`, if
    given, is called as progress(done, n) after each batch.

    `truncation` psi trades variety for fidelity (`models.truncation.truncated`); so does
    `keep_best` share with a `critic` (`models.rejection`): n / share candidates are drawn
    (all held in memory) and the n the critic rates best are kept."""
    if keep_best is not None and keep_best != 1:
        check_keep_best(keep_best)
        if critic is None:
            raise ValueError("keep_best needs a critic (load_critic(run_dir))")
        size = pool_size(n, keep_best)
        candidates = pool_labels(labels, size)
        pool = generate(net, size, seed, candidates, batch_size, truncation, progress)
        return pool[best_indices(critic(pool, candidates), candidates, labels, n)]
    device = next(net.parameters()).device
    z = torch.randn(n, net.latent_dim, generator=torch.Generator().manual_seed(seed))
    z, extra = truncated(net, z, truncation)
    out = [torch.empty(0, net.channels, net.resolution, net.resolution, dtype=torch.uint8)]
    for start in range(0, n, batch_size):
        zb = z[start:start + batch_size].to(device)
        lb = None if labels is None else labels[start:start + batch_size].to(device)
        out.append(to_uint8(net(zb, lb, **extra)).cpu())
        if progress is not None:
            progress(min(start + batch_size, n), n)
    return torch.cat(out)


class TrainedGenerator:
    """A generator ready to sample: `sample(n, seed=..., labels=...)` -> uint8 images."""

    def __init__(self, net: torch.nn.Module, meta: dict, device: torch.device,
                 source: tuple[str | Path, str] | None = None):
        self.net, self.meta, self.device = net.eval().requires_grad_(False), meta, device
        self.source, self._critic = source, None   # (run_dir, checkpoint): where keep_best finds D
        self.config = from_dict(meta["config"])
        self.class_names: list[str] = meta.get("class_names", [])
        self.step: int = meta.get("step", 0)

    @property
    def num_classes(self) -> int:
        return getattr(self.net, "num_classes", 0)

    def class_index(self, cls: int | str) -> int:
        """A class by index or by name ("sneaker"), checked against the run's classes."""
        return class_index(cls, self.num_classes, self.class_names)

    @torch.inference_mode()
    def sample(self, n: int, seed: int = 0, labels: Sequence[int] | None = None,
               batch_size: int = 500, truncation: float | None = None, progress=None,
               keep_best: float | None = None) -> np.ndarray:
        """Generate `n` images as a uint8 N x H x W x C array (C is 1 or 3).

        The same seed gives the same images whatever the batch size.

        Args:
            n: number of images.
            seed: seed of the latent noise.
            labels: class per image (conditional models only); length n. Conditional
                models cycle through the classes when it is not given.
            batch_size: images per forward pass.
            truncation: psi in [0, 2]; lower is closer to the average image, above 1 wider
                than trained (see `generate`).
            progress: called as progress(done, n) after each batch (a progress bar).
            keep_best: share in (0, 1]: draw n / share candidates and keep the n the run's
                discriminator rates best (GANs; see `models.rejection`).

        Example:
            >>> images = ganforge.load("runs/demo").sample(16, seed=1)
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if keep_best is not None:
            check_keep_best(keep_best)
        critic = self.critic() if keep_best is not None and keep_best != 1 else None
        return to_hwc(generate(self.net, n, seed, self._labels(labels, n), batch_size, truncation,
                               progress, critic, keep_best))

    def critic(self) -> Critic:
        """The run's discriminator as a `Critic` (loaded on first use)."""
        if self._critic is None:
            if self.source is None:
                raise ConfigError("this generator was not loaded from a run, so it has no discriminator")
            self._critic = load_critic(*self.source, device=str(self.device))
        return self._critic

    @torch.inference_mode()
    def reconstruct(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Encode and decode uint8 N x C x H x W images (models with an encoder: the VAE),
        using the posterior mean; returns uint8 N x C x H x W."""
        if not hasattr(self.net, "encode"):
            raise ConfigError(f"model {self.config.model.name!r} has no encoder to reconstruct with")
        out = []
        for start in range(0, len(images), batch_size):
            mean, _ = self.net.encode(to_float(images[start:start + batch_size].to(self.device)))
            out.append(to_uint8(self.net(mean)).cpu())
        return torch.cat(out) if out else images[:0].clone()

    def _labels(self, labels, n: int) -> torch.Tensor | None:
        if labels is None:
            # Conditional models without labels: cycle through the classes.
            return torch.arange(n) % self.num_classes if self.num_classes else None
        if self.num_classes == 0:
            raise ConfigError("labels were given but this model is not class-conditional")
        tensor = torch.as_tensor(list(labels), dtype=torch.long)
        if len(tensor) != n:
            raise ConfigError(f"{len(tensor)} labels given for {n} images")
        bad = tensor[(tensor < 0) | (tensor >= self.num_classes)]
        if len(bad):
            raise ConfigError(f"label {int(bad[0])} is outside 0..{self.num_classes - 1}")
        return tensor


def rebuild(run_dir: str | Path, checkpoint_name: str, net_name: str | None = None):
    """Build one network of a run from its checkpoint header and load its weights (the EMA
    copy where there is one). Returns (network, header)."""
    path = find_checkpoint(run_dir, checkpoint_name)
    meta = checkpoint.read_meta(path)
    config = from_dict(meta["config"])
    net_name = net_name or meta.get("sample_net") or "G"
    nets = build_models(config.model, DataShape(**meta["shape"]))
    if net_name not in nets:
        raise ConfigError(f"run {str(run_dir)!r} has no network {net_name!r} (model "
                          f"{config.model.name!r} has {', '.join(nets)})")
    use_ema = meta.get("has_ema") and net_name == meta.get("sample_net")
    prefix = f"ema.{net_name}." if use_ema else f"nets.{net_name}."
    tensors, _ = checkpoint.load(path, prefix)
    nets[net_name].load_state_dict({k[len(prefix):]: v for k, v in tensors.items()})
    return nets[net_name], meta


def load_critic(run_dir: str | Path, checkpoint_name: str = "last", device: str = "cpu") -> Critic:
    """The discriminator of a GAN run as a `Critic` of its samples (for `keep_best`)."""
    net, meta = rebuild(run_dir, checkpoint_name, "D")   # names the run's networks if it has no D
    return Critic(net.to(device), critic_uses_labels(meta))


def load(run_dir: str | Path, checkpoint_name: str = "last", device: str = "cpu"):
    """Load the (EMA) generator of a run: a TrainedGenerator to sample from, for editing
    runs (inpaint, super-resolve, ...) a TrainedEditor to `edit` images with, and for
    translation runs (CycleGAN) a TrainedTranslator to `translate` images with.

    Args:
        run_dir: a run directory written by `ganforge train`.
        checkpoint_name: 'last', 'best', 'step-000500', or a path to a .safetensors file.
        device: where to run it.

    Example:
        >>> model = ganforge.load("runs/demo")
        >>> model.sample(64, seed=0).shape
        (64, 32, 32, 1)
    """
    meta = checkpoint.read_meta(find_checkpoint(run_dir, checkpoint_name))
    if meta.get("sample_net") is None:
        raise ConfigError(f"run {str(run_dir)!r} is not a generative model (its model is "
                          f"{meta['config']['model']['name']!r}); use ganforge classify eval")
    net, meta = rebuild(run_dir, checkpoint_name)
    if hasattr(net, "translate"):
        from .translator import TrainedTranslator
        return TrainedTranslator(net.to(device), meta, torch.device(device))
    if meta["shape"].get("in_channels"):
        from .editor import TrainedEditor
        return TrainedEditor(net.to(device), meta, torch.device(device))
    if not hasattr(net, "latent_dim"):
        raise ConfigError(f"run {str(run_dir)!r} is not a generative model (its model is "
                          f"{meta['config']['model']['name']!r}); use ganforge classify eval")
    return TrainedGenerator(net.to(device), meta, torch.device(device), (run_dir, checkpoint_name))
