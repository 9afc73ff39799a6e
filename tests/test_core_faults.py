"""The training core where users at scale take it, tested on the CPU (issue 17): fp16 scaler
overflows, data kept off the training device, per-rank RNG states, EMA switched on at
resume, the learning-rate horizon, rollbacks to before a streak, a data set that changed
size, the checkpoint folder flushed, a full disk, and SIGTERM. Runs are tiny: an 8-channel
DCGAN (or a 32-unit MLP) on the bundled digits at 16 px."""
from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import checkpoint
from ganforge.config import HealthConfig
from ganforge.data import ImageSet
from ganforge.data.patches import PatchSet
from ganforge.errors import CheckpointError, DataError
from ganforge.training import Trainer
from ganforge.training import trainer as trainer_module
from ganforge.training.batches import EpochSampler, PatchSampler, make_sampler
from ganforge.training.ema import EMA
from ganforge.training.health import Action, HealthMonitor
from helpers import torchrun

TINY = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 16, "data.resolution": 16,
        "log.every": 2, "log.progress": False, "log.tensorboard": "no",
        "log.sample_every": 1000, "log.checkpoint_every": 1000, "train.device": "cpu"}


def tiny(tmp_path: Path, steps: int, name: str = "r", **extra) -> dict:
    return {**TINY, "train.steps": steps, "out": str(tmp_path / name), **extra}


def make(tmp_path: Path, steps: int, name: str = "r", **extra) -> Trainer:
    return Trainer(ganforge.make_config(overrides=tiny(tmp_path, steps, name, **extra)))


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def health_lines(run_dir: Path) -> list[dict]:
    return [r for r in metrics(run_dir) if "health" in r]


def last_meta(run_dir: Path) -> dict:
    return checkpoint.read_meta(Path(run_dir) / "checkpoints" / "last.safetensors")


# --------------------------------------------------------------------------- 1. fp16 overflows

def test_an_fp16_overflow_is_a_skipped_step_not_divergence(tmp_path, monkeypatch):
    """fp16 autocast with an enabled GradScaler on the CPU; one D gradient made inf at step 2.
    The scaler skips that update and halves its scale; the health controller must not roll back."""
    monkeypatch.setattr(trainer_module, "pick_dtype", lambda config, device: torch.float16)
    t = make(tmp_path, 4)
    assert t.scaler.is_enabled() and t.scaler.get_scale() == 2.0 ** 16
    calls = []

    def overflow_once(grad):
        calls.append(1)
        return grad * float("inf") if len(calls) == 2 else grad  # the D update of step 2

    next(t.nets["D"].parameters()).register_hook(overflow_once)
    run = t.run()
    assert run.step == 4 and run.stop_reason == "steps done"
    assert not health_lines(run.dir) and t.rollbacks == 0 and t.lr_scale == 1.0
    first, second = metrics(run.dir)
    assert first["scaler_skipped_D"] == 1 and first["scaler_skipped_G"] == 0
    assert second["scaler_skipped_D"] == 0
    # The norm averages the one applied update of D in the window: finite and positive.
    assert 0 < first["grad_norm_D"] < float("inf") and 0 < first["grad_norm_G"]
    assert first["grad_scale"] == 2.0 ** 15  # halved once, by the skipped update
    assert t.weights_finite()


def test_a_window_of_skipped_updates_logs_no_norm_for_that_network(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "pick_dtype", lambda config, device: torch.float16)
    t = make(tmp_path, 2)
    next(t.nets["D"].parameters()).register_hook(lambda grad: grad * float("inf"))
    run = t.run()
    (record,) = metrics(run.dir)
    assert record["scaler_skipped_D"] == 2 and "grad_norm_D" not in record
    assert record["grad_scale"] == 2.0 ** 14 and run.stop_reason == "steps done"


def test_a_collapsed_gradient_scale_is_divergence_and_skips_are_not():
    monitor = HealthMonitor(HealthConfig())
    good = {"step": 4, "loss_D": 1.0, "grad_norm_D": 3.0, "scaler_skipped_D": 3.0, "grad_scale": 1.0}
    assert monitor.check_log(dict(good), True, 0) is None
    action = monitor.check_log({**good, "grad_scale": 2.0 ** -20}, True, 0)
    assert action.kind == "divergence" and "grad_scale" in action.reason


# --------------------------------------------------------------------------- 2. data off the device

def _digits(n: int = 20) -> ImageSet:
    images = torch.arange(n * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(n, 1, 4, 4)
    return ImageSet(images, torch.arange(n) % 3, ["a", "b", "c"])


def test_samplers_make_their_batches_on_the_training_device():
    """Data in host memory, training elsewhere ("meta" stands for the accelerator): every
    batch, labels and previews included, is made on the training device."""
    meta = torch.device("meta")
    sampler = make_sampler(_digits(), 8, 4, seed=0, device=meta)
    assert isinstance(sampler, EpochSampler)
    for batch in (sampler.next(), sampler.next(), sampler.next(), sampler.fixed(5, 1)):
        assert batch.images.device == meta and batch.images.dtype == torch.float32
        assert batch.labels.device == meta
    assert sampler.next().images.shape == (8, 1, 4, 4)
    photos = PatchSet([torch.zeros(3, 12, 10, dtype=torch.uint8)], ["a.png"], resolution=4)
    crops = make_sampler(photos, 6, 4, seed=0, device=meta)
    assert isinstance(crops, PatchSampler)
    assert crops.next().images.device == meta and crops.fixed(2, 0).images.shape == (2, 3, 4, 4)
    # Without a device, batches stay where the data is (the data is on the device already).
    assert make_sampler(_digits(), 8, 4, seed=0).next().images.device.type == "cpu"


def test_data_kept_off_the_device_reaches_the_trainers_device(tmp_path):
    t = make(tmp_path, 2, **{"data.on_device": "no"})
    assert t.sampler.device == t.device
    batch = t.sampler.next()
    assert batch.images.device.type == t.device.type and batch.labels.device.type == t.device.type
    assert t.run().stop_reason == "steps done"


# --------------------------------------------------------------------------- 6. per-rank RNG states

RNG_WORKER = textwrap.dedent('''
    """Two ranks whose CPU generators differ; checkpoint, resume, compare each rank's state."""
    import sys
    import torch
    from safetensors.torch import save_file
    import ganforge
    from ganforge import distributed
    from ganforge.training import Trainer

    out, overrides = sys.argv[1], sys.argv[2:]
    first = Trainer(ganforge.make_config(overrides=[*overrides, f"out={out}/run"]))
    first.run()
    torch.manual_seed(1000 + distributed.rank())  # each rank's own stream from here on
    torch.rand(7)
    saved = torch.get_rng_state()
    first.save_checkpoint()
    resumed = Trainer(ganforge.make_config(resume=f"{out}/run"), resume=True)
    save_file({"saved": saved, "restored": torch.get_rng_state()},
              f"{out}/rng{distributed.rank()}.safetensors")
    distributed.teardown()
''')


@pytest.mark.dist
def test_each_rank_resumes_with_its_own_generator_state(tmp_path):
    from safetensors.torch import load_file

    worker = tmp_path / "rng_worker.py"
    worker.write_text(RNG_WORKER)
    settings = ["model.name=mlp", "model.hidden=32", "data.resolution=16", "train.batch_size=16",
                "train.steps=2", "train.ema_decay=0", "log.every=2", "log.progress=false",
                "log.tensorboard=no", "train.device=cpu", "train.precision=fp32"]
    done = torchrun(worker, tmp_path, settings)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rng{k}.safetensors") for k in (0, 1)]
    assert not torch.equal(ranks[0]["saved"], ranks[1]["saved"])  # the ranks' states differ ...
    for state in ranks:
        assert torch.equal(state["restored"], state["saved"])  # ... and each gets its own back
    tensors, _ = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.safetensors", prefix="rng.")
    assert torch.equal(tensors["rng.torch"], ranks[0]["saved"])
    assert torch.equal(tensors["rng.torch.rank1"], ranks[1]["saved"])


# --------------------------------------------------------------------------- 7. EMA

def test_ema_switched_on_at_resume_starts_from_the_restored_weights(tmp_path):
    run = ganforge.train(overrides=tiny(tmp_path, 2, **{"train.ema_decay": 0.0}))
    t = Trainer(ganforge.make_config(resume=run.dir, overrides={"train.ema_decay": 0.99,
                                                                "train.steps": 3}), resume=True)
    G = t.nets["G"].state_dict()
    for key, value in t.ema.shadow.state_dict().items():
        assert torch.equal(value, G[key]), key
    fresh = make(tmp_path, 0, "fresh")  # the random initial weights the shadow used to start from
    assert any(not torch.equal(v, G[k]) for k, v in fresh.nets["G"].state_dict().items())
    t.run()
    assert last_meta(run.dir)["has_ema"]


class _Scaled(torch.nn.Module):
    """Linear + BatchNorm, and a step-driven float buffer (like progressive growing's alpha)."""

    def __init__(self):
        super().__init__()
        self.linear, self.norm = torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)
        self.register_buffer("alpha", torch.zeros(()))


def test_ema_averages_batch_norm_statistics_and_copies_other_buffers():
    net = _Scaled()
    ema = EMA(net, decay=0.99)
    with torch.no_grad():
        net.norm.running_mean.fill_(1.0)
        net.norm.running_var.fill_(3.0)
        net.norm.num_batches_tracked.fill_(7)
        net.alpha.fill_(0.25)
    ema.update(net, step=10_000)  # decay 0.99: 1 % of the way
    assert torch.allclose(ema.shadow.norm.running_mean, torch.full((2,), 0.01))
    assert torch.allclose(ema.shadow.norm.running_var, torch.full((2,), 1.02))  # from 1.0
    assert ema.shadow.norm.num_batches_tracked.item() == 7
    assert ema.shadow.alpha.item() == 0.25


# --------------------------------------------------------------------------- 8. LR horizon

def _record_learning_rates(monkeypatch) -> list[tuple[int, float]]:
    seen = []
    original = Trainer._set_learning_rates

    def set_learning_rates(self):
        original(self)
        seen.append((self.step, self.optimizers["D"].param_groups[0]["lr"]))

    monkeypatch.setattr(Trainer, "_set_learning_rates", set_learning_rates)
    return seen


def _interrupt_at(monkeypatch, step: int) -> None:
    """Ctrl-C during step `step` (0-based): the run stops after it, with a checkpoint."""
    original = Trainer._train_step

    def train_step(self, sums):
        original(self, sums)
        if self.step == step:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Trainer, "_train_step", train_step)


def test_a_longer_resume_keeps_the_learning_rate_schedule(tmp_path, monkeypatch):
    cosine = {"train.lr_schedule": "cosine", "log.checkpoint_every": 2}
    seen = _record_learning_rates(monkeypatch)
    ganforge.train(overrides=tiny(tmp_path, 8, "straight", **cosine))
    straight = dict(seen)
    seen.clear()
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 3)
        first = ganforge.train(overrides=tiny(tmp_path, 8, "split", **cosine))
    assert first.step == 4 and first.stop_reason == "interrupted"
    seen.clear()
    resumed = ganforge.train(resume=first.dir, overrides={"train.steps": 12})
    assert resumed.step == 12
    lrs = dict(seen)
    for step in range(4, 8):
        assert lrs[step] == straight[step], step  # the same rates as the run that kept steps=8
    assert straight[4] > straight[7] > 0 and all(lrs[step] == 0.0 for step in range(8, 12))
    assert last_meta(first.dir)["schedule_steps"] == 8


# --------------------------------------------------------------------------- 10. rollbacks

def test_a_collapse_rolls_back_to_a_checkpoint_from_before_the_streak(tmp_path):
    """D wins from step 5 on (its streak begins after step 4); checkpoints every 2 steps. The
    collapse at step 8 must go back to step 4, not to the checkpoint of step 6 inside the streak."""
    t = make(tmp_path, 10, **{"log.checkpoint_every": 2, "health.d_win_accuracy": 0.99,
                              "health.d_win_steps": 4,
                              "health.flat_d_steps": 0})  # no flat-D streak of the tiny D's
    check_log, points = t.health.check_log, []

    def rigged(record, finite, since):
        winning = record["step"] > 4 and t.rollbacks == 0
        point = t.run_dir / "checkpoints" / "rollback.safetensors"
        points.append(checkpoint.read_meta(point)["step"] if point.is_file() else None)
        return check_log({**record, "D_accuracy": 1.0 if winning else 0.5}, finite, since)

    t.health.check_log = rigged
    run = t.run()
    (line,) = health_lines(run.dir)
    assert line["health"] == "collapse" and line["action"].startswith("rolled back from step 8 to step 4")
    assert points[:4] == [None, None, None, 4]  # kept from the save at step 6 on
    assert run.step == 10 and run.stop_reason == "steps done"
    assert not (run.dir / "checkpoints" / "rollback.safetensors").exists()  # no streak at the end


class _Collapses(HealthMonitor):
    """A fake monitor: a collapse at the log lines numbered in `at` (1-based), nothing else."""

    def __init__(self, config, at):
        super().__init__(config)
        self.at, self.calls = set(at), 0

    def check_log(self, record, weights_finite, since_step):
        self.calls += 1
        return Action("collapse", "rigged") if self.calls in self.at else None


def test_a_rollback_keeps_what_earlier_rollbacks_strengthened(tmp_path):
    """Two collapses before any new checkpoint: the second raises p from where the first
    left it (0.3 -> 0.5 -> 0.7), not from the checkpoint's 0.3 again."""
    t = make(tmp_path, 6, **{"objective.augment": "translation", "objective.augment_p": 0.3})
    t.health = _Collapses(t.config.health, at=(2, 4))
    run = t.run()
    assert run.step == 6 and run.stop_reason == "steps done"
    lines = health_lines(run.dir)
    assert [line["step"] for line in lines] == [0, 0]
    assert "0.50" in lines[0]["action"] and "0.70" in lines[1]["action"]
    assert last_meta(run.dir)["objective"]["p"] == pytest.approx(0.7)


# --------------------------------------------------------------------------- 16. checkpoints

def _gray_folder(folder: Path, n: int, start: int = 0) -> Path:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), "L").save(folder / f"{i:02d}.png")
    return folder


def test_a_resumed_run_whose_data_set_changed_size_says_so(tmp_path):
    folder = _gray_folder(tmp_path / "pictures", 12)
    run = ganforge.train(overrides=tiny(tmp_path, 2, **{"data.name": f"folder:{folder}",
                                                        "train.batch_size": 4}))
    _gray_folder(folder, 3, start=12)
    with pytest.raises(DataError, match=r"15 images now but 12") as error:
        ganforge.train(resume=run.dir, overrides={"train.steps": 4})
    assert "\n" not in str(error.value)


def test_a_sampler_refuses_state_for_another_size():
    sampler = EpochSampler(_digits(20), 4, seed=0)
    sampler.next()
    tensors, meta = sampler.state()
    with pytest.raises(DataError, match="19 images now but 20"):
        EpochSampler(_digits(19), 4, seed=0).restore(tensors, meta)
    # Checkpoints written before "size" was recorded: told by the saved order's length.
    with pytest.raises(DataError, match="19 images now but 20"):
        EpochSampler(_digits(19), 4, seed=0).restore(tensors, {"cursor": 4, "epoch": 1})
    def photos(n: int) -> PatchSet:
        return PatchSet([torch.zeros(1, 8, 8, dtype=torch.uint8)] * n, list("abc")[:n], resolution=4)

    tensors, meta = PatchSampler(photos(3), 2, 4, seed=0).state()
    with pytest.raises(DataError, match="2 images now but 3"):
        PatchSampler(photos(2), 2, 4, seed=0).restore(tensors, meta)


@pytest.mark.skipif(os.name != "posix", reason="folders are flushed on POSIX systems")
def test_a_checkpoint_flushes_its_folder_after_the_rename(tmp_path, monkeypatch):
    flushed = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: flushed.append(stat.S_ISDIR(os.fstat(fd).st_mode))
                        or real_fsync(fd))
    checkpoint.save(tmp_path / "c.safetensors", {"w": torch.zeros(2)}, {"step": 1})
    assert flushed == [False, True]  # the file, then its folder


def _disk_full_midway(tensors, filename, metadata=None):
    with open(filename, "wb") as handle:
        handle.write(b"\x00" * 64)  # part of the file made it to disk
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_checkpoint_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, {"w": torch.zeros(2)}, {"step": 1})
    monkeypatch.setattr(checkpoint, "save_file", _disk_full_midway)
    with pytest.raises(CheckpointError) as error:
        checkpoint.save(path, {"w": torch.ones(2)}, {"step": 2})
    message = str(error.value)
    assert str(path) in message and "No space left on device" in message and "\n" not in message
    assert isinstance(error.value, OSError)
    assert checkpoint.read_meta(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no partial file left


def test_a_run_that_fills_the_disk_stops_with_the_last_checkpoint_intact(tmp_path, monkeypatch):
    real = checkpoint.save_file
    writes = []

    def fail_second(tensors, filename, metadata=None):
        writes.append(filename)
        if len(writes) == 2:  # the step-2 checkpoint
            return _disk_full_midway(tensors, filename, metadata)
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", fail_second)
    with pytest.raises(CheckpointError, match="last.safetensors"):
        ganforge.train(overrides=tiny(tmp_path, 4, **{"log.checkpoint_every": 2}))
    run_dir = tmp_path / "r"
    assert last_meta(run_dir)["step"] == 0
    monkeypatch.setattr(checkpoint, "save_file", real)
    assert ganforge.train(resume=run_dir).step == 4


# --------------------------------------------------------------------------- SIGTERM

def test_sigterm_writes_a_checkpoint_and_exits_cleanly(tmp_path):
    out = tmp_path / "r"
    settings = ["model.name=mlp", "model.hidden=32", "data.resolution=16", "train.batch_size=16",
                "train.device=cpu", "log.every=1", "log.tensorboard=no", "train.time_budget=60"]
    command = [sys.executable, "-m", "ganforge", "train", "--quiet", "--out", str(out),
               "--steps", "100000", *[f"--set={s}" for s in settings]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not ((out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text()):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-3000:]
    assert "(terminated)" in stdout and "Traceback" not in stderr
    stopped = last_meta(out)["step"]
    assert 0 < stopped < 100000 and f"step {stopped}," in stdout
    assert ganforge.train(resume=out, overrides={"train.steps": stopped + 2}).step == stopped + 2
