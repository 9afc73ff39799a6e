"""`ganforge runs [DIR]`: the runs in a folder, newest first: what each trains on what, how far
it got, its best FID and whether it finished, was stopped (resumable) or diverged."""
from __future__ import annotations

import argparse
import json


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="list the runs in a folder (model, data, step, time, best FID, status)",
        description="List the run directories under DIR (searched a few levels deep), newest "
                    "first. Status: finished (its steps or time budget reached), stopped "
                    "(interrupted or terminated; resume it with ganforge train --resume), diverged "
                    "(the health controller gave up), running? (no status yet and files changed in "
                    "the last 10 minutes), unknown (no status for its last session).")
    parser.add_argument("dir", metavar="DIR", nargs="?", default="runs", help="[default: runs]")
    parser.add_argument("--json", action="store_true", help="print a JSON list of the rows")


def run(args: argparse.Namespace) -> int:
    from ..runs_table import format_runs, list_runs

    rows = list_runs(args.dir)
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
    elif rows:
        print(format_runs(rows))
    else:
        print(f"no runs in {args.dir} (a run directory holds config.yaml and metrics.jsonl or checkpoints/)")
    return 0
