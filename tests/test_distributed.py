"""Two processes under torchrun (gloo on CPU): identical weights on both ranks, and the same
result as one process with the same global batch."""
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ganforge
from ganforge.training import Trainer
from helpers import torchrun as run_worker

WORKER = Path(__file__).with_name("dist_worker.py")
SETTINGS = ["model.name=mlp", "model.hidden=64", "data.resolution=16", "train.batch_size=32",
            "train.steps=6", "train.seed=3", "train.ema_decay=0", "log.every=2",
            "log.progress=false", "log.tensorboard=no", "train.device=cpu", "train.precision=fp32"]


def torchrun(out: Path, settings: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    return run_worker(WORKER, out, settings, nproc)


@pytest.mark.dist
def test_two_ranks_match_each_other_and_one_process(tmp_path):
    done = torchrun(tmp_path, SETTINGS)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # Rank 0 alone wrote the run directory.
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.safetensors").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3

    single = Trainer(ganforge.make_config(overrides=[*SETTINGS, f"out={tmp_path / 'single'}"]))
    single.run()
    reference = {f"{name}.{key}": value for name, net in single.nets.items()
                 for key, value in net.state_dict().items()}
    moved = 0.0
    for key, value in reference.items():
        assert torch.allclose(rank0[key], value, atol=1e-5, rtol=1e-4), key
    # The comparison means something: training moved the weights far more than the tolerance.
    start = Trainer(ganforge.make_config(overrides=[*SETTINGS, f"out={tmp_path / 'start'}", "train.steps=0"]))
    for name, net in start.nets.items():
        for key, value in net.state_dict().items():
            moved = max(moved, (reference[f"{name}.{key}"] - value).abs().max().item())
    assert moved > 1e-3


@pytest.mark.dist
def test_resume_with_another_number_of_ranks(tmp_path):
    first = torchrun(tmp_path, [*SETTINGS, "train.steps=4"])
    assert first.returncode == 0, first.stderr[-3000:]
    # Continue the 2-rank run in one process: the data order and RNG state carry over.
    resumed = ganforge.train(resume=tmp_path / "run", overrides={"train.steps": 6})
    assert resumed.step == 6
    straight = ganforge.train(overrides=[*SETTINGS, f"out={tmp_path / 'straight'}"])
    a = ganforge.checkpoint.load(resumed.dir / "checkpoints" / "last.safetensors")[0]
    b = ganforge.checkpoint.load(straight.dir / "checkpoints" / "last.safetensors")[0]
    for key in a:
        if key.startswith("nets."):
            assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key


def test_batch_must_divide_over_ranks(monkeypatch, tmp_path):
    from ganforge import distributed

    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    monkeypatch.setattr(distributed, "setup", lambda name: torch.device("cpu"))
    with pytest.raises(ganforge.ConfigError, match="batch_size"):
        Trainer(ganforge.make_config(overrides=[*SETTINGS, f"out={tmp_path / 'r'}"]))


@pytest.mark.dist
def test_dcgan_with_every_phase_keeps_ranks_in_step(tmp_path):
    """D called in G's phase, fakes reused, lazy R1 and ADA, bf16 autocast:
    parameters stay identical on both ranks (batch-norm running statistics are each rank's
    own, as with plain DDP)."""
    done = torchrun(tmp_path, ["model.g_width=8", "model.d_width=8", "data.resolution=16",
                               "train.batch_size=32", "train.steps=6", "objective.d_steps=2",
                               "objective.r1_gamma=1", "objective.r1_every=2", "objective.ada=true",
                               "log.progress=false", "train.device=cpu", "train.precision=bf16"])
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    params = [k for k in rank0 if "running_" not in k and "num_batches" not in k]
    assert len(params) > 10
    for key in params:
        assert torch.equal(rank0[key], rank1[key]), key
