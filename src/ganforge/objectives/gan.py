"""`gan`: the two-player objective: D learns real from fake, G learns to fool D.

Every known remedy is a key of this objective, chosen by name and combinable with any loss
and any architecture: gradient penalty, R1 (optionally lazy, as its own phase), spectral
norm on D, weight clipping (from the loss), one-sided label smoothing, ACGAN's auxiliary
classifier, MSGAN's mode-seeking term (against a generator that ignores its noise, the way
conditional models collapse within a class), and differentiable augmentation with a fixed
or adaptive probability.

A resumed run takes the user's new `augment`, `augment_p` and `ada` (each changed key as a
fresh start would set it; unchanged ones keep the checkpoint's, possibly strengthened,
state); `spectral_norm` changes D's weights and cannot change, and says so. Under torchrun
ADA's statistic is summed over the ranks, so all apply one p that moves as in one process.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F

from .. import distributed
from ..data.augment import AdaptiveAugment, augment, parse_policy
from ..errors import ConfigError, require_at_least_one
from ..losses import GAN_LOSSES, ns_d_loss
from ..losses.regularizers import add_spectral_norm, clip_weights_, gradient_penalty, r1_penalty
from ..models.conditioning import ClassSpread, set_condition_strength
from .base import OBJECTIVES, Batch, Objective, ObjectiveEntry, Phase, require_nets

DEFAULT_POLICY = "translation,color,cutout"
# Losses whose D margin (mean logit on reals minus fakes) stays well apart from 0 in healthy
# training: ns and hinge logits. lsgan's outputs close in on 0.5 and 0.5 as G improves (0.10
# after 2,900 steps on Fashion-MNIST and falling), a Wasserstein critic's by no fixed scale.
MARGIN_LOSSES = ("ns", "hinge")
RESUMABLE = ("augment", "augment_p", "ada", "mode_seeking")  # take effect when changed at --resume
# Conditional models collapse within classes without it (a projection D judges one image at a
# time, and D's batch norm sees the spread between classes, not within them); measured on
# Fashion-MNIST in 150 s: recall 0.02 -> 0.45 (0.1: 0.24 at higher precision; 1: 0.59, lower CAS).
CONDITIONAL_MODE_SEEKING = 0.25
MAX_MODE_SEEKING = 2.0  # the most the health controller raises it to


@dataclass
class GANArgs:
    loss: str = "ns"                   # ns, lsgan, wgan, wgan-gp, hinge
    d_steps: int = 1                   # discriminator updates per generator update
    gp_weight: Union[float, None] = None  # gradient penalty weight (default: the loss's, 10 for wgan-gp)
    r1_gamma: float = 0.0              # R1 penalty gamma/2 * |grad D(real)|^2 (0: off)
    r1_every: int = 1                  # lazy R1: every k steps, scaled by k
    spectral_norm: bool = False        # spectral norm on every layer of D
    label_smoothing: float = 0.0       # one-sided: D's real target becomes 1 - this (ns loss)
    drift: float = 0.0                 # ProGAN's epsilon-drift: + drift * D(real)^2 keeps critic scores near 0
    acgan_weight: float = 0.0          # conditional models: auxiliary-classifier loss weight (ACGAN)
    aux_weight: float = 0.0            # conditional models: a class head beside the projection, trained on real images only
    mode_seeking: Union[float, None] = None  # MSGAN weight (None: 0.25 for conditional models, else 0)
    augment: str = ""                  # DiffAugment policy, e.g. translation,color,cutout
    augment_p: Union[float, None] = None  # probability per op and image (default 1; with ada 0)
    ada: bool = False                  # adapt augment_p to keep E[sign D(real)] near ada_target
    ada_target: float = 0.6
    ada_speed: int = 500_000           # images for p to move from 0 to 1
    topk: float = 1.0                  # share of each batch's fakes G learns from: those D rates most
                                       # real (top-k training, Sinha et al. 2020); 1: all of them
    topk_steps: int = 2000             # G steps over which that share falls linearly from 1 to topk
    cr_weight: float = 0.0             # balanced consistency regularisation (bCR, Zhao et al. 2020):
                                       # + weight * |D(x) - D(T(x))|^2 on reals and fakes (0: off)
    cr_augment: str = "translation"    # T: the ops of that term (each applied with probability 1)
    condition_after: int = 0           # conditional models: G steps trained without the labels first
    condition_ramp: int = 0            # then G steps over which the labels fade in (transitional training,
                                       # Shahbazi et al. 2023); both 0: conditional from the first step
    spread_match: float = 0.0          # conditional models whose D sees each class's spread (dcgan's
                                       # model.d_class_spread): G is also asked to match each class's
                                       # spread in D's features to the reals', weight x mean squared log
                                       # ratio (0: off)

    def check(self):
        loss = GAN_LOSSES.get(self.loss)
        require_at_least_one("objective", self, ("d_steps", "r1_every", "ada_speed"))
        for key in ("condition_after", "condition_ramp"):
            if getattr(self, key) < 0:
                raise ConfigError(f"objective.{key}={getattr(self, key)}: must be >= 0 (G steps)")
        for key in ("gp_weight", "r1_gamma", "acgan_weight", "aux_weight", "drift", "mode_seeking", "cr_weight",
                    "spread_match"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ConfigError(f"objective.{key}={value}: must be >= 0")
        if not 0 < self.topk <= 1:
            raise ConfigError(f"objective.topk={self.topk}: must be in (0, 1] (the share of fakes kept)")
        if self.topk_steps < 0:
            raise ConfigError(f"objective.topk_steps={self.topk_steps}: must be >= 0")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"objective.label_smoothing={self.label_smoothing}: must be in [0, 1)")
        if self.label_smoothing and self.loss != "ns":
            raise ConfigError(f"objective.label_smoothing applies to the ns loss, not {self.loss!r}")
        if self.augment_p is not None and not 0 <= self.augment_p <= 1:
            raise ConfigError(f"objective.augment_p={self.augment_p}: must be in [0, 1]")
        if not 0 < self.ada_target < 1:
            raise ConfigError(f"objective.ada_target={self.ada_target}: must be in (0, 1)")
        policies = {}
        for key in ("augment", "cr_augment"):
            try:
                policies[key] = parse_policy(getattr(self, key))
            except ConfigError as error:
                raise ConfigError(f"objective.{key}: {error}") from None
        if self.cr_weight and not policies["cr_augment"]:
            raise ConfigError("objective.cr_augment is empty: consistency regularisation needs at least "
                              "one op (e.g. translation) to be consistent under")
        if self.ada and loss.threshold is None:
            raise ConfigError(f"objective.ada does not work with objective.loss={self.loss!r}: ADA reads "
                              f"the sign of D's verdict on reals, and a critic's scores have no fixed "
                              f"real/fake threshold; set a fixed objective.augment_p instead, or use "
                              f"the ns, hinge or lsgan loss")
        if loss.clip and (self.gp_weight or self.r1_gamma):
            raise ConfigError(f"loss {self.loss!r} clips D's weights; combine penalties with wgan-gp instead")


MODE_SEEKING_EPS = 1e-5


def paired(labels: torch.Tensor) -> torch.Tensor:
    """Labels where items 2i and 2i+1 share item 2i's class."""
    out = labels.clone()
    out[1::2] = labels[0:len(labels) - len(labels) % 2:2]
    return out


def linear_ramp(steps: int, length: int) -> float:
    """0 before step 0, rising linearly to 1 over `length` steps (at once when length is 0)."""
    if steps < 0:
        return 0.0
    return min(1.0, steps / length) if length else 1.0


def mode_seeking_ratio(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """MSGAN's ratio (Mao et al. 2019): mean |G(z1) - G(z2)| over mean |z1 - z2|, over the pairs
    (2i, 2i+1) of a batch (same class in a conditional model). A generator that ignores its
    noise scores near 0, so adding weight / ratio to G's loss pushes it to use the noise."""
    n = len(fake) - len(fake) % 2
    images = (fake[0:n:2] - fake[1:n:2]).float().abs().flatten(1).mean(1)
    noises = (z[0:n:2] - z[1:n:2]).float().abs().flatten(1).mean(1)
    return (images / noises).mean()


def spread_gap(fake: tuple[torch.Tensor, torch.Tensor], real: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """How far the fakes' spread per class is from the reals' in D's features: the mean squared
    log ratio over the classes with at least two images on both sides (0 if there is none).
    A ratio, so it asks a class drawn too narrow to widen as much as one drawn too wide to
    narrow, whatever the scale of D's features. No host sync: the mask weighs, not indexes."""
    (fake_std, fake_n), (real_std, real_n) = fake, real
    both = ((fake_n >= 2) & (real_n >= 2)).to(fake_std.dtype)
    squared = (fake_std.log() - real_std.log()).pow(2)
    return (squared * both).sum() / both.sum().clamp(min=1)


class GANObjective(Objective):
    def __init__(self, args: GANArgs, nets):
        require_nets("gan", nets, ("G", "D"))
        super().__init__(args, nets)
        self.adv = GAN_LOSSES.get(args.loss)
        self.classes = getattr(nets["G"], "num_classes", 0)
        for key in ("acgan_weight", "aux_weight", "condition_after", "condition_ramp", "spread_match"):
            if getattr(args, key) and not self.classes:
                raise ConfigError(f"objective.{key} needs a conditional model (model.conditional=true)")
        self.spread = next((m for m in nets["D"].modules() if isinstance(m, ClassSpread)), None)
        if args.spread_match and self.spread is None:
            raise ConfigError("objective.spread_match needs a D that sees each class's spread "
                              "(dcgan: model.d_class_spread=true)")
        if args.spread_match and args.acgan_weight:
            raise ConfigError("objective.spread_match needs the labels in D; objective.acgan_weight "
                              "gives D none (use objective.aux_weight for a class head)")
        self._real_spread: tuple[torch.Tensor, torch.Tensor] | None = None
        if args.acgan_weight and args.aux_weight:
            raise ConfigError("objective.acgan_weight and objective.aux_weight are two kinds of class head: set one")
        self.class_weight = args.acgan_weight or args.aux_weight   # the one class head's weight (0: none)
        if args.spectral_norm:
            add_spectral_norm(self.D)
        self.D.register_load_state_dict_pre_hook(_refuse_spectral_norm_change)
        self.gp_weight = self.adv.gradient_penalty if args.gp_weight is None else args.gp_weight
        self.double_backward = bool(self.gp_weight or args.r1_gamma)
        self.reg_scale = 1.0           # raised by the health controller against collapse, lowered against a flat D
        self.policy, self.p = self._configured()
        self.mode_seeking = self._configured_mode_seeking()
        self.ada = AdaptiveAugment(args.ada_target, args.ada_speed, p=self.p) if args.ada else None
        # The fakes of the last D run are reused by the G run (as in the textbook loop), so
        # D runs record G's graph; G's run does not need D's parameter gradients.
        self.phases = [Phase("D", "D", repeat=args.d_steps, graph_of=("G",))]
        if args.r1_gamma:
            self.phases.append(Phase("D_reg", "D", every=args.r1_every))
        self.phases.append(Phase("G", "G", fresh_batch=False))
        self._fake: torch.Tensor | None = None
        self._fake_labels: torch.Tensor | None = None
        self._fake_z: torch.Tensor | None = None
        self._batch_size = 0
        self.g_updates = 0             # G steps taken: where the top-k share stands

    @property
    def G(self):
        return self.nets["G"]

    @property
    def D(self):
        return self.nets["D"]

    # Helpers.
    def _configured(self) -> tuple[list[str], float]:
        """The augmentation policy and p that the args set at a fresh start."""
        args = self.args
        policy = parse_policy(args.augment or (DEFAULT_POLICY if args.ada else ""))
        return policy, args.augment_p if args.augment_p is not None else (0.0 if args.ada else 1.0)

    def _configured_mode_seeking(self) -> float:
        """The mode-seeking weight the args set at a fresh start (None: by conditioning)."""
        if self.args.mode_seeking is not None:
            return self.args.mode_seeking
        return CONDITIONAL_MODE_SEEKING if self.classes else 0.0

    def _topk_keep(self, n: int) -> int:
        """How many of n fakes G learns from now: all at first, falling linearly to topk * n
        over topk_steps G steps, never fewer than one."""
        ramp = linear_ramp(self.g_updates, self.args.topk_steps)
        share = 1.0 - (1.0 - self.args.topk) * ramp
        return max(1, min(n, round(share * n)))

    def _fading_labels(self) -> bool:
        return bool(self.classes and (self.args.condition_after or self.args.condition_ramp))

    def condition_strength(self) -> float:
        """How strongly G and D follow the labels at this G step: 0 for condition_after steps,
        then rising linearly to 1 over condition_ramp steps."""
        return linear_ramp(self.g_updates - self.args.condition_after, self.args.condition_ramp)

    def start_notes(self, steps: int) -> list[str]:
        full = self.args.condition_after + self.args.condition_ramp
        if not self._fading_labels() or steps >= full:
            return []
        return [f"objective.condition_ramp: the labels reach full strength at step {full}, after "
                f"train.steps={steps}; a model saved before then is sampled at full strength, which "
                f"it was not trained at (train on, or shorten condition_after / condition_ramp)"]

    def _recorded_args(self) -> dict:
        """The args a checkpoint records, to tell at --resume what the user changed."""
        return {"augment": parse_policy(self.args.augment), "augment_p": self.args.augment_p,
                "ada": self.args.ada, "mode_seeking": self.args.mode_seeking}

    def noise(self, n: int, device) -> torch.Tensor:
        return distributed.global_randn(n, self.G.latent_dim, device=device)

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        p = self.ada.p if self.ada is not None else self.p
        if not self.policy or p <= 0:
            return images
        return augment(images, self.policy, p, shard=_shard())

    def _D(self, images: torch.Tensor, labels: torch.Tensor | None):
        """D's logits on augmented images, and class logits when a class head is on (ACGAN's
        replaces the projection; the auxiliary one sits beside it)."""
        images = self._augment(images)
        if not self.class_weight:
            return self.D(images, labels), None
        return self.D(images, None if self.args.acgan_weight else labels, with_classes=True)

    def _consistency(self, images: torch.Tensor, labels: torch.Tensor | None,
                     logits: torch.Tensor) -> torch.Tensor:
        """bCR's term for one side: the mean squared change of D's logits when the images go
        through `cr_augment` (D should judge a shifted image as it judges the image)."""
        moved, _ = self._D(augment(images, self.args.cr_augment, 1.0, shard=_shard()), labels)
        return (moved.float() - logits.float()).pow(2).mean()

    def _fakes(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        labels = distributed.global_randint(self.classes, n, device) if self.classes else None
        if labels is not None and self.mode_seeking:
            labels = paired(labels)  # images 2i and 2i+1 share a class, for the mode-seeking term
        self._fake_z = self.noise(n, device)
        return self.G(self._fake_z, labels), labels

    # The phases.
    def loss(self, phase: str, batch: Batch):
        if self._fading_labels():
            strength = self.condition_strength()
            set_condition_strength(self.G, strength)
            set_condition_strength(self.D, strength)
        if phase == "D":
            return self._d_loss(batch)
        if phase == "D_reg":
            labels = batch.labels if self.classes and not self.args.acgan_weight else None
            penalty = r1_penalty(self.D, batch.images, labels)
            loss = penalty * (self.args.r1_gamma * self.reg_scale / 2 * self.args.r1_every)
            return loss, {"r1": penalty.detach()}
        fake, labels = self._fake, self._fake_labels
        self._fake = None
        if fake is None:
            fake, labels = self._fakes(batch.images.shape[0], batch.images.device)
        logits, classes = self._D(fake, labels)
        values = {}
        keep = self._topk_keep(len(logits))
        if keep < len(logits):
            # The fakes D already rates most real: a bad sample's gradient points G at nothing
            # worth copying. The class and mode-seeking terms still see every fake.
            values["topk_share"] = torch.tensor(keep / len(logits), device=logits.device)
            loss = self.adv.g_loss(logits[logits.detach().flatten().topk(keep).indices])
        else:
            loss = self.adv.g_loss(logits)
        if classes is not None:
            # While the labels fade in, G is asked to match them only as strongly as it sees them.
            loss = loss + self.class_weight * self.condition_strength() * F.cross_entropy(classes.float(), labels)
        if self.args.spread_match and self._real_spread is not None and self.spread.class_spread is not None:
            gap = spread_gap(self.spread.class_spread, self._real_spread)
            loss = loss + self.args.spread_match * gap
            values["spread_gap"] = gap.detach()
        if self.mode_seeking and len(fake) >= 2:
            ratio = mode_seeking_ratio(fake, self._fake_z)
            loss = loss + self.mode_seeking / (ratio + MODE_SEEKING_EPS)
            values["mode_seeking_ratio"] = ratio.detach()
        values["loss_G"] = loss.detach()
        return loss, values

    def _d_loss(self, batch: Batch):
        real_labels = batch.labels if self.classes else None
        self._batch_size = batch.images.shape[0]
        self._fake, self._fake_labels = self._fakes(self._batch_size, batch.images.device)
        real, real_classes = self._D(batch.images, real_labels)
        if self.args.spread_match and self.spread.class_spread is not None:
            std, counts = self.spread.class_spread
            self._real_spread = (std.detach(), counts)
        fake, fake_classes = self._D(self._fake.detach(), self._fake_labels)
        if self.args.label_smoothing:
            loss = ns_d_loss(real, fake, real_target=1.0 - self.args.label_smoothing)
        else:
            loss = self.adv.d_loss(real, fake)
        values = {}
        if self.args.drift:
            loss = loss + self.args.drift * real.float().pow(2).mean()
        if self.args.cr_weight:
            penalty = self._consistency(batch.images, real_labels, real) + \
                self._consistency(self._fake.detach(), self._fake_labels, fake)
            loss = loss + self.args.cr_weight * self.reg_scale * penalty
            values["cr"] = penalty.detach()
        if self.gp_weight:
            labels = None if self.args.acgan_weight else real_labels
            penalty = gradient_penalty(self.D, batch.images, self._fake, labels)
            loss = loss + self.gp_weight * self.reg_scale * penalty
            values["gp"] = penalty.detach()
        if real_classes is not None:
            classes = F.cross_entropy(real_classes.float(), batch.labels)
            if self.args.acgan_weight:
                classes = classes + F.cross_entropy(fake_classes.float(), self._fake_labels)
            else:
                # Real images only: a head that also learnt to name G's fakes would teach G to
                # make what it names easily, one image per class (ACGAN's known loss of variety).
                values["aux_real"] = classes.detach()
            loss = loss + self.class_weight * classes
        if self.ada is not None:
            self.ada.observe(self.adv.real_score(real))
        real, fake = real.detach(), fake.detach()
        values.update({"loss_D": loss.detach(), "D_real": real.mean(), "D_fake": fake.mean(),
                       "D_accuracy": self.adv.accuracy(real, fake)})
        if self.args.loss in MARGIN_LOSSES:  # the margin the health controller reads (a flat D)
            values["D_margin"] = (real.float().mean() - fake.float().mean()).detach()
        if self.policy:  # on the batch's device, like every logged value (NCCL reduces them together)
            values["augment_p"] = torch.tensor(self.ada.p if self.ada is not None else self.p,
                                               device=batch.images.device)
        if self._fading_labels():   # a run stopped before it reaches 1 shows it in metrics.jsonl
            values["condition_strength"] = torch.tensor(self.condition_strength(), device=batch.images.device)
        return loss, values

    def after_step(self, phase: str) -> None:
        if phase == "D" and self.adv.clip:
            clip_weights_(self.nets["D"], self.adv.clip)
        if phase == "G":
            self.g_updates += 1
            if self.ada is not None:
                self.ada.update(self._batch_size * distributed.world_size(), reduce=_over_ranks())

    # State the health controller and resume care about.
    def strengthen(self, within_classes: bool = False) -> str | None:
        """Against samples of a class that look alike (`within_classes`), the mode-seeking
        weight (doubled, at least 0.1, at most MAX_MODE_SEEKING). Otherwise augmentation first
        (while p can rise), then the regulariser weight; None when nothing can be raised,
        and the loop lowers the learning rates instead."""
        if within_classes and self.mode_seeking < MAX_MODE_SEEKING:
            self.mode_seeking = min(MAX_MODE_SEEKING, max(0.1, 2 * self.mode_seeking))
            return f"mode-seeking weight raised to {self.mode_seeking:g}"
        if self.ada is not None and self.ada.p < 1.0:
            state = self.ada.state_dict()
            state["p"] = min(1.0, state["p"] + 0.2)
            self.ada.load_state_dict(state)
            return f"adaptive augmentation p raised to {state['p']:.2f}"
        if self.ada is None and self.policy and self.p < 1.0:
            self.p = min(1.0, self.p + 0.2)
            return f"augmentation p raised to {self.p:.2f}"
        if self._regularised():
            self.reg_scale *= 2
            return f"regulariser weight x{self.reg_scale:g}"
        if not self.policy:
            self.policy, self.p = parse_policy(DEFAULT_POLICY), 0.2
            return f"augmentation ({DEFAULT_POLICY}) switched on at p=0.2"
        return None

    def relax(self) -> str | None:
        """Against a flat D (its verdicts on real and fake alike), the weight of D's
        regularisers (R1, gradient penalty, consistency) halved; None without any."""
        if not self._regularised():
            return None
        self.reg_scale /= 2
        return f"regulariser weight x{self.reg_scale:g}"

    def _regularised(self) -> bool:
        return bool(self.gp_weight or self.args.r1_gamma or self.args.cr_weight)

    def state_dict(self) -> dict:
        """p, policy, regulariser weight, mode-seeking weight, G steps (top-k), ADA's state and the args that set them. Under
        torchrun every rank must call it: ADA's partial statistic is summed over the ranks."""
        return {"p": self.p, "policy": self.policy, "reg_scale": self.reg_scale, "g_updates": self.g_updates,
                "mode_seeking": self.mode_seeking, "ada": None if self.ada is None else self.ada.state_dict(reduce=_over_ranks()),
                "args": self._recorded_args()}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict`'s state; the keys of `RESUMABLE` the user changed since the
        checkpoint was written take the new config's values instead (as a fresh start would set
        them). A checkpoint that records no args (older runs) is restored as it is.
        (A changed objective.spectral_norm is refused earlier, when D's weights are loaded.)
        """
        if not state:
            return
        saved, now = state.get("args") or {}, self._recorded_args()
        changed = {key for key in RESUMABLE if key in saved and saved[key] != now[key]}
        # Restore the checkpoint's state.
        self.p, self.policy, self.reg_scale = state["p"], state["policy"], state["reg_scale"]
        self.mode_seeking = state.get("mode_seeking", self.mode_seeking)
        self.g_updates = state.get("g_updates", 0)
        if self.ada is not None and state.get("ada") and "ada" not in changed:
            ada = dict(state["ada"])
            if distributed.rank() != 0:  # the saved partial statistic is the ranks' sum: count it once
                ada.update(sign_sum=0.0, count=0)
            self.ada.load_state_dict(ada)
        # Apply what the user changed at --resume.
        policy, p = self._configured()
        if changed & {"augment", "ada"}:
            self.policy = policy
        if "mode_seeking" in changed:
            self.mode_seeking = self._configured_mode_seeking()
        if changed & {"augment_p", "ada"}:
            self.p = p
            if self.ada is not None and "ada" not in changed:
                self.ada.load_state_dict({**self.ada.state_dict(), "p": p})


def _shard() -> tuple[int, int]:
    """This process's part of the batch for `augment`: under torchrun each rank draws for the
    global batch and keeps its slice, so augmentation is the same as in one process."""
    return distributed.rank(), distributed.world_size()


def _over_ranks():
    """ADA's reduction: the sum over ranks under torchrun, None (this process) otherwise."""
    return distributed.sum_over_ranks if distributed.is_distributed() else None


def _spectral_norm(keys) -> bool:
    """Whether state-dict keys hold spectral norm's power-iteration vectors."""
    return any(".parametrizations.weight.0._u" in f".{key}" for key in keys)


def _refuse_spectral_norm_change(module, state_dict, prefix, *_) -> None:
    """D's load_state_dict pre-hook: weights saved with (without) spectral norm, loaded into a
    D without (with) it, are a ConfigError naming the key rather than a missing-keys traceback.
    (The trainer loads D's weights before the objective's state, so the check lives here.)"""
    saved = [key for key in state_dict if key.startswith(prefix)]
    was, now = _spectral_norm(saved), _spectral_norm(module.state_dict())
    if saved and was != now:
        was, now = str(was).lower(), str(now).lower()
        raise ConfigError(f"objective.spectral_norm was {was} when this run's D was saved and is {now} "
                          f"now; spectral norm changes how D's weights are stored, so it cannot change "
                          f"when a run is resumed: keep objective.spectral_norm={was} or start a new run")


OBJECTIVES.register("gan")(ObjectiveEntry(GANArgs, GANObjective))
