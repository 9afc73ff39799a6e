"""Named presets: YAML configs (partial: only what differs from the defaults) carrying the
published hyper-parameters of a model on a data set. The first line, a comment, says what
the preset is; `ganforge presets` lists them. A preset may carry budget sections: what the
recipe becomes when a time budget is the limit, `short_budget` below resolve.LONG_BUDGET_S and
`medium_budget` from there to resolve.PRESET_FULL_BUDGET_S (from which it trains as written)."""
from __future__ import annotations

from importlib import resources

from ..config import parse_yaml
from ..errors import ConfigError
from ..registry import suggest


def _files() -> dict:
    return {f.name[:-5]: f for f in resources.files(__name__).iterdir() if f.name.endswith(".yaml")}


def names() -> list[str]:
    return sorted(_files())


def describe(name: str) -> str:
    """The preset's one-line description (its first comment line)."""
    first = preset_text(name).splitlines()[0]
    return first.lstrip("#").strip()


def load_preset(name: str) -> dict:
    """The preset's config sections as a dict, to be layered under the user's keys.

    Example:
        >>> load_preset("sngan-cifar10")["model"]["name"]
        'resnet'
    """
    raw = parse_yaml(preset_text(name), f"preset {name!r}") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"preset {name!r} must hold a mapping of config sections")
    return raw


def preset_text(name: str) -> str:
    files = _files()
    if name not in files:
        raise ConfigError(f"unknown preset {name!r}{suggest(name, list(files))}; "
                          f"known presets: {', '.join(sorted(files))}")
    return files[name].read_text()


BUDGET_SECTIONS = ("short_budget", "medium_budget")


def budget_sections(name: str, recipe: dict) -> dict:
    """Take a preset's budget sections out of `recipe` (its config sections stay), each checked
    to map config sections to keys ({} when absent); their keys are checked like any other when
    the config is resolved."""
    sections = {}
    for key in BUDGET_SECTIONS:
        section = recipe.pop(key, None)
        if section is None:
            section = {}
        if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
            raise ConfigError(f"preset {name!r}: {key} must map config sections to keys, "
                              f"e.g. {{model: {{g_width: 32}}}}")
        sections[key] = section
    return sections
