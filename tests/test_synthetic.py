"""Synthetic training data for classifiers: samples of a frozen conditional generator mixed
into (or replacing) the real batches, an editing run as augmentation, the Classification
Accuracy Score of `ganforge evaluate`, and benchmarks/augment_table.py on small IDX files.

Most generators here are a toy architecture registered for this module only: G(z, y) is one
of a bank of stored images of class y, picked by z, so what a sample must be is known
exactly. Its EMA copy holds real training digits; its live copy holds their negatives, so a
sample shows which of the two it came from."""
from __future__ import annotations

import dataclasses
import gzip
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import ganforge
from helpers import error_line, load_benchmark
from ganforge import checkpoint
from ganforge.cli import main
from ganforge.config import Config, DataConfig, ModelConfig
from ganforge.data import load_dataset
from ganforge.data.imageset import to_float
from ganforge.errors import ConfigError
from ganforge.evaluate import (CAS_KEY, classification_accuracy_score, evaluate_run, feature_classifier,
                               format_table, load_splits)
from ganforge.models import DataShape, MODELS, build_models
from ganforge.models.registry import Architecture
from ganforge.objectives import Batch, build_objective
from ganforge.resolve import make_config
from ganforge.objectives.classifier import affine, random_affine
from ganforge.objectives.synthetic import EditAugment, SyntheticSource, load_frozen

QUIET = {"log.progress": False, "log.tensorboard": "no"}
DIGITS16 = DataConfig(name="digits", resolution=16)
TINY_CNN = {"model.name": "cnn", "model.width": 8, "model.hidden": 32, "data.resolution": 16,
            "train.batch_size": 32, **QUIET}
TOY = "toy-bank"
PER_CLASS = 40   # stored images per class
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "augment_table.py"


# --------------------------------------------------------------------------- the toy generator

@dataclasses.dataclass
class ToyArgs:
    pass


class Bank(nn.Module):
    """G(z, y) = bank[y, k] with k = floor(PER_CLASS * Phi(z[:, 0])): a generator that draws
    stored images of the requested class (its "weights")."""

    def __init__(self, args, shape: DataShape):
        super().__init__()
        self.latent_dim, self.num_classes = 4, shape.num_classes
        self.resolution, self.channels = shape.resolution, shape.channels
        self.bank = nn.Parameter(torch.zeros(max(shape.num_classes, 1), PER_CLASS, shape.channels,
                                             shape.resolution, shape.resolution))

    def forward(self, z, labels=None):
        labels = torch.zeros(len(z), dtype=torch.long, device=z.device) if labels is None else labels
        k = (0.5 * (1 + torch.erf(z[:, 0] / math.sqrt(2))) * PER_CLASS).long().clamp(0, PER_CLASS - 1)
        return self.bank[labels, k]


@pytest.fixture(scope="module", autouse=True)
def toy_architecture():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS._items, TOY, Architecture(ToyArgs, lambda args, shape: {"G": Bank(args, shape)}))
        yield


def real_bank(data: DataConfig = DIGITS16) -> torch.Tensor:
    """The first PER_CLASS training images of each class, as floats: 10 x PER_CLASS x C x H x W."""
    train = load_dataset(data, "train")
    return torch.stack([to_float(train.images[train.labels == c][:PER_CLASS]) for c in range(10)])


def save_toy(run: Path, ema: torch.Tensor, live: torch.Tensor, *, class_names=None, step: int = 1,
             conditional: bool = True) -> Path:
    """A generator run directory holding only a checkpoint of the toy architecture."""
    config = Config()
    config.data = DataConfig(name="digits", resolution=16)
    config.model = ModelConfig(name=TOY, conditional=conditional)
    classes = 10 if conditional else 0
    meta = {"step": step, "config": config.to_dict(), "class_names": class_names or [str(c) for c in range(10)],
            "shape": dataclasses.asdict(DataShape(16, 1, classes)), "sample_net": "G", "has_ema": True}
    checkpoint.save(run / "checkpoints" / "last.safetensors",
                    {"ema.G.bank": ema.clone(), "nets.G.bank": live.clone()}, meta)
    return run


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="module")
def bank() -> torch.Tensor:
    return real_bank()


@pytest.fixture(scope="module")
def toy(module_dir, bank) -> Path:
    """EMA: real training digits of each class; live: their negatives."""
    return save_toy(module_dir / "toy", bank, -bank)


@pytest.fixture(scope="module")
def swapped(module_dir, bank) -> Path:
    """Class c draws digits of class c + 1: every label is wrong."""
    return save_toy(module_dir / "swapped", bank.roll(-1, 0), bank.roll(-1, 0))


@pytest.fixture(scope="module")
def real_classifier(module_dir) -> Path:
    """A tiny classifier of the real digits: the recipe and floor of the CAS."""
    return ganforge.train(overrides={**TINY_CNN, "train.steps": 300, "train.batch_size": 64,
                                     "out": str(module_dir / "real")}).dir


def synthetic(run: Path, **options) -> dict:
    return {"objective.synthetic": str(run), **{f"objective.{k}": v for k, v in options.items()}}


# --------------------------------------------------------------------------- the source of samples

def nearest(images: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
    """Per image, the smallest mean absolute difference to any of `stored` (M x C x H x W)."""
    return (images[:, None] - stored[None]).abs().flatten(2).mean(2).min(1).values


def test_samples_come_from_the_frozen_ema_generator(toy, bank):
    source = SyntheticSource(str(toy), "last", "balanced", seed=0)
    assert not source.net.training and not any(p.requires_grad for p in source.net.parameters())
    images, labels = source.draw(30, torch.zeros(30, dtype=torch.long), torch.device("cpu"))
    assert images.shape == (30, 1, 16, 16) and images.dtype == torch.float32
    for image, label in zip(images, labels):
        # Each sample is one of its class's EMA images, exactly; none of the live ones.
        assert nearest(image[None], bank[label])[0] < 1e-6
        assert nearest(image[None], -bank[label])[0] > 0.5
    assert len({tuple(image.flatten().tolist()) for image in images}) > 20  # z picks among them


def test_balanced_labels_cycle_through_the_classes(toy):
    source = SyntheticSource(str(toy), "last", "balanced", seed=0)
    real = torch.full((12,), 3)
    drawn = torch.cat([source.draw(12, real, torch.device("cpu"))[1] for _ in range(5)])
    assert torch.bincount(drawn, minlength=10).tolist() == [6] * 10  # 60 samples, 6 of each class
    assert torch.bincount(drawn[:10], minlength=10).tolist() == [1] * 10  # every 10 in a row: each once


def test_prior_labels_follow_the_real_batch(toy):
    source = SyntheticSource(str(toy), "last", "prior", seed=0)
    real = torch.tensor([2] * 30 + [7] * 10)
    drawn = torch.cat([source.draw(40, real, torch.device("cpu"))[1] for _ in range(10)])
    counts = torch.bincount(drawn, minlength=10)
    assert set(drawn.tolist()) == {2, 7}
    assert 0.65 < counts[2] / len(drawn) < 0.85  # 3 : 1 in the real batch


def test_draws_depend_on_seed_and_draw_index_only(toy):
    a, b = (SyntheticSource(str(toy), "last", "balanced", seed=5) for _ in range(2))
    real = torch.zeros(8, dtype=torch.long)
    first = a.draw(8, real, torch.device("cpu"))[0]
    assert not torch.equal(first, a.draw(8, real, torch.device("cpu"))[0])
    assert torch.equal(first, b.draw(8, real, torch.device("cpu"))[0])
    b.load_state_dict({**b.state_dict(), "draws": 0})
    assert torch.equal(first, b.draw(8, real, torch.device("cpu"))[0])
    other = SyntheticSource(str(toy), "last", "balanced", seed=6).draw(8, real, torch.device("cpu"))[0]
    assert not torch.equal(first, other)


def test_truncation_zero_draws_the_centre_image_of_each_class(toy, bank):
    """psi 0 scales z to 0, the centre of the latent distribution: the toy generator then
    returns its middle stored image of the class, whatever the draw."""
    source = SyntheticSource(str(toy), "last", "balanced", seed=0, truncation=0.0)
    images, labels = source.draw(20, torch.zeros(20, dtype=torch.long), torch.device("cpu"))
    for image, label in zip(images, labels):
        assert nearest(image[None], bank[label, PER_CLASS // 2][None])[0] < 1e-6
    varied = SyntheticSource(str(toy), "last", "balanced", seed=0).draw(20, labels, torch.device("cpu"))[0]
    assert not torch.equal(images, varied)
    with pytest.raises(ConfigError, match="synthetic_truncation.*which is not set"):
        make_config(overrides={**TINY_CNN, "objective.synthetic_truncation": 0.5})
    with pytest.raises(ConfigError, match=r"objective.synthetic_truncation=2.5: must be in \[0, 2\]"):
        make_config(overrides={**TINY_CNN, **synthetic(toy, synthetic_truncation=2.5)})


def test_unfit_generator_runs_are_refused(module_dir, toy, bank):
    flat = save_toy(module_dir / "flat", bank[:1], bank[:1], conditional=False)
    with pytest.raises(ConfigError, match="not class-conditional"):
        SyntheticSource(str(flat), "last", "balanced", seed=0)
    source = SyntheticSource(str(toy), "last", "balanced", seed=0)
    with pytest.raises(ConfigError, match="resolution 16.*has 8"):
        source.check_data(DataShape(8, 1, 10))
    with pytest.raises(ConfigError, match="classes 10.*has 3"):
        source.check_data(DataShape(16, 1, 3))
    with pytest.raises(ConfigError, match="was trained on classes 0, 1.*has zero, one"):
        source.check_classes(["zero", "one", "two", "3", "4", "5", "6", "7", "8", "9"])
    source.check_classes([str(c) for c in range(10)])


# --------------------------------------------------------------------------- training with samples

def test_batches_mix_real_and_synthetic_images(toy, tmp_path):
    run = ganforge.train(overrides={**TINY_CNN, **synthetic(toy, synthetic_ratio=0.5), "train.steps": 3,
                                    "log.every": 1, "out": str(tmp_path / "mixed")})
    lines = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert all("synthetic_accuracy" in line for line in lines if "loss_C" in line)
    meta = checkpoint.read_meta(run.dir / "checkpoints" / "last.safetensors")
    assert meta["objective"]["synthetic"]["draws"] == 3 and meta["objective"]["synthetic"]["run"] == str(toy)
    objective = build_objective(make_config(overrides={**TINY_CNN, **synthetic(toy, synthetic_ratio=0.5)}).objective,
                                build_models(ModelConfig(name="cnn"), DataShape(16, 1, 10)))
    batch = Batch(torch.zeros(32, 1, 16, 16), torch.zeros(32, dtype=torch.long))
    images, labels, made = objective.mix(batch)
    assert made == 16 and len(images) == len(labels) == 48 and torch.equal(images[:32], batch.images)
    objective.args.synthetic_only = True
    images, labels, made = objective.mix(batch)
    assert made == len(images) == 32 and images.abs().sum() > 0


def test_the_generator_is_never_trained_nor_saved(toy, tmp_path):
    before = checkpoint.load(toy / "checkpoints" / "last.safetensors")[0]
    run = ganforge.train(overrides={**TINY_CNN, **synthetic(toy, synthetic_only=True), "train.steps": 4,
                                    "out": str(tmp_path / "only")})
    tensors, meta = checkpoint.load(run.dir / "checkpoints" / "last.safetensors")
    assert {key.split(".")[1] for key in tensors if key.startswith(("nets.", "optim."))} == {"C"}
    assert list(meta["optimizers"]) == ["C"] and not any("prototypes" in key for key in tensors)
    after = checkpoint.load(toy / "checkpoints" / "last.safetensors")[0]
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert meta["config"]["objective"]["synthetic"] == str(toy)


def test_resume_with_synthetic_batches_is_exact(toy, tmp_path):
    overrides = {**TINY_CNN, **synthetic(toy, synthetic_ratio=0.5, synthetic_labels="prior"),
                 "objective.rotate": 10.0, "objective.scale": 0.1,
                 "train.schedule_steps": 6}  # the cosine schedule's horizon: the straight run's
    straight = ganforge.train(overrides={**overrides, "train.steps": 6, "out": str(tmp_path / "straight")})
    ganforge.train(overrides={**overrides, "train.steps": 3, "out": str(tmp_path / "split")})
    resumed = ganforge.train(resume=tmp_path / "split", overrides={"train.steps": 6})
    a, meta_a = checkpoint.load(straight.dir / "checkpoints" / "last.safetensors")
    b, meta_b = checkpoint.load(resumed.dir / "checkpoints" / "last.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("optim.C.state") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert meta_a["objective"] == meta_b["objective"] and meta_a["objective"]["synthetic"]["draws"] == 6


def test_resume_refuses_a_generator_that_changed(toy, bank, tmp_path):
    generator = save_toy(tmp_path / "gen", bank, bank, step=1)
    ganforge.train(overrides={**TINY_CNN, **synthetic(generator), "train.steps": 2, "out": str(tmp_path / "c")})
    save_toy(generator, bank, bank, step=7)  # the generator run trained on
    with pytest.raises(ConfigError, match="at step 7 now, at step 1"):
        ganforge.train(resume=tmp_path / "c", overrides={"train.steps": 4})


def test_cli_synthetic_options(toy, module_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(toy.parent)
    argv = ["classify", "train", "--resolution", "16", "--synthetic", toy.name, "--synthetic-ratio", "0.25",
            "--synthetic-labels", "prior", "--synthetic-truncation", "0.8", "--dry-run"]
    assert main(argv) == 0
    objective = __import__("yaml").safe_load(capsys.readouterr().out)["objective"]
    assert objective["synthetic"] == str(toy) and objective["synthetic_ratio"] == 0.25
    assert objective["synthetic_labels"] == "prior" and objective["synthetic_only"] is False
    assert objective["synthetic_truncation"] == 0.8
    assert main(["classify", "train", "--synthetic-ratio", "0.5", "--dry-run"]) == 2
    assert "need --synthetic RUN" in error_line(capsys, "classify")
    assert main(["classify", "train", "--set", "objective.synthetic_only=true", "--dry-run"]) == 2
    assert "objective.synthetic_only=true needs objective.synthetic" in error_line(capsys, "classify")


def test_cli_refuses_other_class_names(module_dir, bank, tmp_path, capsys):
    letters = save_toy(tmp_path / "letters", bank, bank, class_names=list("abcdefghij"))
    out = tmp_path / "clf"
    assert main(["classify", "train", "--resolution", "16", "--synthetic", str(letters), "--steps", "2",
                 "--quiet", "--out", str(out)]) == 2
    line = error_line(capsys, "classify")
    assert "classes a, b, c" in line and "has 0, 1, 2" in line and not out.exists()



def test_the_api_refuses_other_class_names_too(module_dir, bank, tmp_path):
    """Not only the CLI: the trainer asks the objective before the run directory is made."""
    letters = save_toy(tmp_path / "letters", bank, bank, class_names=list("abcdefghij"))
    out = tmp_path / "clf"
    with pytest.raises(ConfigError, match="classes a, b, c"):
        ganforge.train({"objective": {"name": "classifier", "synthetic": str(letters)},
                        "model": {"name": "cnn"}, "data": {"resolution": 16},
                        "train": {"steps": 2}, "log": {"progress": False}, "out": str(out)})
    assert not out.exists()


# --------------------------------------------------------------------------- classical augmentation

def test_affine_rotates_and_zooms_about_the_centre():
    x = torch.arange(36.0).view(1, 1, 6, 6)
    assert torch.allclose(affine(x, torch.tensor([math.pi / 2]), torch.tensor([1.0])), torch.rot90(x, 1, (2, 3)),
                          atol=1e-4)
    assert torch.allclose(affine(x, torch.tensor([0.0]), torch.tensor([1.0])), x, atol=1e-5)
    zoomed = affine(x, torch.tensor([0.0]), torch.tensor([2.0]))
    assert zoomed.min() > x.min() and zoomed.max() < x.max()  # the centre, magnified
    assert random_affine(x, 0, 0) is x
    images = torch.rand(64, 1, 8, 8)
    moved = random_affine(images, 10, 0.1)
    assert moved.shape == images.shape and not torch.equal(moved, images)


# --------------------------------------------------------------------------- an editing run as augmentation

@pytest.fixture(scope="module")
def denoiser(module_dir) -> Path:
    return ganforge.train(overrides={"task": "denoise", "model.name": "dncnn", "data.name": "digits",
                                     "data.channels": 1,
                                     "data.resolution": 16, "model.depth": 3, "model.width": 8,
                                     "train.batch_size": 8, "train.steps": 2, **QUIET,
                                     "out": str(module_dir / "denoise")}).dir


def test_edit_augment_redraws_a_share_of_the_real_images(denoiser):
    net, _ = load_frozen(denoiser, "last", "objective.augment_with")
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    images = to_float(load_dataset(DIGITS16, "train").images[:64])
    augment = EditAugment(str(denoiser), "last", share=0.5, seed=0)
    out = augment(images)
    changed = (out != images).flatten(1).any(1)
    assert out.shape == images.shape and 16 < int(changed.sum()) < 48
    assert torch.equal(out[~changed], images[~changed])
    again = EditAugment(str(denoiser), "last", share=0.5, seed=0)(images)
    assert torch.equal(out, again)                      # seeded by (seed, draw)
    assert not torch.equal(out, augment(images))        # the next draw edits others
    assert (EditAugment(str(denoiser), "last", share=1.0, seed=0)(images) != images).flatten(1).any(1).all()


def test_edit_augment_refuses_runs_that_do_not_edit(toy, denoiser):
    with pytest.raises(ConfigError, match="give an editing run"):
        EditAugment(str(toy), "last", share=0.5, seed=0)
    with pytest.raises(ConfigError, match="1-channel images"):
        EditAugment(str(denoiser), "last", share=0.5, seed=0).check_data(DataShape(16, 3, 10))


def test_classify_train_with_augment_with(denoiser, tmp_path, capsys):
    out = tmp_path / "aug"
    assert main(["classify", "train", "--resolution", "16", "--steps", "3", "--batch-size", "16",
                 "--set", "model.width=8", "--set", "model.hidden=16", "--augment-with", str(denoiser),
                 "--augment-share", "0.25", "--quiet", "--out", str(out)]) == 0
    meta = checkpoint.read_meta(out / "checkpoints" / "last.safetensors")
    assert meta["objective"]["augment"]["draws"] == 3
    assert meta["config"]["objective"]["augment_share"] == 0.25


# --------------------------------------------------------------------------- the Classification Accuracy Score

@pytest.fixture(scope="module")
def toy_report(toy, real_classifier) -> dict:
    return evaluate_run(toy, n=50, classifier=real_classifier, quiet=True)


def test_cas_of_a_generator_that_draws_its_class(toy_report, real_classifier):
    model, floor = toy_report["model"], toy_report["floor"]
    heldout = load_dataset(DIGITS16, "test")
    from ganforge.inference import load_classifier
    real = float((load_classifier(real_classifier).predict(heldout.images) == heldout.labels).float().mean())
    assert floor[CAS_KEY] == pytest.approx(real) and floor[CAS_KEY] > 0.5
    # Samples that are real digits of their class (400 of them) teach nearly what real data does.
    assert model[CAS_KEY] > 0.5 and model[CAS_KEY] > floor[CAS_KEY] - 0.25
    assert "trained on fresh samples only" in toy_report["setup"][CAS_KEY]
    table = format_table(toy_report)
    assert any(line.startswith(CAS_KEY) and line.split()[1:3] == [f"{model[CAS_KEY]:.4g}", f"{floor[CAS_KEY]:.4g}"]
               for line in table.splitlines())


def test_cas_of_a_generator_with_wrong_labels_is_near_zero(swapped, real_classifier):
    heldout = load_splits(DIGITS16).heldout
    result = classification_accuracy_score(swapped, "last", DIGITS16, heldout, real_classifier, quiet=True)
    assert result["cas"] < 0.15 and result["real"] > 0.5


def test_cas_is_off_for_unconditional_runs_and_on_request(toy, real_classifier, module_dir, bank):
    flat = save_toy(module_dir / "flat-eval", bank[:1], bank[:1], conditional=False)
    report = evaluate_run(flat, n=20, classifier=real_classifier, quiet=True)
    assert CAS_KEY not in report["model"] and CAS_KEY not in report["setup"]
    report = evaluate_run(toy, n=20, classifier=real_classifier, quiet=True, cas=False)
    assert CAS_KEY not in report["model"] and "sample_accuracy" in report["model"]


def test_evaluate_with_truncation_scores_and_trains_cas_on_truncated_samples(toy, toy_report, real_classifier,
                                                                             monkeypatch, capsys, denoiser):
    """--truncation reaches every sample scored and the samples CAS trains on, is recorded,
    and shows as less variety than the untruncated evaluation of the same run."""
    import ganforge.evaluate as evaluate_module

    asked = []
    monkeypatch.setattr(evaluate_module, "classification_accuracy_score",
                        lambda *args, **kwargs: asked.append(args[-1]) or None)
    report = evaluate_run(toy, n=50, classifier=real_classifier, quiet=True, truncation=0.0)
    assert asked == [0.0] and report["setup"]["truncation"] == 0.0
    # Written beside the plain evaluation, never over it.
    assert json.loads((toy / "eval-truncation-0.json").read_text())["setup"]["truncation"] == 0.0
    assert "truncation" not in json.loads((toy / "eval.json").read_text())["setup"]
    assert report["model"]["recall"] < toy_report["model"]["recall"]
    assert report["model"]["coverage"] < toy_report["model"]["coverage"]
    assert "truncated with psi 0" in format_table(report)
    # The option is checked before any work, and refused for runs that take no noise.
    assert main(["evaluate", str(toy), "--truncation", "2.5", "--classifier", str(real_classifier)]) == 2
    assert "truncation=2.5: must be in [0, 2]" in error_line(capsys, "evaluate")
    assert main(["evaluate", str(denoiser), "--truncation", "0.7"]) == 2
    assert "--truncation is for generators" in error_line(capsys, "evaluate")


def test_cas_stays_in_the_runs_own_space(toy, monkeypatch, cache):
    """CAS trains a classifier on the samples as drawn, so it is tested on the run's own
    held-out images with the run's own classifier recipe, whatever space the rest is scored in."""
    import ganforge.evaluate as evaluate_module
    import ganforge.objectives.classifier as classifier_module

    monkeypatch.setattr(classifier_module, "CLASSIFY_DEFAULTS", {"model.name": "cnn", "train.steps": 20,
                                                                 "model.width": 8, "model.hidden": 32})
    asked = []
    monkeypatch.setattr(evaluate_module, "classification_accuracy_score",
                        lambda run, name, data, heldout, recipe, *rest, **kw: asked.append(
                            (data.resolution, heldout.images.shape[-1], Path(recipe).name)) or None)
    report = evaluate_run(toy, n=50, quiet=True, resolution=8)
    assert asked == [(16, 16, feature_classifier(DIGITS16, quiet=True).name)]
    assert "digits-8px-1ch-" in report["setup"]["extractor"]     # the rest: the 8-pixel space
    assert "(CAS in the run's own space)" in format_table(report)


# --------------------------------------------------------------------------- benchmarks/augment_table.py

@pytest.fixture(scope="module")
def bench():
    return load_benchmark(SCRIPT)


def write_idx_set(root: Path, folder: str, per_class: int) -> None:
    """A small torchvision-layout set: per_class training and 2 test images of each of 10
    classes, 28x28, each class a bar at its own row."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def images(n):
        labels = np.repeat(np.arange(10), n).astype(np.uint8)
        x = rng.integers(0, 40, (len(labels), 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            x[i, 2 + 2 * c:4 + 2 * c, 4:24] = 255
        return x, labels

    for split, n in (("train", per_class), ("t10k", 2)):
        x, y = images(n)
        with gzip.open(raw / f"{split}-images-idx3-ubyte.gz", "wb") as handle:
            handle.write(struct.pack(">IIII", 2051, len(x), 28, 28) + x.tobytes())
        with gzip.open(raw / f"{split}-labels-idx1-ubyte.gz", "wb") as handle:
            handle.write(struct.pack(">II", 2049, len(y)) + y.tobytes())


def test_balanced_subset_is_balanced_and_seeded(bench):
    labels = torch.tensor([c for c in range(4) for _ in range(9)])
    index = bench.balanced_subset(labels, 8, seed=1)
    assert torch.bincount(labels[index]).tolist() == [2, 2, 2, 2]
    assert torch.equal(index, bench.balanced_subset(labels, 8, seed=1))
    assert not torch.equal(index, bench.balanced_subset(labels, 8, seed=2))
    assert torch.bincount(labels[bench.balanced_subset(labels, 10, seed=0)]).tolist() == [3, 3, 2, 2]
    with pytest.raises(SystemExit, match="class 0 has 9"):
        bench.balanced_subset(labels, 40, seed=0)


def test_augment_table_runs_every_row_then_reuses_them(bench, tmp_path, monkeypatch):
    write_idx_set(tmp_path / "data", "MNIST", per_class=4)
    argv = ["--data-dir", str(tmp_path / "data"), "--datasets", "mnist", "--sizes", "20", "--seeds", "1",
            "--gan-steps", "2", "--classifier-steps", "2", "--out", str(tmp_path / "table")]
    text = bench.main(argv)
    rows = [json.loads(line) for line in (tmp_path / "table" / "results.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rows] == list(bench.ROWS)
    assert all(r["test_images"] == 20 and 0 <= r["accuracy"] <= 1 for r in rows)
    subset = np.load(tmp_path / "table" / "subsets" / "mnist-20-seed0.npz")
    assert np.bincount(subset["y"]).tolist() == [2] * 10
    assert "--synthetic-only" in rows[-1]["command"] and "--synthetic" in rows[2]["command"]
    assert text.splitlines()[2].startswith("| mnist | 20 | 1 | ")
    assert text.splitlines()[0].endswith("| synthetic adds to real | synthetic adds to classical |")
    gains = [float(cell) for cell in text.splitlines()[2].strip("| ").split(" | ")[-2:]]
    accuracy = {r["row"]: 100 * r["accuracy"] for r in rows}
    assert gains == pytest.approx([round(accuracy["real + synthetic"] - accuracy["real"], 1),
                                   round(accuracy["real + classical + synthetic"] - accuracy["real + classical aug"], 1)],
                                  abs=0.051)
    assert (tmp_path / "table" / "augment_table.md").read_text().strip() == text
    monkeypatch.setattr(bench, "cli_main", lambda argv: pytest.fail(f"trained again: {argv}"))
    assert bench.main(argv) == text
