"""Named presets: each resolves and validates without its data, trains two steps on stand-in
data of its own shape, and the CLI lists them."""
import numpy as np
import pytest

import ganforge
from ganforge import presets
from ganforge.cli import main
from ganforge.config import dump_yaml
from ganforge.errors import ConfigError
from helpers import error_line

REQUIRED = {"dcgan-digits", "dcgan-cifar10", "wgan-gp-cifar10", "sngan-cifar10", "cgan-mnist",
            "progressive-64", "stylegan-64", "stylegan-256"}


def test_the_published_presets_exist():
    assert REQUIRED <= set(presets.names())


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_resolves_without_its_data(name, tmp_path):
    """make_config checks names, options and shapes, but loads no data: a cifar10 preset
    validates on a machine without CIFAR-10."""
    config = ganforge.make_config(preset=name, overrides={"out": str(tmp_path / "run")})
    raw = presets.load_preset(name)
    assert config.model.name == raw["model"]["name"]
    assert config.data.name == raw["data"]["name"]
    for key, value in raw.get("objective", {}).items():
        assert (config.objective.name if key == "name" else config.objective.args[key]) == value
    for key, value in raw.get("train", {}).items():
        assert getattr(config.train, key) == value
    assert presets.describe(name) and not presets.describe(name).startswith("#")


def test_the_default_run_is_the_dcgan_digits_preset():
    assert dump_yaml(ganforge.make_config(preset="dcgan-digits", overrides={"out": "x"})) == \
        dump_yaml(ganforge.make_config(overrides={"out": "x"}))


def test_user_keys_override_the_preset():
    config = ganforge.make_config(preset="wgan-gp-cifar10", overrides={"train.lr": 5e-5, "out": "x"})
    assert config.train.lr == 5e-5 and config.objective.args["d_steps"] == 5


def test_unknown_preset_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown preset 'dcgan-cifar'.*did you mean 'dcgan-cifar10'"):
        ganforge.make_config(preset="dcgan-cifar")


def test_preset_and_resume_do_not_mix(tmp_path):
    with pytest.raises(ConfigError, match="preset"):
        ganforge.make_config(preset="dcgan-digits", resume=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", presets.names())
def test_every_preset_trains_two_steps(name, tmp_path):
    """Its networks at their real size, on the bundled digits at the preset's shape."""
    raw = presets.load_preset(name)
    data = raw["data"]["name"]
    bundled = data.startswith(("photos", "mosaic:digits"))  # editing data that ships offline
    run = ganforge.train(preset=name, overrides={
        "data.name": data if bundled else "digits", "train.batch_size": 4, "train.steps": 2,
        "log.progress": False, "log.tensorboard": "no", "log.eval_every": 0, "log.grid_size": 4,
        "out": str(tmp_path / "run")})
    assert run.step == 2
    model = run.load()
    size, channels = raw["data"]["resolution"], raw["data"]["channels"]
    if raw.get("task", "generate") == "generate":
        assert model.sample(2).shape == (2, size, size, channels)
        return
    # An editing preset: edit one image of the preset's input size.
    side = size // model.scale
    mask = np.zeros((side, side), bool)
    mask[:side // 2, :side // 2] = True
    out = model.edit(np.full((side, side, model.in_channels), 128, np.uint8),
                     mask=mask if model.needs_mask else None, cls=0 if model.num_classes else None)
    assert out.shape == (size, size, channels)


def test_cli_lists_presets_one_line_each(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(presets.names())
    for name, line in zip(presets.names(), lines):
        assert line.startswith(name) and len(line.split()) > 2


def test_cli_prints_one_preset_and_trains_from_it(capsys, tmp_path):
    assert main(["presets", "cgan-mnist"]) == 0
    assert "conditional: true" in capsys.readouterr().out
    assert main(["train", "--preset", "cgan-mnist", "--dry-run", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "name: mnist" in out and "conditional: true" in out
    assert not (tmp_path / "r").exists()


def test_cli_unknown_preset_exits_2(capsys):
    assert main(["train", "--preset", "nope", "--dry-run"]) == 2
    assert "nope" in error_line(capsys, "train")
    assert main(["presets", "nope"]) == 2
