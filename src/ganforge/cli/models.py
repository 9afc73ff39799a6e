"""`ganforge models`: the registered architectures, one line each."""
from __future__ import annotations

import argparse


def add_parser(commands, name: str) -> None:
    commands.add_parser(name, help="list the architectures (ganforge train --model NAME)",
                        description="List the registered architectures with the objective that "
                                    "trains them, the resolutions they support and a summary.")


def run(args: argparse.Namespace) -> int:
    from ..models import MODELS

    rows = []
    for name in MODELS.names():
        arch = MODELS.get(name)
        sizes = "any size" if arch.resolutions is None else ",".join(map(str, arch.resolutions))
        rows.append((name, arch.objective, sizes, arch.summary))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row[:3], widths)) + "  " + row[3])
    return 0
