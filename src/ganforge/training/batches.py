"""Batches drawn from a resident ImageSet: a shuffled pass per epoch, indexing on the device."""
from __future__ import annotations

import torch

from .. import distributed
from ..data import ImageSet, to_float
from ..errors import ConfigError
from ..objectives import Batch


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
        images = to_float(self.data.images[index])
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = None if self.data.labels is None else self.data.labels[index]
        return Batch(images, labels)

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        return ({"sampler.order": self.order, "sampler.generator": self.generator.get_state()},
                {"cursor": self.cursor, "epoch": self.epoch})

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.order = tensors["sampler.order"].long()
        self._order_on_device = self.order.to(self.data.images.device)
        self.generator.set_state(tensors["sampler.generator"])
        self.cursor, self.epoch = meta["cursor"], meta["epoch"]
