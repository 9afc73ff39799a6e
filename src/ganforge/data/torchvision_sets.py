"""`mnist`, `fashion-mnist`, `cifar10` through torchvision's data set classes.

Files are read from `data.data_dir` (default ./data) in torchvision's layout; when they are
missing, they are downloaded if `data.download` is on and the network allows. Otherwise the
error names the directory and the exact files expected.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..errors import DataError
from .imageset import ImageSet
from .sources import SOURCES

DEFAULT_DIR = "data"
MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
CIFAR_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch", "batches.meta"]


def _root(config) -> Path:
    return Path(config.data_dir or DEFAULT_DIR)


def _missing(config, where: Path, expected: list[str], note: str, error: Exception | None) -> DataError:
    reason = "downloading is off (data.download=false)" if error is None else f"download failed: {error}"
    reason = " ".join(reason.split())
    return DataError(f"data set {config.name!r}: files not found in {str(where)!r}; expected "
                     f"{', '.join(expected)}{note} ({reason})")


def _open(cls, config, split: str, folder: Path, needed: list[str], expected: list[str], note: str):
    """Instantiate torchvision's class on `folder`'s files, downloading them first when they
    are missing and downloading is on; any failure becomes one DataError line."""
    root = _root(config)
    have = all((folder / name).is_file() for name in needed)
    error = None
    if not have and config.download:
        try:
            cls(str(root), train=True, download=True)
        except Exception as exc:  # network errors come in many types; all mean "not here"
            error = exc
        have = all((folder / name).is_file() for name in needed)
    if not have:
        raise _missing(config, folder, expected, note, error)
    try:
        return cls(str(root), train=(split == "train"), download=False)
    except (RuntimeError, ValueError, OSError, AssertionError, TypeError, KeyError, EOFError,
            pickle.UnpicklingError) as exc:
        raise DataError(f"data set {config.name!r}: files in {str(folder)!r} cannot be read: {exc}") from None


def _gather_idx(root: Path, folder_name: str) -> Path:
    """Make sure `root/folder_name/raw` holds the four IDX files torchvision reads, unpacking
    `.gz` copies found there, directly in `root`, or in `root/raw`; return the raw folder."""
    from torchvision.datasets.utils import extract_archive

    raw = root / folder_name / "raw"
    for name in MNIST_FILES:
        if (raw / name).is_file():
            continue
        for folder in (raw, root, root / "raw"):
            if (folder / name).is_file() and folder != raw:
                raw.mkdir(parents=True, exist_ok=True)
                (raw / name).write_bytes((folder / name).read_bytes())
                break
            if (folder / f"{name}.gz").is_file():
                raw.mkdir(parents=True, exist_ok=True)
                extract_archive(str(folder / f"{name}.gz"), str(raw))
                break
    return raw


def _load_mnist_like(config, split: str, cls_name: str) -> ImageSet:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    root = _root(config)
    raw = _gather_idx(root, cls_name)
    data = _open(cls, config, split, raw, MNIST_FILES, [f"{n}.gz" for n in MNIST_FILES],
                 f" (or unpacked, or directly in {str(root)!r})")
    images = data.data.unsqueeze(1).contiguous()
    return ImageSet(images, data.targets.long(), [c.split(" - ")[-1] for c in data.classes], config.name)


@SOURCES.register("mnist")
def load_mnist(arg, config, split: str) -> ImageSet:
    return _load_mnist_like(config, split, "MNIST")


@SOURCES.register("fashion-mnist")
def load_fashion_mnist(arg, config, split: str) -> ImageSet:
    return _load_mnist_like(config, split, "FashionMNIST")


def _cifar_class():
    from torchvision.datasets import CIFAR10

    class PresentCIFAR10(CIFAR10):
        """CIFAR10 that accepts files present on disk without comparing their MD5 sums
        (downloads are still checked against the archive's MD5 by torchvision)."""

        train_list = [(name, None) for name, _ in CIFAR10.train_list]
        test_list = [(name, None) for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": None}

        def download(self):
            if not self._check_integrity():
                from torchvision.datasets.utils import download_and_extract_archive
                download_and_extract_archive(self.url, self.root, filename=self.filename,
                                             md5=self.tgz_md5)

    return PresentCIFAR10


@SOURCES.register("cifar10")
def load_cifar10(arg, config, split: str) -> ImageSet:
    cls = _cifar_class()
    root = _root(config)
    data = _open(cls, config, split, root / cls.base_folder, CIFAR_FILES, CIFAR_FILES,
                 f" (the python version of CIFAR-10, unpacked from {cls.filename})")
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(data.targets, dtype=torch.long), list(data.classes), config.name)


load_mnist.native_resolution = load_fashion_mnist.native_resolution = 28
load_cifar10.native_resolution = 32
