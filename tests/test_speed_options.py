"""Every speed option, on and off, trains to the same weights (within the tolerance its
arithmetic allows): channels_last, the Adam implementations, torch.compile, bf16 autocast."""
import pytest
import torch

import ganforge
from ganforge.errors import ConfigError
from ganforge.training import Trainer
from ganforge.training.device import adam_options, use_compile

BASE = {"model.g_width": 8, "model.d_width": 8, "data.resolution": 16, "train.batch_size": 16,
        "train.ema_decay": 0.0, "log.progress": False, "log.tensorboard": "no",
        "train.channels_last": "no", "train.optimizer_impl": "loop", "train.compile": "no",
        "train.precision": "fp32"}


def weights_after(tmp_path, steps=4, **options):
    """Parameters of G and D after `steps` training steps from the same seed."""
    out = tmp_path / "-".join(f"{k}={v}" for k, v in options.items()).replace(".", "_")
    trainer = Trainer(ganforge.make_config(overrides={**BASE, **options, "out": str(out)}))
    start = {f"{n}.{k}": p.detach().clone() for n, net in trainer.nets.items() for k, p in net.named_parameters()}
    for _ in range(steps):
        trainer._train_step({})
    end = {f"{n}.{k}": p.detach().clone() for n, net in trainer.nets.items() for k, p in net.named_parameters()}
    return start, end


def assert_close(a, b, atol):
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= atol, f"largest difference {worst:.3g} > {atol}"


@pytest.fixture
def reference(tmp_path):
    return weights_after(tmp_path)


@pytest.mark.parametrize("options", [
    {"train.channels_last": "yes"},
    {"train.optimizer_impl": "foreach"},
    {"train.optimizer_impl": "fused"},
    {"train.optimizer_impl": "auto", "train.channels_last": "auto"},
])
def test_fp32_options_give_the_same_weights(tmp_path, reference, options):
    start, end = weights_after(tmp_path, **options)
    assert_close(start, reference[0], 0.0)       # same initial weights
    assert_close(end, reference[1], 1e-5)         # 4 Adam steps of lr 2e-4: same to ~5% of a step
    moved = max((reference[1][k] - reference[0][k]).abs().max().item() for k in start)
    assert moved > 1e-4                           # the steps did change the weights


def test_the_options_change_the_code_path(tmp_path):
    trainer = Trainer(ganforge.make_config(overrides={**BASE, "train.optimizer_impl": "fused",
                                                      "train.channels_last": "yes", "out": str(tmp_path / "r")}))
    assert all(opt.defaults["fused"] for opt in trainer.optimizers.values())
    weight = next(p for p in trainer.nets["D"].parameters() if p.dim() == 4 and p.shape[1] > 1)
    assert weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_compile_gives_the_same_weights(tmp_path, reference):
    start, end = weights_after(tmp_path, **{"train.compile": "yes"})
    assert_close(end, reference[1], 1e-4)


def test_bf16_autocast_follows_the_fp32_updates(tmp_path, reference):
    """bf16 keeps 8 bits of mantissa, so the weights differ; the updates must point the same way."""
    start, end = weights_after(tmp_path, **{"train.precision": "bf16"})
    assert_close(start, reference[0], 0.0)
    delta = torch.cat([(end[k] - start[k]).flatten() for k in start])
    delta_ref = torch.cat([(reference[1][k] - reference[0][k]).flatten() for k in start])
    cosine = torch.nn.functional.cosine_similarity(delta, delta_ref, dim=0)
    assert cosine > 0.9, f"bf16 updates point elsewhere (cosine {cosine:.3f})"
    for k in end:
        assert end[k].dtype == torch.float32     # autocast: weights and optimiser stay fp32


def test_compile_refuses_gradient_penalties_and_only_yes_compiles():
    train = ganforge.make_config(overrides={"train.compile": "yes"}).train
    with pytest.raises(ConfigError, match="train.compile"):
        use_compile(train, torch.device("cpu"), double_backward=True)
    assert use_compile(train, torch.device("cuda"), double_backward=False)
    auto = ganforge.make_config().train
    assert auto.compile == "auto"
    # auto is off on CUDA too: PyTorch 2.11's inductor failed the DCGAN's backward on an H200
    for device in ("cuda", "cpu"):
        assert not use_compile(auto, torch.device(device), double_backward=False)


def test_adam_options_by_name():
    train = ganforge.make_config(overrides={"train.optimizer_impl": "foreach"}).train
    assert adam_options(train, torch.device("cpu")) == {"foreach": True}
    train.optimizer_impl = "loop"
    assert adam_options(train, torch.device("cpu")) == {"foreach": False}


def test_bf16_resume_is_exact(tmp_path):
    from helpers import assert_resume_is_exact

    assert_resume_is_exact(tmp_path, {**BASE, "train.precision": "bf16", "log.checkpoint_every": 2},
                           steps=4, split=2)


def test_auto_precision_on_the_cpu_follows_its_bf16_units(monkeypatch):
    from ganforge.training import device

    train = ganforge.make_config(overrides={"train.precision": "auto"}).train
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    assert device.pick_dtype(train, torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: False)
    assert device.pick_dtype(train, torch.device("cpu")) == torch.float32
    train.precision = "fp16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        device.pick_dtype(train, torch.device("cpu"))
