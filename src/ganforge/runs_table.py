"""Reading run directories: what `ganforge runs` lists and what `ganforge report` draws from.

A run directory is a folder holding config.yaml and a metrics.jsonl or a checkpoints/ folder
(what the trainer writes). Why its last session stopped is in status.json, which the trainer
writes when a session ends. Runs from before status.json, sessions killed or crashed, and
runs still training have none, or a stale one: a resumed session rewrites metrics.jsonl when
it starts, so a status.json older than the log belongs to an earlier session. Those runs are
`running?` when their files changed in the last RECENT_S seconds, and otherwise what the log
shows: `diverged` when the health controller gave up, `finished` when the planned steps or
the time budget were reached, else `unknown`.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from . import checkpoint, rundir
from .errors import CheckpointError, ConfigError

# A run with no status for its current session whose files changed this recently is "running?".
RECENT_S = 600
# How deep `find_runs` looks under the folder it is given (runs/<group>/<name> and deeper).
MAX_DEPTH = 4
# train.steps of a run bound by its time budget alone (resolve.BUDGET_STEPS): no step total.
BUDGET_STEPS = 10**12
# Folders inside a run directory, never runs themselves.
RUN_PARTS = {rundir.CHECKPOINTS, rundir.SAMPLES, "tb"}
# Evaluation reports a run directory may hold (ganforge evaluate, classify eval, texture classify eval).
EVALUATION = re.compile(r"^(.+-)?eval\.json$")
STATUSES = ("finished", "stopped", "diverged", "running?", "unknown")


@dataclass
class RunInfo:
    """One row of `ganforge runs` (also the head of a report)."""

    path: str
    name: str
    task: str
    model: str
    data: str
    step: int | None
    steps: int | None            # planned; None for a run bound by its time budget
    elapsed_s: float | None      # training time over all sessions
    best_fid: float | None
    best_fid_source: str | None  # "metrics.jsonl step N" or an evaluation file
    fid_by_direction: dict = field(default_factory=dict)  # translation runs: a2b / b2a
    status: str = "unknown"
    reason: str = ""
    modified: float = 0.0        # newest of its files (seconds since the epoch)

    def to_dict(self) -> dict:
        return {**asdict(self), "modified": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.modified))}


# Reading one run.
def is_run_dir(path: str | Path) -> bool:
    path = Path(path)
    has_config = (path / rundir.CONFIG).is_file() or rundir.checkpoint_path(path, "last").is_file()
    return has_config and ((path / rundir.METRICS).is_file() or (path / rundir.CHECKPOINTS).is_dir())


def check_run_dir(path: str | Path) -> Path:
    """`path` if it is a run directory, else a CheckpointError that says what it is."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"run directory {str(path)!r} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"{str(path)!r} is a file, not a run directory")
    if not is_run_dir(path):
        raise CheckpointError(f"{str(path)!r} is not a run directory (it has no {rundir.CONFIG} "
                              f"with a {rundir.METRICS} or {rundir.CHECKPOINTS}/)")
    return path


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of metrics.jsonl in order; a line cut short by a crash is skipped."""
    path = Path(run_dir) / rundir.METRICS
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def read_config(run_dir: str | Path) -> dict:
    """The run's resolved config as a nested dict: config.yaml, else the last checkpoint's."""
    path = Path(run_dir) / rundir.CONFIG
    if path.is_file():
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        return config if isinstance(config, dict) else {}
    last = rundir.checkpoint_path(run_dir, "last")
    return checkpoint.read_meta(last).get("config", {}) if last.is_file() else {}


def read_evaluations(run_dir: str | Path) -> dict[str, dict]:
    """The evaluation reports in a run directory, by file name (eval.json first)."""
    found = {}
    for path in sorted(Path(run_dir).glob("*.json"), key=lambda p: (p.name != "eval.json", p.name)):
        if EVALUATION.match(path.name):
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(value, dict):
                found[path.name] = value
    return found


def read_status_file(run_dir: str | Path) -> dict | None:
    """status.json when it belongs to the run's latest session (not older than metrics.jsonl)."""
    path, log = Path(run_dir) / rundir.STATUS, Path(run_dir) / rundir.METRICS
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if log.is_file() and log.stat().st_mtime_ns > path.stat().st_mtime_ns:
        return None  # a later session rewrote the log: this status is from an earlier one
    return status if isinstance(status, dict) and status.get("status") in STATUSES else None


def last_modified(run_dir: str | Path) -> float:
    paths = [Path(run_dir) / name for name in (rundir.STATUS, rundir.METRICS, rundir.CONFIG)]
    paths.append(rundir.checkpoint_path(run_dir, "last"))
    return max((p.stat().st_mtime for p in paths if p.is_file()), default=Path(run_dir).stat().st_mtime)


def health_records(records: list[dict]) -> list[dict]:
    return [r for r in records if "health" in r]


def infer_status(records: list[dict], config: dict, modified: float, now: float | None = None) -> tuple[str, str]:
    """(status, reason) of a run without a status.json for its latest session."""
    age = (time.time() if now is None else now) - modified
    if age < RECENT_S:
        return "running?", f"no status yet; its files changed {age:.0f} s ago"
    health = health_records(records)
    if health and str(health[-1].get("action", "")).startswith("stopped"):
        return "diverged", f"inferred from metrics.jsonl: {health[-1].get('reason', 'the health controller stopped it')}"
    train = config.get("train", {})
    logs = [r for r in records if "health" not in r]
    step = logs[-1]["step"] if logs else 0
    steps, budget = train.get("steps"), train.get("time_budget")
    if isinstance(steps, int) and steps < BUDGET_STEPS and step >= steps:
        return "finished", f"inferred from metrics.jsonl: step {step} of {steps}"
    elapsed = max((r["elapsed_s"] for r in logs if isinstance(r.get("elapsed_s"), (int, float))), default=0)
    if budget and elapsed >= budget:
        return "finished", f"inferred from metrics.jsonl: {elapsed:.0f} s of a {budget:g} s budget trained"
    return "unknown", "no status.json for its last session (killed, crashed, or written before status.json existed)"


def best_fid(records: list[dict], evaluations: dict[str, dict]) -> tuple[float | None, str | None, dict]:
    """The lowest FID the run reached: evaluations during training (eval_fid) and the model
    scores of its evaluation files; translation runs score each direction (returned apart)."""
    candidates = [(r["eval_fid"], f"{rundir.METRICS} step {r['step']}") for r in records
                  if _finite(r.get("eval_fid"))]
    directions = {}
    for name, report in evaluations.items():
        for where in (report.get("model"), report.get("feature_scores", {}).get("model")):
            if isinstance(where, dict) and _finite(where.get("fid")):
                candidates.append((where["fid"], name))
                break
        for direction in ("a2b", "b2a"):
            model = report.get(direction, {}).get("model") if isinstance(report.get(direction), dict) else None
            if isinstance(model, dict) and _finite(model.get("fid")):
                directions[direction] = model["fid"]
    if not candidates:
        return None, None, directions
    value, source = min(candidates, key=lambda c: c[0])
    return value, source, directions


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and abs(value) != float("inf")


def summarize(run_dir: str | Path, name: str | None = None, now: float | None = None) -> RunInfo:
    """One run's row: what it trains on what, how far it got, its best FID and its status."""
    run_dir = check_run_dir(run_dir)
    return summary_of(run_dir, read_config(run_dir), read_metrics(run_dir), read_evaluations(run_dir),
                      name, now)


def summary_of(run_dir: Path, config: dict, records: list[dict], evaluations: dict[str, dict],
               name: str | None = None, now: float | None = None) -> RunInfo:
    """`summarize` from what has already been read of the run (the report reads it once)."""
    logs = [r for r in records if "health" not in r]
    step = logs[-1]["step"] if logs else None
    elapsed = logs[-1].get("elapsed_s") if logs else None
    last = rundir.checkpoint_path(run_dir, "last")
    if step is None and last.is_file():
        meta = checkpoint.read_meta(last)
        step, elapsed = meta.get("step"), meta.get("elapsed_s")
    modified = last_modified(run_dir)
    status = read_status_file(run_dir)
    if status is not None:
        state, reason = status["status"], str(status.get("stop_reason", ""))
        step, elapsed = status.get("step", step), status.get("elapsed_s", elapsed)
    else:
        state, reason = infer_status(records, config, modified, now)
    fid, source, directions = best_fid(records, evaluations)
    data, model = config.get("data", {}), config.get("model", {})
    steps = config.get("train", {}).get("steps")
    return RunInfo(path=str(run_dir), name=name or run_dir.name, task=task_label(config),
                   model=str(model.get("name", "?")), data=data_label(data), step=step,
                   steps=steps if isinstance(steps, int) and steps < BUDGET_STEPS else None,
                   elapsed_s=elapsed, best_fid=fid, best_fid_source=source, fid_by_direction=directions,
                   status=state, reason=reason, modified=modified)


def data_label(data: dict) -> str:
    """`name` (and domain B's), then the resolution: 'mnist 28px', 'a + b 64px'; a path in a
    name is shortened to its last part ('patches:brick.png')."""
    names = " + ".join(_short(str(n)) for n in (data.get("name"), data.get("name_b")) if n)
    size = data.get("resolution")
    return f"{names or '?'} {size}px" if size else names or "?"


def _short(name: str) -> str:
    kind, _, rest = name.rpartition(":")
    return f"{kind}:{Path(rest).name}" if kind and "/" in rest else name


def task_label(config: dict) -> str:
    """The config's task; a classifier trains under the default task, so it says `classify`."""
    if config.get("objective", {}).get("name") == "classifier":
        return "classify"
    return str(config.get("task", "generate"))


# A folder of runs.
def find_runs(folder: str | Path) -> list[Path]:
    """Run directories in `folder` (itself included), down to MAX_DEPTH levels; a run's own
    folders are not searched, hidden folders neither."""
    folder = Path(folder)
    if not folder.exists():
        raise ConfigError(f"folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise ConfigError(f"{str(folder)!r} is a file, not a folder of runs")
    found = []

    def walk(path: Path, depth: int) -> None:
        if is_run_dir(path):
            found.append(path)
            return
        if depth >= MAX_DEPTH:
            return
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            return  # unreadable: not ours to list
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith(".") and entry.name not in RUN_PARTS:
                walk(Path(entry.path), depth + 1)

    walk(folder, 0)
    return found


def list_runs(folder: str | Path, now: float | None = None) -> list[RunInfo]:
    """Every run under `folder`, newest first (by the last change to its files); names are
    paths relative to `folder`.

    Example:
        >>> [(row.name, row.status) for row in list_runs("runs")]
        [('mnist', 'running?'), ('demo', 'finished')]
    """
    folder = Path(folder)
    rows = []
    for path in find_runs(folder):
        name = path.relative_to(folder).as_posix() if path != folder else path.resolve().name
        rows.append(summarize(path, name, now))
    return sorted(rows, key=lambda row: row.modified, reverse=True)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def format_fid(row: RunInfo) -> str:
    if row.best_fid is not None:
        return f"{row.best_fid:.4g}"
    if row.fid_by_direction:
        return " ".join(f"{k} {v:.4g}" for k, v in row.fid_by_direction.items())
    return "-"


def format_runs(rows: list[RunInfo]) -> str:
    """The table `ganforge runs` prints."""
    header = ("run", "task/model", "data", "step", "time", "best FID", "status")
    lines = [header]
    for row in rows:
        step = "-" if row.step is None else f"{row.step}/{row.steps}" if row.steps else str(row.step)
        lines.append((row.name, f"{row.task}/{row.model}", row.data, step, format_duration(row.elapsed_s),
                      format_fid(row), row.status))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {3, 4, 5}
    text = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(line, widths))).rstrip() for line in lines]
    return "\n".join(text)
