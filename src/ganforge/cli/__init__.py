"""The `ganforge` command: one module per subcommand, each thin (parse, call the API, print)."""
from __future__ import annotations

import argparse
import sys

from ..errors import GanforgeError
from . import (bench, classify, directions, edit, edit_latent, evaluate, export, interpolate, models, presets,
               project, reconstruct, report, runs, sample, serve, tasks, texture, train, translate)

COMMANDS = {"train": train, "sample": sample, "edit": edit, "evaluate": evaluate,
            "reconstruct": reconstruct, "classify": classify, "bench": bench, "models": models,
            "tasks": tasks, "presets": presets, "interpolate": interpolate, "project": project,
            "directions": directions, "edit-latent": edit_latent, "translate": translate,
            "texture": texture, "serve": serve, "export": export, "report": report, "runs": runs}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="ganforge", description="Train GANs, VAEs, image editors and translators; sample, edit, translate and evaluate.")
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(commands, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command].run(args) or 0
    except GanforgeError as error:
        print(f"ganforge {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ganforge {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`ganforge runs | head`): stop quietly, as other tools do, and keep
        # Python from complaining again when it flushes stdout at exit.
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
