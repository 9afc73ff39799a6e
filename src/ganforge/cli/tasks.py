"""`ganforge tasks`: what `ganforge train --task NAME` can do, with each task's defaults."""
from __future__ import annotations

import argparse


def add_parser(commands, name: str) -> None:
    commands.add_parser(name, help="list the tasks (ganforge train --task NAME)",
                        description="List the tasks with the data, degradation and model each "
                                    "trains by default (any of them can be overridden).")


def run(args: argparse.Namespace) -> int:
    from ..tasks import TASKS

    rows = [("task", "data", "input made by", "model", "")]
    for name in TASKS.names():
        task = TASKS.get(name)
        data, model = task.defaults.get("data", {}), task.defaults.get("model", {})
        rows.append((name, data.get("name", "digits"), data.get("degrade", "") or "-",
                     model.get("name", "dcgan"), task.summary))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row[:4], widths)) + "  " + row[4])
    return 0
