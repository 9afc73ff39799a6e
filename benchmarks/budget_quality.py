"""Quality per compute: recipes trained under fixed wall-clock budgets, scored beside the
real-data floor, so a good FID over collapsed samples cannot hide (recall, coverage and
per-class diversity stand beside it).

    python benchmarks/prepare_data.py data                          # MNIST / Fashion-MNIST, once
    python benchmarks/budget_quality.py --data-dir data             # every cell (hours)
    python benchmarks/budget_quality.py --data-dir data --budgets 300 --seeds 0 --sets fashion-mnist

Recipes (each the command a user types, plus --time-budget S --seed K --out ...):
- reference: the textbook DCGAN at native 28 px, widths 48, Adam 2e-4 / 0.5, batch 64, no EMA,
  no augmentation, no health controller (the plain loop, run through ganforge's trainer);
- reference-conditional: the same plain loop, class-conditional (label embedding joined to z,
  projection D; no mode seeking, class head or spread): the conditional preset's like-for-like
  baseline (from 2026-12-06, seventeenth session);
- default: `ganforge train --dataset SET --time-budget S` and nothing else (a short budget
  sizes the networks: 28 px, widths 32, Adam 4e-4; a long one trains widths 48 with Adam
  4e-4 (2e-4 until 2026-12-04) and lazy R1; both at Adam betas (0, 0.99) since the seventh
  session of 2026-12-04 (0.5, 0.999 before);
  short and long in seconds of the Xeon the rules were measured on, below 90 s and from 90 s
  (250 s until 2026-12-04), the budget scaled by the reference step's rate on this machine;
  README "Sized for the budget");
- conditional: `ganforge train --preset cgan-mnist --dataset SET --time-budget S` (since
  2026-12-03 the dcgan-mnist networks with lazy R1, mode seeking and a class head at 32 px; its
  cells before that are the 28-pixel DiffAugment recipe; since 2026-12-04 its own short_budget
  section gives it the sized networks under a short budget, R1 kept, and since the sixth
  session of that day its medium_budget section widths 48, Adam 4e-4 and R1 at gamma 0.5 from
  90 to 250 s of the reference machine, to 400 s and with mode seeking 0.1 from 2026-12-05;
  since the twelfth session those are the preset's own networks and keys from 90 s; from
  2026-12-06 D sees each class's spread in the batch and mode seeking is off, from 90 s);
- r1: `ganforge train --preset dcgan-mnist --dataset SET --time-budget S` (the default's networks
  with lazy R1);
- sized: the default's short-budget recipe at any budget (28 px, widths 32, Adam 4e-4 at
  betas (0, 0.99), with the default's EMA and health controller), given as options.

Every cell is `ganforge evaluate RUN` (10,000 samples against the test images, in the feature
space of the cached classifier trained on the training images); each cell's JSON line is
appended to OUT/results.jsonl and reused when the script runs again, so an interrupted
table resumes (a cell cut short is trained again from the start, never resumed: a resumed
cell would get a fresh budget on top of the time it had). The Markdown table (mean and spread over seeds) goes to stdout and
OUT/budget_quality.md.

Every recipe of a set is also scored in one feature space, that of `--space` pixels (32, the
resolution of the default's long recipe): a cell trained at another resolution (the
reference's 28 px, the sized default's) is scored again with `ganforge evaluate --resolution
32` (its samples resized like the real images; stored under "space" in its line, and added to
a cell read back whose run is still there), a row of its own beside its own-space one. FIDs of
two spaces do not compare, and precision and recall move too.

`--truncation PSI,...` also scores each cell's run with the truncation trick (`ganforge
evaluate --truncation PSI`; the same trained run, stored in the cell's line under
"truncated" and added to a cell read back when missing), each PSI a row of its own beside the
untruncated one: the precision a user can buy with recall. `--keep-best SHARE,...` does the
same with `ganforge evaluate --keep-best SHARE` (the best SHARE of candidates by the run's
discriminator), stored beside them under "keep-best SHARE".
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import statistics
import time
from pathlib import Path

import torch
import yaml

from ganforge import atomic
from ganforge.bench import machine_facts
from ganforge.cli import main as cli_main
from ganforge.errors import ConfigError
from ganforge.evaluate import evaluate_run
from ganforge.models.rejection import check_keep_best
from ganforge.models.truncation import check_truncation

RECIPES = {
    "reference": ["--resolution", "28", "--set", "model.g_width=48", "--set", "model.d_width=48",
                  "--lr", "2e-4", "--set", "train.beta1=0.5", "--set", "train.beta2=0.999",
                  "--set", "train.ema_decay=0", "--set", "health.enabled=false",
                  "--set", "objective.r1_gamma=0"],  # DCGAN's Adam and no R1, whatever the budget adds
    "default": [],
    "conditional": ["--preset", "cgan-mnist"],
    # The plain loop made class-conditional the standard way (label embedding joined to z,
    # projection D), nothing else: the like-for-like baseline of the conditional preset.
    "reference-conditional": ["--resolution", "28", "--set", "model.conditional=true",
                              "--set", "model.g_width=48", "--set", "model.d_width=48",
                              "--lr", "2e-4", "--set", "train.beta1=0.5", "--set", "train.beta2=0.999",
                              "--set", "train.ema_decay=0", "--set", "health.enabled=false",
                              "--set", "objective.r1_gamma=0", "--set", "objective.mode_seeking=0"],
    "r1": ["--preset", "dcgan-mnist"],
    "sized": ["--resolution", "28", "--set", "model.g_width=32", "--set", "model.d_width=32", "--lr", "4e-4",
              "--set", "train.beta1=0.0", "--set", "train.beta2=0.99"],
}
COLUMNS = ["fid", "kid", "precision", "recall", "coverage", "diversity_min", "class_entropy", "sample_accuracy", "cas"]


def comma_list(kind, allowed=None, check=None):
    """An argparse type: a comma-separated list of `kind`, each in `allowed` and passing
    `check` (raises ConfigError), kept as the text it was given (cells are keyed by it); a bad
    item is a one-line error."""
    def parse(text: str) -> str:
        items = [item for item in text.split(",") if item]
        for item in items:
            try:
                value = kind(item)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{item!r} is not {kind.__name__}") from None
            if allowed is not None and value not in allowed:
                raise argparse.ArgumentTypeError(f"{item!r}: not one of {', '.join(map(str, allowed))}")
            try:
                check and check(value)
            except ConfigError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
        if not items and allowed is not None:
            raise argparse.ArgumentTypeError("empty list")
        return ",".join(items)
    return parse


def at_least(low: int):
    """A `comma_list` check: integers of at least `low`."""
    def check(value: int) -> None:
        if value < low:
            raise ConfigError(f"{value}: must be at least {low}")
    return check


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data", help="folder with MNIST/ and FashionMNIST/ (torchvision layout)")
    parser.add_argument("--sets", default="mnist,fashion-mnist", type=comma_list(str, ("mnist", "fashion-mnist")))
    parser.add_argument("--budgets", default="60,300,900", type=comma_list(int, check=at_least(1)),
                        help="seconds of training per cell")
    parser.add_argument("--seeds", default="0,1,2", type=comma_list(int, check=at_least(0)))
    parser.add_argument("--recipes", default="reference,default,conditional,r1", type=comma_list(str, tuple(RECIPES)),
                        help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--samples", type=int, default=None, help="samples per evaluation (default 10,000)")
    parser.add_argument("--truncation", default="", type=comma_list(float, check=check_truncation),
                        help="also score each cell at these truncation psi "
                                                           "values, comma-separated (e.g. 0.8,0.6)")
    parser.add_argument("--keep-best", default="", type=comma_list(float, check=check_keep_best),
                        help="also score each cell keeping the best share of "
                                                          "candidates by its discriminator, e.g. 0.8")
    parser.add_argument("--space", type=int, default=32, help="also score cells trained at another "
                        "resolution in this resolution's feature space (0: only their own)")
    parser.add_argument("--out", default="runs/budget-quality")
    return parser.parse_args()


def cell_dir(args, row: dict) -> Path:
    """Where a cell's run is (or was) kept."""
    return Path(args.out) / f"{row['set']}-{row['budget']}s-{row['recipe']}-seed{row['seed']}"


def run_resolution(run: Path) -> int:
    """The resolution a cell's run trained at (its config.yaml)."""
    return int(yaml.safe_load((run / "config.yaml").read_text())["data"]["resolution"])


def space_scores(args, row: dict) -> bool:
    """Score a cell trained at another resolution than `args.space` in that resolution's
    feature space too (`evaluate_run(..., resolution=)`), once, if its run is still there;
    whether anything was added."""
    out = cell_dir(args, row)
    if not args.space or "space" in row or not out.is_dir() or run_resolution(out) == args.space:
        return False
    report = evaluate_run(out, n=args.samples, quiet=True, resolution=args.space)
    row["space"] = {"resolution": args.space, "model": report["model"], "floor": report["floor"]}
    return True


def truncated_scores(args, row: dict) -> bool:
    """Add the scores of each asked truncation psi (and keep-best share) that the cell's line
    lacks (its run must still be there); whether anything was added."""
    out = cell_dir(args, row)
    asked = [(f"{float(v):g}", {"truncation": float(v)}) for v in args.truncation.split(",") if v] + \
        [(f"keep-best {float(v):g}", {"keep_best": float(v)}) for v in getattr(args, "keep_best", "").split(",") if v]
    added = False
    for key, how in asked:
        if key in row.setdefault("truncated", {}) or not out.is_dir():
            continue
        row["truncated"][key] = evaluate_run(out, n=args.samples, quiet=True, **how)["model"]
        added = True
    return added


def variant_label(recipe: str, key: str | None) -> str:
    """The table's name of a cell's row: the recipe, or its truncated / kept-best scoring."""
    if key is None:
        return recipe
    return f"{recipe}, keep best {key.split()[1]}" if key.startswith("keep-best") else f"{recipe}, truncation {key}"


def cell(args, data_set: str, budget: int, recipe: str, seed: int) -> dict:
    """Train and score one cell (or read it from results.jsonl)."""
    out = cell_dir(args, {"set": data_set, "budget": budget, "recipe": recipe, "seed": seed})
    command = ["train", *RECIPES[recipe], "--dataset", data_set, "--data-dir", args.data_dir,
               "--time-budget", str(budget), "--seed", str(seed), "--out", str(out), "--quiet"]
    if out.exists():
        # An interrupted cell starts again rather than resuming: its steps per second must be
        # those of one uninterrupted start.
        shutil.rmtree(out)
    start = time.perf_counter()
    status = cli_main(command)
    if status:   # ganforge has said why in one line (a data set not found, a bad key)
        sys.exit(status)
    wall = time.perf_counter() - start
    report = evaluate_run(out, n=args.samples, quiet=True)
    return {"set": data_set, "budget": budget, "recipe": recipe, "seed": seed, "machine": machine(),
            "command": "ganforge " + shlex.join(command), "steps": report["setup"]["step"],
            "wall_s": round(wall, 1), "model": report["model"], "floor": report["floor"],
            "warnings": report["warnings"]}


def machine() -> str:
    """The machine a cell's budget was spent on: a budget buys different steps on another CPU,
    so cells of different machines are never averaged together."""
    facts = machine_facts(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return f"{facts['device_name']}, {facts['cpus_usable']} CPUs"


def summary(values: list[float]) -> str:
    if not values:
        return ""
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.3g}"
    return f"{mean:.3g} ± {statistics.stdev(values):.2g}"


def table(results: list[dict]) -> str:
    """Mean ± spread per (set, budget, recipe). Each row also shows the FID and recall of its own
    real-data floor: a recipe at another resolution is scored by that resolution's feature
    classifier, whose FID scale differs (precision and recall compare across spaces)."""
    lines = ["| set | budget | recipe | seeds | G steps | " + " | ".join(COLUMNS) +
             " | floor fid / recall | collapse warnings |",
             "|---|---|---|---|---|" + "---|" * len(COLUMNS) + "---|---|"]
    # The floor row of a set is that of the space its cells share: where a cell trained at
    # another resolution was scored in the common space too, that space's floor (the first
    # row's own floor might be of a 28-pixel space the other rows are not in).
    floors = {}
    for row in results:
        if "space" in row:
            floors[row["set"]] = row["space"]["floor"]
        else:
            floors.setdefault(row["set"], row["floor"])
    groups: dict[tuple, list[dict]] = {}
    for row in results:
        groups.setdefault((row["set"], row["budget"], row["recipe"], row.get("machine", "")), []).append(row)
    machines = sorted({key[3] for key in groups})
    tags = {name: f" [{machines.index(name) + 1}]" if len(machines) > 1 else "" for name in machines}
    for data_set, floor in floors.items():
        lines.append(f"| {data_set} | | real held-out (floor) | | | " +
                     " | ".join(summary([floor[c]] if floor.get(c) is not None else []) for c in COLUMNS) + " | | |")
        for (name, budget, recipe, where), rows in sorted(groups.items(), key=lambda kv: kv[0][1:]):
            if name != data_set:
                continue
            own = f"{rows[0]['floor']['fid']:.3g} / {rows[0]['floor']['recall']:.3g}"
            psis = sorted({psi for r in rows for psi in r.get("truncated", {})},
                          key=lambda k: (k.startswith("keep-best"), -float(k.split()[-1])))
            spaced = [r["space"] for r in rows if "space" in r]
            for psi in [None, *psis] + (["space"] if spaced else []):
                if psi == "space":
                    scored, label = [s["model"] for s in spaced], f"{recipe}, in the {spaced[0]['resolution']}-px space"
                    floor_shown = f"{spaced[0]['floor']['fid']:.3g} / {spaced[0]['floor']['recall']:.3g}"
                else:
                    scored = [r["model"] if psi is None else r["truncated"][psi] for r in rows
                              if psi is None or psi in r.get("truncated", {})]
                    label, floor_shown = variant_label(recipe, psi), own
                cells = [summary([m[c] for m in scored if m.get(c) is not None]) for c in COLUMNS]
                warned = sum(bool(r["warnings"]) for r in rows) if psi is None else None
                lines.append(f"| {name} | {budget} s | {label}{tags[where]} | {len(scored)} | "
                             f"{summary([r['steps'] for r in rows])} | " + " | ".join(cells) +
                             f" | {floor_shown} | {'' if warned is None else f'{warned}/{len(rows)}'} |")
    names = [name or "a machine not recorded" for name in machines]
    if len(names) == 1:
        lines += ["", f"Measured on {names[0]}."]
    elif names:
        lines += ["", *(f"[{i + 1}] measured on {name}." for i, name in enumerate(names))]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.jsonl"
    done = [json.loads(line) for line in store.read_text().splitlines()] if store.exists() else []
    have = {(r["set"], r["budget"], r["recipe"], r["seed"]) for r in done}
    for data_set in args.sets.split(","):
        for budget in map(int, args.budgets.split(",")):
            for recipe in args.recipes.split(","):
                for seed in map(int, args.seeds.split(",")):
                    if (data_set, budget, recipe, seed) in have:
                        continue
                    row = cell(args, data_set, budget, recipe, seed)
                    truncated_scores(args, row)
                    space_scores(args, row)
                    with open(store, "a") as handle:
                        handle.write(json.dumps(row) + "\n")
                    done.append(row)
                    print(json.dumps({k: row[k] for k in ("set", "budget", "recipe", "seed", "steps")} |
                                     {c: row["model"].get(c) for c in COLUMNS}), flush=True)
    wanted = [r for r in done if r["set"] in args.sets.split(",") and str(r["budget"]) in args.budgets.split(",")
              and r["recipe"] in args.recipes.split(",") and str(r["seed"]) in args.seeds.split(",")]
    added = [truncated_scores(args, r) for r in wanted] if args.truncation or args.keep_best else []
    added += [space_scores(args, r) for r in wanted]
    if any(added):
        atomic.write_text(store, "".join(json.dumps(r) + "\n" for r in done))
    text = table(wanted)
    (out / "budget_quality.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
