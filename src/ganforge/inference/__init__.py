"""Using trained runs: load a generator or classifier from a run directory and apply it."""
from .classifier import TrainedClassifier, confusion_png, load_classifier
from .generator import TrainedGenerator, generate, load, rebuild

__all__ = ["TrainedClassifier", "TrainedGenerator", "confusion_png", "generate", "load", "load_classifier", "rebuild"]
