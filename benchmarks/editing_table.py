"""The editing table: each task trained from its README command, scored beside the classical
method on held-out images, with the issue's targets checked.

    python benchmarks/prepare_data.py data                 # MNIST / Fashion-MNIST, once
    python benchmarks/editing_table.py --data-dir data     # all rows (hours on 2 CPU cores)
    python benchmarks/editing_table.py --rows sr-x4,denoise-25

Each row runs `ganforge train <its arguments> --out RUNS/<row>` (at most 15 minutes: every
command carries --time-budget 900 as a guard; the task defaults are sized to finish before),
then `ganforge evaluate RUNS/<row>`. Finished runs and evaluations are reused, interrupted runs
resumed. The table is printed and written to RUNS/editing_table.md; `--figures DIR` also writes
before/after strips of held-out images for the README; the memory row times `ganforge edit`
of a 2048x2048 photo with SR x2 in tiles and reads the process's peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUDGET = 900  # seconds: the "at most 15 minutes" per model


@dataclass
class Row:
    args: list[str]                    # after `ganforge train`
    metric: str                        # what the target is about
    target: str = ""                   # the target, in words
    data: bool = False                 # needs --data-dir


# Rows whose whole-photo strips are shown as a window (rows, columns of each panel), so that
# grain and texture stay visible at the README's width: the held-out coffee cup.
DETAIL = {"denoise-25": (60, 260, 150, 450), "enhance": (60, 260, 150, 450)}


def rows(data_dir: str) -> dict[str, Row]:
    mnist = ["--data-dir", data_dir, "--resolution", "28", "--set", "model.depth=2", "--set", "model.d_layers=2"]
    return {
        "sr-x2": Row(["--task", "super-resolve", "--scale", "2"], "psnr_y", "bicubic + 1.5 dB"),
        "sr-x4": Row(["--task", "super-resolve", "--scale", "4"], "psnr_y", "bicubic + 0.8 dB"),
        "sr-x4-gan": Row(["--task", "super-resolve", "--scale", "4", "--set", "objective.adv_weight=0.005"],
                         "psnr_y", "(trade-off: PSNR vs detail)"),
        "denoise-25": Row(["--task", "denoise"], "psnr", "above the best scikit-image denoiser"),
        "inpaint-mnist-center": Row(["--task", "inpaint", "--dataset", "mnist", "--degrade", "mask:center", *mnist],
                                    "fid", "FID <= 0.5 x biharmonic's", data=True),
        "inpaint-mnist-free": Row(["--task", "inpaint", "--dataset", "mnist", "--degrade", "mask:free-form", *mnist],
                                  "fid", "FID <= 0.5 x biharmonic's", data=True),
        "inpaint-fashion-center": Row(["--task", "inpaint", "--dataset", "fashion-mnist", "--degrade", "mask:center",
                                       *mnist], "fid", "FID <= 0.5 x biharmonic's", data=True),
        "inpaint-fashion-free": Row(["--task", "inpaint", "--dataset", "fashion-mnist", "--degrade", "mask:free-form",
                                     *mnist], "fid", "FID <= 0.5 x biharmonic's", data=True),
        "inpaint-photos": Row(["--preset", "inpaint-photos"], "psnr_hole", "hole PSNR above biharmonic's"),
        "replace-digits": Row(["--task", "replace"], "replaced_accuracy", ">= 90% (chance 10%), rest identical"),
        "colorize": Row(["--task", "colorize"], "psnr", "(reported; baseline: the gray input)"),
        "enhance": Row(["--task", "enhance"], "psnr", "(reported; baselines: inverse gamma, CLAHE)"),
    }


def ganforge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganforge", *args], text=True, capture_output=True)


def finished(run: Path) -> bool:
    """The run's last checkpoint is at its configured steps, or its budget was spent."""
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        return False
    text = metrics.read_text()
    return "steps done" in text or "time budget" in text


def train_and_evaluate(name: str, row: Row, runs: Path) -> dict:
    run = runs / name
    started = time.perf_counter()
    if not finished(run):
        resume = ["--resume", str(run)] if (run / "checkpoints" / "last.safetensors").is_file() else \
            [*row.args, "--out", str(run)]
        done = ganforge("train", *resume, "--time-budget", str(BUDGET), "--quiet")
        if done.returncode:
            raise SystemExit(f"{name}: ganforge train failed:\n{done.stderr[-2000:]}")
    report_path = run / "eval.json"
    if not report_path.is_file() or report_path.stat().st_mtime < (run / "checkpoints" / "last.safetensors").stat().st_mtime:
        done = ganforge("evaluate", str(run))
        if done.returncode:
            raise SystemExit(f"{name}: ganforge evaluate failed:\n{done.stderr[-2000:]}")
    report = json.loads(report_path.read_text())
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    report["train_s"] = max((line.get("elapsed_s", 0) for line in lines), default=0.0)
    report["wall_s"] = time.perf_counter() - started
    return report


def summarise(name: str, row: Row, report: dict) -> dict:
    """One table line: the model's number, the best baseline's, and whether the target holds."""
    model, baselines = report["model"], report["baselines"]
    line = {"row": name, "steps": report["setup"]["step"], "train_s": report["train_s"], "target": row.target}
    if row.metric == "fid":
        scores = report["feature_scores"]
        ours, theirs = scores["model"]["fid"], scores["inpaint_biharmonic"]["fid"]
        line.update(metric="FID of composites", model=ours, baseline="inpaint_biharmonic", base=theirs,
                    floor=scores["real floor"]["fid"], recall=scores["model"]["recall"],
                    base_recall=scores["inpaint_biharmonic"]["recall"], met=ours <= 0.5 * theirs,
                    hole=model.get("psnr_hole"), base_hole=baselines["inpaint_biharmonic"].get("psnr_hole"))
    elif row.metric == "replaced_accuracy":
        line.update(metric="requested class recognised", model=report["replaced_accuracy"],
                    baseline="original tiles", base=report["original_tile_accuracy"],
                    met=report["replaced_accuracy"] >= 0.9 and report["changed_outside_hole"] == 0,
                    changed=report["changed_outside_hole"])
    else:
        usable = {k: v for k, v in baselines.items() if k != "input" and row.metric in v} or baselines
        best = max(usable, key=lambda k: usable[k][row.metric])
        ours, theirs = model[row.metric], usable[best][row.metric]
        line.update(metric=row.metric, model=ours, baseline=best, base=theirs,
                    ssim=model.get("ssim"), base_ssim=usable[best].get("ssim"),
                    detail=model.get("detail"), base_detail=usable[best].get("detail"))
        margins = {"sr-x2": 1.5, "sr-x4": 0.8, "denoise-25": 0.0, "inpaint-photos": 0.0}
        if name in margins:
            line["met"] = ours > theirs + margins[name] - 1e-9
    return line


def memory_row(runs: Path) -> dict | None:
    """Peak resident memory of `ganforge edit` with SR x2 in tiles on a 2048x2048 photo."""
    from PIL import Image
    from skimage import data

    run = runs / "sr-x2"
    if not (run / "checkpoints" / "last.safetensors").is_file():
        return None
    big = runs / "memory" / "photo-2048.png"
    big.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).resize((2048, 2048), Image.Resampling.BICUBIC).save(big)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = ganforge("edit", str(run), str(big), "--tile", "256", "--out", str(runs / "memory" / "out"),
                    "--force", "--quiet")
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode:
        raise SystemExit(f"memory row: ganforge edit failed:\n{done.stderr[-2000:]}")
    return {"peak_gb": max(peak_kb, before) / 2 ** 20, "seconds": seconds,
            "note": "" if peak_kb > before else "(peak of an earlier child; run alone to measure)"}


def figures(runs: Path, out: Path, names: list[str]) -> None:
    """Before/after strips on held-out images: input, classical baseline, model, original."""
    import torch

    import ganforge
    from ganforge.evaluate_edit import baselines, held_out, hwc01

    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        run = runs / name
        if not (run / "eval.json").is_file():
            continue
        editor = ganforge.load(run)
        data = held_out(editor.config, 8, 0)
        target, source, mask = data["target"][0], data["source"][0], data["mask"][0]
        requested = data["requested"][0]
        count = min(len(target), 8)
        result = editor.edit_tensor(source[:count], None if mask is None else mask[:count],
                                    None if requested is None else requested[:count])
        size = tuple(target.shape[-2:])
        fns = baselines(editor.config.data.degrade, size, target.shape[1])
        base = next((fn for key, fn in fns.items() if key != "input"), None)
        rows_ = []
        for i in range(count):
            goal, src, hole = hwc01(target[i]), hwc01(source[i]), None if mask is None else mask[i, 0].numpy()
            shown = np.asarray(torch.nn.functional.interpolate(
                source[i:i + 1].float(), size=size, mode="nearest")[0].permute(1, 2, 0).add(1).div(2).clamp(0, 1))
            if shown.shape[-1] != goal.shape[-1]:
                shown = np.repeat(shown, goal.shape[-1], -1)
            classical = base(src, hole) if base is not None else shown
            if hole is not None and base is not None:
                classical = np.where(hole[..., None] > 0, classical, goal)
            if classical.shape[-1] != goal.shape[-1]:
                classical = np.repeat(classical, goal.shape[-1], -1)
            rows_.append(np.concatenate([shown, classical, hwc01(result[i]), goal], 1))
            if size[0] > 200:  # one photo is enough for large images
                break
        strip = np.concatenate(rows_, 0)
        if name in DETAIL:  # a window of each panel, at full resolution
            top, bottom, left, right = DETAIL[name]
            strip = np.concatenate([panel[top:bottom, left:right] for panel in np.split(strip, 4, axis=1)], 1)
        from PIL import Image

        pixels = (strip * 255).round().astype(np.uint8)
        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(out / f"{name}.png")


def markdown(lines: list[dict], memory: dict | None) -> str:
    head = "| row | steps | train s | metric | model | classical baseline | target | met |\n|---|---|---|---|---|---|---|---|"
    out = [head]
    for line in lines:
        extra = ""
        if "recall" in line:
            extra = f" (recall {line['recall']:.2f} vs {line['base_recall']:.2f}; floor FID {line['floor']:.2f})"
        met = {True: "yes", False: "**no**", None: "-"}[line.get("met")]
        out.append(f"| {line['row']} | {line['steps']} | {line['train_s']:.0f} | {line['metric']} | "
                   f"{line['model']:.4g}{extra} | {line['baseline']} {line['base']:.4g} | {line['target']} | {met} |")
    if memory:
        out.append(f"\n`ganforge edit` SR x2, 2048x2048 RGB photo, --tile 256: peak resident memory "
                   f"{memory['peak_gb']:.2f} GB, {memory['seconds']:.0f} s {memory['note']}")
    return "\n".join(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="runs/editing-table", help="where the runs live")
    parser.add_argument("--data-dir", default="data", help="MNIST / Fashion-MNIST (prepare_data.py)")
    parser.add_argument("--rows", default="", help="comma-separated row names [default: all]")
    parser.add_argument("--figures", default=None, metavar="DIR", help="also write before/after strips")
    args = parser.parse_args(argv)
    table = rows(args.data_dir)
    chosen = [r.strip() for r in args.rows.split(",") if r.strip()] or list(table)
    unknown = [r for r in chosen if r not in table]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; valid: {', '.join(table)}")
    runs = Path(args.runs)
    lines = []
    for name in chosen:
        row = table[name]
        report = train_and_evaluate(name, row, runs)
        lines.append(summarise(name, row, report))
        print(json.dumps(lines[-1]), flush=True)
    memory = memory_row(runs) if "sr-x2" in chosen else None
    text = markdown(lines, memory)
    print(text)
    (runs / "editing_table.md").write_text(text + "\n")
    if args.figures:
        figures(runs, Path(args.figures), chosen)


if __name__ == "__main__":
    main()
