"""Using trained runs: load a generator from a run directory and sample from it."""
from .generator import TrainedGenerator, load

__all__ = ["TrainedGenerator", "load"]
