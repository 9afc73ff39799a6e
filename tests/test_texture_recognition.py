"""Texture recognition: the `crops:` data source (train and test crops from disjoint regions of
each image), the LBP nearest-neighbour baseline, and `ganforge texture classify train|eval`.

The textures are made here: stripes, checkers and noise of two spectra, saved as PNGs."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.cli import main
from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.data.crops import TEST_CROPS, TRAIN_CROPS, crop_corners, held_out_start
from ganforge.errors import DataError
from ganforge.texture.recognition import LBPNearestNeighbour, chi_square, lbp_baseline, lbp_histograms

from helpers import error_line

REPORT_KEYS = {"accuracy", "macro_precision", "macro_recall", "macro_f1", "images", "per_class",
               "confusion_matrix"}


def texture(kind: str, rng: np.random.Generator, height: int = 48, width: int = 112) -> np.ndarray:
    """One gray uint8 texture: stripes (vertical or horizontal), checkers, white or smooth noise."""
    y, x = np.mgrid[:height, :width].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "vertical":
        image = 128 + 90 * np.sin(2 * np.pi * x / 6 + phase)
    elif kind == "horizontal":
        image = 128 + 90 * np.sin(2 * np.pi * y / 6 + phase)
    elif kind == "checkers":
        image = 40 + 170 * ((x // 4 + y // 4) % 2)
    elif kind == "white":
        image = rng.uniform(0, 255, (height, width))
    else:  # smooth noise: white noise low-passed by a 7x7 box, stretched to the full range
        noise = rng.uniform(0, 1, (height + 6, width + 6))
        total = np.cumsum(np.cumsum(np.pad(noise, ((1, 0), (1, 0))), 0), 1)
        box = total[7:, 7:] - total[:-7, 7:] - total[7:, :-7] + total[:-7, :-7]
        image = (box - box.min()) / np.ptp(box) * 255
    image = image + rng.normal(0, 8, image.shape)
    return np.clip(image.round(), 0, 255).astype(np.uint8)


def write_textures(root, kinds, per_class: int = 1, seed: int = 0, **size):
    rng = np.random.default_rng(seed)
    for kind in kinds:
        (root / kind).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(texture(kind, rng, **size), "L").save(root / kind / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def textures(tmp_path_factory):
    """Four classes LBP tells apart (it is rotation-invariant: no horizontal stripes);
    two images of checkers."""
    root = write_textures(tmp_path_factory.mktemp("textures"), ["vertical", "white", "smooth"])
    rng = np.random.default_rng(1)
    (root / "checkers").mkdir()
    for i in range(2):
        Image.fromarray(texture("checkers", rng), "L").save(root / "checkers" / f"{i}.png")
    return root


def crops(name, split, resolution=16, channels=1):
    return load_dataset(DataConfig(name=name, resolution=resolution, channels=channels), split)


def test_crops_carry_labels_and_class_names(textures):
    train, test = crops(f"crops:{textures}", "train"), crops(f"crops:{textures}", "test")
    assert train.class_names == test.class_names == ["checkers", "smooth", "vertical", "white"]
    assert train.images.shape == (5 * TRAIN_CROPS, 1, 16, 16)
    assert test.images.shape == (5 * TEST_CROPS, 1, 16, 16)
    assert train.labels.bincount().tolist() == [2 * TRAIN_CROPS, TRAIN_CROPS, TRAIN_CROPS, TRAIN_CROPS]
    assert test.labels.bincount().tolist() == [2 * TEST_CROPS, TEST_CROPS, TEST_CROPS, TEST_CROPS]
    assert train.source == f"crops:{textures}"
    # Crops are cut, not resized: every pixel of a white-noise crop stays noisy, and RGB works.
    assert crops(f"crops:{textures}", "test", channels=3).images.shape == (5 * TEST_CROPS, 3, 16, 16)


def test_train_and_test_crops_come_from_disjoint_regions(tmp_path):
    """Each pixel holds its column: train crops see only columns left of the held-out start,
    test crops only columns from it on."""
    ramp = np.tile(np.arange(200, dtype=np.uint8), (40, 1))
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(ramp, "L").save(tmp_path / name / "ramp.png")
    start = held_out_start(200, 16)
    assert start == 150  # the right quarter
    train, test = crops(f"crops:{tmp_path}", "train"), crops(f"crops:{tmp_path}", "test")
    assert int(train.images.max()) < start <= int(test.images.min())
    # The boxes themselves, at sizes where the held-out strip is a quarter or one crop wide.
    for size, width in ((16, 200), (64, 128), (64, 300), (20, 41)):
        start = held_out_start(width, size)
        train_boxes = crop_corners(50 + size, width, size, "train", 300, "x.png")
        test_boxes = crop_corners(50 + size, width, size, "test", 300, "x.png")
        assert train_boxes[:, 1].min() >= 0 and (train_boxes[:, 1] + size).max() <= start
        assert test_boxes[:, 1].min() >= start and (test_boxes[:, 1] + size).max() <= width
        assert (train_boxes[:, 0] + size).max() <= 50 + size and train_boxes[:, 0].min() >= 0


def test_crops_are_reproducible_from_the_seed(textures, tmp_path):
    a, b = crops(f"crops:{textures}", "train"), crops(f"crops:{textures}", "train")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not np.array_equal(crop_corners(48, 112, 16, "train", 50, "0.png", seed=0),
                              crop_corners(48, 112, 16, "train", 50, "0.png", seed=1))
    # An image's crops depend on its own name, not on the other images in the folder.
    grown = write_textures(tmp_path / "grown", ["vertical", "white", "smooth"])
    write_textures(tmp_path / "extra", ["aaa"], seed=5)
    (tmp_path / "extra" / "aaa").rename(grown / "aaa")
    more = crops(f"crops:{grown}", "test")
    mine = crops(f"crops:{textures}", "test")
    for name in ("smooth", "vertical", "white"):
        ours = mine.images[mine.labels == mine.class_names.index(name)]
        theirs = more.images[more.labels == more.class_names.index(name)]
        assert torch.equal(ours, theirs), name


def test_one_image_per_class_without_sub_folders(tmp_path):
    rng = np.random.default_rng(0)
    for kind in ("white", "vertical"):
        Image.fromarray(texture(kind, rng), "L").save(tmp_path / f"{kind}.png")
    data = crops(f"crops:{tmp_path}", "test")
    assert data.class_names == ["vertical", "white"]
    assert data.labels.bincount().tolist() == [TEST_CROPS, TEST_CROPS]


def test_bundled_textures_need_no_folder():
    train, test = crops("crops:textures", "train", resolution=64), crops("crops:textures", "test", resolution=64)
    assert train.class_names == ["brick", "grass", "gravel"]
    assert train.images.shape == (3 * TRAIN_CROPS, 1, 64, 64) and len(test) == 3 * TEST_CROPS


def test_the_eight_class_bundled_set_mixes_gray_and_colour_photos():
    gray = crops("crops:textures-8", "test", resolution=32)
    assert gray.class_names[:3] == ["brick", "grass", "gravel"] and len(gray.class_names) == 8
    assert gray.images.shape == (8 * TEST_CROPS, 1, 32, 32)
    rgb = crops("crops:textures-8", "test", resolution=32, channels=3)
    assert rgb.images.shape == (8 * TEST_CROPS, 3, 32, 32)
    stained = rgb.images[rgb.labels == rgb.class_names.index("immunohistochemistry")].float()
    assert (stained[:, 0] - stained[:, 2]).abs().mean() > 5        # the colour photo keeps its colour
    bricks = rgb.images[rgb.labels == 0]
    assert torch.equal(bricks[:, 0], bricks[:, 2])                  # a gray photo repeated


@pytest.mark.parametrize("make, match", [
    (lambda root: write_textures(root, ["vertical"]), "holds only 'vertical'.*at least 2 classes"),
    (lambda root: root, "holds none"),
    (lambda root: write_textures(root, ["vertical", "white"], height=40, width=24),
     r"smaller than 32x16.*vertical/0.png \(24x40\)"),
    (lambda root: write_textures(root, ["vertical", "white"], height=12, width=64), r"white/0.png \(64x12\)"),
    (lambda root: root / "missing", "does not exist"),
])
def test_unusable_folders_are_one_clear_error(tmp_path, make, match):
    (tmp_path / "set").mkdir()
    root = make(tmp_path / "set")
    with pytest.raises(DataError, match=match):
        crops(f"crops:{root}", "train")


def test_crops_without_a_folder_is_an_error():
    with pytest.raises(DataError, match="crops:textures"):
        crops("crops", "train")


def test_lbp_nearest_neighbour_tells_clear_textures_apart(textures):
    train, test = crops(f"crops:{textures}", "train", 24), crops(f"crops:{textures}", "test", 24)
    report = lbp_baseline(train, test)
    assert set(report) == REPORT_KEYS
    assert report["accuracy"] >= 0.95, report["confusion_matrix"]
    assert [row["class"] for row in report["per_class"]] == train.class_names
    assert np.asarray(report["confusion_matrix"]).sum() == len(test)
    # Fitted on one class set, it refuses a set with other classes.
    other = crops("crops:textures", "test", 24)
    with pytest.raises(DataError, match="classes"):
        LBPNearestNeighbour().fit(train).report(other)


def test_lbp_histograms_are_rotation_invariant():
    """Why the baseline cannot tell vertical from horizontal stripes (and a CNN can)."""
    image = torch.from_numpy(texture("vertical", np.random.default_rng(0), 48, 48))[None, None]
    histograms = lbp_histograms(torch.cat([image, image.rot90(1, (2, 3))]))
    assert histograms.shape == (2, 10 + 18 + 26)
    assert np.allclose(histograms.sum(1), 3)
    assert np.allclose(histograms[0], histograms[1])


def test_chi_square_matches_its_formula():
    rng = np.random.default_rng(0)
    a, b = rng.dirichlet(np.ones(5), 7), rng.dirichlet(np.ones(5), 4)
    a[0, :2] = b[0, :2] = 0  # empty bins on both sides count 0
    with np.errstate(invalid="ignore"):
        want = np.array([[np.nansum((x - y) ** 2 / (x + y)) for y in b] for x in a])
    assert np.allclose(chi_square(a, b), want)
    assert np.allclose(np.diag(chi_square(a, a)), 0)


def test_cli_train_then_eval_writes_cnn_and_lbp(textures, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["texture", "classify", "train", str(textures), "--out", str(run), "--resolution", "16",
                 "--steps", "4", "--batch-size", "16", "--quiet", "--set", "model.width=4",
                 "--set", "model.hidden=8"]) == 0
    report = json.loads((run / "texture-eval.json").read_text())
    assert report["data_set"] == f"crops:{textures}" and report["resolution"] == 16
    assert report["test_images"] == 5 * TEST_CROPS and report["train_images"] == 5 * TRAIN_CROPS
    for key in ("cnn", "lbp"):
        assert REPORT_KEYS <= set(report[key]), key
        assert report[key]["images"] == 5 * TEST_CROPS
    assert report["cnn"]["model"] == "cnn"
    capsys.readouterr()
    (run / "texture-eval.json").unlink()
    assert main(["texture", "classify", "eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert "CNN " in out and "LBP + 1-NN " in out and "texture-eval.json" in out
    again = json.loads((run / "texture-eval.json").read_text())
    assert again["cnn"]["confusion_matrix"] == report["cnn"]["confusion_matrix"]
    assert again["lbp"]["accuracy"] == report["lbp"]["accuracy"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    one = write_textures(tmp_path / "one", ["vertical"])
    assert main(["texture", "classify", "train", str(one), "--out", str(tmp_path / "run"),
                 "--resolution", "16", "--steps", "1", "--quiet"]) == 2
    assert "at least 2 classes" in error_line(capsys, "texture")
    assert main(["texture", "classify", "train", "textures", "--dataset", "digits", "--steps", "1"]) == 2
    assert "--dataset" in error_line(capsys, "texture")
    assert main(["texture", "classify", "eval", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in error_line(capsys, "texture")


def test_texture_classify_dry_run_defaults_to_64_pixel_crops(capsys):
    assert main(["texture", "classify", "train", "textures", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "name: crops:textures" in out and "resolution: 64" in out and "name: cnn" in out
