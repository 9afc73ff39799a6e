"""Data sets by name: each gives uint8 images at the requested resolution and channel count
(or, for images of any size, a PatchSet that training crops from)."""
from .imageset import ImageSet, conform, convert_channels, to_float, to_uint8
from .sources import SOURCES, load_dataset, parse_name  # first: it registers every source
from .masks import load_mask  # noqa: E402
from .patches import PatchSet  # noqa: E402

__all__ = ["ImageSet", "PatchSet", "SOURCES", "conform", "convert_channels", "load_dataset", "load_mask",
           "parse_name", "to_float", "to_uint8"]
