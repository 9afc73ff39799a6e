"""The `resnet` architecture (SNGAN): widths, conditional batch norm, projection D, spectral
norm, SNGAN's training defaults, and tiny end-to-end runs on the bundled digits at 16 px."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import ganforge
from helpers import assert_resume_is_exact
from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.losses.regularizers import add_spectral_norm, r1_penalty
from ganforge.models import MODELS, DataShape, build_models
from ganforge.models.conditioning import ConditionalBatchNorm2d
from ganforge.models.resnet import RESOLUTIONS, ResNetArgs, d_widths, g_widths
from ganforge.objectives.gan import GANArgs, GANObjective

SN_LAYERS = (nn.Conv2d, nn.Linear, nn.Embedding)


def nets(resolution=16, channels=1, classes=0, seed=0, **args):
    torch.manual_seed(seed)
    small = {"g_width": 4, "d_width": 4, **args}
    return build_models(ModelConfig(name="resnet", args=small), DataShape(resolution, channels, classes))


def sigma_max(w: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(w.detach().flatten(1), ord=2).item()


# ----------------------------------------------------------------------- conditional batch norm

def test_conditional_batch_norm_starts_as_plain_batch_norm():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(5, num_classes=3)
    assert torch.equal(cbn.gain.weight, torch.ones(3, 5))
    assert torch.equal(cbn.bias.weight, torch.zeros(3, 5))
    x = torch.randn(6, 5, 4, 4) * 3 + 2
    plain = nn.BatchNorm2d(5, affine=False)
    for labels in (torch.zeros(6, dtype=torch.long), torch.tensor([0, 1, 2, 2, 1, 0])):
        assert torch.allclose(cbn(x, labels), plain(x), atol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        cbn(x, None)


def test_conditional_batch_norm_gives_each_class_its_gain_and_bias():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(5, num_classes=3)
    with torch.no_grad():
        cbn.gain.weight.copy_(torch.rand(3, 5) + 0.5)
        cbn.bias.weight.copy_(torch.randn(3, 5))
    x = torch.randn(4, 5, 3, 3)
    a, b = cbn(x, torch.zeros(4, dtype=torch.long)), cbn(x, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(a, b)
    normed = (x - x.mean((0, 2, 3), keepdim=True)) / torch.sqrt(x.var((0, 2, 3), unbiased=False,
                                                                     keepdim=True) + 1e-5)
    expected = normed * cbn.gain.weight[1][:, None, None] + cbn.bias.weight[1][:, None, None]
    assert torch.allclose(b, expected, atol=1e-5)
    # Gradients reach only the rows of the classes used.
    b.sum().backward()
    assert cbn.gain.weight.grad[1].abs().sum() > 0 and cbn.gain.weight.grad[0].abs().sum() == 0


def test_conditional_generator_uses_its_labels():
    G = nets(classes=10)["G"]
    cbns = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(cbns) == 2 * len(G.blocks)  # every block, twice
    z = torch.randn(4, G.latent_dim)
    zeros, sevens = torch.zeros(4, dtype=torch.long), torch.full((4,), 7)
    # Gains 1 and biases 0: at the start the labels change nothing.
    assert torch.allclose(G(z, zeros), G(z, sevens), atol=1e-6)
    with torch.no_grad():
        for cbn in cbns:
            cbn.gain.weight.add_(0.3 * torch.randn_like(cbn.gain.weight))
            cbn.bias.weight.add_(0.3 * torch.randn_like(cbn.bias.weight))
    images = G(z, zeros)
    assert images.shape == (4, 1, 16, 16) and images.abs().max() <= 1
    assert not torch.allclose(images, G(z, sevens), atol=1e-4)
    with pytest.raises(ValueError, match="labels"):
        G(z)


def test_unconditional_generator_has_plain_batch_norm_and_ignores_labels():
    G = nets()["G"]
    assert not any(isinstance(m, ConditionalBatchNorm2d) for m in G.modules())
    G.eval()
    z = torch.randn(2, G.latent_dim)
    assert torch.equal(G(z), G(z, torch.tensor([1, 2])))


# ----------------------------------------------------------------------- discriminator

@pytest.mark.parametrize("resolution,channels", [(16, 1), (32, 3)])
def test_conditional_discriminator_projects_and_classifies(resolution, channels):
    networks = nets(resolution, channels, classes=10)
    G, D = networks["G"], networks["D"]
    labels = torch.tensor([0, 3, 9])
    images = G(torch.randn(3, G.latent_dim), labels)
    assert images.shape == (3, channels, resolution, resolution)
    logits = D(images, labels)
    assert logits.shape == (3,)
    D.eval()  # no power iteration between the calls compared
    assert not torch.allclose(logits, D(images, torch.tensor([1, 4, 2])))
    assert torch.allclose(D(images), D(images, None))  # no labels: the plain logit
    logits, classes = D.train()(images, with_classes=True)
    assert logits.shape == (3,) and classes.shape == (3, 10)
    (logits.sum() + classes.sum()).backward()
    for name, p in D.named_parameters():  # ACGAN mode does not project: the embedding is idle
        assert (p.grad is None) == name.startswith("project.embed."), name


def test_discriminator_treats_samples_independently_so_penalties_apply():
    D = nets(classes=0)["D"]
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())
    x = torch.randn(4, 1, 16, 16)
    before = D.eval()(x)
    x2 = x.clone()
    x2[0] += 1
    after = D(x2)
    assert torch.equal(before[1:], after[1:]) and not torch.equal(before[0], after[0])
    assert r1_penalty(D.train(), x) > 0


# ----------------------------------------------------------------------- spectral norm

def test_spectral_norm_on_every_layer_of_d_and_none_on_g():
    networks = nets(classes=10)
    D, G = networks["D"], networks["G"]
    layers = [m for m in D.modules() if isinstance(m, SN_LAYERS)]
    assert len(layers) >= 8  # 2 blocks x (2 convs + shortcut), extra block, linear, embed, aux
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(parametrize.is_parametrized(m) for m in G.modules())
    plain = nets(classes=10, spectral_norm=False)["D"]
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


def test_spectral_norm_is_not_applied_twice():
    D = nets(classes=10)["D"]
    keys = set(D.state_dict())
    assert add_spectral_norm(D) is D
    add_spectral_norm(D)
    # The objective's own spectral_norm option meets a D that already has it.
    networks = {"G": nets(classes=10)["G"], "D": D}
    GANObjective(GANArgs(spectral_norm=True), networks)
    assert set(D.state_dict()) == keys
    for m in D.modules():
        if isinstance(m, SN_LAYERS):
            assert len(m.parametrizations.weight) == 1


def test_largest_singular_values_of_d_approach_one():
    D = nets(32, 3, d_width=8)["D"].train()
    with torch.no_grad():
        for _ in range(20):          # power iterations advance with each forward in train mode
            D(torch.randn(2, 3, 32, 32))
    D.eval()
    layers = [m for m in D.modules() if isinstance(m, SN_LAYERS)]
    for layer in layers:
        assert sigma_max(layer.weight) == pytest.approx(1.0, abs=0.05), layer
    # The stored weights themselves are not normalised.
    raw = [sigma_max(m.parametrizations.weight.original) for m in layers]
    assert max(abs(s - 1) for s in raw) > 0.1


# ----------------------------------------------------------------------- widths and resolutions

def test_widths_follow_the_sngan_layouts():
    # 128 px with the defaults: the ImageNet networks of Miyato & Koyama (2018).
    assert g_widths(ResNetArgs(), 128) == [1024, 1024, 512, 256, 128, 64]
    assert d_widths(ResNetArgs(), 128) == [64, 128, 256, 512, 1024, 1024]
    # SNGAN's CIFAR-10 widths: 256 in every G block, 128 in every D block.
    cifar = ResNetArgs(g_width=256, max_width=256, d_width=128, d_max_width=128)
    assert g_widths(cifar, 32) == [256] * 4
    assert d_widths(cifar, 32) == [128] * 4
    assert g_widths(ResNetArgs(), 32) == [512, 256, 128, 64]
    assert d_widths(ResNetArgs(d_extra_blocks=0), 32) == [64, 128, 256]
    assert d_widths(ResNetArgs(d_extra_blocks=2), 16) == [64, 128, 128, 128]


def test_built_networks_have_the_planned_widths():
    networks = build_models(ModelConfig(name="resnet", args={"g_width": 8, "d_width": 4, "max_width": 16}),
                            DataShape(32, 3))
    G, D = networks["G"], networks["D"]
    assert [b.conv2.out_channels for b in G.blocks] == [16, 16, 8]
    assert G.linear.out_features == 16 * 4 * 4 and G.final.out_channels == 3
    assert [b.conv2.out_channels for b in D.blocks] == [4, 8, 16, 16]
    assert D.final.in_features == 16


def test_supported_resolutions():
    assert RESOLUTIONS == (16, 32, 64, 128) == MODELS.get("resnet").resolutions


@pytest.mark.parametrize("resolution", [8, 28, 48, 256])
def test_unsupported_resolutions_are_config_errors(resolution):
    with pytest.raises(ConfigError, match="data.resolution"):
        nets(resolution)
    with pytest.raises(ConfigError, match="data.resolution"):
        ganforge.make_config(overrides={"model.name": "resnet", "data.resolution": resolution})


@pytest.mark.parametrize("key,value", [("g_width", 0), ("d_width", 0), ("latent_dim", 0),
                                       ("max_width", 0), ("d_max_width", 0), ("d_extra_blocks", -1)])
def test_bad_options_name_their_key(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        ganforge.make_config(overrides={"model.name": "resnet", f"model.{key}": value})


def test_sngan_training_defaults_lie_under_the_users_keys():
    config = ganforge.make_config(overrides={"model.name": "resnet"})
    assert config.objective.name == "gan"
    assert config.objective.args["loss"] == "hinge" and config.objective.args["d_steps"] == 5
    assert (config.train.lr, config.train.beta1, config.train.beta2) == (2e-4, 0.0, 0.9)
    assert config.model.args["spectral_norm"] is True
    mine = ganforge.make_config(overrides={"model.name": "resnet", "objective.d_steps": 2,
                                           "train.beta1": 0.5})
    assert mine.objective.args["loss"] == "hinge" and mine.objective.args["d_steps"] == 2
    assert mine.train.beta1 == 0.5 and mine.train.beta2 == 0.9
    # Another loss: the family's objective settings yield, its optimiser settings stay.
    other = ganforge.make_config(overrides={"model.name": "resnet", "objective.loss": "ns"})
    assert other.objective.args["loss"] == "ns" and other.objective.args["d_steps"] == 1
    assert (other.train.beta1, other.train.beta2) == (0.0, 0.9)


# ----------------------------------------------------------------------- training end to end

TINY = {"model.name": "resnet", "model.g_width": 4, "model.d_width": 4, "data.resolution": 16,
        "train.batch_size": 8, "log.every": 1, "log.progress": False, "log.tensorboard": "no",
        "log.sample_every": 1000, "log.checkpoint_every": 1000}


@pytest.mark.parametrize("loss,extra", [("ns", {}), ("hinge", {"model.conditional": True}),
                                        ("wgan-gp", {"objective.d_steps": 2})])
def test_training_runs(tmp_path, loss, extra):
    run = ganforge.train(overrides={**TINY, "train.steps": 3, "objective.loss": loss,
                                    "out": str(tmp_path / loss), **extra})
    assert run.step == 3
    lines = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3]
    assert all(abs(line["loss_D"]) < 1e6 and abs(line["loss_G"]) < 1e6 for line in lines)
    if loss == "wgan-gp":
        assert all("gp" in line for line in lines)


def test_resume_gives_identical_weights(tmp_path):
    run = {**TINY, "log.every": 2, "objective.d_steps": 2, "model.conditional": True}
    tensors = assert_resume_is_exact(tmp_path, run, steps=4, split=2)
    assert any("parametrizations" in k and k.endswith("_u") for k in tensors)  # power-iteration state
