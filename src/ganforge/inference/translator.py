"""Apply a trained unpaired-translation run (CycleGAN) to user images, in either direction.

Images of any size: the fully convolutional generator runs on the whole image, padded to
its stride (reflection) and cropped back, or in overlapping tiles (`tile`) for bounded
memory. Both domains were trained at `data.channels`; a gray input to an RGB run is repeated
to RGB (the run's domain A may well be gray images stored as RGB), and the output keeps the
run's channels: translating gray digits into colour ones must give colour.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..config import from_dict
from ..data.imageset import match_channels, to_float, to_uint8
from ..errors import ConfigError
from ..models.cyclegan import DIRECTIONS
from .images import without_alpha
from .tiles import choose_overlap, run_padded, run_tiled


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ConfigError(f"--direction {direction!r}: must be a2b (domain A to B) or b2a")
    return direction


class TrainedTranslator:
    """A translation model ready to use: `translate(images, "a2b")`.

    Example:
        >>> model = ganforge.load("runs/translate")
        >>> colour = model.translate(gray_digit, "a2b")    # uint8 H x W x 3
    """

    def __init__(self, net: torch.nn.Module, meta: dict, device: torch.device):
        self.net, self.meta, self.device = net.eval().requires_grad_(False), meta, device
        self.config = from_dict(meta["config"])
        self.task: str = self.config.task
        self.step: int = meta.get("step", 0)
        self.channels: int = meta["shape"]["channels"]
        self.class_names: list[str] = meta.get("class_names", [])
        data = self.config.data
        self.domains = {"a": f"{data.name} (A)", "b": f"{data.name_b or data.name} (B)"}

    @torch.inference_mode()
    def translate_tensor(self, x: torch.Tensor, direction: str, tile: int | None = None,
                         overlap: int | None = None, progress=None) -> torch.Tensor:
        """float N x C x H x W in [-1, 1] (C 1 or 3; any H, W) -> float N x C' x H x W on the
        CPU, C' the run's channels."""
        check_direction(direction)
        x = match_channels(x.float(), self.channels)

        def fn(t: torch.Tensor) -> torch.Tensor:
            return self.net.translate(t.to(self.device), direction).float().clamp(-1, 1).cpu()

        if tile:
            overlap = choose_overlap(self.net.receptive_field) if overlap is None else overlap
            return run_tiled(fn, x, tile, overlap, self.net.stride, 1, progress=progress)
        return run_padded(fn, x, self.net.stride, 1)

    def translate_batch(self, images: torch.Tensor, direction: str, batch_size: int = 256,
                        tile: int | None = None) -> torch.Tensor:
        """uint8 N x C x H x W (one size) -> uint8 N x C' x H x W, in batches (evaluation);
        with `tile`, each image in tiles as `ganforge translate --tile` runs it."""
        step = 1 if tile else batch_size
        out = [to_uint8(self.translate_tensor(to_float(images[i:i + step]), direction, tile))
               for i in range(0, len(images), step)]
        return torch.cat(out) if out else torch.empty(0, self.channels, *images.shape[2:], dtype=torch.uint8)

    def translate(self, images: np.ndarray | Sequence[np.ndarray], direction: str = "a2b",
                  tile: int | None = None, overlap: int | None = None) -> np.ndarray | list[np.ndarray]:
        """Translate uint8 images (H x W x C or H x W, or a list of them, any sizes) from
        domain A to B ("a2b") or B to A ("b2a"); returns uint8 H x W x C' arrays (C' the
        run's channels; alpha is dropped here, the CLI keeps it)."""
        check_direction(direction)
        single = isinstance(images, np.ndarray) and images.ndim in (2, 3)
        out = []
        for image in ([images] if single else list(images)):
            image = np.asarray(image)
            if image.dtype != np.uint8:
                raise ConfigError(f"images must be uint8 arrays, got {image.dtype}")
            tensor = to_float(torch.from_numpy(without_alpha(image)).permute(2, 0, 1)[None])
            result = to_uint8(self.translate_tensor(tensor, direction, tile, overlap))
            out.append(result[0].permute(1, 2, 0).numpy())
        return out[0] if single else out
