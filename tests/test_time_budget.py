"""A time budget is the limit when no step count is given (`resolve.make_config`): train.steps
becomes BUDGET_STEPS unless a preset, config file, run directory, option or --set gives it;
a decaying learning-rate schedule then needs an explicit train.steps."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ganforge.bench import reference_step_rate as real_step_rate  # before the suite's fixture pins it
from ganforge.cli import main
from ganforge.config import dump_yaml
from ganforge.errors import ConfigError
from ganforge.presets import load_preset
from ganforge.resolve import BUDGET_STEPS, LONG_BUDGET_S, PRESET_FULL_BUDGET_S, make_config

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


# A budget below LONG_BUDGET_S (as the limit) sizes the networks for it.
SHORT = {"model.g_width": 32, "model.d_width": 32, "train.lr": 4e-4, "train.beta1": 0.0, "train.beta2": 0.99}

def test_a_short_budget_sizes_the_dcgan_and_trains_at_the_native_resolution():
    config = make_config(overrides={"train.time_budget": 60, "data.name": "fashion-mnist"})
    assert config.sized_for_budget == {**SHORT, "data.resolution": 28}
    assert (config.model.args["g_width"], config.model.args["d_width"]) == (32, 32)
    assert (config.train.lr, config.data.resolution, config.train.steps) == (4e-4, 28, BUDGET_STEPS)
    assert (config.train.beta1, config.train.beta2) == (0.0, 0.99)
    for budget in (60, 89):  # up to the long budget's bound
        config = make_config(overrides={"train.time_budget": budget, "data.name": "mnist"})
        assert config.sized_for_budget == {**SHORT, "data.resolution": 28}
        assert config.objective.args["r1_gamma"] == 0.0


def test_a_data_set_whose_native_size_the_model_cannot_make_keeps_its_resolution():
    # digits are 8x8, which the DCGAN does not make: the networks are sized, the resolution kept.
    config = make_config(overrides={"train.time_budget": 60})
    assert config.data.resolution == 32 and config.sized_for_budget["model.g_width"] == 32
    assert "data.resolution" not in config.sized_for_budget


@pytest.mark.parametrize("layer", ["overrides", "config"])
def test_keys_given_in_any_layer_are_not_sized(layer, tmp_path):
    given = {"data.resolution": 32, "model.g_width": 64, "train.lr": 2e-4}
    if layer == "overrides":
        config = make_config(overrides={"train.time_budget": 60, "data.name": "mnist", **given})
    else:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"data": {"name": "mnist", "resolution": 32}, "model": {"g_width": 64},
                                        "train": {"lr": 2e-4, "time_budget": 60}}))
        config = make_config(path)
    assert config.sized_for_budget == {"model.d_width": 32, "train.beta1": 0.0, "train.beta2": 0.99}
    assert (config.data.resolution, config.model.args["g_width"], config.train.lr) == (32, 64, 2e-4)


@pytest.mark.parametrize("overrides", [
    {"train.time_budget": 60, "train.steps": 500},  # steps given: the budget is a guard
    {"train.time_budget": 60, "model.name": "resnet"},  # no short-budget sizes for this family
    {"train.time_budget": 60, "task": "inpaint"},    # a task is a sized recipe
])
def test_what_is_not_sized(overrides):
    config = make_config(overrides={"data.name": "mnist", **overrides})
    assert config.sized_for_budget == {}
    default = make_config(overrides={"data.name": "mnist", **{k: v for k, v in overrides.items()
                                                             if k != "train.time_budget"}})
    assert config.model.args == default.model.args and config.data.resolution == default.data.resolution


def test_a_preset_is_a_recipe_and_a_resumed_run_keeps_its_sizes(tmp_path):
    assert make_config(preset="dcgan-digits", overrides={"train.time_budget": 60}).sized_for_budget == {}
    run = tmp_path / "run"
    run.mkdir()
    first = make_config(overrides={"train.time_budget": 60, "data.name": "mnist", "out": str(run)})
    (run / "config.yaml").write_text(dump_yaml(first))
    again = make_config(resume=run, overrides={"train.time_budget": 30})
    assert again.sized_for_budget == {} and again.data.resolution == 28 and again.model.args["g_width"] == 32


def test_native_resolutions_of_the_sources():
    from ganforge.data.sources import native_resolution
    assert [native_resolution(n) for n in ("mnist", "fashion-mnist", "cifar10", "digits")] == [28, 28, 32, 8]
    assert native_resolution("folder:/somewhere") is None and native_resolution("no-such-set") is None


def test_cli_says_what_a_budget_chose(capsys):
    assert main(["train", "--dataset", "mnist", "--time-budget", "60", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "--time-budget 60 s is short" in captured.err and "data.resolution=28" in captured.err
    assert yaml.safe_load(captured.out)["model"]["g_width"] == 32
    assert main(["train", "--dataset", "mnist", "--time-budget", "80", "--dry-run"]) == 0
    assert "--time-budget 80 s is short" in capsys.readouterr().err
    assert main(["train", "--dataset", "mnist", "--time-budget", "120", "--dry-run"]) == 0
    assert "--time-budget 120 s recipe (model.g_width=48" in capsys.readouterr().err
    assert main(["train", "--dataset", "mnist", "--time-budget", "300", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert ("--time-budget 300 s recipe (model.g_width=48, model.d_width=48, train.lr=0.0004, "
            "train.beta1=0, train.beta2=0.99, objective.r1_gamma=0.5, objective.r1_every=4)") in captured.err
    printed = yaml.safe_load(captured.out)
    assert "short" not in captured.err and printed["objective"]["r1_gamma"] == 0.5
    assert printed["model"]["g_width"] == printed["model"]["d_width"] == 48


# A long budget (LONG_BUDGET_S or more, as the limit) trains the DCGAN at widths 48 with Adam
# 4e-4 at betas (0, 0.99) and lazy R1 at gamma 0.5; below it the networks are sized (above).
LONG = {"model.g_width": 48, "model.d_width": 48, "train.lr": 4e-4, "train.beta1": 0.0,
        "train.beta2": 0.99, "objective.r1_gamma": 0.5, "objective.r1_every": 4}


def test_a_long_budget_adds_lazy_r1_widths_48_and_adam_4e_4_to_the_dcgan():
    assert LONG_BUDGET_S == 90
    for budget in (90, 200, 300, 900):
        config = make_config(overrides={"train.time_budget": budget, "data.name": "fashion-mnist"})
        assert config.sized_for_budget == LONG
        assert (config.objective.args["r1_gamma"], config.objective.args["r1_every"]) == (0.5, 4)
        assert (config.model.args["g_width"], config.model.args["d_width"]) == (48, 48)
        assert (config.data.resolution, config.train.lr) == (32, 4e-4)
        assert (config.train.beta1, config.train.beta2) == (0.0, 0.99)
    conditional = make_config(overrides={"train.time_budget": 300, "model.conditional": True})
    assert conditional.objective.args["r1_gamma"] == 0.5
    assert make_config(overrides={"train.time_budget": 89, "data.name": "mnist"}).objective.args["r1_gamma"] == 0.0


WIDTHS = {key: value for key, value in LONG.items() if not key.startswith("objective.")}


def _without(*keys: str) -> dict:
    return {key: value for key, value in LONG.items() if key not in keys}


@pytest.mark.parametrize("overrides, sized", [
    ({"objective.r1_gamma": 0}, WIDTHS),   # the regulariser is one unit: a key of it given keeps it out
    ({"objective.r1_every": 2}, WIDTHS),
    ({"objective.loss": "hinge"}, WIDTHS),  # another loss than the one R1 was measured with
    ({"objective.loss": "wgan"}, WIDTHS),   # weight clipping cannot take R1
    ({"model.g_width": 64}, _without("model.g_width")),
    ({"train.lr": 2e-4}, _without("train.lr")),
    ({"train.beta1": 0.5}, _without("train.beta1")),   # each Adam key on its own, as the lr
    ({"train.steps": 4000}, {}),            # steps given: the budget is a guard
    ({"model.name": "resnet"}, {}),         # no long-budget settings for this family
])
def test_what_a_long_budget_leaves_alone(overrides, sized):
    config = make_config(overrides={"train.time_budget": 300, **overrides})
    assert config.sized_for_budget == sized
    plain = make_config(overrides=overrides)
    if "objective.r1_gamma" not in sized:
        assert config.objective.args == plain.objective.args


def test_a_preset_is_a_recipe_under_a_long_budget():
    config = make_config(preset="dcgan-digits", overrides={"train.time_budget": 300})
    assert config.sized_for_budget == {} and config.objective.args["r1_gamma"] == 0.0


# A preset may say what it becomes under a time budget (its `short_budget` and `medium_budget`
# sections): the conditional preset's 32-px R1 networks made 700 steps in 60 s and collapsed, so
# below LONG_BUDGET_S it trains the default's sized networks; from there on it trains as written
# (widths 48, Adam 4e-4, R1 at gamma 0.5, mode seeking 0.1: at 300 and 900 s ahead of the
# widths-64 networks it had before).

CGAN_SHORT = {"data.resolution": 28, "model.g_width": 32, "model.d_width": 32, "model.d_class_spread": False,
              "objective.mode_seeking": 0.25}


def test_a_preset_with_a_short_budget_section_is_sized_by_it():
    config = make_config(preset="cgan-mnist", overrides={"train.time_budget": 60, "data.name": "fashion-mnist"})
    assert config.sized_for_budget == CGAN_SHORT and config.budget_is_short
    assert (config.data.resolution, config.model.args["g_width"], config.model.args["d_width"]) == (28, 32, 32)
    assert config.objective.args["mode_seeking"] == 0.25 and not config.model.args["d_class_spread"]
    # the rest of the recipe stays: conditional, lazy R1, its class head, Adam, the preset's steps
    plain = make_config(preset="cgan-mnist")
    for key in ("r1_gamma", "r1_every", "aux_weight"):
        assert config.objective.args[key] == plain.objective.args[key]
    assert config.model.conditional and config.train.lr == plain.train.lr == 4e-4
    assert config.train.steps == plain.train.steps


@pytest.mark.parametrize("overrides, sized", [
    ({"train.time_budget": 89}, CGAN_SHORT),                   # the short section's bound
    ({"train.time_budget": 90}, {}),                           # no medium section: as written
    ({"train.time_budget": 300}, {}),
    ({"train.time_budget": 900}, {}),
    ({"train.time_budget": 60, "train.steps": 500}, {}),       # steps given: the budget is a guard
    ({"train.time_budget": 60, "model.g_width": 48},           # a key given is kept
     {k: v for k, v in CGAN_SHORT.items() if k != "model.g_width"}),
    ({"train.time_budget": 60, "objective.mode_seeking": 0.1},
     {k: v for k, v in CGAN_SHORT.items() if k != "objective.mode_seeking"}),
    ({"train.time_budget": 60, "data.name": "folder:/x"},      # no native size for a folder
     {k: v for k, v in CGAN_SHORT.items() if k != "data.resolution"}),
])
def test_what_a_preset_budget_section_changes(overrides, sized):
    assert (LONG_BUDGET_S, PRESET_FULL_BUDGET_S) == (90, 400)
    assert make_config(preset="cgan-mnist", overrides=overrides).sized_for_budget == sized


@pytest.mark.parametrize("budget", [None, 200, 900])
def test_from_the_long_bound_the_conditional_preset_trains_as_written(budget):
    """From LONG_BUDGET_S on, and without a budget, the conditional preset is the default's long
    recipe with its class head: widths 48, Adam 4e-4 at DCGAN's betas, lazy R1 at gamma 0.5,
    each class's spread shown to D instead of mode seeking, 32 px."""
    overrides = {"data.name": "fashion-mnist"} | ({"train.time_budget": budget} if budget else {})
    config = make_config(preset="cgan-mnist", overrides=overrides)
    assert config.sized_for_budget == {} and not config.budget_is_short
    assert (config.data.resolution, config.model.args["g_width"], config.model.args["d_width"]) == (32, 48, 48)
    assert (config.train.lr, config.train.beta1, config.train.beta2) == (4e-4, 0.5, 0.999)
    assert config.model.conditional and config.objective.args["aux_weight"] == 0.1
    assert (config.objective.args["r1_gamma"], config.objective.args["r1_every"]) == (0.5, 4)
    assert config.objective.args["mode_seeking"] == 0 and config.model.args["d_class_spread"]


def test_a_budget_that_changes_nothing_prints_no_line(capsys):
    assert main(["train", "--preset", "cgan-mnist", "--dataset", "fashion-mnist", "--time-budget", "200",
                 "--dry-run"]) == 0
    assert "--time-budget" not in capsys.readouterr().err  # nothing chosen, nothing timed: no line


def test_the_r1_preset_between_the_bounds_is_the_default_long_recipe():
    band = {"train.time_budget": 200, "data.name": "fashion-mnist"}
    preset, default = make_config(preset="dcgan-mnist", overrides=band), make_config(overrides=band)
    assert preset.model.args == default.model.args and preset.objective.args == default.objective.args
    assert (preset.data.resolution, preset.train.lr) == (default.data.resolution, default.train.lr) == (32, 4e-4)
    assert (preset.train.beta1, preset.train.beta2) == (default.train.beta1, default.train.beta2) == (0.0, 0.99)


def test_a_config_file_above_a_preset_keeps_its_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"lr": 1e-4}, "data": {"resolution": 32}}))
    config = make_config(path, preset="cgan-mnist", overrides={"train.time_budget": 60})
    assert config.train.lr == 1e-4 and config.data.resolution == 32 and config.model.args["g_width"] == 32


def test_the_r1_preset_under_a_short_budget_is_the_sized_default():
    short = {"train.time_budget": 60, "data.name": "fashion-mnist"}
    preset, default = make_config(preset="dcgan-mnist", overrides=short), make_config(overrides=short)
    assert preset.sized_for_budget["objective.r1_gamma"] == 0.0
    assert preset.model.args == default.model.args
    unused = {"r1_every"}  # how often a zero R1 would run
    assert {k: v for k, v in preset.objective.args.items() if k not in unused} == \
        {k: v for k, v in default.objective.args.items() if k not in unused}
    assert (preset.data.resolution, preset.train.lr) == (default.data.resolution, default.train.lr)


@pytest.mark.parametrize("budget", [60, 200, 300, 900])
@pytest.mark.parametrize("name", ["cgan-mnist", "dcgan-mnist"])
def test_every_budget_section_of_a_preset_resolves(name, budget):
    """A section's keys are checked like any other: each band resolves to a valid config that
    changes only keys the section names."""
    from ganforge.presets import budget_sections, load_preset
    sections = budget_sections(name, load_preset(name))
    section = {60: "short_budget", 200: "medium_budget", 300: "medium_budget", 900: None}[budget]
    config = make_config(preset=name, overrides={"train.time_budget": budget, "data.name": "mnist"})
    named = {f"{k}.{key}" for k, values in sections.get(section, {}).items() for key in values}
    assert set(config.sized_for_budget) == named
    assert config.budget_is_short == (section == "short_budget")


@pytest.mark.parametrize("key", ["short_budget", "medium_budget"])
def test_a_malformed_budget_section_is_named(key):
    from ganforge.presets import budget_sections
    with pytest.raises(ConfigError, match=f"preset 'x': {key} must map config sections"):
        budget_sections("x", {key: {"model": 32}})
    with pytest.raises(ConfigError, match=f"preset 'x': {key} must map config sections"):
        budget_sections("x", {key: 0})
    recipe = {"model": {"g_width": 64}, key: None}
    assert budget_sections("x", recipe) == {"short_budget": {}, "medium_budget": {}}
    assert recipe == {"model": {"g_width": 64}}  # the sections are taken out of the recipe


def test_cli_says_what_a_preset_short_budget_chose(capsys):
    assert main(["train", "--preset", "cgan-mnist", "--dataset", "fashion-mnist", "--time-budget", "60",
                 "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "--time-budget 60 s is short" in captured.err and "model.g_width=32" in captured.err
    printed = yaml.safe_load(captured.out)
    assert printed["model"]["g_width"] == 32 and printed["data"]["resolution"] == 28
    assert printed["model"]["conditional"] is True
    assert main(["train", "--preset", "cgan-mnist", "--dataset", "fashion-mnist", "--time-budget", "60",
                 "--lr", "1e-4", "--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["lr"] == 1e-4


# The rules' seconds are the reference machine's: a timer of this machine's step rate scales the
# budget, so a slower CPU counts 300 s as fewer and a GPU counts 60 s as more.

def rate(steps_per_s):
    """A step_rate timer that answers `steps_per_s` and records the configs it was asked for."""
    def timer(config):
        timer.asked.append(config)
        return steps_per_s
    timer.asked = []
    return timer


def test_a_timer_scales_the_budget_by_what_it_buys_here():
    from ganforge.resolve import REFERENCE_STEP_RATE
    overrides = {"train.time_budget": 300, "data.name": "fashion-mnist"}
    slow = rate(REFERENCE_STEP_RATE / 4)  # 300 s here buy what 75 s buy there: sized, no R1
    config = make_config(overrides=overrides, step_rate=slow)
    assert config.budget_scale == 0.25 and config.sized_for_budget["model.g_width"] == 32
    assert config.data.resolution == 28 and config.objective.args["r1_gamma"] == 0.0
    # Timed once, on the full-size networks the rules start from.
    from ganforge.models import model_args
    timed = slow.asked
    assert len(timed) == 1 and model_args(timed[0].model).g_width == 64 and timed[0].data.resolution == 32
    faster = make_config(overrides=overrides, step_rate=rate(REFERENCE_STEP_RATE / 2))  # 150 s: long
    assert faster.sized_for_budget == LONG and faster.data.resolution == 32
    fast = make_config(overrides={**overrides, "train.time_budget": 60}, step_rate=rate(REFERENCE_STEP_RATE * 5))
    assert fast.sized_for_budget == LONG and fast.budget_scale == 5  # a GPU's minute is a long budget
    assert make_config(overrides={**overrides, "train.time_budget": 60}).sized_for_budget["model.g_width"] == 32


def test_a_timer_also_scales_a_presets_short_budget():
    from ganforge.resolve import REFERENCE_STEP_RATE
    overrides = {"train.time_budget": 60, "data.name": "fashion-mnist"}
    assert make_config(preset="cgan-mnist", overrides=overrides,
                       step_rate=rate(REFERENCE_STEP_RATE * 8)).sized_for_budget == {}      # 480 s there
    assert make_config(preset="cgan-mnist", overrides={**overrides, "train.time_budget": 170},
                       step_rate=rate(REFERENCE_STEP_RATE / 2)).sized_for_budget == CGAN_SHORT  # 85 s there
    assert make_config(preset="cgan-mnist", overrides={**overrides, "train.time_budget": 170}
                       ).sized_for_budget == {}                                               # 170 s unscaled
    assert make_config(preset="cgan-mnist", overrides={**overrides, "train.time_budget": 200},
                       step_rate=rate(REFERENCE_STEP_RATE / 2)).sized_for_budget == {}        # 100 s there


@pytest.mark.parametrize("overrides, preset", [
    ({"train.steps": 100}, None),            # steps given: the budget is a guard
    ({}, "dcgan-digits"),                     # a preset without a short-budget section
    ({"model.name": "vae"}, None),            # an architecture without rules
    ({"train.time_budget": None}, None),      # no budget
])
def test_nothing_is_timed_where_no_rule_applies(overrides, preset):
    timer = rate(1.0)
    config = make_config(preset=preset, overrides={"train.time_budget": 60, **overrides}, step_rate=timer)
    assert timer.asked == [] and config.budget_scale == 1.0


def test_cli_says_what_the_budget_counts_as_here(monkeypatch, capsys):
    from ganforge.resolve import REFERENCE_STEP_RATE
    monkeypatch.setattr("ganforge.bench.reference_step_rate", lambda config: REFERENCE_STEP_RATE / 4)
    assert main(["train", "--dataset", "mnist", "--time-budget", "300", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "the machine the rules were measured on: it counts as 75 s) is short" in captured.err
    assert yaml.safe_load(captured.out)["model"]["g_width"] == 32
    assert main(["train", "--dataset", "mnist", "--time-budget", "300", "--dry-run", "--set", "model.g_width=64",
                 "--set", "model.d_width=64", "--lr", "2e-4", "--resolution", "32",
                 "--set", "train.beta1=0.5", "--set", "train.beta2=0.999"]) == 0
    assert "counts as 75 s): no change to the recipe" in capsys.readouterr().err   # every key given
    # What it chose reads as --set takes it: the preset's short section turns a switch off.
    assert main(["train", "--preset", "cgan-mnist", "--time-budget", "120", "--dry-run"]) == 0
    assert "model.d_class_spread=false" in capsys.readouterr().err
    # Under torchrun every process would time its own rate: the reference's seconds are used.
    monkeypatch.setenv("WORLD_SIZE", "2")
    from ganforge.cli.train import _step_rate
    assert _step_rate() is None


def test_the_step_rate_is_timed_on_this_machine():
    """The real timer (the suite's fixture pins the CLI's): a positive rate, without reading the
    config's data or writing its run directory."""
    config = make_config(overrides={"data.name": "fashion-mnist", "data.data_dir": "/nonexistent",
                                    "data.resolution": 16, "model.g_width": 8, "model.d_width": 8,
                                    "train.batch_size": 8, "train.time_budget": 60, "out": "/nonexistent/run"})
    assert real_step_rate(config, blocks=2, steps=1, warmup=1) > 0
    assert not Path("/nonexistent").exists()
