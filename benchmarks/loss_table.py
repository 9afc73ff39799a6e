"""Loss x regulariser table: each row trains the default DCGAN on the digits for the same
time budget, then `ganforge evaluate` scores its last checkpoint. Prints a Markdown table
(the one in the README) with the command of each row.

    python benchmarks/loss_table.py --budget 60 --out runs/loss-table
"""
from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from ganforge.cli import main as cli_main
from ganforge.evaluate import evaluate_run

ROWS = [
    ("ns", []),
    ("lsgan", ["--set", "objective.loss=lsgan"]),
    ("hinge + spectral norm", ["--set", "objective.loss=hinge", "--set", "objective.spectral_norm=true"]),
    ("wgan (clipping), 5 D steps", ["--set", "objective.loss=wgan", "--d-steps", "5", "--lr", "5e-5",
                                    "--set", "train.beta1=0.0"]),
    ("wgan-gp, 5 D steps, no BN in D", ["--set", "objective.loss=wgan-gp", "--d-steps", "5",
                                        "--set", "model.d_batchnorm=false", "--lr", "1e-4",
                                        "--set", "train.beta1=0.0", "--set", "train.beta2=0.9"]),
    ("ns + lazy R1 (gamma 1, every 4)", ["--set", "objective.r1_gamma=1", "--set", "objective.r1_every=4"]),
    ("ns + label smoothing 0.1", ["--set", "objective.label_smoothing=0.1"]),
    ("ns + DiffAugment (translation, cutout)", ["--set", "objective.augment=translation,cutout"]),
    ("ns + ADA", ["--set", "objective.ada=true"]),
    ("hinge + TTUR (lr_d 4e-4, lr_g 1e-4)", ["--set", "objective.loss=hinge", "--set", "train.lr_d=4e-4",
                                             "--set", "train.lr_g=1e-4"]),
    ("conditional ns (projection D)", ["--set", "model.conditional=true"]),
    ("conditional ns + ACGAN", ["--set", "model.conditional=true", "--set", "objective.acgan_weight=1"]),
    ("conditional ns + DiffAugment (translation, cutout)", ["--set", "model.conditional=true", "--set",
                                                           "objective.augment=translation,cutout"]),
]
COLUMNS = ["fid", "kid", "precision", "recall", "coverage", "classes_present", "cas"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of training per row")
    parser.add_argument("--out", default="runs/loss-table")
    parser.add_argument("--only", default=None, help="comma-separated row numbers (1-based)")
    args = parser.parse_args()
    chosen = [int(i) - 1 for i in args.only.split(",")] if args.only else range(len(ROWS))
    results = []
    for index in chosen:
        name, options = ROWS[index]
        out = Path(args.out) / f"row{index + 1:02d}"
        command = ["ganforge", "train", "--time-budget", f"{args.budget:g}", "--steps", "1000000",
                   *options, "--out", str(out), "--quiet", "--set", "health.enabled=false"]
        start = time.perf_counter()
        assert cli_main(command[1:]) == 0, command
        wall = time.perf_counter() - start
        report = evaluate_run(out, quiet=True)
        results.append({"row": name, "command": shlex.join(command),
                        "steps": report["setup"]["step"], "wall_s": wall, **report["model"],
                        "floor": report["floor"]})
        print(json.dumps({k: v for k, v in results[-1].items() if k != "floor"}), flush=True)
    floor = results[0]["floor"] if results else {}
    print()
    print("| setting | G steps | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    print("| real held-out (floor) | | " + " | ".join(_fmt(floor.get(c)) for c in COLUMNS) + " |")
    for row in results:
        print(f"| {row['row']} | {row['steps']} | " + " | ".join(_fmt(row.get(c)) for c in COLUMNS) + " |")
    print()
    for i, row in enumerate(results, 1):
        print(f"{i}. `{row['command']}`")


def _fmt(value) -> str:
    return "" if value is None else f"{value:.3g}"


if __name__ == "__main__":
    main()
