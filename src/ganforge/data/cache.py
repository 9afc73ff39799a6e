"""Decoded data sets kept on disk as memory-mapped uint8 arrays, so that a set is decoded once
and a set larger than RAM still trains: the operating system pages images in as batches read
them.

An entry is a `.npy` file (the array) and a `.json` file beside it (what it was built from and
what its builder reported). It lives in `$GANFORGE_CACHE` or `~/.cache/ganforge` (the folder
trained feature classifiers use), named by a `slot` (e.g. a folder, resolution and channel
count); the `key` stored with it (e.g. the names, sizes and mtimes of the files) says whether
it is still valid. A stale, torn or unreadable entry is rebuilt in place. Both files are
written under temporary names and renamed, array first, so a reader never sees half an entry.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from .. import atomic
from ..errors import DataError

FORMAT = 1  # bump when what an entry holds changes: older entries are then rebuilt
# posix_fallocate errors that mean "this file system cannot", not "no space".
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}


def cache_dir() -> Path:
    """$GANFORGE_CACHE or ~/.cache/ganforge (the same folder as ganforge.evaluate.cache_dir)."""
    return Path(os.environ.get("GANFORGE_CACHE", Path.home() / ".cache" / "ganforge"))


def digest(value) -> str:
    """A short stable hash of a JSON-able value (slot names and keys)."""
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def cached_array(kind: str, slot: str, key: str, shape: tuple[int, ...],
                 fill: Callable[[np.ndarray], dict]) -> tuple[np.ndarray, dict]:
    """A uint8 array of `shape` from the cache, built by `fill` when missing, stale or torn.

    `fill(array)` writes the data into `array` (a fresh writable memory map, zeros) and
    returns a JSON-able dict, which is stored and handed back with the array on later calls.
    The array comes back mapped copy-on-write: reading pages it in from disk, writing
    changes this process's copy only, never the file. When the cache folder cannot be
    written (read-only, disk full) `fill` runs on an in-memory array and a warning says so.

    Args:
        kind: a sub-folder of the cache, e.g. "folders".
        slot: the entry's file name without suffix, e.g. "faces-64px-3ch-1a2b3c4d5e6f7a8b".
        key: what the data was made from; another key means the entry is stale.
        shape: the array's shape (uint8).
        fill: writes the data; returns the metadata to keep.

    Example:
        >>> array, meta = cached_array("folders", "x-8px-1ch-0123", key, (10, 1, 8, 8), decode_into)
    """
    folder = cache_dir() / kind
    array_path, meta_path = folder / f"{slot}.npy", folder / f"{slot}.json"
    found = _open(array_path, meta_path, key, shape)
    if found is not None:
        return found
    tmp = folder / f".{slot}.{os.getpid()}.npy.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _reserve(tmp, array)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        print(f"warning: cannot keep a decoded copy in {folder} ({error}); decoding into memory "
              f"this time (set GANFORGE_CACHE to a writable folder with space)", file=sys.stderr)
        array = np.zeros(shape, dtype=np.uint8)
        return array, fill(array)
    try:
        meta = fill(array)
        array.flush()
        del array
        try:
            os.replace(tmp, array_path)
            _write_json(meta_path, {"format": FORMAT, "key": key, "shape": list(shape), "meta": meta})
        except OSError as error:
            raise DataError(f"cannot write the data cache {str(array_path)!r} ({error}); set "
                            f"GANFORGE_CACHE to a writable folder with space") from None
    finally:
        tmp.unlink(missing_ok=True)
    found = _open(array_path, meta_path, key, shape)
    if found is None:
        raise DataError(f"data cache {str(array_path)!r} was written but cannot be read back")
    return found


def _open(array_path: Path, meta_path: Path, key: str, shape: tuple[int, ...]):
    """(array, meta) when the entry exists, matches `key` and `shape` and opens; else None."""
    try:
        stored = json.loads(meta_path.read_text())
        if (stored.get("format"), stored.get("key"), stored.get("shape")) != (FORMAT, key, list(shape)):
            return None
        array = np.load(array_path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError, EOFError, AttributeError):  # missing, torn or not ours
        return None
    if array.dtype != np.uint8 or array.shape != tuple(shape):
        return None
    return array, stored["meta"]


def _reserve(path: Path, array: np.memmap) -> None:
    """Claim the array's disk space now: a memory map that runs out of disk later does not
    raise, it kills the process (SIGBUS)."""
    needed = array.offset + array.nbytes
    if hasattr(os, "posix_fallocate"):
        with open(path, "r+b") as handle:
            try:
                os.posix_fallocate(handle.fileno(), 0, needed)
                return
            except OSError as error:
                if error.errno not in _UNSUPPORTED:
                    raise
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise OSError(f"{needed / 2**30:.1f} GiB needed, {free / 2**30:.1f} GiB free")


def _write_json(path: Path, value) -> None:
    atomic.write_json(path, value, indent=None)
