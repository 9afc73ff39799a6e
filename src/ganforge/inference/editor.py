"""Apply a trained editing run (inpaint, replace, super-resolve, denoise, ...) to user images.

Images of any size: the fully convolutional generator runs on the whole image, padded to its
stride and cropped back, or in overlapping tiles (`tile`) so that a large photo fits in
bounded memory. Inpainting composites in the image's own pixels: outside the hole the result
is the input, bit for bit.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..config import from_dict
from ..errors import ConfigError
from ..data.imageset import match_channels
from ..objectives.image2image import run_generator
from .classes import class_index
from .images import without_alpha
from .tiles import choose_overlap, run_padded, run_tiled


class TrainedEditor:
    """An editing model ready to use: `edit(images, mask=..., cls=...)`.

    Example:
        >>> editor = ganforge.load("runs/inpaint")
        >>> out = editor.edit(image, mask=hole)   # uint8 H x W x C, hole filled
    """

    def __init__(self, net: torch.nn.Module, meta: dict, device: torch.device):
        self.net, self.meta, self.device = net.eval().requires_grad_(False), meta, device
        self.config = from_dict(meta["config"])
        self.task: str = self.config.task
        self.class_names: list[str] = meta.get("class_names", [])
        self.step: int = meta.get("step", 0)
        shape = meta["shape"]
        self.in_channels: int = shape["in_channels"]
        self.channels: int = shape["channels"]
        self.scale: int = shape.get("scale", 1)
        self.needs_mask: bool = shape.get("mask", False)
        self.num_classes: int = getattr(net, "num_classes", 0)

    def class_index(self, cls: int | str) -> int:
        """A class by index or by name, checked against the classes the run was trained on."""
        return class_index(cls, self.num_classes, self.class_names, f"this {self.task} run")

    @torch.inference_mode()
    def edit_tensor(self, source: torch.Tensor, mask: torch.Tensor | None = None,
                    labels: torch.Tensor | None = None, tile: int | None = None,
                    overlap: int | None = None, progress=None) -> torch.Tensor:
        """float 1 x C x H x W in [-1, 1] (the model's input channels; holes may hold anything)
        -> float 1 x C' x H*s x W*s on the CPU. Mask: 1 x 1 x H x W, 1 = hole."""
        source = source.float()
        if mask is not None:
            source = source * (1 - mask)          # holes are mid-grey (0.0), as in training
            packed = torch.cat([source, mask.float()], 1)
        else:
            packed = source
        labels = None if labels is None else labels.to(self.device)
        channels = source.shape[1]

        def fn(x: torch.Tensor) -> torch.Tensor:
            x = x.to(self.device)
            hole = x[:, channels:] if mask is not None else None
            if labels is not None and len(labels) != x.shape[0]:
                raise ConfigError(f"{len(labels)} classes for {x.shape[0]} images")
            return run_generator(self.net, x[:, :channels], hole, labels).cpu()

        stride = getattr(self.net, "stride", 1)
        if tile:
            overlap = choose_overlap(getattr(self.net, "receptive_field", 64)) if overlap is None else overlap
            return run_tiled(fn, packed, tile, overlap, stride, self.scale, progress=progress)
        return run_padded(fn, packed, stride, self.scale)

    def edit(self, images: np.ndarray | Sequence[np.ndarray], mask=None, cls: int | str | None = None,
             tile: int | None = None, overlap: int | None = None) -> np.ndarray | list[np.ndarray]:
        """Edit uint8 images (H x W x C, or a list of them, any sizes; C 1, 3 or 4).

        Args:
            images: one image or a list; gray or RGB (alpha is dropped here; the CLI keeps it).
            mask: inpainting / replacement: a bool or 0/1 array H x W (True = hole), one per image.
            cls: replacement: the class to draw in the hole, by index or name.
            tile: run in tiles of this many input pixels (bounded memory); None: whole image.

        Returns uint8 arrays H*s x W*s x C (C: the model's output channels); pixels outside
        the hole are the input's, unchanged.
        """
        single = isinstance(images, np.ndarray) and images.ndim in (2, 3)
        batch = [images] if single else list(images)
        masks = [mask] if single or mask is None or isinstance(mask, np.ndarray) and mask.ndim == 2 \
            else list(mask)
        if mask is not None and len(masks) == 1 and len(batch) > 1:
            masks = masks * len(batch)
        out = [self._edit_one(image, None if mask is None else masks[i], cls, tile, overlap)
               for i, image in enumerate(batch)]
        return out[0] if single else out

    def _edit_one(self, image: np.ndarray, mask, cls, tile, overlap) -> np.ndarray:
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ConfigError(f"images must be uint8 arrays, got {image.dtype}")
        image = without_alpha(image)
        if self.needs_mask and mask is None:
            raise ConfigError(f"this {self.task} run fills a hole: give a mask (or --box x,y,w,h)")
        if not self.needs_mask and mask is not None:
            raise ConfigError(f"this {self.task} run takes no mask")
        labels = None
        if self.num_classes:
            if cls is None:
                raise ConfigError(f"this {self.task} run draws a class in the hole: give --class "
                                  f"({', '.join(self.class_names)})")
            labels = torch.tensor([self.class_index(cls)])
        elif cls is not None:
            self.class_index(cls)  # raises: not conditional
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 127.5 - 1
        source = match_channels(tensor, self.in_channels)
        hole = None
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape[:2] != image.shape[:2]:
                raise ConfigError(f"the mask is {mask.shape[1]}x{mask.shape[0]}, the image is "
                                  f"{image.shape[1]}x{image.shape[0]}")
            hole = torch.from_numpy((mask.reshape(mask.shape[:2]) > 0).astype(np.float32))[None, None]
        result = self.edit_tensor(source, hole, labels, tile, overlap)
        out = result[0].add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        if hole is not None:
            # Outside the hole: the input's own pixels, bit for bit, in the model's channels.
            keep = np.asarray(match_channels(tensor, self.channels)[0].add(1).mul(127.5).round()
                              .clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
            inside = hole[0, 0].numpy().astype(bool)[..., None]
            out = np.where(inside, out, keep if self.channels != image.shape[-1] else image)
        return out
