"""What the latent-space commands share: a generation run to work on."""
from __future__ import annotations


def generation_model(run: str, checkpoint: str, device: str):
    """A generation run's TrainedGenerator; an editing run is a one-line error."""
    from ..errors import ConfigError
    from ..inference import load
    model = load(run, checkpoint, device)
    if not hasattr(model, "sample"):
        raise ConfigError(f"run {run!r} is an editing run (task {model.task!r}); latent-space "
                          f"commands need a generation run")
    return model
