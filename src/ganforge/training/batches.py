"""Batches for the loop: drawn from a resident data set, then degraded on the device.

Two samplers: `EpochSampler` walks a set of equal-sized images (a shuffled pass per epoch)
and `PatchSampler` draws random crops from images of any size (the way SR and denoising
models train on a few large photos). `Degrader` then makes the model's input from each
batch (data.degrade), with a generator seeded from the step, so a resumed run draws the same
inputs as an uninterrupted one. All three keep their state in checkpoints.

The data set lives on the training device when it fits, else in host memory (data.on_device).
Either way every batch reaches the training device: a batch gathered on the host is copied
as uint8 (4x fewer bytes than floats) from pinned memory without blocking the host, and
converted to floats on the device. A resumed run must find the data set it started with: a
sampler refuses a set whose size changed, naming both sizes.
"""
from __future__ import annotations

import torch

from .. import distributed
from ..data import ImageSet, to_float
from ..errors import ConfigError, DataError
from ..objectives import Batch


def to_device(tensor: torch.Tensor | None, device: torch.device | None) -> torch.Tensor | None:
    """`tensor` on `device` (None: where it is). From host to CUDA memory the copy goes
    through pinned memory and does not block the host; the caching host allocator keeps the
    pinned buffer alive until the copy is done.

    Example:
        >>> to_device(torch.zeros(2, dtype=torch.uint8), torch.device("cpu")).device
        device(type='cpu')
    """
    if tensor is None or device is None:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _to_batch(data, index: torch.Tensor, channels_last: bool, device: torch.device | None = None) -> Batch:
    """The float batch of the items at `index` (images, labels, pair sources, regions), on
    `device` (None: the data's own)."""
    def pick(t):
        return None if t is None else to_device(t[index], device)
    images = to_float(pick(data.images))
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    sources = pick(getattr(data, "sources", None))
    regions = pick(getattr(data, "regions", None))
    return Batch(images, pick(data.labels), source=None if sources is None else to_float(sources),
                 regions=None if regions is None else regions.long(),
                 region_classes=pick(getattr(data, "region_labels", None)))


def _check_size(kind: str, saved: int | None, now: int) -> None:
    """A resumed run's data set must have the size the checkpointed sampler state was made for."""
    if saved is not None and saved != now:
        raise DataError(f"--resume: the data set has {now} {kind} now but {saved} when this run "
                        f"was checkpointed; its saved data order no longer fits. Resume with the "
                        f"data set the run started with, or start a new run")


class EpochSampler:
    """Yields batches of `batch_size` from a fresh permutation each epoch (last partial batch
    dropped, so every batch has the same shape). Under torchrun `batch_size` is the global
    batch: every rank walks the same permutation and takes its slice, so the state (saved in
    checkpoints) does not depend on the number of ranks. Batches are made on `device`
    (default: where the data is)."""

    def __init__(self, data: ImageSet, batch_size: int, seed: int, channels_last: bool = False,
                 device: torch.device | None = None, key: str = "sampler"):
        if batch_size > len(data):
            raise ConfigError(f"train.batch_size={batch_size} is larger than the data set "
                              f"({len(data)} images)")
        self.data, self.batch_size, self.channels_last = data, batch_size, channels_last
        self.device, self.key = device, key
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
        return _to_batch(self.data, index, self.channels_last, self.device)

    def fixed(self, n: int, seed: int) -> Batch:
        """n items chosen by `seed` alone (preview inputs), leaving the sampler's state alone."""
        order = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(seed))[:n]
        return _to_batch(self.data, order.to(self.data.images.device), False, self.device)

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        return ({f"{self.key}.order": self.order, f"{self.key}.generator": self.generator.get_state()},
                {"cursor": self.cursor, "epoch": self.epoch, "size": len(self.data)})

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Take the state `state()` saved; a data set of another size is refused (DataError)."""
        order = tensors[f"{self.key}.order"]
        # Checkpoints without "size" tell it by the order, a permutation of the whole set.
        _check_size("images", meta.get("size", len(order) or None), len(self.data))
        self.order = order.long()
        self._order_on_device = self.order.to(self.data.images.device)
        self.generator.set_state(tensors[f"{self.key}.generator"])
        self.cursor, self.epoch = meta["cursor"], meta["epoch"]


class PatchSampler:
    """Random `size` x `size` crops of a PatchSet (images of any size). Under torchrun every
    rank draws the same global batch and keeps its slice, as EpochSampler does. Crops are
    cut where the images are and moved to `device` (default: there)."""

    def __init__(self, data, batch_size: int, size: int, seed: int, channels_last: bool = False,
                 device: torch.device | None = None, key: str = "sampler"):
        self.data, self.batch_size, self.size, self.channels_last = data, batch_size, size, channels_last
        self.device, self.key = device, key
        self.generator = torch.Generator().manual_seed(seed)
        self.drawn = 0

    def _crops(self, n: int, generator: torch.Generator) -> Batch:
        images = to_float(to_device(self.data.sample(n, self.size, generator), self.device))
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
        return ({f"{self.key}.generator": self.generator.get_state()},
                {"drawn": self.drawn, "size": len(self.data)})

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Take the state `state()` saved; a set of another number of images is refused
        (its crops would be other ones: not the run that was checkpointed)."""
        _check_size("images", meta.get("size"), len(self.data))
        self.generator.set_state(tensors[f"{self.key}.generator"])
        self.drawn = meta.get("drawn", 0)


class DomainSampler:
    """Unpaired batches from two domains: each domain has its own sampler (own order, own
    seed, own epochs; both saved in checkpoints), and a batch carries domain A's images as
    `source` and domain B's as `images`, unaligned."""

    def __init__(self, data, batch_size: int, size: int, seed: int, channels_last: bool = False,
                 device: torch.device | None = None):
        self.a = make_sampler(data.a, batch_size, size, seed, channels_last, device, key="sampler.a")
        self.b = make_sampler(data.b, batch_size, size, seed + 1, channels_last, device, key="sampler.b")

    @staticmethod
    def _join(a: Batch, b: Batch) -> Batch:
        return Batch(b.images, b.labels, source=a.images, source_labels=a.labels)

    def next(self) -> Batch:
        return self._join(self.a.next(), self.b.next())

    def fixed(self, n: int, seed: int) -> Batch:
        return self._join(self.a.fixed(n, seed), self.b.fixed(n, seed + 1))

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        (ta, ma), (tb, mb) = self.a.state(), self.b.state()
        return {**ta, **tb}, {"a": ma, "b": mb}

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        if "a" not in meta:
            raise DataError("--resume: this run was checkpointed with one data set; it cannot "
                            "continue on two domains")
        self.a.restore(tensors, meta["a"])
        self.b.restore(tensors, meta["b"])


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


def make_sampler(data, batch_size: int, size: int, seed: int, channels_last: bool = False,
                 device: torch.device | None = None, key: str = "sampler"):
    """The sampler for this kind of data set: crops for images of any size, a sampler per
    domain for two domains, else epochs.

    Args:
        data: an ImageSet, a PatchSet (anything with `sample`) or a DomainPair, on any device.
        batch_size: the global batch (each rank keeps its slice).
        size: the crop size of a PatchSet.
        seed: seeds the sampler's own generator.
        channels_last: give images the NHWC memory layout.
        device: where batches are made (the training device); None: where the data is.
        key: the prefix of the sampler's tensors in checkpoints.

    Example:
        >>> sampler = make_sampler(data, 64, 32, seed=0, device=torch.device("cuda"))
        >>> sampler.next().images.device.type
        'cuda'
    """
    if hasattr(data, "domain"):
        return DomainSampler(data, batch_size, size, seed, channels_last, device)
    if hasattr(data, "sample"):
        return PatchSampler(data, batch_size, size, seed, channels_last, device, key)
    return EpochSampler(data, batch_size, seed, channels_last, device, key)
