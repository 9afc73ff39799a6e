"""Evaluating a texture run: how close its samples are to the exemplar, how different they are
from each other, how well tileable samples wrap, beside the random-tiling baseline and another
crop of the exemplar itself. What `ganforge evaluate RUN` reports for a spatial-GAN run."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import atomic
from ..errors import ConfigError
from ..inference import load, read_image_file
from . import analysis
from .synthesis import exemplar_of, random_tiling, sample_gan

SAMPLES = 4
SIZE = 256


def _scores(exemplar: dict, images: list[np.ndarray]) -> dict:
    scores = analysis.compare_to_set(exemplar, images)
    scores["diversity"] = analysis.diversity(images) if len(images) > 1 else None
    scores["seam"] = float(np.mean([analysis.seam_score(image) for image in images]))
    return scores


def evaluate_texture(run_dir: str | Path, n: int = SAMPLES, size: int = SIZE, seed: int = 0,
                     checkpoint: str = "last", device: str = "cpu") -> dict:
    """Score `n` size x size samples (plain and tileable) of a texture run against its
    exemplar, beside random tiling; writes RUN/eval.json.

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
    exemplar = np.round(read_image_file(path).pixels * 255).astype(np.uint8)
    if model.config.data.channels == 1 and exemplar.shape[-1] == 3:
        exemplar = analysis.luma(exemplar)[..., None]
    described = analysis.describe(exemplar)
    seeds = range(seed, seed + n)
    report = {
        "gan": _scores(described, [sample_gan(model.net, size, size, s)[0] for s in seeds]),
        "gan_tileable": _scores(described, [sample_gan(model.net, size, size, s, tileable=True)[0]
                                            for s in seeds]),
        "tiling": _scores(described, [random_tiling(exemplar, size, size, s) for s in seeds]),
        "setup": {"run": str(run_dir), "exemplar": str(path), "checkpoint": checkpoint, "step": model.step,
                  "samples": n, "size": size, "seed": seed, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}}
    atomic.write_json(Path(run_dir) / "eval.json", report)
    return report


def format_texture_table(report: dict) -> str:
    columns = ("gan", "gan_tileable", "tiling")
    lines = [f"{'metric':<12}" + "".join(f"{c:>16}" for c in columns)]
    for metric in ("similarity", "lbp", "glcm", "gram", "diversity", "seam"):
        cells = [report[c].get(metric) for c in columns]
        lines.append(f"{metric:<12}" + "".join(f"{'-' if v is None else f'{v:.4g}':>16}" for v in cells))
    return "\n".join(lines)
