"""Tasks: what a user comes to do, as a bundle of defaults (data, degradation, model, objective).

`ganforge train --task inpaint` lays the task's defaults under everything the user gives
(preset, config file, options, --set), so each task trains with no other option on data that
ships with ganforge's dependencies, and any of its choices can be overridden. The task is
recorded in the run's config, so `ganforge edit` knows what a run expects (a mask, a class,
a scale).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .registry import Registry


@dataclass(frozen=True)
class Task:
    summary: str
    defaults: dict = field(default_factory=dict)  # config sections, laid under the user's
    needs: tuple[str, ...] = ()                   # what `ganforge edit` needs: "mask", "class"


TASKS: Registry[Task] = Registry("task")

# Restoration on photos: crops of scikit-image's bundled photos (held-out ones for evaluation).
_PHOTOS = {"name": "photos", "channels": 3}
_RESTORE_TRAIN = {"batch_size": 16, "lr": 2e-4, "steps": 2500, "lr_schedule": "cosine"}
# A U-Net sized for small gray images (digits, MNIST): a quarter of pix2pix's widths.
_SMALL_UNET = {"name": "unet", "g_width": 32, "max_width": 256}
# Mending an image (inpainting, denoising, enhancement): the same U-Net, residual (input, its
# holes smoothly filled, + a correction). For denoising its coarse levels cost a fifth of
# DnCNN's full-size layers per image, so in the same CPU minutes it sees five times the crops:
# above NL-means at sigma 25 (Adam 5e-4, 4,000 steps), where DnCNN stayed 1.2 dB below
# (README, Editing, measured).
_MEND_UNET = {**_SMALL_UNET, "residual": True}
_MEND_TRAIN = {"batch_size": 16, "lr": 5e-4, "steps": 4000, "lr_schedule": "cosine"}
_LOG = {"sample_every": 250, "checkpoint_every": 250}

TASKS.register("generate")(Task("images from noise (GAN, VAE): today's default"))
TASKS.register("inpaint")(Task(
    "fill a hole (free-form strokes, boxes, a mask PNG); pixels outside it stay bit-identical",
    {"data": {"name": "digits", "resolution": 32, "channels": 1, "degrade": "mask:free-form"},
     "model": _MEND_UNET,   # FID 0.33 against 0.51 without, free-form holes in Fashion-MNIST
     "objective": {"name": "image2image", "adv_weight": 0.01},
     "train": {"batch_size": 32, "steps": 3000}, "log": _LOG},
    needs=("mask",)))
TASKS.register("replace")(Task(
    "draw an instance of a requested class in a region (class-conditional inpainting)",
    {"data": {"name": "mosaic:digits", "resolution": 32, "channels": 1, "degrade": "mask:region"},
     "model": {**_SMALL_UNET, "conditional": True},
     "objective": {"name": "image2image", "adv_weight": 0.01},
     "train": {"batch_size": 32, "steps": 3000}, "log": _LOG},
    needs=("mask", "class")))
TASKS.register("super-resolve")(Task(
    "upscale x2 or x4 (--scale, which also sets 32-pixel input crops); EDSR-style, L1, "
    "optionally adversarial",
    {"data": {**_PHOTOS, "resolution": 128, "degrade": "downscale:4"},
     "model": {"name": "srresnet"},
     "objective": {"name": "image2image"},
     # 2.5 times the restoration lr and a third more steps: +0.47 dB at x2 within 15 minutes.
     "train": {**_RESTORE_TRAIN, "lr": 5e-4, "steps": 3300}, "log": _LOG}))
TASKS.register("denoise")(Task(
    "remove Gaussian noise (sigma in 0-255 units); residual U-Net (--model dncnn for DnCNN)",
    {"data": {**_PHOTOS, "resolution": 64, "degrade": "noise:25"},
     "model": _MEND_UNET,
     "objective": {"name": "image2image"},
     "train": _MEND_TRAIN, "log": _LOG}))
TASKS.register("colorize")(Task(
    "gray in, RGB out (RGB output with L1 + adversarial; the gray input's luma is the baseline)",
    {"data": {**_PHOTOS, "name": "photos:color", "resolution": 64, "degrade": "gray"},
     "model": {"name": "unet"},
     "objective": {"name": "image2image", "adv_weight": 0.01},
     "train": _RESTORE_TRAIN, "log": _LOG}))
TASKS.register("enhance")(Task(
    "brighten low-light photos (lowlight:GAMMA) or sharpen blurred ones (blur:SIGMA)",
    {"data": {**_PHOTOS, "resolution": 64, "degrade": "lowlight:2.5"},
     "model": _MEND_UNET,
     "objective": {"name": "image2image"},
     "train": _MEND_TRAIN, "log": _LOG}))
TASKS.register("pix2pix")(Task(
    "translate real pairs (paired:FOLDER, A|B or A/ B/ layouts); by default line drawings "
    "(edges) -> photos",
    {"data": {**_PHOTOS, "resolution": 64, "degrade": "edges"},
     "model": {"name": "unet"},
     "objective": {"name": "image2image", "l1_weight": 1.0, "adv_weight": 0.01},
     "train": _RESTORE_TRAIN, "log": _LOG}))
TASKS.register("translate")(Task(
    "unpaired translation between two domains (CycleGAN): --dataset A --dataset-b B, a folder "
    "with trainA/ trainB/, or styled:BASE; by default gray digits <-> coloured, textured digits",
    {"data": {"name": "styled:digits", "resolution": 32, "channels": 3},
     "model": {"name": "cyclegan", "blocks": 6, "g_width": 32, "d_width": 32, "d_layers": 2},
     "objective": {"name": "cyclegan"},
     "train": {"batch_size": 8, "steps": 3000, "lr_schedule": "linear", "lr_hold": 0.5},
     "log": _LOG}))


def task_defaults(raw: dict) -> dict:
    """The named task's defaults as config sections, for laying under `raw`. A model named
    by the user replaces the task's model section (its options belong to the task's model)."""
    name = raw.get("task", "generate")
    if not isinstance(name, str):
        return {}
    defaults = {k: dict(v) if isinstance(v, dict) else v for k, v in TASKS.get(name).defaults.items()}
    model = raw.get("model")
    if isinstance(model, dict) and "name" in model and model["name"] != defaults.get("model", {}).get("name"):
        defaults.pop("model", None)
    return defaults
