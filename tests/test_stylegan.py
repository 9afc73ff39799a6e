"""The StyleGAN2-style architecture: modulation, noise, style mixing, truncation, training."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

import ganforge
from helpers import assert_resume_is_exact
from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import DataShape, build_models
from ganforge.models.stylegan import ModulatedConv2d

TINY = {"latent_dim": 8, "w_dim": 8, "mapping_layers": 2, "g_width": 4, "d_width": 4, "max_width": 8}


def nets(resolution=16, channels=1, classes=0, seed=0, **args):
    torch.manual_seed(seed)
    return build_models(ModelConfig(name="stylegan", args={**TINY, **args}),
                        DataShape(resolution, channels, classes))


def generator(**kwargs):
    return nets(**kwargs)["G"]


# Modulated convolution.
@pytest.mark.parametrize("up", [False, True])
def test_demodulation_keeps_unit_output_variance(up):
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 32, 3, w_dim=16, up=up)
    with torch.no_grad():
        conv.affine.bias.mul_(3.0)          # styles far from 1: modulation alone would scale by ~9
    x, w = torch.randn(4, 64, 24, 24), torch.randn(4, 16)
    with torch.no_grad():
        out = conv(x, w)[:, :, 2:-2, 2:-2]  # away from the zero-padded border
        var = out.var(dim=(0, 2, 3))        # per output channel
        plain = ModulatedConv2d(64, 32, 3, w_dim=16, demodulate=False, up=up)
        plain.load_state_dict(conv.state_dict())
        plain_var = plain(x, w)[:, :, 2:-2, 2:-2].var()
    # Bilinear upsampling smooths the input (variance 0.39 for white noise) before the conv.
    expected = 1.0 if not up else (0.75 ** 2 + 0.25 ** 2) ** 2
    assert var.mean().item() == pytest.approx(expected, rel=0.15)
    assert ((var / expected - 1).abs() < 0.4).all()
    assert plain_var > 4 * expected


@pytest.mark.parametrize("demodulate,up", [(True, False), (True, True), (False, False)])
def test_modulated_activations_equal_per_sample_weights(demodulate, up):
    torch.manual_seed(1)
    conv = ModulatedConv2d(6, 5, 3 if demodulate else 1, w_dim=4, demodulate=demodulate, up=up)
    x, w = torch.randn(3, 6, 8, 8), torch.randn(3, 4)
    assert torch.allclose(conv(x, w), conv(x, w, fused=True), atol=1e-5)


# The generator.
@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(resolution, channels):
    n = nets(resolution, channels)
    G, D = n["G"], n["D"]
    assert G.num_ws == 2 * int(math.log2(resolution)) - 2 == G.synthesis.num_ws
    z = torch.randn(2, 8)
    with torch.no_grad():
        w = G.mapping(z)
        assert w.shape == (2, 8)
        images = G.synthesis(w[:, None].repeat(1, G.num_ws, 1))
        assert images.shape == (2, channels, resolution, resolution)
        out = G(z)
        assert out.shape == images.shape and out.abs().max() <= 1
        assert D(out).shape == (2,)


def test_conditional_shapes_and_gradients():
    n = nets(32, 3, classes=5)
    G, D = n["G"], n["D"]
    z, labels = torch.randn(4, 8), torch.tensor([0, 1, 4, 2])
    images = G(z, labels)
    assert images.shape == (4, 3, 32, 32)
    logits, classes = D(images, with_classes=True)
    assert logits.shape == (4,) and classes.shape == (4, 5)
    out = D(images, labels)
    assert out.shape == (4,)
    (out.sum() + classes.sum()).backward()
    assert G.mapping.embed.weight.grad.abs().sum() > 0
    assert D.project.embed.weight.grad.abs().sum() > 0
    G.eval()
    with torch.no_grad():  # the class changes the image
        assert not torch.equal(G(z[:1], labels[:1]), G(z[:1], labels[1:2]))
    with pytest.raises(ValueError, match="labels"):
        G(z)


def test_truncation_zero_gives_the_mean_image_and_one_changes_nothing():
    G = generator(resolution=16, channels=3)
    with torch.no_grad():
        for _ in range(3):                  # move w_avg away from its zero start
            G(torch.randn(8, 8))
        G.eval()
        assert G.w_avg.abs().sum() > 0
        z1, z2 = torch.randn(3, 8), torch.randn(3, 8)
        mean1, mean2 = G(z1, truncation=0.0), G(z2, truncation=0.0)
        assert torch.equal(mean1, mean2)
        assert torch.allclose(mean1, mean1[:1].expand_as(mean1))
        assert torch.equal(G(z1, truncation=1.0), G(z1))
        assert not torch.equal(G(z1, truncation=0.5), G(z1))
        # psi interpolates w between w_avg and w.
        w = G.mapping(z1)
        assert torch.allclose(G.mapping(z1, truncation=0.5), (G.w_avg + w) / 2, atol=1e-6)
        # above 1 it extrapolates: w moves away from w_avg
        assert torch.allclose(G.mapping(z1, truncation=1.5), G.w_avg + 1.5 * (w - G.w_avg), atol=1e-5)


def test_w_avg_moves_in_training_mode_only():
    G = generator(style_mixing=0.0)
    z = torch.randn(6, 8)
    with torch.no_grad():
        G.eval()
        G(z)
        G.mapping(z)
        assert torch.equal(G.w_avg, torch.zeros(8))
        w = G.mapping(z)
        G.train()
        G(z)
    beta = 0.995
    assert torch.allclose(G.w_avg, (1 - beta) * w.mean(0), atol=1e-7)
    # The EMA copy of G gets the buffer too (the loop copies buffers).
    from ganforge.training.ema import EMA
    ema = EMA(generator(style_mixing=0.0), 0.9)
    ema.update(G, 0)
    assert torch.equal(ema.shadow.w_avg, G.w_avg)


def test_eval_is_deterministic_and_training_noise_is_random():
    G = generator(style_mixing=0.0)
    with torch.no_grad():
        for layer in G.modules():
            if hasattr(layer, "noise_strength"):
                layer.noise_strength.fill_(0.5)
        z = torch.randn(2, 8)
        G.eval()
        assert torch.equal(G(z), G(z))
        G.train()
        a, b = G(z), G(z)
        assert not torch.equal(a, b)
        # ...drawn from torch's global RNG: deterministic given the seed.
        torch.manual_seed(5)
        a = G(z)
        torch.manual_seed(5)
        assert torch.equal(a, G(z))


def test_noise_strengths_start_at_zero():
    G = generator()
    strengths = [m.noise_strength for m in G.modules() if hasattr(m, "noise_strength")]
    assert len(strengths) == 1 + 2 + 2   # 16 px: one conv at 4x4, two at 8 and at 16
    assert all(torch.equal(s, torch.zeros_like(s)) for s in strengths)


def count_mappings(G, n_forwards):
    calls = []
    handle = G.mapping.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        for _ in range(n_forwards):
            G(torch.randn(2, 8))
    handle.remove()
    return len(calls)


def test_style_mixing_probability():
    assert count_mappings(generator(style_mixing=0.0), 20) == 20
    assert count_mappings(generator(style_mixing=1.0), 20) == 40
    mixed = count_mappings(generator(style_mixing=0.5), 40) - 40
    assert 5 < mixed < 35
    G = generator(style_mixing=1.0).eval()          # never in eval mode
    assert count_mappings(G, 5) == 5


def test_style_mixing_is_deterministic_given_the_seed():
    G = generator(style_mixing=0.5)
    z = torch.randn(2, 8)
    torch.manual_seed(3)
    first = [G(z) for _ in range(6)]
    torch.manual_seed(3)
    assert all(torch.equal(a, G(z)) for a in first)


def test_coarse_styles_change_the_low_pass_image_more_than_fine_styles():
    torch.manual_seed(0)
    G = build_models(ModelConfig(name="stylegan", args={"latent_dim": 16, "w_dim": 16, "mapping_layers": 2,
                                                        "g_width": 8, "max_width": 32}),
                     DataShape(32, 3))["G"].eval()
    z1, z2 = torch.randn(16, 16), torch.randn(16, 16)
    with torch.no_grad():
        w1, w2 = G.mapping(z1), G.mapping(z2)
        ws = w1[:, None].repeat(1, G.num_ws, 1)
        coarse, fine = ws.clone(), ws.clone()
        coarse[:, :2] = w2[:, None]      # 4x4 and the first 8x8 layer
        fine[:, -2:] = w2[:, None]       # the last 32x32 conv and toRGB
        base = G.synthesis(ws)
        assert torch.equal(torch.tanh(base), G(z1))
        low = lambda ws_: F.avg_pool2d(torch.tanh(G.synthesis(ws_)), 8)  # 4x4 low-pass
        coarse_change = (low(coarse) - low(ws)).abs().mean()
        fine_change = (low(fine) - low(ws)).abs().mean()
    assert fine_change > 0
    assert coarse_change > 1.5 * fine_change


# Options and registration.
@pytest.mark.parametrize("key,value", [("w_dim", 0), ("mapping_layers", 0), ("style_mixing", 1.5),
                                       ("mapping_lr_mul", 0.0), ("w_avg_beta", 1.0)])
def test_bad_options_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        nets(**{key: value})


@pytest.mark.parametrize("resolution", [4, 28, 48, 512])
def test_unsupported_resolutions_are_rejected(resolution):
    with pytest.raises(ConfigError, match="data.resolution"):
        nets(resolution)


def test_stylegan2_training_defaults_lie_under_the_users_keys():
    config = ganforge.make_config(overrides={"model.name": "stylegan"})
    assert config.objective.args["loss"] == "ns" and config.objective.args["r1_every"] == 16
    assert config.objective.args["r1_gamma"] > 0
    assert (config.train.lr, config.train.beta1, config.train.beta2) == (0.0025, 0.0, 0.99)
    config = ganforge.make_config(overrides={"model.name": "stylegan", "objective.loss": "hinge",
                                             "train.lr": 1e-3})
    assert config.objective.args["loss"] == "hinge" and config.train.lr == 1e-3


# Training end to end.
def tiny_run(tmp_path, name, **extra):
    return {"model.name": "stylegan", **{f"model.{k}": v for k, v in TINY.items()},
            "data.resolution": 16, "train.batch_size": 8, "log.every": 2, "log.sample_every": 3,
            "log.checkpoint_every": 3, "log.grid_size": 8, "log.progress": False,
            "log.tensorboard": "no", "out": str(tmp_path / name), **extra}


@pytest.mark.parametrize("loss", ["ns", "hinge", "wgan-gp"])
def test_trains_end_to_end(tmp_path, loss):
    extra = {"objective.r1_every": 2} if loss == "ns" else {"objective.r1_gamma": 0.0}
    run = ganforge.train(overrides=tiny_run(tmp_path, loss, **{"objective.loss": loss, "train.steps": 3},
                                            **extra))
    assert run.step == 3 and run.stop_reason == "steps done"
    lines = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(line["loss_D"]) and math.isfinite(line["loss_G"]) for line in lines)
    if loss == "ns":
        assert all(math.isfinite(line["r1"]) for line in lines)   # the lazy D_reg phase ran
    if loss == "wgan-gp":
        assert all(math.isfinite(line["gp"]) for line in lines)
    assert (run.dir / "samples" / "final.png").is_file()
    model = ganforge.load(run.dir)
    assert model.sample(4, seed=1).shape == (4, 16, 16, 1)
    same = model.sample(3, seed=1, truncation=0.0)
    assert (same == same[:1]).all()


def test_resume_gives_identical_weights(tmp_path):
    run = tiny_run(tmp_path, "unused", **{"objective.r1_every": 2})
    tensors = assert_resume_is_exact(tmp_path, run, steps=4, split=2)
    assert any(k.endswith("w_avg") for k in tensors)
