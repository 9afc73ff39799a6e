"""Tests for the data layer: every source reads its real on-disk format, built here in tmp_path.

Nothing is downloaded: every torchvision-backed config sets download=False.
"""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data import ImageSet, conform, load_dataset, parse_name, to_float, to_uint8
from ganforge.errors import ConfigError, DataError

MNIST_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]


def load(name, split="train", **kwargs):
    kwargs.setdefault("download", False)
    return load_dataset(DataConfig(name=name, **kwargs), split=split)


# --------------------------------------------------------------------------- digits

@pytest.fixture(scope="module")
def digits():
    # resolution 8 = sklearn's own size, so no resizing: raw values.
    return {split: load("digits", split, resolution=8, channels=1) for split in ("train", "test")}


def test_digits_splits_disjoint_and_complete(digits):
    from sklearn.datasets import load_digits as sklearn_digits

    train, test = digits["train"], digits["test"]
    assert len(train) + len(test) == 1797
    # Disjoint: no image (with its label) of the test split is in the train split.
    raw = sklearn_digits()
    raw_images = torch.from_numpy(raw.images).mul(255.0 / 16.0).round().to(torch.uint8)
    keys = {(bytes(img.numpy().tobytes()), int(lab)) for img, lab in zip(raw_images, raw.target)}

    def rows(data):
        return [(bytes(img[0].numpy().tobytes()), int(lab)) for img, lab in zip(data.images, data.labels)]

    train_rows, test_rows = rows(train), rows(test)
    assert set(train_rows) <= keys and set(test_rows) <= keys
    # sklearn holds some exact duplicates, so compare counts as multisets against the whole.
    from collections import Counter
    assert Counter(train_rows) + Counter(test_rows) == Counter(
        (bytes(img.numpy().tobytes()), int(lab)) for img, lab in zip(raw_images, raw.target))
    # The split is fixed: loading again gives the same images.
    again = load("digits", "test", resolution=8, channels=1)
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)


def test_digits_split_sizes(digits):
    assert len(digits["train"]) == 1437
    assert len(digits["test"]) == 360


def test_digits_labels_values_and_metadata(digits):
    for data in digits.values():
        assert data.images.dtype == torch.uint8
        assert data.images.shape[1:] == (1, 8, 8)
        assert data.labels.dtype == torch.int64
        assert sorted(data.labels.unique().tolist()) == list(range(10))
        assert data.class_names == [str(d) for d in range(10)]
        assert data.num_classes == 10
        assert data.source == "digits"
    train = digits["train"].images
    assert train.min().item() == 0 and train.max().item() == 255
    # 17 ink levels 0..16 scaled to bytes.
    assert set(train.unique().tolist()) <= {round(v * 255 / 16) for v in range(17)}


@pytest.mark.parametrize("resolution,channels", [(16, 1), (28, 1), (32, 1), (64, 3)])
def test_digits_resized(resolution, channels):
    data = load("digits", "train", resolution=resolution, channels=channels)
    assert data.images.shape[1:] == (channels, resolution, resolution)
    assert data.images.dtype == torch.uint8
    assert len(data.labels) == len(data.images)
    assert data.images.max().item() > 200 and data.images.min().item() == 0
    if channels == 3:
        assert torch.equal(data.images[:, 0], data.images[:, 1])
        assert torch.equal(data.images[:, 0], data.images[:, 2])


def test_split_must_be_train_or_test():
    with pytest.raises(ValueError, match="split"):
        load("digits", "valid")


# --------------------------------------------------------------------------- MNIST (IDX)

def idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def mnist_arrays(seed=0):
    rng = np.random.default_rng(seed)
    train_x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    train_x[0] = 0
    train_x[0, 3, 20] = 255  # one bright pixel at row 3, column 20
    train_y = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    test_x = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    test_y = np.array([9, 2, 6], dtype=np.uint8)
    return train_x, train_y, test_x, test_y


def write_mnist(folder: Path, arrays, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y, test_x, test_y = arrays
    blobs = [idx_images(train_x), idx_labels(train_y), idx_images(test_x), idx_labels(test_y)]
    for name, blob in zip(MNIST_NAMES, blobs):
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(blob)
        else:
            (folder / name).write_bytes(blob)


def check_mnist(name, root, arrays):
    train_x, train_y, test_x, test_y = arrays
    train = load(name, "train", data_dir=str(root), resolution=28, channels=1)
    assert train.images.shape == (5, 1, 28, 28) and train.images.dtype == torch.uint8
    assert torch.equal(train.images[:, 0], torch.from_numpy(train_x))
    assert train.images[0, 0, 3, 20].item() == 255 and train.images[0].sum().item() == 255
    assert train.labels.dtype == torch.int64
    assert train.labels.tolist() == train_y.tolist()
    assert train.num_classes == 10
    test = load(name, "test", data_dir=str(root), resolution=28, channels=1)
    assert torch.equal(test.images[:, 0], torch.from_numpy(test_x))
    assert test.labels.tolist() == test_y.tolist()
    return train, test


def test_mnist_torchvision_layout(tmp_path):
    arrays = mnist_arrays()
    write_mnist(tmp_path / "MNIST" / "raw", arrays)
    train, _ = check_mnist("mnist", tmp_path, arrays)
    assert train.class_names[0] == "zero" and train.class_names[9] == "nine"
    assert train.source == "mnist"


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "unpacked"])
def test_mnist_flat_layout(tmp_path, gz):
    arrays = mnist_arrays(1)
    write_mnist(tmp_path, arrays, gz=gz)
    check_mnist("mnist", tmp_path, arrays)


def test_mnist_channels_and_resize(tmp_path):
    arrays = mnist_arrays(2)
    arrays[0][1] = 100  # a flat image stays flat when resized
    write_mnist(tmp_path / "MNIST" / "raw", arrays)
    data = load("mnist", "train", data_dir=str(tmp_path), resolution=14, channels=3)
    assert data.images.shape == (5, 3, 14, 14)
    assert (data.images[1] == 100).all()
    assert torch.equal(data.images[:, 0], data.images[:, 1]) and torch.equal(data.images[:, 0], data.images[:, 2])


def test_fashion_mnist(tmp_path):
    arrays = mnist_arrays(3)
    write_mnist(tmp_path / "FashionMNIST" / "raw", arrays)
    train, _ = check_mnist("fashion-mnist", tmp_path, arrays)
    assert train.class_names[0] == "T-shirt/top" and train.class_names[9] == "Ankle boot"
    # mnist does not pick up fashion-mnist's files.
    with pytest.raises(DataError):
        load("mnist", "train", data_dir=str(tmp_path), resolution=28)


def test_mnist_missing_files(tmp_path):
    with pytest.raises(DataError) as info:
        load("mnist", "train", data_dir=str(tmp_path), resolution=28)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    for name in MNIST_NAMES:
        assert name in message
    assert "download" in message


def test_mnist_partly_missing(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", mnist_arrays())
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load("mnist", "train", data_dir=str(tmp_path), resolution=28)


def test_mnist_corrupt_file(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", mnist_arrays(), gz=False)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\0\0\0\0not an idx file")
    with pytest.raises(DataError, match="cannot be read"):
        load("mnist", "train", data_dir=str(tmp_path), resolution=28)


# --------------------------------------------------------------------------- CIFAR-10 (pickles)

def cifar_arrays(seed=0):
    """HWC uint8 images: 5 train batches of 2, a test batch of 3."""
    rng = np.random.default_rng(seed)
    batches = [rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8) for _ in range(5)]
    # First training image: a distinct pattern per channel (R varies along x, G along y, B flat).
    ys, xs = np.indices((32, 32))
    batches[0][0] = np.stack([xs * 8, ys * 8, np.full((32, 32), 200)], axis=-1).astype(np.uint8)
    batches[0][1] = np.array([255, 0, 0], dtype=np.uint8)  # pure red
    batch_labels = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    test = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    test[0] = np.array([0, 255, 0], dtype=np.uint8)  # pure green
    test[1] = np.array([0, 0, 255], dtype=np.uint8)  # pure blue
    return batches, batch_labels, test, [9, 0, 5]


def write_cifar(root: Path, arrays) -> Path:
    batches, batch_labels, test, test_labels = arrays
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def dump(name, images, labels):
        entry = {"batch_label": name, "labels": list(labels),
                 "data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072),
                 "filenames": [f"{name}_{i}.png" for i in range(len(images))]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)

    for index, (images, labels) in enumerate(zip(batches, batch_labels), start=1):
        dump(f"data_batch_{index}", images, labels)
    dump("test_batch", test, test_labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_cases_per_batch": 2, "num_vis": 3072}, f, protocol=2)
    return folder


def test_cifar10_pixels_labels_classes(tmp_path):
    arrays = cifar_arrays()
    batches, batch_labels, test, test_labels = arrays
    write_cifar(tmp_path, arrays)
    train = load("cifar10", "train", data_dir=str(tmp_path), resolution=32, channels=3)
    assert train.images.shape == (10, 3, 32, 32) and train.images.dtype == torch.uint8
    expected = torch.from_numpy(np.concatenate(batches)).permute(0, 3, 1, 2)
    assert torch.equal(train.images, expected)
    first = train.images[0]
    xs = torch.arange(32) * 8
    assert torch.equal(first[0], xs.expand(32, 32).to(torch.uint8))       # R varies along x
    assert torch.equal(first[1], xs[:, None].expand(32, 32).to(torch.uint8))  # G varies along y
    assert (first[2] == 200).all()
    assert train.images[1, :, 5, 7].tolist() == [255, 0, 0]
    assert train.labels.dtype == torch.int64
    assert train.labels.tolist() == sum(batch_labels, [])
    assert train.class_names == CIFAR_CLASSES and train.num_classes == 10

    test_set = load("cifar10", "test", data_dir=str(tmp_path), resolution=32, channels=3)
    assert torch.equal(test_set.images, torch.from_numpy(test).permute(0, 3, 1, 2))
    assert test_set.labels.tolist() == test_labels


def test_cifar10_to_gray(tmp_path):
    write_cifar(tmp_path, cifar_arrays())
    train = load("cifar10", "train", data_dir=str(tmp_path), resolution=32, channels=1)
    assert train.images.shape == (10, 1, 32, 32)
    assert (train.images[1] == 76).all()  # red: 0.299 * 255
    test = load("cifar10", "test", data_dir=str(tmp_path), resolution=16, channels=1)
    assert test.images.shape == (3, 1, 16, 16)
    assert (test.images[0] == 150).all()  # green: 0.587 * 255
    assert (test.images[1] == 29).all()   # blue: 0.114 * 255


def test_cifar10_missing_file(tmp_path):
    folder = write_cifar(tmp_path, cifar_arrays())
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError) as info:
        load("cifar10", "test", data_dir=str(tmp_path), resolution=32)
    assert "data_batch_3" in str(info.value)
    assert str(folder) in str(info.value)


def test_cifar10_missing_everything(tmp_path):
    with pytest.raises(DataError, match="batches.meta"):
        load("cifar10", "train", data_dir=str(tmp_path), resolution=32)


def test_cifar10_corrupt_batch(tmp_path):
    folder = write_cifar(tmp_path, cifar_arrays())
    (folder / "data_batch_2").write_bytes(b"garbage, not a pickle")
    with pytest.raises(DataError, match="cannot be read"):
        load("cifar10", "train", data_dir=str(tmp_path), resolution=32)


# --------------------------------------------------------------------------- folder

def png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def image_tree(tmp_path):
    """A class tree of 8x8 images in many formats and modes, plus two bad files."""
    root = tmp_path / "images"
    # created out of order on purpose: labels follow the sorted names
    gray, color, deep = root / "c_gray", root / "a_color", root / "b_deep"
    for folder in (gray, color, deep):
        folder.mkdir(parents=True)
    size = (8, 8)

    Image.new("L", size, 50).save(gray / "l.png")
    Image.new("L", size, 90).save(gray / "l.bmp")
    (gray / "notes.txt").write_text("not an image")
    (gray / ".hidden.png").write_bytes(b"ignored")

    Image.new("RGB", size, (200, 40, 90)).save(color / "rgb.jpg", quality=95)
    Image.new("RGB", size, (10, 120, 240)).save(color / "rgb.webp", lossless=True)
    rgba = Image.new("RGBA", size, (200, 100, 50, 255))
    rgba.putpixel((0, 0), (10, 20, 30, 0))       # fully transparent -> white
    rgba.putpixel((1, 0), (0, 0, 0, 128))        # half transparent black over white -> 127
    rgba.save(color / "rgba.png")
    palette = Image.new("P", size, 1)
    palette.putpalette([10, 20, 30, 60, 160, 220] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.save(color / "pal.png")
    palette_t = palette.copy()
    palette_t.save(color / "pal_t.png", transparency=0)  # index 0 transparent -> white
    Image.new("CMYK", size, (0, 255, 255, 0)).save(color / "cmyk.jpg", quality=95)  # red

    deep16 = np.zeros((8, 8), dtype=np.uint16)
    deep16[:, :4] = 65535
    deep16[:, 4:] = 32768
    deep16[0, 0] = 0
    deep16[7, 7] = 65280  # 255 * 256: exactly 254 when scaled by 255 / 65535
    Image.fromarray(deep16).save(deep / "i16.png")
    assert Image.open(deep / "i16.png").mode == "I;16"

    # bad files: a truncated PNG and random bytes with a .png name
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = png_bytes(Image.fromarray(noise))
    (color / "truncated.png").write_bytes(full[: len(full) // 2])
    (deep / "garbage.png").write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)))
    return root


def by_name(root: Path, data: ImageSet) -> dict[str, tuple[torch.Tensor, int]]:
    """Map file names to (image, label), relying on the documented sorted order."""
    from ganforge.data.folder import list_images

    files, _, _ = list_images(root)
    good = [f for f in files if f.name not in ("truncated.png", "garbage.png")]
    assert len(good) == len(data)
    return {f.name: (data.images[i], int(data.labels[i])) for i, f in enumerate(good)}


def test_folder_modes_rgb(image_tree, capsys):
    data = load(f"folder:{image_tree}", resolution=8, channels=3)
    assert data.images.shape == (9, 3, 8, 8) and data.images.dtype == torch.uint8
    assert data.class_names == ["a_color", "b_deep", "c_gray"] and data.num_classes == 3
    assert data.labels.dtype == torch.int64
    assert data.labels.tolist() == [0] * 6 + [1] + [2] * 2
    images = by_name(image_tree, data)
    assert set(images) == {"l.png", "l.bmp", "rgb.jpg", "rgb.webp", "rgba.png", "pal.png",
                           "pal_t.png", "cmyk.jpg", "i16.png"}

    def pixel(name, y=4, x=4):
        return images[name][0][:, y, x].tolist()

    assert images["l.png"][1] == 2 and (images["l.png"][0] == 50).all()
    assert (images["l.bmp"][0] == 90).all()
    assert all(abs(a - b) <= 6 for a, b in zip(pixel("rgb.jpg"), [200, 40, 90]))
    assert pixel("rgb.webp") == [10, 120, 240]
    assert pixel("rgba.png") == [200, 100, 50]
    assert pixel("rgba.png", 0, 0) == [255, 255, 255]
    assert all(abs(v - 127) <= 1 for v in pixel("rgba.png", 0, 1))
    assert pixel("pal.png") == [60, 160, 220] and pixel("pal.png", 0, 0) == [10, 20, 30]
    assert pixel("pal_t.png") == [60, 160, 220] and pixel("pal_t.png", 0, 0) == [255, 255, 255]
    assert all(abs(a - b) <= 6 for a, b in zip(pixel("cmyk.jpg"), [255, 0, 0]))
    assert images["i16.png"][1] == 1
    assert pixel("i16.png", 4, 1) == [255] * 3 and pixel("i16.png", 4, 6) == [128] * 3
    assert pixel("i16.png", 0, 0) == [0] * 3 and pixel("i16.png", 7, 7) == [254] * 3

    err = capsys.readouterr().err
    assert "skipped 2 unreadable image file(s)" in err
    assert "truncated.png" in err and "garbage.png" in err
    assert str(image_tree) in err


def test_folder_modes_gray(image_tree, capsys):
    data = load(f"folder:{image_tree}", resolution=8, channels=1)
    assert data.images.shape == (9, 1, 8, 8)
    images = by_name(image_tree, data)
    deep = images["i16.png"][0][0]
    assert (deep[:, :4][1:] == 255).all() and deep[0, 0] == 0
    assert (deep[:7, 4:] == 128).all() and deep[7, 7] == 254
    assert (images["l.png"][0] == 50).all()
    assert abs(int(images["rgb.webp"][0][0, 4, 4]) - round(0.299 * 10 + 0.587 * 120 + 0.114 * 240)) <= 1
    assert int(images["rgba.png"][0][0, 0, 0]) == 255
    assert abs(int(images["cmyk.jpg"][0][0, 4, 4]) - 76) <= 4
    assert "skipped 2" in capsys.readouterr().err


def test_folder_resized_and_cropped(tmp_path):
    root = tmp_path / "wide"
    root.mkdir()
    wide = np.tile(np.arange(16, dtype=np.uint8) * 10, (8, 1))  # 8 x 16, every column distinct
    Image.fromarray(wide).save(root / "wide.png")
    tall = np.zeros((32, 16, 3), dtype=np.uint8)
    tall[8:24] = (10, 220, 30)  # the centre square; the black top and bottom are cut off
    Image.fromarray(tall).save(root / "tall.png")
    data = load(f"folder:{root}", resolution=8, channels=3)
    assert data.images.shape == (2, 3, 8, 8)
    assert data.labels is None and data.class_names == [] and data.num_classes == 0
    # sorted: tall.png, wide.png. The wide one keeps exactly its centre columns 4..11.
    assert torch.equal(data.images[1, 0], torch.from_numpy(wide[:, 4:12]))
    assert torch.equal(data.images[1, 0], data.images[1, 2])
    # The tall one is cropped to its coloured centre, then halved.
    inner = data.images[0, :, 2:6, :].reshape(3, -1)
    assert (inner == torch.tensor([10, 220, 30], dtype=torch.uint8)[:, None]).all()
    means = data.images[0].reshape(3, -1).float().mean(1)
    assert all(abs(m - v) < 10 for m, v in zip(means.tolist(), [10, 220, 30]))


def test_folder_many_bad_files_counted(tmp_path, capsys):
    root = tmp_path / "many"
    root.mkdir()
    Image.new("L", (4, 4), 7).save(root / "good.png")
    for i in range(12):
        (root / f"bad{i:02d}.png").write_bytes(b"nope")
    data = load(f"folder:{root}", resolution=4, channels=1)
    assert len(data) == 1 and (data.images == 7).all()
    err = capsys.readouterr().err
    assert "skipped 12" in err and "and 2 more" in err
    assert "bad00.png" in err and "bad11.png" not in err


def test_folder_empty(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match="holds no images"):
        load(f"folder:{tmp_path / 'empty'}", resolution=8)


def test_folder_missing(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as info:
        load(f"folder:{missing}", resolution=8)
    assert str(missing) in str(info.value)


def test_folder_only_corrupt(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "a.png").write_bytes(b"junk")
    (root / "b.jpg").write_bytes(b"\xff\xd8\xff junk")
    with pytest.raises(DataError, match="none of its 2 image files"):
        load(f"folder:{root}", resolution=8)


def test_folder_has_no_test_split(image_tree):
    with pytest.raises(DataError, match="no 'test' split"):
        load(f"folder:{image_tree}", "test", resolution=8)


# --------------------------------------------------------------------------- npz

def save_npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_npz_gray_without_labels(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (4, 6, 6), dtype=np.uint8)
    data = load(save_npz(tmp_path / "g.npz", x=x), resolution=6, channels=1)
    assert data.images.shape == (4, 1, 6, 6)
    assert torch.equal(data.images[:, 0], torch.from_numpy(x))
    assert data.labels is None and data.num_classes == 0


def test_npz_rgb_with_labels(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (3, 6, 6, 3), dtype=np.uint8)
    x[0] = (255, 0, 0)
    y = np.array([2, 0, 4], dtype=np.uint8)
    name = save_npz(tmp_path / "c.npz", x=x, y=y)
    data = load(name, resolution=6, channels=3)
    assert torch.equal(data.images, torch.from_numpy(x).permute(0, 3, 1, 2))
    assert data.labels.dtype == torch.int64 and data.labels.tolist() == [2, 0, 4]
    assert data.class_names == ["0", "1", "2", "3", "4"] and data.num_classes == 5
    gray = load(name, resolution=12, channels=1)
    assert gray.images.shape == (3, 1, 12, 12)
    assert (gray.images[0] == 76).all()


def test_npz_single_channel_axis(tmp_path):
    x = np.full((2, 4, 4, 1), 33, dtype=np.uint8)
    # resolution 8, not 4: gray -> RGB without a resize hits the conform() bug tested below
    data = load(save_npz(tmp_path / "one.npz", x=x, y=np.array([0, 1])), resolution=8, channels=3)
    assert data.images.shape == (2, 3, 8, 8) and (data.images == 33).all()
    assert data.labels.tolist() == [0, 1] and data.class_names == ["0", "1"]


def test_npz_missing_x_lists_keys(tmp_path):
    name = save_npz(tmp_path / "k.npz", images=np.zeros((2, 4, 4), np.uint8), targets=np.zeros(2, np.int64))
    with pytest.raises(DataError, match="'x'") as info:
        load(name, resolution=4)
    assert "images" in str(info.value) and "targets" in str(info.value)


@pytest.mark.parametrize("arrays,match", [
    ({"x": np.zeros((2, 4, 4), np.float32)}, "uint8"),
    ({"x": np.zeros((4, 4), np.uint8)}, "shape"),
    ({"x": np.zeros((2, 4, 4, 4), np.uint8)}, "shape"),
    ({"x": np.zeros((2, 1, 4, 4, 1), np.uint8)}, "shape"),
    ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.array([0, 1])}, "3 integer labels"),
    ({"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([[0], [1]])}, "integer labels"),
    ({"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([0.0, 1.0])}, "integer labels"),
    ({"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([1, -1])}, "negative label"),
], ids=["float", "2d", "4-channels", "5d", "y-length", "y-2d", "y-float", "y-negative"])
def test_npz_bad_contents(tmp_path, arrays, match):
    with pytest.raises(DataError, match=match):
        load(save_npz(tmp_path / "bad.npz", **arrays), resolution=4)


def test_npz_empty(tmp_path):
    with pytest.raises(DataError, match="holds no images"):
        load(save_npz(tmp_path / "e.npz", x=np.zeros((0, 4, 4), np.uint8)), resolution=4)


@pytest.mark.parametrize("content", [b"this is not a zip archive at all",
                                     b"PK\x03\x04 truncated zip"], ids=["text", "broken-zip"])
def test_npz_not_an_npz(tmp_path, content):
    path = tmp_path / "fake.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="cannot be read") as info:
        load(f"npz:{path}", resolution=4)
    assert str(path) in str(info.value)


def test_npz_given_an_npy_file(tmp_path):
    path = tmp_path / "plain.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError):
        load(f"npz:{path}", resolution=4)


def test_npz_missing_file_and_test_split(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load(f"npz:{tmp_path / 'absent.npz'}", resolution=4)
    name = save_npz(tmp_path / "ok.npz", x=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match="no 'test' split"):
        load(name, "test", resolution=4)


# --------------------------------------------------------------------------- names

def test_parse_name():
    assert parse_name("mnist") == ("mnist", None)
    assert parse_name("folder:/data/cats") == ("folder", "/data/cats")
    assert parse_name("npz:rel/a.npz") == ("npz", "rel/a.npz")
    assert parse_name("folder:C:/x:y") == ("folder", "C:/x:y")  # only the first colon splits


@pytest.mark.parametrize("name", ["folder:", "npz:"])
def test_parse_name_needs_path(name):
    with pytest.raises(DataError, match="needs a path after the colon"):
        parse_name(name)


def test_unknown_data_set_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        load("minst", resolution=8)
    message = str(info.value)
    assert "'minst'" in message and "did you mean 'mnist'" in message
    for name in ("cifar10", "digits", "fashion-mnist", "folder", "mnist", "npz"):
        assert name in message


# --------------------------------------------------------------------------- conform & ImageSet

def test_conform_gray_to_rgb_repeats_when_resized():
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    out = conform(x, 16, 3)
    assert out.shape == (3, 3, 16, 16) and out.dtype == torch.uint8
    assert torch.equal(out[:, 0], conform(x, 16, 1)[:, 0])
    for c in (1, 2):
        assert torch.equal(out[:, c], out[:, 0])


def test_conform_gray_to_rgb_repeats_same_size():
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    out = conform(x, 8, 3)
    assert out.shape == (3, 3, 8, 8) and out.dtype == torch.uint8
    for c in range(3):
        assert torch.equal(out[:, c], x[:, 0])


def test_conform_rgb_to_gray_luma():
    x = torch.zeros(4, 3, 4, 4, dtype=torch.uint8)
    x[0, 0] = 255                      # red
    x[1, 1] = 255                      # green
    x[2, 2] = 255                      # blue
    x[3] = 255                         # white
    out = conform(x, 4, 1)
    assert out.shape == (4, 1, 4, 4)
    assert [int(out[i, 0, 0, 0]) for i in range(4)] == [76, 150, 29, 255]
    assert all((out[i] == out[i, 0, 0, 0]).all() for i in range(4))


def test_conform_same_shape_is_identity():
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(conform(x, 8, 3), x)


def test_conform_downscale_antialiased():
    board = torch.from_numpy((np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8))[None, None]
    out = conform(board, 32, 1)
    assert out.shape == (1, 1, 32, 32)
    assert abs(out.float().mean().item() - 127.5) < 2 and out.min() >= 120 and out.max() <= 135
    # A factor of 3 with plain bilinear would pick single pixels (0 or 255).
    board96 = torch.from_numpy((np.indices((96, 96)).sum(0) % 2 * 255).astype(np.uint8))[None, None]
    out = conform(board96, 32, 1)
    assert out.min() >= 110 and out.max() <= 145
    # Thin lines every 4th row survive as gray instead of vanishing.
    lines = torch.zeros(1, 1, 64, 64, dtype=torch.uint8)
    lines[..., ::4, :] = 255
    out = conform(lines, 16, 1)
    assert out.min() >= 30 and abs(out.float().mean().item() - 255 / 4) < 10


def test_conform_upscale_and_crop():
    x = torch.zeros(1, 1, 4, 8, dtype=torch.uint8)
    x[..., 2:6] = 90  # the centre 4x4 square
    out = conform(x, 4, 1)
    assert out.shape == (1, 1, 4, 4) and (out == 90).all()
    up = conform(torch.full((2, 1, 4, 4), 200, dtype=torch.uint8), 16, 3)
    assert up.shape == (2, 3, 16, 16) and (up == 200).all()


def test_conform_chunks_and_empty():
    x = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(conform(x, 8, 1, chunk=2), conform(x, 8, 1))
    empty = conform(torch.zeros(0, 3, 16, 16, dtype=torch.uint8), 8, 1)
    assert empty.shape == (0, 1, 8, 8) and empty.dtype == torch.uint8


def test_float_round_trip():
    x = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    f = to_float(x)
    assert f.min().item() == -1.0 and f.max().item() == 1.0
    assert torch.equal(to_uint8(f), x)
    assert to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]


def test_imageset_checks():
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="labels"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long))
    data = ImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"])
    assert (len(data), data.channels, data.resolution, data.num_classes) == (2, 3, 4, 2)
    assert data.nbytes() == 2 * 3 * 4 * 4 + 2 * 8
