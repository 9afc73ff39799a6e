"""`ganforge report`: one self-contained HTML page about a run, or several runs compared.

Everything is inside the page (plots and sample grids as base64 PNG data URIs, the styles
inline, no scripts), so it opens offline and can be mailed or archived as one file. Plots are
drawn on matplotlib's Agg canvas directly (no pyplot, no display, no global state), so a web
server may build reports in threads.

What is plotted follows the keys a run logged: every numeric key of metrics.jsonl belongs to
a family by its name (FAMILIES: losses, D accuracy, gradient norms, learning rate, ADA p,
images/s, FID, KID, ...), and a key no family claims gets a figure of its own (keys sharing a
prefix share one), so GAN, VAE, editing, translation, texture and classifier runs each get the
figures they have. The health controller's actions are vertical markers on every time axis.
A rollback makes metrics.jsonl go back in steps; the steps it undid are drawn faint.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import atomic, checkpoint, rundir
from .errors import ConfigError
from .runs_table import (RunInfo, check_run_dir, format_duration, format_fid, health_records,
                         read_config, read_evaluations, read_metrics, summary_of)

REPORT = "report.html"
# Sample grids over time shown per run (evenly spaced, always the last), and their largest side.
MAX_GRIDS, MAX_GRIDS_COMPARED, MAX_SIDE = 12, 6, 768
# Keys of a metrics.jsonl line that are not measurements.
NOT_PLOTTED = {"step", "elapsed_s"}
ROLLED_BACK = re.compile(r"rolled back from step (\d+)")
LR_CUT = re.compile(r"learning rates x([0-9.eE+-]+) of the configured ones")
EVAL_PR = {"eval_precision", "eval_recall", "eval_density", "eval_coverage"}
EVAL_CLASSES = {"eval_classes_present", "eval_class_entropy", "eval_cas", "eval_sample_accuracy", "eval_diversity_ratio",
                "eval_diversity_min", "eval_diversity_mean"}


@dataclass(frozen=True)
class Family:
    """A figure: the logged keys it holds, its axis and a line saying how to read it."""

    id: str
    title: str
    ylabel: str
    match: Callable[[str], bool]
    note: str = ""
    unit_range: bool = False  # values are shares in [0, 1]


FAMILIES = [
    Family("losses", "Losses", "loss", lambda k: k == "loss" or k.startswith("loss_"),
           "averaged over the steps since the previous log line"),
    Family("accuracy", "Accuracy", "accuracy", lambda k: k.endswith("accuracy") and not k.startswith("eval_"),
           "D telling real from fake (0.5: a balanced game; near 1 for long: D wins outright, "
           "which the health controller calls a collapse); a classifier's on its training batches",
           unit_range=True),
    Family("logits", "D's mean outputs on real and fake images", "mean D output",
           lambda k: k in ("D_real", "D_fake", "D_margin"),
           "D_margin (real minus fake) below health.min_d_margin for long: a flat D, which the "
           "health controller relaxes"),
    Family("grad_norms", "Gradient norms", "norm", lambda k: k.startswith("grad_norm_"),
           "mean norm of each network's (unscaled) gradient; above health.max_grad_norm is divergence"),
    Family("lr", "Learning rate", "learning rate", lambda k: k == "lr" or k.startswith("lr_")),
    Family("augment", "Augmentation probability p (ADA)", "p", lambda k: k in ("augment_p", "ada_p"),
           "the probability of each differentiable augmentation; ADA adapts it, the health "
           "controller raises it after a collapse", unit_range=True),
    Family("throughput", "Throughput", "images/s", lambda k: k == "images_per_s",
           "batch size x steps per second since the previous log line"),
    Family("fid", "FID during training", "FID", lambda k: k == "eval_fid",
           "lower is better (log.eval_every); dashed: the real-data floor of the final evaluation, "
           "star: the final evaluation's score"),
    Family("kid", "KID during training", "KID", lambda k: k == "eval_kid",
           "lower is better; the band is one standard deviation over KID's subsets"),
    Family("is", "Inception score during training", "IS", lambda k: k == "eval_is", "higher is better"),
    Family("pr", "Precision, recall, density, coverage", "score", lambda k: k in EVAL_PR,
           "higher is better: precision and density say samples look real, recall and coverage "
           "that they cover the real data"),
    Family("classes", "Classes and diversity (evaluation)", "score", lambda k: k in EVAL_CLASSES,
           "a collapse shows as classes missing or diversity far below the real data's (about 1)"),
    Family("probe", "Per-class diversity probe", "ratio to real images",
           lambda k: k.startswith("class_diversity"),
           "samples' spread within a class over real images' (about 1 for real data); the worst "
           "class below health.min_class_diversity for several probes is a collapse"),
    Family("fp16", "fp16 gradient scale", "scale", lambda k: k == "grad_scale"),
    Family("skipped", "Updates the fp16 gradient scaler skipped", "updates",
           lambda k: k.startswith("scaler_skipped_")),
]
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
          "#7f7f7f", "#bcbd22"]
STYLES = ["-", "--", ":", "-."]
KIND_COLORS = {"divergence": "#d62728", "collapse": "#ff7f0e"}


@dataclass
class RunData:
    """Everything a report shows of one run."""

    path: Path
    name: str
    info: RunInfo
    config: dict
    config_text: str
    records: list[dict]
    evaluations: dict[str, dict]
    meta: dict  # the last checkpoint's header ({} without one)


# Reading runs.
def load_runs(run_dirs) -> list[RunData]:
    """Read each run; labels are the shortest path endings that tell the runs apart."""
    paths = [check_run_dir(p) for p in run_dirs]
    if not paths:
        raise ConfigError("no run directory given")
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        twice = next(p for p, r in zip(paths, resolved) if resolved.count(r) > 1)
        raise ConfigError(f"run {str(twice)!r} is given twice")
    names = unique_names(resolved)
    runs = []
    for path, name in zip(paths, names):
        config_file = path / rundir.CONFIG
        last = rundir.checkpoint_path(path, "last")
        meta = checkpoint.read_meta(last) if last.is_file() else {}
        config, records, evaluations = read_config(path), read_metrics(path), read_evaluations(path)
        text = config_file.read_text(encoding="utf-8") if config_file.is_file() else \
            yaml.safe_dump(config, sort_keys=False)
        runs.append(RunData(path, name, summary_of(path, config, records, evaluations, name), config, text,
                            records, evaluations, meta))
    return runs


def unique_names(paths: list[Path]) -> list[str]:
    """'default' for one run; 'tr/default' and 'old/default' where the last parts agree."""
    depth = 1
    while True:
        names = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names) or depth >= max(len(p.parts) for p in paths):
            return names
        depth += 1


# Series.
def numeric_keys(records: list[dict]) -> list[str]:
    """Keys with a number in some record, in the order they first appear."""
    keys = {}
    for record in records:
        for key, value in record.items():
            if key not in NOT_PLOTTED and isinstance(value, (int, float)) and not isinstance(value, bool):
                keys[key] = True
    return list(keys)


def segments(records: list[dict], key: str) -> list[list[tuple[int, float]]]:
    """(step, value) runs of `key`, split where the steps stop increasing (a rollback)."""
    parts: list[list[tuple[int, float]]] = []
    for record in records:
        value = record.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        value = float(value) if math.isfinite(value) else math.nan
        if not parts or record["step"] <= parts[-1][-1][0]:
            parts.append([])
        parts[-1].append((record["step"], value))
    return parts


def split_undone(parts: list[list[tuple[int, float]]]):
    """(kept, undone): the curve as the run stands, and the stretches a rollback undid (the
    points of a part at or after the step the next part starts from)."""
    kept: list[tuple[int, float]] = []
    undone = []
    start_of_later = math.inf
    for part in reversed(parts):
        good = [p for p in part if p[0] < start_of_later]
        bad = [p for p in part if p[0] >= start_of_later]
        if bad:
            undone.append(bad)
        kept = good + kept
        if part:
            start_of_later = min(start_of_later, part[0][0])
    return kept, undone


def health_events(records: list[dict]) -> list[dict]:
    """The health controller's actions with the step they were taken at (for a rollback the
    step it rolled back from; the line itself carries the step it went back to)."""
    events = []
    for record in health_records(records):
        action = str(record.get("action", ""))
        found = ROLLED_BACK.search(action)
        events.append({"step": int(found.group(1)) if found else record["step"],
                       "to_step": record["step"], "kind": str(record.get("health", "health")),
                       "reason": str(record.get("reason", "")), "action": action})
    return events


def derived_learning_rates(run: RunData) -> dict[str, list[tuple[int, float]]]:
    """The learning rate of each network at the logged steps, computed the way the trainer sets
    it: train.lr (lr_g, lr_d) x the schedule's factor x the health controller's cuts. Used
    when metrics.jsonl logs none."""
    train = run.config.get("train", {})
    if not isinstance(train.get("lr"), (int, float)):
        return {}
    keys = numeric_keys(run.records)
    nets = [k[len("grad_norm_"):] for k in keys if k.startswith("grad_norm_")] or \
        [n for n in ("G", "D", "C", "VAE") if f"loss_{n}" in keys] or [""]
    horizon = train.get("schedule_steps") or run.meta.get("schedule_steps") or train.get("steps") or 1
    schedule, hold = train.get("lr_schedule", "constant"), float(train.get("lr_hold") or 0.0)
    logs = [r for r in run.records if "health" not in r]
    steps, _ = split_undone([[(r["step"], 0.0) for r in logs]]) if logs else ([], [])
    grid = sorted({0, *(s for s, _ in steps)} | set(_cut_steps(run.records)))
    if schedule != "constant" and grid:
        grid = sorted(set(grid) | {round(grid[-1] * i / 200) for i in range(201)})
    scales = _scales(run.records, grid)
    lines: dict[str, list[tuple[int, float]]] = {}
    for net in nets:
        base = train.get(f"lr_{net.lower()}") if net in ("G", "D") else None
        base = base or train["lr"]
        values = []
        for step, scale in zip(grid, scales):
            progress = min(step / max(horizon, 1), 1.0)
            progress = max(0.0, progress - hold) / (1.0 - hold)
            factor = {"linear": 1.0 - progress,
                      "cosine": 0.5 * (1.0 + math.cos(math.pi * progress))}.get(schedule, 1.0)
            values.append((step, base * factor * scale))
        same = next((k for k, v in lines.items() if v == values), None)  # lr_G, lr_D alike: one line
        if same is not None:
            lines[f"{same[:-len(' (derived)')]}, lr_{net} (derived)"] = lines.pop(same)
        else:
            lines[f"lr_{net} (derived)" if net else "lr (derived)"] = values
    return lines


def _cut_steps(records: list[dict]) -> list[int]:
    return [r["step"] for r in health_records(records) if LR_CUT.search(str(r.get("action", "")))]


def _scales(records: list[dict], grid: list[int]) -> list[float]:
    """The health controller's learning-rate scale at each step of `grid`: each cut holds from
    the step it rolled back to on (a later cut overrides it from its own step)."""
    scales = [1.0] * len(grid)
    for record in health_records(records):
        found = LR_CUT.search(str(record.get("action", "")))
        if found:
            for i, step in enumerate(grid):
                if step >= record["step"]:
                    scales[i] = float(found.group(1))
    return scales


def families_of(keys: list[str]) -> list[tuple[Family, list[str]]]:
    """Group keys into FAMILIES; the rest by shared prefix ('foo_a', 'foo_b'), else alone.
    `X_std` keys are drawn as the band of X, not as lines."""
    keys = [k for k in keys if not (k.endswith("_std") and k[:-4] in keys)]
    grouped: dict[str, tuple[Family, list[str]]] = {}
    rest = []
    for key in keys:
        family = next((f for f in FAMILIES if f.match(key)), None)
        if family is None:
            rest.append(key)
        else:
            grouped.setdefault(family.id, (family, []))[1].append(key)
    prefixes: dict[str, list[str]] = {}
    for key in rest:
        prefixes.setdefault(key.rsplit("_", 1)[0] if "_" in key else key, []).append(key)
    others = []
    for prefix, members in prefixes.items():
        if len(members) > 1:
            others.append((Family(f"key-{prefix}", prefix, prefix, lambda k: False), members))
        else:
            others += [(Family(f"key-{k}", k, k, lambda k: False), [k]) for k in members]
    ordered = [grouped[f.id] for f in FAMILIES if f.id in grouped]
    return ordered + others


# Drawing.
def _png(figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def plot_family(family: Family, keys: list[str], runs: list[RunData], lines_of) -> bytes:
    """One figure: each key of `keys` for each run (colour by run when several, by key for one),
    health markers, and for evaluation keys the final evaluation's score (a star) and its
    real-data floor (dashed) in the colour of their line."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    figure = Figure(figsize=(8.4, 3.3), layout="constrained")
    ax = figure.add_subplot()
    several = len(runs) > 1
    values_seen: list[float] = []
    extra: dict[str, Line2D] = {}  # one legend entry each for what every line may have
    for r, run in enumerate(runs):
        lines = lines_of(run, keys)
        for k, key in enumerate(keys):
            kept, undone = lines.get(key, ([], []))
            color = COLORS[r % len(COLORS)] if several else COLORS[k % len(COLORS)]
            style = STYLES[k % len(STYLES)]  # lines that coincide (a one-class probe's min and mean) stay visible
            label = (f"{run.name}" + (f" {key}" if len(keys) > 1 else "")) if several else key
            sparse = key.startswith("eval_") or len(kept) < 3
            if kept:
                xs, ys = zip(*kept)
                ax.plot(xs, ys, style, color=color, lw=1.4, label=label, marker="o" if sparse else None, ms=3)
                values_seen += [y for y in ys if math.isfinite(y)]
                std = _band(run, key)
                if std:
                    lows = [y - std.get(x, 0.0) for x, y in kept]
                    highs = [y + std.get(x, 0.0) for x, y in kept]
                    ax.fill_between(xs, lows, highs, color=color, alpha=0.15, lw=0)
            for part in undone:
                xs, ys = zip(*part)
                ax.plot(xs, ys, style, color=color, lw=1, alpha=0.3)
                values_seen += [y for y in ys if math.isfinite(y)]
                extra["undone"] = Line2D([], [], color="gray", alpha=0.4, label="undone by a rollback")
            finals = _final_scores(ax, run, key, color, extra)
            values_seen += finals
            if several and finals and not kept:  # a run seen only through its final evaluation
                extra.setdefault(f"run-{run.name}", Line2D([], [], color=color, marker="*", ls="", ms=10,
                                                           label=run.name))
    marks = blended_transform_factory(ax.transData, ax.transAxes)
    for r, run in enumerate(runs):
        for n, event in enumerate(health_events(run.records), 1):
            color = COLORS[r % len(COLORS)] if several else KIND_COLORS.get(event["kind"], "black")
            ax.axvline(event["step"], color=color, ls=":", lw=1.2)
            text = f"{run.name} #{n} {event['kind']}" if several else f"#{n} {event['kind']}"
            ax.text(event["step"], 0.98, text, transform=marks, rotation=90, va="top", ha="right",
                    fontsize=7, color=color)
    if values_seen and min(values_seen) > 0 and max(values_seen) / min(values_seen) > 1e3:
        ax.set_yscale("log")
    elif family.id == "lr" and values_seen:
        ax.set_ylim(0, max(values_seen) * 1.1 or 1)
    if family.unit_range and values_seen and min(values_seen) >= 0 and max(values_seen) <= 1:
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel(family.ylabel)
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0] + list(extra.values())
    if len(handles) > 5:  # below the plot, where it hides no line
        rows = math.ceil(len(handles) / 2)
        figure.set_size_inches(8.4, 3.3 + 0.19 * rows)
        figure.legend(handles=handles, fontsize=8, ncol=2, loc="outside lower center")
    elif handles:
        ax.legend(handles=handles, fontsize=8, loc="best")
    return _png(figure)


def _band(run: RunData, key: str) -> dict[int, float]:
    std = f"{key}_std"
    return {r["step"]: float(r[std]) for r in run.records
            if isinstance(r.get(std), (int, float)) and math.isfinite(r[std])}


def _final_scores(ax, run: RunData, key: str, color: str, extra: dict) -> list[float]:
    """For an eval_X key: eval.json's real-data floor of X (dashed) and the model's X at the
    step it evaluated (a star). Returns the values drawn."""
    report = run.evaluations.get("eval.json", {})
    model, floor = report.get("model"), report.get("floor")
    setup = report.get("setup")
    if not key.startswith("eval_") or not isinstance(model, dict):
        return []
    from matplotlib.lines import Line2D

    name, drawn = key[len("eval_"):], []
    if isinstance(floor, dict) and _is_number(floor.get(name)):
        ax.axhline(floor[name], color=color, ls="--", lw=1, alpha=0.7)
        extra["floor"] = Line2D([], [], color="gray", ls="--", label="real-data floor (eval.json)")
        drawn.append(floor[name])
    step = setup.get("step") if isinstance(setup, dict) else None
    if _is_number(model.get(name)) and isinstance(step, int):
        ax.plot([step], [model[name]], "*", color=color, ms=10)
        extra["final"] = Line2D([], [], color="gray", marker="*", ls="", ms=10,
                                label="final evaluation (eval.json)")
        drawn.append(model[name])
    return [v for v in drawn if math.isfinite(v)]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image_png(path: Path) -> bytes:
    """The file's PNG bytes, shrunk (and re-encoded) when its longer side is over MAX_SIDE."""
    from PIL import Image

    with Image.open(path) as image:
        if max(image.size) <= MAX_SIDE and image.format == "PNG":
            return path.read_bytes()
        image = image.copy()
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def sample_grids(run_dir: Path, limit: int) -> list[tuple[str, Path]]:
    """(caption, file) of up to `limit` grids evenly spread over the run, and final.png."""
    folder = run_dir / rundir.SAMPLES
    steps = sorted(folder.glob("step-*.png")) if folder.is_dir() else []
    if len(steps) > limit:
        picked = {round(i * (len(steps) - 1) / (limit - 1)) for i in range(limit)}
        steps = [p for i, p in enumerate(steps) if i in picked]
    grids = [(f"step {int(p.stem.split('-')[1])}" if p.stem.split("-")[1].isdigit() else p.stem, p)
             for p in steps]
    final = folder / "final.png"
    if final.is_file():
        grids.append(("final", final))
    return grids


# HTML.
def _e(value) -> str:
    return html.escape(str(value))


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _e(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return f"{value:.4g}"


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _last_values(run: RunData) -> dict[str, float]:
    """Each logged key's value at the last step the run stands at (after any rollback)."""
    values = {}
    for key in numeric_keys(run.records):
        kept, _ = split_undone(segments(run.records, key))
        if kept:
            values[key] = kept[-1][1]
    return values


def _is_column(value) -> bool:
    """A dict of scores (a column of an evaluation table): it holds a float and no dicts."""
    return isinstance(value, dict) and any(isinstance(v, float) for v in value.values()) and \
        not any(isinstance(v, dict) for v in value.values())


def _scores_table(columns: dict[str, dict]) -> str:
    """Metrics as rows, the model / baselines / real-data floor as columns; X_std beside X."""
    rows = []
    for column in columns.values():
        for key, value in column.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in rows \
                    and not (key.endswith("_std") and key[:-4] in column):
                rows.append(key)
    head = "".join(f'<th class="{"floor" if "floor" in name else ""}">{_e(name)}'
                   f'{"<br><small>real data</small>" if "floor" in name and "real" not in name else ""}</th>'
                   for name in columns)
    body = []
    for key in rows:
        cells = []
        for column in columns.values():
            value = column.get(key)
            std = column.get(f"{key}_std")
            text = "-" if value is None else _number(value) + (f" ± {std:.2g}" if isinstance(std, float) else "")
            cells.append(f"<td>{text}</td>")
        body.append(f"<tr><th>{_e(key)}</th>{''.join(cells)}</tr>")
    return f'<table class="scores"><tr><th>metric</th>{head}</tr>{"".join(body)}</table>'


def _facts(values: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Scalars of a (nested) dict as (dotted key, text); long lists are left to the raw JSON."""
    facts = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            facts += _facts(value, name + ".")
        elif isinstance(value, list):
            if len(value) <= 12 and all(not isinstance(v, (dict, list)) for v in value):
                facts.append((name, ", ".join(_number(v) for v in value)))
        else:
            facts.append((name, "-" if value is None else _number(value)))
    return facts


def _facts_table(facts: list[tuple[str, str]]) -> str:
    if not facts:
        return ""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in facts)
    return f'<table class="facts">{rows}</table>'


def evaluation_html(report: dict) -> str:
    """An evaluation file as tables: its score columns side by side (a group of columns whose
    names do not clash, like an editing run's baselines, joins them), each other group of
    columns (a translation direction, feature scores) apart, warnings, then the setup."""
    columns = {k: v for k, v in report.items() if _is_column(v)}
    groups, facts, warnings = {}, {}, []
    for key, value in report.items():
        if key in columns:
            continue
        if isinstance(value, dict) and any(_is_column(v) for v in value.values()):
            inner = {k: v for k, v in value.items() if _is_column(v)}
            if columns and not set(inner) & set(columns):
                columns.update(inner)
            else:
                groups[key] = inner
            facts.update({f"{key}.{k}": v for k, v in value.items() if not _is_column(v)})
        elif key == "warnings" and isinstance(value, list):
            warnings = [str(w) for w in value]
        else:
            facts[key] = value
    parts = [_scores_table(columns)] if columns else []
    for key, inner in groups.items():
        parts.append(f"<h5>{_e(key)}</h5>{_scores_table(inner)}")
    if warnings:
        parts.append('<ul class="warnings">' + "".join(f"<li>WARNING: {_e(w)}</li>" for w in warnings) + "</ul>")
    parts.append(_facts_table(_facts(facts)))
    return "".join(parts)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left}
td{font-variant-numeric:tabular-nums}table.scores td{text-align:right}th.floor{background:#eef6ee}
figure{margin:1em 0}figure img{max-width:100%}figcaption{font-size:.85em;color:#555}
.grids{display:flex;flex-wrap:wrap;gap:.8em}.grids figure{margin:0;width:240px}.grids img{width:240px;image-rendering:pixelated}
.wide img{width:auto;max-width:100%}pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.85em}
.warnings{color:#a40}.status-diverged{color:#b00;font-weight:bold}.status-stopped{color:#a60}.status-finished{color:#070}
nav a{margin-right:1em}small{color:#666}
"""


def build_report(run_dirs, *, progress: Callable[[int, int], None] | None = None) -> str:
    """The HTML text of a report on one run, or comparing several on the same axes.

    Args:
        run_dirs: run directories (str or Path); one gives a report of that run, several a
            comparison: one figure per quantity with a line per run, final numbers side by side.
        progress: called as progress(done, total) while figures and images are made.

    Example:
        >>> page = build_report(["runs/demo"])
        >>> page.startswith("<!DOCTYPE html>")
        True
    """
    runs = load_runs(list(run_dirs))
    several = len(runs) > 1
    plots = _plot_list(runs)
    grids = [(run, sample_grids(run.path, MAX_GRIDS_COMPARED if several else MAX_GRIDS)) for run in runs]
    pictures = [(run, sorted(run.path.glob("*.png"))) for run in runs]
    total = len(plots) + sum(len(g) for _, g in grids) + sum(len(p) for _, p in pictures)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    title = f"ganforge report: {runs[0].name}" if not several else \
        f"ganforge report: {len(runs)} runs compared"
    sections = [("Summary", _summary_html(runs)), ("Health controller", _health_html(runs))]
    figures = []
    for family, keys in plots:
        png = plot_family(family, keys, runs, _lines_for(family))
        step()
        note = family.note
        if family.id == "lr" and not any(k.startswith("lr") for run in runs for k in numeric_keys(run.records)):
            note = ("not logged: computed as the trainer sets it, train.lr (lr_g, lr_d) x the "
                    "train.lr_schedule factor x the health controller's cuts")
        anchor = "plot-" + _anchor(family.id)
        figures.append(f'<figure id="{anchor}"><h3>{_e(family.title)}</h3>'
                       f'<img alt="{_e(family.title)}" src="{_data_uri(png)}">'
                       f"<figcaption>{_e(', '.join(keys))}{': ' + _e(note) if note else ''}</figcaption></figure>")
    sections.append(("Training curves", "".join(figures) or "<p>metrics.jsonl has no measurements yet.</p>"))
    sample_parts = []
    for run, items in grids:
        cells = []
        for caption, path in items:
            cells.append(f'<figure><img alt="{_e(caption)}" src="{_data_uri(image_png(path))}">'
                         f"<figcaption>{_e(caption)}</figcaption></figure>")
            step()
        heading = f"<h3>{_e(run.name)}</h3>" if several else ""
        sample_parts.append(heading + (f'<div class="grids">{"".join(cells)}</div>' if cells
                                       else "<p>No sample grids (samples/).</p>"))
    sections.append(("Samples over time", "".join(sample_parts)))
    eval_parts = []
    for run, files in pictures:
        parts = []
        for name, report in run.evaluations.items():
            raw = _e(json.dumps(report, indent=1))
            parts.append(f"<h4>{_e(name)}</h4>{evaluation_html(report)}"
                         f"<details><summary>{_e(name)} as written</summary><pre>{raw}</pre></details>")
        for path in files:
            parts.append(f'<figure class="wide"><img alt="{_e(path.name)}" src="{_data_uri(image_png(path))}">'
                         f"<figcaption>{_e(path.name)}</figcaption></figure>")
            step()
        if not parts:
            parts.append("<p>Not evaluated yet: <code>ganforge evaluate RUN</code> writes eval.json "
                         "(model scores beside the real-data floor).</p>")
        eval_parts.append((f"<h3>{_e(run.name)}</h3>" if several else "") + "".join(parts))
    sections.append(("Evaluation", "".join(eval_parts)))
    sections.append(("Configuration", _config_html(runs)))
    nav = "".join(f'<a href="#{_anchor(name)}">{_e(name)}</a>' for name, _ in sections)
    body = "".join(f'<section id="{_anchor(name)}"><h2>{_e(name)}</h2>{content}</section>'
                   for name, content in sections)
    from . import __version__
    stamp = f"{time.strftime('%Y-%m-%d %H:%M:%S')} by ganforge {__version__}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body><h1>{_e(title)}</h1><p><small>{_e(stamp)}</small></p><nav>{nav}</nav>{body}</body></html>\n")


def _plot_list(runs: list[RunData]) -> list[tuple[Family, list[str]]]:
    """The families to draw over all runs; the learning rate is derived where none is logged."""
    keys = list(dict.fromkeys(k for run in runs for k in numeric_keys(run.records)))
    plots = families_of(keys)
    if not any(f.id == "lr" for f, _ in plots) and any(derived_learning_rates(run) for run in runs):
        at = next((i for i, (f, _) in enumerate(plots) if f.id in ("augment", "throughput", "fid")), len(plots))
        lr = next(f for f in FAMILIES if f.id == "lr")
        derived = list(dict.fromkeys(k for run in runs for k in derived_learning_rates(run)))
        plots.insert(at, (lr, derived))
    return plots


def _lines_for(family: Family):
    """How one run's lines of a family are made: from metrics.jsonl, or for a learning rate
    that is not logged, from the config."""
    def lines(run: RunData, keys: list[str]) -> dict:
        if family.id == "lr" and all(k.endswith("(derived)") for k in keys):
            derived = derived_learning_rates(run)
            return {k: (v, []) for k, v in derived.items()}
        found = {}
        for key in keys:
            parts = segments(run.records, key)
            if parts:
                found[key] = split_undone(parts)
        return found
    return lines


def _summary_html(runs: list[RunData]) -> str:
    """Side by side: what each run is, how far it got, and its final numbers."""
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, cells) -> None:
        rows.append((label, list(cells)))

    infos = [run.info for run in runs]
    row("directory", (f"<code>{_e(run.path)}</code>" for run in runs))
    row("task / model", (_e(f"{i.task} / {i.model}") for i in infos))
    row("data", (_e(i.data) for i in infos))
    row("status", (f'<span class="status-{_e(i.status.rstrip("?"))}">{_e(i.status)}</span>'
                   + (f"<br><small>{_e(i.reason)}</small>" if i.reason else "") for i in infos))
    row("step", (_e("-" if i.step is None else f"{i.step:,}" + (f" of {i.steps:,}" if i.steps else ""))
                 for i in infos))
    row("training time", (_e(format_duration(i.elapsed_s)) for i in infos))
    row("batch size", (_e(run.config.get("train", {}).get("batch_size", "-")) for run in runs))
    throughput = []
    for run in runs:
        speeds = sorted(r["images_per_s"] for r in run.records if isinstance(r.get("images_per_s"), (int, float)))
        throughput.append(_number(speeds[len(speeds) // 2]) if speeds else "-")
    row("images/s (median)", throughput)
    row("best FID", (_e(format_fid(i)) + (f"<br><small>{_e(i.best_fid_source)}</small>" if i.best_fid_source else "")
                     for i in infos))
    row("health actions", (str(len(health_events(run.records))) for run in runs))
    finals = [_last_values(run) for run in runs]
    for key in dict.fromkeys(k for f in finals for k in f):
        row(f"last {key}", (_number(f[key]) if key in f else "-" for f in finals))
    for label, cells in _evaluation_rows(runs):
        row(label, cells)
    head = "".join(f"<th>{_e(run.name)}</th>" for run in runs)
    body = "".join(f"<tr><th>{_e(label)}</th>{''.join(f'<td>{c}</td>' for c in cells)}</tr>" for label, cells in rows)
    return f'<table class="summary"><tr><th></th>{head}</tr>{body}</table>'


def _evaluation_rows(runs: list[RunData]) -> list[tuple[str, list[str]]]:
    """The final evaluation's model scores (with the real-data floor beside them) per run."""
    found: dict[str, dict[int, str]] = {}
    for r, run in enumerate(runs):
        for name, report in run.evaluations.items():
            places = [("", report)] + [(f"{k} ", v) for k, v in report.items()
                                       if isinstance(v, dict) and isinstance(v.get("model"), dict)]
            for where, part in places:
                model, floor = part.get("model"), part.get("floor") or part.get("real floor")
                if not isinstance(model, dict):
                    continue
                for key, value in model.items():
                    if isinstance(value, float) and not key.endswith("_std"):
                        text = _number(value)
                        if isinstance(floor, dict) and isinstance(floor.get(key), float):
                            text += f" <small>(floor {_number(floor[key])})</small>"
                        found.setdefault(f"{name}: {where}{key}", {})[r] = text
    return [(label, [cells.get(r, "-") for r in range(len(runs))]) for label, cells in found.items()]


def _health_html(runs: list[RunData]) -> str:
    rows = []
    for run in runs:
        for n, event in enumerate(health_events(run.records), 1):
            where = f"{event['step']}" + (f" (back to {event['to_step']})" if event["to_step"] != event["step"] else "")
            rows.append(("<td>" + _e(run.name) + "</td>" if len(runs) > 1 else "") +
                        f"<td>#{n}</td><td>{_e(where)}</td><td>{_e(event['kind'])}</td>"
                        f"<td>{_e(event['reason'])}</td><td>{_e(event['action'])}</td>")
    if not rows:
        return "<p>No actions: the health controller saw no divergence or collapse.</p>"
    head = ("<th>run</th>" if len(runs) > 1 else "") + "<th></th><th>step</th><th>kind</th><th>reason</th><th>action</th>"
    return (f"<p>Marked on every time axis as dotted lines with their number.</p><table><tr>{head}</tr>"
            + "".join(f"<tr>{r}</tr>" for r in rows) + "</table>")


def _flatten(values: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _config_html(runs: list[RunData]) -> str:
    if len(runs) == 1:
        return f"<p>The resolved config (config.yaml).</p><pre>{_e(runs[0].config_text)}</pre>"
    flats = [_flatten(run.config) for run in runs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]
    head = "".join(f"<th>{_e(run.name)}</th>" for run in runs)
    body = "".join(f"<tr><th>{_e(k)}</th>" + "".join(f"<td>{_e(f.get(k, '-'))}</td>" for f in flats) + "</tr>"
                   for k in differ)
    table = (f"<p>Keys that differ:</p><table><tr><th></th>{head}</tr>{body}</table>" if differ
             else "<p>The configs are the same.</p>")
    full = "".join(f"<details><summary>{_e(run.name)}: config.yaml</summary><pre>{_e(run.config_text)}</pre></details>"
                   for run in runs)
    return table + full


def write_report(run_dirs, out: str | Path | None = None, force: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> Path:
    """Build the report and write it atomically; returns where.

    Args:
        run_dirs: one run directory (then `out` defaults to RUN/report.html) or several (then
            `out` is required).
        out: the HTML file to write.
        force: replace an existing file at `out`.

    Example:
        >>> write_report(["runs/a", "runs/b"], "a-vs-b.html")
        PosixPath('a-vs-b.html')
    """
    run_dirs = list(run_dirs)
    if out is None:
        if len(run_dirs) != 1:
            raise ConfigError(f"{len(run_dirs)} runs compared: say where the report goes with --out FILE")
        out = check_run_dir(run_dirs[0]) / REPORT
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a folder; give a file name such as report.html")
    if out.exists() and not force:
        raise ConfigError(f"{str(out)!r} exists; pass --force to overwrite it")
    page = build_report(run_dirs, progress=progress)
    with atomic.replacing(out) as tmp:
        tmp.write_bytes(page.encode("utf-8"))
    return out
