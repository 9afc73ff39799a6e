"""Errors that ganforge reports to users as one clear line (the CLI prints them without a traceback)."""


class GanforgeError(Exception):
    """Base class: something the user can fix (a key, a value, a file)."""


class ConfigError(GanforgeError, ValueError):
    """A config key is unknown, has the wrong type or an impossible value."""


class DataError(GanforgeError):
    """A data set is missing, empty or malformed."""


class CheckpointError(GanforgeError):
    """A run directory or checkpoint is missing, incomplete or does not match the config."""
