"""The Python API; the CLI is a thin layer over these functions.

Example:
    >>> import ganforge
    >>> run = ganforge.train({"train": {"steps": 200}, "out": "runs/quick"})
    >>> images = ganforge.load(run.dir).sample(16, seed=0)
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .config import Config
from .errors import ConfigError
from .objectives import OBJECTIVES
from .resolve import check_config, make_config
from .training import Run as _Run


class Run(_Run):
    """The result of `ganforge.train`: where the run lives and how far it got."""

    def load(self, checkpoint_name: str = "last", device: str = "cpu"):
        """The run's trained model, ready to use (see `ganforge.load`)."""
        from .inference import load
        return load(self.dir, checkpoint_name, device)


def train(config: Config | dict | str | Path | None = None, *, preset: str | None = None,
          resume: str | Path | None = None, overrides: Iterable[str] | dict = ()):
    """Train a model and return the Run (its directory, step reached, why it stopped).

    Args:
        config: a Config, nested dict or YAML path; None trains the default DCGAN on digits.
        preset: a named preset laid under `config` (see `ganforge presets`).
        resume: a run directory to continue exactly where its last checkpoint stopped.
        overrides: `key=value` strings or a {dotted key: value} dict applied last.

    Example:
        >>> run = ganforge.train(overrides=["train.steps=300", "out=runs/quick"])
        >>> run.load().sample(8).shape
        (8, 32, 32, 1)
    """
    from .training import Trainer

    resolved = make_config(config, preset=preset, resume=resume, overrides=overrides)
    evaluator = None
    built = OBJECTIVES.get(resolved.objective.name).build
    if resolved.log.eval_every and built.sample_net is None:
        raise ConfigError(f"log.eval_every: objective {resolved.objective.name!r} makes no images "
                          f"to evaluate (use ganforge classify eval for classifiers)")
    if resolved.log.eval_every and not built.samples_from_noise:
        raise ConfigError(f"log.eval_every: objective {resolved.objective.name!r} edits or translates "
                          f"images; score the run with ganforge evaluate RUN after training")
    if resolved.log.eval_every:
        from .evaluate import Evaluator, build_extractor
        extractor = build_extractor(resolved.data, quiet=not resolved.log.progress)
        evaluator = Evaluator(resolved.data, extractor, resolved.log.eval_samples or None,
                              seed=resolved.train.seed)
    result = Trainer(resolved, resume=resume is not None, evaluator=evaluator).run()
    return Run(result.dir, result.step, result.elapsed_s, result.stop_reason)
