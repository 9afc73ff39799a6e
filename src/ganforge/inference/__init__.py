"""Using trained runs: load a generator or classifier from a run directory and apply it."""
from .classifier import TrainedClassifier, confusion_png, load_classifier
from .editor import TrainedEditor
from .images import (ImageFile, list_inputs, output_path, read_image_file, require_new, to_model_channels,
                     write_image_file)
from .tiles import choose_overlap, run_padded, run_tiled
from .generator import TrainedGenerator, generate, load, load_critic, rebuild
from .translator import TrainedTranslator

__all__ = ["ImageFile", "TrainedClassifier", "TrainedEditor", "choose_overlap", "list_inputs", "output_path",
           "read_image_file", "require_new", "run_padded", "run_tiled", "to_model_channels", "write_image_file", "TrainedGenerator", "TrainedTranslator", "confusion_png", "generate", "load", "load_classifier", "load_critic", "rebuild"]
