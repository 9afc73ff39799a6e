"""Everything multi-process lives here, so the same code runs under `python` and `torchrun`.

Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK in the environment) `setup()` joins the
process group: NCCL on CUDA, gloo on CPU. Each rank then trains on its slice of every
global batch; DistributedDataParallel averages the gradients; rank 0 alone writes logs,
samples and checkpoints. Without torchrun every function here is a cheap no-op.
"""
from __future__ import annotations

import os
import time
import warnings
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes files and prints."""
    return rank() == 0


def launched() -> bool:
    """True when started by torchrun (or another launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_name: str) -> torch.device:
    """Join the process group when launched by torchrun; return this rank's device.

    `device_name` is train.device: on CUDA each rank takes cuda:LOCAL_RANK.
    """
    if not launched():
        return torch.device(device_name)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local)
    if not is_distributed():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=10))
    return torch.device("cuda", local) if use_cuda else torch.device("cpu")


def teardown() -> None:
    """Leave the process group at the end of a run, so the process exits cleanly.

    DistributedDataParallel keeps the gloo group (and its worker threads) alive until the
    interpreter exits, and a worker that has just finished a collective may still be
    releasing its tensors: if it needs the GIL once Python has begun to shut down, the
    process aborts ("terminate called without an active exception"). So every rank meets at
    a barrier, leaves the group, then sleeps briefly with the GIL released while those
    threads finish their last work."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()
        time.sleep(_TEARDOWN_GRACE_S)


# Seconds a rank waits after leaving the group; the threads need milliseconds, this leaves
# room for a loaded machine.
_TEARDOWN_GRACE_S = 0.25


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def local_slice(n: int) -> slice:
    """This rank's part of a global batch of `n` (which must divide evenly)."""
    size = n // world_size()
    return slice(rank() * size, (rank() + 1) * size)


def global_randn(n_local: int, *shape: int, device=None) -> torch.Tensor:
    """Noise for this rank's samples, cut from one global draw: every rank advances the
    RNG alike (they share a seed), and N ranks together draw what one process would."""
    noise = torch.randn(n_local * world_size(), *shape, device=device)
    return noise[rank() * n_local:(rank() + 1) * n_local]


def global_randint(high: int, n_local: int, device=None) -> torch.Tensor:
    values = torch.randint(0, high, (n_local * world_size(),), device=device)
    return values[rank() * n_local:(rank() + 1) * n_local]


def mean_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Average logged values over ranks (one all-reduce), so every rank sees the same."""
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    stacked = torch.stack([values[k].float() for k in keys])
    dist.all_reduce(stacked)
    return dict(zip(keys, stacked / world_size()))


def all_agree(flag: bool, device: torch.device) -> bool:
    """True only if `flag` is true on every rank."""
    if not is_distributed():
        return flag
    tensor = torch.tensor([0.0 if flag else 1.0], device=device)
    dist.all_reduce(tensor)
    return tensor.item() == 0


def broadcast(value):
    """Rank 0's (picklable, small) value on every rank."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


class DataParallel(nn.parallel.DistributedDataParallel):
    """DDP whose wrapper still answers for the network's own attributes (latent_dim, ...)."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(net: nn.Module, device: torch.device, sync_batchnorm: bool) -> nn.Module:
    """Wrap a network for data-parallel training (identity outside torchrun)."""
    if not is_distributed() or not any(p.requires_grad for p in net.parameters()):
        return net
    if sync_batchnorm:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    # channels_last weights with one input channel have ambiguous strides; DDP's reducer
    # then warns every step about a copy it makes. Harmless, so said once here instead.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    ids = [device.index] if device.type == "cuda" else None
    # Progressive growing leaves the parameters of stages not yet grown without gradients.
    unused = hasattr(net, "idle_parameters")
    return DataParallel(net, device_ids=ids, find_unused_parameters=unused)


# --------------------------------------------------------------------------- reductions
# Statistics that every rank must act on alike (ADA's over-fitting measure) are summed over
# ranks here. NCCL reduces only tensors on this rank's CUDA device, so a value kept on the
# host (a Python number turned tensor) is moved there first and the sum handed back where
# it came from.

def reduction_device(tensor: torch.Tensor) -> torch.device:
    """Where a collective can reduce `tensor`: this rank's CUDA device under NCCL, else
    where the tensor already is."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return tensor.device


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `tensor` over all ranks, on every rank, on `tensor`'s device.

    Every rank must call it (a collective); outside torchrun it returns `tensor` itself.
    The input is never written to.

    Args:
        tensor: a float tensor of the same shape on every rank.

    Example:
        >>> totals = sum_over_ranks(torch.tensor([sign_sum, count]))   # the same on every rank
    """
    if not is_distributed():
        return tensor
    total = tensor.detach().to(reduction_device(tensor), copy=True)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.to(tensor.device)


# --------------------------------------------------------------------------- per-rank state
# What differs between ranks and must survive a resume (each rank's random generators) is
# gathered to rank 0, which alone writes checkpoints; each rank restores its own part.

def gather_per_rank(tensor: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """Every rank's `tensor`, in rank order, on the CPU (a collective: every rank calls it).

    Outside torchrun: `[tensor]`. The tensors must have the same shape and dtype on every
    rank (a generator state does). `device` is this rank's training device: NCCL gathers
    only CUDA tensors, gloo CPU ones.

    Args:
        tensor: this rank's value, e.g. `torch.get_rng_state()`.
        device: the rank's training device (where the collective runs).

    Example:
        >>> states = gather_per_rank(torch.get_rng_state(), device)   # states[k]: rank k's
    """
    if not is_distributed():
        return [tensor]
    mine = tensor.to(device)
    parts = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(parts, mine)
    return [part.cpu() for part in parts]

