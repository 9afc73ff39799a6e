"""`ganforge sample RUN`: images from a trained run as a grid, PNG files or an npz array."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import options


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="sample images from a trained run",
        description="Generate images with the run's (EMA) generator.")
    parser.add_argument("run", metavar="RUN", help="run directory written by ganforge train")
    parser.add_argument("-n", type=int, default=64, help="number of images [default: 64]")
    parser.add_argument("--seed", type=int, default=0, help="noise seed [default: 0]")
    parser.add_argument("--out", default=None,
                        help="grid.png for one grid, or DIR/ for one PNG per image "
                             "[default: RUN/samples/sample-seed<seed>.png]")
    parser.add_argument("--npz", default=None, metavar="FILE",
                        help="also write arrays x (N x H x W or N x H x W x 3, uint8) and y")
    parser.add_argument("--labels", default=None,
                        help="comma-separated class per image for conditional models, by index or name, "
                             "e.g. 0,1,2 or sneaker,bag (repeated to n) [default: cycle through the classes]")
    parser.add_argument("--class", dest="class_", default=None, metavar="C",
                        help="conditional models: every image of class C, an index or a name such as "
                             "sneaker (same as --labels C)")
    parser.add_argument("--truncation", type=float, default=None, metavar="PSI",
                        help="truncation trick, psi in [0, 2]: stylegan moves w towards its mean, "
                             "other models scale z; lower is more typical, less varied, above 1 more "
                             "varied [default: off]")
    parser.add_argument("--keep-best", type=float, default=None, metavar="SHARE",
                        help="GANs: draw n/SHARE candidates and keep the n the run's discriminator "
                             "rates best, SHARE in (0, 1] (more precise) [default: keep all]")
    parser.add_argument("--checkpoint", default="last",
                        help="last, best, step-NNNNNN or a .safetensors path [default: last]")
    parser.add_argument("--device", default="cpu", type=options.device, help="cpu, cuda, ... [default: cpu]")
    parser.add_argument("--batch-size", type=int, default=500, help="images per forward pass [default: 500]")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (there is none either when stderr is not a terminal)")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..imageio import grid, numbered_paths, save_each, save_npz, save_png
    from ..inference import load
    from .progress import progress_bar

    if args.n < 1:
        raise ConfigError(f"-n {args.n}: must be at least 1")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size}: must be at least 1")
    labels = None
    if args.class_ is not None:
        if args.labels is not None:
            raise ConfigError("give --class or --labels, not both")
        args.labels = args.class_
    model = load(args.run, args.checkpoint, args.device)
    if not hasattr(model, "sample"):
        raise ConfigError(f"run {args.run!r} is an editing run (task {model.task!r}): it edits "
                          f"images instead of sampling them; use ganforge edit")
    if args.labels is not None:
        if not model.num_classes:
            option = "--class" if args.class_ is not None else "--labels"
            raise ConfigError(f"{option} {args.labels!r}: run {args.run!r} is not class-conditional; drop {option}")
        labels = [model.class_index(x.strip()) for x in args.labels.split(",") if x.strip()]
        labels = (labels * args.n)[:args.n] if labels else None
    if labels is None and model.num_classes:
        labels = [i % model.num_classes for i in range(args.n)]  # recorded as y in --npz
    out = args.out or str(Path(args.run) / "samples" / f"sample-seed{args.seed}.png")
    each = out.endswith(("/", "\\")) or Path(out).is_dir()
    if not each and Path(out).suffix.lower() != ".png":
        raise ConfigError(f"--out {out!r}: give a .png file for a grid or a DIR/ for one file per image")
    _refuse_overwrite(numbered_paths(out, args.n) if each else [Path(out)], args.force)
    if args.npz:
        if Path(args.npz).suffix.lower() != ".npz":   # numpy and every reader expect the name
            raise ConfigError(f"--npz {args.npz!r}: give a .npz file")
        _refuse_overwrite([Path(args.npz)], args.force)
    with progress_bar(args.n, "image", args.quiet) as bar:
        images = model.sample(args.n, seed=args.seed, labels=labels, batch_size=args.batch_size,
                              truncation=args.truncation, progress=bar, keep_best=args.keep_best)
    if each:
        paths = save_each(images, out)
        print(f"wrote {len(paths)} images to {out}")
    else:
        save_png(grid(images), out)
        print(f"wrote a grid of {len(images)} images to {out}")
    if args.npz:
        save_npz(images, args.npz, labels)
        print(f"wrote arrays to {args.npz}")
    return 0


def _refuse_overwrite(paths: list[Path], force: bool) -> None:
    from ..errors import DataError

    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise DataError(f"{existing[0]} exists ({len(existing)} output file(s) would be overwritten); "
                        f"pass --force to overwrite")
