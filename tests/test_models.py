"""Every registered architecture, at every resolution and channel count it supports."""
import math

import pytest
import torch

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.losses import GAN_LOSSES
from ganforge.models import MODELS, DataShape, build_models

SMALL = {"dcgan": {"g_width": 4, "d_width": 4}, "mlp": {"hidden": 16},
         "cnn": {"width": 4, "hidden": 8}, "resnet-cnn": {"width": 4, "hidden": 8},
         "vae": {"width": 4, "latent_dim": 3}, "resnet": {"g_width": 4, "d_width": 4},
         "progressive": {"g_width": 4, "d_width": 4, "max_width": 8},
         "stylegan": {"latent_dim": 8, "w_dim": 8, "mapping_layers": 2, "g_width": 4, "d_width": 4,
                      "max_width": 8}}
TEXTURE = ("spatial",)   # texture GANs (patch logits, latent fields): tests/test_texture_synthesis.py
GANS = [n for n in MODELS.names() if MODELS.get(n).objective == "gan" and n not in TEXTURE]
CLASSIFIERS = [n for n in MODELS.names() if MODELS.get(n).objective == "classifier"]


def test_every_registered_model_is_covered():
    """GANs, VAE and classifiers here; image-to-image families in test_image_models.py;
    translation families in test_translation.py; texture families in test_texture_synthesis.py."""
    from test_image_models import FAMILIES
    from test_translation import TRANSLATION
    editing = {n for n in MODELS.names() if MODELS.get(n).objective == "image2image"}
    assert set(SMALL) | editing | set(TRANSLATION) | set(TEXTURE) == set(MODELS.names())
    assert editing == set(FAMILIES)
    assert set(TRANSLATION) == {n for n in MODELS.names() if MODELS.get(n).objective == "cyclegan"}


def cases():
    for name in GANS:
        resolutions = MODELS.get(name).resolutions or (8, 28, 32)
        for resolution in resolutions:
            for channels in MODELS.get(name).channels:
                yield name, resolution, channels


def build(name, resolution, channels, seed=0, classes=0):
    torch.manual_seed(seed)
    nets = build_models(ModelConfig(name=name, args=dict(SMALL[name])), DataShape(resolution, channels, classes))
    for net in nets.values():
        if hasattr(net, "set_step"):   # progressive growing: test the fully grown networks
            net.set_step(10**9)
    return nets


@pytest.mark.parametrize("name,resolution,channels", list(cases()))
def test_shapes_range_and_gradients(name, resolution, channels):
    nets = build(name, resolution, channels)
    G, D = nets["G"], nets["D"]
    z = torch.randn(3, G.latent_dim)
    images = G(z)
    assert images.shape == (3, channels, resolution, resolution)
    assert torch.isfinite(images).all() and images.abs().max() <= 1
    logits = D(images)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    (logits.sum()).backward()
    for net in (G, D):
        idle = set(getattr(net, "idle_parameters", list)())  # progressive: faded-out toRGB/fromRGB
        for pname, p in net.named_parameters():
            if pname in idle:
                assert p.grad is None, f"{pname} is idle yet got a gradient"
                continue
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, f"{pname} got a zero gradient"


@pytest.mark.parametrize("name", GANS)
def test_same_seed_same_networks_and_state_round_trip(name):
    res = (MODELS.get(name).resolutions or (16,))[0]
    a, b, c = build(name, res, 1, seed=1), build(name, res, 1, seed=1), build(name, res, 1, seed=2)
    z = torch.randn(2, a["G"].latent_dim)
    for net in (a, b, c):
        net["G"].eval()
    assert torch.equal(a["G"](z), b["G"](z))
    assert not torch.equal(a["G"](z), c["G"](z))
    c["G"].load_state_dict(a["G"].state_dict())
    assert torch.equal(a["G"](z), c["G"](z))


@pytest.mark.parametrize("resolution", [30, 48, 256])
def test_dcgan_rejects_unsupported_resolutions(resolution):
    with pytest.raises(ConfigError, match="data.resolution"):
        build("dcgan", resolution, 1)


def test_dcgan_widths_follow_the_textbook_layout():
    nets = build_models(ModelConfig(name="dcgan", args={"g_width": 64, "d_width": 64}), DataShape(64, 3))
    convs = [m for m in nets["G"].modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in convs] == [512, 256, 128, 64, 3]
    convs = [m for m in nets["D"].modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 128, 256, 512, 1]


def test_dcgan_class_norm_conditions_every_batch_norm_of_g_and_keeps_the_plain_layout_otherwise():
    from ganforge.models.conditioning import ConditionalBatchNorm2d
    plain = build_models(ModelConfig(name="dcgan", args=SMALL["dcgan"]), DataShape(32, 1, 3))["G"]
    normed = build_models(ModelConfig(name="dcgan", args={**SMALL["dcgan"], "g_class_norm": True}),
                          DataShape(32, 1, 3))["G"]
    assert not any(isinstance(m, ConditionalBatchNorm2d) for m in plain.modules())
    assert sum(isinstance(m, ConditionalBatchNorm2d) for m in normed.modules()) == 3
    # The same z: with the label embedding silenced, the class still changes the image (through
    # the per-class gains and biases), and each class's gain gets a gradient.
    torch.nn.init.zeros_(normed.condition.embed.weight)
    for m in normed.modules():
        if isinstance(m, ConditionalBatchNorm2d):
            torch.nn.init.normal_(m.gain.weight, 1.0, 0.3)
    z = torch.randn(6, normed.latent_dim)
    out = normed(z, torch.tensor([0, 1, 2, 0, 1, 2]))
    again = normed(z, torch.tensor([1, 2, 0, 1, 2, 0]))
    assert out.shape == (6, 1, 32, 32) and not torch.allclose(out, again)
    out.sum().backward()
    gains = [m.gain.weight.grad for m in normed.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert all(g is not None and (g.abs().sum(1) > 0).all() for g in gains)
    # Unconditional data: the option changes nothing (no classes to condition on).
    assert [k for k in build_models(ModelConfig(name="dcgan", args={**SMALL["dcgan"], "g_class_norm": True}),
                                    DataShape(32, 1))["G"].state_dict()] == \
        [k for k in build_models(ModelConfig(name="dcgan", args=SMALL["dcgan"]), DataShape(32, 1))["G"].state_dict()]


def test_dcgan_without_label_embedding_needs_class_norm_so_g_never_ignores_its_labels():
    """embed_dim 0 with class-conditional norm: the labels reach G through its batch norm alone
    (z goes in unjoined, and the class still changes the image); without the norm, or below 0,
    a one-line error names the key instead of a G that ignores its labels."""
    torch.manual_seed(0)
    g = build_models(ModelConfig(name="dcgan", args={**SMALL["dcgan"], "embed_dim": 0, "g_class_norm": True}),
                     DataShape(32, 1, 3))["G"]
    assert g.net[0].in_channels == g.latent_dim
    for m in g.modules():
        if hasattr(m, "gain"):
            torch.nn.init.normal_(m.gain.weight, 1.0, 0.3)
    z = torch.randn(6, g.latent_dim)
    assert not torch.allclose(g(z, torch.tensor([0, 1, 2, 0, 1, 2])), g(z, torch.tensor([1, 2, 0, 1, 2, 0])))
    for args, hint in (({"embed_dim": 0}, "g_class_norm=true"), ({"embed_dim": -1, "g_class_norm": True}, "1 or more")):
        with pytest.raises(ConfigError, match=rf"model\.embed_dim=-?\d.*{hint}"):
            build_models(ModelConfig(name="dcgan", args={**SMALL["dcgan"], **args}), DataShape(32, 1, 3))
    # Unconditional data: no classes, so no embedding is needed and 0 is fine.
    assert build_models(ModelConfig(name="dcgan", args={**SMALL["dcgan"], "embed_dim": 0}), DataShape(32, 1))["G"]


def test_dcgan_minibatch_std_lets_d_see_a_batch_without_variety():
    """d_mbstd adds one channel before D's last layer: the same image scored alone or within a
    varied batch gets another logit (D sees the batch), and a batch of copies is told apart."""
    torch.manual_seed(0)
    d = build_models(ModelConfig(name="dcgan", args={**SMALL["dcgan"], "d_mbstd": 4}), DataShape(32, 1))["D"]
    assert d.final.in_channels == d.body[-3].out_channels + 1
    d.eval()
    one = torch.rand(1, 1, 32, 32) * 2 - 1
    copies = one.repeat(4, 1, 1, 1)
    varied = torch.cat([one, torch.rand(3, 1, 32, 32) * 2 - 1])
    assert not torch.allclose(d(copies)[0], d(varied)[0])
    plain = build_models(ModelConfig(name="dcgan", args=SMALL["dcgan"]), DataShape(32, 1))["D"].eval()
    assert torch.allclose(plain(copies)[0], plain(varied)[0], atol=1e-6)
    with pytest.raises(ConfigError, match="model.d_mbstd"):
        build_models(ModelConfig(name="dcgan", args={**SMALL["dcgan"], "d_mbstd": 1}), DataShape(32, 1))


def test_class_spread_is_each_classs_feature_spread_in_the_batch():
    """Per image, the standard deviation (unbiased) of its class's features in the batch,
    averaged over features; 0 for a class met once."""
    from ganforge.models.conditioning import ClassSpread
    torch.manual_seed(0)
    x, labels = torch.randn(12, 8, 2, 2), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])
    spread = ClassSpread(5)(x, labels)
    assert spread.shape == (12, 9, 2, 2) and torch.equal(spread[:, :8], x)
    for c in range(4):
        expected = x[labels == c].flatten(1).var(0).sqrt().mean()
        assert torch.allclose(spread[labels == c, 8], expected.expand(int((labels == c).sum()), 2, 2), atol=1e-4)
    assert torch.equal(spread[labels == 4, 8], torch.zeros(1, 2, 2))


def test_class_spread_sees_collapse_within_classes_that_minibatch_std_misses():
    """A batch of ten classes that draws one image per class, again and again, is as varied
    as real to ProGAN's minibatch std (its groups mix the classes) but flat per class; at
    condition strength 0 (or without labels) the channel is the whole batch's spread."""
    from ganforge.models.conditioning import ClassSpread, set_condition_strength
    from ganforge.models.layers import MinibatchStd
    torch.manual_seed(0)
    labels = torch.randperm(40) % 10   # (in arange's order each of its groups would be one class)
    real = torch.randn(40, 8, 2, 2)
    collapsed = torch.randn(10, 8, 2, 2)[labels]
    mixed = MinibatchStd(4)
    assert mixed(collapsed)[:, -1].mean() > 0.8 * mixed(real)[:, -1].mean()
    per_class = ClassSpread(10)
    assert per_class(collapsed, labels)[:, -1].max() < 1e-3 < 0.5 < per_class(real, labels)[:, -1].min()
    set_condition_strength(per_class, 0.0)
    assert torch.equal(per_class(collapsed, labels), per_class(collapsed, None))
    assert per_class(collapsed, None)[:, -1].min() > 0.8


def test_dcgan_class_spread_adds_a_channel_and_needs_a_conditional_model():
    d = build_models(ModelConfig(name="dcgan", args={**SMALL["dcgan"], "d_class_spread": True}),
                     DataShape(32, 1, 10))["D"]
    assert d.final.in_channels == d.body[-3].out_channels + 1
    images, labels = torch.rand(6, 1, 32, 32) * 2 - 1, torch.tensor([0, 0, 1, 1, 2, 2])
    assert d(images, labels).shape == (6,)
    with pytest.raises(ConfigError, match="model.d_class_spread"):
        build_models(ModelConfig(name="dcgan", args={**SMALL["dcgan"], "d_class_spread": True}), DataShape(32, 1))


def test_packing_stacks_each_image_with_others_of_its_class():
    """Every partner is another image of the same class where the class has one (itself only
    when alone), drawn afresh; a G drawing each class as one image hands D packs of copies."""
    from ganforge.models.layers import PackWithPartners
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3, 3, 2, 0, 4])
    pack = PackWithPartners(3, 5)
    draws = []
    for _ in range(5):
        partners = pack.partners(labels, len(labels), "cpu")
        assert len(partners) == 2
        sizes = torch.bincount(labels)[labels]
        for k, partner in enumerate(partners, start=1):
            assert torch.equal(labels[partner], labels)
            wraps = k % sizes == 0           # the k-th next comes round to the image itself
            assert torch.equal(partner[wraps], torch.arange(11)[wraps])
            assert (partner[~wraps] != torch.arange(11)[~wraps]).all()
        draws.append(partners[0])
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    collapsed = torch.randn(5, 1, 4, 4)[labels]
    packed = pack(collapsed, labels)
    assert packed.shape == (11, 3, 4, 4)
    assert torch.equal(packed[:, 1], packed[:, 0]) and torch.equal(packed[:, 2], packed[:, 0])
    real = torch.randn(11, 1, 4, 4)
    assert not torch.equal(pack(real, labels)[:, 1], real[:, 0])
    assert pack(real, None).shape == (11, 3, 4, 4)          # unconditional: partners from the batch


def test_dcgan_packed_discriminator_keeps_one_logit_per_image_and_r1_per_image():
    d = build_models(ModelConfig(name="dcgan", args={**SMALL["dcgan"], "d_pack": 2}), DataShape(32, 1, 10))["D"]
    assert d.body[0].in_channels == 2
    images = (torch.rand(6, 1, 32, 32) * 2 - 1).requires_grad_()
    logits = d(images, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert logits.shape == (6,)
    grad, = torch.autograd.grad(logits.sum(), images)
    assert (grad.flatten(1).abs().sum(1) > 0).all()
    with pytest.raises(ConfigError, match="model.d_pack=0"):
        build_models(ModelConfig(name="dcgan", args={**SMALL["dcgan"], "d_pack": 0}), DataShape(32, 1, 10))


def test_mlp_default_sizes():
    nets = build_models(ModelConfig(name="mlp"), DataShape(28, 1))
    linears = [m for m in nets["G"].modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(100, 128), (128, 784)]


def test_ns_loss_known_values():
    ns = GAN_LOSSES.get("ns")
    zero = torch.zeros(4)
    assert ns.d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert ns.g_loss(zero).item() == pytest.approx(math.log(2))
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    expected = -math.log(1 / (1 + math.exp(-2))) - math.log(1 - 1 / (1 + math.exp(1)))
    assert ns.d_loss(real, fake).item() == pytest.approx(expected)
    # Matches BCE-with-logits, and stays finite for huge logits.
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    x = torch.tensor([-50.0, -3.0, 0.5, 80.0])
    assert torch.allclose(ns.g_loss(x), bce(x, torch.ones(4)))
    assert torch.isfinite(ns.d_loss(x, -x))
    # Gradient of the non-saturating G loss at logit 0 is -sigmoid(-0) / n.
    logit = torch.zeros(2, requires_grad=True)
    ns.g_loss(logit).backward()
    assert torch.allclose(logit.grad, torch.full((2,), -0.25))


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("resolution,channels", [(8, 1), (28, 1), (32, 3), (64, 3)])
def test_classifiers_give_logits_and_features(name, resolution, channels):
    net = build(name, resolution, channels, classes=7)["C"]
    x = torch.randn(5, channels, resolution, resolution)
    logits = net(x)
    assert logits.shape == (5, 7) and torch.isfinite(logits).all()
    assert net.features(x).shape == (5, net.feature_dim)
    torch.nn.functional.cross_entropy(logits, torch.arange(5)).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifiers_need_labels(name):
    with pytest.raises(ConfigError, match="labelled"):
        build(name, 32, 1, classes=0)


@pytest.mark.parametrize("resolution", MODELS.get("vae").resolutions)
@pytest.mark.parametrize("channels", [1, 3])
def test_vae_encodes_and_decodes(resolution, channels):
    vae = build("vae", resolution, channels)["G"]
    x = torch.rand(4, channels, resolution, resolution) * 2 - 1
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (4, 3)
    images = vae(mean)
    assert images.shape == x.shape and images.abs().max() <= 1
    assert torch.equal(images, torch.tanh(vae.decode_logits(mean)))
    (images.sum() + logvar.sum()).backward()
    for pname, p in vae.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("loss", GAN_LOSSES.names())
@pytest.mark.parametrize("name", GANS)
def test_every_gan_family_trains_with_every_loss(name, loss, tmp_path):
    """Two steps through the public API; the weights stay finite and move."""
    import ganforge
    from ganforge import checkpoint

    extra = {"model.d_batchnorm": False} if name == "dcgan" and loss == "wgan-gp" else {}
    run = ganforge.train(overrides={
        "model.name": name, **{f"model.{k}": v for k, v in SMALL[name].items()}, **extra,
        "objective.loss": loss, "objective.d_steps": 1, "data.resolution": 16, "train.batch_size": 8,
        "train.steps": 2, "log.progress": False, "log.tensorboard": "no", "log.grid_size": 4, "log.keep_every": 2,
        "out": str(tmp_path / "run")})
    assert run.step == 2
    start, _ = checkpoint.load(tmp_path / "run" / "checkpoints" / "step-000000.safetensors", "nets.")
    end, _ = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.safetensors", "nets.")
    assert all(torch.isfinite(t).all() for t in end.values() if t.is_floating_point())
    assert any(not torch.equal(start[k], end[k]) for k in start if k.startswith("nets.G."))


@pytest.mark.parametrize("name", ["resnet", "progressive", "stylegan"])
def test_new_families_train_from_the_cli(name, tmp_path):
    from ganforge.cli import main

    sets = [x for k, v in SMALL[name].items() for x in ("--set", f"model.{k}={v}")]
    assert main(["train", "--model", name, *sets, "--resolution", "16", "--batch-size", "8",
                 "--steps", "2", "--quiet", "--set", "log.tensorboard=no", "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "samples" / "final.png").is_file()


def test_minibatch_std_is_the_groups_population_standard_deviation():
    """Its channel is the mean over features of the std across each group (torch.var as the
    reference; the layer computes it as a mean squared deviation, 20x faster on CPU)."""
    from ganforge.models.layers import MinibatchStd
    torch.manual_seed(0)
    x = torch.randn(8, 6, 3, 3)
    out = MinibatchStd(4, channels=2)(x)
    y = x.reshape(4, -1, 2, 3, 3, 3)
    want = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(2, 3, 4))  # (2 groups, 2 channels)
    assert out.shape == (8, 8, 3, 3) and torch.equal(out[:, :6], x)
    assert torch.allclose(out[:, 6:, 0, 0], want.repeat(4, 1), atol=1e-6)
