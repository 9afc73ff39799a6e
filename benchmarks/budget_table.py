"""Shared runner of the same-time-budget tables (loss_table.py, model_zoo.py): each row
trains with `ganforge train --time-budget`, then `ganforge evaluate` scores its last
checkpoint; prints one JSON line per row, then a Markdown table and the rows' commands."""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import time
from pathlib import Path

from ganforge import checkpoint
from ganforge.cli import main as cli_main
from ganforge.evaluate import evaluate_run
from ganforge.rundir import find_checkpoint


def parse_args(doc: str, default_budget: float, default_out: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--budget", type=float, default=default_budget, help="seconds of training per row")
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--only", default=None, help="comma-separated row numbers (1-based)")
    parser.add_argument("--precision", default="auto",
                        help="train.precision of every row (the README tables were measured in fp32)")
    return parser.parse_args()


def run_rows(rows: list[tuple[str, list[str]]], args: argparse.Namespace, columns: list[str]) -> list[dict]:
    """Train and score the chosen rows; the table has `columns` of evaluate's scores plus
    G steps, parameters, training images/s and the FID of the first in-run evaluation."""
    chosen = [int(i) - 1 for i in args.only.split(",")] if args.only else range(len(rows))
    results = []
    for index in chosen:
        name, options = rows[index]
        out = Path(args.out) / f"row{index + 1:02d}"
        command = ["ganforge", "train", "--time-budget", f"{args.budget:g}", "--steps", "1000000",
                   *options, "--precision", args.precision, "--out", str(out), "--quiet",
                   "--set", "health.enabled=false"]
        start = time.perf_counter()
        assert cli_main(command[1:]) == 0, command
        wall = time.perf_counter() - start
        report = evaluate_run(out, quiet=True)
        results.append({"row": name, "command": shlex.join(command), "steps": report["setup"]["step"],
                        "wall_s": wall, **_run_facts(out), **report["model"], "floor": report["floor"]})
        print(json.dumps({k: v for k, v in results[-1].items() if k != "floor"}), flush=True)
    floor = results[0]["floor"] if results else {}
    print()
    print("| setting | G steps | params | img/s | first eval FID | " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|" + "---|" * len(columns))
    print("| real held-out (floor) | | | | | " + " | ".join(_fmt(floor.get(c)) for c in columns) + " |")
    for row in results:
        print(f"| {row['row']} | {row['steps']} | {row['params'] / 1e6:.2f} M | {_fmt(row['images_per_s'])} | "
              f"{_fmt(row['first_eval_fid'])} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    print()
    for i, row in enumerate(results, 1):
        print(f"{i}. `{row['command']}`")
    return results


def _run_facts(run: Path) -> dict:
    """Parameters of all networks, median training images/s, first in-run evaluation FID."""
    tensors, _ = checkpoint.load(find_checkpoint(run, "last"), "nets.")
    params = sum(t.numel() for k, t in tensors.items() if "running_" not in k and "num_batches" not in k)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["images_per_s"] for r in lines if "images_per_s" in r]
    evals = [r["eval_fid"] for r in lines if "eval_fid" in r]
    return {"params": params, "images_per_s": statistics.median(speeds) if speeds else None,
            "first_eval_fid": evals[0] if evals else None}


def _fmt(value) -> str:
    return "" if value is None else f"{value:.3g}"
