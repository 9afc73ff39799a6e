"""Evaluating unpaired translation (CycleGAN) runs, in both directions, beside baselines.

For a2b, domain A's held-out images are translated and scored as domain B images:
- realism: FID, KID, precision and recall against B's reference images, in the feature
  space of a classifier trained on domain B (or Inception with local weights), beside the
  floor (B's own held-out images scored the same way);
- content preservation, where the domains share labelled classes: the share of translations
  that the domain-B classifier puts in the source image's class, and the share of round
  trips (A -> B -> A) that the domain-A classifier puts there, beside that classifier's own
  accuracy on real held-out images; and the round trip's PSNR against the input;
- baselines scored the same way: the identity mapping (the input itself) and a histogram-
  matching colour transfer (each input's histogram matched to a random domain-B image's,
  per channel, with scikit-image), which a translator should beat on realism without losing
  the class.
b2a is the same with the roles swapped. Written to RUN/eval.json, with RUN/translations.png:
held-out inputs of A, their translations and round trips, then the same for B.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from . import atomic
from .data.domains import domain_config
from .data.imageset import match_channels
from .errors import ConfigError, DataError
from .evaluate import Evaluator, build_extractor, load_splits
from .imageio import grid, save_png, to_hwc
from .inference import TrainedTranslator, load

MAX_IMAGES = 2_000     # held-out inputs per direction at most (a fixed random subset beyond that)
REVERSE = {"a2b": "b2a", "b2a": "a2b"}
SIDES = {"a2b": ("a", "b"), "b2a": ("b", "a")}
GRID_COLUMNS = 8       # held-out inputs shown per direction in translations.png
GRID = "translations.png"
SHOWN = ("fid", "kid", "precision", "recall", "class_kept", "round_trip_class_kept", "round_trip_psnr")


def histogram_matched(images: torch.Tensor, references: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 N x C x H x W, each image's per-channel histogram matched to a reference image
    drawn at random (seeded) from `references` (uint8 M x C x H x W)."""
    from skimage.exposure import match_histograms

    picks = torch.randint(len(references), (len(images),), generator=torch.Generator().manual_seed(seed))
    source, target = to_hwc(images), to_hwc(references)
    out = np.stack([match_histograms(source[i], target[int(j)], channel_axis=-1)
                    for i, j in enumerate(picks.tolist())])
    return torch.from_numpy(np.clip(np.round(out), 0, 255).astype(np.uint8)).permute(0, 3, 1, 2)


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean PSNR (dB) of uint8 image pairs, per image then averaged."""
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(255.0 ** 2 / mse)).mean())


class _Side:
    """One domain's evaluation pieces: config, held-out images, extractor and evaluator."""

    def __init__(self, data, side: str, inception_weights, device: str, quiet: bool, seed: int, n):
        self.config = domain_config(data, side)
        splits = load_splits(self.config)  # read once: the label check and the held-out inputs
        if inception_weights is None and splits.train.labels is None:
            raise DataError(f"domain {side.upper()} ({self.config.name}) has no labels, so ganforge cannot "
                            f"train a feature classifier for it; pass --inception-weights FILE")
        self.extractor = build_extractor(self.config, None, inception_weights, device, quiet)
        self.evaluator = Evaluator(self.config, self.extractor, seed=seed)
        heldout = splits.heldout
        limit = min(n or MAX_IMAGES, len(heldout))
        if limit < len(heldout):
            heldout = heldout.subset(torch.randperm(len(heldout), generator=torch.Generator().manual_seed(seed))[:limit])
        self.heldout, self.reference = heldout, splits.reference

    def classify(self, images: torch.Tensor) -> torch.Tensor | None:
        if not self.extractor.num_classes:
            return None
        return self.extractor.features_and_probs(images)[1].argmax(1)


def _kept(predicted: torch.Tensor | None, labels: torch.Tensor | None) -> float | None:
    if predicted is None or labels is None:
        return None
    return float((predicted == labels.cpu()).float().mean())


def evaluate_translation(run_dir: str | Path, n: int | None = None, seed: int = 0, checkpoint: str = "last",
                         inception_weights: str | Path | None = None, device: str = "cpu",
                         tile: int | None = None, quiet: bool = False) -> dict:
    """Score a translation run in both directions beside the identity and histogram-matching
    baselines, and write RUN/eval.json.

    Args:
        run_dir: a run directory of the translate task.
        n: held-out inputs per direction at most (default: all, up to 2,000).
        seed: seed of the subset and of the histogram baseline's reference images.
        inception_weights: a local Inception-v3 weights file (else per-domain classifiers).

    Example:
        >>> report = evaluate_translation("runs/translate")
        >>> report["a2b"]["model"]["fid"], report["a2b"]["identity"]["fid"]
    """
    model = load(run_dir, checkpoint, device)
    if not isinstance(model, TrainedTranslator):
        raise ConfigError(f"run {str(run_dir)!r} is not a translation run")
    data = model.config.data
    sides = {s: _Side(data, s, inception_weights, device, quiet, seed, n) for s in ("a", "b")}
    report = {"task": model.task}
    shown = []
    for direction, (src, dst) in SIDES.items():
        source, target = sides[src], sides[dst]
        inputs, labels = source.heldout.images, source.heldout.labels
        made = model.translate_batch(inputs, direction, tile=tile)
        back = model.translate_batch(made, REVERSE[direction])
        outputs = {"model": made,
                   "identity": match_channels(inputs.float(), made.shape[1]).round().to(torch.uint8),
                   "histogram_matching": histogram_matched(inputs, target.reference.images, seed)}
        rows = {}
        for name, images in outputs.items():
            scores = target.evaluator.score_images(images)
            scores["class_kept"] = _kept(target.classify(images), labels)
            rows[name] = scores
        shown += [inputs[:GRID_COLUMNS], made[:GRID_COLUMNS], back[:GRID_COLUMNS]]
        rows["model"]["round_trip_class_kept"] = _kept(source.classify(back), labels)
        rows["model"]["round_trip_psnr"] = psnr(back, inputs)
        floor = dict(target.evaluator.floor)
        floor["class_kept"] = floor.pop("sample_accuracy", None)  # the target classifier on real target images
        floor["round_trip_class_kept"] = source.evaluator.floor.get("sample_accuracy")
        report[direction] = {**rows, "floor": floor, "n": len(inputs)}
    report["setup"] = {"run": str(run_dir), "checkpoint": checkpoint, "step": model.step, "seed": seed,
                       "domains": {s: side.config.name for s, side in sides.items()},
                       "extractors": {s: side.extractor.name for s, side in sides.items()},
                       "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    columns = min(len(rows) for rows in shown)
    save_png(grid(to_hwc(torch.cat([rows[:columns] for rows in shown])), nrow=columns), Path(run_dir) / GRID)
    report["setup"]["grid"] = str(Path(run_dir) / GRID)
    atomic.write_json(Path(run_dir) / "eval.json", report)
    return report


def format_translation_table(report: dict) -> str:
    """Per direction: metric, model, identity, histogram matching, real-data floor."""
    lines = []
    columns = ("model", "identity", "histogram_matching", "floor")
    for direction in SIDES:
        part = report[direction]
        lines.append(f"{direction} ({part['n']} held-out inputs)")
        lines.append(f"  {'metric':<24}" + "".join(f"{c:>20}" for c in columns))
        for metric in SHOWN:
            cells = [part[c].get(metric) for c in columns]
            if all(v is None for v in cells):
                continue
            lines.append(f"  {metric:<24}" + "".join(f"{'-' if v is None else f'{v:.4g}':>20}" for v in cells))
    return "\n".join(lines)
