"""Resolving a run's config from its layers, checked against the registries.

Below training in the flow (config -> data -> models -> objectives -> resolve -> training ->
...): training, evaluation (which trains its feature classifier) and the CLI all resolve
configs here, and none of them has to import the API facade.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Iterable

from . import config as cfg
from . import rundir
from .config import Config
from .data.sources import SOURCES, native_resolution, parse_name
from .errors import CheckpointError, ConfigError
from .models import MODELS, DataShape, check_shape, model_args
from .objectives import OBJECTIVES, objective_args
from .tasks import task_defaults

# train.steps when a time budget is the limit: more steps than any budget reaches.
BUDGET_STEPS = 10**12
# The budget rules, in seconds of the machine they were measured on (the project's 2-core Intel
# Xeon with AMX; README "Sized for the budget"). Measured at 60, 120 and 300 s there, and at
# 120-300 s of a machine about half as fast (57-175 s there); a bound lies between measured
# budgets, and one near it may land on either side (the timing's spread is about a tenth).
# At least LONG_BUDGET_S, as the limit: the architecture's `long_budget` settings (the DCGAN's
# widths 48, Adam 4e-4 at betas (0, 0.99) and lazy R1 at gamma 0.5: at 84-175 s ahead of the sized networks on
# FID, precision and coverage on Fashion-MNIST, recall 0.02-0.07 behind, and on every column on
# MNIST; ahead of the plain reference loop there, where the sized networks trailed its
# precision at 84-103 s). Shorter, as the limit: its `short_budget` settings, networks sized for
# it (_sized_for_budget): better on every count at 60 s than the full-size networks, and on FID
# and recall than the long recipe.
LONG_BUDGET_S = 90.0
# Below PRESET_FULL_BUDGET_S, as the limit, a preset's own budget sections apply: its
# `short_budget` below LONG_BUDGET_S, its `medium_budget` from there on; from it the preset as
# written (`dcgan-mnist`'s widths-64 networks; the conditional preset, whose written networks are
# the default's long recipe since 2026-12-05, has a short section only). The bound was measured
# for the conditional preset's old widths-64 networks (they trailed its medium section at 140-175
# and 300 s); for `dcgan-mnist` it is not measured.
PRESET_FULL_BUDGET_S = 400.0
# The reference step (the default DCGAN: 32 px, one channel, widths 64, batch 64, bf16) ran at
# about this many steps per second on that machine as `bench.reference_step_rate` times it
# (estimated: 4,792 steps in a 300 s full-size run there; 2,725 here on an AMD EPYC, whose timer
# read 11.3, so the timer reads about 1.25x a run's own rate). Given the timer, make_config
# counts a budget as budget x (rate here / this rate) of those seconds: what a budget buys is
# steps, and another CPU or a GPU makes a different number of them in a second.
REFERENCE_STEP_RATE = 20.0


def make_config(config: Config | dict | str | Path | None = None, *, preset: str | None = None,
                resume: str | Path | None = None, overrides: Iterable[str] | dict = (),
                base: dict | None = None, step_rate: Callable[[Config], float] | None = None) -> Config:
    """Resolve a config from layers: defaults < the model's defaults < `base` (a command's own
    defaults) < `preset` or the run dir (resume) < `config` < `overrides`.

    A time budget is the limit when no step count is given: with `train.time_budget` set and
    `train.steps` in none of the user's layers (`preset`, the run dir, `config`, `overrides`;
    a Config object gives every key), `train.steps` becomes BUDGET_STEPS, so training runs
    until the budget is spent. A task's defaults count as given steps (a task is a sized
    recipe; the budget is then a guard). A learning-rate schedule over `train.steps` has no
    end to decay towards: one the user chose needs an explicit `train.steps` (a ConfigError
    otherwise); one that came with a model or objective default keeps the default steps.

    A budget below LONG_BUDGET_S (as the limit) also sizes the networks: the
    architecture's `short_budget` settings and the data set's native resolution, each only
    where no layer gives the key; from LONG_BUDGET_S on, its `long_budget` settings. A preset
    is a recipe and is not sized by these rules; its own budget sections say what it becomes:
    `short_budget` below LONG_BUDGET_S and `medium_budget` from there to PRESET_FULL_BUDGET_S
    (their keys replace the preset's own, except those `config` or `overrides` give;
    `data.resolution: native` is the data set's native size). What changed is in
    `config.sized_for_budget` (a flat dict, empty if nothing; not saved: the run's config.yaml
    holds the values themselves), and `config.budget_is_short` says whether they were a short
    budget's.

    The rules' seconds are the reference machine's (REFERENCE_STEP_RATE). With `step_rate` (a
    function timing the rules' reference step on this machine with a config's device and
    precision, as `bench.reference_step_rate` does) the budget counts as the reference
    machine's seconds that make as many steps; `config.budget_scale` holds the factor (1.0
    without a timer or where no rule applies; not saved either).

    Args:
        config: a Config, a nested dict, or a YAML file path.
        preset: a named preset (`ganforge presets` lists them), e.g. "sngan-cifar10".
        resume: a run directory whose config.yaml is the base.
        overrides: `["train.steps=100", ...]` or `{"train.steps": 100}`.
        step_rate: the reference step's rate on this machine for a config (its device and
            precision); called once, with the config before the budget's sizing, and only where
            a budget rule applies.
    """
    raw: dict = dict(base or {})
    preset_sections: dict = {}
    if preset is not None:
        if resume is not None:
            raise ConfigError("a preset starts a run; a resumed run keeps its own config (drop --preset)")
        from .presets import budget_sections, load_preset
        recipe = load_preset(preset)
        preset_sections = budget_sections(preset, recipe)
        raw = cfg.merge(raw, recipe)
    if resume is not None:
        path = Path(resume) / rundir.CONFIG
        if not path.is_file():
            raise CheckpointError(f"cannot resume {str(resume)!r}: it has no {rundir.CONFIG} "
                                  f"(is it a ganforge run directory?)")
        raw = cfg.load_yaml(path)
    user: dict = {}  # the layers above a preset: what a preset's budget section must not replace
    if isinstance(config, Config):
        user = config.to_dict()
    elif isinstance(config, dict):
        user = config
    elif config is not None:
        user = cfg.load_yaml(config)
    raw = cfg.merge(raw, user)
    pairs = overrides.items() if isinstance(overrides, dict) else map(cfg.parse_override, overrides)
    for key, value in pairs:
        raw = cfg.set_key(raw, key, value)
        user = cfg.set_key(user, key, value)
    if resume is not None:
        raw = cfg.set_key(raw, "out", str(resume))
    train = raw.get("train")
    user_train = train if isinstance(train, dict) else {}
    task = task_defaults(raw)
    steps_given = "steps" in user_train or "steps" in task.get("train", {})  # a task is a recipe
    raw = cfg.merge(task, raw)
    scale = 1.0
    if step_rate is not None and _rules_apply(raw, user, steps_given, preset, preset_sections):
        full_size = cfg.from_dict(_objective_train_defaults(_model_defaults(_default_objective(raw))))
        scale = step_rate(full_size) / REFERENCE_STEP_RATE
    if preset is None:
        sized = {} if steps_given else _sized_for_budget(raw, scale)
    else:  # a preset is a recipe: only its own budget sections size it
        sized = _preset_budget(raw, user, preset_sections, scale)
    for key, value in sized.items():
        raw = cfg.set_key(raw, key, value)
    raw = _objective_train_defaults(_model_defaults(_default_objective(raw)))
    resolved = cfg.from_dict(raw)
    if resolved.train.time_budget is not None and not steps_given:
        _budget_is_the_limit(resolved, "lr_schedule" in user_train)
    check_config(resolved)
    resolved.sized_for_budget = sized
    resolved.budget_is_short = bool(sized) and _is_short(raw, scale)
    resolved.budget_scale = scale
    # Write every option out, so a run keeps its settings even if defaults change later.
    resolved.model.args = dataclasses.asdict(model_args(resolved.model))
    resolved.objective.args = dataclasses.asdict(objective_args(resolved.objective))
    if resolved.out is None:
        data = parse_name(resolved.data.name)[0]
        resolved.out = f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{resolved.model.name}-{data}"
    return resolved


def _budget_is_the_limit(config: Config, schedule_given: bool) -> None:
    """Train until `train.time_budget` is spent (BUDGET_STEPS). A decaying schedule the user
    chose is refused (it needs train.steps); one that came with a model or objective (the
    VAE's and classifier's cosine) keeps its default steps, and the budget stays a guard."""
    train = config.train
    if train.lr_schedule != "constant" and not schedule_given:
        return
    if train.lr_schedule != "constant":
        raise ConfigError(f"train.time_budget={train.time_budget:g} with no train.steps trains until "
                          f"the budget is spent, but train.lr_schedule={train.lr_schedule!r} decays "
                          f"over train.steps: give train.steps (--steps N) for the schedule, or set "
                          f"train.lr_schedule=constant")
    train.steps = BUDGET_STEPS


def _rules_apply(raw: dict, user: dict, steps_given: bool, preset: str | None, preset_sections: dict) -> bool:
    """Whether a budget rule could change `raw`: a time budget as the limit, and an
    architecture with rules (no preset) or a preset with a budget section (whose own steps
    stay a guard; only the user's steps make the budget one)."""
    if _time_budget(raw) is None:
        return False
    if preset is not None:
        user_train = user.get("train") if isinstance(user.get("train"), dict) else {}
        return any(preset_sections.values()) and "steps" not in user_train
    if steps_given:
        return False
    arch = _architecture(raw)
    return arch is not None and bool(arch.short_budget or arch.long_budget)


def _architecture(raw: dict):
    """The registered architecture `raw`'s model section names (the default model where it
    names none), or None for a name the registry does not know (from_dict reports it)."""
    model = raw.get("model", {}) if isinstance(raw.get("model"), dict) else {}
    name = model.get("name", cfg.ModelConfig().name)
    return MODELS.get(name) if name in MODELS else None


def _sized_for_budget(raw: dict, scale: float = 1.0) -> dict:
    """The keys a time budget (as the limit) sets, as {"model.g_width": 32, ...}, each only
    where no layer (preset, config file, options, --set) gives the key.

    Below LONG_BUDGET_S: the architecture's `short_budget` settings and, for an architecture
    that has some, the data set's native resolution where the architecture makes it (MNIST's
    28 px rather than 32). At 60 s on 2 CPU cores the DCGAN's full-size 32-px, widths-64
    networks make a quarter of the steps the sized ones make and score worse.
    From LONG_BUDGET_S on: the architecture's `long_budget` settings (the DCGAN's widths 48,
    Adam 4e-4 and lazy R1; README, "Sized for the budget"), objective keys only while the
    family's objective and that loss train it.
    The budget counts as budget x `scale` seconds of the reference machine."""
    arch = _architecture(raw)
    if _time_budget(raw) is None or arch is None:
        return {}
    if not _is_short(raw, scale):
        return _long_budget(raw, arch)
    if not arch.short_budget:
        return {}
    sized = _open_keys(raw, arch.short_budget)
    native = _native_resolution(raw, arch)
    if native is not None and not _given(raw, "data.resolution"):
        sized["data.resolution"] = native
    return sized


def _time_budget(raw: dict) -> float | None:
    """`train.time_budget` when it is a positive number (from_dict names any other value)."""
    train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    budget = train.get("time_budget")
    if not isinstance(budget, (int, float)) or isinstance(budget, bool) or not budget > 0:
        return None
    return budget


def _is_short(raw: dict, scale: float) -> bool:
    """Whether the time budget counts as short: below LONG_BUDGET_S of the reference machine."""
    budget = _time_budget(raw)
    return budget is not None and budget * scale < LONG_BUDGET_S


def _native_resolution(raw: dict, arch) -> int | None:
    """The data set's native size (MNIST's 28 px) where `arch` makes it and one domain is
    trained; None otherwise (folders, two domains, digits' 8 px for the DCGAN)."""
    data = raw.get("data", {}) if isinstance(raw.get("data"), dict) else {}
    native = native_resolution(str(data.get("name", cfg.DataConfig().name)))
    if native is None or data.get("name_b") or (arch.resolutions is not None and native not in arch.resolutions):
        return None
    return native


def _preset_budget(raw: dict, user: dict, sections: dict, scale: float = 1.0) -> dict:
    """The keys of a preset's budget section for the budget (`short_budget` below LONG_BUDGET_S,
    `medium_budget` from there to PRESET_FULL_BUDGET_S) that `user` (config and overrides) leaves
    open, when the user gave no train.steps (the preset's own steps then stay as a guard the
    budget reaches first)."""
    budget = _time_budget(raw)
    user_train = user.get("train") if isinstance(user.get("train"), dict) else {}
    if budget is None or budget * scale >= PRESET_FULL_BUDGET_S or "steps" in user_train:
        return {}
    section = sections.get("short_budget" if _is_short(raw, scale) else "medium_budget")
    if not section:
        return {}
    sized = _open_keys(user, section)
    if sized.get("data.resolution") == "native":
        arch = _architecture(raw)
        native = _native_resolution(raw, arch) if arch is not None else None
        if native is None:
            del sized["data.resolution"]
        else:
            sized["data.resolution"] = native
    return sized


def _long_budget(raw: dict, arch) -> dict:
    """The `long_budget` keys left open. Its objective section (whose `loss` is a condition,
    not a key it sets) is one regulariser: added whole, and only while the family's own
    objective and that loss are used and no key of the section is given."""
    sections = {section: dict(values) for section, values in arch.long_budget.items()}
    objective = raw.get("objective", {}) if isinstance(raw.get("objective"), dict) else {}
    wanted = sections.get("objective", {}).pop("loss", None)
    default_loss = getattr(objective_args(cfg.ObjectiveConfig(name=arch.objective)), "loss", None) \
        if arch.objective in OBJECTIVES else None
    if (objective.get("name", arch.objective) != arch.objective
            or (wanted is not None and objective.get("loss", default_loss) != wanted)
            or any(key in objective for key in sections.get("objective", {}))):
        sections.pop("objective", None)
    return _open_keys(raw, sections)


def _open_keys(raw: dict, sections: dict) -> dict:
    """{"section.key": value} for the keys of `sections` that no layer of `raw` gives."""
    return {f"{section}.{key}": value for section, values in sections.items()
            for key, value in values.items() if not _given(raw, f"{section}.{key}")}


def _given(raw: dict, dotted: str) -> bool:
    node = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _default_objective(raw: dict) -> dict:
    """Unless an objective is named, use the one the model is made for (gan, vae, classifier)."""
    objective = raw.get("objective")
    if isinstance(objective, dict) and "name" in objective:
        return raw
    model = raw.get("model", {})
    name = model.get("name", cfg.ModelConfig().name) if isinstance(model, dict) else None
    if name in MODELS:
        raw = cfg.merge(raw, {"objective": {"name": MODELS.get(name).objective}})
    return raw


def _model_defaults(raw: dict) -> dict:
    """Lay the architecture's own defaults (e.g. SNGAN's hinge loss and Adam betas) under
    what the user gave; objective keys only while the model's own objective trains it."""
    model = raw.get("model", {})
    name = model.get("name", cfg.ModelConfig().name) if isinstance(model, dict) else None
    if name not in MODELS or not MODELS.get(name).defaults:
        return raw
    arch = MODELS.get(name)
    defaults = dict(arch.defaults)
    objective = raw.get("objective", {})
    # The family's objective settings go with its objective and loss: with another loss
    # (e.g. stylegan's R1 with a weight-clipping WGAN) they would not fit, so they yield.
    own_loss = defaults.get("objective", {}).get("loss")
    if objective.get("name") != arch.objective or objective.get("loss", own_loss) != own_loss:
        defaults.pop("objective", None)
    return cfg.merge(defaults, raw)


def _objective_train_defaults(raw: dict) -> dict:
    """Lay the objective's own `train.*` defaults under what the user gave."""
    objective = raw.get("objective", {})
    name = objective.get("name") if isinstance(objective, dict) else None
    if name not in OBJECTIVES:
        return raw
    return cfg.merge({"train": dict(OBJECTIVES.get(name).train_defaults)}, raw)


def check_config(config: Config) -> None:
    """Check what depends on registries: names, model and objective options, resolution."""
    from .data.degrade import parse_degradation
    from .tasks import TASKS

    TASKS.get(config.task)
    if config.data.degrade:
        parse_degradation(config.data.degrade)
    SOURCES.get(parse_name(config.data.name)[0])
    model_args(config.model)
    objective_args(config.objective)
    check_shape(config.model, DataShape(config.data.resolution, config.data.channels))
