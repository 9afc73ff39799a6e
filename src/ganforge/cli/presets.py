"""`ganforge presets`: the named presets, one line each."""
from __future__ import annotations

import argparse


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="list the named presets (ganforge train --preset NAME)",
        description="List the presets: configs with published hyper-parameters. Show one in "
                    "full with: ganforge train --preset NAME --dry-run")
    parser.add_argument("name", nargs="?", default=None, help="print this preset's YAML")


def run(args: argparse.Namespace) -> int:
    from ..presets import preset_text, describe, names

    if args.name is not None:
        print(preset_text(args.name), end="")
        return 0
    width = max(map(len, names()))
    for name in names():
        print(f"{name:<{width}}  {describe(name)}")
    return 0
