"""`ganforge texture train IMAGE`, `texture sample RUN --size WxH`, `texture gram IMAGE --size WxH`."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import options

TRAIN_DEFAULTS = {"crop": 64, "steps": 2000, "batch_size": 16}


def parse_size(text: str) -> tuple[int, int]:
    """'256x192' -> (256, 192): width, height."""
    from ..errors import ConfigError

    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 256x256") from None
    if width < 1 or height < 1:
        raise ConfigError(f"--size {text!r}: both sides must be at least 1 pixel")
    return width, height


def add_train(sub, name: str) -> None:
    parser = sub.add_parser(name, help="learn a texture from one image (a spatial GAN on its random crops)")
    parser.add_argument("image", metavar="IMAGE", help="the exemplar: one image file of any size")
    parser.add_argument("--out", default=None, help="run directory [default: runs/<time>-texture-<image>]")
    parser.add_argument("--crop", type=int, default=TRAIN_DEFAULTS["crop"],
                        help=f"training crop side, a multiple of 16 [default: {TRAIN_DEFAULTS['crop']}]")
    parser.add_argument("--steps", type=int, default=TRAIN_DEFAULTS["steps"],
                        help=f"generator updates [default: {TRAIN_DEFAULTS['steps']}]")
    parser.add_argument("--time-budget", type=float, default=None, help="seconds; stop cleanly when spent")
    parser.add_argument("--batch-size", type=int, default=TRAIN_DEFAULTS["batch_size"],
                        help=f"crops per batch [default: {TRAIN_DEFAULTS['batch_size']}]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any config key, e.g. model.z_channels=8 (repeatable)")


def run_train(args: argparse.Namespace) -> int:
    from .. import api
    from ..errors import DataError
    from ..inference.images import read_image_file

    image = Path(args.image).expanduser()
    if not image.is_file():
        raise DataError(f"exemplar {str(image)!r} does not exist or is not a file")
    channels = 1 if read_image_file(image).pixels.shape[-1] == 1 else 3
    out = args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-texture-{image.stem}"
    overrides = {"data.name": f"patches:{image.resolve()}", "data.channels": channels,
                 "data.resolution": args.crop, "model.name": "spatial", "train.steps": args.steps,
                 "train.batch_size": args.batch_size, "train.seed": args.seed, "out": out}
    if args.time_budget is not None:
        overrides["train.time_budget"] = args.time_budget
    result = api.train(overrides=[*(f"{k}={v}" for k, v in overrides.items()), *args.set])
    print(f"{result.dir}: step {result.step}, {result.elapsed_s:.1f} s ({result.stop_reason}); "
          f"sample it with ganforge texture sample {result.dir} --size 256x256 --out texture.png")
    return 0


def add_sample(sub, name: str) -> None:
    parser = sub.add_parser(name, help="a texture of any size from a texture run (tileable with --tileable)")
    parser.add_argument("run", metavar="RUN", help="a run of ganforge texture train")
    parser.add_argument("--size", required=True, help="WIDTHxHEIGHT in pixels, e.g. 512x256")
    parser.add_argument("--tileable", action="store_true",
                        help="wrap seamlessly (sides must be multiples of the generator's stride, 16)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed [default: 0]")
    parser.add_argument("--match-histogram", nargs="?", const="", default=None, metavar="IMAGE",
                        help="map the output's tones onto the exemplar's histogram (the run's own "
                             "exemplar, or IMAGE if it moved): exact colours and contrast")
    parser.add_argument("--out", required=True, help="output image file (.png, .jpg, .webp, .tif)")
    parser.add_argument("--checkpoint", default="last", help="last, best, step-NNNNNN [default: last]")
    parser.add_argument("--device", default="cpu", type=options.device, help="cpu, cuda, ... [default: cpu]")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")


def run_sample(args: argparse.Namespace) -> int:
    from ..inference import load, require_new
    from ..texture.synthesis import exemplar_of, match_histogram, read_exemplar, sample_gan

    width, height = parse_size(args.size)
    require_new(args.out, args.force)
    model = load(args.run, args.checkpoint, args.device)
    exemplar = None   # read before sampling, so that a moved exemplar fails fast
    if args.match_histogram is not None:
        exemplar = read_exemplar(args.match_histogram or exemplar_of(args.run, model.config),
                                 model.config.data.channels)
    texture = sample_gan(model.net, width, height, args.seed, args.tileable)[0]
    if exemplar is not None:
        texture = match_histogram(texture, exemplar)
    _write(args.out, texture, args.force)
    return 0


def add_gram(sub, name: str) -> None:
    parser = sub.add_parser(name, help="training-free synthesis: optimise noise to match the exemplar's "
                                       "Gram matrices (random CNN features)")
    parser.add_argument("image", metavar="IMAGE", help="the exemplar image")
    parser.add_argument("--size", required=True, help="WIDTHxHEIGHT in pixels")
    parser.add_argument("--steps", type=int, default=None, help="optimisation steps [default: 400]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output image file")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")


def run_gram(args: argparse.Namespace) -> int:
    import numpy as np

    from ..inference import read_image_file, require_new
    from ..texture.synthesis import GRAM_STEPS, gram_synthesis

    width, height = parse_size(args.size)
    require_new(args.out, args.force)
    pixels = read_image_file(args.image).pixels
    exemplar = np.round(pixels * 255).astype(np.uint8)
    texture = gram_synthesis(exemplar, width, height, args.seed, args.steps or GRAM_STEPS)
    _write(args.out, texture, args.force)
    return 0


def _write(path: str, texture, force: bool) -> None:
    from ..inference import write_image_file

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_image_file(path, texture.astype("float32") / 255.0, force=force)
    print(f"wrote {path} ({texture.shape[1]}x{texture.shape[0]})")


SUBCOMMANDS = {"train": (add_train, run_train), "sample": (add_sample, run_sample), "gram": (add_gram, run_gram)}
