"""Typed run configuration: dataclass sections, YAML load/save and validated `key=value` overrides.

A config is built from plain dicts in layers (defaults < run dir < YAML file < CLI options <
`--set` overrides), then checked once. Unknown keys, wrong types and impossible values are
rejected with the dotted key in the message. Sections whose keys depend on a registered name
(`model`, `objective`) keep their extra keys in `args`; those are checked against the
registered entry's own dataclass by `ganforge.build.check_config`.
"""
from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .errors import ConfigError
from .registry import suggest


@dataclass
class DataConfig:
    name: str = "digits"             # digits, mnist, fashion-mnist, cifar10, folder:PATH, npz:PATH,
                                     # photos, patches:PATH, paired:PATH, mosaic:BASE
    data_dir: Union[str, None] = None  # where mnist / fashion-mnist / cifar10 files live
    resolution: int = 32             # images are resized to resolution x resolution
    channels: int = 1                # 1 (gray) or 3 (RGB)
    download: bool = True            # torchvision sets: fetch when missing and the network allows
    on_device: Literal["auto", "yes", "no"] = "auto"  # keep the whole set on the training device
    degrade: str = ""                # editing: how the model's input is made from an image, e.g.
                                     # downscale:4, noise:25, mask:free-form, gray (joined by +)
    name_b: str = ""                 # translation: domain B's data set (data.name is domain A)
    classes: Union[list, None] = None  # keep these classes only (indices or names), relabelled
                                     # 0, 1, ... in the order given, e.g. [5, 6, 7, 8, 9]
    limit: Union[int, None] = None   # at most this many training images: a fixed class-balanced
                                     # subset, the same in every run (the test split stays whole)

    def check(self) -> None:
        _require(self.resolution >= 4, "data.resolution", self.resolution, "must be at least 4")
        _require(self.channels in (1, 3), "data.channels", self.channels, "must be 1 or 3")
        _require(self.limit is None or self.limit >= 1, "data.limit", self.limit,
                 "must be at least 1 (null: every image)")
        if self.classes is not None:
            _require(len(self.classes) > 0 and all(
                (isinstance(c, int) and not isinstance(c, bool) and c >= 0) or isinstance(c, str)
                for c in self.classes), "data.classes", self.classes,
                "must be a non-empty list of class indices (>= 0) or class names, e.g. [5, 6, 7]")
            _require(len(set(self.classes)) == len(self.classes), "data.classes", self.classes,
                     "names a class twice")


@dataclass
class NamedSection:
    """A section chosen by name whose remaining keys belong to the chosen entry."""

    name: str = ""
    args: dict = field(default_factory=dict)


@dataclass
class ModelConfig(NamedSection):
    name: str = "dcgan"
    conditional: bool = False        # class-conditional G and D (needs a labelled data set)


@dataclass
class ObjectiveConfig(NamedSection):
    name: str = "gan"


@dataclass
class TrainConfig:
    batch_size: int = 64
    steps: int = 1500                # generator updates
    time_budget: Union[float, None] = None  # seconds; stop cleanly (checkpoint + samples) when spent
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_g: Union[float, None] = None  # TTUR: the generator's own learning rate (default: lr)
    lr_d: Union[float, None] = None  # TTUR: the discriminator's own learning rate (default: lr)
    betas_g: Union[list, None] = None  # the generator's own Adam betas [beta1, beta2]
    betas_d: Union[list, None] = None  # the discriminator's own Adam betas [beta1, beta2]
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"  # decay towards 0 over the horizon
    schedule_steps: Union[int, None] = None  # the schedule's horizon (default: train.steps at the first start)
    lr_hold: float = 0.0             # share of the horizon at the full rate before the decay starts
                                     # (CycleGAN: 0.5 with linear, its 100 + 100 epochs)
    ema_decay: float = 0.999         # EMA of generator weights, used for sampling; 0 turns it off
    seed: int = 0
    device: str = "auto"             # auto, cpu, cuda, cuda:1, mps
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 where the device has bf16 units
    channels_last: Literal["auto", "yes", "no"] = "auto"
    sync_batchnorm: bool = False     # torchrun: batch-norm statistics over all ranks (CUDA)
    compile: Literal["auto", "yes", "no"] = "auto"  # torch.compile the networks (auto: off; it did not pay on CPU or GPU)
    optimizer_impl: Literal["auto", "fused", "foreach", "loop"] = "auto"  # Adam kernels (auto: fused)
    cudnn_benchmark: bool = True     # CUDA: let cuDNN pick the fastest convolution algorithms
    init_from: Union[str, None] = None  # start from another run's weights: RUN or RUN:CHECKPOINT
                                     # (networks and EMA; optimisers fresh, step 0); --resume ignores it
    freeze: Union[list, str, None] = None  # parts kept fixed: NET:N (NET's first N blocks from the
                                     # input, FreezeD: D:2) or NET.PATH (a module path, G.mapping)

    def check(self) -> None:
        if isinstance(self.freeze, str):  # `--set train.freeze=D:2,G.mapping` gives one string
            self.freeze = [part.strip() for part in self.freeze.split(",") if part.strip()]
        self.freeze = self.freeze or None
        for entry in self.freeze or ():
            parse_freeze(entry)
        _require(self.init_from is None or self.init_from.strip() != "", "train.init_from",
                 self.init_from, "must name a run directory (or null)")
        _require(self.batch_size >= 1, "train.batch_size", self.batch_size, "must be at least 1")
        _require(self.steps >= 0, "train.steps", self.steps, "must be >= 0")
        _require(self.schedule_steps is None or self.schedule_steps >= 1, "train.schedule_steps",
                 self.schedule_steps, "must be at least 1")
        _require(self.time_budget is None or 0 < self.time_budget < float("inf"), "train.time_budget",
                 self.time_budget, "must be positive, finite seconds (leave it out for no budget)")
        _require(self.lr > 0, "train.lr", self.lr, "must be positive")
        _require(0 <= self.lr_hold < 1, "train.lr_hold", self.lr_hold, "must be in [0, 1)")
        for key in ("beta1", "beta2"):
            value = getattr(self, key)
            _require(0 <= value < 1, f"train.{key}", value, "must be in [0, 1)")
        for key in ("lr_g", "lr_d"):
            value = getattr(self, key)
            _require(value is None or value > 0, f"train.{key}", value, "must be positive")
        for key in ("betas_g", "betas_d"):
            value = getattr(self, key)
            _require(value is None or (len(value) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in value)),
                f"train.{key}", value, "must be two numbers in [0, 1), e.g. [0.0, 0.9]")
        _require(0 <= self.ema_decay < 1, "train.ema_decay", self.ema_decay, "must be in [0, 1)")
        _require(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
                 "train.device", self.device, "must be auto, cpu, cuda, cuda:N or mps")


@dataclass
class LogConfig:
    every: int = 50                  # steps between metrics.jsonl lines
    sample_every: int = 500          # steps between fixed-noise sample grids
    checkpoint_every: int = 500      # steps between checkpoints (one is always written at the end)
    keep_every: int = 0              # also keep step-N checkpoints every this many steps (0: only last)
    eval_every: int = 0              # evaluate (FID, KID, ...) every this many steps, keep `best` (0: off)
    eval_samples: int = 0            # samples per evaluation (0: as many as held-out real images)
    grid_size: int = 64              # images in each sample grid
    progress: bool = True            # progress bar on a terminal, a line per log step elsewhere
    tensorboard: Literal["auto", "yes", "no"] = "auto"

    def check(self) -> None:
        for key in ("every", "sample_every", "checkpoint_every", "grid_size"):
            value = getattr(self, key)
            _require(value >= 1, f"log.{key}", value, "must be at least 1")
        for key in ("keep_every", "eval_every", "eval_samples"):
            _require(getattr(self, key) >= 0, f"log.{key}", getattr(self, key), "must be >= 0")


@dataclass
class HealthConfig:
    """Thresholds of the health controller (ganforge.training.health)."""

    enabled: bool = True
    max_grad_norm: float = 1e4       # a mean gradient norm above this counts as divergence
    lr_factor: float = 0.5           # learning rates are multiplied by this after a divergence
    d_win_accuracy: float = 0.995    # D telling real from fake this well ...
    d_win_steps: int = 2000          # ... at every log line for this many steps counts as collapse
    min_d_margin: float = 0.075      # D's mean logit on real images above fake by less than this ...
    flat_d_steps: int = 1000         # ... at every log line for this many steps: a flat D (0: off)
    min_classes_present: float = 0.5  # with --eval-every: share of classes among samples
    min_diversity: float = 0.3       # with --eval-every: diversity_ratio of samples
    diversity_every: int = 500       # steps between per-class diversity probes (0: off)
    min_class_diversity: float = 0.4   # the worst class's probe ratio (real images: about 1) ...
    low_diversity_probes: int = 4    # ... below this at so many probes in a row counts as collapse
    max_rollbacks: int = 5           # then stop with the reason

    def check(self) -> None:
        _require(self.max_grad_norm > 0, "health.max_grad_norm", self.max_grad_norm, "must be positive")
        _require(0 < self.lr_factor < 1, "health.lr_factor", self.lr_factor, "must be in (0, 1)")
        _require(0 < self.d_win_accuracy <= 1, "health.d_win_accuracy", self.d_win_accuracy, "must be in (0, 1]")
        _require(self.d_win_steps >= 1, "health.d_win_steps", self.d_win_steps, "must be at least 1")
        _require(self.min_d_margin >= 0, "health.min_d_margin", self.min_d_margin, "must be >= 0")
        _require(self.flat_d_steps >= 0, "health.flat_d_steps", self.flat_d_steps, "must be >= 0")
        _require(self.max_rollbacks >= 0, "health.max_rollbacks", self.max_rollbacks, "must be >= 0")
        _require(self.diversity_every >= 0, "health.diversity_every", self.diversity_every, "must be >= 0")
        _require(self.min_class_diversity >= 0, "health.min_class_diversity",
                 self.min_class_diversity, "must be >= 0")
        _require(self.low_diversity_probes >= 1, "health.low_diversity_probes",
                 self.low_diversity_probes, "must be at least 1")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    task: str = "generate"           # generate, inpaint, replace, super-resolve, ... (ganforge tasks)
    out: Union[str, None] = None     # run directory; default runs/<time>-<model>-<data>

    def to_dict(self) -> dict:
        """Plain nested dict, with named sections flattened back to `{name, **args}`."""
        result = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, NamedSection):
                fixed = {k: v for k, v in dataclasses.asdict(value).items() if k != "args"}
                result[f.name] = {**fixed, **value.args}
            elif dataclasses.is_dataclass(value):
                result[f.name] = dataclasses.asdict(value)
            else:
                result[f.name] = value
        return result

    def check(self) -> None:
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if hasattr(section, "check"):
                section.check()


FREEZE_SYNTAX = re.compile(r"^(?P<net>[A-Za-z_]\w*)(?::(?P<count>\d+)|(?P<path>(?:\.\w+)+))$")


def parse_freeze(entry: Any) -> tuple[str, int | None, str | None]:
    """One `train.freeze` entry: 'D:2' -> ('D', 2, None); 'G.mapping' -> ('G', None, 'mapping').

    Which networks, blocks and modules exist is checked when the networks are built
    (ganforge.training.transfer), where the valid names can be listed."""
    match = FREEZE_SYNTAX.match(entry) if isinstance(entry, str) else None
    if match is None:
        raise ConfigError(f"train.freeze entry {entry!r}: write NET:N (NET's first N blocks from the "
                          f"input, e.g. D:2) or NET.PATH (a module path, e.g. G.mapping)")
    count = match["count"]
    if count is not None and int(count) < 1:
        raise ConfigError(f"train.freeze entry {entry!r}: the number of blocks must be at least 1")
    return match["net"], None if count is None else int(count), \
        None if match["path"] is None else match["path"][1:]


def _require(ok: bool, key: str, value: Any, why: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r}: {why}")


# Build from plain dicts.
def from_dict(raw: dict) -> Config:
    """Build and check a Config from a nested dict; unknown keys and wrong types are errors."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    config = _build(Config, raw, "")
    config.check()
    return config


def _build(cls, raw: dict, prefix: str):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if issubclass(cls, NamedSection):
        # Keys of the section itself (name, ...) are typed here; the rest are the entry's.
        raw, fixed = dict(raw), {}
        for key in names:
            if key != "args" and key in raw:
                fixed[key] = _coerce(raw.pop(key), hints[key], f"{prefix}{key}")
        return cls(**fixed, args=raw)
    values = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            hint = suggest(key, names).replace(" '", f" '{prefix}", 1)
            raise ConfigError(f"unknown config key {dotted!r}{hint}; "
                              f"valid keys here: {', '.join(prefix + n for n in names)}")
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"config section {dotted!r} must be a mapping like "
                                  f"{_section_example(kind, value)}, got {value!r}")
            values[key] = _build(kind, value, dotted + ".")
        else:
            values[key] = _coerce(value, kind, dotted)
    return cls(**values)


def _section_example(cls, value: Any) -> str:
    """`{name: dcgan, ...}`: the first key of a section in YAML's one-line form, with the
    value the user wrote where it fits (`model: stylegan` -> `{name: stylegan, ...}`)."""
    first = dataclasses.fields(cls)[0]
    example = getattr(cls(), first.name)
    if first.name == "name" and isinstance(value, str) and value:
        example = value
    shown = yaml.safe_dump(example, default_flow_style=True).strip().removesuffix("...").strip()
    return f"{{{first.name}: {shown}, ...}}"


def _coerce(value: Any, kind, key: str):
    """Check `value` against a type hint; ints are accepted for floats."""
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(kind):
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[-1] if len(errors) == 1 else ConfigError(
            f"{key}={value!r}: expected {_type_name(kind)}")
    if origin is Literal:
        choices = typing.get_args(kind)
        if isinstance(value, bool) and {"yes", "no"} <= set(choices):
            value = "yes" if value else "no"  # YAML 1.1 reads an unquoted yes/no as a bool
        if value not in choices:
            raise ConfigError(f"{key}={value!r}: must be one of {', '.join(map(str, choices))}")
        return value
    if kind is type(None):
        if value is not None:
            raise ConfigError(f"{key}={value!r}: expected null")
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is dict and isinstance(value, dict):
        return value
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key}={value!r}: expected {_type_name(kind)}, got {type(value).__name__}")
    return value


def _type_name(kind) -> str:
    if typing.get_origin(kind) in (Union, types.UnionType):
        return " or ".join(_type_name(k) for k in typing.get_args(kind))
    return "null" if kind is type(None) else getattr(kind, "__name__", str(kind))


def check_args(cls, args: dict, prefix: str):
    """Build the dataclass `cls` from a named section's extra keys (e.g. a model's options)."""
    return _build(cls, args, prefix)


# Layering.
def merge(base: dict, update: dict) -> dict:
    """Deep-merge `update` into a copy of `base` (sections merge, values replace)."""
    result = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def set_key(raw: dict, dotted: str, value: Any) -> dict:
    """Return a copy of `raw` with `a.b.c = value` set (sections created as needed)."""
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"malformed config key {dotted!r}")
    update: dict = {}
    node = update
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    if parts[0] in ("model", "objective") and len(parts) == 2 and parts[1] == "name":
        # A new model or objective starts from its own defaults, not the old one's options.
        old = raw.get(parts[0], {})
        if isinstance(old, dict) and old.get("name") not in (None, value):
            raw = {**raw, parts[0]: {}}
    return merge(raw, update)


class _Loader(yaml.SafeLoader):
    """YAML with 1.2 floats: PyYAML (YAML 1.1) would read `1e-4` as a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def parse_yaml(text: str, where: str):
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise ConfigError(f"{where} is not valid YAML: {' '.join(str(error).split())}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Parse `key=value` with the value read as YAML (`10`, `1e-4`, `true`, `null`, `[1, 2]`)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. train.steps=100")
    key, _, value = text.partition("=")
    parsed = parse_yaml(value, f"the value of override {text!r}") if value.strip() else ""
    return key.strip(), parsed


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config file into a dict, naming the file in any error (missing, a folder,
    unreadable, not text, not YAML, not a mapping of sections)."""
    path = Path(path)
    where = f"config file {str(path)!r}"
    if path.is_dir():
        raise ConfigError(f"{where} is a directory; give a YAML file such as config.yaml")
    if not path.is_file():
        raise ConfigError(f"{where} does not exist")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{where} cannot be read: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{where} is not a text (UTF-8) YAML file: byte {data[error.start]:#04x} at "
                          f"offset {error.start} (binary data? a checkpoint?)") from None
    if "\x00" in text:
        raise ConfigError(f"{where} is not a text YAML file: it holds NUL bytes (binary data?)")
    raw = parse_yaml(text, where) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must hold a mapping of sections like "
                          f"{{model: {{name: dcgan}}, train: {{steps: 1500}}}}, got {_kind(raw)}")
    return raw


def _kind(value: Any) -> str:
    """'a list', "the text 'dcgan'", ... for errors about what a file held."""
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return {list: "a list"}.get(type(value), f"a {type(value).__name__} ({str(value)[:40]})")


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
