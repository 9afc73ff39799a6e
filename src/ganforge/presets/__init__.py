"""Named presets: YAML configs (partial: only what differs from the defaults) carrying the
published hyper-parameters of a model on a data set. The first line, a comment, says what
the preset is; `ganforge presets` lists them. A preset may carry a `short_budget` section:
what the recipe becomes when a short time budget is the limit (below resolve.PRESET_SHORT_BUDGET_S)."""
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


def short_budget(name: str, section) -> dict:
    """A preset's `short_budget` section, checked to be config sections ({} when absent); its
    keys are checked like any other when the config is resolved."""
    if section is None:
        return {}
    if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
        raise ConfigError(f"preset {name!r}: short_budget must map config sections to keys, "
                          f"e.g. {{model: {{g_width: 32}}}}")
    return section
