"""A time budget is the limit when no step count is given (`resolve.make_config`): train.steps
becomes BUDGET_STEPS unless a preset, config file, run directory, option or --set gives it;
a decaying learning-rate schedule then needs an explicit train.steps."""
from __future__ import annotations

import pytest
import yaml

from ganforge.cli import main
from ganforge.config import dump_yaml
from ganforge.errors import ConfigError
from ganforge.presets import load_preset
from ganforge.resolve import BUDGET_STEPS, make_config

TINY = ["--resolution", "16", "--batch-size", "8", "--quiet", "--set", "model.g_width=8",
        "--set", "model.d_width=8", "--set", "log.tensorboard=no"]


def test_a_budget_without_steps_trains_until_it_is_spent():
    assert make_config(overrides={"train.time_budget": 300}).train.steps == BUDGET_STEPS
    assert make_config(overrides=["train.time_budget=300"]).train.steps == BUDGET_STEPS


def test_without_a_budget_the_default_steps_stay():
    assert make_config().train.steps == 1500
    assert make_config(overrides={"train.time_budget": None}).train.steps == 1500


@pytest.mark.parametrize("layer", ["overrides", "config", "preset"])
def test_steps_given_in_any_layer_are_kept(layer, tmp_path):
    budget = {"train.time_budget": 300}
    if layer == "overrides":
        config = make_config(overrides={**budget, "train.steps": 40})
        assert config.train.steps == 40
    elif layer == "config":
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"train": {"steps": 40, "time_budget": 300}}))
        assert make_config(path).train.steps == 40
    else:
        preset = load_preset("dcgan-digits")
        config = make_config(preset="dcgan-digits", overrides=budget)
        assert config.train.steps == preset["train"]["steps"] != BUDGET_STEPS
        assert config.train.time_budget == 300


def test_a_budget_in_a_config_file_without_steps_is_the_limit(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"time_budget": 60}}))
    assert make_config(path).train.steps == BUDGET_STEPS


def test_a_resumed_run_keeps_its_own_steps(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump_yaml(make_config(overrides={"train.steps": 30, "out": str(run)})))
    assert make_config(resume=run, overrides={"train.time_budget": 5}).train.steps == 30


def test_a_decaying_schedule_the_user_chose_needs_explicit_steps():
    overrides = {"train.lr_schedule": "cosine", "train.time_budget": 300}
    with pytest.raises(ConfigError) as error:
        make_config(overrides=overrides)
    message = str(error.value)
    for key in ("train.time_budget", "train.lr_schedule", "train.steps", "--steps"):
        assert key in message, key
    assert make_config(overrides={**overrides, "train.steps": 9}).train.steps == 9


@pytest.mark.parametrize("overrides, steps", [
    ({"model.name": "vae"}, 1500),                   # the VAE objective's default cosine
    ({"task": "denoise"}, None),                     # a task is a sized recipe
])
def test_default_schedules_and_tasks_keep_their_steps_under_a_budget(overrides, steps):
    """The budget is then a guard: a default schedule is not refused, a task's steps stay."""
    config = make_config(overrides={**overrides, "train.time_budget": 300})
    expected = steps or make_config(overrides=overrides).train.steps
    assert config.train.steps == expected and config.train.time_budget == 300


def test_cli_dry_run_shows_the_open_step_count(capsys):
    assert main(["train", "--time-budget", "300", "--dry-run"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["train"]["steps"] == BUDGET_STEPS and resolved["train"]["time_budget"] == 300
    assert main(["train", "--time-budget", "300", "--steps", "12", "--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["steps"] == 12


def test_cli_training_stops_when_the_budget_is_spent(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--time-budget", "0.3", "--out", str(out)]) == 0
    assert "time budget" in capsys.readouterr().out
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["steps"] == BUDGET_STEPS
    assert (out / "checkpoints" / "last.safetensors").is_file()
