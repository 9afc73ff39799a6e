"""Evaluating a texture run: how close its samples are to the exemplar, how different they are
from each other, how well tileable samples wrap, beside the random-tiling baseline and another
crop of the exemplar itself; the same samples histogram-matched to the exemplar too. What `ganforge evaluate RUN` reports for a spatial-GAN run."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import atomic
from ..errors import ConfigError
from ..inference import load
from . import analysis
from .synthesis import exemplar_of, match_histogram, random_tiling, read_exemplar, sample_gan

SAMPLES = 4
SIZE = 256


def _scores(exemplar: dict, images: list[np.ndarray]) -> dict:
    scores = analysis.compare_to_set(exemplar, images)
    scores["diversity"] = analysis.diversity(images) if len(images) > 1 else None
    scores["seam"] = float(np.mean([analysis.seam_score(image) for image in images]))
    return scores


def evaluate_texture(run_dir: str | Path, n: int = SAMPLES, size: int = SIZE, seed: int = 0,
                     checkpoint: str = "last", device: str = "cpu") -> dict:
    """Score `n` size x size samples (plain, histogram-matched to the exemplar, and tileable) of
    a texture run against its exemplar, beside random tiling; writes RUN/eval.json.

    Example:
        >>> report = evaluate_texture("runs/brick")
        >>> report["gan"]["similarity"], report["tiling"]["similarity"], report["gan_tileable"]["seam"]
    """
    if n < 2:
        raise ConfigError(f"-n {n}: a texture evaluation needs at least 2 samples (diversity)")
    model = load(run_dir, checkpoint, device)
    if not hasattr(model.net, "noise"):
        raise ConfigError(f"run {str(run_dir)!r} is not a texture run (model {model.config.model.name!r})")
    path = exemplar_of(run_dir, model.config)
    exemplar = read_exemplar(path, model.config.data.channels)
    described = analysis.describe(exemplar)
    seeds = range(seed, seed + n)
    plain = [sample_gan(model.net, size, size, s)[0] for s in seeds]
    report = {
        "gan": _scores(described, plain),
        "gan_matched": _scores(described, [match_histogram(image, exemplar) for image in plain]),
        "gan_tileable": _scores(described, [sample_gan(model.net, size, size, s, tileable=True)[0]
                                            for s in seeds]),
        "tiling": _scores(described, [random_tiling(exemplar, size, size, s) for s in seeds]),
        "setup": {"run": str(run_dir), "exemplar": str(path), "checkpoint": checkpoint, "step": model.step,
                  "samples": n, "size": size, "seed": seed, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}}
    atomic.write_json(Path(run_dir) / "eval.json", report)
    return report


def format_texture_table(report: dict) -> str:
    columns = ("gan", "gan_matched", "gan_tileable", "tiling")
    lines = [f"{'metric':<12}" + "".join(f"{c:>16}" for c in columns)]
    for metric in ("similarity", "lbp", "glcm", "gram", "diversity", "seam"):
        cells = [report[c].get(metric) for c in columns]
        lines.append(f"{metric:<12}" + "".join(f"{'-' if v is None else f'{v:.4g}':>16}" for v in cells))
    return "\n".join(lines)
