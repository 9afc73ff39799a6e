"""benchmarks/budget_quality.py: the table and its truncated rows (the training cells
themselves are minutes each and run only in the benchmark)."""
import argparse
from pathlib import Path

import pytest

from helpers import load_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "budget_quality.py"
FLOOR = {"fid": 0.1, "recall": 0.9, "precision": 0.9}


@pytest.fixture(scope="module")
def bench():
    return load_benchmark(SCRIPT)


def line(seed, precision, recall, truncated=None):
    row = {"set": "mnist", "budget": 60, "recipe": "default", "seed": seed, "steps": 100,
           "model": {"fid": 5.0, "precision": precision, "recall": recall}, "floor": FLOOR, "warnings": []}
    if truncated is not None:
        row["truncated"] = truncated
    return row


def test_truncated_scores_are_added_once_for_cells_whose_run_is_there(bench, tmp_path, monkeypatch):
    (tmp_path / "mnist-60s-default-seed0").mkdir()
    asked = []
    monkeypatch.setattr(bench, "evaluate_run", lambda run, n, quiet, truncation: asked.append(
        (Path(run).name, truncation)) or {"model": {"precision": 0.95, "recall": 0.5}})
    args = argparse.Namespace(out=str(tmp_path), samples=None, truncation="0.8,0.5")
    row, gone = line(0, 0.8, 0.7), line(1, 0.8, 0.7)
    assert bench.truncated_scores(args, row) and asked == [("mnist-60s-default-seed0", 0.8),
                                                           ("mnist-60s-default-seed0", 0.5)]
    assert set(row["truncated"]) == {"0.8", "0.5"}
    assert not bench.truncated_scores(args, row) and len(asked) == 2     # kept, not measured again
    assert not bench.truncated_scores(args, gone) and gone["truncated"] == {}  # no run left to score


def test_each_truncation_is_a_row_beside_the_untruncated_one(bench):
    rows = [line(0, 0.80, 0.70, {"0.8": {"fid": 6.0, "precision": 0.90, "recall": 0.50}}),
            line(1, 0.82, 0.72, {"0.8": {"fid": 6.2, "precision": 0.92, "recall": 0.52}})]
    text = bench.table(rows).splitlines()
    plain = next(t for t in text if "| default |" in t)
    cut = next(t for t in text if "| default, truncation 0.8 |" in t)
    header = [c.strip() for c in text[0].strip("|").split("|")]
    cells = [c.strip() for c in cut.strip("|").split("|")]
    assert cells[header.index("precision")] == "0.91 ± 0.014" and cells[header.index("recall")] == "0.51 ± 0.014"
    assert [c.strip() for c in plain.strip("|").split("|")][header.index("recall")] == "0.71 ± 0.014"
    assert cells[header.index("seeds")] == "2" and cells[-1] == ""


def test_keep_best_shares_are_rows_of_their_own(bench, tmp_path, monkeypatch):
    (tmp_path / "mnist-60s-default-seed0").mkdir()
    asked = []
    monkeypatch.setattr(bench, "evaluate_run", lambda run, n, quiet, **how: asked.append(how) or
                        {"model": {"fid": 6.0, "precision": 0.93, "recall": 0.6}})
    args = argparse.Namespace(out=str(tmp_path), samples=None, truncation="0.8", keep_best="0.8")
    row = line(0, 0.80, 0.70)
    assert bench.truncated_scores(args, row) and asked == [{"truncation": 0.8}, {"keep_best": 0.8}]
    text = bench.table([row]).splitlines()
    labels = [t.split("|")[3].strip() for t in text if "| default" in t]
    assert labels == ["default", "default, truncation 0.8", "default, keep best 0.8"]


def test_cells_at_another_resolution_are_scored_in_the_common_space_once(bench, tmp_path, monkeypatch):
    for seed, resolution in ((0, 28), (1, 32)):
        (tmp_path / f"mnist-60s-default-seed{seed}").mkdir()
        (tmp_path / f"mnist-60s-default-seed{seed}" / "config.yaml").write_text(f"data:\n  resolution: {resolution}\n")
    asked = []
    monkeypatch.setattr(bench, "evaluate_run", lambda run, n, quiet, resolution: asked.append(
        (Path(run).name, resolution)) or {"model": {"fid": 4.0, "precision": 0.85, "recall": 0.75},
                                          "floor": {"fid": 0.2, "recall": 0.91}})
    args = argparse.Namespace(out=str(tmp_path), samples=None, space=32)
    at28, at32, gone = line(0, 0.8, 0.7), line(1, 0.8, 0.7), line(2, 0.8, 0.7)
    assert bench.space_scores(args, at28) and asked == [("mnist-60s-default-seed0", 32)]
    assert at28["space"]["resolution"] == 32 and at28["space"]["model"]["recall"] == 0.75
    assert not bench.space_scores(args, at28) and len(asked) == 1        # kept, not measured again
    assert not bench.space_scores(args, at32) and not bench.space_scores(args, gone) and len(asked) == 1
    assert not bench.space_scores(argparse.Namespace(out=str(tmp_path), samples=None, space=0), line(0, 0.8, 0.7))
    text = bench.table([at28]).splitlines()
    header = [c.strip() for c in text[0].strip("|").split("|")]
    own = [c.strip() for c in next(t for t in text if "| default |" in t).strip("|").split("|")]
    space = [c.strip() for c in next(t for t in text if "| default, in the 32-px space |" in t).strip("|").split("|")]
    assert own[header.index("recall")] == "0.7" and space[header.index("recall")] == "0.75"
    assert space[header.index("floor fid / recall")] == "0.2 / 0.91" and own[header.index("floor fid / recall")] == "0.1 / 0.9"
    floor = [c.strip() for c in next(t for t in text if "real held-out (floor)" in t).strip("|").split("|")]
    assert floor[header.index("fid")] == "0.2"     # the common space's floor, not the 28-px cell's own


def test_cells_of_different_machines_are_never_averaged(bench):
    fast, slow = line(0, 0.80, 0.70), line(1, 0.90, 0.60)
    fast["machine"], slow["machine"] = "Xeon, 2 CPUs", "EPYC, 2 CPUs"
    text = bench.table([fast, slow]).splitlines()
    rows = [t for t in text if "| default" in t]
    assert [r.split("|")[3].strip() for r in rows] == ["default [1]", "default [2]"]
    assert all(r.split("|")[4].strip() == "1" for r in rows)           # one seed each, not two
    assert "[1] measured on EPYC, 2 CPUs." in text and "[2] measured on Xeon, 2 CPUs." in text
    fast_only = bench.table([fast]).splitlines()
    assert any("| default |" in t for t in fast_only) and fast_only[-1] == "Measured on Xeon, 2 CPUs."


@pytest.mark.parametrize("budget", ["60", "300", "900"])
def test_the_reference_recipe_stays_the_plain_loop_at_every_budget(bench, budget, capsys):
    # --time-budget sizes short budgets and adds lazy R1 to long ones; the reference takes neither.
    import yaml
    from ganforge.cli import main
    assert main(["train", *bench.RECIPES["reference"], "--dataset", "fashion-mnist", "--time-budget", budget,
                 "--dry-run"]) == 0
    captured = capsys.readouterr()
    config = yaml.safe_load(captured.out)
    assert "--time-budget" not in captured.err and config["objective"]["r1_gamma"] == 0.0
    assert (config["data"]["resolution"], config["model"]["g_width"], config["train"]["ema_decay"]) == (28, 48, 0)
    assert (config["train"]["beta1"], config["train"]["beta2"]) == (0.5, 0.999)    # DCGAN's Adam


@pytest.mark.parametrize("argv, named", [
    (["--budgets", "60,abc"], "'abc' is not int"),
    (["--budgets", "0"], "at least 1"),
    (["--recipes", "reference,nosuch"], "'nosuch': not one of"),
    (["--sets", "cifar10"], "'cifar10': not one of"),
    (["--truncation", "3"], "truncation=3.0"),
    (["--keep-best", "0"], "keep_best=0.0"),
])
def test_a_bad_argument_is_one_line_naming_it_and_exit_2(bench, monkeypatch, capsys, argv, named):
    monkeypatch.setattr("sys.argv", ["budget_quality.py", *argv])
    with pytest.raises(SystemExit) as stop:
        bench.parse_args()
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert named in error and argv[0] in error


def test_a_cell_whose_training_fails_stops_with_ganforge_s_status_not_a_traceback(bench, tmp_path, capsys,
                                                                                   monkeypatch):
    monkeypatch.setitem(bench.RECIPES, "reference", [*bench.RECIPES["reference"], "--set", "data.download=false"])
    args = argparse.Namespace(data_dir=str(tmp_path / "no-data"), out=str(tmp_path / "cells"), samples=None)
    with pytest.raises(SystemExit) as stop:
        bench.cell(args, "mnist", 60, "reference", 0)
    assert stop.value.code == 2
    assert "files not found" in capsys.readouterr().err
