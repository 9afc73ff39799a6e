"""The data set registry and `load_dataset`, the one entry point the rest of ganforge uses.

A source is registered by name and called as `source(arg, config, split)`; `arg` is what
follows the colon in names like `folder:PATH`. It returns an ImageSet at any size; the
result is conformed here to the configured resolution and channel count. A source of
whole images for random crops returns a PatchSet instead, whose sizes are kept.
"""
from __future__ import annotations

from ..config import DataConfig
from ..errors import DataError
from ..registry import Registry
from .imageset import ImageSet, conform, conform_regions, convert_channels

SOURCES: Registry = Registry("data set")
SPLITS = ("train", "test")


def parse_name(name: str) -> tuple[str, str | None]:
    """'folder:/data/cats' -> ('folder', '/data/cats'); 'mnist' -> ('mnist', None)."""
    kind, sep, arg = name.partition(":")
    if sep and not arg:
        raise DataError(f"data set {name!r} needs a path after the colon, e.g. {kind}:/path/to/data")
    return kind, (arg if sep else None)


def native_resolution(name: str) -> int | None:
    """The side of the images a source holds as stored (28 for MNIST), or None where it varies
    (folders, npz files) or is not known: a source declares it as `native_resolution` on its
    loader."""
    kind = parse_name(name)[0]
    return getattr(SOURCES.get(kind), "native_resolution", None) if kind in SOURCES else None


def load_dataset(config: DataConfig, split: str = "train"):
    """Load the data set named by `config.name` on the CPU.

    Most sources give an ImageSet: one uint8 tensor at `config.resolution` and
    `config.channels`; pair sources also carry `sources` (conformed the same way) and scene
    sources `regions` (same centre square, resized nearest-neighbour). Patch sources
    (`patches:FOLDER`, `photos`) give a PatchSet of whole images of any size, converted to
    `config.channels` only: `config.resolution` is then the crop size its sampler cuts.
    Two domains (`config.name_b`, a trainA/ trainB/ folder, `styled:BASE`) give a
    data.domains.DomainPair of two such sets, each conformed as alone.

    `config.classes` keeps some classes (relabelled in the order given) and `config.limit` a
    fixed class-balanced part of the train split (see data.subset).

    Args:
        config: the `data` section (name, data_dir, resolution, channels, download, classes, limit).
        split: "train" or "test" (sets without an official split define a fixed one).

    Example:
        >>> load_dataset(DataConfig(name="digits", resolution=32)).images.shape
        torch.Size([1437, 1, 32, 32])
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    kind, arg = parse_name(config.name)
    data = SOURCES.get(kind)(arg, config, split)
    if config.classes is not None or config.limit is not None:  # before conforming: less to resize
        from .subset import select
        if config.name_b:
            raise DataError("data.classes and data.limit choose images of one data set; a "
                            "translation run's two domains (data.name_b) cannot be restricted")
        data = select(data, config.classes, config.limit, split, config.name)
    if config.name_b:
        from .domains import DomainPair, is_two_domain
        if is_two_domain(data):
            raise DataError(f"data.name={config.name!r} already holds two domains; drop data.name_b "
                            f"(--dataset-b {config.name_b})")
        kind_b, arg_b = parse_name(config.name_b)
        b = SOURCES.get(kind_b)(arg_b, config, split)
        if is_two_domain(b):
            raise DataError(f"data.name_b={config.name_b!r} holds two domains itself; give it as "
                            f"data.name (--dataset) alone")
        data = DomainPair(data, b, f"{config.name} | {config.name_b}")
    if hasattr(data, "domain"):  # two domains: each conformed as alone
        return type(data)(_conformed(data.a, config, split, f"{config.name} (A)"),
                          _conformed(data.b, config, split, f"{config.name_b or config.name} (B)"), data.source)
    return _conformed(data, config, split, config.name)


def _conformed(data, config: DataConfig, split: str, name: str):
    """One domain at the configured resolution and channels (a PatchSet: channels only)."""
    from .patches import PatchSet

    if len(data) == 0:
        raise DataError(f"data set {name!r} ({split}) holds no images")
    if isinstance(data, PatchSet):
        return PatchSet([convert_channels(image, config.channels) for image in data.images],
                        data.names, source=name, resolution=config.resolution)
    images = conform(data.images, config.resolution, config.channels)
    sources = None if data.sources is None else conform(data.sources, config.resolution, config.channels)
    regions = None if data.regions is None else conform_regions(data.regions, config.resolution)
    return ImageSet(images, data.labels, data.class_names, source=name, sources=sources,
                    regions=regions, region_labels=data.region_labels)


# Register the built-in sources (each module adds itself to SOURCES).
from . import digits, npz, folder, torchvision_sets  # noqa: E402,F401
from . import patches, photos, paired, mosaic, domains, crops  # noqa: E402,F401
