"""Data sets by name: each gives uint8 images at the requested resolution and channel count."""
from .imageset import ImageSet, conform, to_float, to_uint8
from .sources import SOURCES, load_dataset, parse_name

__all__ = ["ImageSet", "SOURCES", "conform", "load_dataset", "parse_name", "to_float", "to_uint8"]
