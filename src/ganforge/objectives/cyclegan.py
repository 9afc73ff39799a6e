"""`cyclegan`: unpaired translation between two domains (Zhu et al. 2017).

G_AB and G_BA learn to make images the domain's discriminator takes for real, while a round
trip must come back to where it started (cycle consistency, L1, weight `cycle_weight`), and
an image already in the target domain should pass unchanged (identity, L1, weight
`identity_weight` x `cycle_weight`, which keeps colours and tones). D_A and D_B learn from a
history pool of earlier generated images (50, as in the paper) rather than only the newest,
which damps the oscillation of the two games; least-squares loss by default.

Phases: "G" (both generators, one optimiser) then "D" (both discriminators, one optimiser,
on the same batch and the fakes G just made). Batches carry domain A as `source` and domain
B as `images` (training.batches.DomainSampler).

The pools are part of the run: their images and the generator of their random choices are
checkpointed per rank (`state_tensors`), so a resumed run draws the same D batches.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.imageset import to_uint8
from ..errors import ConfigError
from ..losses import GAN_LOSSES
from .base import OBJECTIVES, Batch, Objective, ObjectiveEntry, Phase, require_nets

PREVIEW_COLUMNS = 8


@dataclass
class CycleGANArgs:
    loss: str = "lsgan"              # adversarial loss: lsgan (the paper's), ns or hinge
    cycle_weight: float = 10.0       # lambda of ||G_BA(G_AB(a)) - a||_1 and ||G_AB(G_BA(b)) - b||_1
    identity_weight: float = 0.5     # x cycle_weight: ||G_AB(b) - b||_1 + ||G_BA(a) - a||_1 (0: off)
    pool_size: int = 50              # earlier fakes kept for D's updates (0: D sees only the newest)

    def check(self):
        loss = GAN_LOSSES.get(self.loss)
        if loss.clip or loss.gradient_penalty:
            raise ConfigError(f"objective.loss={self.loss!r} needs weight clipping or a gradient "
                              f"penalty; cyclegan supports lsgan, ns and hinge")
        for key in ("cycle_weight", "identity_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"objective.{key}={getattr(self, key)}: must be >= 0")
        if self.pool_size < 0:
            raise ConfigError(f"objective.pool_size={self.pool_size}: must be >= 0")


class ImagePool:
    """The paper's history of generated images. Until it holds `size` images each new one is
    stored and returned; then each new image is, with probability 1/2, swapped for a stored
    one picked at random (which is returned and replaced by the new one), else returned as
    it is. Random choices come from the pool's own CPU generator."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.images: torch.Tensor | None = None    # size x C x H x W once the first batch came
        self.count = 0
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        images = images.detach()
        if self.images is None or self.images.shape[1:] != images.shape[1:]:
            self.images = torch.empty(self.size, *images.shape[1:], dtype=images.dtype, device=images.device)
            self.count = 0
        # Drawn for every image whatever the pool's fill, so the choices depend on the step alone.
        swap = torch.rand(len(images), generator=self.generator) < 0.5
        slot = torch.randint(self.size, (len(images),), generator=self.generator)
        out = images.clone()
        for i in range(len(images)):
            if self.count < self.size:
                self.images[self.count] = images[i]
                self.count += 1
            elif swap[i]:
                j = int(slot[i])
                out[i] = self.images[j]
                self.images[j] = images[i]
        return out

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        stored = self.images[:self.count] if self.images is not None else torch.empty(0)
        return {f"{prefix}.images": stored.contiguous(), f"{prefix}.generator": self.generator.get_state()}

    def load(self, tensors: dict[str, torch.Tensor], prefix: str, device: torch.device) -> None:
        self.generator.set_state(tensors[f"{prefix}.generator"])
        stored = tensors[f"{prefix}.images"][:self.size]  # a resume with a smaller pool keeps the oldest
        self.count = len(stored)
        self.images = None
        if self.count:
            self.images = torch.empty(self.size, *stored.shape[1:], dtype=stored.dtype, device=device)
            self.images[:self.count] = stored.to(device)


def _l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.float() - y.float()).abs().mean()


class CycleGANObjective(Objective):
    samples_from_noise = False

    def __init__(self, args: CycleGANArgs, nets):
        require_nets("cyclegan", nets, ("G", "D"))
        if not hasattr(nets["G"], "translate"):
            raise ConfigError("objective 'cyclegan' needs the cyclegan model (two generators, two "
                              "discriminators); set model.name=cyclegan or --task translate")
        super().__init__(args, nets)
        self.adv = GAN_LOSSES.get(args.loss)
        self.phases = [Phase("G", "G"), Phase("D", "D", fresh_batch=False)]
        # One seed for the pools from the run's seeded generator (the same on every rank).
        seed = int(torch.randint(2 ** 62, (1,)).item())
        self.pools = {"a": ImagePool(args.pool_size, seed), "b": ImagePool(args.pool_size, seed + 1)}
        self._fakes: tuple[torch.Tensor, torch.Tensor] | None = None

    def check_data(self, shape) -> None:
        least = self.nets["D"].min_size
        if shape.resolution < least:
            raise ConfigError(f"data.resolution={shape.resolution}: the PatchGAN discriminators with "
                              f"model.d_layers={self.nets['D'].layers} need images of at least "
                              f"{least} pixels; lower model.d_layers")

    def _check(self, batch: Batch) -> None:
        if batch.source is None:
            raise ConfigError("objective 'cyclegan' needs two domains: --dataset A --dataset-b B, a "
                              "folder with trainA/ and trainB/, or styled:BASE")

    def loss(self, phase: str, batch: Batch):
        self._check(batch)
        a, b = batch.source, batch.images
        if phase == "G":
            identity = self.args.identity_weight > 0
            out = self.nets["G"](a, b, identity)
            score_a, score_b = self.nets["D"](out["fake_a"], out["fake_b"])
            adv = self.adv.g_loss(score_a.float()) + self.adv.g_loss(score_b.float())
            cycle = _l1(out["rec_a"], a) + _l1(out["rec_b"], b)
            loss = adv + self.args.cycle_weight * cycle
            values = {"loss_G_adv": adv.detach(), "cycle": cycle.detach()}
            if identity:
                same = _l1(out["idt_a"], a) + _l1(out["idt_b"], b)
                loss = loss + self.args.cycle_weight * self.args.identity_weight * same
                values["identity"] = same.detach()
            values["loss_G"] = loss.detach()
            self._fakes = (out["fake_a"].detach(), out["fake_b"].detach())
            return loss, values
        if self._fakes is None:
            raise RuntimeError("cyclegan: the D phase runs after the G phase of the same step")
        fake_a, fake_b = self._fakes
        self._fakes = None
        fake_a, fake_b = self.pools["a"].query(fake_a), self.pools["b"].query(fake_b)
        real_a, real_b = self.nets["D"](a, b)
        false_a, false_b = self.nets["D"](fake_a, fake_b)
        # Each D's loss halved, as the paper slows D down relative to G.
        loss = 0.5 * (self.adv.d_loss(real_a.float(), false_a.float()) +
                      self.adv.d_loss(real_b.float(), false_b.float()))
        accuracy = 0.5 * (self.adv.accuracy(real_a.detach(), false_a.detach()) +
                          self.adv.accuracy(real_b.detach(), false_b.detach()))
        return loss, {"loss_D": loss.detach(), "D_accuracy": accuracy}

    # Previews: rows A, G_AB(A), G_BA(G_AB(A)), then B, G_BA(B), G_AB(G_BA(B)).
    def preview_inputs(self, net, n: int, seed: int, draw) -> Batch:
        return draw(min(PREVIEW_COLUMNS, n))

    @torch.no_grad()
    def preview(self, net: torch.nn.Module, fixed: Batch) -> tuple[torch.Tensor, int]:
        device = next(net.parameters()).device
        a, b = fixed.source.to(device).float(), fixed.images.to(device).float()
        fake_b, fake_a = net.translate(a, "a2b").float(), net.translate(b, "b2a").float()
        rows = [a, fake_b, net.translate(fake_b, "b2a").float(), b, fake_a, net.translate(fake_a, "a2b").float()]
        return to_uint8(torch.cat(rows)), len(a)

    # The pools travel in checkpoints (per rank: each rank pools its own fakes).
    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {}
        for side, pool in self.pools.items():
            tensors.update(pool.state(f"pool.{side}"))
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        for side, pool in self.pools.items():
            if f"pool.{side}.generator" in tensors:
                pool.load(tensors, f"pool.{side}", device)


OBJECTIVES.register("cyclegan")(ObjectiveEntry(
    CycleGANArgs, CycleGANObjective,
    {"beta1": 0.5, "beta2": 0.999, "lr": 2e-4, "lr_schedule": "linear", "lr_hold": 0.5}))
