"""The memorisation audit (`ganforge evaluate --memorization`, `memorization_audit`) and the
blocked nearest-neighbour search under it: a "generator" that copies its training set is
caught in feature and pixel space; one that shows new real images is not (about 5 % by
construction); the grid pairs each sample with its nearest training image."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
import ganforge.metrics.distances as distances
from ganforge.cli import main
from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.data.imageset import to_float
from ganforge.evaluate import (GRID_PAIRS, MEMORIZATION_GRID, MEMORIZATION_PERCENTILE, ClassifierFeatures,
                               Evaluator, load_splits, memorization_audit)
from ganforge.metrics import nearest_neighbours

QUIET = {"log.progress": False, "log.tensorboard": "no"}
DIGITS16 = DataConfig(name="digits", resolution=16)


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("memorization")


@pytest.fixture(scope="module")
def extractor(module_dir) -> ClassifierFeatures:
    """A small digit CNN (100 steps at 16 px): the feature space of this module."""
    run = ganforge.train(overrides={"model.name": "cnn", "model.width": 8, "model.hidden": 32,
                                    "train.steps": 100, "data.resolution": 16, **QUIET,
                                    "out": str(module_dir / "classifier")}).dir
    return ClassifierFeatures(run)


def picture_tiles(path: Path, size: int, padding: int = 2) -> list[np.ndarray]:
    """The tiles of a grid PNG, row by row."""
    picture = np.asarray(Image.open(path))
    step = size + padding
    rows, cols = (picture.shape[0] - padding) // step, (picture.shape[1] - padding) // step
    return [picture[padding + r * step:][:size, padding + c * step:][:, :size]
            for r in range(rows) for c in range(cols)]


# Nearest neighbours.
def test_nearest_neighbours_known_values_and_exclusion():
    refs = torch.tensor([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    distance, index = nearest_neighbours(torch.tensor([[3.0, 3.0], [9.0, 0.0]]), refs)
    assert index.tolist() == [1, 2] and distance.tolist() == pytest.approx([1.0, 1.0])
    # Rows of refs against refs, each excluded from its own search.
    distance, index = nearest_neighbours(refs, refs, exclude=torch.tensor([0, 1, -1]))
    assert index.tolist() == [1, 0, 2] and distance.tolist() == pytest.approx([5.0, 5.0, 0.0])


def test_nearest_neighbours_in_blocks_match_brute_force(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    queries = torch.randint(0, 256, (37, 20), generator=generator, dtype=torch.uint8)
    refs = torch.randint(0, 256, (53, 20), generator=generator, dtype=torch.uint8)
    exclude = torch.randint(-1, 53, (37,), generator=generator)
    full = torch.cdist(queries.double(), refs.double())
    full[torch.arange(37)[exclude >= 0], exclude[exclude >= 0]] = float("inf")
    monkeypatch.setattr(distances, "BLOCK_ELEMENTS", 7 * 20)  # 7 reference rows, few query rows a block
    for dtype in (torch.float64, torch.float32):
        distance, index = nearest_neighbours(queries, refs, exclude, dtype=dtype)
        assert distance.dtype == dtype
        assert torch.allclose(distance.double(), full.min(1).values, rtol=1e-5)
        assert torch.equal(index, full.argmin(1))


@pytest.mark.parametrize("bad, words", [
    ((torch.zeros(3), torch.zeros(2, 3)), ["queries", "2-D"]),
    ((torch.zeros(2, 3), torch.zeros(2, 4)), ["same feature dimension"]),
    ((torch.full((2, 3), float("nan")), torch.zeros(2, 3)), ["queries", "NaN"]),
])
def test_nearest_neighbours_rejects_bad_input(bad, words):
    with pytest.raises(ValueError) as error:
        nearest_neighbours(*bad)
    assert all(word in str(error.value) for word in words)


# The audit on digits (a test split: held-out images are not training images).
def test_a_generator_that_copies_its_training_set_is_caught(extractor, tmp_path):
    train = load_dataset(DIGITS16, "train")
    copies = train.images[:360]
    audit = memorization_audit(DIGITS16, extractor, copies, tmp_path / MEMORIZATION_GRID)
    assert audit["share_pixels"] == 1.0 and audit["share_features"] > 0.95
    assert audit["median_pixels"] < 0.01 < audit["threshold_pixels"]
    assert audit["n_training"] == len(train) == 1437 and audit["n_heldout"] == 360
    assert audit["percentile"] == MEMORIZATION_PERCENTILE
    # The grid: sample, then its nearest training image: identical for a copy.
    tiles = picture_tiles(tmp_path / MEMORIZATION_GRID, 16)
    assert len(tiles) == 2 * GRID_PAIRS
    for sample, nearest in zip(tiles[0::2], tiles[1::2]):
        assert np.array_equal(sample, nearest)


def test_new_real_images_score_about_the_percentile(extractor):
    heldout = load_dataset(DIGITS16, "test")
    audit = memorization_audit(DIGITS16, extractor, heldout.images)
    # The held-out images set the threshold, so by construction 5 % of them fall below it.
    for space in ("features", "pixels"):
        assert audit[f"share_{space}"] == pytest.approx(MEMORIZATION_PERCENTILE / 100, abs=0.01), space
        assert audit[f"median_{space}"] == pytest.approx(audit[f"heldout_median_{space}"])
    assert "grid" not in audit


def test_half_copies_score_about_half(extractor):
    train, heldout = load_dataset(DIGITS16, "train"), load_dataset(DIGITS16, "test")
    mixed = torch.cat([train.images[:180], heldout.images[:180]])
    audit = memorization_audit(DIGITS16, extractor, mixed)
    assert 0.5 <= audit["share_pixels"] <= 0.6


# A set without a test split: held-out images are training images too (leave-one-out).
def test_without_a_test_split_each_heldout_image_is_compared_with_the_others(extractor, tmp_path):
    train, test = load_dataset(DIGITS16, "train"), load_dataset(DIGITS16, "test")
    path = tmp_path / "digits.npz"
    np.savez(path, x=train.images.permute(0, 2, 3, 1).numpy(), y=train.labels.numpy())
    data = DataConfig(name=f"npz:{path}", resolution=16)
    splits = load_splits(data)
    copies = memorization_audit(data, extractor, splits.heldout.images)
    assert copies["share_pixels"] == 1.0  # the GAN may have trained on them: they are copies
    assert copies["threshold_pixels"] > 0.5  # not 0: a held-out image is not its own neighbour
    new = memorization_audit(data, extractor, test.images)
    assert new["share_pixels"] < 0.2 and new["share_features"] < 0.2


# Through `ganforge evaluate --memorization`.
class Copier(torch.nn.Module):
    """A stand-in unconditional generator that returns training images in order."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.images = to_float(images)
        self.latent_dim, self.resolution, self.channels = 4, images.shape[-1], images.shape[1]
        self.num_classes = 0
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.position = 0

    def forward(self, z, labels=None):
        out = self.images[self.position:self.position + len(z)]
        self.position += len(z)
        return out


def test_evaluator_audits_the_samples_it_scored(extractor, tmp_path):
    evaluator = Evaluator(DIGITS16, extractor)
    images, labels = evaluator.sample(Copier(load_dataset(DIGITS16, "train").images))
    assert labels is None and len(images) == 360
    audit = evaluator.memorization(images, tmp_path / "pairs.png")
    assert audit["share_pixels"] == 1.0 and (tmp_path / "pairs.png").is_file()


def test_cli_memorization_writes_the_audit_and_the_grid(extractor, tmp_path, capsys):
    run = ganforge.train(overrides={"model.g_width": 8, "model.d_width": 8, "train.batch_size": 16,
                                    "data.resolution": 16, "train.steps": 2, **QUIET,
                                    "out": str(tmp_path / "gan")}).dir
    assert main(["evaluate", str(run), "-n", "50", "--classifier", extractor.run_dir, "--memorization"]) == 0
    out = capsys.readouterr().out
    report = json.loads((run / "eval.json").read_text())
    audit = report["memorization"]
    for key in ("share_features", "share_pixels", "threshold_features", "threshold_pixels"):
        assert isinstance(audit[key], float), key
    assert audit["n_samples"] == 50 and audit["grid"] == str(run / MEMORIZATION_GRID)
    assert (run / MEMORIZATION_GRID).is_file()
    assert "memorization:" in out and MEMORIZATION_GRID in out
    # A barely trained GAN copies nothing.
    assert audit["share_pixels"] < 0.2
    # Without the flag there is no audit.
    assert main(["evaluate", str(run), "-n", "50", "--classifier", extractor.run_dir]) == 0
    assert "memorization" not in json.loads((run / "eval.json").read_text())
