"""`gan`: the two-player objective: D learns real from fake, G learns to fool D."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..losses import GAN_LOSSES
from .base import OBJECTIVES, Batch, Objective, ObjectiveEntry, Phase, require_nets


@dataclass
class GANArgs:
    loss: str = "ns"        # adversarial loss by name (ns: non-saturating BCE on logits)
    d_steps: int = 1        # discriminator updates per generator update

    def check(self):
        GAN_LOSSES.get(self.loss)
        if self.d_steps < 1:
            raise ConfigError(f"objective.d_steps={self.d_steps}: must be at least 1")


class GANObjective(Objective):
    def __init__(self, args: GANArgs, nets):
        require_nets("gan", nets, ("G", "D"))
        super().__init__(args, nets)
        self.adv = GAN_LOSSES.get(args.loss)
        self.G, self.D = nets["G"], nets["D"]
        # The fakes of the last D run are reused by the G run (as in the textbook loop), so
        # D runs record G's graph; G's run does not need D's parameter gradients.
        self.phases = [Phase("D", "D", repeat=args.d_steps, graph_of=("G",)),
                       Phase("G", "G", fresh_batch=False)]
        self._fake: torch.Tensor | None = None

    def noise(self, n: int, device) -> torch.Tensor:
        return torch.randn(n, self.G.latent_dim, device=device)

    def loss(self, phase: str, batch: Batch):
        if phase == "D":
            z = self.noise(batch.images.shape[0], batch.images.device)
            self._fake = self.G(z, batch.labels)
            real_logits = self.D(batch.images, batch.labels)
            fake_logits = self.D(self._fake.detach(), batch.labels)
            loss = self.adv.d_loss(real_logits, fake_logits)
            return loss, {"loss_D": loss.detach(), "D_real": real_logits.detach().mean(),
                          "D_fake": fake_logits.detach().mean()}
        fake, self._fake = self._fake, None
        if fake is None:
            fake = self.G(self.noise(batch.images.shape[0], batch.images.device), batch.labels)
        loss = self.adv.g_loss(self.D(fake, batch.labels))
        return loss, {"loss_G": loss.detach()}


OBJECTIVES.register("gan")(ObjectiveEntry(GANArgs, GANObjective))
