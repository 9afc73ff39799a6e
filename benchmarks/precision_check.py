"""Does a speed setting cost quality? Trains the same job for a fixed number of steps under
each setting ("arm") and several seeds, scores every run with `ganforge evaluate`, and prints
each arm's FIDs, the per-seed differences to the first arm and a 95% confidence interval of
the mean difference (paired t; the seed fixes the data order and the initial weights, so the
pairs share everything but the setting).

    python benchmarks/precision_check.py                          # fp32 vs bf16, seeds 0-5
    python benchmarks/precision_check.py --arms fp32,bf16 --seeds 0-9 --steps 1500
    python benchmarks/precision_check.py --arm compiled:train.compile=yes

Finished runs (an eval.json at the asked step) are reused and unfinished ones resumed, so an
interrupted check continues; a run started with other settings is refused, not reused.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
from pathlib import Path

from ganforge.cli import main as cli_main
from ganforge.evaluate import evaluate_run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="fp32,bf16",
                        help="comma-separated train.precision values, each an arm [fp32,bf16]")
    parser.add_argument("--arm", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                        help="an arm given by config keys (repeatable), added after --arms")
    parser.add_argument("--seeds", default="0-5", help="e.g. 0-5 or 0,3,7 [0-5]")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--preset", default=None, help="the job (default: ganforge's default job)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config key for every arm (repeatable)")
    parser.add_argument("--out", default="runs/precision-check")
    return parser.parse_args(argv)


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def parse_arms(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    arms = [(p, [f"train.precision={p}"]) for p in args.arms.split(",") if p]
    for text in args.arm:
        name, _, keys = text.partition(":")
        if not name or not keys:
            raise SystemExit(f"--arm {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE]")
        arms.append((name, keys.split(",")))
    return arms


def run_one(args, name: str, keys: list[str], seed: int) -> dict:
    """Train and evaluate one (arm, seed), or read the finished result."""
    out = Path(args.out) / f"{name}-s{seed}"
    settings = {"preset": args.preset, "keys": [*args.set, *keys]}
    record = out / "precision_check.json"   # what the run was started with
    if record.exists() and json.loads(record.read_text()) != settings:
        raise SystemExit(f"{out} was trained with other settings ({record.read_text().strip()}); "
                         f"give this check another --out")
    report_file = out / "eval.json"
    if report_file.exists():
        report = json.loads(report_file.read_text())
        if report["setup"]["step"] == args.steps:
            return {"arm": name, "seed": seed, "fid": report["model"]["fid"], "reused": True}
    command = ["train", "--steps", str(args.steps), "--seed", str(seed), "--out", str(out), "--quiet",
               "--set", "log.tensorboard=no"]
    if (out / "checkpoints" / "last.safetensors").exists():
        command += ["--resume", str(out)]
    elif args.preset:
        command += ["--preset", args.preset]
    for key in [*args.set, *keys]:
        command += ["--set", key]
    if not record.exists():
        out.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(settings) + "\n")
    if cli_main(command) != 0:
        raise SystemExit(f"training failed: ganforge {shlex.join(command)}")
    report = evaluate_run(out, quiet=True)
    return {"arm": name, "seed": seed, "fid": report["model"]["fid"], "command": shlex.join(command)}


def interval(differences: list[float]) -> tuple[float, float, float]:
    """Mean and 95% paired-t confidence interval of the differences."""
    from scipy import stats   # scikit-learn's own dependency

    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return mean, -math.inf, math.inf
    half = stats.t.ppf(0.975, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    return mean, mean - half, mean + half


def main(argv: list[str] | None = None) -> dict[str, dict[int, float]]:
    """Runs the check; returns each arm's FID per seed."""
    args = parse_args(argv)
    arms, seeds = parse_arms(args), parse_seeds(args.seeds)
    fids: dict[str, dict[int, float]] = {name: {} for name, _ in arms}
    for seed in seeds:
        for name, keys in arms:
            row = run_one(args, name, keys, seed)
            fids[name][seed] = row["fid"]
            print(json.dumps(row), flush=True)
    base = arms[0][0]
    print(f"\nFID at {args.steps} steps, seeds {args.seeds}")
    print("| arm | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | minus " + base + " (95% CI) |")
    print("|---|" + "---|" * len(seeds) + "---|---|")
    for name, _ in arms:
        values = [fids[name][s] for s in seeds]
        cell = ""
        if name != base:
            mean, low, high = interval([fids[name][s] - fids[base][s] for s in seeds])
            cell = f"{mean:+.2f} ({low:+.2f} to {high:+.2f})"
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values)
              + f" | {statistics.fmean(values):.2f} | {cell} |")
    return fids


if __name__ == "__main__":
    main()
