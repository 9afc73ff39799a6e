"""`ganforge texture train|sample|analyze|classify`: texture synthesis, analysis and recognition.

Each sub-command lives in its own module (texture_synth, texture_analyze, texture_classify),
which exposes SUBCOMMANDS = {name: (add_parser(subparsers, name), run(args))}."""
from __future__ import annotations

import argparse

from . import texture_analyze, texture_classify, texture_synth

SUBCOMMANDS = {**texture_synth.SUBCOMMANDS, **texture_analyze.SUBCOMMANDS, **texture_classify.SUBCOMMANDS}


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="texture synthesis from one exemplar, texture analysis and recognition",
        description="Learn a texture from one image and sample it at any size (tileable too), "
                    "describe textures (co-occurrence, local binary patterns, CNN Gram statistics) "
                    "and recognise them.")
    sub = parser.add_subparsers(dest="texture_command", metavar="SUBCOMMAND")
    for key, (add, _) in SUBCOMMANDS.items():
        add(sub, key)
    parser.set_defaults(texture_parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.texture_command is None:
        args.texture_parser.print_help()
        return 2
    return SUBCOMMANDS[args.texture_command][1](args) or 0
