"""The contract between an objective and the training loop.

An objective declares phases; a phase names the network it updates, how many times per
step it runs and at what step interval. The loop draws batches, computes the phase's
loss, back-propagates and steps that network's optimiser. It knows no architecture and
no loss, so a new GAN variant, a VAE or a translation model changes no line of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..config import ObjectiveConfig, check_args
from ..data.imageset import to_uint8
from ..errors import ConfigError
from ..registry import Registry


@dataclass(frozen=True)
class Phase:
    name: str                          # e.g. "D", "G", "D_reg"
    net: str                           # the network whose optimiser steps
    repeat: int = 1                    # runs per training step (e.g. n critic steps)
    every: int = 1                     # run on steps divisible by this (lazy regularisation)
    fresh_batch: bool = True           # draw a new real batch for each run
    graph_of: tuple[str, ...] = ()     # other networks that must record autograd graphs


@dataclass
class Batch:
    """What one draw of the data gives an objective; each objective reads the fields it needs.

    Generation reads `images` (and `labels`); image-to-image objectives read `source` (the
    model's input: a degraded copy of `images`, or the A side of a real pair) and predict
    `images`; inpainting also reads `mask`; object replacement also `region_labels`."""

    images: torch.Tensor               # float in [-1, 1], N x C x H x W (the target of editing models)
    labels: torch.Tensor | None = None  # class per image
    source: torch.Tensor | None = None  # float N x C' x H/s x W/s: the model's input image
                                        # (unpaired translation: domain A, unaligned with `images`, domain B)
    source_labels: torch.Tensor | None = None  # unpaired translation: domain A's class per image
    mask: torch.Tensor | None = None    # float N x 1 x H x W, 1 = hole
    region_labels: torch.Tensor | None = None  # class asked for inside the hole, per image
    regions: torch.Tensor | None = None  # long N x H x W: an instance id per pixel (-1: none)
    region_classes: torch.Tensor | None = None  # long N x R: the class of each instance id


class Objective:
    """Base class: subclasses set `phases` and implement `loss`."""

    phases: list[Phase]
    sample_net: str | None = "G"       # the network sampled from (through its EMA); None: none
    double_backward: bool = False      # a loss differentiates a gradient (penalties): no torch.compile
    samples_from_noise: bool = True    # sample_net draws images from latents (not from images)

    def __init__(self, args, nets: dict[str, nn.Module]):
        self.args, self.nets = args, nets

    def use_nets(self, nets: dict[str, nn.Module]) -> None:
        """Train through these (e.g. DistributedDataParallel-wrapped) networks from now on."""
        self.nets = nets

    def loss(self, phase: str, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar to minimise in `phase`, and detached values to log."""
        raise NotImplementedError

    def check_data(self, shape) -> None:
        """Refuse data the networks cannot be trained on (before the run directory is made)."""

    def check_classes(self, class_names: list[str]) -> None:
        """Refuse a data set whose class names do not fit what the objective draws on (e.g. a
        generator run it takes samples from), before the run directory is made."""

    def after_step(self, phase: str) -> None:
        """Called after each optimiser step of `phase` (e.g. WGAN weight clipping)."""

    def start_notes(self, steps: int) -> list[str]:
        """Lines the run prints when it starts, about what this objective will do in `steps`
        steps (e.g. a schedule the run ends before finishing)."""
        return []

    def strengthen(self, within_classes: bool = False) -> str | None:
        """Raise the defences against collapse (augmentation, regulariser weight; against
        alike samples of one class, `within_classes`, what spreads them); returns what was
        done, or None when the objective has nothing to raise."""
        return None

    def relax(self) -> str | None:
        """Lower what flattens D (regulariser weight) when its verdicts on real and fake images
        stay alike; returns what was done, or None when the objective has nothing to lower."""
        return None

    # Previews. The default draws fixed latents (GANs, the VAE's decoder); image-to-image
    # objectives override these with fixed inputs drawn from the data.
    def preview_inputs(self, net: nn.Module, n: int, seed: int, draw: Callable[[int], Batch]):
        """What every preview grid of the run is made from, fixed at the start (a resumed
        run draws the same). `draw(k)` gives k fixed data items, for objectives that edit."""
        classes = getattr(net, "num_classes", 0)
        labels = torch.arange(classes).repeat_interleave(max(1, n // classes)) if classes else None
        count = n if labels is None else len(labels)
        z = torch.randn(count, net.latent_dim, generator=torch.Generator().manual_seed(seed))
        return z, labels

    @torch.no_grad()
    def preview(self, net: nn.Module, fixed) -> tuple[torch.Tensor, int | None]:
        """uint8 N x C x H x W preview images from `fixed`, and the images per grid row
        (None: a square grid). For conditional models, one row per class."""
        z, labels = fixed
        device = next(net.parameters()).device
        labels = None if labels is None else labels.to(device)
        images = to_uint8(net(z.to(device), labels))
        return images, (len(labels) // net.num_classes if labels is not None else None)

    def state_dict(self) -> dict:
        """JSON-able state that must survive a resume (e.g. the adaptive augmentation p)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensor state that must survive a resume, this rank's own (e.g. CycleGAN's pools of
        earlier fakes); every rank's is checkpointed. Same keys and shapes on every rank."""
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        """Take this rank's `state_tensors()` back (absent keys: checkpoints without them)."""


def require_nets(objective: str, nets: dict[str, nn.Module], names: tuple[str, ...]) -> None:
    """Fail clearly when a model does not build the networks an objective trains."""
    missing = [n for n in names if n not in nets]
    if missing:
        raise ConfigError(f"objective {objective!r} needs networks {', '.join(names)}, but the "
                          f"model builds {', '.join(nets)}; pick a matching model or objective.name")


@dataclass(frozen=True)
class ObjectiveEntry:
    """A registered objective: its options dataclass, its class, and the `train.*` defaults
    it needs (a classifier wants another learning rate than a GAN); the user's keys win."""

    args: type
    build: Callable[..., Objective]
    train_defaults: dict = field(default_factory=dict)


OBJECTIVES: Registry[ObjectiveEntry] = Registry("objective")


def objective_args(config: ObjectiveConfig):
    args = check_args(OBJECTIVES.get(config.name).args, config.args, "objective.")
    if hasattr(args, "check"):
        args.check()
    return args


def build_objective(config: ObjectiveConfig, nets: dict[str, nn.Module]) -> Objective:
    return OBJECTIVES.get(config.name).build(objective_args(config), nets)
