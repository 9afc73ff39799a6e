"""`mlp`: the fully-connected GAN of the original paper and the MNIST tutorials."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import require_at_least_one
from .conditioning import LabelToNoise, ProjectionHead
from .layers import leaky
from .registry import MODELS, Architecture, DataShape, gan_pair


@dataclass
class MLPArgs:
    latent_dim: int = 100
    hidden: int = 128      # units in the hidden layer of G and D
    layers: int = 1        # hidden layers in each network
    embed_dim: int = 10    # conditional models: size of the class embedding joined to z

    def check(self):
        require_at_least_one("model", self, ("latent_dim", "hidden", "layers"))


def _stack(d_in: int, hidden: int, layers: int, d_out: int) -> list[nn.Module]:
    modules, width = [], d_in
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), leaky()]
        width = hidden
    return modules + [nn.Linear(width, d_out)]


class Generator(nn.Module):
    def __init__(self, args: MLPArgs, shape: DataShape):
        super().__init__()
        self.latent_dim, self.resolution, self.channels = args.latent_dim, shape.resolution, shape.channels
        self.num_classes = shape.num_classes
        self.condition = LabelToNoise(shape.num_classes, args.embed_dim)
        self.net = nn.Sequential(*_stack(args.latent_dim + self.condition.extra, args.hidden, args.layers,
                                         shape.channels * shape.resolution ** 2), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = self.condition(z.flatten(1), labels)
        return self.net(z).view(-1, self.channels, self.resolution, self.resolution)


class Discriminator(nn.Module):
    def __init__(self, args: MLPArgs, shape: DataShape):
        super().__init__()
        stack = _stack(shape.channels * shape.resolution ** 2, args.hidden, args.layers, 1)
        self.body, self.final = nn.Sequential(*stack[:-1]), stack[-1]
        self.num_classes = shape.num_classes
        self.project = ProjectionHead(shape.num_classes, args.hidden)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                with_classes: bool = False):
        """Logits (N,); with `with_classes`, also ACGAN class logits (N, classes)."""
        phi = self.body(x.flatten(1))
        logits = self.project(self.final(phi).flatten(), phi, labels)
        return (logits, self.project.classify(phi)) if with_classes else logits


build = gan_pair(Generator, Discriminator)


MODELS.register("mlp")(Architecture(MLPArgs, build, None,
                                    summary="fully-connected GAN (one hidden layer of 128 by default)"))
