"""Inception-v3 features and class probabilities for FID, KID and the Inception Score.

Published FID/KID/IS numbers are only comparable when they come from the exact TF-compatible
Inception-v3 ("pt_inception-2015-12-05": pool3 features, 1008-class logits, TensorFlow's
bilinear resize to 299 px), so ganforge does not reimplement it: it wraps torch-fidelity's
extractor, an optional dependency (`pip install 'ganforge[inception]'`).

Nothing is ever downloaded. torch-fidelity fetches its weights from GitHub when it gets no
path, so the user must pass a local weights file, and this module checks that the file exists
and holds the expected state dict (loaded with `weights_only=True`, so a malicious pickle
cannot run code) before torch-fidelity sees it. Every problem with the file or the package
becomes a one-line ConfigError.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import ConfigError
from .distances import check_int

FEATURE_DIM = 2048        # pool3 features
LOGIT_DIM = 1008          # the 2015-12-05 graph's 1008 ImageNet outputs (1000 classes + 8 unused)
EXPECTED = "the torch-fidelity/pytorch-fid 'pt_inception-2015-12-05' Inception-v3 state dict"
# Entries whose shape tells this network apart from other Inception-v3 checkpoints
# (torchvision's has a 1000-class fc, for instance).
SIGNATURE = {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
             "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
             "fc.weight": (LOGIT_DIM, FEATURE_DIM), "fc.bias": (LOGIT_DIM,)}
INSTALL_HINT = "pip install 'ganforge[inception]' (or pip install torch-fidelity)"


class InceptionFeatures:
    """TF-compatible Inception-v3 from a local weights file: pool3 features and IS probabilities.

    Inputs are uint8 N x C x H x W images in 0..255 of any size (C = 1 or 3; gray images are
    repeated to RGB); the network resizes them to 299 x 299 itself. `num_classes` is 0 because
    Inception's 1008 ImageNet classes are not the data set's classes (no classification
    accuracy score is computed from them).

    Args:
        weights_path: the local weights file (torch-fidelity's
            weights-inception-2015-12-05-6726825d.pth, or pytorch-fid's pt_inception weights).
        device: where the network runs ("cpu", "cuda", "cuda:1", ...); outputs are on the CPU.

    Example:
        >>> inception = InceptionFeatures("weights-inception-2015-12-05-6726825d.pth")
        >>> feats, probs = inception.features_and_probs(images)   # N x 2048, N x 1008
    """

    feature_dim = FEATURE_DIM
    num_classes = 0
    trained_on = "ImageNet (independent of the data set evaluated)"

    def __init__(self, weights_path: str | os.PathLike, device: str | torch.device = "cpu"):
        extractor_cls = _import_extractor()
        if weights_path is None or str(weights_path) == "":
            raise ConfigError("Inception features need a local weights file (ganforge never "
                              f"downloads one); expected {EXPECTED}")
        path = Path(weights_path).expanduser()
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ConfigError(f"invalid device {device!r} for Inception features ({err})") from None
        # Checked before torch-fidelity is called: given no usable path it would download.
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise ConfigError(f"Inception weights file {str(path)!r} {what}; expected {EXPECTED}")
        check_state_dict(path)
        try:
            net = extractor_cls("inception-v3-compat", ["2048", "logits_unbiased"],
                                feature_extractor_weights_path=str(path))
        except Exception as err:  # strict load_state_dict mismatches and the like
            raise ConfigError(f"Inception weights file {str(path)!r} does not match the network "
                              f"({_first_line(err)}); expected {EXPECTED}") from None
        try:
            self.net = net.to(self.device).eval().requires_grad_(False)
        except (RuntimeError, AssertionError) as err:
            raise ConfigError(f"cannot run Inception features on device {str(self.device)!r} "
                              f"({_first_line(err)})") from None
        self.weights_path = str(path)
        self.name = f"inception-v3-pool3 ({path.name})"

    def features_and_probs(self, images: torch.Tensor,
                           batch_size: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool3 features and softmax class probabilities of `images`, from one forward pass.

        Args:
            images: uint8 N x C x H x W tensor in 0..255, C = 1 (gray) or 3 (RGB), any H x W.
            batch_size: images per forward pass (memory, not results, depends on it).

        Returns:
            (N x 2048 float32 features, N x 1008 float32 probabilities), both on the CPU. The
            probabilities are the softmax of the bias-free 'logits_unbiased', as the Inception
            Score of the original code and torch-fidelity uses.

        Example:
            >>> feats, probs = inception.features_and_probs(torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
            >>> feats.shape, probs.shape
            (torch.Size([4, 2048]), torch.Size([4, 1008]))
        """
        images = check_images(images)
        batch_size = check_int(batch_size, "batch_size", 1)
        feats, probs = [torch.empty(0, FEATURE_DIM)], [torch.empty(0, LOGIT_DIM)]
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = images[start:start + batch_size].to(self.device)
                if batch.shape[1] == 1:
                    batch = batch.expand(-1, 3, -1, -1)
                pool3, logits = self.net(batch.contiguous())
                feats.append(pool3.float().cpu())
                probs.append(logits.double().softmax(dim=1).float().cpu())
        return torch.cat(feats), torch.cat(probs)

    def features(self, images: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
        """N x 2048 float32 pool3 features (the space of FID and KID).

        Args:
            images: uint8 N x C x H x W tensor in 0..255, C = 1 or 3, any H x W.
            batch_size: images per forward pass.

        Example:
            >>> inception.features(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape
            torch.Size([2, 2048])
        """
        return self.features_and_probs(images, batch_size)[0]

    def probs(self, images: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
        """N x 1008 float32 softmax probabilities (what the Inception Score uses).

        Args:
            images: uint8 N x C x H x W tensor in 0..255, C = 1 or 3, any H x W.
            batch_size: images per forward pass.

        Example:
            >>> inception_score(inception.probs(images), splits=10)
        """
        return self.features_and_probs(images, batch_size)[1]

    def __repr__(self) -> str:
        return f"InceptionFeatures({self.weights_path!r}, device={str(self.device)!r})"


def _import_extractor():
    """torch-fidelity's Inception-v3 class, or ConfigError saying how to install it."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as err:
        raise ConfigError(f"Inception features need the torch-fidelity package ({err}); "
                          f"install it with {INSTALL_HINT}") from None
    return FeatureExtractorInceptionV3


def check_state_dict(path: Path) -> None:
    """Raise ConfigError unless `path` holds tensors keyed like the FID Inception-v3 network.

    Loads with `weights_only=True` (no code from the file runs) and checks a few entries whose
    shapes identify the network; torch-fidelity's strict load checks the rest.

    Example:
        >>> check_state_dict(Path("weights-inception-2015-12-05-6726825d.pth"))
    """
    where = f"Inception weights file {str(path)!r}"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and weights_only errors all mean "not this file"
        if "weights only load failed" in str(err).lower() or "weightsunpickler" in str(err).lower():
            why = "it pickles Python objects other than tensors, which ganforge does not run"
        else:
            why = f"corrupt or not written by torch.save; {type(err).__name__}: {_first_line(err)}"
        raise ConfigError(f"{where} is not a readable PyTorch state dict ({why}); "
                          f"expected {EXPECTED}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{where} holds a {type(state).__name__}, not a state dict of tensors; "
                          f"expected {EXPECTED}")
    missing = [key for key in SIGNATURE if key not in state]
    if missing:
        more = f" and {len(missing) - 1} other expected entries" if len(missing) > 1 else ""
        raise ConfigError(f"{where} lacks {missing[0]!r}{more}; expected {EXPECTED}")
    for key, shape in SIGNATURE.items():
        if tuple(state[key].shape) != shape:
            raise ConfigError(f"{where} has {key!r} of shape {tuple(state[key].shape)}, not {shape}; "
                              f"expected {EXPECTED}")


def check_images(images) -> torch.Tensor:
    """`images` if it is a uint8 N x C x H x W tensor with C = 1 or 3, else ValueError.

    Example:
        >>> check_images(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).shape
        torch.Size([2, 1, 8, 8])
    """
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a uint8 torch tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 in 0..255 (ganforge.data.to_uint8 converts [-1, 1] "
                         f"floats), got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be N x C x H x W with C = 1 or 3, got shape {tuple(images.shape)}")
    if images.shape[2] == 0 or images.shape[3] == 0:
        raise ValueError(f"images must not be empty, got shape {tuple(images.shape)}")
    return images


def _first_line(err: BaseException, limit: int = 160) -> str:
    """An exception's message as one short line (load_state_dict's run to hundreds of lines)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if lines and lines[0].startswith("Error(s) in loading state_dict"):
        lines = lines[1:]  # keep the informative "Missing key(s) ..." line
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."
