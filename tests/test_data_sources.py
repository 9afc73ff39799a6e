"""Tests for the image-to-image data sources: patches, photos, paired, mosaic, masks, and the
ImageSet fields they fill. Every file is written here in its real format (PNG, JPEG, 16-bit,
RGBA, palette); the photos test reads the real photos bundled with scikit-image/learn.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data import ImageSet, SOURCES, load_dataset
from ganforge.data.imageset import conform_regions, convert_channels
from ganforge.data.masks import load_mask
from ganforge.data.mosaic import mosaic_order, tile_regions
from ganforge.data.patches import PatchSet
from ganforge.errors import ConfigError, DataError


def load(name, split="train", **kwargs):
    kwargs.setdefault("download", False)
    return load_dataset(DataConfig(name=name, **kwargs), split=split)


def save(path, array, **kwargs):
    """Write `array` in the format of the file name (2 channels = LA, 4 = RGBA, uint16 = 16-bit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


# --------------------------------------------------------------------------- ImageSet fields

def scene_set(n=5):
    images = torch.arange(n * 3 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, 3, 4, 4)
    sources = images.flip(-1).contiguous()[:, :1]
    regions = torch.arange(n, dtype=torch.int16).view(n, 1, 1).expand(n, 4, 4).contiguous()
    region_labels = torch.arange(n * 2).view(n, 2)
    return ImageSet(images, torch.arange(n), ["a"] * n, "x", sources=sources, regions=regions,
                    region_labels=region_labels)


def test_imageset_subset_to_nbytes_carry_new_fields():
    data = scene_set()
    part = data.subset(torch.tensor([3, 1]))
    assert torch.equal(part.images, data.images[[3, 1]])
    assert torch.equal(part.sources, data.sources[[3, 1]])
    assert part.regions[:, 0, 0].tolist() == [3, 1] and part.regions.dtype == torch.int16
    assert part.region_labels.tolist() == [[6, 7], [2, 3]]
    moved = data.to("meta")
    assert all(t.device.type == "meta" for t in
               (moved.images, moved.labels, moved.sources, moved.regions, moved.region_labels))
    # 5*48 image bytes + 5 longs + 5*16 source bytes + 5*16 int16 + 10 longs.
    assert data.nbytes() == 240 + 40 + 80 + 160 + 80
    assert ImageSet(data.images).nbytes() == 240


@pytest.mark.parametrize("field, value", [
    ("sources", torch.zeros(4, 1, 4, 4, dtype=torch.uint8)),          # wrong N
    ("sources", torch.zeros(5, 1, 4, 4)),                             # not uint8
    ("regions", torch.zeros(5, 4, 3, dtype=torch.int16)),             # not the images' size
    ("regions", torch.zeros(5, 4, 4, dtype=torch.float32)),           # not integer
    ("region_labels", torch.zeros(5, 2, dtype=torch.int32)),          # not long
    ("region_labels", torch.zeros(4, 2, dtype=torch.long)),           # wrong N
])
def test_imageset_checks_new_fields(field, value):
    data = scene_set()
    fields = {"sources": data.sources, "regions": data.regions, "region_labels": data.region_labels}
    fields[field] = value
    with pytest.raises(ValueError):
        ImageSet(data.images, **fields)


def test_load_dataset_conforms_sources_and_regions(monkeypatch):
    images = torch.full((2, 3, 8, 12), 90, dtype=torch.uint8)
    sources = torch.full((2, 3, 6, 6), 30, dtype=torch.uint8)
    regions = (torch.arange(12) // 2).to(torch.int16).expand(2, 8, 12).contiguous()
    made = ImageSet(images, sources=sources, regions=regions, region_labels=torch.zeros(2, 6, dtype=torch.long))
    monkeypatch.setitem(SOURCES._items, "fake-scene", lambda arg, config, split: made)
    data = load("fake-scene", resolution=4, channels=1)
    assert data.images.shape == (2, 1, 4, 4) and (data.images == 90).all()
    assert data.sources.shape == (2, 1, 4, 4) and (data.sources == 30).all()
    # Centre square = columns 2..9 (ids 1 1 2 2 3 3 4 4); nearest at pixel centres keeps 1 2 3 4.
    assert data.regions.dtype == torch.int16
    assert data.regions[0, 0].tolist() == [1, 2, 3, 4] and torch.equal(data.regions[0], data.regions[1])
    assert data.region_labels.shape == (2, 6)


def test_conform_regions_upscale_and_convert_channels():
    regions = torch.tensor([[[0, 1], [2, -1]]], dtype=torch.int16)
    assert conform_regions(regions, 4)[0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1],
                                                       [2, 2, -1, -1], [2, 2, -1, -1]]
    rgb = torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1).expand(3, 2, 5)
    gray = convert_channels(rgb, 1)
    assert gray.shape == (1, 2, 5) and (gray == 76).all()  # round(0.299 * 255)
    assert convert_channels(gray, 3).shape == (3, 2, 5) and (convert_channels(gray, 3) == 76).all()


# --------------------------------------------------------------------------- PatchSet

def coordinate_image(height, width, ident=0):
    """Channel 0 = row, 1 = column, 2 = an id: every crop tells where it was cut."""
    rows = torch.arange(height).view(height, 1).expand(height, width)
    cols = torch.arange(width).view(1, width).expand(height, width)
    return torch.stack([rows, cols, torch.full_like(rows, ident)]).to(torch.uint8)


def test_patch_sample_shapes_bounds_and_uniform_positions():
    image = coordinate_image(20, 30)
    data = PatchSet([image], ["a"], resolution=8)
    crops = data.sample(3000, generator=torch.Generator().manual_seed(0))
    assert crops.shape == (3000, 3, 8, 8) and crops.dtype == torch.uint8
    tops, lefts = crops[:, 0, 0, 0].long(), crops[:, 1, 0, 0].long()
    assert tops.min() == 0 and tops.max() == 12 and lefts.min() == 0 and lefts.max() == 22
    for crop, top, left in zip(crops[:50], tops[:50], lefts[:50]):
        assert torch.equal(crop, image[:, top:top + 8, left:left + 8])
    # Every position is equally likely: 13 rows, 3000 draws, about 231 each.
    counts = torch.bincount(tops, minlength=13).float()
    assert counts.min() > 160 and counts.max() < 300
    assert data.sample(2, size=20, generator=torch.Generator().manual_seed(0)).shape == (2, 3, 20, 20)
    assert data.sample(0).shape == (0, 3, 8, 8)


def test_patch_sample_deterministic_from_generator():
    data = PatchSet([coordinate_image(20, 30, 0), coordinate_image(25, 17, 1)], ["a", "b"], resolution=6)
    first = data.sample(16, generator=torch.Generator().manual_seed(5))
    again = data.sample(16, generator=torch.Generator().manual_seed(5))
    other = data.sample(16, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other)
    # On another device the same generator gives the same crops.
    meta = data.to("meta").sample(16, generator=torch.Generator().manual_seed(5))
    assert meta.device.type == "meta" and meta.shape == first.shape


def test_patch_sample_weights_by_area_and_skips_too_small():
    data = PatchSet([coordinate_image(10, 10, 0), coordinate_image(30, 30, 1), coordinate_image(4, 40, 2)],
                    ["small", "big", "thin"], resolution=5)
    ids = data.sample(4000, generator=torch.Generator().manual_seed(1))[:, 2, 0, 0]
    assert (ids != 2).all()  # 4 rows: never a 5x5 crop
    share = (ids == 1).float().mean().item()  # 900 / (100 + 900)
    assert abs(share - 0.9) < 0.03
    with pytest.raises(DataError, match="41x41"):
        data.sample(1, size=41)


def test_patchset_mirrors_imageset():
    data = PatchSet([coordinate_image(10, 12), coordinate_image(7, 9)], ["a", "b"], "src", 4)
    assert len(data) == 2 and data.channels == 3 and data.labels is None
    assert data.num_classes == 0 and data.class_names == [] and data.source == "src"
    assert data.nbytes() == 3 * 10 * 12 + 3 * 7 * 9
    assert data.sizes == [(10, 12), (7, 9)]
    assert [tuple(i.shape) for i in data.full_images()] == [(3, 10, 12), (3, 7, 9)]
    assert data.subset(torch.tensor([1])).names == ["b"]
    with pytest.raises(ValueError):
        PatchSet([torch.zeros(3, 5, 5, dtype=torch.uint8), torch.zeros(1, 5, 5, dtype=torch.uint8)], ["a", "b"])


# --------------------------------------------------------------------------- patches:FOLDER

@pytest.fixture
def photo_folder(tmp_path):
    """Odd sizes in every format the reader must handle, plus one image too small to crop."""
    root = tmp_path / "shots"
    rng = np.random.default_rng(0)
    save(root / "rgb.png", rng.integers(0, 256, (23, 37, 3), dtype=np.uint8))
    save(root / "deep" / "gray16.png", np.full((29, 41), 257 * 40, dtype=np.uint16))
    rgba = np.zeros((35, 33, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 100, 0  # fully transparent: white once laid over white
    save(root / "clear.png", rgba)
    save(root / "photo.jpg", np.full((31, 50, 3), 128, dtype=np.uint8), quality=95)
    save(root / "tiny.png", np.zeros((10, 10, 3), dtype=np.uint8))
    (root / "notes.txt").write_text("not an image")
    return root


def test_patches_reads_every_format_whole(photo_folder, capsys):
    data = load(f"patches:{photo_folder}", resolution=20, channels=3)
    assert isinstance(data, PatchSet) and data.resolution == 20 and data.source == f"patches:{photo_folder}"
    sizes = dict(zip(data.names, data.sizes))
    assert sizes == {"clear.png": (35, 33), "deep/gray16.png": (29, 41), "photo.jpg": (31, 50),
                     "rgb.png": (23, 37)}
    images = dict(zip(data.names, data.images))
    assert all(image.shape[0] == 3 for image in images.values())
    assert (images["deep/gray16.png"] == 40).all()  # 16 bits scaled to 8
    assert (images["clear.png"] == 255).all()  # transparency laid over white
    assert (images["photo.jpg"].float() - 128).abs().max() <= 2
    warning = capsys.readouterr().err
    assert "tiny.png (10x10)" in warning and "20x20" in warning
    gray = load(f"patches:{photo_folder}", resolution=20, channels=1)
    assert gray.channels == 1 and dict(zip(gray.names, gray.sizes)) == sizes
    assert gray.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 20, 20)
    with pytest.raises(DataError, match="has no test split"):
        load(f"patches:{photo_folder}", "test", resolution=20)


def test_patches_train_test_folders_and_errors(tmp_path):
    root = tmp_path / "set"
    save(root / "train" / "a.png", np.zeros((12, 14), dtype=np.uint8))
    save(root / "train" / "b.png", np.zeros((16, 13), dtype=np.uint8))
    save(root / "test" / "c.png", np.zeros((9, 30), dtype=np.uint8))
    assert load(f"patches:{root}", resolution=8).names == ["a.png", "b.png"]
    assert load(f"patches:{root}", "test", resolution=8).names == ["c.png"]
    with pytest.raises(DataError, match="crop size 10x10"):
        load(f"patches:{root}", "test", resolution=10)
    with pytest.raises(DataError, match="does not exist"):
        load(f"patches:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load(f"patches:{tmp_path / 'empty'}")


# --------------------------------------------------------------------------- photos

def test_photos_split_disjoint_and_shapes():
    train = load("photos", resolution=64, channels=3)
    test = load("photos", "test", resolution=64, channels=3)
    assert isinstance(train, PatchSet) and len(train) == 15
    assert test.names == ["skimage:coffee", "skimage:chelsea", "sklearn:flower"]
    assert not set(train.names) & set(test.names)
    assert test.sizes == [(400, 600), (300, 451), (427, 640)]
    assert all(image.shape[0] == 3 for image in train.images)
    # No test photo hides in the training set under another name (skimage's cat is chelsea).
    assert not any(a.shape == b.shape and torch.equal(a, b) for a in train.images for b in test.images)
    gray = load("photos", "test", resolution=64, channels=1)
    assert gray.channels == 1 and gray.sizes == test.sizes
    expected = (0.299 * test.images[0][0].double() + 0.587 * test.images[0][1].double()
                + 0.114 * test.images[0][2].double())
    assert (gray.images[0][0].double() - expected).abs().max() <= 1
    assert train.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 3, 64, 64)
    colour = load("photos:color", resolution=64, channels=3)
    assert set(colour.names) < set(train.names) and "skimage:camera" not in colour.names
    assert all(not torch.equal(image[0], image[1]) for image in colour.images)  # no gray photo
    with pytest.raises(DataError, match="photos:color"):
        load("photos:grey", resolution=64, channels=3)


# --------------------------------------------------------------------------- paired:FOLDER

def side_by_side(height, width, a, b, middle=None):
    array = np.empty((height, width, 3), dtype=np.uint8)
    array[:, :width // 2], array[:, width // 2:] = a, b
    if middle is not None:
        array[:, width // 2] = middle
    return array


def test_paired_side_by_side_layout(tmp_path):
    root = tmp_path / "facades"
    for i in range(3):  # odd width: the middle column belongs to neither half
        save(root / "train" / f"{i}.png", side_by_side(20, 41, 50 + i, 200, middle=120))
    save(root / "test" / "x.jpg", side_by_side(16, 32, 60, 180), quality=95)
    data = load(f"paired:{root}", resolution=8, channels=3)
    assert data.images.shape == data.sources.shape == (3, 3, 8, 8)
    assert (data.images == 200).all()
    assert [int(s.unique()) for s in data.sources] == [50, 51, 52] and data.labels is None
    test = load(f"paired:{root}", "test", resolution=8, channels=1)
    assert test.images.shape == (1, 1, 8, 8)
    assert (test.images.float() - 180).abs().max() <= 3 and (test.sources.float() - 60).abs().max() <= 3


def test_paired_side_by_side_directly_in_folder_has_no_test(tmp_path):
    save(tmp_path / "p" / "one.png", side_by_side(10, 20, 0, 255))
    data = load(f"paired:{tmp_path / 'p'}", resolution=4, channels=1)
    assert (data.sources == 0).all() and (data.images == 255).all()
    with pytest.raises(DataError, match="no test split"):
        load(f"paired:{tmp_path / 'p'}", "test", resolution=4)


def test_paired_two_folders_matched_by_name(tmp_path):
    root = tmp_path / "maps"
    for k in (3, 1, 2):
        save(root / "train" / "A" / f"{k:03d}.png", np.full((12, 18), 10 * k, dtype=np.uint8))
        save(root / "train" / "B" / f"{k:03d}.jpg", np.full((24, 36, 3), 10 * k + 100, dtype=np.uint8), quality=95)
    save(root / "test" / "A" / "z.png", np.full((8, 8), 7, dtype=np.uint8))
    save(root / "test" / "B" / "z.png", np.full((8, 8), 9, dtype=np.uint8))
    data = load(f"paired:{root}", resolution=6, channels=1)
    assert data.sources.shape == data.images.shape == (3, 1, 6, 6)
    assert [int(s.unique()) for s in data.sources] == [10, 20, 30]  # sorted by name
    assert [round(float(b.float().mean())) for b in data.images] == [110, 120, 130]
    test = load(f"paired:{root}", "test", resolution=4, channels=3)
    assert (test.sources == 7).all() and (test.images == 9).all() and test.sources.shape == (1, 3, 4, 4)


def test_paired_mismatch_names_three_and_count(tmp_path):
    root = tmp_path / "pairs"
    for name in ("a", "b", "c", "d", "e", "f"):
        save(root / "A" / f"{name}.png", np.zeros((4, 4), dtype=np.uint8))
    for name in ("a", "b", "zz"):
        save(root / "B" / f"{name}.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(DataError) as info:
        load(f"paired:{root}", resolution=4)
    message = str(info.value)
    assert "4 file(s) have no partner" not in message and "5 file(s) have no partner" in message
    assert "A/c.png, A/d.png, A/e.png, and 2 more" in message and "\n" not in message
    (root / "B").rename(root / "other")
    with pytest.raises(DataError, match="has A/ but no B/"):
        load(f"paired:{root}", resolution=4)


# --------------------------------------------------------------------------- mosaic:BASE

def test_mosaic_tiles_are_base_images_with_their_classes():
    data = load("mosaic:digits", resolution=16, channels=1)
    base = load("digits", resolution=8, channels=1)
    order = mosaic_order(len(base), "train")
    assert len(data) == len(base) // 4 == len(order) == 359
    assert data.images.shape == (359, 1, 16, 16) and data.labels is None
    assert data.class_names == [str(d) for d in range(10)]
    assert torch.equal(data.region_labels, base.labels[order])
    for i in (0, 123, 358):
        tiles = base.images[order[i]]
        assert torch.equal(data.images[i, :, :8, :8], tiles[0]) and torch.equal(data.images[i, :, :8, 8:], tiles[1])
        assert torch.equal(data.images[i, :, 8:, :8], tiles[2]) and torch.equal(data.images[i, :, 8:, 8:], tiles[3])
    assert torch.equal(data.regions[0], tile_regions(16)) and (data.regions == data.regions[0]).all()
    assert data.regions[0, 3, 12] == 1 and data.regions[0, 12, 3] == 2
    # Each base image is used at most once; the test mosaics come from the test split.
    assert len(set(order.flatten().tolist())) == order.numel()
    assert len(load("mosaic:digits", "test", resolution=16)) == 360 // 4


def test_mosaic_of_npz_base_and_errors(tmp_path):
    x = np.arange(9 * 6 * 6, dtype=np.int64).reshape(9, 6, 6).astype(np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "set.npz", x=x, y=y)
    data = load(f"mosaic:npz:{tmp_path / 'set.npz'}", resolution=12, channels=1)
    order = mosaic_order(9, "train")
    assert len(data) == 2 and torch.equal(data.region_labels, torch.from_numpy(y)[order])
    assert torch.equal(data.images[1, 0, 6:, 6:], torch.from_numpy(x[int(order[1, 3])]))
    with pytest.raises(ConfigError, match="even"):
        load("mosaic:digits", resolution=15)
    np.savez(tmp_path / "plain.npz", x=x)
    with pytest.raises(DataError, match="has no labels"):
        load(f"mosaic:npz:{tmp_path / 'plain.npz'}", resolution=12)
    np.savez(tmp_path / "three.npz", x=x[:3], y=y[:3])
    with pytest.raises(DataError, match="fewer than the 4"):
        load(f"mosaic:npz:{tmp_path / 'three.npz'}", resolution=12)


# --------------------------------------------------------------------------- masks

def test_mask_white_on_black_and_16_bit(tmp_path):
    array = np.zeros((6, 5), dtype=np.uint8)
    array[1:3, 2:4] = 255
    array[5, 0] = 1  # faint marks count too
    mask = load_mask(save(tmp_path / "mask.png", array), 6, 5)
    assert mask.shape == (1, 6, 5) and mask.dtype == torch.float32
    assert torch.equal(mask[0], torch.from_numpy((array > 0).astype(np.float32)))
    deep = np.zeros((4, 4), dtype=np.uint16)
    deep[0, 0], deep[3, 3] = 1, 65535  # 1 of 65535 is 0 at 8 bits, yet a mark
    assert load_mask(save(tmp_path / "deep.png", deep), 4, 4)[0].nonzero().tolist() == [[0, 0], [3, 3]]
    color = np.zeros((4, 4, 3), dtype=np.uint8)
    color[2, 1, 2] = 40  # a blue mark
    assert load_mask(save(tmp_path / "color.png", color), 4, 4)[0].nonzero().tolist() == [[2, 1]]


def test_mask_alpha_erased_region(tmp_path):
    rgba = np.full((3, 4, 4), 255, dtype=np.uint8)  # white everywhere: alpha alone decides
    rgba[..., 3] = [[0, 127, 128, 255]] * 3
    mask = load_mask(save(tmp_path / "erased.png", rgba), 3, 4)
    assert mask[0].tolist() == [[1.0, 1.0, 0.0, 0.0]] * 3
    opaque = np.zeros((3, 4, 4), dtype=np.uint8)
    opaque[..., 3], opaque[0, 0, :3] = 255, 255  # all opaque: the content rule applies
    assert load_mask(save(tmp_path / "opaque.png", opaque), 3, 4)[0].nonzero().tolist() == [[0, 0]]
    la = np.zeros((2, 2, 2), dtype=np.uint8)
    la[..., 1] = [[255, 10], [255, 255]]
    assert load_mask(save(tmp_path / "la.png", la), 2, 2)[0].tolist() == [[0.0, 1.0], [0.0, 0.0]]
    palette = Image.new("P", (2, 2))
    palette.putdata([0, 1, 1, 1])
    palette.putpalette([9, 9, 9, 200, 200, 200])
    palette.save(tmp_path / "palette.png", transparency=0)
    assert load_mask(tmp_path / "palette.png", 2, 2)[0].tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_mask_errors(tmp_path):
    with pytest.raises(DataError, match="gone.png"):
        load_mask(tmp_path / "gone.png", 4, 4)
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken.png.*cannot be read"):
        load_mask(tmp_path / "broken.png", 4, 4)
    save(tmp_path / "mask.png", np.full((40, 30), 255, dtype=np.uint8))
    with pytest.raises(DataError, match="mask.png is 30x40, the image is 32x32"):
        load_mask(tmp_path / "mask.png", 32, 32)
    save(tmp_path / "empty.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match="no hole"):
        load_mask(tmp_path / "empty.png", 4, 4)
    opaque = np.full((4, 4, 4), 255, dtype=np.uint8)
    opaque[..., :3] = 0  # opaque and black: nothing erased, nothing marked
    with pytest.raises(DataError, match="no hole"):
        load_mask(save(tmp_path / "black.png", opaque), 4, 4)
