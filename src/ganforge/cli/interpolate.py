"""`ganforge interpolate RUN --from SEED --to SEED`: a walk between two images, as a grid PNG
and an animated GIF or WebP; between classes at fixed noise for conditional models; style
mixing by layer range for style-based generators."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import options


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="interpolate between two seeds (or classes) of a generation run",
        description="Images along the path between two seeds' images: linear in w for stylegan, "
                    "spherical in z otherwise. Conditional models move between --class and "
                    "--class-to at the same time (the same seed at both ends: between classes "
                    "at fixed noise).")
    parser.add_argument("run", metavar="RUN", help="run directory of a generation run")
    parser.add_argument("--from", dest="seed_from", type=int, default=0, help="seed of the first image [0]")
    parser.add_argument("--to", dest="seed_to", type=int, default=1, help="seed of the last image [1]")
    parser.add_argument("--steps", type=int, default=8, help="images along the path, ends included [8]")
    parser.add_argument("--class", dest="class_", default=None, metavar="C",
                        help="conditional models: the class of the first image")
    parser.add_argument("--class-to", default=None, metavar="C",
                        help="conditional models: the class of the last image [default: --class]")
    parser.add_argument("--style-mix", default=None, metavar="A-B",
                        help="stylegan: instead of a path, seed --from's image with layers A-B "
                             "taken from seed --to (0 is the coarsest layer)")
    parser.add_argument("--out", default=None, help="grid PNG [RUN/samples/interpolate-FROM-TO.png]")
    parser.add_argument("--animation", default=None, metavar="FILE.gif|FILE.webp",
                        help="also an animation going there and back")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument("--checkpoint", default="last", help="last, best, step-NNNNNN or a .safetensors path")
    parser.add_argument("--device", default="cpu", type=options.device)


def layer_range(text: str) -> range:
    """'A-B' (inclusive) or 'A' -> range."""
    from ..errors import ConfigError
    try:
        first, _, last = text.partition("-")
        start, stop = int(first), int(last or first) + 1
    except ValueError:
        raise ConfigError(f"--style-mix {text!r}: expected layers as A-B, e.g. 0-3") from None
    if stop <= start:
        raise ConfigError(f"--style-mix {text!r}: the last layer comes before the first")
    return range(start, stop)


def run(args: argparse.Namespace) -> int:
    from .. import atomic
    from ..errors import ConfigError
    from ..imageio import grid, save_png, to_hwc
    from ..inference import require_new as refuse_existing
    from ..inference.latent import interpolate, style_mix
    from .generation import generation_model

    model = generation_model(args.run, args.checkpoint, args.device)
    args.class_, args.class_to = (None if c is None else model.class_index(c) for c in (args.class_, args.class_to))
    out = Path(args.out or Path(args.run) / "samples" / f"interpolate-{args.seed_from}-{args.seed_to}.png")
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {str(out)!r}: give a .png file")
    refuse_existing(out, args.force)
    if args.style_mix:
        images = style_mix(model.net, args.seed_from, args.seed_to, layer_range(args.style_mix), args.class_)
        save_png(grid(to_hwc(images)), out)
        print(f"wrote {out} (seed {args.seed_from} with layers {args.style_mix} of seed {args.seed_to})")
        return 0
    images = interpolate(model.net, args.seed_from, args.seed_to, args.steps, args.class_, args.class_to)
    frames = to_hwc(images)
    save_png(grid(frames, nrow=len(frames)), out)
    print(f"wrote {out} ({len(frames)} images)")
    if args.animation:
        from PIL import Image
        path = Path(args.animation)
        if path.suffix.lower() not in (".gif", ".webp"):
            raise ConfigError(f"--animation {args.animation!r}: give a .gif or .webp file")
        refuse_existing(path, args.force)
        pictures = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
        pictures = pictures + pictures[-2:0:-1]  # there and back
        with atomic.replacing(path) as tmp:
            pictures[0].save(tmp, format=path.suffix[1:].upper(), save_all=True,
                             append_images=pictures[1:], duration=100, loop=0)
        print(f"wrote {path} ({len(pictures)} frames)")
    return 0
