"""The GAN objective where users at scale take it (issue 17): logged values on the training
device, ADA under torchrun, losses whose logits are not centred at 0, settings changed at
--resume, and losses on bf16 logits.

Runs are tiny (8-channel DCGAN or 32-unit MLP on the bundled digits at 16 px). The `dist`
tests start two gloo processes under torchrun with this file as the worker (see the end)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import ganforge
from ganforge import checkpoint, distributed
from ganforge.cli import main
from ganforge.config import ModelConfig
from ganforge.data.augment import AUGMENTS, AdaptiveAugment, augment
from ganforge.errors import ConfigError
from ganforge.losses import GAN_LOSSES
from ganforge.losses.regularizers import add_spectral_norm
from ganforge.models import DataShape, build_models
from ganforge.objectives.base import Batch
from ganforge.objectives.gan import GANArgs, GANObjective
from ganforge.training import Trainer

TINY = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 16, "data.resolution": 16,
        "log.every": 2, "log.progress": False, "log.tensorboard": "no",
        "log.sample_every": 1000, "log.checkpoint_every": 1000}


def tiny(tmp_path: Path, name: str, steps: int, **extra) -> dict:
    return {**TINY, "train.steps": steps, "out": str(tmp_path / name), **extra}


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def last_meta(run_dir: Path) -> dict:
    return checkpoint.load(Path(run_dir) / "checkpoints" / "last.safetensors")[1]


def nets() -> dict:
    return build_models(ModelConfig(name="dcgan", args={"g_width": 8, "d_width": 8}), DataShape(16, 1, 0))


def real_batch(n: int = 8, device="cpu") -> Batch:
    images = torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return Batch(images.to(device))


class ConstantD(nn.Module):
    """A discriminator that answers `real` on the first call of each D run and `fake` on the
    second (the objective scores reals, then fakes)."""

    def __init__(self, real: float, fake: float):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.answers, self.calls = (real, fake), 0

    def forward(self, x, labels=None):
        value = self.answers[self.calls % 2]
        self.calls += 1
        return self.scale * torch.full((x.shape[0],), value, device=x.device)


def constant_d_objective(loss: str, real: float, fake: float, **args) -> GANObjective:
    networks = nets()
    networks["D"] = ConstantD(real, fake)
    return GANObjective(GANArgs(loss=loss, **args), networks)


# --------------------------------------------------------------------------- 3: logged values' device

@pytest.mark.parametrize("args", [{"augment": "translation,color,cutout,flip", "augment_p": 0.5},
                                  {"ada": True, "augment_p": 0.3}, {"loss": "wgan-gp", "augment": "flip"}])
def test_every_logged_value_lives_on_the_batch_device(args):
    """NCCL reduces all logged values in one tensor on the GPU; a value made on the host
    (augment_p was) breaks it. The meta device stands in for a GPU: a value made anywhere but
    on the batch's device shows here as on CUDA."""
    networks = nets()
    for net in networks.values():
        net.to("meta")
    objective = GANObjective(GANArgs(**args), networks)
    if args.get("loss") == "wgan-gp":   # the gradient penalty differentiates D: not on meta
        objective.gp_weight = 0.0
    _, values = objective.loss("D", real_batch(4, device="meta"))
    assert "augment_p" in values
    assert {key: value.device.type for key, value in values.items()} == dict.fromkeys(values, "meta")


def test_sum_over_ranks_is_the_identity_in_one_process():
    values = torch.tensor([3.0, -1.0])
    assert distributed.sum_over_ranks(values) is values
    assert distributed.reduction_device(values) == torch.device("cpu")


# --------------------------------------------------------------------------- 4: ADA under torchrun

@pytest.mark.parametrize("op", sorted(AUGMENTS))
def test_a_shard_of_the_batch_is_augmented_as_in_the_whole_batch(op):
    """Each rank draws for the global batch and keeps its slice: two ranks (sharing a seed)
    augment their halves exactly as one process augments the whole batch."""
    images = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    whole = augment(images, op, 0.5, torch.Generator().manual_seed(7))
    halves = [augment(images[16 * i:16 * (i + 1)], op, 0.5, torch.Generator().manual_seed(7), shard=(i, 2))
              for i in range(2)]
    assert torch.equal(torch.cat(halves), whole)
    # Unsharded, the second half would be augmented with the first half's draws.
    assert not torch.equal(halves[1], augment(images[16:], op, 0.5, torch.Generator().manual_seed(7)))


def test_ada_update_reads_the_reduced_statistic():
    """The reduction sees [sign sum, count] and the update acts on what it returns."""
    seen = []

    def other_rank_disagrees(stats):   # this rank saw +4 of 4; another rank saw -8 of 8
        seen.append(stats.tolist())
        return stats + torch.tensor([-8.0, 8.0])

    ada = AdaptiveAugment(target=0.6, speed_images=100, interval=1, p=0.5)
    ada.observe(torch.ones(4))
    r_t = ada.update(10, reduce=other_rank_disagrees)
    assert seen == [[4.0, 4.0]]
    assert r_t == pytest.approx(-4 / 12) and ada.p == pytest.approx(0.4)  # fell: 0.5 - 10 / 100


def test_a_resumed_rank_other_than_0_counts_the_saved_statistic_once(monkeypatch):
    objective = GANObjective(GANArgs(ada=True), nets())
    objective.ada.observe(torch.ones(6))
    state = json.loads(json.dumps(objective.state_dict()))
    assert state["ada"]["sign_sum"] == 6 and state["ada"]["count"] == 6
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    other = GANObjective(GANArgs(ada=True), nets())
    other.load_state_dict(state)
    assert other.ada.state_dict()["count"] == 0 and other.ada.state_dict()["sign_sum"] == 0


WORKER_SETTINGS = ["model.name=mlp", "model.hidden=32", "data.resolution=16", "train.batch_size=32",
                   "train.seed=3", "train.ema_decay=0", "log.every=4", "log.progress=false",
                   "log.tensorboard=no", "log.sample_every=1000", "train.device=cpu",
                   "train.precision=fp32", "objective.ada=true", "objective.ada_speed=2560"]


def torchrun(out: Path, settings: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               __file__, str(out), *settings]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)


@pytest.mark.dist
def test_ada_under_two_ranks_applies_one_p_as_one_process_does(tmp_path):
    """Two gloo ranks with ADA: the same p on both, equal to one process's p on the same global
    batch (before: each rank moved p by its own half batch, at half speed, from its own
    logits), the same weights as that process (augmentation drawn per global batch), and a
    checkpoint taken mid-interval holds the statistic of both ranks, so a one-process resume
    continues exactly."""
    done = torchrun(tmp_path, [*WORKER_SETTINGS, "train.steps=14"])
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert ranks[0]["ada"] == ranks[1]["ada"]
    assert ranks[0]["checkpointed"] == ranks[0]["ada"]

    overrides = [*WORKER_SETTINGS, "train.steps=14", f"out={tmp_path / 'single'}"]
    single = Trainer(ganforge.make_config(overrides=overrides))
    single.run()
    ada = single.objective.ada.state_dict()
    assert ranks[0]["ada"] == ada
    assert ada["p"] == pytest.approx(3 * 32 * 4 / 2560) and ada["count"] == 2 * 32  # 3 rises, 2 steps pending
    weights = load_file(tmp_path / "rank0.safetensors")
    for name, net in single.nets.items():
        for key, value in net.state_dict().items():
            assert torch.allclose(weights[f"{name}.{key}"], value, atol=1e-5, rtol=1e-4), key

    resumed = ganforge.train(resume=tmp_path / "run", overrides={"train.steps": 16})
    straight = ganforge.train(overrides=[*WORKER_SETTINGS, "train.steps=16", f"out={tmp_path / 'straight'}"])
    assert last_meta(resumed.dir)["objective"]["ada"] == last_meta(straight.dir)["objective"]["ada"]
    assert last_meta(straight.dir)["objective"]["ada"]["p"] == pytest.approx(4 * 32 * 4 / 2560)


# --------------------------------------------------------------------------- 5: what D's verdict is

def test_each_loss_says_where_d_calls_an_image_real():
    assert {name: GAN_LOSSES.get(name).threshold for name in GAN_LOSSES.names()} == {
        "ns": 0.0, "hinge": 0.0, "lsgan": 0.5, "wgan": None, "wgan-gp": None}
    assert torch.equal(GAN_LOSSES.get("lsgan").real_score(torch.tensor([1.0, 0.0])), torch.tensor([0.5, -0.5]))
    logits = torch.tensor([0.3, -2.0])
    assert GAN_LOSSES.get("ns").real_score(logits) is logits
    with pytest.raises(ConfigError):
        GAN_LOSSES.get("wgan").real_score(logits)


@pytest.mark.parametrize("loss", ["ns", "hinge"])
def test_d_accuracy_of_centred_losses_is_unchanged(loss):
    real, fake = torch.randn(64), torch.randn(64)
    before = ((real > 0).float().mean() + (fake < 0).float().mean()) / 2
    assert torch.equal(GAN_LOSSES.get(loss).accuracy(real, fake), before)


def test_d_accuracy_reads_lsgan_at_one_half_and_a_critic_at_its_midpoint():
    # lsgan: reals scored 0.7 and fakes 0.3 are all told apart (read at 0, the fakes were wrong).
    assert GAN_LOSSES.get("lsgan").accuracy(torch.full((4,), 0.7), torch.full((4,), 0.3)) == 1.0
    objective = constant_d_objective("lsgan", real=0.7, fake=0.3)
    assert objective.loss("D", real_batch())[1]["D_accuracy"] == 1.0
    # A critic: no offset changes its accuracy; separated scores are all right.
    real, fake = torch.tensor([5.0, 6.0, 2.0]), torch.tensor([1.0, 4.5, 0.0])
    wgan = GAN_LOSSES.get("wgan")
    assert wgan.accuracy(real, fake) == pytest.approx(2 / 3)
    assert wgan.accuracy(real, fake) == wgan.accuracy(real + 100, fake + 100)
    assert wgan.accuracy(real + 100, fake + 100) == wgan.accuracy(real - 50, fake - 50)


def test_ada_reads_lsgan_logits_against_one_half():
    """Reals scored 0.3 by an lsgan D are called fake (target 1, fake 0): D does not over-fit
    and p falls. Read at 0 (before), they counted as sure reals and p ratcheted up."""
    objective = constant_d_objective("lsgan", real=0.3, fake=0.1, ada=True, augment_p=0.5, ada_speed=1000)
    for _ in range(4):
        objective.loss("D", real_batch())
        objective.after_step("D")
        objective.after_step("G")
    assert objective.ada.p == pytest.approx(0.5 - 8 * 4 / 1000)


@pytest.mark.parametrize("loss", ["wgan", "wgan-gp"])
def test_ada_with_a_critic_is_refused_by_name(tmp_path, loss):
    with pytest.raises(ConfigError, match=f"objective.ada .*objective.loss='{loss}'") as error:
        ganforge.make_config(overrides={"objective.loss": loss, "objective.ada": True,
                                        "out": str(tmp_path / "c")})
    assert "\n" not in str(error.value) and "augment_p" in str(error.value)


# --------------------------------------------------------------------------- 9: changed at --resume

def test_augmentation_switched_on_at_resume_takes_effect(tmp_path):
    first = ganforge.train(overrides=tiny(tmp_path, "r", 2))
    assert "augment_p" not in metrics(first.dir)[-1]
    resumed = ganforge.train(resume=first.dir, overrides={"train.steps": 4, "objective.augment": "translation",
                                                          "objective.augment_p": 0.5})
    assert metrics(resumed.dir)[-1]["augment_p"] == pytest.approx(0.5)
    objective = last_meta(resumed.dir)["objective"]
    assert objective["policy"] == ["translation"] and objective["p"] == 0.5
    assert objective["args"] == {"augment": ["translation"], "augment_p": 0.5, "ada": False, "mode_seeking": None}


def saved_state(**args) -> dict:
    """An objective's state after a collapse strengthened it (p + 0.2), through JSON."""
    objective = GANObjective(GANArgs(**args), nets())
    objective.strengthen()
    return json.loads(json.dumps(objective.state_dict()))


def test_unchanged_settings_keep_the_checkpoints_state():
    state = saved_state(augment="cutout", augment_p=0.3)
    objective = GANObjective(GANArgs(augment="cutout", augment_p=0.3), nets())
    objective.load_state_dict(state)
    assert objective.p == pytest.approx(0.5) and objective.policy == ["cutout"]
    ada = GANObjective(GANArgs(ada=True, ada_speed=999), nets())
    ada.load_state_dict(saved_state(ada=True))
    assert ada.ada.p == pytest.approx(0.2) and ada.ada.speed_images == 999


def test_changed_settings_take_the_new_values_at_resume():
    state = saved_state(augment="cutout", augment_p=0.3)
    changed_p = GANObjective(GANArgs(augment="cutout", augment_p=0.1), nets())
    changed_p.load_state_dict(state)
    assert changed_p.p == pytest.approx(0.1) and changed_p.policy == ["cutout"]
    changed_policy = GANObjective(GANArgs(augment="flip,color", augment_p=0.3), nets())
    changed_policy.load_state_dict(state)
    assert changed_policy.policy == ["flip", "color"] and changed_policy.p == pytest.approx(0.5)
    # ADA switched on: a fresh controller from the new settings.
    ada_on = GANObjective(GANArgs(augment="cutout", ada=True), nets())
    ada_on.load_state_dict(state)
    assert ada_on.ada.p == 0.0 and ada_on.policy == ["cutout"]
    # ADA switched off: the fixed p and policy of the new settings.
    ada_off = GANObjective(GANArgs(augment="cutout"), nets())
    ada_off.load_state_dict(saved_state(ada=True))
    assert ada_off.ada is None and ada_off.p == 1.0 and ada_off.policy == ["cutout"]
    # ADA kept, augment_p changed: ADA restarts from the new p, keeping its step count.
    ada = saved_state(ada=True)
    ada["ada"]["step"] = 3
    restarted = GANObjective(GANArgs(ada=True, augment_p=0.05), nets())
    restarted.load_state_dict(ada)
    assert restarted.ada.p == pytest.approx(0.05) and restarted.ada.state_dict()["step"] == 3


def test_a_checkpoint_without_recorded_args_is_restored_as_it_is():
    state = saved_state(augment="cutout", augment_p=0.3)
    del state["args"]
    objective = GANObjective(GANArgs(augment="flip", augment_p=0.9), nets())
    objective.load_state_dict(state)
    assert objective.policy == ["cutout"] and objective.p == pytest.approx(0.5)


@pytest.mark.parametrize("was", [False, True])
def test_spectral_norm_toggled_at_resume_is_a_one_line_config_error(tmp_path, capsys, was):
    first = ganforge.train(overrides=tiny(tmp_path, "r", 1, **{"objective.spectral_norm": was}))
    code = main(["train", "--resume", str(first.dir), "--steps", "2",
                 "--set", f"objective.spectral_norm={str(not was).lower()}", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert "objective.spectral_norm was " + str(was).lower() in line and "new run" in line
    assert last_meta(first.dir)["step"] == 1


def test_a_d_with_its_own_spectral_norm_may_toggle_the_objectives():
    """A model that builds D with spectral norm (resnet) is unchanged by objective.spectral_norm."""
    networks = nets()
    add_spectral_norm(networks["D"])
    saved = {k: v.clone() for k, v in networks["D"].state_dict().items()}
    GANObjective(GANArgs(spectral_norm=False), networks)
    networks["D"].load_state_dict(saved)
    plain = nets()
    GANObjective(GANArgs(spectral_norm=True), plain)
    with pytest.raises(ConfigError, match="objective.spectral_norm was false"):
        plain["D"].load_state_dict(nets()["D"].state_dict())


# --------------------------------------------------------------------------- 11: fp32 losses

@pytest.mark.parametrize("name", GAN_LOSSES.names())
def test_losses_of_bf16_logits_are_the_fp32_losses(name):
    loss = GAN_LOSSES.get(name)
    generator = torch.Generator().manual_seed(0)
    real = (torch.randn(256, generator=generator) * 3).bfloat16()
    fake = (torch.randn(256, generator=generator) * 3 - 1).bfloat16()
    for low, full in ((loss.d_loss(real, fake), loss.d_loss(real.float(), fake.float())),
                      (loss.g_loss(fake), loss.g_loss(fake.float()))):
        assert low.dtype == torch.float32 and torch.equal(low, full)
    # float64 is not lowered.
    assert loss.g_loss(fake.double()).dtype == torch.float64


def test_label_smoothed_ns_loss_of_fp16_logits_is_the_fp32_loss():
    from ganforge.losses import ns_d_loss

    real, fake = torch.randn(64).half(), torch.randn(64).half()
    low, full = ns_d_loss(real, fake, real_target=0.9), ns_d_loss(real.float(), fake.float(), real_target=0.9)
    assert low.dtype == torch.float32 and torch.equal(low, full)


# --------------------------------------------------------------------------- torchrun worker

if __name__ == "__main__":
    # Run by `torchrun` above: train, then write this rank's ADA state and weights.
    out, overrides = Path(sys.argv[1]), sys.argv[2:]
    trainer = Trainer(ganforge.make_config(overrides=[*overrides, f"out={out}/run"]))
    trainer.run()
    state = {"ada": trainer.objective.ada.state_dict(reduce=distributed.sum_over_ranks),
             "checkpointed": last_meta(out / "run")["objective"]["ada"]}
    (out / f"rank{distributed.rank()}.json").write_text(json.dumps(state))
    save_file({f"{name}.{key}": value.detach().clone().contiguous()
               for name, net in trainer.nets.items() for key, value in net.state_dict().items()},
              str(out / f"rank{distributed.rank()}.safetensors"))
    distributed.teardown()
