"""Where things live in a run directory; shared by training (writes) and inference (reads)."""
from __future__ import annotations

from pathlib import Path

from .errors import CheckpointError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
STATUS = "status.json"       # why the last session stopped (finished / stopped / diverged)


def checkpoint_path(run_dir: str | Path, name: str = "last") -> Path:
    """`name` is 'last', 'best', 'step-000500', or a path to a .safetensors file."""
    if name.endswith(".safetensors"):
        return Path(name)
    return Path(run_dir) / CHECKPOINTS / f"{name}.safetensors"


def find_checkpoint(run_dir: str | Path, name: str = "last") -> Path:
    """The checkpoint file of a run, or an error that says what the directory holds."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {str(run_dir)!r} does not exist")
    path = checkpoint_path(run_dir, name)
    if not path.is_file():
        folder = run_dir / CHECKPOINTS
        have = sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []
        listing = f"it has: {', '.join(have)}" if have else "it has no checkpoints yet"
        raise CheckpointError(f"run {str(run_dir)!r} has no checkpoint {name!r} ({listing})")
    return path
