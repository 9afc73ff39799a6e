"""`image2image`: a generator that takes an image (plus a mask and/or a class) and returns one.

One objective for every editing task: super-resolution, denoising, colorization, enhancement,
inpainting, object replacement and pix2pix. The loss is an L1 term (weighted towards the hole
when there is a mask) plus, when `adv_weight` > 0, an adversarial term from a PatchGAN
discriminator that sees the (composited) output, conditioned on the input when the model's
D is conditional (pix2pix). With `adv_weight` = 0 only the generator trains (SRResNet, EDSR,
DnCNN); with it on, SRGAN/ESRGAN-style training trades PSNR for realism.

The same functions build the generator's input and composite its output in training,
previews and inference (`model_input`, `run_generator`), so the three cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.imageset import match_channels, to_uint8
from ..errors import ConfigError
from ..losses import GAN_LOSSES
from ..losses.regularizers import add_spectral_norm
from .base import OBJECTIVES, Batch, Objective, ObjectiveEntry, Phase, require_nets

PREVIEW_COLUMNS = 8  # images per preview row (input, output, target rows)


@dataclass
class Image2ImageArgs:
    l1_weight: float = 1.0             # weight of the L1 reconstruction term
    adv_weight: float = 0.0            # weight of the adversarial term (0: no discriminator is trained)
    loss: str = "ns"                   # adversarial loss when adv_weight > 0: ns, lsgan, hinge, ...
    hole_weight: float = 1.0           # with a mask: L1 weight inside the hole ...
    valid_weight: float = 0.1          # ... and outside it (the composite keeps those pixels anyway)
    spectral_norm: bool = False        # spectral norm on every layer of D

    def check(self):
        loss = GAN_LOSSES.get(self.loss)
        for key in ("l1_weight", "adv_weight", "hole_weight", "valid_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"objective.{key}={getattr(self, key)}: must be >= 0")
        if self.l1_weight == 0 and self.adv_weight == 0:
            raise ConfigError("objective.l1_weight and objective.adv_weight are both 0: nothing to train")
        if self.hole_weight == 0 and self.valid_weight == 0:
            raise ConfigError("objective.hole_weight and objective.valid_weight are both 0")
        if self.adv_weight and (loss.clip or loss.gradient_penalty):
            raise ConfigError(f"objective.loss={self.loss!r} needs weight clipping or a gradient "
                              f"penalty; image2image supports ns, lsgan and hinge")


# Shared by training, previews and inference.
def model_input(source: torch.Tensor, mask: torch.Tensor | None, labels: torch.Tensor | None,
                num_classes: int) -> torch.Tensor:
    """The generator's input: the source image, then the hole mask, then a one-hot class map
    (inside the hole when there is one: per-region classes; else over the whole image)."""
    parts = [source]
    if mask is not None:
        parts.append(mask.to(source.dtype))
    if num_classes:
        if labels is None:
            raise ConfigError("this model is class-conditional: give a class for the region")
        onehot = F.one_hot(labels.long(), num_classes).to(source.dtype)[:, :, None, None]
        region = mask if mask is not None else torch.ones_like(source[:, :1])
        parts.append(onehot * region.to(source.dtype))
    return torch.cat(parts, 1)


def composite(output: torch.Tensor, source: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Inside the hole the model's pixels, outside it the input's, untouched."""
    if mask is None:
        return output
    return torch.where(mask.bool(), output, source)


def run_generator(net: torch.nn.Module, source: torch.Tensor, mask: torch.Tensor | None = None,
                  labels: torch.Tensor | None = None) -> torch.Tensor:
    """What an editing model returns for a (padded) input: raw output, clamped to [-1, 1] and
    composited into the source outside the hole. `net` carries `num_classes`."""
    x = model_input(source, mask, labels, getattr(net, "num_classes", 0))
    return composite(net(x).float().clamp(-1, 1), source.float(), mask)


def upsample_to(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize (the classical SR baseline, and the conditional D's view of a small input)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images.float(), size=size, mode="bicubic", align_corners=False).clamp(-1, 1)


class Image2ImageObjective(Objective):
    samples_from_noise = False
    def __init__(self, args: Image2ImageArgs, nets):
        require_nets("image2image", nets, ("G", "D"))
        if not hasattr(nets["G"], "in_channels"):
            raise ConfigError("objective 'image2image' needs an image-to-image model "
                              "(unet, srresnet, dncnn; ganforge models lists them)")
        super().__init__(args, nets)
        self.adv = GAN_LOSSES.get(args.loss)
        self.classes = getattr(nets["G"], "num_classes", 0)
        self.cond_channels = getattr(nets["D"], "cond_channels", 0)
        if args.spectral_norm:
            add_spectral_norm(nets["D"])
        if args.adv_weight:
            # As in the GAN objective: the D run makes the outputs, the G run reuses them.
            self.phases = [Phase("D", "D", graph_of=("G",)), Phase("G", "G", fresh_batch=False)]
        else:
            self.phases = [Phase("G", "G")]
        self._out: torch.Tensor | None = None

    def check_data(self, shape) -> None:
        least = getattr(self.nets["D"], "min_size", 0)
        if self.args.adv_weight and shape.resolution < least:
            raise ConfigError(f"data.resolution={shape.resolution}: the PatchGAN discriminator with "
                              f"model.d_layers={self.nets['D'].layers} needs crops of at least "
                              f"{least} pixels; lower model.d_layers, use larger crops or set "
                              f"objective.adv_weight=0")

    # Pieces.
    def _check(self, batch: Batch) -> None:
        if batch.source is None:
            raise ConfigError("objective 'image2image' needs model inputs: set data.degrade "
                              "(e.g. downscale:4) or use a paired data set (paired:FOLDER)")

    def _labels(self, batch: Batch) -> torch.Tensor | None:
        if not self.classes:
            return None
        return batch.region_labels if batch.region_labels is not None else batch.labels

    def _output(self, batch: Batch) -> torch.Tensor:
        x = model_input(batch.source, batch.mask, self._labels(batch), self.classes)
        out = self.nets["G"](x)
        return composite(out, batch.source, batch.mask) if batch.mask is not None else out

    def _condition(self, batch: Batch) -> torch.Tensor | None:
        if not self.cond_channels:
            return None
        source = upsample_to(batch.source, batch.images.shape[-2:]).to(batch.images.dtype)
        return model_input(source, batch.mask, self._labels(batch), self.classes)

    def _l1(self, out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        error = (out.float() - target.float()).abs()
        if mask is None:
            return error.mean()
        weight = self.args.hole_weight * mask + self.args.valid_weight * (1 - mask)
        return (error * weight).sum() / (weight.sum() * error.shape[1]).clamp_min(1e-8)

    # The phases.
    def loss(self, phase: str, batch: Batch):
        self._check(batch)
        if phase == "D":
            self._out = self._output(batch)
            condition = self._condition(batch)
            real = self.nets["D"](batch.images, condition)
            fake = self.nets["D"](self._out.detach(), condition)
            loss = self.adv.d_loss(real.float(), fake.float())
            accuracy = self.adv.accuracy(real.detach(), fake.detach())  # at the loss's threshold
            return loss, {"loss_D": loss.detach(), "D_accuracy": accuracy}
        out, self._out = (self._out if self._out is not None else self._output(batch)), None
        l1 = self._l1(out, batch.images, batch.mask)
        loss = self.args.l1_weight * l1
        values = {"l1": l1.detach()}
        if self.args.adv_weight:
            adv = self.adv.g_loss(self.nets["D"](out, self._condition(batch)).float())
            loss = loss + self.args.adv_weight * adv
            values["loss_G_adv"] = adv.detach()
        values["loss_G"] = loss.detach()
        return loss, values

    # Previews: fixed inputs, one column each: input (resized), output, target.
    def preview_inputs(self, net, n: int, seed: int, draw) -> Batch:
        return draw(min(PREVIEW_COLUMNS, n))

    @torch.no_grad()
    def preview(self, net: torch.nn.Module, fixed: Batch) -> tuple[torch.Tensor, int]:
        device = next(net.parameters()).device
        source = fixed.source.to(device)
        mask = None if fixed.mask is None else fixed.mask.to(device)
        labels = self._labels(fixed)
        out = run_generator(net, source, mask, None if labels is None else labels.to(device))
        target = fixed.images.to(device).float()
        shown = match_channels(upsample_to(source.float(), target.shape[-2:]), target.shape[1])
        rows = torch.cat([shown, out, target])
        return to_uint8(rows), len(target)


OBJECTIVES.register("image2image")(ObjectiveEntry(
    Image2ImageArgs, Image2ImageObjective, {"beta1": 0.9, "beta2": 0.99, "ema_decay": 0.999}))
