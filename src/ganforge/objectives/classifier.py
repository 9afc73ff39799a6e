"""`classifier`: supervised cross-entropy for the CNN classifiers, on real images, on real
images mixed with fresh samples of a frozen conditional generator (`synthetic`), or on those
samples alone (`synthetic_only`: what the Classification Accuracy Score trains on); with
classical augmentation (`shift`, `rotate`, `scale`) and optionally a frozen editing model
applied to a share of the real images (`augment_with`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.rejection import check_keep_best
from ..models.truncation import check_truncation
from .base import OBJECTIVES, Batch, Objective, ObjectiveEntry, Phase, require_nets


# What `ganforge classify train` (and evaluation's cached feature classifier) starts from.
CLASSIFY_DEFAULTS = {"model.name": "cnn", "train.steps": 1500, "log.every": 100}


@dataclass
class ClassifierArgs:
    label_smoothing: float = 0.0
    shift: int = 2          # random translation by up to this many pixels (0: none)
    rotate: float = 0.0     # random rotation by up to this many degrees (0: none)
    scale: float = 0.0      # random zoom by a factor in [1 - scale, 1 + scale] (0: none)
    synthetic: str = ""     # run directory of a class-conditional generator to draw samples from
    synthetic_checkpoint: str = "last"  # which of its checkpoints (its EMA weights)
    synthetic_ratio: float = 1.0        # synthetic images per real image in each batch
    synthetic_only: bool = False        # train on samples alone (the real batch gives only labels)
    synthetic_labels: Literal["balanced", "prior"] = "balanced"  # classes in turn, or the real proportions
    synthetic_truncation: float = 1.0   # truncation psi of the samples (1: none)
    synthetic_keep_best: float = 1.0    # keep this best share of candidates by the run's D (1: all)
    augment_with: str = ""  # run directory of an editing model applied to real images
    augment_checkpoint: str = "last"
    augment_share: float = 0.5          # share of the real images it edits

    def check(self):
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"objective.label_smoothing={self.label_smoothing}: must be in [0, 1)")
        if self.shift < 0:
            raise ConfigError(f"objective.shift={self.shift}: must be >= 0")
        if not 0 <= self.rotate <= 180:
            raise ConfigError(f"objective.rotate={self.rotate}: must be in [0, 180] degrees")
        if not 0 <= self.scale < 1:
            raise ConfigError(f"objective.scale={self.scale}: must be in [0, 1)")
        if not self.synthetic_ratio > 0:
            raise ConfigError(f"objective.synthetic_ratio={self.synthetic_ratio}: must be positive")
        check_truncation(self.synthetic_truncation, "objective.synthetic_truncation")
        if self.synthetic_truncation != 1 and not self.synthetic:
            raise ConfigError("objective.synthetic_truncation truncates the samples of objective.synthetic, "
                              "which is not set")
        check_keep_best(self.synthetic_keep_best, "objective.synthetic_keep_best")
        if self.synthetic_keep_best != 1 and not self.synthetic:
            raise ConfigError("objective.synthetic_keep_best filters the samples of objective.synthetic, "
                              "which is not set")
        if self.synthetic_only and not self.synthetic:
            raise ConfigError("objective.synthetic_only=true needs objective.synthetic (a conditional "
                              "generator run: ganforge classify train --synthetic RUN)")
        if not 0 < self.augment_share <= 1:
            raise ConfigError(f"objective.augment_share={self.augment_share}: must be in (0, 1]")
        if self.synthetic_only and self.augment_with:
            raise ConfigError("objective.augment_with edits real images, and objective.synthetic_only "
                              "trains on none: drop one")


def random_shift(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Translate each image by up to `pixels` in x and y (edge padding), on its device."""
    if pixels == 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, (pixels,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * pixels + 1, (n,), device=images.device)
    dx = torch.randint(0, 2 * pixels + 1, (n,), device=images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def affine(images: torch.Tensor, angle: torch.Tensor, zoom: torch.Tensor) -> torch.Tensor:
    """Rotate image i by angle[i] radians (counter-clockwise as displayed) and zoom it by
    zoom[i] about its centre: bilinear, edge pixels repeated outside."""
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.float(), list(images.shape), align_corners=False)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(images.dtype)


def random_affine(images: torch.Tensor, degrees: float, scale: float) -> torch.Tensor:
    """Rotate each image by up to `degrees` and zoom it by a factor in [1 - scale, 1 + scale]
    (the classical augmentation of digit classifiers), on its device."""
    if degrees == 0 and scale == 0:
        return images
    n = len(images)
    angle = (torch.rand(n, device=images.device) * 2 - 1) * math.radians(degrees)
    zoom = 1 + (torch.rand(n, device=images.device) * 2 - 1) * scale
    return affine(images, angle, zoom)


class ClassifierObjective(Objective):
    sample_net = None

    def __init__(self, args: ClassifierArgs, nets):
        require_nets("classifier", nets, ("C",))
        super().__init__(args, nets)
        self.phases = [Phase("C", "C")]
        # The trainer seeds torch with train.seed before it builds the objective.
        seed = torch.initial_seed()
        self.synthetic = self.augment = None
        if args.synthetic:
            from .synthetic import SyntheticSource
            self.synthetic = SyntheticSource(args.synthetic, args.synthetic_checkpoint,
                                             args.synthetic_labels, seed, args.synthetic_truncation,
                                             args.synthetic_keep_best)
        if args.augment_with:
            from .synthetic import EditAugment
            self.augment = EditAugment(args.augment_with, args.augment_checkpoint,
                                       args.augment_share, seed + 1)

    def check_data(self, shape) -> None:
        for source in (self.synthetic, self.augment):
            if source is not None:
                source.check_data(shape)

    def check_classes(self, class_names: list[str]) -> None:
        """Refuse a generator run whose classes are not the data set's, by name."""
        if self.synthetic is not None:
            self.synthetic.check_classes(class_names)

    def synthetic_count(self, real: int) -> int:
        """Synthetic images in a batch of `real` real images."""
        return real if self.args.synthetic_only else round(self.args.synthetic_ratio * real)

    def mix(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The images and labels the loss sees: real ones (a share edited by `augment_with`),
        then synthetic ones; and how many are synthetic."""
        images, labels = batch.images, batch.labels
        if self.augment is not None:
            images = self.augment(images)
        if self.synthetic is None:
            return images, labels, 0
        n = self.synthetic_count(len(labels))
        if n == 0:
            return images, labels, 0
        fake, fake_labels = self.synthetic.draw(n, labels, images.device)
        fake = fake.to(images.dtype)
        if self.args.synthetic_only:
            return fake, fake_labels, n
        return torch.cat([images, fake]), torch.cat([labels, fake_labels]), n

    def loss(self, phase: str, batch: Batch):
        if batch.labels is None:
            raise ConfigError("the classifier objective needs a labelled data set")
        images, labels, synthetic = self.mix(batch)
        images = random_affine(random_shift(images, self.args.shift), self.args.rotate, self.args.scale)
        logits = self.nets["C"](images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.args.label_smoothing)
        right = (logits.detach().argmax(1) == labels).float()
        values = {"loss_C": loss.detach(), "train_accuracy": right.mean()}
        if synthetic and not self.args.synthetic_only:
            values["synthetic_accuracy"] = right[-synthetic:].mean()
        return loss, values

    def state_dict(self) -> dict:
        """How many draws each frozen run has made (and from which network): resume is exact."""
        state = {}
        if self.synthetic is not None:
            state["synthetic"] = self.synthetic.state_dict()
        if self.augment is not None:
            state["augment"] = self.augment.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.synthetic is not None:
            self.synthetic.load_state_dict(state.get("synthetic", {}))
        if self.augment is not None:
            self.augment.load_state_dict(state.get("augment", {}))


OBJECTIVES.register("classifier")(ObjectiveEntry(
    ClassifierArgs, ClassifierObjective,
    {"lr": 1e-3, "beta1": 0.9, "lr_schedule": "cosine", "ema_decay": 0.0}))
