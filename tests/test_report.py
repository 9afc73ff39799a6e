"""`ganforge report` (one self-contained HTML page per run, or runs compared) and `ganforge runs`
(the runs of a folder with their status). The runs are real and tiny: an 8-channel DCGAN on the
bundled digits at 16 px for a few steps, finished, stopped by SIGTERM, diverged (the health
controller gave up after a rollback) and bound by a time budget. Evaluations, which need a
feature classifier, are written into copies of them as `ganforge evaluate` writes them."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
from PIL import Image

import ganforge
from ganforge import report as report_module
from ganforge.cli import main
from ganforge.errors import CheckpointError, ConfigError
from ganforge.report import (build_report, derived_learning_rates, evaluation_html, families_of, health_events,
                             load_runs, segments, split_undone, write_report)
from ganforge.runs_table import format_runs, list_runs
from ganforge.training import Trainer
from helpers import error_line

TINY = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 8, "data.resolution": 16,
        "log.every": 2, "log.progress": False, "log.tensorboard": "no", "log.sample_every": 2,
        "log.checkpoint_every": 1000, "log.grid_size": 4, "train.device": "cpu", "train.precision": "fp32"}
IMG_SRC = re.compile(r'<img [^>]*src="([^"]*)"')


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Four runs in one folder, trained in this order: finished, stopped, diverged, budget."""
    folder = tmp_path_factory.mktemp("runs")
    made = {"finished": ganforge.train(overrides={**TINY, "train.steps": 6, "out": str(folder / "finished")})}
    step = Trainer._train_step

    def terminated_after_two(self, sums):  # what a scheduler does: SIGTERM during a step
        step(self, sums)
        if self.step == 2:
            signal.raise_signal(signal.SIGTERM)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "_train_step", terminated_after_two)
        made["stopped"] = ganforge.train(overrides={**TINY, "train.steps": 1000, "train.time_budget": 60,
                                                    "out": str(folder / "group" / "stopped")})
    made["diverged"] = ganforge.train(overrides={**TINY, "train.steps": 10, "health.max_grad_norm": 1e-6,
                                                 "health.max_rollbacks": 1, "out": str(folder / "diverged")})
    made["budget"] = ganforge.train(overrides={**TINY, "train.time_budget": 0.2, "out": str(folder / "budget")})
    assert made["finished"].stop_reason == "steps done"
    assert made["stopped"].stop_reason == "terminated" and made["stopped"].step == 3
    assert made["diverged"].stop_reason.startswith("unhealthy")
    assert made["budget"].stop_reason.startswith("time budget")
    (folder / "notes").mkdir()  # not a run: skipped
    (folder / "notes" / "todo.txt").write_text("x")
    return {name: run.dir for name, run in made.items()}


def images(page: str) -> list[Image.Image]:
    """Every <img> of the page, decoded (each must be an embedded PNG)."""
    found = []
    for src in IMG_SRC.findall(page):
        assert src.startswith("data:image/png;base64,"), src[:60]
        found.append(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))
    return found


def assert_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r'(src|href)\s*=\s*"(?!data:|#)', page), "a link or source outside the page"
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page


def copy_run(run: Path, tmp_path: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(run, tmp_path / name))


# The report of one run.
def test_a_report_is_one_self_contained_page(runs):
    run = runs["finished"]
    page = build_report([run])
    assert_self_contained(page)
    grids = sorted((run / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["final.png", "step-000002.png", "step-000004.png", "step-000006.png"]
    pictures = images(page)
    assert all(p.format == "PNG" for p in pictures)
    # One figure per family the run logged, the learning rate (derived: it is not logged) among them.
    for title in ("Losses", "Accuracy", "D&#x27;s mean outputs", "Gradient norms", "Learning rate", "Throughput"):
        assert f"<h3>{title}" in page, title
    assert "FID during training" not in page  # no log.eval_every: no FID figure
    # The grids over time, by step, and the final one, as they are on disk.
    for caption in ("step 2", "step 4", "step 6", "final"):
        assert f"<figcaption>{caption}</figcaption>" in page
    embedded = {p.tobytes() for p in pictures}
    assert Image.open(run / "samples" / "step-000004.png").tobytes() in embedded
    # The resolved config, the status, and no health actions.
    assert (run / "config.yaml").read_text().splitlines()[1].strip() in page
    assert "g_width: 8" in page and "finished" in page and "steps done" in page
    assert "No actions" in page and "Not evaluated yet" in page


def test_health_actions_are_marked_on_the_time_axes(runs, monkeypatch):
    from matplotlib.axes import Axes

    run = runs["diverged"]
    (data,) = load_runs([run])
    events = health_events(data.records)
    assert [(e["step"], e["to_step"], e["kind"]) for e in events] == [(2, 0, "divergence"), (2, 2, "divergence")]
    assert events[0]["action"].startswith("rolled back") and events[1]["action"].startswith("stopped")
    marks = []
    axvline = Axes.axvline
    monkeypatch.setattr(Axes, "axvline", lambda self, x, *a, **k: marks.append(x) or axvline(self, x, *a, **k))
    page = build_report([run])
    figures = page.count("<figure id=")
    assert figures >= 5 and marks == [2, 2] * figures  # both actions on every figure
    assert "#1 divergence" not in page  # the labels are drawn in the figures; the table numbers them
    assert "<td>#1</td>" in page and "<td>#2</td>" in page and "rolled back from step 2 to step 0" in page
    assert "grad_norm_D" in page and "max_grad_norm" in page and "diverged" in page
    # The rollback halved the learning rates from the step it went back to.
    lr = derived_learning_rates(data)
    assert list(lr) == ["lr_D, lr_G (derived)"]
    assert all(value == pytest.approx(1e-4) for _, value in lr["lr_D, lr_G (derived)"])


def test_steps_a_rollback_undid_are_kept_apart():
    records = [{"step": 2, "loss": 1.0}, {"step": 4, "loss": 2.0}, {"step": 6, "loss": 3.0},
               {"step": 4, "health": "collapse", "action": "rolled back from step 6 to step 4"},
               {"step": 6, "loss": 4.0}, {"step": 8, "loss": float("nan")}]
    parts = segments(records, "loss")
    assert parts == [[(2, 1.0), (4, 2.0), (6, 3.0)], [(6, 4.0), (8, pytest.approx(float("nan"), nan_ok=True))]]
    kept, undone = split_undone(parts)
    assert [s for s, _ in kept] == [2, 4, 6, 8] and kept[2] == (6, 4.0)
    assert undone == [[(6, 3.0)]]
    assert health_events(records)[0]["step"] == 6  # marked where it happened, not where it went back to


def test_keys_are_grouped_by_family_and_the_rest_by_prefix():
    keys = ["loss_G", "loss_D", "l1", "cycle", "D_accuracy", "grad_norm_G", "augment_p", "images_per_s",
            "eval_fid", "eval_kid", "eval_kid_std", "eval_precision", "eval_recall", "class_diversity_min",
            "class_diversity_mean", "foo_a", "foo_b", "loss_VAE", "train_accuracy"]
    groups = {family.title: members for family, members in families_of(keys)}
    assert groups["Losses"] == ["loss_G", "loss_D", "loss_VAE"]
    assert groups["Accuracy"] == ["D_accuracy", "train_accuracy"]
    assert groups["KID during training"] == ["eval_kid"]  # its _std is the band
    assert groups["Precision, recall, density, coverage"] == ["eval_precision", "eval_recall"]
    assert groups["Per-class diversity probe"] == ["class_diversity_min", "class_diversity_mean"]
    assert groups["foo"] == ["foo_a", "foo_b"] and groups["l1"] == ["l1"] and groups["cycle"] == ["cycle"]
    assert list(groups)[:2] == ["Losses", "Accuracy"]


def with_evaluation(run: Path, tmp_path: Path) -> Path:
    """A copy of `run` evaluated during training (eval_* lines) and at the end (eval.json)."""
    copy = copy_run(run, tmp_path, "evaluated")
    with open(copy / "metrics.jsonl", "a") as log:
        for step, fid in ((2, 30.0), (4, 12.5), (6, 17.0)):
            log.write(json.dumps({"step": step, "eval_fid": fid, "eval_kid": fid / 100, "eval_kid_std": 0.01,
                                  "eval_precision": 0.5}) + "\n")
    report = {"model": {"fid": 14.0, "kid": 0.13, "kid_std": 0.02, "precision": 0.6},
              "floor": {"fid": 0.9, "kid": 0.001, "kid_std": 0.003, "precision": 0.8},
              "setup": {"n_samples": 100, "step": 6, "checkpoint": "last"},
              "warnings": ["recall far below the real-data floor"]}
    (copy / "eval.json").write_text(json.dumps(report))
    return copy


def test_the_evaluation_with_its_real_data_floor(runs, tmp_path):
    run = with_evaluation(runs["finished"], tmp_path)
    page = build_report([run])
    assert_self_contained(page)
    assert "<h3>FID during training" in page and "<h3>KID during training" in page
    assert "<h3>Precision, recall, density, coverage" in page
    assert "<h4>eval.json</h4>" in page and "real data" in page
    assert "<td>14</td><td>0.9</td>" in page  # model beside the floor
    assert "0.13 ± 0.02" in page and "WARNING: recall far below the real-data floor" in page
    # The best FID: the lowest of the training evaluations (12.5 at step 4) and eval.json (14).
    assert "12.5<br><small>metrics.jsonl step 4</small>" in page
    assert "14 <small>(floor 0.9)</small>" in page
    (row,) = list_runs(run.parent)
    assert row.best_fid == 12.5 and row.best_fid_source == "metrics.jsonl step 4"


def test_editing_and_translation_reports_become_tables():
    editing = {"task": "super-resolve", "degrade": "downscale:4",
               "model": {"psnr": 30.0, "ssim": 0.9}, "baselines": {"bicubic": {"psnr": 28.0, "ssim": 0.85}},
               "feature_scores": {"model": {"fid": 3.0}, "real floor": {"fid": 0.5}},
               "setup": {"images": 10, "seed": 0}}
    page = evaluation_html(editing)
    header = re.findall(r"<tr><th>metric</th>(.*?)</tr>", page)
    assert len(header) == 2  # model and baselines together; the feature scores apart
    assert ">model<" in header[0] and ">bicubic<" in header[0]
    assert "<h5>feature_scores</h5>" in page and "real floor" in header[1]
    assert "<th>setup.images</th><td>10</td>" in page and "<th>degrade</th><td>downscale:4</td>" in page
    translation = {"task": "translate", "a2b": {"model": {"fid": 4.5}, "floor": {"fid": 2.1}, "n": 180},
                   "b2a": {"model": {"fid": 2.2}, "floor": {"fid": 2.2}, "n": 180}}
    page = evaluation_html(translation)
    assert "<h5>a2b</h5>" in page and "<h5>b2a</h5>" in page and "<th>a2b.n</th><td>180</td>" in page


# Several runs.
def test_runs_compared_on_the_same_axes(runs, tmp_path):
    out = tmp_path / "compare.html"
    assert main(["report", str(runs["finished"]), str(runs["diverged"]), "--out", str(out), "--quiet"]) == 0
    page = out.read_text()
    assert_self_contained(page)
    assert "2 runs compared" in page
    assert "<th>finished</th><th>diverged</th>" in page  # final numbers side by side
    assert "<h3>finished</h3>" in page and "<h3>diverged</h3>" in page  # each run's grids
    assert "Keys that differ" in page and "<th>health.max_grad_norm</th><td>10000.0</td><td>1e-06</td>" in page
    single = build_report([runs["finished"]])
    assert page.count("<figure id=") == single.count("<figure id=")  # one figure per quantity, not per run
    with pytest.raises(ConfigError, match="--out"):
        write_report([runs["finished"], runs["diverged"]])
    with pytest.raises(ConfigError, match="given twice"):
        build_report([runs["finished"], runs["finished"]])


def test_run_names_tell_runs_apart():
    assert report_module.unique_names([Path("/a/tr/default"), Path("/a/old/default")]) == ["tr/default", "old/default"]
    assert report_module.unique_names([Path("/a/x"), Path("/a/y")]) == ["x", "y"]


# Writing.
def test_the_report_goes_into_the_run_and_is_never_overwritten(runs, tmp_path, capsys):
    run = copy_run(runs["finished"], tmp_path)
    assert main(["report", str(run)]) == 0
    written = run / "report.html"
    assert f"wrote {written}" in capsys.readouterr().out
    before = written.read_bytes()
    assert main(["report", str(run)]) == 2
    assert "exists; pass --force" in error_line(capsys, "report")
    assert written.read_bytes() == before
    with pytest.raises(ConfigError, match="--force"):
        write_report([run])
    written.write_bytes(b"a stale report")      # so that "written again" shows whatever the clock says
    assert main(["report", str(run), "--force", "--quiet"]) == 0
    assert written.read_bytes().startswith(b"<!DOCTYPE html>")  # written again
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_progress_is_reported_until_done(runs):
    calls = []
    build_report([runs["finished"]], progress=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert calls == [(i, total) for i in range(1, total + 1)]
    assert total >= 5 + 4  # the figures and the four grids


@pytest.mark.parametrize("what", ["missing", "empty", "file"])
def test_a_bad_run_directory_is_one_line(tmp_path, capsys, what):
    target = tmp_path / "x"
    if what == "empty":
        target.mkdir()
    elif what == "file":
        target.write_text("x")
    assert main(["report", str(target)]) == 2
    line = error_line(capsys, "report")
    assert str(target) in line
    assert {"missing": "does not exist", "empty": "not a run directory", "file": "not a run directory"}[what] in line
    with pytest.raises(CheckpointError):
        build_report([target])


# The runs table.
def test_the_runs_table_newest_first_with_statuses(runs, capsys):
    folder = runs["finished"].parent
    rows = list_runs(folder, now=time.time() + 3600)  # an hour later: nothing is still running
    assert [row.name for row in rows] == ["budget", "diverged", "group/stopped", "finished"]
    statuses = {row.name: (row.status, row.reason) for row in rows}
    assert statuses["finished"] == ("finished", "steps done")
    assert statuses["group/stopped"] == ("stopped", "terminated")
    assert statuses["diverged"][0] == "diverged" and "grad_norm_D" in statuses["diverged"][1]
    assert statuses["budget"][0] == "finished" and statuses["budget"][1].startswith("time budget")
    by_name = {row.name: row for row in rows}
    assert by_name["finished"].step == 6 and by_name["finished"].steps == 6
    assert by_name["group/stopped"].step == 3 and by_name["budget"].steps is None  # bound by its budget
    assert by_name["finished"].task == "generate" and by_name["finished"].model == "dcgan"
    assert by_name["finished"].data == "digits 16px"
    table = format_runs(rows).splitlines()
    assert table[0].split() == ["run", "task/model", "data", "step", "time", "best", "FID", "status"]
    assert [line.split()[0] for line in table[1:]] == ["budget", "diverged", "group/stopped", "finished"]
    assert "6/6" in table[4] and table[4].endswith("finished") and table[3].endswith("stopped")
    assert main(["runs", str(folder), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["status"]) for r in listed] == [
        ("budget", "finished"), ("diverged", "diverged"), ("group/stopped", "stopped"), ("finished", "finished")]


def test_runs_without_a_status_of_their_own(runs, tmp_path):
    folder = tmp_path / "runs"
    old = copy_run(runs["finished"], folder, "old")       # from before status.json
    (old / "status.json").unlink()
    resumed = copy_run(runs["stopped"], folder, "resumed")  # a later session rewrote the log, then was killed
    cut = copy_run(runs["stopped"], folder, "cut")        # killed, never finished a session
    (cut / "status.json").unlink()
    hour_ago = time.time() - 3600
    for path in (old, resumed, cut):
        for file in path.rglob("*"):
            os.utime(file, (hour_ago, hour_ago))
    os.utime(resumed / "metrics.jsonl", (hour_ago + 60, hour_ago + 60))
    statuses = {row.name: (row.status, row.reason) for row in list_runs(folder)}
    assert statuses["old"] == ("finished", "inferred from metrics.jsonl: step 6 of 6")
    assert statuses["resumed"][0] == "unknown" and statuses["cut"][0] == "unknown"
    assert [row.status for row in list_runs(folder, now=hour_ago + 120)] == ["running?"] * 3


def test_runs_of_a_missing_or_empty_folder(tmp_path, capsys):
    assert main(["runs", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in error_line(capsys, "runs")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert main(["runs", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.startswith(f"no runs in {tmp_path / 'empty'}")
    assert main(["runs", str(tmp_path / "empty"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
