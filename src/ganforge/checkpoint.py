"""ganforge's one checkpoint format: a safetensors file whose metadata holds JSON.

Everything needed to continue a run (weights, EMA, optimiser state, RNG states, step,
config) goes into one file, written to a temporary name, flushed and renamed, and the
folder is flushed after the rename, so neither a crash nor a power cut leaves a half-written
checkpoint or loses the rename. A write that fails (a full disk) raises CheckpointWriteError
naming the file and leaves the previous checkpoint as it was. Loading never unpickles anything.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import atomic
from .errors import CheckpointError

FORMAT = "ganforge-checkpoint"
VERSION = 1


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (disk full, no permission); the previous one is kept.

    Both a CheckpointError (the CLI prints it as one line) and an OSError (what it is)."""


def save(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write tensors and JSON-able `meta` to `path` atomically.

    The file is written under a temporary name, flushed to disk and renamed over `path`; then
    the folder itself is flushed, so the rename survives a power cut. Until the rename,
    `path` keeps its previous content, whatever fails.

    Args:
        path: the checkpoint file (its folder is made if missing).
        tensors: named tensors (moved to the CPU for writing).
        meta: JSON-able values, stored in the safetensors header.

    Raises:
        CheckpointWriteError: the file could not be written (e.g. the disk is full); one
            line naming `path`, and `path` still holds the previous checkpoint.

    Example:
        >>> save("runs/a/checkpoints/last.safetensors", {"w": torch.zeros(2)}, {"step": 5})
    """
    path = Path(path)
    header = {"format": FORMAT, "version": VERSION, **meta}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    try:
        with atomic.replacing(path, durable=True) as tmp:
            save_file(tensors, str(tmp), metadata={"ganforge": json.dumps(header)})
    except OSError as error:
        reason = error.strerror or str(error)
        raise CheckpointWriteError(f"cannot write checkpoint {str(path)!r}: {reason}; the previous "
                                   f"checkpoint there is unchanged") from error


def read_meta(path: str | Path) -> dict:
    """The JSON header of a checkpoint, without reading its tensors."""
    with _open(path) as handle:
        return _header(path, handle)


def load(path: str | Path, prefix: str = "") -> tuple[dict[str, torch.Tensor], dict]:
    """Read the tensors whose keys start with `prefix` (all by default) and the header."""
    with _open(path) as handle:
        meta = _header(path, handle)
        tensors = {k: handle.get_tensor(k) for k in handle.keys() if k.startswith(prefix)}
    return tensors, meta


class _open:
    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self):
        if not self.path.is_file():
            raise CheckpointError(f"checkpoint {str(self.path)!r} does not exist")
        try:
            self.handle = safe_open(str(self.path), framework="pt", device="cpu")
            return self.handle.__enter__()
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"checkpoint {str(self.path)!r} is damaged or not a "
                                  f"ganforge checkpoint: {error}") from None

    def __exit__(self, *exc):
        return self.handle.__exit__(*exc)


def _header(path, handle) -> dict:
    raw = (handle.metadata() or {}).get("ganforge")
    try:
        meta = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        meta = {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} has no ganforge header; it was not "
                              f"written by ganforge")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} is format version {meta['version']}; "
                              f"this ganforge reads up to {VERSION}: upgrade ganforge")
    return meta


# Nested state (optimiser state dicts) <-> flat tensors + a JSON skeleton.
def flatten(prefix: str, tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor in `tree` into `tensors` under a dotted key; return a JSON skeleton.

    Dicts are stored as lists of [key, value] pairs so integer keys (optimiser state
    indices) survive the trip through JSON.
    """
    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree
        return {"tensor": prefix}
    if isinstance(tree, dict):
        return {"dict": [[k, flatten(f"{prefix}.{k}", v, tensors)] for k, v in tree.items()]}
    if isinstance(tree, (list, tuple)):
        return {"list": [flatten(f"{prefix}.{i}", v, tensors) for i, v in enumerate(tree)]}
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return {"value": tree}
    raise TypeError(f"cannot store {type(tree).__name__} at {prefix} in a checkpoint")


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten`."""
    if "tensor" in skeleton:
        return tensors[skeleton["tensor"]]
    if "dict" in skeleton:
        return {k: unflatten(v, tensors) for k, v in skeleton["dict"]}
    if "list" in skeleton:
        return [unflatten(v, tensors) for v in skeleton["list"]]
    return skeleton["value"]
