"""Images made by other runs, for training a classifier: fresh samples of a frozen
class-conditional generator (`SyntheticSource`) and a frozen editing model applied to real
images (`EditAugment`).

Both networks are rebuilt from their run's checkpoint with `models` and `checkpoint` alone
(the objective sits below inference and training and imports neither), kept in eval mode
with `requires_grad` off, outside every optimiser and outside the classifier's checkpoint:
the classifier's config names the run, its weights stay where they are. Draw k of a run
comes from a generator seeded from (seed, rank, k), and k is part of the objective's state
in the classifier's checkpoints, so a resumed run draws exactly the images an uninterrupted
one would.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .. import checkpoint, distributed
from ..config import from_dict
from ..data.degrade import parse_degradation
from ..data.imageset import to_float, to_uint8
from ..errors import ConfigError
from ..models import DataShape, build_models
from ..models.rejection import Critic, best_indices, critic_uses_labels, pool_labels, pool_size
from ..models.truncation import truncated
from ..rundir import find_checkpoint
from .image2image import run_generator

SEED_MASK = 0x7FFF_FFFF_FFFF_FFFF


def load_frozen(run_dir: str | Path, checkpoint_name: str, key: str, net_name: str | None = None):
    """The sampled network of a run (its EMA copy where it has one), or its network
    `net_name`, frozen, and the header.

    `key` names the config key that gave the run, for error messages.

    Example:
        >>> net, meta = load_frozen("runs/cgan", "last", "objective.synthetic")
        >>> net.training, any(p.requires_grad for p in net.parameters())
        (False, False)
    """
    path = find_checkpoint(run_dir, checkpoint_name)
    meta = checkpoint.read_meta(path)
    name = meta.get("sample_net")
    if name is None:
        raise ConfigError(f"{key}={str(run_dir)!r}: this run trains no image model (model "
                          f"{meta['config']['model']['name']!r}); give a generator or editing run")
    config = from_dict(meta["config"])
    nets = build_models(config.model, DataShape(**meta["shape"]))
    if net_name is not None and net_name not in nets:
        raise ConfigError(f"{key}={str(run_dir)!r}: this run has no network {net_name!r} (model "
                          f"{config.model.name!r} has {', '.join(nets)})")
    own = net_name is None or net_name == name
    name = name if net_name is None else net_name
    prefix = f"ema.{name}." if meta.get("has_ema") and own else f"nets.{name}."
    tensors, _ = checkpoint.load(path, prefix)
    net = nets[name]
    net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()})
    return net.eval().requires_grad_(False), meta


def _generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator of draw `index` on this rank (device-independent numbers)."""
    return torch.Generator().manual_seed(hash((seed, distributed.rank(), index)) & SEED_MASK)


def _quantise(images: torch.Tensor) -> torch.Tensor:
    """The images a saved sample would be: clamped and rounded to 8 bits, back in [-1, 1]."""
    return to_float(to_uint8(images.clamp(-1, 1)))


class _Frozen:
    """A frozen network of another run, its header, and the count of draws made from it."""

    key = ""

    def __init__(self, run_dir: str, checkpoint_name: str, seed: int):
        self.run_dir, self.checkpoint_name, self.seed = str(run_dir), checkpoint_name, seed
        self.net, self.meta = load_frozen(run_dir, checkpoint_name, self.key)
        self.class_names: list[str] = list(self.meta.get("class_names", []))
        self.step: int = self.meta.get("step", 0)
        self.draws = 0

    def _on(self, device: torch.device) -> torch.nn.Module:
        if next(self.net.parameters()).device != device:
            self.net.to(device)
        return self.net

    def state_dict(self) -> dict:
        return {"run": self.run_dir, "checkpoint": self.checkpoint_name, "step": self.step,
                "seed": self.seed, "draws": self.draws}

    def load_state_dict(self, state: dict) -> None:
        """Take the saved counters back; a run that now has another network is refused (its
        draws would be other images than the interrupted run's)."""
        if not state:
            return
        if (state["run"], state["checkpoint"]) != (self.run_dir, self.checkpoint_name):
            raise ConfigError(f"--resume: {self.key} was {state['run']!r} (checkpoint "
                              f"{state['checkpoint']!r}) in this run, now {self.run_dir!r} "
                              f"({self.checkpoint_name!r}); a run continues with the images it started with")
        if state["step"] != self.step:
            raise ConfigError(f"--resume: {self.key}={self.run_dir!r}: its checkpoint "
                              f"{self.checkpoint_name!r} is at step {self.step} now, at step "
                              f"{state['step']} when this run was checkpointed; resuming would draw "
                              f"from another network (keep a copy of that checkpoint and name it)")
        self.seed, self.draws = state["seed"], state["draws"]


class SyntheticSource(_Frozen):
    """Fresh labelled samples of a frozen class-conditional generator.

    Labels are `balanced` (the classes in turn, continuing from the last draw, so every run of
    K consecutive synthetic images holds each class once) or `prior` (each the label of a real
    image of the batch drawn at random: the real class proportions). Images are rounded to
    8 bits as a saved sample would be, and generated in fp32 whatever the classifier's precision.

    Example:
        >>> source = SyntheticSource("runs/cgan", "last", "balanced", seed=0)
        >>> images, labels = source.draw(20, real_labels, torch.device("cpu"))
        >>> labels.bincount().tolist()
        [2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    """

    key = "objective.synthetic"

    def __init__(self, run_dir: str, checkpoint_name: str, labels: str, seed: int, truncation: float = 1.0,
                 keep_best: float = 1.0):
        super().__init__(run_dir, checkpoint_name, seed)
        self.labels, self.truncation, self.keep_best = labels, truncation, keep_best
        self.critic = None
        if keep_best != 1:   # the run's discriminator keeps the best share of candidates
            critic, _ = load_frozen(run_dir, checkpoint_name, "objective.synthetic_keep_best", "D")
            self.critic = Critic(critic, critic_uses_labels(self.meta))
        self.num_classes = getattr(self.net, "num_classes", 0)
        if not hasattr(self.net, "latent_dim") or self.meta["shape"].get("in_channels"):
            raise ConfigError(f"{self.key}={run_dir!r} is not a generator of images from noise "
                              f"(it edits or translates images); give a conditional GAN run")
        if self.num_classes < 2:
            raise ConfigError(f"{self.key}={run_dir!r} is not class-conditional, so its samples "
                              f"have no labels; train one with --set model.conditional=true "
                              f"(e.g. --preset cgan-mnist)")

    def check_data(self, shape) -> None:
        """The samples must have the classifier's size, channels and number of classes."""
        mine = self.meta["shape"]
        for what, theirs, ours in (("resolution", mine["resolution"], shape.resolution),
                                   ("channels", mine["channels"], shape.channels),
                                   ("classes", self.num_classes, shape.num_classes)):
            if theirs != ours:
                raise ConfigError(f"{self.key}={self.run_dir!r} makes images with {what} {theirs}, "
                                  f"the classifier's data has {ours}; train both on the same data set "
                                  f"(data.resolution, data.channels)")

    def check_classes(self, class_names: list[str]) -> None:
        """Class k of the generator must be class k of the classifier's data, by name."""
        if list(class_names) != self.class_names:
            raise ConfigError(f"{self.key}={self.run_dir!r} was trained on classes "
                              f"{', '.join(self.class_names)}; the classifier's data set has "
                              f"{', '.join(class_names)}: the labels would not mean the same")

    @torch.no_grad()
    def draw(self, n: int, real_labels: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` float images in [-1, 1] and their labels, on `device` (draw `draws` of this rank)."""
        generator = _generator(self.seed, self.draws)
        if self.labels == "prior":
            pick = torch.randint(len(real_labels), (n,), generator=generator)
            labels = real_labels.cpu()[pick]
        else:
            labels = (self.draws * n + torch.arange(n)) % self.num_classes
        size = pool_size(n, self.keep_best)
        candidates = pool_labels(labels, size)
        z = torch.randn(size, self.net.latent_dim, generator=generator)
        self.draws += 1
        net = self._on(device)
        z, extra = truncated(net, z, self.truncation)
        with torch.autocast(device.type, enabled=False):
            images = _quantise(net(z.to(device), candidates.to(device), **extra).float())
            if self.critic is not None:
                self.critic.net.to(device)
                images = images[best_indices(self.critic(images, candidates), candidates, labels, n).to(device)]
        return images, labels.to(device)


class EditAugment(_Frozen):
    """A frozen editing model applied, as augmentation, to a share of the real images.

    Each chosen image is degraded by the editing run's own degradation (data.degrade:
    noise:25, mask:free-form, downscale:2, ...) and restored by its model: a re-drawn copy
    of the real image, with the real image's label. Runs the model cannot take a real image
    into (paired data such as pix2pix, region masks, class-conditional replacement,
    translation between domains) are refused.

    Example:
        >>> augment = EditAugment("runs/inpaint", "last", share=0.5, seed=0)
        >>> images = augment(batch_images)   # about half of them inpainted in a random hole
    """

    key = "objective.augment_with"

    def __init__(self, run_dir: str, checkpoint_name: str, share: float, seed: int):
        super().__init__(run_dir, checkpoint_name, seed)
        self.share = share
        config, shape = self.meta["config"], self.meta["shape"]
        task, spec = config.get("task", "generate"), config["data"].get("degrade") or ""
        if not shape.get("in_channels") or config["model"]["name"] == "cyclegan":
            raise ConfigError(f"{self.key}={run_dir!r} is a {task} run with model "
                              f"{config['model']['name']!r}; give an editing run (denoise, enhance, "
                              f"inpaint, super-resolve, colorize)")
        if not spec:
            raise ConfigError(f"{self.key}={run_dir!r} learnt from real pairs ({config['data']['name']}), "
                              f"so nothing makes its input from a real image; give a run trained "
                              f"with data.degrade (denoise, enhance, inpaint, super-resolve, colorize)")
        if getattr(self.net, "num_classes", 0) or "mask:region" in spec:
            raise ConfigError(f"{self.key}={run_dir!r} replaces objects by class ({task}); "
                              f"that changes what the image shows, not only how")
        self.degradation = parse_degradation(spec)
        self.channels, self.scale = shape["channels"], shape.get("scale", 1)

    def check_data(self, shape) -> None:
        if self.channels != shape.channels:
            raise ConfigError(f"{self.key}={self.run_dir!r} makes {self.channels}-channel images, "
                              f"the classifier's data has {shape.channels} (data.channels)")
        if shape.resolution % self.scale:
            raise ConfigError(f"{self.key}={self.run_dir!r} upscales by {self.scale}: data.resolution="
                              f"{shape.resolution} must be a multiple of it")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """`images` (float N x C x H x W in [-1, 1]) with a random `share` of them edited."""
        generator = _generator(self.seed, self.draws)
        self.draws += 1
        chosen = (torch.rand(len(images), generator=generator) < self.share).nonzero().flatten()
        if not len(chosen):
            return images
        clean = images[chosen.to(images.device)].float()
        degraded = self.degradation(clean, generator)
        net = self._on(images.device)
        with torch.autocast(images.device.type, enabled=False):
            edited = _run_padded(net, degraded.source, degraded.mask)
        out = images.clone()
        out[chosen.to(images.device)] = _quantise(edited).to(images.dtype)
        return out


def _run_padded(net: torch.nn.Module, source: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The editing model on inputs padded (replicate, bottom and right) to a multiple of its
    stride, cropped back: the real images need not have its training size."""
    stride = getattr(net, "stride", 1)
    height, width = source.shape[-2:]
    pad = (0, -width % stride, 0, -height % stride)
    if any(pad):
        source = F.pad(source, pad, mode="replicate")
        mask = None if mask is None else F.pad(mask, pad, mode="replicate")
    out = run_generator(net, source, mask)
    factor = out.shape[-2] // source.shape[-2]  # the model's upscaling (super-resolution)
    return out[..., :height * factor, :width * factor]
