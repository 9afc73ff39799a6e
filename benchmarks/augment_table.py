"""Does synthetic data help a classifier that has few labels? Test accuracy of a classifier
trained on N labelled real images, with classical augmentation, with fresh samples of a
conditional GAN trained on the same N images, and on those samples alone.

    python benchmarks/prepare_data.py data                       # MNIST / Fashion-MNIST, once
    python benchmarks/augment_table.py --data-dir data --quick   # one small cell, a minute or two
    python benchmarks/augment_table.py --data-dir data           # 2 sets x 3 sizes x 3 seeds (hours)

For each data set, size N and seed: N labelled training images, N/10 of each class, chosen
with the seed (`balanced_subset`), written to OUT/subsets/ as an npz set. On them:
- GAN: `ganforge train --preset cgan-mnist --dataset npz:SUBSET --steps G --seed K` with the
  preset's recipe of the time this table was measured pinned (GAN_RECIPE: the class-conditional
  DCGAN at 28 px with DiffAugment translation,cutout at p=1 and mode seeking, no R1, no class
  head; DiffAugment is what a few hundred images need), trained once per subset and shared by
  the two synthetic rows;
- real: `ganforge classify train --dataset npz:SUBSET --set objective.shift=0` (no augmentation);
- real + classical aug: shifts of up to 2 px, rotations of up to 10 degrees, zooms of up to 10 %;
- real + synthetic: no augmentation, plus as many fresh samples of the GAN's EMA generator as
  real images in each batch (`--synthetic GAN --synthetic-ratio 1`, classes in turn);
- real + classical + synthetic: the classical augmentation and the same synthetic share;
- synthetic only: the same augmentation, samples alone (`--synthetic-only`: the
  Classification Accuracy Score of a GAN that saw N images).
Every classifier is the default `cnn` for C steps (batch min(64, N), cosine learning rate), and is
scored on the data set's whole test split. Each cell is a JSON line of OUT/results.jsonl,
reused when the script runs again with the same step counts (a GAN cut short is resumed; a classifier cut short is
trained again). The table (mean and sample standard deviation over seeds) goes to stdout
and OUT/augment_table.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ganforge import checkpoint, rundir
from ganforge.cli import main as cli_main
from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.inference import load_classifier

RESOLUTION = 28
# The conditional GAN of the measured table (cgan-mnist as it was then), whatever the preset is now.
GAN_RECIPE = ["--set", "objective.augment=translation,cutout", "--set", "objective.r1_gamma=0",
              "--set", "objective.aux_weight=0", "--set", "model.g_width=64", "--set", "model.d_width=64",
              "--set", "train.lr=0.0002", "--set", "objective.mode_seeking=0.25"]
CLASSICAL = ["--set", "objective.shift=2", "--set", "objective.rotate=10", "--set", "objective.scale=0.1"]
ROWS = {
    "real": ["--set", "objective.shift=0"],
    "real + classical aug": CLASSICAL,
    "real + synthetic": ["--set", "objective.shift=0", "--synthetic", "{gan}", "--synthetic-ratio", "1"],
    "real + classical + synthetic": [*CLASSICAL, "--synthetic", "{gan}", "--synthetic-ratio", "1"],
    "synthetic only": [*CLASSICAL, "--synthetic", "{gan}", "--synthetic-only"],
}
QUICK = {"sets": ["mnist"], "sizes": [100], "seeds": 1, "gan_steps": 300, "classifier_steps": 200}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data", help="folder with MNIST/ and FashionMNIST/ (torchvision layout)")
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 500, 2000],
                        help="labelled real images per cell (balanced over the classes)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1 per cell")
    parser.add_argument("--gan-steps", type=int, default=5000, help="G steps of each conditional GAN")
    parser.add_argument("--classifier-steps", type=int, default=1000, help="steps of each classifier")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), metavar="ROW",
                        help=f"which rows [default: all: {', '.join(ROWS)}]")
    parser.add_argument("--quick", action="store_true",
                        help=f"one small cell to see it work: {QUICK} (overrides those options)")
    parser.add_argument("--out", default="runs/augment-table")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.sizes, args.seeds = QUICK["sets"], QUICK["sizes"], QUICK["seeds"]
        args.gan_steps, args.classifier_steps = QUICK["gan_steps"], QUICK["classifier_steps"]
        args.out = str(Path(args.out) / "quick") if args.out == parser.get_default("out") else args.out
    return args


def balanced_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of `n` images, the same number of each class (largest remainder when n is not
    a multiple: the lower classes get one more), chosen by `seed`, in class order.

    Example:
        >>> balanced_subset(torch.tensor([0, 0, 0, 1, 1, 1]), 4, seed=0).tolist()  # two of each
    """
    classes = int(labels.max()) + 1
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(classes):
        members = (labels == c).nonzero().flatten()
        want = n // classes + (c < n % classes)
        if want > len(members):
            raise SystemExit(f"class {c} has {len(members)} training images; {n} balanced need {want}")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:want]].sort().values)
    return torch.cat(chosen)


def write_subset(args, data_set: str, n: int, seed: int) -> Path:
    """The npz file of the cell's labelled images (written once)."""
    path = Path(args.out) / "subsets" / f"{data_set}-{n}-seed{seed}.npz"
    if path.is_file():
        return path
    train = load_dataset(DataConfig(name=data_set, data_dir=args.data_dir, resolution=RESOLUTION,
                                    download=False), "train")
    index = balanced_subset(train.labels, n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, x=train.images[index].permute(0, 2, 3, 1).numpy(), y=train.labels[index].numpy())
    partial.replace(path)
    return path


def finished(run: Path, steps: int) -> bool:
    last = rundir.checkpoint_path(run, "last")
    return last.is_file() and checkpoint.read_meta(last)["step"] >= steps


def train_gan(args, subset: Path, n: int, seed: int) -> tuple[Path, float]:
    """The cell's conditional GAN (reused when done, resumed when cut short); its wall time."""
    run = Path(args.out) / "gans" / subset.stem
    start = time.perf_counter()
    if not finished(run, args.gan_steps):
        if rundir.checkpoint_path(run, "last").is_file():
            command = ["train", "--resume", str(run), "--steps", str(args.gan_steps), "--quiet"]
        else:
            command = ["train", "--preset", "cgan-mnist", *GAN_RECIPE, "--dataset", f"npz:{subset}",
                       "--resolution", str(RESOLUTION), "--batch-size", str(min(64, n)),
                       "--steps", str(args.gan_steps), "--seed", str(seed), "--out", str(run),
                       "--set", "log.eval_every=0", "--set", "log.tensorboard=no", "--quiet"]
        assert cli_main(command) == 0, command
    return run, time.perf_counter() - start


def train_classifier(args, row: str, subset: Path, gan: Path | None, n: int, seed: int) -> tuple[Path, list[str]]:
    run = Path(args.out) / "classifiers" / f"{subset.stem}-{row.replace(' + ', '+').replace(' ', '-')}"
    if run.exists():  # a classifier cut short trains again (minutes)
        shutil.rmtree(run)
    extra = [part.format(gan=gan) for part in ROWS[row]]
    command = ["classify", "train", "--dataset", f"npz:{subset}", "--resolution", str(RESOLUTION),
               "--batch-size", str(min(64, n)), "--steps", str(args.classifier_steps), "--seed", str(seed),
               "--out", str(run), "--set", "log.tensorboard=no", "--quiet", *extra]
    assert cli_main(command) == 0, command
    return run, command


def cell(args, data_set: str, n: int, seed: int, row: str, test) -> dict:
    """Train and score one classifier (the GAN first, when the row needs one)."""
    subset = write_subset(args, data_set, n, seed)
    gan, gan_wall = (None, 0.0)
    if "{gan}" in ROWS[row]:
        gan, gan_wall = train_gan(args, subset, n, seed)
    start = time.perf_counter()
    run, command = train_classifier(args, row, subset, gan, n, seed)
    wall = time.perf_counter() - start
    report = load_classifier(run).report(test)
    return {"set": data_set, "size": n, "seed": seed, "row": row, "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"], "test_images": report["images"],
            "command": "ganforge " + " ".join(command), "wall_s": round(wall, 1),
            "gan_wall_s": round(gan_wall, 1), "gan_steps": args.gan_steps if gan else None,
            "classifier_steps": args.classifier_steps}


def summary(values: list[float]) -> str:
    """Mean ± sample standard deviation, in percent."""
    if not values:
        return ""
    mean = 100 * statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}"


GAINS = {"synthetic adds to real": ("real", "real + synthetic"),
         "synthetic adds to classical": ("real + classical aug", "real + classical + synthetic")}


def table(results: list[dict], rows: list[str]) -> str:
    """One line per (set, size): test accuracy (%) of each row, mean ± spread over seeds, and
    what synthetic data adds to real images alone and to the classical augmentation (mean
    difference in points)."""
    lines = ["| set | labelled images | seeds | " + " | ".join(rows) + " | " + " | ".join(GAINS) + " |",
             "|---|---|---|" + "---|" * (len(rows) + len(GAINS))]
    groups: dict[tuple, dict[str, list[float]]] = {}
    for r in results:
        groups.setdefault((r["set"], r["size"]), {}).setdefault(r["row"], []).append(r["accuracy"])
    for (data_set, size), by_row in groups.items():
        seeds = max(len(v) for v in by_row.values())
        cells = [summary(by_row.get(row, [])) for row in rows]
        for without, with_synthetic in GAINS.values():
            base, mixed = by_row.get(without), by_row.get(with_synthetic)
            cells.append(f"{100 * (statistics.fmean(mixed) - statistics.fmean(base)):+.1f}" if base and mixed else "")
        lines.append(f"| {data_set} | {size} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.jsonl"
    done = [json.loads(line) for line in store.read_text().splitlines()] if store.exists() else []
    done = [r for r in done if r["classifier_steps"] == args.classifier_steps
            and r["gan_steps"] in (None, args.gan_steps)]  # cells of other step counts are not these
    have = {(r["set"], r["size"], r["seed"], r["row"]) for r in done}
    for data_set in args.datasets:
        test = load_dataset(DataConfig(name=data_set, data_dir=args.data_dir, resolution=RESOLUTION,
                                       download=False), "test")
        for n in args.sizes:
            for seed in range(args.seeds):
                for row in args.rows:
                    if (data_set, n, seed, row) in have:
                        continue
                    result = cell(args, data_set, n, seed, row, test)
                    with open(store, "a") as handle:
                        handle.write(json.dumps(result) + "\n")
                    done.append(result)
                    print(json.dumps({k: result[k] for k in ("set", "size", "seed", "row", "accuracy",
                                                             "wall_s", "gan_wall_s")}), flush=True)
    wanted = [r for r in done if r["set"] in args.datasets and r["size"] in args.sizes
              and r["seed"] < args.seeds and r["row"] in args.rows]
    text = table(wanted, args.rows)
    (out / "augment_table.md").write_text(text + "\n")
    print(text)
    return text


if __name__ == "__main__":
    main()
