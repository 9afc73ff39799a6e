"""`ganforge reconstruct RUN`: input/reconstruction pairs from a model with an encoder (VAE)."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import options


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(name, help="encode and decode images with a VAE run",
                                 description="Write a grid of input / reconstruction pairs.")
    parser.add_argument("run", metavar="RUN", help="run directory of a VAE")
    parser.add_argument("--input", default=None,
                        help="data set to reconstruct (digits, folder:PATH, npz:PATH, ...) "
                             "[default: the run's own test split, or its training images]")
    parser.add_argument("-n", type=int, default=32, help="images [default: 32]")
    parser.add_argument("--out", default=None, help="grid PNG [default: RUN/samples/reconstructions.png]")
    parser.add_argument("--checkpoint", default="last", help="[default: last]")
    parser.add_argument("--device", default="cpu", type=options.device, help="[default: cpu]")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data import load_dataset
    from ..errors import ConfigError, DataError
    from ..imageio import grid, save_png, to_hwc
    from ..inference import load

    if args.n < 1:
        raise ConfigError(f"-n {args.n}: must be at least 1")
    model = load(args.run, args.checkpoint, args.device)
    if not hasattr(model, "reconstruct"):
        raise ConfigError(f"run {args.run!r} is an editing run (task {model.task!r}); use ganforge edit")
    data_config = model.config.data
    if args.input is not None:
        data_config.name = args.input
    try:
        data = load_dataset(data_config, "test")
    except DataError:
        data = load_dataset(data_config, "train")
    images = data.images[:args.n]
    pairs = torch.stack([images, model.reconstruct(images)], dim=1).flatten(0, 1)
    out = args.out or str(Path(args.run) / "samples" / "reconstructions.png")
    save_png(grid(to_hwc(pairs), nrow=16), out)
    print(f"wrote {len(images)} input / reconstruction pairs (side by side) to {out}")
    return 0
