"""The GAN objective's issue-17 items that only a GPU shows: every logged value and ADA's
statistic reduce under NCCL (which takes only tensors on the GPU), and losses stay float32
under CUDA bf16 autocast. Run where CUDA is: `pytest -q -m gpu tests/gpu/test_gpu_gan.py`.

A one-rank NCCL group is enough: NCCL refuses a host tensor whatever the number of ranks,
and one GPU cannot hold two NCCL ranks."""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from ganforge import distributed
from ganforge.config import ModelConfig
from ganforge.losses import GAN_LOSSES
from ganforge.models import DataShape, build_models
from ganforge.objectives.base import Batch
from ganforge.objectives.gan import GANArgs, GANObjective

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture
def nccl_group(tmp_path):
    """A one-rank NCCL process group on cuda:0, torn down after the test."""
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield torch.device("cuda", 0)
    dist.destroy_process_group()


def cuda_objective(device, **args) -> GANObjective:
    networks = build_models(ModelConfig(name="dcgan", args={"g_width": 8, "d_width": 8}), DataShape(16, 1, 0))
    for net in networks.values():
        net.to(device)
    return GANObjective(GANArgs(**args), networks)


def test_logged_values_and_the_ada_statistic_reduce_under_nccl(nccl_group):
    device = nccl_group
    objective = cuda_objective(device, ada=True, augment_p=0.3, ada_speed=1000)
    images = torch.rand(8, 1, 16, 16, device=device) * 2 - 1
    _, values = objective.loss("D", Batch(images))
    assert {value.device.type for value in values.values()} == {"cuda"}
    reduced = distributed.mean_over_ranks(values)    # augment_p was a host tensor: NCCL refused it
    assert reduced["augment_p"].item() == pytest.approx(0.3)
    # ADA's statistic goes through NCCL too; with one rank it is this rank's own.
    assert objective.state_dict()["ada"]["count"] == 8
    for _ in range(4):
        objective.after_step("G")
    assert objective.ada.p in (pytest.approx(0.3 - 8 * 4 / 1000), pytest.approx(0.3 + 8 * 4 / 1000))
    # A host tensor is reduced on the GPU and handed back on the host.
    total = distributed.sum_over_ranks(torch.tensor([2.0, 3.0]))
    assert total.device.type == "cpu" and total.tolist() == [2.0, 3.0]


def test_losses_stay_float32_under_cuda_bf16_autocast():
    D = nn.Linear(8, 1).cuda()
    x = torch.randn(64, 8, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        real, fake = D(x).flatten(), D(-x).flatten()
        assert real.dtype == torch.bfloat16
        for name in GAN_LOSSES.names():
            loss = GAN_LOSSES.get(name)
            d_loss, g_loss = loss.d_loss(real, fake), loss.g_loss(fake)
            assert d_loss.dtype == g_loss.dtype == torch.float32, name
            assert torch.equal(d_loss, loss.d_loss(real.float(), fake.float())), name
