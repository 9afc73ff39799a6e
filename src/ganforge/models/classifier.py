"""CNN classifiers: `cnn` (the classic conv/pool/fully-connected net) and `resnet-cnn`
(a small residual net). Both also serve as feature extractors for the metrics of generated
images: `features(x)` is the penultimate layer."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .registry import MODELS, Architecture, DataShape


@dataclass
class CNNArgs:
    width: int = 32          # channels of the first conv block (doubling per block)
    hidden: int = 128        # units of the fully-connected layer (the feature dimension)
    dropout: float = 0.25

    def check(self):
        for key in ("width", "hidden"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key}={getattr(self, key)}: must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout={self.dropout}: must be in [0, 1)")


def _needs_classes(shape: DataShape, name: str) -> None:
    if shape.num_classes < 2:
        raise ConfigError(f"model {name!r} is a classifier and needs a labelled data set with at "
                          f"least 2 classes (this one has {shape.num_classes})")


class _Classifier(nn.Module):
    """A convolutional `body`, global average pooling, then fc-relu (the features),
    dropout and fc to class logits."""

    def _add_head(self, args: CNNArgs, shape: DataShape, channels: int) -> None:
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels, args.hidden), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(args.dropout)
        self.out = nn.Linear(args.hidden, shape.num_classes)
        self.num_classes, self.feature_dim = shape.num_classes, args.hidden

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.body(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.features(x)))


class CNN(_Classifier):
    """conv-relu-conv-relu-pool blocks, global average pool, fc-relu-dropout, fc to classes."""

    def __init__(self, args: CNNArgs, shape: DataShape, blocks: int = 2):
        super().__init__()
        _needs_classes(shape, "cnn")
        layers, c_in = [], shape.channels
        for i in range(blocks):
            c_out = args.width * 2 ** i
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self._add_head(args, shape, c_in)


class ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x), inplace=True)


class ResNetCNN(_Classifier):
    """A small ResNet: stem conv, three stages of two residual blocks (strides 1, 2, 2)."""

    def __init__(self, args: CNNArgs, shape: DataShape):
        super().__init__()
        _needs_classes(shape, "resnet-cnn")
        w = args.width
        stages = [nn.Conv2d(shape.channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        c_in = w
        for i, stride in enumerate((1, 2, 2)):
            c_out = w * 2 ** i
            stages += [ResidualBlock(c_in, c_out, stride), ResidualBlock(c_out, c_out, 1)]
            c_in = c_out
        self.body = nn.Sequential(*stages)
        self._add_head(args, shape, c_in)


MODELS.register("cnn")(Architecture(
    CNNArgs, lambda args, shape: {"C": CNN(args, shape)}, None, objective="classifier", labels="required",
    summary="classic CNN classifier: two conv/conv/pool blocks, fully-connected head"))
MODELS.register("resnet-cnn")(Architecture(
    CNNArgs, lambda args, shape: {"C": ResNetCNN(args, shape)}, None, objective="classifier", labels="required",
    summary="residual CNN classifier: three stages of two residual blocks"))
