"""Training: the generic loop and what it keeps (EMA, batches, logs, checkpoints)."""
from .trainer import Run, Trainer

__all__ = ["Run", "Trainer"]
