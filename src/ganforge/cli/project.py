"""`ganforge project RUN IMAGE...`: GAN inversion, the latent code whose image matches a
real image (written as a latent file and a PNG, with the reconstruction's PSNR)."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import options


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="find the latent code of real images (GAN inversion)",
        description="Optimise a latent code (z; w for stylegan, or w+ with --kind w+) so that the "
                    "generator's image matches each input (pixel loss plus the feature classifier's "
                    "features, with a noise regulariser). Inputs are centre-cropped to a square and "
                    "resized to the run's resolution. Writes OUT/NAME.png and "
                    "OUT/NAME.latent.safetensors (for ganforge edit-latent).")
    parser.add_argument("run", metavar="RUN", help="run directory of a generation run")
    parser.add_argument("inputs", metavar="IMAGE", nargs="+", help="image files or folders")
    parser.add_argument("--out", default=None, help="output folder [RUN/projections]")
    parser.add_argument("--class", dest="class_", default=None, metavar="C",
                        help="conditional models: the class of the images, an index or a name")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per image [300]")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate [0.05]")
    parser.add_argument("--kind", choices=("z", "w", "w+"), default=None,
                        help="latent space [z; w for stylegan]")
    parser.add_argument("--classifier", default="auto", metavar="RUN|auto|none",
                        help="feature network of the feature loss: a classify run, the cached "
                             "evaluation classifier (auto; trained once if missing), or none")
    parser.add_argument("--feature-weight", type=float, default=0.1, help="weight of the feature loss [0.1]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random starting codes [0]")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument("--checkpoint", default="last")
    parser.add_argument("--device", default="cpu", type=options.device)


def fit_to_run(path, channels: int, resolution: int):
    """uint8 1 x C x R x R: the image file centre-cropped to a square, resized, in C channels."""
    import numpy as np
    import torch
    from PIL import Image

    from ..inference import read_image_file, to_model_channels
    pixels = np.round(read_image_file(path).pixels * 255).astype(np.uint8)  # read as floats in [0, 1]
    h, w = pixels.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = pixels[top:top + side, left:left + side]
    image = Image.fromarray(square[..., 0] if square.shape[-1] == 1 else square)
    image = np.asarray(image.resize((resolution, resolution), Image.Resampling.LANCZOS))
    image = to_model_channels(image if image.ndim == 3 else image[..., None], channels)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]


def feature_network(choice: str, config, device: str):
    """The differentiable features of the feature loss (None: `none`)."""
    from ..inference import load_classifier
    from ..inference.latent import classifier_features
    if choice == "none":
        return None
    if choice == "auto":
        from ..evaluate import feature_classifier
        choice = feature_classifier(config.data)
    return classifier_features(load_classifier(choice, device=device))


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..imageio import save_png, to_hwc
    from ..inference import list_inputs
    from ..inference.latent import project, save_latent
    from ..inference import require_new as refuse_existing
    from .generation import generation_model

    if args.steps < 1:
        raise ConfigError(f"--steps {args.steps}: must be at least 1")
    model = generation_model(args.run, args.checkpoint, args.device)
    net = model.net
    if args.class_ is not None:
        args.class_ = model.class_index(args.class_)
    out = Path(args.out or Path(args.run) / "projections")
    paths = list_inputs(args.inputs)
    for path in paths:
        for target in (out / f"{path.stem}.png", out / f"{path.stem}.latent.safetensors"):
            refuse_existing(target, args.force)
    features = feature_network(args.classifier, model.config, args.device)
    for path in paths:
        target = fit_to_run(path, net.channels, net.resolution)
        latent, image, info = project(net, target, args.class_, args.steps, args.lr, features,
                                      args.feature_weight if features else 0.0, kind=args.kind,
                                      seed=args.seed)
        save_png(to_hwc(image)[0], out / f"{path.stem}.png")
        save_latent(latent, out / f"{path.stem}.latent.safetensors",
                    {"run": str(args.run), "image": str(path), "psnr": info["psnr"]})
        print(f"{path}: PSNR {info['psnr_start']:.2f} -> {info['psnr']:.2f} dB "
              f"({latent.kind}, {args.steps} steps); wrote {out / path.stem}.png and .latent.safetensors")
    return 0
