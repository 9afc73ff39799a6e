"""`ganforge translate RUN INPUT... --direction a2b|b2a --out DIR`: apply a translation run."""
from __future__ import annotations

import argparse


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="translate images between the two domains of a translation run (CycleGAN)",
        description="Translate image files or folders of any size (padded to the network's stride, "
                    "or in tiles) from domain A to B or back. One output file per input, in --out.")
    parser.add_argument("run", metavar="RUN", help="run directory of a translate task")
    parser.add_argument("inputs", metavar="INPUT", nargs="+", help="image files or folders")
    parser.add_argument("--direction", default="a2b", choices=("a2b", "b2a"),
                        help="a2b: domain A (--dataset) to B (--dataset-b); b2a: back [default: a2b]")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    from .edit import add_file_options
    add_file_options(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..inference import TrainedTranslator, load
    from .edit import apply_to_files

    model = load(args.run, args.checkpoint, args.device)
    if not isinstance(model, TrainedTranslator):
        raise ConfigError(f"run {args.run!r} is not a translation run (task {model.config.task!r}); "
                          f"train one with --task translate")
    return apply_to_files(args, lambda tensor, path: model.translate_tensor(
        tensor, args.direction, args.tile, args.overlap))
