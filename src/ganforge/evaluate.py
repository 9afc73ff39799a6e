"""Evaluating generators: metrics of generated images next to the real-data floor.

Features come from the penultimate layer of a classifier trained on the run's own data set
(trained once and cached, so evaluation works offline on any labelled data set), or from
Inception-v3 when the user passes a local weights file. Every number is printed beside the
same metric for real held-out images against real training images: what a perfect
generator would score with the same number of images.

So that no number can flatter, what is compared with what is fixed here and recorded in
the report's `setup`:
- reference images: the GAN's training images (the train split; for a set without a test
  split, such as `folder:` and `npz:`, a fixed 80 % of each class);
- held-out images: the test split, or the other 20 % of each class; the floor scores them
  exactly as samples are scored;
- the cached feature classifier learns from the reference images only, so held-out images
  are as new to it as the samples are;
- a conditional model is sampled with labels in the reference set's class proportions.
Mode collapse is flagged whatever the FID (`collapse_warnings`), and `memorization_audit`
tells samples that copy training images from samples that merely look real.

Conditional models also get the Classification Accuracy Score (`cas`, Ravuri & Vinyals
2019: train on synthetic, test on real): a classifier of the feature classifier's recipe
trained on samples alone, tested on the held-out real images, beside the real-data
classifier's accuracy on the same images (`classification_accuracy_score`).
`sample_accuracy` is the other direction (Shmelkov et al.'s GAN-test): the real-data
classifier's accuracy on samples of the requested classes.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import atomic, checkpoint, metrics, rundir
from .config import DataConfig
from .data import ImageSet, load_dataset
from .data.imageset import conform
from .data.sources import parse_name
from .errors import ConfigError, DataError
from .imageio import grid, save_png, to_hwc
from .inference import generate, load, load_classifier
from .models.rejection import check_keep_best
from .models.truncation import check_truncation

MAX_REAL = 20_000          # real reference images at most (a fixed random subset beyond that)
MAX_SAMPLES = 10_000       # generated images by default at most
HELDOUT_SHARE = 0.2        # held out from sets without a test split
MIN_SAMPLES = 6            # k-NN precision/recall and density need more than k=5 neighbours
FAR_BELOW_FLOOR = 0.5      # a collapse warning: a diversity number under this share of the floor's
MEMORIZATION_PERCENTILE = 5.0  # "closer than held-out images typically are": below their 5th percentile
MAX_AUDIT_HELDOUT = 2_000  # held-out images that set that percentile (a fixed subset beyond that)
GRID_PAIRS = 16            # (sample, nearest training image) pairs in the memorisation grid
MEMORIZATION_GRID = "memorization.png"
TEST_SPLIT = "test split"
LABELS_NOTE = ("in the reference images' class proportions (largest-remainder counts), "
               "in an order shuffled with the seed")
REFERENCE_SUFFIX = ".reference.npz"  # the reference part a cached feature classifier learns from
# Metrics where a larger value is better; for the rest smaller is better.
HIGHER_IS_BETTER = {"is", "precision", "recall", "density", "coverage", "classes_present",
                    "class_entropy", "cas", "sample_accuracy", "diversity_ratio", "diversity_min", "diversity_mean"}
CAS_KEY = "cas"            # the Classification Accuracy Score: train on synthetic, test on real


# Feature extractors.
class ClassifierFeatures:
    """Penultimate-layer features and class probabilities of a ganforge classifier;
    `trained_on` is the data set it learnt from (its run's data.name)."""

    def __init__(self, run_dir: str | Path, device: str = "cpu"):
        self.classifier = load_classifier(run_dir, device=device)
        self.run_dir = str(run_dir)
        config = self.classifier.meta["config"]
        self.name = f"classifier:{config['model']['name']} ({run_dir})"
        self.num_classes = len(self.classifier.class_names)
        self.trained_on = config["data"]["name"]

    def features_and_probs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.classifier.features(images)
        logits = self.classifier.net.out(features.to(self.classifier.device)).float().cpu()
        return features, logits.softmax(1)


def cache_dir() -> Path:
    """Where trained feature classifiers are kept: $GANFORGE_CACHE or ~/.cache/ganforge."""
    return Path(os.environ.get("GANFORGE_CACHE", Path.home() / ".cache" / "ganforge"))


def has_test_split(data: DataConfig) -> bool:
    """Whether the data set has an official test split (`folder:` and `npz:` sets have none)."""
    try:
        load_dataset(data, "test")
    except DataError:
        return False
    return True


# Sources whose argument names another data set rather than a path.
WRAPPING_SOURCES = ("mosaic", "styled", "domain")


def canonical_name(name: str) -> str:
    """A data set name with every path in it made absolute (the cache key of its classifier):
    'folder:x' -> 'folder:/abs/x', 'domain:b:styled:folder:x' -> 'domain:b:styled:folder:/abs/x'."""
    kind, arg = parse_name(name)
    if not arg:
        return kind
    if kind == "domain":
        side, _, inner = arg.partition(":")
        return f"domain:{side}:{canonical_name(inner)}" if inner else name
    if kind in WRAPPING_SOURCES:
        return f"{kind}:{canonical_name(arg)}"
    return f"{kind}:{Path(arg).resolve()}"


def classifier_slug(data: DataConfig, own_split: bool) -> str:
    """The cache folder name of a data set's feature classifier: one per data set (paths made
    absolute), data folder, resolution, channel count, split and class subset (data.classes
    renumbers the classes, so a subset needs a classifier of its own)."""
    kind, _ = parse_name(data.name)
    where = str(Path(data.data_dir).resolve()) if data.data_dir else ""
    classes = [] if data.classes is None else [["classes", list(data.classes)]]
    key = [canonical_name(data.name), where, data.resolution, data.channels] + \
        (["reference part"] if own_split else []) + classes
    digest = hashlib.sha1(json.dumps(key).encode()).hexdigest()[:10]
    return f"{kind}-{data.resolution}px-{data.channels}ch-{digest}"


def feature_classifier(data: DataConfig, quiet: bool = False) -> Path:
    """The cached classifier run for this data set, resolution and channel count; trained
    with `ganforge classify train` defaults the first time it is asked for, always in fp32:
    the feature space of FID must not depend on whether the CPU has bf16 units.

    It learns from the reference images only: the train split, or, for a set without a test
    split, the fixed reference part of `load_splits` (written to an npz file beside the run
    while it trains), so the held-out images of the floor are as new to it as samples are.
    """
    own_split = not has_test_split(data)
    slug = classifier_slug(data, own_split)
    run_dir = cache_dir() / "classifiers" / slug
    last = rundir.checkpoint_path(run_dir, "last")
    if last.is_file():
        meta = checkpoint.read_meta(last)
        if meta["step"] >= meta["config"]["train"]["steps"]:
            return run_dir
    from .objectives.classifier import CLASSIFY_DEFAULTS
    from .resolve import make_config
    from .training import Trainer

    def train(resume=None, overrides=()):
        return Trainer(make_config(resume=resume, overrides=overrides), resume=resume is not None).run()

    if not quiet:
        print(f"training a feature classifier for {data.name} (once; cached in {run_dir})", flush=True)
    reference_file = run_dir.with_name(slug + REFERENCE_SUFFIX)
    if own_split and not reference_file.is_file():
        _write_reference(load_splits(data).reference, reference_file)
    if last.is_file():  # an interrupted earlier attempt: finish it
        train(resume=run_dir, overrides={"log.progress": False})
    else:
        name, data_dir = (f"npz:{reference_file}", None) if own_split else (data.name, data.data_dir)
        overrides = {**CLASSIFY_DEFAULTS, "data.name": name, "data.data_dir": data_dir,
                     "data.resolution": data.resolution, "data.channels": data.channels,
                     "data.classes": None if own_split else data.classes,
                     "train.precision": "fp32", "out": str(run_dir), "log.progress": False}
        if run_dir.exists():  # a directory without a checkpoint: start it again
            import shutil
            shutil.rmtree(run_dir)
        train(overrides=overrides)
    reference_file.unlink(missing_ok=True)  # trained: the copy of the images is not needed again
    return run_dir


def _write_reference(images: ImageSet, path: Path) -> None:
    """The reference part as an npz archive (`npz:` source layout), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, x=to_hwc(images.images), y=images.labels.numpy())


def build_extractor(data: DataConfig, classifier: str | Path | None = None,
                    inception_weights: str | Path | None = None, device: str = "cpu", quiet: bool = False):
    """Inception when weights are given, else the given or cached classifier."""
    if inception_weights is not None:
        from .metrics.inception import InceptionFeatures
        return InceptionFeatures(str(inception_weights), device)
    if classifier is None:
        probe = load_dataset(data, "train")
        if probe.labels is None:
            raise DataError(f"data set {data.name!r} has no labels, so ganforge cannot train a "
                            f"feature classifier for it; pass --inception-weights FILE or "
                            f"--classifier RUN")
        classifier = feature_classifier(data, quiet)
    return ClassifierFeatures(classifier, device)


# The real images: reference and held-out.
@dataclass
class RealSplits:
    """The real images of an evaluation and how they were chosen.

    `train` holds every image the generator may have trained on; `reference` is what samples
    are compared with (all of `train`, or its fixed reference part); `heldout` makes the
    floor. `heldout_in_train` gives, for a set without a test split, each held-out image's
    index in `train` (None when the held-out images are a separate test split).
    """

    train: ImageSet
    reference: ImageSet
    heldout: ImageSet
    heldout_in_train: torch.Tensor | None
    how: str


def heldout_split(labels: torch.Tensor | None, n: int,
                  share: float = HELDOUT_SHARE) -> tuple[torch.Tensor, torch.Tensor]:
    """(reference, held-out) indices of a set without a test split, fixed once (seed 0).

    With labels, `share` of each class (rounded, at least 2 images in all) is held out and
    every class keeps at least one reference image, so both sides see every class in its
    proportion; without labels, `share` of the whole set.

    Args:
        labels: N class indices, or None.
        n: number of images.
        share: the held-out share.

    Example:
        >>> reference, heldout = heldout_split(torch.tensor([0] * 10 + [1] * 5), 15)
        >>> len(reference), len(heldout)
        (12, 3)
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    if labels is None:
        cut = min(max(2, int(n * share)), n - 1)
        return order[cut:].sort().values, order[:cut].sort().values
    held = []
    shuffled = labels.cpu()[order]
    for c in shuffled.unique().tolist():
        members = order[shuffled == c]
        held.append(members[:min(int(len(members) * share + 0.5), len(members) - 1)])
    held_index = torch.cat(held)
    if len(held_index) < 2:  # tiny sets: two held-out images at least, as without labels
        held_index = torch.cat([held_index, order[~torch.isin(order, held_index)]])[:2]
    keep = torch.ones(n, dtype=torch.bool)
    keep[held_index] = False
    return keep.nonzero().flatten(), held_index.sort().values


def load_splits(data: DataConfig) -> RealSplits:
    """The data set's real images as reference and held-out parts: the train and test splits
    when the set has a test split, else `heldout_split` of the training images.

    Example:
        >>> load_splits(DataConfig(name="digits")).how
        'test split'
    """
    train = load_dataset(data, "train")
    try:
        return RealSplits(train, train, load_dataset(data, "test"), None, TEST_SPLIT)
    except DataError:
        pass
    reference, heldout = heldout_split(train.labels, len(train))
    per = " of each class" if train.labels is not None else ""
    how = (f"a fixed {HELDOUT_SHARE:.0%}{per} of the training images, compared with the other "
           f"{1 - HELDOUT_SHARE:.0%} (no test split; the GAN may have trained on them)")
    return RealSplits(train, train.subset(reference), train.subset(heldout), heldout, how)


def real_splits(data: DataConfig) -> tuple[ImageSet, ImageSet, str]:
    """(reference, held-out, how) of `load_splits`."""
    splits = load_splits(data)
    return splits.reference, splits.heldout, splits.how


def _subset(images: ImageSet, limit: int) -> ImageSet:
    if len(images) <= limit:
        return images
    return images.subset(torch.randperm(len(images), generator=torch.Generator().manual_seed(1))[:limit])


def _features_trained_on(extractor, data: DataConfig, splits: RealSplits) -> str:
    """What the feature network learnt from, in words, and whether the held-out images were among it."""
    trained_on = getattr(extractor, "trained_on", None)
    if trained_on is None:
        return "unknown"
    if trained_on.endswith(REFERENCE_SUFFIX):
        return "the reference images only (held-out images unseen)"
    if trained_on == data.name:
        if splits.heldout_in_train is None:
            return "the train split (held-out images unseen)"
        return "all training images, held-out ones included (the floor flatters)"
    return trained_on


# Collapse warnings.
def collapse_warnings(model: dict, floor: dict, class_names: list[str] | None = None) -> list[str]:
    """Warnings for samples far less varied than real data, whatever their FID.

    "Far below the floor" means below FAR_BELOW_FLOOR (one half) of the real-data floor's
    value of the same number, measured in the same feature space. Checked: `recall` (the
    share of reference images whose k-NN ball holds a sample), `diversity_ratio` (mean
    pairwise feature distance of all samples over that of the reference images) and, for
    conditional models, each entry of `per_class_diversity` against the floor's for that
    class. A generator that repeats one image per class fails all three; a good one scores
    about the floor.

    Args:
        model: the model's scores (`Evaluator.__call__`).
        floor: the floor's scores (`Evaluator.floor`).
        class_names: names to print for class indices (default: the indices).

    Example:
        >>> collapse_warnings({"recall": 0.02}, {"recall": 0.6})[0][:41]
        'recall 0.02 is below 50% of the real-data'
    """
    warnings = []
    for key, what in (("recall", "the samples cover little of the real data"),
                      ("diversity_ratio", "the samples vary far less than real images")):
        value, reference = model.get(key), floor.get(key)
        if value is not None and reference is not None and value < FAR_BELOW_FLOOR * reference:
            fid = f", at FID {model['fid']:.4g}" if "fid" in model else ""
            warnings.append(f"{key} {value:.3g} is below {FAR_BELOW_FLOOR:.0%} of the real-data floor "
                            f"({reference:.3g}){fid}: {what}; mode collapse?")
    ours, theirs = model.get("per_class_diversity") or [], floor.get("per_class_diversity") or []
    low = [(value / reference, c, value, reference) for c, (value, reference) in enumerate(zip(ours, theirs))
           if value is not None and reference is not None and value < FAR_BELOW_FLOOR * reference]
    if low:
        _, c, value, reference = min(low)
        name = class_names[c] if class_names and c < len(class_names) else str(c)
        checked = sum(v is not None and r is not None for v, r in zip(ours, theirs))
        warnings.append(f"per-class diversity is below {FAR_BELOW_FLOOR:.0%} of the real-data floor "
                        f"in {len(low)} of {checked} classes (worst: class {name}, {value:.3g} vs "
                        f"{reference:.3g}): samples of one class look alike (collapse within classes)")
    return warnings


# The evaluator.
class Evaluator:
    """Holds real features once; `__call__(generator)` scores a generator against them.

    Example:
        >>> ev = Evaluator(DataConfig(name="digits"), build_extractor(DataConfig(name="digits")))
        >>> ev(ganforge.load("runs/demo").net)["fid"]
    """

    def __init__(self, data: DataConfig, extractor, n: int | None = None, seed: int = 0):
        splits = load_splits(data)
        self.data, self.extractor, self.seed = data, extractor, seed
        self.n = n or min(len(splits.heldout), MAX_SAMPLES)
        if self.n < MIN_SAMPLES:
            raise ConfigError(f"evaluation needs at least {MIN_SAMPLES} samples, got n={self.n}")
        labels = splits.reference.labels
        self.class_names = list(splits.reference.class_names) if labels is not None else []
        self.prior = None if labels is None else \
            torch.bincount(labels.cpu(), minlength=len(self.class_names)).to(torch.float64)
        reference = _subset(splits.reference, MAX_REAL)
        self.real_feats, self.real_probs = extractor.features_and_probs(reference.images)
        self.real_labels = None if reference.labels is None else reference.labels.cpu()
        self.real_spread = metrics.mean_pairwise_distance(self.real_feats)
        self.class_spread = self._class_spreads()
        self.heldout = splits.heldout
        self.setup = {"extractor": extractor.name, "n_samples": self.n, "n_real": len(reference),
                      "n_heldout": len(splits.heldout), "heldout": splits.how, "seed": seed,
                      "data_set": data.name,
                      "features_trained_on": _features_trained_on(extractor, data, splits)}
        if self.prior is not None:  # what a conditional model is asked for
            self.setup["labels"] = LABELS_NOTE

    @functools.cached_property
    def floor(self) -> dict:
        """The held-out real images scored as if they were samples: what a perfect generator
        gets. Computed on first use (training's periodic evaluation never needs it)."""
        heldout = self.heldout
        held_feats, held_probs = self.extractor.features_and_probs(heldout.images)
        floor = self._scores(held_feats, held_probs)
        if heldout.labels is not None and self.real_labels is not None:
            floor.update(self._per_class(held_feats, heldout.labels.cpu(), len(self.class_names)))
        if self.extractor.num_classes and heldout.labels is not None:
            floor["sample_accuracy"] = float((held_probs.argmax(1) == heldout.labels.cpu()).float().mean())
        return floor

    def _class_spreads(self) -> list:
        """Mean pairwise feature distance of the reference images of each class (None if too few)."""
        if self.real_labels is None:
            return []
        spreads = []
        for c in range(len(self.class_names)):
            members = self.real_feats[self.real_labels == c]
            spread = metrics.mean_pairwise_distance(members) if len(members) >= MIN_SAMPLES else 0.0
            spreads.append(spread if spread > 0 else None)
        return spreads

    def _scores(self, feats: torch.Tensor, probs: torch.Tensor) -> dict:
        kid, kid_std = metrics.kid(self.real_feats, feats, subset_size=min(1000, len(feats)), seed=self.seed)
        precision, recall = metrics.precision_recall(self.real_feats, feats)
        density, coverage = metrics.density_coverage(self.real_feats, feats)
        scores = {"fid": metrics.fid(self.real_feats, feats), "kid": kid, "kid_std": kid_std,
                  "precision": precision, "recall": recall, "density": density, "coverage": coverage,
                  "diversity_ratio": metrics.mean_pairwise_distance(feats) / max(self.real_spread, 1e-12)}
        is_mean, is_std = metrics.inception_score(probs, splits=min(10, len(probs) // 2) or 1)
        scores.update({"is": is_mean, "is_std": is_std})
        if self.extractor.num_classes:
            hist = metrics.class_histogram(probs.argmax(1), self.extractor.num_classes)
            scores.update({"classes_present": hist["classes_present"],
                           "class_entropy": hist["normalized_entropy"]})
        return scores

    def _per_class(self, feats: torch.Tensor, labels: torch.Tensor, classes: int) -> dict:
        """Per class c, the images labelled c against the reference images of class c:
        diversity (mean pairwise distance over the reference's), recall and coverage; None
        where either side has fewer than MIN_SAMPLES images. `diversity_min`/`diversity_mean`
        summarise the classes that have a value."""
        diversity, recall, coverage = [], [], []
        for c in range(classes):
            fake = feats[labels == c]
            real = self.real_feats[self.real_labels == c] if self.real_labels is not None else fake[:0]
            spread = self.class_spread[c] if c < len(self.class_spread) else None
            enough = min(len(real), len(fake)) >= MIN_SAMPLES and spread is not None
            diversity.append(metrics.mean_pairwise_distance(fake, seed=self.seed) / spread
                             if enough else None)
            recall.append(metrics.precision_recall(real, fake)[1] if enough else None)
            coverage.append(metrics.density_coverage(real, fake)[1] if enough else None)
        result = {"per_class_diversity": diversity, "per_class_recall": recall,
                  "per_class_coverage": coverage}
        known = [value for value in diversity if value is not None]
        if known:
            result.update({"diversity_min": min(known), "diversity_mean": sum(known) / len(known)})
        return result

    def score_images(self, images: torch.Tensor) -> dict:
        """Scores of given uint8 N x C x H x W images (e.g. an editor's outputs)."""
        feats, probs = self.extractor.features_and_probs(images)
        return self._scores(feats, probs)

    def sample_labels(self, num_classes: int) -> torch.Tensor:
        """`n` class labels in the reference images' class proportions (largest-remainder
        counts, so the shares are exact up to one image), in an order shuffled with the seed;
        equal shares when the reference images have no labels.

        Example:
            >>> Evaluator(DataConfig(name="digits"), extractor, n=100).sample_labels(10).bincount()
        """
        prior = torch.ones(num_classes, dtype=torch.float64)
        if self.prior is not None and self.prior[:num_classes].sum() > 0:
            prior = torch.zeros(num_classes, dtype=torch.float64)
            prior[:min(num_classes, len(self.prior))] = self.prior[:num_classes]
        share = prior / prior.sum() * self.n
        counts = share.floor().long()
        extra = (share - counts).argsort(descending=True, stable=True)[:self.n - int(counts.sum())]
        counts[extra] += 1
        labels = torch.repeat_interleave(torch.arange(num_classes), counts)
        return labels[torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed))]

    def conditional(self, net: torch.nn.Module) -> bool:
        """Whether `net` is sampled and scored per class."""
        return getattr(net, "num_classes", 0) > 0 and bool(self.extractor.num_classes)

    @torch.no_grad()
    def sample(self, net: torch.nn.Module, progress=None, truncation: float | None = None,
               critic=None, keep_best: float | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`n` uint8 samples of `net` drawn with the evaluator's seed (and `truncation`, and
        the best `keep_best` share by `critic`), and their labels (`sample_labels`) when
        `net` is conditional; `progress(done, total)` after each batch."""
        was_training = net.training
        net.eval()
        labels = self.sample_labels(net.num_classes) if self.conditional(net) else None
        try:
            images = generate(net, self.n, self.seed, labels, truncation=truncation, progress=progress,
                              critic=critic, keep_best=keep_best)
        finally:
            net.train(was_training)
        return images, labels

    def score_samples(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                      num_classes: int = 0) -> dict:
        """Scores of samples; with their requested labels, also the feature classifier's
        accuracy on them (`sample_accuracy`) and the per-class numbers of `_per_class`."""
        feats, probs = self.extractor.features_and_probs(images)
        scores = self._scores(feats, probs)
        if labels is not None:
            predicted = probs.argmax(1)
            scores["sample_accuracy"] = float((predicted == labels).float().mean())
            scores["per_class_accuracy"] = [float((predicted[labels == c] == c).float().mean())
                                            if (labels == c).any() else None for c in range(num_classes)]
            scores.update(self._per_class(feats, labels, num_classes))
        return scores

    def __call__(self, net: torch.nn.Module) -> dict:
        """Score generator `net` on `n` samples drawn with the evaluator's seed."""
        images, labels = self.sample(net)
        return self.score_samples(images, labels, getattr(net, "num_classes", 0))

    def warnings(self, scores: dict) -> list[str]:
        """`collapse_warnings` of `scores` against this evaluator's floor."""
        return collapse_warnings(scores, self.floor, self.class_names)

    def memorization(self, images: torch.Tensor, grid_path: str | Path | None = None) -> dict:
        """`memorization_audit` of samples against this evaluator's data set and features."""
        return memorization_audit(self.data, self.extractor, images, grid_path)


# Memorisation.
def memorization_audit(data: DataConfig, extractor, images: torch.Tensor,
                       grid_path: str | Path | None = None) -> dict:
    """How many samples are (near) copies of training images.

    Each sample's nearest training image is found in feature space and in pixel space
    (Euclidean, pixel values scaled to [0, 1]); so is each held-out real image's (for a set
    without a test split, its nearest *other* training image). `share_features` and
    `share_pixels` are the shares of samples closer to a training image than the
    MEMORIZATION_PERCENTILE-th (5th) percentile of the held-out distances
    (`threshold_features`, `threshold_pixels`): about 0.05 for a generator that makes new
    images as real data does, near 1 for one that copies its training set. The grid shows
    the GRID_PAIRS samples closest to a training image in pixel space, each followed by
    that image.

    Args:
        data: the generator's data set.
        extractor: the feature extractor (`build_extractor`).
        images: uint8 N x C x H x W samples.
        grid_path: where to write the PNG grid of closest pairs (None: no grid).

    Example:
        >>> audit = memorization_audit(data, extractor, generate(net, 1000), "runs/x/memorization.png")
        >>> audit["share_pixels"]
    """
    splits = load_splits(data)
    train, heldout, exclude = splits.train, splits.heldout, splits.heldout_in_train
    if len(heldout) > MAX_AUDIT_HELDOUT:
        chosen = torch.randperm(len(heldout), generator=torch.Generator().manual_seed(2))[:MAX_AUDIT_HELDOUT]
        heldout = heldout.subset(chosen)
        exclude = None if exclude is None else exclude[chosen]
    train_feats = extractor.features_and_probs(train.images)[0]
    if exclude is not None:  # the held-out images are training images: their features are known
        held_feats = train_feats[exclude]
    else:
        held_feats = extractor.features_and_probs(heldout.images)[0]
    # Per space: samples, held-out images, training images, the dtype searched in, the scale.
    spaces = {"features": (extractor.features_and_probs(images)[0], held_feats, train_feats,
                           torch.float64, 1.0),
              "pixels": (images.flatten(1), heldout.images.flatten(1), train.images.flatten(1),
                         torch.float32, 255.0)}
    audit = {"percentile": MEMORIZATION_PERCENTILE, "n_samples": len(images), "n_training": len(train),
             "n_heldout": len(heldout)}
    for space, (samples, held, training, dtype, scale) in spaces.items():
        held_d = metrics.nearest_neighbours(held, training, exclude, dtype=dtype)[0].double() / scale
        sample_d, nearest = metrics.nearest_neighbours(samples, training, dtype=dtype)
        sample_d = sample_d.double() / scale
        threshold = float(torch.quantile(held_d, MEMORIZATION_PERCENTILE / 100))
        audit[f"share_{space}"] = float((sample_d < threshold).double().mean())
        audit[f"threshold_{space}"] = threshold
        audit[f"median_{space}"] = float(sample_d.median())
        audit[f"heldout_median_{space}"] = float(held_d.median())
        if space == "pixels" and grid_path is not None:
            closest = sample_d.argsort(stable=True)[:GRID_PAIRS]
            pairs = torch.stack([image for i in closest.tolist()
                                 for image in (images[i], train.images[int(nearest[i])])])
            save_png(grid(to_hwc(pairs), nrow=8), grid_path)
            audit["grid"] = str(grid_path)
    return audit


# The Classification Accuracy Score.
def classification_accuracy_score(run_dir: str | Path, checkpoint_name: str, data: DataConfig,
                                  heldout: ImageSet, recipe: str | Path, seed: int = 0,
                                  device: str = "cpu", quiet: bool = False,
                                  truncation: float | None = None,
                                  keep_best: float | None = None) -> dict | None:
    """Classification Accuracy Score (Ravuri & Vinyals 2019): how well a classifier trained on
    a conditional generator's samples alone classifies real held-out images; beside it, the
    accuracy of the same recipe trained on real images.

    The recipe is the classifier run `recipe` (the evaluation's feature classifier, trained on
    the reference images): its model, objective options and train section, with the generator's
    data set and `objective.synthetic_only`: every batch is fresh samples of the frozen EMA
    generator (`ganforge classify train --synthetic RUN --synthetic-only`), labels in the real
    class proportions, `seed` as train.seed. It trains in a temporary directory, deleted after.

    Args:
        run_dir: the conditional generator's run; checkpoint_name: which of its checkpoints.
        data: the generator's data set; heldout: the labelled real images to test on.
        recipe: the real-data classifier run whose recipe and accuracy are used.

    Returns {"cas": ..., "real": ..., "how": ...}, or None when the recipe classifier's
    classes are not the generator's (its accuracy would not be comparable).

    Example:
        >>> splits = load_splits(run.config.data)
        >>> classification_accuracy_score("runs/cgan", "last", run.config.data, splits.heldout,
        ...                               feature_classifier(run.config.data))["cas"]
    """
    from .resolve import make_config
    from .training import Trainer

    real = load_classifier(recipe, device=device)
    generator_meta = checkpoint.read_meta(rundir.find_checkpoint(run_dir, checkpoint_name))
    if list(real.class_names) != list(generator_meta.get("class_names", [])):
        return None
    labels = heldout.labels.cpu()
    real_accuracy = float((real.predict(heldout.images) == labels).float().mean())
    config = real.meta["config"]
    raw = {"model": config["model"], "objective": config["objective"], "train": config["train"],
           "health": config.get("health", {}), "data": asdict(data)}
    overrides = {"objective.synthetic": str(Path(run_dir).resolve()),
                 "objective.synthetic_checkpoint": checkpoint_name, "objective.synthetic_only": True,
                 "objective.synthetic_labels": "prior", "objective.augment_with": "",
                 "objective.synthetic_truncation": 1.0 if truncation is None else truncation,
                 "objective.synthetic_keep_best": 1.0 if keep_best is None else keep_best,
                 "train.seed": seed, "train.device": device,
                 "log.progress": False, "log.tensorboard": "no", "log.eval_every": 0}
    resolved = make_config(raw, overrides=overrides)
    if not quiet:
        print(f"training a classifier on samples only for the classification accuracy score "
              f"({resolved.train.steps} steps of {resolved.model.name})", flush=True)
    with tempfile.TemporaryDirectory(prefix="ganforge-cas-") as folder:
        resolved.out = str(Path(folder) / "cas")
        Trainer(resolved).run()
        trained = load_classifier(resolved.out, device=device)
        cas = float((trained.predict(heldout.images) == labels).float().mean())
    how = (f"a {resolved.model.name} classifier of the real-data classifier's recipe "
           f"({resolved.train.steps} steps, batch {resolved.train.batch_size}, train.seed {seed}) "
           f"trained on fresh samples only (labels in the real class proportions), tested on the "
           f"{len(labels)} held-out real images; floor: the real-data classifier ({recipe}) on them")
    return {"cas": cas, "real": real_accuracy, "how": how}


# Reports.
def evaluate_run(run_dir: str | Path, n: int | None = None, seed: int = 0, checkpoint: str = "last",
                 classifier: str | Path | None = None, inception_weights: str | Path | None = None,
                 device: str = "cpu", quiet: bool = False, memorization: bool = False,
                 cas: bool = True, progress=None, truncation: float | None = None,
                 keep_best: float | None = None, resolution: int | None = None) -> dict:
    """Evaluate a run's generator and write RUN/eval.json (`eval_file_name`).

    Args:
        run_dir: a run directory of a generative model (GAN or VAE).
        n: samples to generate (default: as many as held-out real images, at most 10,000).
        seed: noise seed of the samples (and of the order of a conditional model's labels).
        checkpoint: 'last', 'best', 'step-NNNNNN' or a .safetensors path.
        classifier: a `ganforge classify train` run to take features from (default: cached).
        inception_weights: a local Inception-v3 weights file (uses Inception pool3 features).
        memorization: also run `memorization_audit` (report["memorization"]) and write
            RUN/memorization.png.
        cas: for a conditional model, also train a classifier on its samples for the
            Classification Accuracy Score (`cas`, `classification_accuracy_score`).
        progress: called as progress(done, n) while the samples are drawn.
        truncation: psi of the truncation trick for every sample scored (and those CAS trains
            on): precision up, recall down; None is none. Recorded in the report's setup and
            written to RUN/eval-truncation-PSI.json instead of RUN/eval.json.
        keep_best: GANs: score the best share of n / keep_best candidates by the run's
            discriminator (and CAS trains on such samples), `models.rejection`; recorded in
            the setup and written to RUN/eval-keep-best-SHARE.json (`eval_file_name`).
        resolution: score in the feature space of this resolution instead of the run's own:
            the samples are resized the way the data pipeline resizes real images
            (`conform`), and the real images, floor and feature classifier are those of this
            resolution, so runs trained at different sizes (a 28-pixel and a 32-pixel recipe)
            compare in one space; FIDs of two spaces do not. CAS stays in the run's own space
            (its classifier trains on the samples as drawn). Written to RUN/eval-RESpx.json.

    Example:
        >>> report = evaluate_run("runs/demo")
        >>> report["model"]["fid"], report["floor"]["fid"], report["warnings"]
    """
    if truncation is not None:
        check_truncation(truncation)
    if keep_best is not None:
        check_keep_best(keep_best)
    model = load(run_dir, checkpoint, device)
    if not hasattr(model, "sample"):
        raise ConfigError(f"run {str(run_dir)!r} is an editing run (task {model.task!r}); "
                          f"score it with ganforge.evaluate_edit.evaluate_editing")
    data = model.config.data
    space = scoring_space(data, resolution, classifier)
    extractor = build_extractor(space, classifier, inception_weights, device, quiet)
    evaluator = Evaluator(space, extractor, n, seed)
    critic = model.critic() if keep_best is not None else None
    images, labels = evaluator.sample(model.net, progress, truncation, critic, keep_best)
    images = conform(images, space.resolution, space.channels)
    scores = evaluator.score_samples(images, labels, getattr(model.net, "num_classes", 0))
    floor = dict(evaluator.floor)
    report = {"model": scores, "floor": floor,
              "setup": {**evaluator.setup, "checkpoint": checkpoint, "step": model.step,
                        "run": str(run_dir), "time": time.strftime("%Y-%m-%dT%H:%M:%S")},
              "warnings": evaluator.warnings(scores)}
    if truncation is not None:
        report["setup"]["truncation"] = truncation
    if keep_best is not None:
        report["setup"]["keep_best"] = keep_best
    if space is not data:
        report["setup"]["resolution"] = (f"samples drawn at {data.resolution} px, resized to "
                                         f"{space.resolution} px like the real images and scored in "
                                         f"the {space.resolution}-pixel feature space")
    if cas and labels is not None:
        recipe = (getattr(extractor, "run_dir", None) if space is data else None) or feature_classifier(data, quiet)
        heldout = evaluator.heldout if space is data else load_splits(data).heldout
        result = classification_accuracy_score(run_dir, checkpoint, data, heldout, recipe,
                                               seed, device, quiet, truncation, keep_best=keep_best)
        if result is None:
            report["setup"][CAS_KEY] = (f"not measured: the classifier {recipe} knows other classes "
                                        f"than the generator")
        else:
            scores[CAS_KEY], floor[CAS_KEY] = result["cas"], result["real"]
            report["setup"][CAS_KEY] = result["how"]
    if labels is None:
        report["setup"].pop("labels", None)
    if n is not None and n != report["setup"]["n_heldout"]:
        report["setup"]["note"] = ("n differs from the held-out count, so the floor was measured "
                                   "with another sample size than the model")
    if memorization:
        report["memorization"] = evaluator.memorization(images, Path(run_dir) / MEMORIZATION_GRID)
    atomic.write_json(Path(run_dir) / eval_file_name(truncation, keep_best, space.resolution
                                                      if space is not data else None), report)
    return report


def scoring_space(data: DataConfig, resolution: int | None, classifier: str | Path | None = None) -> DataConfig:
    """The data set as scored: `data` itself, or a copy at another `resolution` (its own
    feature classifier, real images and floor) where one is asked for."""
    if resolution is None or resolution == data.resolution:
        return data
    if resolution < 4:
        raise ConfigError(f"resolution {resolution}: a feature space needs at least 4 pixels")
    if classifier is not None:
        raise ConfigError(f"resolution {resolution} with classifier {str(classifier)!r}: a given "
                          f"classifier scores in the space it was trained in; give one or the other")
    return replace(data, resolution=resolution)


def eval_file_name(truncation: float | None = None, keep_best: float | None = None,
                   resolution: int | None = None) -> str:
    """eval.json, or eval-truncation-PSI.json / eval-keep-best-SHARE.json / eval-RESpx.json
    (the parts joined when several are given) for samples drawn or scored another way, so that
    one never replaces the run's plain evaluation (which the report and the studio show)."""
    parts = ([f"truncation-{truncation:g}"] if truncation is not None else []) + \
        ([f"keep-best-{keep_best:g}"] if keep_best is not None else []) + \
        ([f"{resolution}px"] if resolution is not None else [])
    return "eval.json" if not parts else f"eval-{'-'.join(parts)}.json"


def format_table(report: dict) -> str:
    """Metric, model value, real-data floor, and which way is better; then what was compared
    with what, the collapse warnings and the memorisation audit when there are any."""
    lines = [f"{'metric':<16}{'model':>12}{'real floor':>12}  better",
             f"{'-' * 16}{'-' * 12}{'-' * 12}  ------"]
    for key, value in report["model"].items():
        if not isinstance(value, float) or key.endswith("_std"):
            continue
        floor = report["floor"].get(key)
        std = report["model"].get(f"{key}_std")
        shown = f"{value:.4g}" + (f" ±{std:.2g}" if std is not None else "")
        lines.append(f"{key:<16}{shown:>12}{(f'{floor:.4g}' if floor is not None else '-'):>12}  "
                     f"{'higher' if key in HIGHER_IS_BETTER else 'lower'}")
    setup = report["setup"]
    lines.append(f"{setup['n_samples']} samples (seed {setup['seed']}) vs {setup['n_real']} real "
                 f"training images; floor: {setup['n_heldout']} held-out real images "
                 f"({setup['heldout']}); features: {setup['extractor']}, trained on "
                 f"{setup.get('features_trained_on', 'unknown')}")
    if "labels" in setup:
        lines.append(f"class labels of the samples: {setup['labels']}")
    if "resolution" in setup:
        lines.append(f"space: {setup['resolution']}" + (" (CAS in the run's own space)" if CAS_KEY in setup else ""))
    if "truncation" in setup:
        lines.append(f"samples truncated with psi {setup['truncation']:g} (more typical, less varied: "
                     f"compare precision and recall with an untruncated evaluation)")
    if "keep_best" in setup:
        lines.append(f"samples: the best {setup['keep_best']:.0%} of candidates by the run's discriminator "
                     f"(more precise, can be less varied: compare with a plain evaluation)")
    if CAS_KEY in setup:
        lines.append(f"{CAS_KEY} (classification accuracy score, train on samples, test on real): "
                     f"{setup[CAS_KEY]}")
    audit = report.get("memorization")
    if audit:
        lines.append(f"memorization: {audit['share_features']:.1%} of samples (features) and "
                     f"{audit['share_pixels']:.1%} (pixels) are closer to a training image than "
                     f"{100 - audit['percentile']:g}% of held-out real images are (about "
                     f"{audit['percentile']:g}% for new images); closest pairs: {audit.get('grid', '-')}")
    lines += [f"WARNING: {warning}" for warning in report.get("warnings", [])]
    return "\n".join(lines)
