"""Evaluating generators: metrics of generated images next to the real-data floor.

Features come from the penultimate layer of a classifier trained on the run's own data set
(trained once and cached, so evaluation works offline on any labelled data set), or from
Inception-v3 when the user passes a local weights file. Every number is printed beside the
same metric for real held-out images against real training images: what a perfect
generator would score with the same number of images.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch

from . import checkpoint, metrics, rundir
from .config import DataConfig
from .data import ImageSet, load_dataset
from .data.sources import parse_name
from .errors import ConfigError, DataError
from .inference import generate, load, load_classifier

MAX_REAL = 20_000          # real reference images at most (a fixed random subset beyond that)
MAX_SAMPLES = 10_000       # generated images by default at most
HELDOUT_SHARE = 0.2        # held out from sets without a test split
MIN_SAMPLES = 6            # k-NN precision/recall and density need more than k=5 neighbours
# Metrics where a larger value is better; for the rest smaller is better.
HIGHER_IS_BETTER = {"is", "precision", "recall", "density", "coverage", "classes_present",
                    "class_entropy", "cas", "diversity_ratio"}


# Feature extractors.
class ClassifierFeatures:
    """Penultimate-layer features and class probabilities of a ganforge classifier."""

    def __init__(self, run_dir: str | Path, device: str = "cpu"):
        self.classifier = load_classifier(run_dir, device=device)
        self.run_dir = str(run_dir)
        self.name = f"classifier:{self.classifier.meta['config']['model']['name']} ({run_dir})"
        self.num_classes = len(self.classifier.class_names)

    def features_and_probs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.classifier.features(images)
        logits = self.classifier.net.out(features.to(self.classifier.device)).float().cpu()
        return features, logits.softmax(1)


def cache_dir() -> Path:
    """Where trained feature classifiers are kept: $GANFORGE_CACHE or ~/.cache/ganforge."""
    return Path(os.environ.get("GANFORGE_CACHE", Path.home() / ".cache" / "ganforge"))


def feature_classifier(data: DataConfig, quiet: bool = False) -> Path:
    """The cached classifier run for this data set, resolution and channel count; trained
    with `ganforge classify train` defaults the first time it is asked for, always in fp32:
    the feature space of FID must not depend on whether the CPU has bf16 units."""
    kind, arg = parse_name(data.name)
    source = f"{kind}:{Path(arg).resolve()}" if arg else kind
    where = str(Path(data.data_dir).resolve()) if data.data_dir else ""
    key = json.dumps([source, where, data.resolution, data.channels])
    slug = f"{kind}-{data.resolution}px-{data.channels}ch-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
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
    if last.is_file():  # an interrupted earlier attempt: finish it
        train(resume=run_dir, overrides={"log.progress": False})
    else:
        overrides = {**CLASSIFY_DEFAULTS, "data.name": data.name, "data.data_dir": data.data_dir,
                     "data.resolution": data.resolution, "data.channels": data.channels,
                     "train.precision": "fp32", "out": str(run_dir), "log.progress": False}
        if run_dir.exists():  # a directory without a checkpoint: start it again
            import shutil
            shutil.rmtree(run_dir)
        train(overrides=overrides)
    return run_dir


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


# The evaluator.
def real_splits(data: DataConfig) -> tuple[ImageSet, ImageSet, str]:
    """(reference, held-out, how): the test split when the set has one, else a fixed 20 %."""
    train = load_dataset(data, "train")
    try:
        return train, load_dataset(data, "test"), "test split"
    except DataError:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        cut = max(2, int(len(train) * HELDOUT_SHARE))
        return train.subset(order[cut:]), train.subset(order[:cut]), \
            f"fixed {HELDOUT_SHARE:.0%} of the training images"


def _subset(images: ImageSet, limit: int) -> ImageSet:
    if len(images) <= limit:
        return images
    return images.subset(torch.randperm(len(images), generator=torch.Generator().manual_seed(1))[:limit])


class Evaluator:
    """Holds real features once; `__call__(generator)` scores a generator against them.

    Example:
        >>> ev = Evaluator(DataConfig(name="digits"), build_extractor(DataConfig(name="digits")))
        >>> ev(ganforge.load("runs/demo").net)["fid"]
    """

    def __init__(self, data: DataConfig, extractor, n: int | None = None, seed: int = 0):
        reference, heldout, how = real_splits(data)
        reference = _subset(reference, MAX_REAL)
        self.extractor, self.seed = extractor, seed
        self.n = n or min(len(heldout), MAX_SAMPLES)
        if self.n < MIN_SAMPLES:
            raise ConfigError(f"evaluation needs at least {MIN_SAMPLES} samples, got n={self.n}")
        self.real_feats, self.real_probs = extractor.features_and_probs(reference.images)
        self.real_labels = reference.labels
        held_feats, held_probs = extractor.features_and_probs(heldout.images)
        self.real_spread = metrics.mean_pairwise_distance(self.real_feats)
        self.floor = self._scores(held_feats, held_probs)
        if extractor.num_classes and heldout.labels is not None:
            self.floor["cas"] = float((held_probs.argmax(1) == heldout.labels.cpu()).float().mean())
        self.setup = {"extractor": extractor.name, "n_samples": self.n, "n_real": len(reference),
                      "n_heldout": len(heldout), "heldout": how, "seed": seed, "data_set": data.name}

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

    def score_images(self, images: torch.Tensor) -> dict:
        """Scores of given uint8 N x C x H x W images (e.g. an editor's outputs)."""
        feats, probs = self.extractor.features_and_probs(images)
        return self._scores(feats, probs)

    @torch.no_grad()
    def __call__(self, net: torch.nn.Module) -> dict:
        """Score generator `net` on `n` samples drawn with the evaluator's seed."""
        was_training = net.training
        net.eval()
        labels = None
        conditional = getattr(net, "num_classes", 0) > 0 and self.extractor.num_classes
        if conditional:
            labels = torch.arange(self.n) % net.num_classes
        images = generate(net, self.n, self.seed, labels)
        net.train(was_training)
        feats, probs = self.extractor.features_and_probs(images)
        scores = self._scores(feats, probs)
        if conditional:
            predicted = probs.argmax(1)
            scores["cas"] = float((predicted == labels).float().mean())
            scores["per_class_accuracy"] = [float((predicted[labels == c] == c).float().mean())
                                            for c in range(net.num_classes)]
            scores["per_class_coverage"] = self._per_class_coverage(feats, labels, net.num_classes)
        return scores

    def _per_class_coverage(self, feats: torch.Tensor, labels: torch.Tensor, classes: int) -> list:
        """Coverage of each class's real images by the samples made for that class (None
        where either side has too few images for the k-NN balls)."""
        if self.real_labels is None:
            return [None] * classes
        result = []
        for c in range(classes):
            real, fake = self.real_feats[self.real_labels.cpu() == c], feats[labels == c]
            enough = min(len(real), len(fake)) >= MIN_SAMPLES
            result.append(metrics.density_coverage(real, fake)[1] if enough else None)
        return result


# Reports.
def evaluate_run(run_dir: str | Path, n: int | None = None, seed: int = 0, checkpoint: str = "last",
                 classifier: str | Path | None = None, inception_weights: str | Path | None = None,
                 device: str = "cpu", quiet: bool = False) -> dict:
    """Evaluate a run's generator and write RUN/eval.json.

    Args:
        run_dir: a run directory of a generative model (GAN or VAE).
        n: samples to generate (default: as many as held-out real images, at most 10,000).
        seed: noise seed of the samples.
        checkpoint: 'last', 'best', 'step-NNNNNN' or a .safetensors path.
        classifier: a `ganforge classify train` run to take features from (default: cached).
        inception_weights: a local Inception-v3 weights file (uses Inception pool3 features).

    Example:
        >>> report = evaluate_run("runs/demo")
        >>> report["model"]["fid"], report["floor"]["fid"]
    """
    model = load(run_dir, checkpoint, device)
    if not hasattr(model, "sample"):
        raise ConfigError(f"run {str(run_dir)!r} is an editing run (task {model.task!r}); "
                          f"score it with ganforge.evaluate_edit.evaluate_editing")
    data = model.config.data
    extractor = build_extractor(data, classifier, inception_weights, device, quiet)
    evaluator = Evaluator(data, extractor, n, seed)
    report = {"model": evaluator(model.net), "floor": evaluator.floor,
              "setup": {**evaluator.setup, "checkpoint": checkpoint, "step": model.step,
                        "run": str(run_dir), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}}
    if n is not None and n != report["setup"]["n_heldout"]:
        report["setup"]["note"] = ("n differs from the held-out count, so the floor was measured "
                                   "with another sample size than the model")
    path = Path(run_dir) / "eval.json"
    tmp = path.with_name(".eval.json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(path)
    return report


def format_table(report: dict) -> str:
    """Metric, model value, real-data floor, and which way is better."""
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
                 f"({setup['heldout']}); features: {setup['extractor']}")
    return "\n".join(lines)
