"""Keeping the samples the discriminator rates best (`--keep-best`, `models.rejection`):
the selection rule, sampling, evaluation and synthetic classifier data.

The generator here is a toy registered for this module only: G(z, y) is one of a bank of
flat images of class y, picked by z, whose top-left pixel codes the class; its discriminator
rates an image by its mean brightness. So which candidates must be kept is known exactly."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import ganforge
from helpers import error_line
from ganforge import checkpoint
from ganforge.cli import main
from ganforge.config import Config, DataConfig, ModelConfig
from ganforge.errors import ConfigError
from ganforge.inference import generate, load_critic
from ganforge.models import DataShape, MODELS
from ganforge.models.registry import Architecture
from ganforge.models.rejection import best_indices, pool_labels, pool_size
from ganforge.objectives.synthetic import SyntheticSource
from ganforge.resolve import make_config

TOY, TOY_G = "toy-judged", "toy-unjudged"
PER_CLASS, CLASSES, RES = 30, 10, 8


@dataclasses.dataclass
class ToyArgs:
    pass


class Bank(nn.Module):
    """G(z, y) = bank[y, k], k = floor(PER_CLASS * Phi(z[:, 0]))."""

    def __init__(self, shape: DataShape):
        super().__init__()
        self.latent_dim, self.num_classes = 4, shape.num_classes
        self.resolution, self.channels = shape.resolution, shape.channels
        self.bank = nn.Parameter(torch.zeros(max(shape.num_classes, 1), PER_CLASS, 1, RES, RES))

    def forward(self, z, labels=None):
        labels = torch.zeros(len(z), dtype=torch.long, device=z.device) if labels is None else labels
        k = (0.5 * (1 + torch.erf(z[:, 0] / math.sqrt(2))) * PER_CLASS).long().clamp(0, PER_CLASS - 1)
        return self.bank[labels, k]


class Judge(nn.Module):
    """D(x) = scale * mean brightness: brighter is 'more real'."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x, labels=None):
        return self.scale * x.mean((1, 2, 3))


def toy_nets(args, shape):
    return {"G": Bank(shape), "D": Judge()}


@pytest.fixture(scope="module", autouse=True)
def toy_architecture():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS._items, TOY, Architecture(ToyArgs, toy_nets))
        mp.setitem(MODELS._items, TOY_G, Architecture(ToyArgs, lambda args, shape: {"G": Bank(shape)}))
        yield


def toy_bank(classes: int) -> torch.Tensor:
    """Flat images, a different brightness each; the top-left pixel codes the class."""
    levels = torch.linspace(-0.9, 0.9, classes * PER_CLASS)[torch.randperm(classes * PER_CLASS,
                                                                          generator=torch.Generator().manual_seed(0))]
    bank = levels.view(classes, PER_CLASS, 1, 1, 1).expand(classes, PER_CLASS, 1, RES, RES).clone()
    bank[:, :, 0, 0, 0] = (torch.arange(classes).float() / 10 - 0.5).view(classes, 1)
    return bank


def save_run(run: Path, conditional: bool, with_d: bool = True) -> Path:
    config = Config()
    config.data = DataConfig(name="digits", resolution=RES)
    config.model = ModelConfig(name=TOY if with_d else TOY_G, conditional=conditional)
    classes = CLASSES if conditional else 0
    meta = {"step": 1, "config": config.to_dict(), "class_names": [str(c) for c in range(CLASSES)],
            "shape": dataclasses.asdict(DataShape(RES, 1, classes)), "sample_net": "G", "has_ema": True}
    bank = toy_bank(max(classes, 1))
    tensors = {"ema.G.bank": bank, "nets.G.bank": bank.clone()}
    if with_d:
        tensors["nets.D.scale"] = torch.ones(())
    checkpoint.save(run / "checkpoints" / "last.safetensors", tensors, meta)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("keep-best")
    return {"flat": save_run(root / "flat", False), "cond": save_run(root / "cond", True),
            "no-d": save_run(root / "no-d", False, with_d=False)}


def brightness(images) -> np.ndarray:
    """Mean brightness of uint8 N x H x W x C images, without the class pixel."""
    x = np.asarray(images, dtype=np.float64)[..., 0].copy()
    x[:, 0, 0] = np.nan
    return np.nanmean(x.reshape(len(x), -1), axis=1)


# --------------------------------------------------------------------------- the rule

def test_best_indices_keep_the_highest_scores_in_order():
    scores = torch.tensor([0.3, 0.9, 0.1, 0.5, 0.7])
    assert best_indices(scores, None, None, 3).tolist() == [1, 3, 4]


def test_best_indices_choose_within_each_requested_class():
    labels = torch.tensor([1, 0, 1])
    candidates = pool_labels(labels, 6)              # 1 0 1 1 0 1
    assert candidates.tolist() == [1, 0, 1, 1, 0, 1]
    scores = torch.tensor([0.1, 0.2, 0.9, 0.8, 0.7, 0.3])
    chosen = best_indices(scores, candidates, labels, 3)
    assert candidates[chosen].tolist() == labels.tolist()
    assert chosen.tolist() == [2, 4, 3]           # class 1's best two, class 0's best one


def test_pool_size_gives_every_class_enough_candidates():
    assert pool_size(10, 1.0) == 10 and pool_size(10, 0.5) == 20 and pool_size(10, 0.3) == 34
    labels = torch.tensor([0, 0, 0, 1, 2])
    counts = pool_labels(labels, pool_size(5, 0.4)).bincount()
    assert (counts >= labels.bincount() * 2).all()


# --------------------------------------------------------------------------- sampling

def test_keep_best_keeps_the_candidates_the_discriminator_rates_highest(runs):
    model = ganforge.load(runs["flat"])
    pool = model.sample(40, seed=3)                 # the candidates keep_best=0.5 draws for 20
    best = model.sample(20, seed=3, keep_best=0.5)
    np.testing.assert_allclose(np.sort(brightness(best)), np.sort(brightness(pool))[20:])
    assert brightness(best).mean() > brightness(model.sample(20, seed=3)).mean()
    # Deterministic, whatever the batch size; a share of 1 keeps every sample as drawn.
    np.testing.assert_array_equal(best, model.sample(20, seed=3, keep_best=0.5, batch_size=7))
    np.testing.assert_array_equal(model.sample(20, seed=3, keep_best=1.0), model.sample(20, seed=3))


def test_conditional_keep_best_keeps_each_requested_class(runs):
    model = ganforge.load(runs["cond"])
    labels = [c % CLASSES for c in range(30)]
    best = model.sample(30, seed=1, labels=labels, keep_best=0.25)
    codes = np.round((best[:, 0, 0, 0] / 127.5 - 1 + 0.5) * 10).astype(int)
    assert codes.tolist() == labels
    plain = model.sample(30, seed=1, labels=labels)
    assert brightness(best).mean() > brightness(plain).mean() + 0.1 * 127.5


def test_generate_needs_a_critic_and_a_share_in_range(runs):
    net = ganforge.load(runs["flat"]).net
    with pytest.raises(ValueError, match="keep_best needs a critic"):
        generate(net, 4, keep_best=0.5)
    critic = load_critic(runs["flat"])
    with pytest.raises(ConfigError, match=r"keep_best=0: must be in \(0, 1\]"):
        generate(net, 4, critic=critic, keep_best=0)


def test_runs_without_a_discriminator_are_refused(runs, capsys):
    with pytest.raises(ConfigError, match="has no network 'D'"):
        ganforge.load(runs["no-d"]).sample(4, keep_best=0.5)
    assert main(["sample", str(runs["no-d"]), "-n", "4", "--keep-best", "0.5",
                 "--out", str(runs["no-d"] / "x.png")]) == 2
    assert "has no network 'D'" in error_line(capsys, "sample")
    assert main(["sample", str(runs["flat"]), "-n", "4", "--keep-best", "1.5",
                 "--out", str(runs["flat"] / "x.png")]) == 2
    assert "keep_best=1.5: must be in (0, 1]" in error_line(capsys, "sample")
    assert not (runs["flat"] / "x.png").exists()


def test_cli_sample_keep_best(runs, tmp_path, capsys):
    out = tmp_path / "best.npz"
    assert main(["sample", str(runs["flat"]), "-n", "12", "--keep-best", "0.5", "--seed", "3",
                 "--out", str(tmp_path / "grid.png"), "--npz", str(out), "--quiet"]) == 0
    x = np.load(out)["x"][..., None]
    np.testing.assert_array_equal(x, ganforge.load(runs["flat"]).sample(12, seed=3, keep_best=0.5))


# --------------------------------------------------------------------------- synthetic classifier data

def test_synthetic_keep_best_draws_the_better_candidates_of_each_label(runs):
    plain = SyntheticSource(str(runs["cond"]), "last", "balanced", seed=0)
    best = SyntheticSource(str(runs["cond"]), "last", "balanced", seed=0, keep_best=0.25)
    real_labels = torch.arange(CLASSES)
    images, labels = best.draw(50, real_labels, torch.device("cpu"))
    plain_images, plain_labels = plain.draw(50, real_labels, torch.device("cpu"))
    assert labels.tolist() == plain_labels.tolist() and images.shape == plain_images.shape
    codes = torch.round((images[:, 0, 0, 0] + 0.5) * 10).long()
    assert codes.tolist() == labels.tolist()
    assert images[:, :, 1:].mean() > plain_images[:, :, 1:].mean() + 0.1


def test_synthetic_keep_best_is_checked():
    tiny = {"model.name": "cnn", "data.resolution": 16}
    with pytest.raises(ConfigError, match="synthetic_keep_best filters the samples of objective.synthetic"):
        make_config(overrides={**tiny, "objective.synthetic_keep_best": 0.5})
    with pytest.raises(ConfigError, match=r"objective.synthetic_keep_best=0(.0)?: must be in \(0, 1\]"):
        make_config(overrides={**tiny, "objective.synthetic": "runs/x", "objective.synthetic_keep_best": 0})


# --------------------------------------------------------------------------- a real DCGAN run

@pytest.fixture(scope="module")
def dcgan(tmp_path_factory):
    out = tmp_path_factory.mktemp("dcgan") / "run"
    return ganforge.train(overrides={"data.resolution": 16, "model.g_width": 8, "model.d_width": 8,
                                     "train.steps": 40, "train.batch_size": 32, "log.progress": False,
                                     "log.tensorboard": "no", "out": str(out)}).dir


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    out = tmp_path_factory.mktemp("classifier") / "cnn"
    return ganforge.train(overrides={"model.name": "cnn", "model.width": 8, "model.hidden": 32,
                                     "data.resolution": 16, "train.steps": 60, "train.batch_size": 32,
                                     "log.progress": False, "log.tensorboard": "no", "out": str(out)}).dir


def test_dcgan_samples_kept_are_the_ones_its_discriminator_prefers(dcgan):
    model = ganforge.load(dcgan)
    critic = model.critic()
    best = torch.from_numpy(model.sample(64, seed=0, keep_best=0.5)).permute(0, 3, 1, 2)
    plain = torch.from_numpy(model.sample(64, seed=0)).permute(0, 3, 1, 2)
    assert critic(best).mean() > critic(plain).mean()
    assert critic(best).min() >= critic(torch.from_numpy(model.sample(128, seed=0)).permute(0, 3, 1, 2)).median()


def test_evaluate_keep_best_writes_its_own_report(dcgan, classifier, capsys):
    assert main(["evaluate", str(dcgan), "-n", "100", "--keep-best", "0.5", "--classifier",
                 str(classifier), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "the best 50% of candidates by the run's discriminator" in out
    report = json.loads((Path(dcgan) / "eval-keep-best-0.5.json").read_text())
    assert report["setup"]["keep_best"] == 0.5 and report["setup"]["n_samples"] == 100
    assert not (Path(dcgan) / "eval.json").exists()
