"""The runs a studio serves: loaded once at start, addressed by name or index, never by path.

`load_runs` turns the run directories named on the command line into `StudioRun`s (the model
loaded without training code, its kind and what its page needs to know). A client picks a run
by the name shown in `/api/runs` or by its position; nothing a client sends becomes a path.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, ConfigError, DataError
from ..inference import TrainedEditor, TrainedGenerator, TrainedTranslator, load
from ..inference.classes import class_index

# What the page offers for each kind of run.
KINDS = {TrainedGenerator: "generate", TrainedEditor: "edit", TrainedTranslator: "translate"}


@dataclass
class StudioRun:
    """One served run.

    Attributes:
        name: how clients address it (the directory's name, made unique).
        directory: where it was loaded from (server side only; never sent to clients).
        model: the TrainedGenerator, TrainedEditor or TrainedTranslator.
        kind: 'generate', 'edit' or 'translate'.
    """

    name: str
    directory: Path
    model: TrainedGenerator | TrainedEditor | TrainedTranslator
    kind: str

    @property
    def task(self) -> str:
        return self.model.config.task

    def info(self) -> dict:
        """What the page and scripts need to drive this run (JSON-ready)."""
        model, config = self.model, self.model.config
        info = {"name": self.name, "kind": self.kind, "task": self.task, "model": config.model.name,
                "data": data_label(config.data.name), "step": model.step, "class_names": list(model.class_names),
                "num_classes": model.num_classes if hasattr(model, "num_classes") else 0,
                "has_eval": (self.directory / "eval.json").is_file()}
        if self.kind == "generate":
            net = model.net
            info.update(resolution=net.resolution, channels=net.channels, latent_dim=net.latent_dim)
        elif self.kind == "edit":
            info.update(needs_mask=model.needs_mask, needs_class=bool(model.num_classes),
                        scale=model.scale, in_channels=model.in_channels, channels=model.channels)
        else:
            info.update(channels=model.channels, directions={"a2b": f"{model.domains['a']} to {model.domains['b']}",
                                                             "b2a": f"{model.domains['b']} to {model.domains['a']}"})
        return info

    def evaluation(self) -> dict | None:
        """RUN/eval.json (written by `ganforge evaluate`), or None when the run has none."""
        path = self.directory / "eval.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise DataError(f"{self.name}/eval.json cannot be read: {error}") from None

    def class_index(self, cls: int | str) -> int:
        """A class by index or name, checked against the run's classes."""
        return class_index(cls, self.model.num_classes, self.model.class_names, f"run {self.name!r}")


def data_label(name: str) -> str:
    """A data source's name without the server's folders: 'patches:/home/me/photos' -> 'patches:photos'."""
    kind, colon, value = name.rpartition(":")
    shown = Path(value).name if "/" in value or "\\" in value else value
    return f"{kind}{colon}{shown}"


def load_runs(directories: list[str | Path], checkpoint: str = "last", device: str = "cpu") -> list[StudioRun]:
    """Load every run directory (one-line CheckpointError/ConfigError for one that is not a
    generation, editing or translation run). Names are the directories' names; a repeated
    name gets -2, -3, ...

    Example:
        >>> [run.name for run in load_runs(["runs/digits", "runs/inpaint"])]
        ['digits', 'inpaint']
    """
    if not directories:
        raise ConfigError("name at least one run directory")
    runs: list[StudioRun] = []
    taken: set[str] = set()
    for directory in directories:
        directory = Path(directory)
        if not directory.is_dir():
            raise CheckpointError(f"run directory {str(directory)!r} does not exist")
        model = load(directory, checkpoint, device)
        kind = next(kind for cls, kind in KINDS.items() if isinstance(model, cls))
        base = directory.resolve().name or "run"
        name, count = base, 1
        while name in taken or name.isdigit() and int(name) < len(directories):
            count += 1
            name = f"{base}-{count}"
        taken.add(name)
        runs.append(StudioRun(name, directory, model, kind))
    return runs
