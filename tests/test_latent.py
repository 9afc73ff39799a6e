"""Control of the latent space (inference/latent.py and its commands): interpolation that
starts and ends at the seeds' images, between classes at fixed noise, style mixing, inversion
that lowers the reconstruction error, latent files, and class directions that change the
class of what they move. Runs are tiny generators trained for a few steps on the digits."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.cli import main
from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.errors import ConfigError, DataError
from ganforge.inference import generate
from ganforge.inference.latent import (Latent, class_directions, direction_curve, encode, interpolate,
                                       load_latent, move, noise, project, psnr, render, save_latent,
                                       slerp, style_mix)
from ganforge.models.conditioning import embed_labels

QUIET = {"log.progress": False, "log.tensorboard": "no", "log.sample_every": 1000,
         "log.checkpoint_every": 1000, "data.resolution": 16, "train.batch_size": 16}
DCGAN = {"model.g_width": 8, "model.d_width": 8, "model.latent_dim": 16, **QUIET}
STYLE = {"model.name": "stylegan", "model.latent_dim": 8, "model.w_dim": 8, "model.mapping_layers": 2,
         "model.g_width": 4, "model.d_width": 4, "model.max_width": 8, **QUIET, "train.batch_size": 8}


def _train(path, steps=4, **overrides):
    return ganforge.train(overrides={**overrides, "train.steps": steps, "out": str(path)}).dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent")
    # Enough steps that the images depend on the noise (inversion has something to follow).
    return {"dcgan": _train(root / "dcgan", 150, **DCGAN),
            "conditional": _train(root / "cond", **DCGAN, **{"model.conditional": True}),
            "stylegan": _train(root / "style", 40, **STYLE)}


def net(runs, name):
    return ganforge.load(runs[name]).net


# Interpolation.
@pytest.mark.parametrize("name", ["dcgan", "stylegan"])
def test_an_interpolation_starts_and_ends_at_the_seeds_images(runs, name):
    g = net(runs, name)
    frames = interpolate(g, 3, 7, steps=5)
    assert frames.shape == (5, 1, 16, 16) and frames.dtype == torch.uint8
    for frame, seed in ((frames[0], 3), (frames[-1], 7)):
        assert (frame.int() - generate(g, 1, seed)[0].int()).abs().max() <= 1
    assert not torch.equal(frames[1], frames[0]) and not torch.equal(frames[1], frames[-1])


def test_slerp_keeps_the_norm_of_noise_and_hits_both_ends():
    a, b = torch.randn(1, 64), torch.randn(1, 64)
    path = slerp(a.expand(5, -1), b.expand(5, -1), torch.linspace(0, 1, 5))
    assert torch.allclose(path[0], a[0], atol=1e-5) and torch.allclose(path[-1], b[0], atol=1e-5)
    norms = path.norm(dim=1)
    assert norms.min() > 0.9 * min(a.norm(), b.norm())  # a straight line would dip towards 0


def test_between_classes_at_fixed_noise(runs):
    g = net(runs, "conditional")
    frames = interpolate(g, 5, 5, steps=4, label_from=2, label_to=8)
    for frame, label in ((frames[0], 2), (frames[-1], 8)):
        assert (frame.int() - generate(g, 1, 5, torch.tensor([label]))[0].int()).abs().max() <= 1
    with pytest.raises(ConfigError, match="give a class"):
        interpolate(g, 0, 1, steps=3)
    with pytest.raises(ConfigError, match="outside"):
        interpolate(g, 0, 1, steps=3, label_from=10)


def test_class_weights_mix_the_class_embeddings():
    embedding = torch.nn.Embedding(4, 3)
    labels = torch.tensor([0, 3])
    assert torch.allclose(embed_labels(embedding, torch.nn.functional.one_hot(labels, 4).float()),
                          embedding(labels))
    half = embed_labels(embedding, torch.tensor([[0.5, 0.5, 0.0, 0.0]]))
    assert torch.allclose(half[0], (embedding.weight[0] + embedding.weight[1]) / 2)


def test_style_mixing_takes_the_chosen_layers_from_the_second_seed(runs):
    g = net(runs, "stylegan")
    everything = style_mix(g, 1, 2, range(0, g.num_ws))
    assert (everything[0].int() - generate(g, 1, 2)[0].int()).abs().max() <= 1
    mixed = style_mix(g, 1, 2, range(0, 1))
    assert not torch.equal(mixed, everything)
    for bad in (range(0, g.num_ws + 1), range(2, 2)):
        with pytest.raises(ConfigError, match="layers"):
            style_mix(g, 1, 2, bad)
    with pytest.raises(ConfigError, match="style-based"):
        style_mix(net(runs, "dcgan"), 1, 2, range(0, 1))


# Inversion.
@pytest.mark.parametrize("name,kind", [("dcgan", None), ("stylegan", "w"), ("stylegan", "w+")])
def test_projection_lowers_the_reconstruction_error(runs, name, kind):
    g = net(runs, name)
    target = load_dataset(DataConfig(name="digits", resolution=16), "test").images[:1]  # a real digit
    latent, image, info = project(g, target, steps=60, kind=kind, seed=1)
    assert info["psnr"] > info["psnr_start"] + 0.2
    assert info["losses"][-1] < info["losses"][0]
    assert latent.kind == (kind or "z") and image.shape == target.shape
    assert psnr(render(g, latent).detach(), ganforge.data.to_float(target)) == pytest.approx(info["psnr"], abs=1e-4)


def test_projection_with_a_feature_loss_and_a_class(runs):
    g = net(runs, "conditional")
    target = generate(g, 1, seed=9, labels=torch.tensor([4]))
    features = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
    latent, _, info = project(g, target, label=4, steps=40, features=features, feature_weight=1.0)
    assert info["psnr"] > info["psnr_start"] and latent.labels.tolist() == [4]


def test_projection_refuses_an_image_of_another_size(runs):
    with pytest.raises(DataError, match="1 x 1 x 16 x 16"):
        project(net(runs, "dcgan"), torch.zeros(1, 1, 8, 8, dtype=torch.uint8), steps=1)


def test_latent_files_round_trip_and_bad_files_are_one_line_errors(tmp_path):
    latent = Latent(torch.randn(1, 3, 8), "w+", torch.tensor([2]))
    save_latent(latent, tmp_path / "a.latent.safetensors", {"psnr": 20.0})
    back, header = load_latent(tmp_path / "a.latent.safetensors")
    assert torch.equal(back.codes, latent.codes) and back.kind == "w+" and back.labels.tolist() == [2]
    assert header["psnr"] == 20.0
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(DataError, match="not a latent file"):
        load_latent(tmp_path / "junk.safetensors")


# Directions.
class Brightness(torch.nn.Module):
    """A toy generator whose image brightness is z[0]: class 1 (bright) lies along +z[0]."""

    latent_dim, channels, resolution, num_classes = 6, 1, 4, 0

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z, labels=None):
        return torch.tanh(z[:, :1, None, None] + 0 * self.anchor).expand(-1, 1, 4, 4)


def bright(images: torch.Tensor) -> torch.Tensor:
    return (images.float().mean((1, 2, 3)) > 127.5).long()


def test_a_class_direction_points_to_the_class_and_moving_along_it_changes_the_class():
    g = Brightness()
    directions, counts = class_directions(g, bright, n=400)
    assert counts.sum() == 400 and counts.min() > 100
    assert directions[1, 0] > 0.9 and directions[0, 0] < -0.9  # along +z0 and -z0
    curve = direction_curve(g, directions, bright, amounts=(0.0, 0.25, 1.0), n=200)
    assert curve[1][0] == 0.0 and curve[1][1] > 0.3 and curve[1][2] > 0.95
    moved = move(encode(g, noise(g, [0])), directions[1], 1.0)
    assert moved.codes[0, 0] > encode(g, noise(g, [0])).codes[0, 0]


def test_directions_are_refused_for_conditional_models(runs):
    with pytest.raises(ConfigError, match="unconditional"):
        class_directions(net(runs, "conditional"), bright, n=10)


# The commands.
@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    out = tmp_path_factory.mktemp("latent-clf") / "clf"
    return ganforge.train(overrides={"model.name": "cnn", "model.width": 8, "model.hidden": 16,
                                     "train.steps": 20, "data.resolution": 16, "log.progress": False,
                                     "log.tensorboard": "no", "out": str(out)}).dir


def test_interpolate_writes_a_strip_and_an_animation_and_keeps_existing_files(runs, tmp_path, capsys):
    out, gif = tmp_path / "walk.png", tmp_path / "walk.gif"
    assert main(["interpolate", str(runs["dcgan"]), "--from", "1", "--to", "2", "--steps", "4",
                 "--out", str(out), "--animation", str(gif)]) == 0
    assert Image.open(out).size == (4 * 16 + 5 * 2, 16 + 4)
    assert Image.open(gif).n_frames == 6  # there and back
    assert main(["interpolate", str(runs["dcgan"]), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["interpolate", str(runs["stylegan"]), "--style-mix", "0-1", "--out",
                 str(tmp_path / "mix.png")]) == 0
    assert main(["interpolate", str(runs["stylegan"]), "--style-mix", "x", "--out",
                 str(tmp_path / "bad.png")]) == 2


def test_inputs_are_cropped_resized_and_kept_as_uint8(tmp_path):
    from ganforge.cli.project import fit_to_run
    pixels = (np.random.default_rng(1).random((16, 24)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    image = fit_to_run(tmp_path / "wide.png", 1, 16)
    assert image.dtype == torch.uint8 and image.shape == (1, 1, 16, 16)
    assert torch.equal(image[0, 0], torch.from_numpy(pixels[:, 4:20]))  # the centre square, as stored
    assert fit_to_run(tmp_path / "wide.png", 3, 8).shape == (1, 3, 8, 8)


def test_project_then_directions_then_edit_latent(runs, classifier, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((40, 30)) * 255).astype(np.uint8)).save(photo)
    out = tmp_path / "proj"
    assert main(["project", str(runs["dcgan"]), str(photo), "--steps", "20", "--classifier", str(classifier),
                 "--out", str(out)]) == 0
    assert "PSNR" in capsys.readouterr().out
    assert Image.open(out / "photo.png").size == (16, 16)
    latent, header = load_latent(out / "photo.latent.safetensors")
    assert latent.kind == "z" and header["image"] == str(photo)
    assert main(["project", str(runs["dcgan"]), str(photo), "--steps", "1", "--classifier", "none",
                 "--out", str(out)]) == 2  # outputs exist
    assert main(["directions", str(runs["dcgan"]), "-n", "60", "--test-n", "20",
                 "--classifier", str(classifier)]) == 0
    printed = capsys.readouterr().out
    assert "share turned into the class" in printed and "directions.safetensors" in printed
    strip = tmp_path / "strip.png"
    assert main(["edit-latent", str(runs["dcgan"]), "--latent", str(out / "photo.latent.safetensors"),
                 "--direction", "3", "--amount", "0,0.5,1", "--out", str(strip)]) == 0
    assert Image.open(strip).size == (3 * 16 + 4 * 2, 16 + 4)
    assert main(["edit-latent", str(runs["dcgan"]), "--latent", str(out / "photo.latent.safetensors"),
                 "--direction", "cat", "--out", str(tmp_path / "x.png")]) == 2
    assert "not a class of this run" in capsys.readouterr().err


def test_latent_commands_refuse_editing_runs_and_missing_directions(runs, tmp_path, capsys):
    assert main(["edit-latent", str(runs["stylegan"]), "--latent", "none.safetensors", "--direction", "1",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "no directions" in capsys.readouterr().err
