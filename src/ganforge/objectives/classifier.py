"""`classifier`: supervised cross-entropy for the CNN classifiers."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import OBJECTIVES, Batch, Objective, ObjectiveEntry, Phase, require_nets


# What `ganforge classify train` (and evaluation's cached feature classifier) starts from.
CLASSIFY_DEFAULTS = {"model.name": "cnn", "train.steps": 1500, "log.every": 100}


@dataclass
class ClassifierArgs:
    label_smoothing: float = 0.0
    shift: int = 2          # random translation by up to this many pixels (0: none)

    def check(self):
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"objective.label_smoothing={self.label_smoothing}: must be in [0, 1)")
        if self.shift < 0:
            raise ConfigError(f"objective.shift={self.shift}: must be >= 0")


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


class ClassifierObjective(Objective):
    sample_net = None

    def __init__(self, args: ClassifierArgs, nets):
        require_nets("classifier", nets, ("C",))
        super().__init__(args, nets)
        self.phases = [Phase("C", "C")]

    def loss(self, phase: str, batch: Batch):
        if batch.labels is None:
            raise ConfigError("the classifier objective needs a labelled data set")
        logits = self.nets["C"](random_shift(batch.images, self.args.shift))
        loss = F.cross_entropy(logits, batch.labels, label_smoothing=self.args.label_smoothing)
        accuracy = (logits.detach().argmax(1) == batch.labels).float().mean()
        return loss, {"loss_C": loss.detach(), "train_accuracy": accuracy}


OBJECTIVES.register("classifier")(ObjectiveEntry(
    ClassifierArgs, ClassifierObjective,
    {"lr": 1e-3, "beta1": 0.9, "lr_schedule": "cosine", "ema_decay": 0.0}))
