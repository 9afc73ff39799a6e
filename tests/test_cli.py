"""The `ganforge` command line, driven through `ganforge.cli.main(argv)` (plus one subprocess
test of --help). Training runs are tiny: 4 steps of an 8-channel DCGAN on the bundled digits."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import ganforge
from helpers import error_line
from ganforge import checkpoint
from ganforge.cli import main

TINY = ["--steps", "4", "--batch-size", "16", "--set", "model.g_width=8",
        "--set", "model.d_width=8", "--set", "log.every=2", "--quiet"]


def train_cli(out, *extra) -> int:
    return main(["train", *TINY, "--out", str(out), *extra])


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def last_step(run: Path) -> int:
    return checkpoint.read_meta(run / "checkpoints" / "last.safetensors")["step"]


def snapshot(folder: Path) -> dict:
    """Every file under `folder` with its bytes, to show that nothing changed."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One tiny trained run, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert train_cli(out) == 0
    return out


# Help.
TRAIN_DEFAULTS = {
    "--dataset": "digits", "--data-dir": "None", "--model": "dcgan", "--resolution": "32",
    "--channels": "1", "--batch-size": "64", "--steps": "1500", "--time-budget": "None",
    "--lr": "0.0002", "--seed": "0", "--d-steps": "1", "--device": "auto", "--precision": "auto",
    "--out": "runs/<time>-<model>-<dataset>",
}


def test_help_in_a_subprocess():
    env = {**os.environ, "COLUMNS": "100"}
    top = subprocess.run([sys.executable, "-m", "ganforge", "--help"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert top.returncode == 0, top.stderr
    assert "train" in top.stdout and "sample" in top.stdout

    script = Path(sys.executable).parent / "ganforge"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ganforge"]
    result = subprocess.run([*command, "train", "--help"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # undo line wrapping
    for option, default in TRAIN_DEFAULTS.items():
        # The option's own help entry (not the usage line) ends with its default.
        pattern = rf"{re.escape(option)} [A-Z_]+ [^\[]*\[[^\]]*default: {re.escape(default)}\]"
        assert re.search(pattern, text), f"{option}: no 'default: {default}' in its help"
    for flag in ("--resume", "--config", "--set", "--dry-run", "--quiet"):
        assert f"{flag} " in text


def test_a_closed_pipe_ends_quietly():
    """`ganforge models | head -1`: the reader leaves early; no traceback, the shell's 141."""
    process = subprocess.Popen([sys.executable, "-m", "ganforge", "models"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()                       # no reader: the first write fails with EPIPE
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and "Traceback" not in stderr, stderr


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


# Dry run.
def test_dry_run_prints_config_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    code = main(["train", "--dry-run", "--steps", "7", "--lr", "0.001", "--model", "mlp",
                 "--set", "model.hidden=5", "--set", "log.every=3", "--quiet", "--out", str(out)])
    assert code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["steps"] == 7
    assert printed["train"]["lr"] == pytest.approx(0.001)
    assert printed["train"]["batch_size"] == 64
    assert printed["model"]["name"] == "mlp" and printed["model"]["hidden"] == 5
    assert "g_width" not in printed["model"]
    assert printed["log"]["every"] == 3 and printed["log"]["progress"] is False
    assert printed["out"] == str(out)
    assert list(tmp_path.iterdir()) == []
    # What it prints is a config file that resolves to the same config.
    assert ganforge.make_config(printed).to_dict() == printed


def test_dry_run_builds_what_training_would_and_stops_on_keys_that_clash(tmp_path, monkeypatch, capsys):
    """Errors that span keys (an objective option the model cannot take) stop a dry run with
    one line and status 2, as they stop training; data not on this machine is only noted."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dry-run", "--model", "mlp", "--set", "model.hidden=5"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["model"]["hidden"] == 5
    assert "dry run: 1,437 training images (digits); networks built (G " in captured.err
    assert main(["train", "--dry-run", "--set", "objective.spread_match=1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""                                   # no config printed for a wrong one
    assert "objective.spread_match needs a conditional model" in captured.err
    assert main(["train", "--dry-run", "--dataset", "mnist", "--data-dir", str(tmp_path / "none")]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["data"]["name"] == "mnist"
    assert "the data was not read, so the networks and objective were not built" in captured.err
    assert "files not found" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == []     # nothing downloaded, no run made


def test_the_options_users_look_for_set_their_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dry-run", "--loss", "hinge", "--conditional", "--augment", "translation,color",
                 "--ada", "--ema", "0.99", "--lr-g", "0.0001", "--lr-d", "0.0004", "--eval-every", "50",
                 "--grid", "16"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["objective"]["loss"] == "hinge" and printed["model"]["conditional"] is True
    assert printed["objective"]["augment"] == "translation,color" and printed["objective"]["ada"] is True
    assert printed["train"]["ema_decay"] == pytest.approx(0.99)
    assert printed["train"]["lr_g"] == pytest.approx(1e-4) and printed["train"]["lr_d"] == pytest.approx(4e-4)
    assert printed["log"]["eval_every"] == 50 and printed["log"]["grid_size"] == 16
    # Without the flags, the preset's or config's values stand (a flag only ever sets true).
    assert main(["train", "--dry-run", "--preset", "cgan-mnist"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["conditional"] is True
    assert main(["train", "--dry-run", "--loss", "nope"]) == 2
    assert "nope" in error_line(capsys, "train")


def test_train_help_groups_its_options():
    from ganforge.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for title in ("data and model:", "GAN objective:", "optimisation:", "transfer:", "logging:", "run and config:"):
        assert title in text
    gan = text.split("GAN objective:")[1].split("optimisation:")[0]
    assert "--loss" in gan and "--ada" in gan and "--lr-g" not in gan
    classify = build_parser()._subparsers._group_actions[0].choices["classify"]
    classify_train = classify._subparsers._group_actions[0].choices["train"].format_help()
    assert "--loss" not in classify_train and "--ema" not in classify_train and "--init-from" in classify_train


def test_dry_run_set_beats_options_and_config_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("train:\n  steps: 5\n  seed: 9\n")
    assert main(["train", "--dry-run", "--config", "c.yaml", "--steps", "6",
                 "--set", "train.batch_size=8"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["seed"] == 9          # from the file
    assert printed["train"]["steps"] == 6         # option beats file
    assert printed["train"]["batch_size"] == 8    # --set
    assert main(["train", "--dry-run", "--steps", "6", "--set", "train.steps=3"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["steps"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]  # no runs/ created


# Bad options: exit 2, one line naming the key, no run directory.
@pytest.mark.parametrize("options, needles", [
    (["--batch-size", "0"], ["train.batch_size"]),
    (["--resolution", "30"], ["data.resolution", "32"]),
    (["--channels", "2"], ["data.channels"]),
    (["--lr", "-1"], ["train.lr"]),
    (["--precision", "fp8"], ["train.precision", "fp32"]),
    (["--d-steps", "0"], ["objective.d_steps"]),
    (["--time-budget", "0"], ["train.time_budget"]),
    (["--model", "nope"], ["'nope'", "dcgan", "mlp"]),
    (["--dataset", "nope"], ["'nope'", "digits"]),
    (["--set", "train.bach_size=3"], ["train.bach_size", "did you mean"]),
    (["--set", "train.steps=abc"], ["train.steps", "int"]),
    (["--set", "model.hidden=5"], ["model.hidden"]),
    (["--set", "train.steps"], ["key=value"]),
    (["--config", "missing.yaml"], ["missing.yaml"]),
    (["--device", "cpu", "--precision", "fp16"], ["train.precision", "CUDA"]),
    (["--resume", "elsewhere"], ["different directories"]),
])
def test_bad_option_values_exit_2(tmp_path, monkeypatch, capsys, options, needles):
    monkeypatch.chdir(tmp_path)
    assert train_cli(tmp_path / "run", *options) == 2
    line = error_line(capsys)
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_exits_2(tmp_path, capsys):
    assert train_cli(tmp_path / "run", "--device", "cuda") == 2
    assert "train.device" in error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_batch_larger_than_data_set_exits_2(tmp_path, capsys):
    try:
        code = train_cli(tmp_path / "run", "--batch-size", "5000")
    except ValueError:
        code = "traceback"
    assert code == 2
    assert "train.batch_size" in error_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options", [["--config", "bad.yaml"], ["--set", "train.steps=[1"]])
def test_yaml_errors_are_one_line(tmp_path, monkeypatch, capsys, options):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    assert train_cli(tmp_path / "run", *options) == 2
    error_line(capsys)


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--steps", "abc"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--steps" in err and "'abc'" in err and "Traceback" not in err


# Training.
def test_train_writes_a_run_directory(run, capsys):
    assert (run / "checkpoints" / "last.safetensors").is_file()
    assert (run / "samples" / "final.png").is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["steps"] == 4 and config["train"]["batch_size"] == 16
    assert config["model"]["name"] == "dcgan" and config["model"]["g_width"] == 8
    assert config["log"]["progress"] is False and config["out"] == str(run)
    records = metrics(run)
    assert [r["step"] for r in records] == [2, 4]
    for record in records:
        for key in ("step", "loss_D", "loss_G", "images_per_s", "elapsed_s"):
            assert isinstance(record[key], (int, float)), key
            assert np.isfinite(record[key]), key
        assert record["images_per_s"] > 0
    assert records[0]["elapsed_s"] <= records[1]["elapsed_s"]
    assert last_step(run) == 4
    grid = Image.open(run / "samples" / "final.png")
    assert grid.format == "PNG" and grid.mode == "L"


def test_train_prints_a_summary(tmp_path, capsys):
    assert train_cli(tmp_path / "run", "--steps", "2") == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "run") in out and "step 2" in out
    assert last_step(tmp_path / "run") == 2


def test_training_into_an_existing_run_is_refused(run, capsys):
    before = snapshot(run)
    assert train_cli(run) == 2
    line = error_line(capsys)
    assert "--resume" in line and str(run) in line
    assert snapshot(run) == before


def test_resume_continues_from_the_checkpoint(run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert main(["train", "--resume", str(copy), "--steps", "8",
                 "--set", "log.progress=true"]) == 0
    out = capsys.readouterr().out
    assert f"resumed {copy} at step 4" in out
    assert "step 8" in out
    assert [r["step"] for r in metrics(copy)] == [2, 4, 6, 8]
    # The lines of steps 2 and 4 are the original run's, not written again.
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    assert lines[:2] == (run / "metrics.jsonl").read_text().splitlines()
    assert last_step(copy) == 8
    config = yaml.safe_load((copy / "config.yaml").read_text())
    assert config["train"]["steps"] == 8
    assert config["out"] == str(copy)
    assert config["model"]["g_width"] == 8  # the run's own settings, not the defaults


def test_resume_refuses_a_different_network(run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    before = snapshot(copy)
    assert main(["train", "--resume", str(copy), "--set", "model.g_width=16", "--quiet"]) == 2
    assert "model.g_width" in error_line(capsys)
    assert snapshot(copy) == before


def test_resume_of_a_missing_run_exits_2(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nothing"), "--quiet"]) == 2
    assert str(tmp_path / "nothing") in error_line(capsys)


def test_time_budget_stops_early_with_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    # 3000 steps take well over 0.5 s (~150 steps/s here), yet would not hang the suite
    # if the budget were ignored.
    assert main(["train", *TINY, "--steps", "3000", "--time-budget", "0.5",
                 "--out", str(out)]) == 0
    assert "time budget" in capsys.readouterr().out
    step = last_step(out)
    assert 0 < step < 3000
    assert (out / "samples" / "final.png").is_file()
    assert all(r["step"] <= step for r in metrics(out))


# Sampling.
def test_sample_grid_png(run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "-n", "10", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    image = Image.open(out)
    assert image.format == "PNG" and image.mode == "L"
    # 10 images of 32 px, 4 per row, 2 px padding: 4 x 3 tiles.
    assert image.size == (4 * 34 + 2, 3 * 34 + 2)


def test_sample_default_out_is_in_the_run(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert main(["sample", str(copy), "-n", "4", "--seed", "3"]) == 0
    assert Image.open(copy / "samples" / "sample-seed3.png").format == "PNG"


def test_sample_one_png_per_image(run, tmp_path):
    folder = tmp_path / "images"
    assert main(["sample", str(run), "-n", "5", "--out", f"{folder}/"]) == 0
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]
    for path in files:
        image = Image.open(path)
        assert image.format == "PNG" and image.size == (32, 32) and image.mode == "L"


def test_sample_never_overwrites_without_force(run, tmp_path, capsys):
    out = tmp_path / "g.png"
    assert main(["sample", str(run), "-n", "4", "--out", str(out)]) == 0
    before = out.read_bytes()
    assert main(["sample", str(run), "-n", "4", "--seed", "5", "--out", str(out)]) == 2
    assert "--force" in error_line(capsys, "sample") and out.read_bytes() == before
    folder = tmp_path / "each"
    assert main(["sample", str(run), "-n", "3", "--out", f"{folder}/"]) == 0
    assert main(["sample", str(run), "-n", "3", "--out", f"{folder}/"]) == 2
    assert main(["sample", str(run), "-n", "4", "--seed", "5", "--out", str(out), "--force"]) == 0
    assert out.read_bytes() != before


def test_sample_reports_progress_per_batch(run):
    calls = []
    images = ganforge.load(run).sample(7, seed=0, batch_size=3, progress=lambda done, n: calls.append((done, n)))
    assert calls == [(3, 7), (6, 7), (7, 7)]
    np.testing.assert_array_equal(images, ganforge.load(run).sample(7, seed=0))


def sample_npz(run, path, *extra) -> np.ndarray:
    assert main(["sample", str(run), "--out", str(path.with_suffix(".png")),
                 "--npz", str(path), *extra]) == 0
    with np.load(path) as data:
        assert "y" not in data.files
        return data["x"]


def test_sample_npz_and_seeds(run, tmp_path):
    x = sample_npz(run, tmp_path / "a.npz", "-n", "6", "--seed", "1")
    assert x.shape == (6, 32, 32) and x.dtype == np.uint8
    same = sample_npz(run, tmp_path / "b.npz", "-n", "6", "--seed", "1", "--batch-size", "4")
    other = sample_npz(run, tmp_path / "c.npz", "-n", "6", "--seed", "2")
    np.testing.assert_array_equal(x, same)
    assert not np.array_equal(x, other)
    # The npz holds what the API gives, without the channel axis.
    np.testing.assert_array_equal(x, ganforge.load(run).sample(6, seed=1)[..., 0])


def test_sample_missing_run_exits_2(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    assert main(["sample", str(missing), "-n", "2", "--out", str(tmp_path / "g.png")]) == 2
    assert str(missing) in error_line(capsys, "sample")
    assert not (tmp_path / "g.png").exists()


def test_sample_labels_on_unconditional_model_exits_2(run, tmp_path, capsys):
    out = tmp_path / "g.png"
    assert main(["sample", str(run), "-n", "2", "--labels", "1,2", "--out", str(out)]) == 2
    assert "conditional" in error_line(capsys, "sample")
    assert not out.exists()


@pytest.mark.parametrize("options, needle", [
    (["-n", "0"], "-n"),
    (["--batch-size", "0"], "--batch-size"),
    (["--out", "grid.jpg"], "--out"),
    (["--labels", "a,b"], "--labels"),
    (["--checkpoint", "best"], "best"),
    (["--truncation", "2.5"], "truncation"),
    (["--npz", "arrays.txt"], "--npz 'arrays.txt': give a .npz file"),
])
def test_sample_bad_options_exit_2(run, tmp_path, monkeypatch, capsys, options, needle):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", str(run), *options]) == 2
    assert needle in error_line(capsys, "sample")
    assert list(tmp_path.iterdir()) == []


# The Python API behind `sample`.
def test_load_sample_api(run):
    model = ganforge.load(run)
    assert model.step == 4
    images = model.sample(7, seed=5)
    assert isinstance(images, np.ndarray)
    assert images.dtype == np.uint8 and images.shape == (7, 32, 32, 1)
    np.testing.assert_array_equal(images, model.sample(7, seed=5, batch_size=3))
    np.testing.assert_array_equal(images, ganforge.load(run).sample(7, seed=5, batch_size=1))
    assert not np.array_equal(images, model.sample(7, seed=6))
    assert images.min() < images.max()  # not a blank image
    assert model.sample(0).shape == (0, 32, 32, 1)


def test_truncation_in_z_space_for_generators_without_a_mapping(run, tmp_path):
    """psi=1 is no truncation; psi=0 gives every image from z=0 (the mean latent)."""
    model = ganforge.load(run)
    np.testing.assert_array_equal(model.sample(4, seed=2, truncation=1.0), model.sample(4, seed=2))
    mean = model.sample(4, seed=2, truncation=0.0)
    assert all(np.array_equal(mean[0], image) for image in mean)
    half = sample_npz(run, tmp_path / "half.npz", "-n", "4", "--seed", "2", "--truncation", "0.5")
    assert not np.array_equal(half, mean[..., 0]) and not np.array_equal(half, model.sample(4, seed=2)[..., 0])


def test_psi_above_1_samples_a_wider_latent(run):
    """Above 1 the z of generators without a mapping is scaled up: more varied than trained
    (for a model that draws each class narrower than the data); past MAX_PSI it is refused."""
    from ganforge.errors import ConfigError
    from ganforge.models.truncation import MAX_PSI, truncated
    model = ganforge.load(run)
    z = torch.randn(4, model.net.latent_dim)
    wide, extra = truncated(model.net, z, 1.5)
    assert torch.equal(wide, z * 1.5) and extra == {}
    assert not np.array_equal(model.sample(4, seed=2, truncation=1.5), model.sample(4, seed=2))
    with pytest.raises(ConfigError, match=rf"truncation=2.5: must be in \[0, {MAX_PSI:g}\]"):
        truncated(model.net, z, 2.5)


def test_models_lists_every_architecture_once(capsys):
    from ganforge.models import MODELS

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == MODELS.names()
    assert all(MODELS.get(line.split()[0]).objective == line.split()[1] for line in lines)


def _subcommands_with(option: str):
    """(command path, its parser) for every command and sub-command that takes `option`."""
    import argparse
    from ganforge.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, [*path, name])
            elif option in action.option_strings:
                yield path, action
    return list(walk(build_parser(), []))


def test_every_device_option_is_checked_before_the_command_runs():
    # Training commands' --device is train.device, checked with the config (test_config).
    from ganforge.cli import options
    found = [(path, action) for path, action in _subcommands_with("--device") if path[-1] != "train"]
    assert len(found) >= 10
    assert [path for path, action in found if action.type is not options.device] == []


@pytest.mark.parametrize("device, named", [("nonsense", "'nonsense': not a device (cpu, cuda, cuda:N, mps or auto)"),
                                           ("cuda:0", "'cuda:0': CUDA is not available on this machine")])
def test_a_device_this_machine_lacks_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, device, named):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", str(tmp_path), "--device", device])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"ganforge evaluate: error: argument --device: {named}"


def test_device_auto_is_resolved_to_a_device_torch_names():
    from ganforge.cli import options
    assert options.device("auto") in {"cpu", "cuda", "mps"} and options.device("cpu") == "cpu"
