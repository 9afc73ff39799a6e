"""Few-shot generation with transfer: FID after a fixed CPU budget on 100 and 1,000 images of
classes never seen in pretraining, from scratch against `--init-from` a run pretrained on the
other classes, with and without FreezeD, with and without DiffAugment.

    python benchmarks/transfer_table.py --data-dir data                 # the full table (~1.5 h)
    python benchmarks/transfer_table.py --data-dir data --quick         # a smoke run (minutes)
    python benchmarks/transfer_table.py --data-dir data --dataset fashion-mnist --seeds 0,1,2

What runs (every training run is the `ganforge` command a user would type, printed with the table):
- pretraining, once: the `fewshot-dcgan` preset on every training image of the classes
  --source-classes (default 0-4), without augmentation, for --pretrain-budget seconds, seed 0;
- the target: the other classes (--target-classes, default 5-9), limited to each of --sizes
  images (`data.limit`: a fixed class-balanced subset, the same for every row and seed);
- per size, row and seed, one run of the preset on the target for --budget seconds: from
  scratch or `--init-from` the pretrained run, with FreezeD (`--freeze D:N`) or not, with the
  preset's DiffAugment or without (`objective.augment=`); the health controller is off, so
  that it adds no augmentation of its own to the rows without it;
- scoring: FID, recall and precision of the EMA generator's samples against every training
  image of the target classes, in the feature space of a classifier trained once on those
  images (the "feature classifier of the target set"); as many samples as the target's
  held-out test images, beside the same numbers for those test images (the real-data floor).

Each cell's JSON line is appended to OUT/results.jsonl and reused when the script runs
again (an interrupted cell is trained again from the start, never resumed: that would give it
a fresh budget on top of the time it had). The Markdown table, mean ± standard deviation
over seeds, goes to stdout and OUT/transfer_table.md. Budgets are wall-clock seconds: run the
table on an otherwise idle machine, or the rows get fewer steps than they would.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import time
from pathlib import Path

import ganforge
from ganforge.cli import main as cli_main
from ganforge.config import DataConfig
from ganforge.evaluate import ClassifierFeatures, Evaluator

PRESET = "fewshot-dcgan"
RESOLUTION = 32
# Row name -> (start from the pretrained run, freeze D's first blocks, DiffAugment).
ROWS = {
    "scratch": (False, False, False),
    "scratch + DiffAugment": (False, False, True),
    "init-from": (True, False, False),
    "init-from + DiffAugment": (True, False, True),
    "init-from + FreezeD": (True, True, False),
    "init-from + FreezeD + DiffAugment": (True, True, True),
}
COLUMNS = ["fid", "recall", "precision"]
QUICK = {"sizes": "100", "seeds": "0", "budget": 10.0, "pretrain_budget": 20.0, "classifier_steps": 100,
         "samples": 300}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data", help="folder with MNIST/ or FashionMNIST/ (torchvision layout)")
    parser.add_argument("--dataset", default="mnist", help="mnist or fashion-mnist")
    parser.add_argument("--source-classes", default="0,1,2,3,4", help="classes of the pretraining run")
    parser.add_argument("--target-classes", default="5,6,7,8,9", help="classes of the few-shot target")
    parser.add_argument("--sizes", default="100,1000", help="target images per cell (data.limit)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of training per cell")
    parser.add_argument("--pretrain-budget", type=float, default=900.0, help="seconds of pretraining")
    parser.add_argument("--freezed", type=int, default=2, help="FreezeD: D's first N blocks (--freeze D:N)")
    parser.add_argument("--classifier-steps", type=int, default=1500, help="steps of the target's feature classifier")
    parser.add_argument("--samples", type=int, default=None, help="samples per score (default: the held-out count)")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100 images, seed 0, 10 s cells, 20 s pretraining, a 100-step "
                             "classifier, 300 samples (into runs/transfer-table-quick by default)")
    parser.add_argument("--out", default="runs/transfer-table")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
        args.out = args.out if args.out != "runs/transfer-table" else "runs/transfer-table-quick"
    return args


def _classes(text: str) -> list[int]:
    return [int(c) for c in text.split(",")]


def _data(args, classes: str) -> list[str]:
    return ["--dataset", args.dataset, "--data-dir", args.data_dir, "--resolution", str(RESOLUTION),
            "--set", f"data.classes=[{classes}]"]


def _train(command: list[str], out: Path) -> float:
    """Run `ganforge ...` in this process, from scratch; returns the wall time."""
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    code = cli_main(command)
    if code != 0:
        raise SystemExit(f"failed ({code}): ganforge {shlex.join(command)}")
    return time.perf_counter() - start


def _done(marker: Path, settings: dict) -> bool:
    return marker.is_file() and json.loads(marker.read_text()) == settings


def pretrain(args) -> Path:
    """The run every init-from row starts from (reused while its settings stay the same)."""
    out = Path(args.out) / "pretrain"
    settings = {"dataset": args.dataset, "classes": args.source_classes, "budget": args.pretrain_budget}
    if not _done(out / "benchmark.json", settings):
        command = ["train", "--preset", PRESET, *_data(args, args.source_classes), "--set", "data.limit=null",
                   "--set", "objective.augment=", "--set", "health.enabled=false", "--steps", "1000000",
                   "--time-budget", f"{args.pretrain_budget:g}", "--seed", "0", "--out", str(out), "--quiet"]
        print(f"pretraining: ganforge {shlex.join(command)}", flush=True)
        _train(command, out)
        (out / "benchmark.json").write_text(json.dumps(settings))
    return out


def classifier(args) -> Path:
    """The target set's feature classifier: every training image of the target classes."""
    out = Path(args.out) / "classifier"
    settings = {"dataset": args.dataset, "classes": args.target_classes, "steps": args.classifier_steps}
    if not _done(out / "benchmark.json", settings):
        command = ["classify", "train", *_data(args, args.target_classes), "--precision", "fp32",
                   "--steps", str(args.classifier_steps), "--out", str(out), "--quiet"]
        print(f"feature classifier: ganforge {shlex.join(command)}", flush=True)
        _train(command, out)
        (out / "benchmark.json").write_text(json.dumps(settings))
    return out


def cell(args, evaluator: Evaluator, source: Path, size: int, row: str, seed: int) -> dict:
    """Train and score one cell."""
    init, frozen, augment = ROWS[row]
    out = Path(args.out) / f"{size}-{row.replace(' + ', '-').replace(' ', '-')}-seed{seed}"
    command = ["train", "--preset", PRESET, *_data(args, args.target_classes), "--set", f"data.limit={size}",
               "--set", "health.enabled=false", "--steps", "1000000", "--time-budget", f"{args.budget:g}",
               "--seed", str(seed), "--out", str(out), "--quiet"]
    command += ["--init-from", str(source)] if init else []
    command += ["--freeze", f"D:{args.freezed}"] if frozen else []
    command += [] if augment else ["--set", "objective.augment="]
    wall = _train(command, out)
    model = ganforge.load(out)
    scores = evaluator(model.net)
    return {"dataset": args.dataset, "size": size, "row": row, "seed": seed, "budget": args.budget,
            "steps": model.step, "wall_s": round(wall, 1), "command": "ganforge " + shlex.join(command),
            **{key: scores[key] for key in COLUMNS}}


def summary(values: list[float]) -> str:
    if not values:
        return ""
    mean = statistics.fmean(values)
    return f"{mean:.3g}" if len(values) == 1 else f"{mean:.3g} ± {statistics.stdev(values):.2g}"


def table(results: list[dict], floor: dict, args) -> str:
    """Mean ± standard deviation over seeds, per size and row."""
    lines = [f"{args.dataset}: pretrained {args.pretrain_budget:g} s on classes {args.source_classes}; target "
             f"classes {args.target_classes}; {args.budget:g} s per cell; seeds {args.seeds}; FreezeD = "
             f"D:{args.freezed}",
             "",
             "| target images | start | G steps | " + " | ".join(COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(COLUMNS),
             "| real held-out (floor) | | | " + " | ".join(f"{floor[c]:.3g}" for c in COLUMNS) + " |"]
    for size in _classes(args.sizes):
        for row in args.rows.split(","):
            cells = [r for r in results if r["size"] == size and r["row"] == row]
            if cells:
                steps = summary([r["steps"] for r in cells])
                lines.append(f"| {size} | {row} | {steps} | "
                             + " | ".join(summary([r[c] for r in cells]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for row in args.rows.split(","):
        if row not in ROWS:
            raise SystemExit(f"unknown row {row!r}; rows: {', '.join(ROWS)}")
    source = pretrain(args)
    target = DataConfig(name=args.dataset, data_dir=args.data_dir, resolution=RESOLUTION, channels=1,
                        classes=_classes(args.target_classes))
    evaluator = Evaluator(target, ClassifierFeatures(classifier(args)), args.samples, seed=0)
    path = out / "results.jsonl"
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            done[(record["dataset"], record["size"], record["row"], record["seed"], record["budget"])] = record
    results = []
    for size in _classes(args.sizes):
        for row in args.rows.split(","):
            for seed in _classes(args.seeds):
                key = (args.dataset, size, row, seed, args.budget)
                if key not in done:
                    done[key] = cell(args, evaluator, source, size, row, seed)
                    with open(path, "a", encoding="utf-8") as file:
                        file.write(json.dumps(done[key]) + "\n")
                    print(json.dumps(done[key]), flush=True)
                results.append(done[key])
    text = table(results, evaluator.floor, args)
    (out / "transfer_table.md").write_text(text + "\n")
    print()
    print(text)


if __name__ == "__main__":
    main()
