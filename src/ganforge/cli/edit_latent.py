"""`ganforge edit-latent RUN --latent FILE --direction CLASS --amount A`: move a projected
(or sampled) code along a class direction and render it."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import options


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="move a latent code along a direction and render it",
        description="Load a code written by ganforge project, move it by --amount along the "
                    "direction of a class (from ganforge directions), and write the image; several "
                    "comma-separated amounts give a strip.")
    parser.add_argument("run", metavar="RUN", help="the run the code and directions belong to")
    parser.add_argument("--latent", required=True, metavar="FILE", help="a .latent.safetensors file")
    parser.add_argument("--direction", required=True, metavar="CLASS", help="class name or index")
    parser.add_argument("--amount", default="1", help="amount, or comma-separated amounts [1]")
    parser.add_argument("--out", required=True, help="PNG file")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--checkpoint", default="last")
    parser.add_argument("--device", default="cpu", type=options.device)


def run(args: argparse.Namespace) -> int:
    import json

    import torch
    from safetensors import safe_open

    from ..data.imageset import to_uint8
    from ..errors import ConfigError, DataError
    from ..imageio import grid, save_png, to_hwc
    from ..inference.latent import load_latent, move, render
    from ..inference import require_new as refuse_existing
    from .generation import generation_model

    model = generation_model(args.run, args.checkpoint, args.device)
    out = Path(args.out)
    refuse_existing(out, args.force)
    try:
        amounts = [float(a) for a in args.amount.split(",") if a.strip()]
    except ValueError:
        raise ConfigError(f"--amount {args.amount!r}: expected numbers, e.g. 1 or 0,1,2") from None
    path = Path(args.run) / "directions.safetensors"
    if not path.is_file():
        raise DataError(f"{path}: no directions; make them with ganforge directions {args.run}")
    with safe_open(str(path), "pt") as handle:
        names = json.loads(handle.metadata()["ganforge"])["classes"]
        directions = handle.get_tensor("directions")
    index = names.index(args.direction) if args.direction in names else None
    if index is None and args.direction.isdigit() and int(args.direction) < len(directions):
        index = int(args.direction)
    if index is None:
        raise ConfigError(f"--direction {args.direction!r}: not a class of this run "
                          f"({', '.join(names)})")
    latent, _ = load_latent(args.latent)
    if latent.codes.shape[-1] != directions.shape[1]:
        raise ConfigError(f"{args.latent}: a {latent.kind} code of size {latent.codes.shape[-1]}, but the "
                          f"directions have size {directions.shape[1]} (another run or latent space)")
    with torch.no_grad():
        images = torch.cat([to_uint8(render(model.net, move(latent, directions[index], a)).cpu())
                            for a in amounts])
    save_png(grid(to_hwc(images), nrow=len(amounts)), out)
    print(f"wrote {out} ({len(amounts)} images, amounts {', '.join(f'{a:g}' for a in amounts)})")
    return 0
