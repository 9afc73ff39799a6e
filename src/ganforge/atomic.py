"""One way to write a file so that no reader ever sees half of it.

Every file ganforge writes (configs, reports, images, archives, checkpoints) is written under
a temporary name unique to this process and call, then renamed over its target. Several
processes writing the same file (the ranks of a torchrun job) therefore never trip over one
another's temporary file, and a crash leaves the target as it was.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """A hidden name beside `path`, unique to this process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def fsync_folder(folder: str | Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk, where the system allows it."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


@contextlib.contextmanager
def replacing(path: str | Path, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it over `path`, on failure remove it.

    `durable` also flushes the file and its folder, so the rename survives a power cut.

    Example:
        >>> with replacing("runs/a/eval.json") as tmp:
        ...     tmp.write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_folder(path.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, value, indent: int | None = 2) -> None:
    """Write `value` as JSON to `path` atomically."""
    write_text(path, json.dumps(value, indent=indent))
