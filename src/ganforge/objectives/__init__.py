"""What one training step means (GAN; later VAE, classifier, pix2pix, CycleGAN), by name."""
from .base import OBJECTIVES, Batch, Objective, ObjectiveEntry, Phase, build_objective, objective_args

from . import classifier, cyclegan, gan, image2image, vae  # noqa: E402,F401  (register the built-in objectives)

__all__ = ["OBJECTIVES", "Batch", "Objective", "ObjectiveEntry", "Phase", "build_objective", "objective_args"]
