"""`ganforge edit RUN INPUT... --out DIR`: apply a trained editing run to image files."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import options


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="edit images with a trained editing run (inpaint, super-resolve, ...)",
        description="Apply an editing run to image files or folders of any size and mode "
                    "(gray, RGB, RGBA, 16-bit PNG). One output file per input, in --out.")
    parser.add_argument("run", metavar="RUN", help="run directory of an editing task")
    parser.add_argument("inputs", metavar="INPUT", nargs="+", help="image files or folders")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--mask", default=None, metavar="MASK.png",
                        help="inpaint/replace: the hole (white on black, or the transparent part "
                             "of an image with alpha); same size as every input")
    parser.add_argument("--box", default=None, metavar="X,Y,W,H",
                        help="inpaint/replace: a rectangular hole, in pixels from the top left")
    parser.add_argument("--class", dest="class_", default=None, metavar="NAME",
                        help="replace: the class to draw in the hole (name or index)")
    parser.add_argument("--scale", type=int, default=None,
                        help="super-resolve: the factor (checked against the run's)")
    add_file_options(parser)


def add_file_options(parser) -> None:
    """The options every command that turns image files into image files shares."""
    parser.add_argument("--tile", type=int, default=None, metavar="PIXELS",
                        help="run in overlapping tiles of this many input pixels (bounded memory "
                             "for large photos) [default: whole image]")
    parser.add_argument("--overlap", type=int, default=None, metavar="PIXELS",
                        help="context around each tile [default: from the network's receptive field]")
    parser.add_argument("--checkpoint", default="last", help="last, best, step-NNNNNN [default: last]")
    parser.add_argument("--device", default="cpu", type=options.device, help="cpu, cuda, ... [default: cpu]")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data.masks import box_mask, load_mask, parse_box
    from ..errors import ConfigError
    from ..inference import TrainedEditor, load
    from ..data.imageset import match_channels

    model = load(args.run, args.checkpoint, args.device)
    if not isinstance(model, TrainedEditor):
        other = "ganforge translate" if hasattr(model, "translate") else "ganforge sample"
        raise ConfigError(f"run {args.run!r} is not an editing run (task {model.config.task!r}); "
                          f"use {other}")
    if args.mask and args.box:
        raise ConfigError("give --mask or --box, not both")
    if model.needs_mask and not (args.mask or args.box):
        raise ConfigError(f"run {args.run!r} ({model.task}) fills a hole: give --mask MASK.png or --box x,y,w,h")
    if not model.needs_mask and (args.mask or args.box):
        raise ConfigError(f"run {args.run!r} ({model.task}) takes no mask; drop --mask/--box")
    if args.scale is not None and args.scale != model.scale:
        raise ConfigError(f"--scale {args.scale}: run {args.run!r} was trained to upscale x{model.scale}")
    labels = None
    if model.num_classes:
        if args.class_ is None:
            raise ConfigError(f"run {args.run!r} ({model.task}) draws a class in the hole: give "
                              f"--class NAME ({', '.join(model.class_names)})")
        labels = torch.tensor([model.class_index(args.class_)])
    elif args.class_ is not None:
        model.class_index(args.class_)  # says the run is not conditional
    box = parse_box(args.box, "--box") if args.box else None

    def transform(tensor, path):
        height, width = tensor.shape[-2:]
        mask = None
        if args.mask:
            mask = load_mask(args.mask, height, width)[None]
        elif box is not None:
            mask = box_mask(box, height, width, str(path), "--box")
        result = model.edit_tensor(match_channels(tensor, model.in_channels), mask, labels,
                                   args.tile, args.overlap)
        if tensor.shape[1] == 1 and model.in_channels == model.channels == 3:
            result = match_channels(result, 1)  # a gray photo through an RGB model stays gray
        return result

    return apply_to_files(args, transform)


def apply_to_files(args: argparse.Namespace, transform) -> int:
    """Run `transform(float 1 x C x H x W in [-1, 1], path) -> float 1 x C' x H' x W'` on every
    input file (args.inputs: files and folders) into args.out, one PNG per input keeping
    alpha and bit depth; refuses to overwrite without args.force, names unreadable inputs."""
    import torch
    from tqdm import tqdm

    from .progress import showing

    from ..errors import ConfigError, DataError
    from ..inference.images import list_inputs, output_path, read_image_file, write_image_file

    files = list_inputs(args.inputs)
    out_dir = Path(args.out)
    targets = [output_path(path, out_dir) for path in files]
    if len(set(targets)) != len(targets):
        raise ConfigError("two inputs share a file name; their outputs would collide in --out")
    existing = [t for t in targets if t.exists()]
    if existing and not args.force:
        raise DataError(f"{existing[0]} exists ({len(existing)} output(s) would be overwritten); "
                        f"pass --force to overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    show = showing(args.quiet) and len(files) > 1
    for path, target in tqdm(list(zip(files, targets)), disable=not show, unit="image"):
        try:
            image = read_image_file(path)
        except DataError as error:
            failed.append(str(error))
            continue
        tensor = torch.from_numpy(image.pixels).permute(2, 0, 1)[None].float() * 2 - 1
        result = transform(tensor, path)
        pixels = ((result[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
        write_image_file(target, pixels, image.alpha, image.bits, force=args.force)
    done = len(files) - len(failed)
    print(f"wrote {done} image(s) to {out_dir}")
    if failed:
        raise DataError(f"{len(failed)} of {len(files)} input(s) could not be read: {'; '.join(failed[:3])}"
                        + ("; ..." if len(failed) > 3 else ""))
    return 0
