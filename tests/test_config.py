"""The config layer through the Python API: defaults, layering, override parsing, errors.

No training happens here; every test only resolves configs (and writes small YAML files).
"""
from __future__ import annotations

import re

import pytest
import yaml

import ganforge
from ganforge import config as cfg
from ganforge.api import check_config, make_config
from ganforge.config import Config, ModelConfig, dump_yaml, from_dict
from ganforge.errors import CheckpointError, ConfigError, GanforgeError


DCGAN_DEFAULTS = {"latent_dim": 100, "g_width": 64, "d_width": 64, "max_width": 1024, "embed_dim": 50, "d_batchnorm": True,
                  "g_class_norm": False, "d_mbstd": 0, "d_class_spread": False, "d_pack": 1}
MLP_DEFAULTS = {"latent_dim": 100, "hidden": 128, "layers": 1, "embed_dim": 10}


def write_yaml(path, data) -> str:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def config_error(*args, **kwargs) -> str:
    """The message of the ConfigError that make_config(*args, **kwargs) raises."""
    with pytest.raises(ConfigError) as info:
        make_config(*args, **kwargs)
    return str(info.value)


# Defaults.
def test_defaults_resolve(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config()
    assert isinstance(config, Config)
    assert config.data.name == "digits"
    assert config.data.resolution == 32
    assert config.data.channels == 1
    assert config.model.name == "dcgan"
    # Resolved configs spell out every option of the chosen model and objective.
    assert config.model.args == DCGAN_DEFAULTS
    assert config.objective.name == "gan"
    assert {k: config.objective.args[k] for k in ("loss", "d_steps", "r1_gamma", "ada")} == \
        {"loss": "ns", "d_steps": 1, "r1_gamma": 0.0, "ada": False}
    assert config.objective.args["gp_weight"] is None
    assert config.train.batch_size == 64
    assert config.train.steps == 1500
    assert config.train.lr == pytest.approx(2e-4)
    assert config.train.time_budget is None
    assert config.train.precision == "auto"
    assert config.log.progress is True
    # A run directory name is chosen (model and data in it) but nothing is created.
    assert re.fullmatch(r"runs/\d{8}-\d{6}-dcgan-digits", config.out), config.out
    assert list(tmp_path.iterdir()) == []


def test_package_exports_the_api():
    assert ganforge.make_config is make_config
    assert ganforge.ConfigError is ConfigError
    assert issubclass(ConfigError, GanforgeError) and issubclass(ConfigError, ValueError)


def test_from_empty_dict_equals_dataclass_defaults():
    assert from_dict({}) == Config()


# Layering: defaults < YAML file < overrides.
@pytest.fixture
def yaml_file(tmp_path):
    return write_yaml(tmp_path / "run.yaml", {
        "train": {"steps": 5, "batch_size": 32},
        "model": {"name": "dcgan", "g_width": 16},
        "log": {"every": 3},
        "out": "runs/from-file",
    })


def test_yaml_file_overrides_defaults(yaml_file):
    config = make_config(yaml_file)
    assert config.train.steps == 5
    assert config.train.batch_size == 32
    assert config.model.args == {**DCGAN_DEFAULTS, "g_width": 16}
    assert config.log.every == 3
    assert config.out == "runs/from-file"
    # Keys the file does not mention keep their defaults (sections merge, not replace).
    assert config.train.lr == pytest.approx(2e-4)
    assert config.log.sample_every == 500
    assert config.data.name == "digits"


def test_path_object_is_accepted(yaml_file):
    from pathlib import Path
    assert make_config(Path(yaml_file)) == make_config(yaml_file)


@pytest.mark.parametrize("overrides", [["train.steps=7"], {"train.steps": 7}],
                         ids=["strings", "dict"])
def test_overrides_beat_the_yaml_file(yaml_file, overrides):
    config = make_config(yaml_file, overrides=overrides)
    assert config.train.steps == 7
    # The rest of the file still applies.
    assert config.train.batch_size == 32
    assert config.model.args["g_width"] == 16
    assert config.out == "runs/from-file"


def test_later_overrides_win():
    config = make_config(overrides=["train.steps=3", "train.steps=9"])
    assert config.train.steps == 9


def test_dict_and_config_inputs():
    config = make_config({"train": {"steps": 11}, "out": "x"})
    assert config.train.steps == 11 and config.train.batch_size == 64
    again = make_config(config, overrides={"train.seed": 3})
    assert again.train.steps == 11 and again.train.seed == 3 and again.out == "x"
    assert config.train.seed == 0  # the input Config is not modified


def test_empty_yaml_file_gives_defaults(tmp_path):
    path = write_yaml(tmp_path / "empty.yaml", "")
    assert make_config(path, overrides={"out": "o"}) == make_config(overrides={"out": "o"})


def test_run_dir_config_is_the_base_for_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_yaml(run / "config.yaml", {"train": {"steps": 4, "batch_size": 16},
                                     "model": {"name": "dcgan", "g_width": 8},
                                     "out": "somewhere/else"})
    config = make_config(resume=run, overrides=["train.steps=8"])
    assert config.train.steps == 8
    assert config.train.batch_size == 16
    assert config.model.args == {**DCGAN_DEFAULTS, "g_width": 8}
    assert config.out == str(run)  # a resumed run stays in its own directory


def test_resume_without_config_yaml_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path))):
        make_config(resume=tmp_path)


# Override values are read as YAML.
@pytest.mark.parametrize("text, key, expected", [
    ("train.time_budget=2.5", ("train", "time_budget"), 2.5),
    ("train.lr=0.001", ("train", "lr"), 0.001),
    ("train.lr=1", ("train", "lr"), 1.0),  # an int is accepted for a float
    ("log.progress=false", ("log", "progress"), False),
    ("data.download=false", ("data", "download"), False),
    ("train.time_budget=null", ("train", "time_budget"), None),
    ("data.data_dir=~", ("data", "data_dir"), None),
    ("train.steps= 12 ", ("train", "steps"), 12),
    ("out=runs/my run", ("out",), "runs/my run"),
    ("data.name=folder:/data/cats", ("data", "name"), "folder:/data/cats"),
])
def test_override_values_are_parsed_as_yaml(text, key, expected):
    config = make_config(overrides=[text])
    value = config
    for part in key:
        value = getattr(value, part)
    assert value == expected
    assert type(value) is type(expected)


def test_float_override_has_float_type():
    config = make_config(overrides=["train.lr=1"])
    assert isinstance(config.train.lr, float)


def test_bool_and_null_overrides_replace_file_values(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"data": {"data_dir": "/data"},
                                           "train": {"time_budget": 60}})
    config = make_config(path, overrides=["data.data_dir=null", "train.time_budget=null",
                                          "log.progress=false"])
    assert config.data.data_dir is None
    assert config.train.time_budget is None
    assert config.log.progress is False


def test_exponent_float_override():
    assert make_config(overrides=["train.lr=1e-4"]).train.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("text", ["train.channels_last=yes", "data.on_device=no",
                                  "log.tensorboard=no"])
def test_yes_no_choices_from_overrides(text):
    key, _, value = text.partition("=")
    section, name = key.split(".")
    assert getattr(getattr(make_config(overrides=[text]), section), name) == value


def test_quoted_yes_no_choices_work():
    config = make_config(overrides=['train.channels_last="yes"', "data.on_device='no'"])
    assert config.train.channels_last == "yes" and config.data.on_device == "no"


def test_parse_override():
    assert cfg.parse_override("train.steps=100") == ("train.steps", 100)
    assert cfg.parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert cfg.parse_override("a.b=x=y") == ("a.b", "x=y")
    assert cfg.parse_override("a.b=") == ("a.b", "")


# Errors name the dotted key.
@pytest.mark.parametrize("overrides, needles", [
    # unknown keys, with a did-you-mean hint
    (["train.bach_size=3"], ["train.bach_size", "did you mean", "batch_size"]),
    (["trian.steps=3"], ["'trian'", "did you mean 'train'"]),
    (["foo.bar=1"], ["unknown config key 'foo'", "train", "model"]),
    (["log.evry=3"], ["log.evry", "did you mean 'log.every'"]),
    # wrong types
    (["train.steps=abc"], ["train.steps", "'abc'", "expected int"]),
    (["train.batch_size=1.5"], ["train.batch_size", "1.5", "expected int"]),
    (["train.steps=true"], ["train.steps", "expected int", "bool"]),
    (["train.lr=fast"], ["train.lr", "expected float"]),
    (["log.progress=3"], ["log.progress", "expected bool"]),
    (["train.time_budget=soon"], ["train.time_budget", "float or null"]),
    (["train=3"], ["train", "section"]),
    # impossible values
    (["data.resolution=30"], ["data.resolution=30", "16, 28, 32, 64, 128"]),
    (["data.resolution=2"], ["data.resolution", "at least 4"]),
    (["train.batch_size=0"], ["train.batch_size=0", "at least 1"]),
    (["train.steps=-1"], ["train.steps=-1"]),
    (["data.channels=2"], ["data.channels=2", "1 or 3"]),
    (["train.lr=-0.001"], ["train.lr", "positive"]),
    (["train.lr=0"], ["train.lr", "positive"]),
    (["train.beta1=1"], ["train.beta1", "[0, 1)"]),
    (["train.ema_decay=1.5"], ["train.ema_decay"]),
    (["train.time_budget=0"], ["train.time_budget", "positive"]),
    (["train.time_budget=.inf"], ["train.time_budget", "finite"]),
    (["train.precision=fp8"], ["train.precision", "'fp8'", "fp32", "bf16", "fp16"]),
    (["train.device=tpu"], ["train.device", "'tpu'"]),
    (["log.every=0"], ["log.every", "at least 1"]),
    (["log.keep_every=-1"], ["log.keep_every"]),
    (["objective.d_steps=0"], ["objective.d_steps", "at least 1"]),
    # names and options of registered entries
    (["model.name=nope"], ["model 'nope'", "valid", "dcgan", "mlp"]),
    (["model.name=dcgn"], ["did you mean 'dcgan'"]),
    (["model.hidden=5"], ["model.hidden", "model.g_width"]),
    (["model.g_width=0"], ["model.g_width", "at least 1"]),
    (["model.g_width=wide"], ["model.g_width", "expected int"]),
    (["model.name=mlp", "model.g_width=8"], ["model.g_width", "model.hidden"]),
    (["objective.name=vae9"], ["objective 'vae9'", "gan"]),
    (["objective.dsteps=2"], ["objective.dsteps", "did you mean 'objective.d_steps'"]),
    (["data.name=nope"], ["'nope'", "digits", "mnist"]),
    # malformed overrides
    (["train.steps"], ["'train.steps'", "key=value"]),
    (["train..steps=3"], ["train..steps"]),
    (["=3"], ["malformed"]),
])
def test_bad_overrides_raise_config_error(overrides, needles):
    message = config_error(overrides=overrides)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_bad_dict_overrides_raise_too():
    assert "train.batch_size" in config_error(overrides={"train.batch_size": 0})
    assert "train.steps" in config_error(overrides={"train.steps": "10"})  # not parsed


def test_bad_yaml_file_values_name_the_key(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"train": {"bach_size": 3}})
    assert "train.bach_size" in config_error(path)
    path = write_yaml(tmp_path / "d.yaml", {"data": {"resolution": 30}})
    assert "data.resolution" in config_error(path)
    path = write_yaml(tmp_path / "e.yaml", {"train": 5})
    assert "train" in config_error(path)


def test_resolution_any_for_mlp():
    config = make_config(overrides=["model.name=mlp", "data.resolution=30"])
    assert config.data.resolution == 30


def test_missing_yaml_file_is_named(tmp_path):
    path = tmp_path / "nope.yaml"
    message = config_error(str(path))
    assert str(path) in message and "does not exist" in message


def test_invalid_yaml_file_is_named(tmp_path):
    path = write_yaml(tmp_path / "bad.yaml", "train: [unclosed\n")
    message = config_error(path)
    assert path in message and "not valid YAML" in message


def test_yaml_file_that_is_not_a_mapping(tmp_path):
    path = write_yaml(tmp_path / "list.yaml", "- 1\n- 2\n")
    message = config_error(path)
    assert path in message and "mapping" in message


def test_from_dict_rejects_non_mapping():
    with pytest.raises(ConfigError, match="mapping"):
        from_dict([1, 2])


def test_check_config_checks_model_options_of_a_built_config():
    config = Config(model=ModelConfig(name="dcgan", args={"hidden": 5}))
    with pytest.raises(ConfigError, match="model.hidden"):
        check_config(config)
    check_config(Config())  # the defaults are fine


# Switching models.
def test_switching_model_drops_the_old_models_options(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"model": {"name": "dcgan", "g_width": 16, "d_width": 16}})
    config = make_config(path, overrides=["model.name=mlp", "model.hidden=5"])
    assert config.model == ModelConfig(name="mlp", args={**MLP_DEFAULTS, "hidden": 5})
    config = make_config(path, overrides={"model.name": "mlp"})
    assert config.model == ModelConfig(name="mlp", args=MLP_DEFAULTS)


def test_setting_the_same_model_keeps_its_options(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"model": {"name": "dcgan", "g_width": 16}})
    config = make_config(path, overrides=["model.name=dcgan", "model.d_width=8"])
    assert config.model == ModelConfig(name="dcgan", args={**DCGAN_DEFAULTS, "g_width": 16,
                                                           "d_width": 8})


def test_mlp_accepts_its_options():
    config = make_config(overrides=["model.name=mlp", "model.hidden=5", "model.layers=2"])
    assert config.model.name == "mlp"
    assert config.model.args == {**MLP_DEFAULTS, "hidden": 5, "layers": 2}


# Round trips.
@pytest.fixture
def custom():
    return make_config(overrides=["model.name=mlp", "model.hidden=5", "train.steps=7",
                                  "train.time_budget=1.5", "log.progress=false",
                                  "data.channels=3", "out=runs/custom"])


def test_to_dict_from_dict_round_trip(custom):
    raw = custom.to_dict()
    assert raw["model"] == {"name": "mlp", "conditional": False, **MLP_DEFAULTS, "hidden": 5}
    assert raw["objective"]["name"] == "gan" and raw["objective"]["loss"] == "ns"
    assert from_dict(raw).objective.args == custom.objective.args
    assert raw["train"]["steps"] == 7 and raw["out"] == "runs/custom"
    assert set(raw) == {"data", "model", "objective", "train", "log", "health", "task", "out"}
    assert from_dict(raw) == custom
    assert from_dict(Config().to_dict()) == Config()


def test_dump_yaml_then_load_gives_the_same_config(custom, tmp_path):
    text = dump_yaml(custom)
    assert yaml.safe_load(text) == custom.to_dict()
    path = tmp_path / "dumped.yaml"
    path.write_text(text)
    assert make_config(path) == custom
    assert from_dict(cfg.load_yaml(path)) == custom


def test_dump_yaml_keeps_string_choices_as_strings(tmp_path):
    config = make_config(overrides={"data.on_device": "no", "train.channels_last": "yes",
                                    "out": "o"})
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(config))
    assert make_config(path) == config


def test_dumped_defaults_load_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config()
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(config))
    assert make_config(path) == config
