"""The model registry: an Architecture couples an options dataclass with a build function."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ..config import ModelConfig, check_args
from ..errors import ConfigError
from ..registry import Registry


@dataclass(frozen=True)
class DataShape:
    """What a network needs to know about the data it models."""

    resolution: int
    channels: int                # channels of the images the model makes
    num_classes: int = 0
    in_channels: int = 0         # image-to-image models: channels of the input image (0: a latent generator)
    scale: int = 1               # image-to-image models: output size / input size (super-resolution)
    mask: bool = False           # image-to-image models: a hole mask (1 = hole) is an input channel


@dataclass(frozen=True)
class Architecture:
    """A registered family: `build(args, shape)` returns its networks, e.g. {"G": ..., "D": ...}."""

    args: type
    build: Callable[[object, DataShape], dict[str, nn.Module]]
    resolutions: tuple[int, ...] | None = None  # None: any resolution
    channels: tuple[int, ...] = (1, 3)
    objective: str = "gan"                      # the objective used unless one is named
    labels: str = "optional"                    # "required" (classifiers), "optional" (model.conditional), "never"
    summary: str = ""
    # Settings the family is made to train with, as config sections, e.g. {"objective":
    # {"loss": "hinge"}, "train": {"lr": 2e-4}}; laid under the user's keys (the objective
    # section only while the family's own objective is used).
    defaults: dict = field(default_factory=dict)
    # What a budget below resolve.LONG_BUDGET_S changes, as config sections: smaller
    # networks that make more steps in the seconds there are. Only keys the user left open
    # change; an architecture with some also trains at the data set's native resolution.
    short_budget: dict = field(default_factory=dict)
    # What a budget of resolve.LONG_BUDGET_S or more adds, in the same form: regularisation
    # that pays once the full-size networks get thousands of steps (the DCGAN's lazy R1).
    # Only keys the user left open; objective keys only with the family's objective and loss.
    long_budget: dict = field(default_factory=dict)


MODELS: Registry[Architecture] = Registry("model")


def gan_pair(generator: type, discriminator: type) -> Callable[[object, DataShape], dict[str, nn.Module]]:
    """The build function of a GAN family: its generator and discriminator from the same options."""
    def build(args, shape: DataShape) -> dict[str, nn.Module]:
        return {"G": generator(args, shape), "D": discriminator(args, shape)}
    return build


def model_args(config: ModelConfig):
    """The chosen architecture's options, checked (unknown keys and wrong types are errors)."""
    arch = MODELS.get(config.name)
    args = check_args(arch.args, config.args, "model.")
    if hasattr(args, "check"):
        args.check()
    return args


def build_models(config: ModelConfig, shape: DataShape) -> dict[str, nn.Module]:
    """Build the networks of `config.name` for data of `shape`.

    Example:
        >>> nets = build_models(ModelConfig(name="dcgan"), DataShape(32, 1))
        >>> nets["G"](torch.randn(4, nets["G"].latent_dim)).shape
        torch.Size([4, 1, 32, 32])
    """
    check_shape(config, shape)
    return MODELS.get(config.name).build(model_args(config), shape)


def data_shape(config: ModelConfig, resolution: int, channels: int, num_classes: int) -> DataShape:
    """The shape the networks see: classes only where the model uses labels."""
    arch = MODELS.get(config.name)
    if config.conditional and arch.labels == "never":
        raise ConfigError(f"model.conditional=true: model {config.name!r} has no conditional form")
    uses_labels = arch.labels == "required" or config.conditional
    if uses_labels and num_classes < 2:
        raise ConfigError(f"model {config.name!r}{' (conditional)' if config.conditional else ''} "
                          f"needs a labelled data set with at least 2 classes; this one has "
                          f"{num_classes or 'no labels'}")
    return DataShape(resolution, channels, num_classes if uses_labels else 0)


def check_shape(config: ModelConfig, shape: DataShape) -> None:
    """Reject resolutions and channel counts the architecture cannot make, naming the key."""
    arch = MODELS.get(config.name)
    if arch.resolutions is not None and shape.resolution not in arch.resolutions:
        raise ConfigError(f"data.resolution={shape.resolution}: model {config.name!r} supports "
                          f"{', '.join(map(str, arch.resolutions))}")
    if shape.channels not in arch.channels:
        raise ConfigError(f"data.channels={shape.channels}: model {config.name!r} supports "
                          f"{', '.join(map(str, arch.channels))}")
