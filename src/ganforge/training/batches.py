"""Batches for the loop: drawn from a resident data set, then degraded on the device.

Two samplers: `EpochSampler` walks a set of equal-sized images (a shuffled pass per epoch)
and `PatchSampler` draws random crops from images of any size (the way SR and denoising
models train on a few large photos). `Degrader` then makes the model's input from each
batch (data.degrade), with a generator seeded from the step, so a resumed run draws the same
inputs as an uninterrupted one. All three keep their state in checkpoints.
"""
from __future__ import annotations

import torch

from .. import distributed
from ..data import ImageSet, to_float
from ..errors import ConfigError
from ..objectives import Batch


def _to_batch(data, index: torch.Tensor, channels_last: bool) -> Batch:
    """The float batch of the items at `index` (images, labels, pair sources, regions)."""
    images = to_float(data.images[index])
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    pick = lambda t: None if t is None else t[index]  # noqa: E731
    sources = getattr(data, "sources", None)
    regions = getattr(data, "regions", None)
    return Batch(images, pick(data.labels), source=None if sources is None else to_float(sources[index]),
                 regions=None if regions is None else regions[index].long(),
                 region_classes=pick(getattr(data, "region_labels", None)))


class EpochSampler:
    """Yields batches of `batch_size` from a fresh permutation each epoch (last partial batch
    dropped, so every batch has the same shape). Under torchrun `batch_size` is the global
    batch: every rank walks the same permutation and takes its slice, so the state (saved in
    checkpoints) does not depend on the number of ranks."""

    def __init__(self, data: ImageSet, batch_size: int, seed: int, channels_last: bool = False):
        if batch_size > len(data):
            raise ConfigError(f"train.batch_size={batch_size} is larger than the data set "
                              f"({len(data)} images)")
        self.data, self.batch_size, self.channels_last = data, batch_size, channels_last
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)
        self.cursor = 0
        self.epoch = 0
        self._order_on_device = self.order

    def next(self) -> Batch:
        if self.cursor + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.data), generator=self.generator)
            self._order_on_device = self.order.to(self.data.images.device)
            self.cursor = 0
            self.epoch += 1
        index = self._order_on_device[self.cursor:self.cursor + self.batch_size]
        index = index[distributed.local_slice(self.batch_size)]  # this rank's part (all of it alone)
        self.cursor += self.batch_size
        return _to_batch(self.data, index, self.channels_last)

    def fixed(self, n: int, seed: int) -> Batch:
        """n items chosen by `seed` alone (preview inputs), leaving the sampler's state alone."""
        order = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(seed))[:n]
        return _to_batch(self.data, order.to(self.data.images.device), False)

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        return ({"sampler.order": self.order, "sampler.generator": self.generator.get_state()},
                {"cursor": self.cursor, "epoch": self.epoch})

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.order = tensors["sampler.order"].long()
        self._order_on_device = self.order.to(self.data.images.device)
        self.generator.set_state(tensors["sampler.generator"])
        self.cursor, self.epoch = meta["cursor"], meta["epoch"]


class PatchSampler:
    """Random `size` x `size` crops of a PatchSet (images of any size). Under torchrun every
    rank draws the same global batch and keeps its slice, as EpochSampler does."""

    def __init__(self, data, batch_size: int, size: int, seed: int, channels_last: bool = False):
        self.data, self.batch_size, self.size, self.channels_last = data, batch_size, size, channels_last
        self.generator = torch.Generator().manual_seed(seed)
        self.drawn = 0

    def _crops(self, n: int, generator: torch.Generator) -> Batch:
        images = to_float(self.data.sample(n, self.size, generator))
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return Batch(images)

    def next(self) -> Batch:
        batch = self._crops(self.batch_size, self.generator)
        self.drawn += 1
        part = distributed.local_slice(self.batch_size)
        return Batch(batch.images[part])

    def fixed(self, n: int, seed: int) -> Batch:
        return self._crops(n, torch.Generator().manual_seed(seed))

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        return {"sampler.generator": self.generator.get_state()}, {"drawn": self.drawn}

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.generator.set_state(tensors["sampler.generator"])
        self.drawn = meta.get("drawn", 0)


class Degrader:
    """Makes `source` (and `mask`, `region_labels`) from each batch's images, on the batch's
    device. Draw k of step s uses a generator seeded from (seed, s, k, rank), so the inputs
    depend on the step alone and a resumed run sees the same ones."""

    def __init__(self, degradation, seed: int):
        self.degradation, self.seed = degradation, seed

    def __call__(self, batch: Batch, step: int, draw: int = 0) -> Batch:
        if self.degradation is None or batch.source is not None:
            return batch
        device = batch.images.device
        generator = torch.Generator(device=device).manual_seed(
            hash((self.seed, step, draw, distributed.rank())) & 0x7FFF_FFFF_FFFF_FFFF)
        out = self.degradation(batch.images, generator, regions=batch.regions,
                               region_labels=batch.region_classes)
        batch.source, batch.mask, batch.region_labels = out.source, out.mask, out.region_labels
        return batch


def make_sampler(data, batch_size: int, size: int, seed: int, channels_last: bool = False):
    """The sampler for this kind of data set: crops for images of any size, else epochs."""
    if hasattr(data, "sample"):
        return PatchSampler(data, batch_size, size, seed, channels_last)
    return EpochSampler(data, batch_size, seed, channels_last)
