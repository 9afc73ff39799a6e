"""Collapse detection and evaluation that cannot flatter: per-class diversity and recall beside
the real-data floor, the collapse warnings, labels drawn by the real class prior, and the
held-out split of sets without a test split (the cached feature classifier never sees it).
Stand-in "generators" return real digits; one small digit classifier gives the features."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ganforge
import ganforge.evaluate
import ganforge.objectives.classifier
from ganforge import checkpoint
from ganforge.cli import main
from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.data.imageset import to_float
from ganforge.evaluate import (FAR_BELOW_FLOOR, REFERENCE_SUFFIX, ClassifierFeatures, Evaluator,
                               collapse_warnings, feature_classifier, heldout_split, load_splits)

QUIET = {"log.progress": False, "log.tensorboard": "no"}
DIGITS16 = DataConfig(name="digits", resolution=16)
TINY_CLASSIFIER_DEFAULTS = {"model.name": "cnn", "train.steps": 20, "log.every": 10,
                            "model.width": 8, "model.hidden": 32}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """A small digit CNN (150 steps at 16 px): the feature space of this module."""
    out = tmp_path_factory.mktemp("collapse") / "classifier"
    return ganforge.train(overrides={"model.name": "cnn", "model.width": 8, "model.hidden": 32,
                                     "train.steps": 150, "data.resolution": 16, **QUIET,
                                     "out": str(out)}).dir


@pytest.fixture(scope="module")
def evaluator(classifier) -> Evaluator:
    return Evaluator(DIGITS16, ClassifierFeatures(classifier))


@pytest.fixture(scope="module")
def heldout():
    return load_dataset(DIGITS16, "test")


class PerClass(torch.nn.Module):
    """A conditional stand-in generator that ignores z: for class c, the next image of the
    class's pool, in turn."""

    def __init__(self, pools: dict[int, torch.Tensor]):
        super().__init__()
        self.pools = {c: to_float(images) for c, images in pools.items()}
        self.seen = {c: 0 for c in pools}
        self.asked: list[int] = []
        first = next(iter(pools.values()))
        self.latent_dim, self.resolution, self.channels = 4, first.shape[-1], first.shape[1]
        self.num_classes = len(pools)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # generate() asks for a parameter's device

    def forward(self, z, labels=None):
        out = []
        for label in labels.tolist():
            pool = self.pools[label]
            out.append(pool[self.seen[label] % len(pool)])
            self.seen[label] += 1
            self.asked.append(label)
        return torch.stack(out)


def pools(data, per_class: int | None = None) -> dict[int, torch.Tensor]:
    """Each class's images of `data` (the first `per_class` of them when given)."""
    return {c: data.images[data.labels == c][:per_class] for c in range(10)}


# The floor's per-class numbers.
def test_the_floor_has_per_class_diversity_recall_and_coverage(evaluator):
    floor = evaluator.floor
    for key in ("per_class_diversity", "per_class_recall", "per_class_coverage"):
        assert len(floor[key]) == 10 and all(v is not None for v in floor[key]), key
    # Held-out digits of a class vary about as much as the reference digits of that class.
    assert all(0.7 < v < 1.3 for v in floor["per_class_diversity"])
    assert floor["diversity_min"] == min(floor["per_class_diversity"])
    assert floor["diversity_mean"] == pytest.approx(sum(floor["per_class_diversity"]) / 10)
    assert all(0.2 < v <= 1 for v in floor["per_class_recall"])


# A collapsed generator warns, a good one does not.
def test_one_image_per_class_is_flagged_whatever_the_fid(evaluator, heldout):
    scores = evaluator(PerClass(pools(heldout, per_class=1)))
    assert scores["diversity_min"] < 0.01 and scores["diversity_mean"] < 0.01
    assert all(v < 0.01 for v in scores["per_class_diversity"])
    assert max(scores["per_class_recall"]) < 0.1
    warnings = evaluator.warnings(scores)
    assert any(w.startswith("recall") for w in warnings)
    assert any(w.startswith("per-class diversity") and "in 10 of 10 classes" in w for w in warnings)


def test_a_few_images_per_class_are_flagged_by_recall(evaluator, heldout):
    scores = evaluator(PerClass(pools(heldout, per_class=3)))
    assert scores["recall"] < FAR_BELOW_FLOOR * evaluator.floor["recall"]
    assert any(w.startswith("recall") for w in evaluator.warnings(scores))


def test_held_out_images_of_the_requested_class_raise_no_warning(evaluator, heldout):
    scores = evaluator(PerClass(pools(heldout)))
    assert evaluator.warnings(scores) == []
    assert scores["diversity_mean"] == pytest.approx(evaluator.floor["diversity_mean"], rel=0.15)
    assert scores["recall"] == pytest.approx(evaluator.floor["recall"], abs=0.1)


def test_warning_rule_is_half_the_floor_per_number():
    floor = {"recall": 0.6, "diversity_ratio": 1.0, "per_class_diversity": [1.0, 0.8, None]}
    just_above = {"recall": 0.31, "diversity_ratio": 0.51, "per_class_diversity": [0.51, 0.41, 0.0]}
    assert collapse_warnings(just_above, floor) == []  # class 2 has no floor: not judged
    below = {"recall": 0.29, "diversity_ratio": 0.49, "per_class_diversity": [0.9, 0.39, 0.0], "fid": 2.0}
    warnings = collapse_warnings(below, floor, ["zero", "one", "two"])
    assert len(warnings) == 3
    assert "recall 0.29" in warnings[0] and "FID 2" in warnings[0]
    assert warnings[1].startswith("diversity_ratio 0.49")
    assert "1 of 2 classes" in warnings[2] and "class one" in warnings[2]


def test_cli_prints_and_stores_the_warnings(classifier, tmp_path, capsys):
    # A 2-step conditional GAN: noise-like samples; its report must carry the per-class
    # numbers and a list of warnings (printed as WARNING lines).
    run = ganforge.train(overrides={"model.g_width": 8, "model.d_width": 8, "train.batch_size": 16,
                                    "data.resolution": 16, "model.conditional": True,
                                    "train.steps": 2, **QUIET, "out": str(tmp_path / "c")}).dir
    assert main(["evaluate", str(run), "--classifier", str(classifier)]) == 0
    out = capsys.readouterr().out
    report = json.loads((run / "eval.json").read_text())
    assert isinstance(report["warnings"], list)
    assert len(report["model"]["per_class_diversity"]) == 10
    assert any(line.startswith("diversity_min") for line in out.splitlines())
    assert sum(line.startswith("WARNING: ") for line in out.splitlines()) == len(report["warnings"])
    assert "class labels of the samples" in out and "class proportions" in report["setup"]["labels"]


# Labels follow the real class prior.
@pytest.fixture
def unbalanced(tmp_path) -> DataConfig:
    """An npz set of 16 px digits with classes 0, 1, 2 in proportions 6 : 3 : 1 (100 images)."""
    train = load_dataset(DIGITS16, "train")
    chosen = torch.cat([(train.labels == c).nonzero().flatten()[:count]
                        for c, count in ((0, 60), (1, 30), (2, 10))])
    path = tmp_path / "unbalanced.npz"
    np.savez(path, x=train.images[chosen].permute(0, 2, 3, 1).numpy(), y=train.labels[chosen].numpy())
    return DataConfig(name=f"npz:{path}", resolution=16)


def test_conditional_labels_follow_the_reference_class_prior(unbalanced, classifier):
    evaluator = Evaluator(unbalanced, ClassifierFeatures(classifier), n=50, seed=3)
    labels = evaluator.sample_labels(3)
    assert torch.bincount(labels).tolist() == [30, 15, 5]
    assert torch.equal(labels, evaluator.sample_labels(3))  # fixed by the seed
    assert not torch.equal(labels, labels.sort().values)  # shuffled, not in blocks
    splits = load_splits(unbalanced)
    generator = PerClass({c: splits.heldout.images[splits.heldout.labels == c] for c in range(3)})
    scores = evaluator(generator)
    assert torch.bincount(torch.tensor(generator.asked)).tolist() == [30, 15, 5]
    assert len(scores["per_class_accuracy"]) == 3
    assert "class proportions" in evaluator.setup["labels"]


def test_largest_remainder_counts_sum_to_n(classifier):
    evaluator = Evaluator(DIGITS16, ClassifierFeatures(classifier), n=97)
    counts = torch.bincount(evaluator.sample_labels(10), minlength=10)
    share = evaluator.prior / evaluator.prior.sum() * 97
    assert int(counts.sum()) == 97
    assert all(abs(int(c) - float(s)) < 1 for c, s in zip(counts, share))


# Sets without a test split.
def test_heldout_split_is_fixed_disjoint_and_per_class():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 1)
    reference, heldout = heldout_split(labels, len(labels))
    again = heldout_split(labels, len(labels))
    assert torch.equal(reference, again[0]) and torch.equal(heldout, again[1])
    assert sorted(reference.tolist() + heldout.tolist()) == list(range(81))
    assert torch.bincount(labels[heldout], minlength=3).tolist() == [10, 6, 0]
    assert 80 in reference.tolist()  # a class of one image stays in the reference part
    reference, heldout = heldout_split(None, 12)
    assert len(heldout) == 2 and len(reference) == 10


def test_folder_and_npz_sets_keep_the_heldout_part_from_the_feature_classifier(unbalanced, monkeypatch):
    monkeypatch.setattr(ganforge.objectives.classifier, "CLASSIFY_DEFAULTS",
                        dict(TINY_CLASSIFIER_DEFAULTS))
    written = []
    real_write = ganforge.evaluate._write_reference
    monkeypatch.setattr(ganforge.evaluate, "_write_reference",
                        lambda images, path: (written.append(images), real_write(images, path)))
    run_dir = feature_classifier(unbalanced, quiet=True)
    splits = load_splits(unbalanced)
    assert len(written) == 1 and torch.equal(written[0].images, splits.reference.images)
    assert len(splits.reference) == 80 and len(splits.heldout) == 20
    in_train = splits.heldout_in_train.tolist()
    assert torch.equal(splits.train.images[in_train], splits.heldout.images)
    meta = checkpoint.read_meta(run_dir / "checkpoints" / "last.safetensors")
    trained_on = meta["config"]["data"]["name"]
    assert trained_on.endswith(REFERENCE_SUFFIX) and not Path(trained_on[4:]).exists()  # removed once trained
    # Cached: asked again, nothing is trained or written.
    assert feature_classifier(unbalanced, quiet=True) == run_dir and len(written) == 1
    # The report says what was compared with what.
    evaluator = Evaluator(unbalanced, ClassifierFeatures(run_dir))
    assert evaluator.setup["n_heldout"] == 20 and evaluator.setup["n_real"] == 80
    assert "no test split" in evaluator.setup["heldout"]
    assert "GAN may have trained" in evaluator.setup["heldout"]
    assert evaluator.setup["features_trained_on"] == "the reference images only (held-out images unseen)"


def test_a_classifier_trained_on_all_images_is_called_flattering(unbalanced, tmp_path):
    run = ganforge.train(overrides={"model.name": "cnn", "model.width": 8, "model.hidden": 32,
                                    "train.steps": 5, "data.name": unbalanced.name, "data.resolution": 16,
                                    **QUIET, "out": str(tmp_path / "all")}).dir
    trained_on = Evaluator(unbalanced, ClassifierFeatures(run)).setup["features_trained_on"]
    assert "held-out ones included" in trained_on and "flatters" in trained_on


def test_a_test_split_set_says_the_classifier_never_saw_the_heldout_images(evaluator):
    assert evaluator.setup["heldout"] == "test split"
    assert evaluator.setup["features_trained_on"] == "the train split (held-out images unseen)"
