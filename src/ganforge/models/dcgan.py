"""`dcgan`: the DCGAN of Radford et al. (2016): transposed-conv generator, strided-conv
discriminator, batch norm, ReLU / LeakyReLU(0.2), tanh output, logits out of D."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, require_at_least_one
from .conditioning import ClassSpread, LabelToNoise, ProjectionHead, batch_norm, with_labels
from .layers import MinibatchStd, PackWithPartners, init_dcgan, leaky
from .registry import MODELS, Architecture, DataShape, gan_pair

RESOLUTIONS = (16, 28, 32, 64, 128)


@dataclass
class DCGANArgs:
    latent_dim: int = 100
    g_width: int = 64      # ngf: generator channels at the last hidden layer (doubling towards 4x4)
    d_width: int = 64      # ndf: discriminator channels at the first layer
    max_width: int = 1024  # cap on channels at the coarsest layers
    embed_dim: int = 50    # conditional models: size of the class embedding joined to z (0 with
                           # g_class_norm: the labels reach G through its batch norm alone)
    d_batchnorm: bool = True  # batch norm in D (turn off for gradient penalties, as WGAN-GP does)
    g_class_norm: bool = False  # conditional models: class-conditional batch norm in G (a gain and
                                # bias per class, as SNGAN/BigGAN), besides the embedding joined to z
    d_mbstd: int = 0       # minibatch standard deviation before D's last layer (ProGAN): group
                           # size, 0 off; lets D see a batch with too little variety
    d_class_spread: bool = False  # conditional models: each class's spread in the batch as a channel
                                  # before D's last layer, so D sees collapse within a class
    d_pack: int = 1        # PacGAN: D judges each image stacked with d_pack - 1 others of its class
                           # in the batch (of the batch if unconditional); 1 off

    def check(self):
        require_at_least_one("model", self, ("latent_dim", "g_width", "d_width", "max_width"))
        if self.d_mbstd < 0 or self.d_mbstd == 1:
            raise ConfigError(f"model.d_mbstd={self.d_mbstd}: a group size of at least 2 (or 0: off)")
        if self.d_pack < 1:
            raise ConfigError(f"model.d_pack={self.d_pack}: images per pack, at least 1 (1: off)")


def _plan(resolution: int) -> tuple[int, int]:
    """Start size (4, or 7 for 28-pixel images) and the number of 2x up/down-samplings."""
    base = 7 if resolution % 7 == 0 else 4
    doublings = int(round(math.log2(resolution / base)))
    if base * 2 ** doublings != resolution:
        raise ConfigError(f"data.resolution={resolution}: dcgan supports {RESOLUTIONS}")
    return base, doublings


class Generator(nn.Module):
    def __init__(self, args: DCGANArgs, shape: DataShape):
        super().__init__()
        self.latent_dim, self.resolution, self.channels = args.latent_dim, shape.resolution, shape.channels
        self.num_classes = shape.num_classes
        self.condition = LabelToNoise(shape.num_classes, args.embed_dim, labels_elsewhere=args.g_class_norm)
        base, n = _plan(shape.resolution)
        widths = [min(args.g_width * 2 ** (n - 1 - i), args.max_width) for i in range(n)]
        z_in = args.latent_dim + self.condition.extra
        norm_classes = shape.num_classes if args.g_class_norm else 0
        layers = [nn.ConvTranspose2d(z_in, widths[0], base, 1, 0, bias=False),
                  batch_norm(widths[0], norm_classes), nn.ReLU(inplace=True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                       batch_norm(c_out, norm_classes), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], shape.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = self.condition(z.flatten(1), labels)
        h = z.view(z.shape[0], -1, 1, 1)
        for layer in self.net:   # class-conditional batch norm layers also take the labels
            h = with_labels(layer, h, labels)
        return h


class Discriminator(nn.Module):
    def __init__(self, args: DCGANArgs, shape: DataShape):
        super().__init__()
        base, n = _plan(shape.resolution)
        widths = [min(args.d_width * 2 ** i, args.max_width) for i in range(n)]
        self.pack = PackWithPartners(args.d_pack, shape.num_classes) if args.d_pack > 1 else None
        layers = [nn.Conv2d(shape.channels * args.d_pack, widths[0], 4, 2, 1, bias=False), leaky()]
        for c_in, c_out in zip(widths, widths[1:]):
            norm = [nn.BatchNorm2d(c_out)] if args.d_batchnorm else []
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not args.d_batchnorm), *norm, leaky()]
        self.body = nn.Sequential(*layers)
        self.mbstd = MinibatchStd(args.d_mbstd) if args.d_mbstd else None
        if args.d_class_spread and not shape.num_classes:
            raise ConfigError("model.d_class_spread=true needs a conditional model (model.conditional=true)")
        self.spread = ClassSpread(shape.num_classes) if args.d_class_spread else None
        extra = (1 if self.mbstd else 0) + (1 if self.spread else 0)
        self.final = nn.Conv2d(widths[-1] + extra, 1, base, 1, 0, bias=False)
        self.num_classes = shape.num_classes
        self.project = ProjectionHead(shape.num_classes, widths[-1])
        init_dcgan(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                with_classes: bool = False):
        """Logits (N,); with `with_classes`, also ACGAN class logits (N, classes)."""
        h = self.body(self.pack(x, labels) if self.pack else x)
        phi = h.sum((2, 3)) if self.num_classes else None
        if self.mbstd:
            h = self.mbstd(h)
        if self.spread:
            h = self.spread(h, labels)
        logits = self.project(self.final(h).flatten(), phi, labels)
        return (logits, self.project.classify(phi)) if with_classes else logits


build = gan_pair(Generator, Discriminator)


# Under a budget below LONG_BUDGET_S (README "Sized for the budget"): widths 32 and Adam 4e-4
# make about 4x the steps of the full-size 32-px, widths-64 networks; better at 60 s, and
# the best recall on Fashion-MNIST up to 175 s (at about 60 s also the best FID; the long
# recipe makes a quarter of their steps). Both budget recipes train Adam at BUDGET_BETAS,
# StyleGAN2's (0, 0.99) instead of DCGAN's (0.5, 0.999): at about 60 s of the reference machine
# precision +0.01 on both sets and better FID (README "Adam's betas in the budget recipes").
BUDGET_BETAS = {"beta1": 0.0, "beta2": 0.99}
SHORT_BUDGET = {"model": {"g_width": 32, "d_width": 32}, "train": {"lr": 4e-4, **BUDGET_BETAS}}
# From LONG_BUDGET_S on (measured at 300 s, and at 84-175 s against SHORT_BUDGET): widths 48
# (about 1.3x the steps of widths 64; at 300 s on Fashion-MNIST FID 1.80 -> 1.67, precision
# 0.847 -> 0.854, recall 0.757 -> 0.770), Adam 4e-4 (against 2e-4 at the same seconds, better
# on FID, precision and coverage on both sets and at 300 and 900 s of a machine half as fast,
# and on recall but at 900 s, where it was level) and, with the non-saturating loss, lazy R1
# every 4 D steps, which bought FID, precision and coverage at 300 s; at gamma 0.5, half the
# dcgan-mnist preset's: on that slower machine's 300 and 600 s Fashion-MNIST recall 0.72 ->
# 0.78 and 0.81 -> 0.83 at level precision, ahead of the plain reference loop on every column
# (README "A lighter R1 in the long recipe"). Against SHORT_BUDGET at 84-175 s: better FID,
# precision and coverage on both sets and recall on MNIST, Fashion-MNIST recall 0.02-0.07 behind
# (README "The long recipe from 90 s"). BUDGET_BETAS: at 300 s on a 2-core EPYC (140-175 s of the
# reference machine, three seeds) Fashion-MNIST FID 1.81 -> 1.11, recall 0.78 -> 0.81, coverage
# 0.59 -> 0.63 at level precision; MNIST FID 1.26 -> 0.91 (README "Adam's betas in the budget
# recipes").
LONG_BUDGET = {"model": {"g_width": 48, "d_width": 48}, "train": {"lr": 4e-4, **BUDGET_BETAS},
               "objective": {"loss": "ns", "r1_gamma": 0.5, "r1_every": 4}}

MODELS.register("dcgan")(Architecture(DCGANArgs, build, RESOLUTIONS, short_budget=SHORT_BUDGET,
                                      long_budget=LONG_BUDGET,
                                      summary="DCGAN: transposed-conv G, strided-conv D, batch norm"))
