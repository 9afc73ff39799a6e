"""The data set registry and `load_dataset`, the one entry point the rest of ganforge uses.

A source is registered by name and called as `source(arg, config, split)`; `arg` is what
follows the colon in names like `folder:PATH`. It returns an ImageSet at any size; the
result is conformed here to the configured resolution and channel count.
"""
from __future__ import annotations

from ..config import DataConfig
from ..errors import DataError
from ..registry import Registry
from .imageset import ImageSet, conform

SOURCES: Registry = Registry("data set")
SPLITS = ("train", "test")


def parse_name(name: str) -> tuple[str, str | None]:
    """'folder:/data/cats' -> ('folder', '/data/cats'); 'mnist' -> ('mnist', None)."""
    kind, sep, arg = name.partition(":")
    if sep and not arg:
        raise DataError(f"data set {name!r} needs a path after the colon, e.g. {kind}:/path/to/data")
    return kind, (arg if sep else None)


def load_dataset(config: DataConfig, split: str = "train") -> ImageSet:
    """Load the data set named by `config.name` as one uint8 tensor on the CPU.

    Args:
        config: the `data` section (name, data_dir, resolution, channels, download).
        split: "train" or "test" (sets without an official split define a fixed one).

    Example:
        >>> load_dataset(DataConfig(name="digits", resolution=32)).images.shape
        torch.Size([1437, 1, 32, 32])
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    kind, arg = parse_name(config.name)
    source = SOURCES.get(kind)
    data = source(arg, config, split)
    if len(data) == 0:
        raise DataError(f"data set {config.name!r} ({split}) holds no images")
    images = conform(data.images, config.resolution, config.channels)
    return ImageSet(images, data.labels, data.class_names, source=config.name)


# Register the built-in sources (each module adds itself to SOURCES).
from . import digits, npz, folder, torchvision_sets  # noqa: E402,F401
