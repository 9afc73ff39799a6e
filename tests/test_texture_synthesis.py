"""Texture synthesis: the spatial GAN (any size, exactly tileable), one-image data, the CLI,
Gram-matrix optimisation and the random-tiling baseline."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.cli import main
from ganforge.config import DataConfig, ModelConfig
from ganforge.data import load_dataset
from ganforge.errors import ConfigError, DataError
from ganforge.models import DataShape, build_models
from ganforge.models.spatial import FieldUpsample
from ganforge.texture.features import RandomFeatures
from ganforge.texture.synthesis import gram_synthesis, match_histogram, periodic_cut, random_tiling, sample_gan
from helpers import assert_resume_is_exact

SMALL = {"z_channels": 2, "upsamplings": 2, "g_width": 4, "max_width": 8, "d_width": 4, "d_layers": 1}


def stripes(height: int = 48, width: int = 40, period: int = 8) -> np.ndarray:
    x = np.arange(width)[None, :].repeat(height, 0)
    return np.where((x // (period // 2)) % 2 == 0, 40, 220).astype(np.uint8)


@pytest.fixture
def exemplar(tmp_path):
    path = tmp_path / "stripes.png"
    Image.fromarray(stripes()).save(path)
    return path


def build(resolution: int = 16, channels: int = 1, seed: int = 0, **args):
    torch.manual_seed(seed)
    return build_models(ModelConfig(name="spatial", args={**SMALL, **args}), DataShape(resolution, channels))


def test_the_latent_is_a_field_of_the_crop_and_any_size_follows():
    nets = build(resolution=16)
    G, D = nets["G"].eval(), nets["D"]
    assert G.stride == 4 and G.latent_dim == 2 * 4 * 4
    flat = G(torch.randn(3, G.latent_dim))
    assert flat.shape == (3, 1, 16, 16) and flat.abs().max() <= 1
    big = G(torch.randn(2, 2, 7, 5))
    assert big.shape == (2, 1, 28, 20)
    logits = D(flat)
    assert logits.dim() == 4 and logits.shape[0] == 3      # one logit per patch
    (logits.mean() + G(torch.randn(2, G.latent_dim)).mean()).backward()
    assert all(p.grad is not None for p in D.parameters())


def test_samples_are_normalised_by_their_own_field_not_by_running_averages():
    """At inference each image uses its own statistics: independent of the other images of the
    batch and of the running averages (which follow the live weights, not the EMA copy)."""
    G = build()["G"]
    G.train()
    with torch.no_grad():
        for _ in range(3):
            G(torch.randn(4, 2, 4, 4) * 5 + 3)       # running averages far from any one sample's
    G.eval()
    field = torch.randn(1, 2, 6, 6)
    with torch.no_grad():
        alone = G(field)
        in_batch = G(torch.cat([field, torch.randn(2, 2, 6, 6) * 3]))[:1]
        torch.testing.assert_close(alone, in_batch)
        for module in G.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.fill_(100.0)      # not used at inference
        torch.testing.assert_close(G(field), alone)
    norm = next(m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d))
    x = torch.randn(2, norm.num_features, 5, 5)
    expected = torch.nn.functional.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=norm.eps)
    torch.testing.assert_close(norm(x), expected)


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
def test_tileable_generators_wrap_exactly(upsample):
    G = build(upsample=upsample)["G"].train()   # batch statistics: outputs of full range (an untrained G in eval is ~0)
    field = torch.randn(1, 2, 3, 4)
    with torch.no_grad():
        G.tileable(True)
        once = G(field)
        twice = G(field.repeat(1, 1, 2, 2))        # the same field, two periods each way
        G.tileable(False)
        plain = G(field.repeat(1, 1, 2, 2))
    assert once.abs().max() > 0.1
    assert torch.allclose(twice, once.repeat(1, 1, 2, 2), atol=1e-5)
    assert not torch.allclose(plain, once.repeat(1, 1, 2, 2), atol=1e-2)   # reflect padding does not wrap
    assert all(m.padding_mode == "reflect" for m in G.modules() if isinstance(m, torch.nn.Conv2d))


def test_model_options_are_checked():
    with pytest.raises(ConfigError, match="multiple of 4"):
        build(resolution=18)
    with pytest.raises(ConfigError, match="model.padding"):
        build(padding="circular")
    with pytest.raises(ConfigError, match="model.upsamplings"):
        build(upsamplings=0)
    with pytest.raises(ConfigError, match="model.upsample="):
        build(upsample="bicubic")


def test_one_image_file_is_a_patch_set(exemplar):
    data = load_dataset(DataConfig(name=f"patches:{exemplar}", resolution=16, channels=1))
    assert len(data) == 1 and data.sizes == [(48, 40)]
    assert data.sample(5, 16, torch.Generator().manual_seed(0)).shape == (5, 1, 16, 16)
    with pytest.raises(DataError, match="no test split"):
        load_dataset(DataConfig(name=f"patches:{exemplar}", resolution=16), "test")


@pytest.fixture
def texture_run(tmp_path, exemplar):
    out = tmp_path / "run"
    settings = [f"model.{k}={v}" for k, v in SMALL.items()] + ["log.progress=false", "log.tensorboard=no"]
    assert main(["texture", "train", str(exemplar), "--out", str(out), "--crop", "16", "--steps", "3",
                 "--batch-size", "4", *sum((["--set", s] for s in settings), [])]) == 0
    return out


def test_texture_train_and_sample_any_size(texture_run, tmp_path, capsys):
    model = ganforge.load(texture_run)
    assert model.config.model.name == "spatial" and model.config.data.channels == 1
    # The family's measured recipe: cosine decay and light augmentation.
    assert model.config.train.lr_schedule == "cosine"
    args = model.config.objective.args
    assert (args["augment"], args["augment_p"]) == ("translation,color,cutout", 0.2)
    assert {m.mode for m in model.net.modules() if isinstance(m, FieldUpsample)} == {"nearest"}
    out = tmp_path / "big.png"
    assert main(["texture", "sample", str(texture_run), "--size", "50x30", "--out", str(out)]) == 0
    assert Image.open(out).size == (50, 30)
    # An existing output is refused without --force; a tileable size off the stride is refused.
    assert main(["texture", "sample", str(texture_run), "--size", "50x30", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["texture", "sample", str(texture_run), "--size", "50x30", "--tileable",
                 "--out", str(tmp_path / "t.png")]) == 2
    assert "multiple of 4" in capsys.readouterr().err
    assert main(["texture", "sample", str(texture_run), "--size", "nonsense", "--out", str(tmp_path / "n.png")]) == 2


def test_tileable_samples_wrap_and_seeds_repeat(texture_run):
    net = ganforge.load(texture_run).net
    a, = sample_gan(net, 32, 24, seed=3, tileable=True)
    b, = sample_gan(net, 32, 24, seed=3, tileable=True)
    c, = sample_gan(net, 32, 24, seed=4, tileable=True)
    assert a.shape == (24, 32, 1) and np.array_equal(a, b) and not np.array_equal(a, c)
    # Across the wrap the image continues as it does inside: the jump from the last column to
    # the first is no larger than the typical jump between neighbouring columns.
    image = a[..., 0].astype(float)
    inside = np.abs(np.diff(image, axis=1)).mean()
    across = np.abs(image[:, -1] - image[:, 0]).mean()
    assert across <= 3 * inside + 1
    # The cut is the periodic image rolled by an offset within one latent cell, drawn from the seed.
    net.tileable(True)
    with torch.no_grad():
        periodic = net(net.noise(1, 24, 32, torch.Generator().manual_seed(3)))
    net.tileable(False)
    cut = periodic_cut(net.stride, 3)
    assert all(0 <= k < net.stride for k in cut)
    assert {periodic_cut(net.stride, seed) for seed in range(20)} != {cut}
    rolled = ((periodic.roll(cut, dims=(2, 3))[0, 0] + 1) * 127.5).round().numpy()
    assert np.abs(rolled - a[..., 0]).max() <= 1


def test_histogram_matching_takes_the_exemplars_tones_and_keeps_the_order_of_pixels():
    """The output's grey levels take the exemplar's distribution (sorted values within a grey
    level of the exemplar's), while the ranking of pixels, hence the structure and the wrap of
    a tileable texture, is kept."""
    rng = np.random.default_rng(0)
    exemplar = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    texture = np.stack([rng.permutation(256).reshape(16, 16) // 4 + 100 for _ in range(3)], -1).astype(np.uint8)
    matched = match_histogram(texture, exemplar)
    assert matched.dtype == np.uint8 and matched.shape == texture.shape
    for c in range(3):
        gap = np.abs(np.sort(matched[..., c], axis=None).astype(int) - np.sort(exemplar[..., c], axis=None))
        before = np.abs(np.sort(texture[..., c], axis=None).astype(int) - np.sort(exemplar[..., c], axis=None))
        assert gap.mean() < 1.5 and before.mean() > 30
        a, b = texture[..., c].ravel().astype(int), matched[..., c].ravel().astype(int)
        assert np.all(np.sign(a[:, None] - a[None]) * np.sign(b[:, None] - b[None]) >= 0)  # monotone
    with pytest.raises(ConfigError, match="3 channels, the exemplar 1"):
        match_histogram(texture, exemplar[..., :1])


def test_texture_sample_matches_the_exemplars_histogram_on_request(texture_run, exemplar, tmp_path, capsys):
    plain = tmp_path / "plain.png"
    assert main(["texture", "sample", str(texture_run), "--size", "48x40", "--out", str(plain)]) == 0
    assert main(["texture", "sample", str(texture_run), "--size", "48x40", "--match-histogram",
                 "--out", str(tmp_path / "own.png")]) == 0    # the run's own exemplar
    # Another tone image given by name (many grey levels, so its sorted values can be met).
    tones = tmp_path / "tones.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 48)).astype(np.uint8)).save(tones)
    matched = tmp_path / "matched.png"
    assert main(["texture", "sample", str(texture_run), "--size", "48x40", "--match-histogram", str(tones),
                 "--out", str(matched)]) == 0
    target = np.sort(np.asarray(Image.open(tones)), axis=None).astype(int)

    def tone_gap(path):  # the same size as the tone image: compare the sorted grey levels one to one
        return np.abs(np.sort(np.asarray(Image.open(path)), axis=None) - target).mean()

    # Pixels of equal value stay equal (a barely trained G repeats values), hence not 0.
    assert tone_gap(matched) < 0.15 * tone_gap(plain)
    # A moved exemplar is named; an exemplar can then be given by name.
    moved = tmp_path / "moved.png"
    Path(exemplar).rename(moved)
    assert main(["texture", "sample", str(texture_run), "--size", "48x40", "--match-histogram",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "no longer there" in capsys.readouterr().err
    assert main(["texture", "sample", str(texture_run), "--size", "48x40", "--match-histogram", str(moved),
                 "--out", str(tmp_path / "x.png")]) == 0


def test_texture_train_refuses_a_missing_exemplar(tmp_path, capsys):
    assert main(["texture", "train", str(tmp_path / "none.png"), "--out", str(tmp_path / "r")]) == 2
    assert "none.png" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_gram_synthesis_moves_towards_the_exemplar_statistics():
    exemplar = stripes(32, 32)
    features = RandomFeatures(scales=2, width=8)
    target = features.grams(torch.from_numpy(exemplar).float()[None, None] / 127.5 - 1)

    def error(image):
        made = features.grams(torch.from_numpy(image).float().permute(2, 0, 1)[None] / 127.5 - 1)
        return sum(((m - t) ** 2).sum() / (t ** 2).sum() for m, t in zip(made, target)).item()

    noise = np.random.default_rng(0).integers(0, 256, (24, 40, 1), dtype=np.uint8)
    made = gram_synthesis(exemplar, 40, 24, seed=0, steps=60, features=features)
    assert made.shape == (24, 40, 1) and made.dtype == np.uint8
    assert error(made) < 0.5 * error(noise)


def test_random_tiling_lays_exemplar_patches():
    exemplar = np.random.default_rng(1).integers(0, 256, (64, 64, 1), dtype=np.uint8)
    out = random_tiling(exemplar, 70, 50, seed=0, patch=16)
    assert out.shape == (50, 70, 1)
    block = out[16:32, 16:32, 0]
    found = any(np.array_equal(block, exemplar[y:y + 16, x:x + 16, 0]) for y in range(49) for x in range(49))
    assert found
    assert np.array_equal(out, random_tiling(exemplar, 70, 50, seed=0, patch=16))


def test_a_texture_run_resumes_exactly(tmp_path, exemplar):
    overrides = {"data.name": f"patches:{exemplar}", "data.resolution": 16, "data.channels": 1,
                 "model.name": "spatial", **{f"model.{k}": v for k, v in SMALL.items()},
                 "train.batch_size": 4, "log.progress": False, "log.tensorboard": "no",
                 "health.diversity_every": 2, "log.every": 2,
                 "train.schedule_steps": 4}   # the cosine decay's horizon: the same in both runs
    tensors = assert_resume_is_exact(tmp_path, overrides, steps=4, split=2)
    assert any(k.startswith("nets.G.") for k in tensors)


def test_evaluate_scores_a_texture_run_beside_random_tiling(texture_run, capsys):
    import json

    assert main(["evaluate", str(texture_run), "-n", "2"]) == 0
    assert "tiling" in capsys.readouterr().out
    report = json.loads((texture_run / "eval.json").read_text())
    for method in ("gan", "gan_matched", "gan_tileable", "tiling"):
        row = report[method]
        assert 1 / np.e - 1e-9 <= row["similarity"] <= 1 and row["diversity"] >= 0 and row["seam"] > 0
    # Tileable samples wrap far better than random tiling, whose patch borders meet at the wrap.
    assert report["gan_tileable"]["seam"] < report["tiling"]["seam"]
    assert main(["evaluate", str(texture_run), "-n", "1"]) == 2
