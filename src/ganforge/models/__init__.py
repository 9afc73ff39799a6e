"""Architectures by name. Each file registers one family; `build_models` makes its networks.

Networks learn their shapes (resolution, channels, classes) from the data set, never from
hard-coded constants, and take their own options from the config's `model` section.
"""
from .registry import MODELS, Architecture, DataShape, build_models, check_shape, data_shape, model_args

from . import classifier, cyclegan, dcgan, dncnn, mlp, progressive, resnet, spatial, srresnet, stylegan, unet, vae  # noqa: E402,F401  (register the built-in families)

__all__ = ["MODELS", "Architecture", "DataShape", "build_models", "check_shape", "data_shape", "model_args"]
