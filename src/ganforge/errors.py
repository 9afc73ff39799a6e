"""Errors that ganforge reports to users as one clear line (the CLI prints them without a traceback)."""


class GanforgeError(Exception):
    """Base class: something the user can fix (a key, a value, a file)."""


class ConfigError(GanforgeError, ValueError):
    """A config key is unknown, has the wrong type or an impossible value."""


class DataError(GanforgeError):
    """A data set is missing, empty or malformed."""


class CheckpointError(GanforgeError):
    """A run directory or checkpoint is missing, incomplete or does not match the config."""


def require_at_least_one(section: str, args, keys) -> None:
    """Counts and widths of a config section: each of `keys` on `args` must be at least 1
    (None, an unset optional width, passes)."""
    for key in keys:
        value = getattr(args, key)
        if value is not None and value < 1:
            raise ConfigError(f"{section}.{key}={value}: must be at least 1")
