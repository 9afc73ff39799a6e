"""The VAE (model, ELBO objective, reconstruct) and the CNN classifiers (`ganforge classify`).

Runs are small: a VAE of width 8 on the bundled digits at 16 px, and one classifier trained
once for the module with `ganforge classify train --steps 300 --resolution 16`."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

import ganforge
from helpers import error_line
from ganforge import checkpoint
from ganforge.cli import main
from ganforge.cli.classify import format_report
from ganforge.config import DataConfig
from ganforge.data import ImageSet, load_dataset
from ganforge.errors import ConfigError
from ganforge.inference import TrainedClassifier, load_classifier
from ganforge.objectives.vae import kl_to_standard_normal, reconstruction

QUIET = {"log.progress": False, "log.tensorboard": "no"}
TINY_VAE = {"model.name": "vae", "model.width": 8, "train.batch_size": 32, "data.resolution": 16, **QUIET}
TINY_GAN = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 16, "data.resolution": 16, **QUIET}
DIGITS16 = DataConfig(name="digits", resolution=16)
N_TEST, N_TRAIN = 360, 1437  # the digits splits


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vae_classifier")


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- the VAE

@pytest.fixture(scope="module")
def vae_run(module_dir) -> Path:
    """A VAE trained for 200 steps, a log line every 20."""
    return ganforge.train(overrides={**TINY_VAE, "train.steps": 200, "log.every": 20,
                                     "out": str(module_dir / "vae")}).dir


@pytest.fixture(scope="module")
def gan_run(module_dir) -> Path:
    return ganforge.train(overrides={**TINY_GAN, "train.steps": 2, "out": str(module_dir / "gan")}).dir


def test_elbo_decreases(vae_run):
    lines = records(vae_run)
    assert [line["step"] for line in lines] == list(range(20, 201, 20))
    losses = [line["loss_VAE"] for line in lines]
    assert all(math.isfinite(v) and v > 0 for v in losses)
    assert np.mean(losses[-3:]) < 0.8 * losses[0]
    for line in lines:
        assert line["kl"] >= 0 and line["recon"] > 0
        assert line["loss_VAE"] == pytest.approx(line["recon"] + line["kl"], abs=1e-4)  # beta 1


def test_vae_picks_its_objective_and_train_defaults():
    config = ganforge.make_config(overrides={"model.name": "vae"})
    assert config.objective.name == "vae"
    assert config.objective.args == {"recon": "bce", "beta": 1.0}
    assert config.train.lr == 1e-3 and config.train.lr_schedule == "cosine"
    assert config.train.beta1 == 0.9 and config.train.ema_decay == 0.0
    # The user's settings win over the objective's defaults ...
    config = ganforge.make_config(overrides={"model.name": "vae", "train.lr": 5e-4, "train.ema_decay": 0.99})
    assert config.train.lr == 5e-4 and config.train.ema_decay == 0.99 and config.train.lr_schedule == "cosine"
    # ... and the GAN keeps its own.
    config = ganforge.make_config()
    assert config.objective.name == "gan" and config.train.lr == 2e-4 and config.train.lr_schedule == "constant"


def test_cli_model_vae_dry_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--model", "vae", "--dry-run", "--out", "v"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["name"] == "vae" and config["objective"]["name"] == "vae"
    assert config["train"]["lr"] == 1e-3 and config["train"]["lr_schedule"] == "cosine"
    assert main(["train", "--model", "vae", "--lr", "5e-4", "--dry-run", "--out", "v"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["train"]["lr"] == 5e-4 and config["train"]["lr_schedule"] == "cosine"
    (tmp_path / "c.yaml").write_text("train:\n  lr_schedule: linear\n")
    assert main(["train", "--model", "vae", "--config", "c.yaml", "--dry-run", "--out", "v"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["train"]["lr_schedule"] == "linear" and config["train"]["lr"] == 1e-3
    assert list(tmp_path.iterdir()) == [tmp_path / "c.yaml"]  # a dry run writes nothing


def test_mse_reconstruction_trains(tmp_path):
    run = ganforge.train(overrides={**TINY_VAE, "objective.recon": "mse", "train.steps": 40, "log.every": 10,
                                    "out": str(tmp_path / "mse")})
    lines = records(run.dir)
    assert all(math.isfinite(line["loss_VAE"]) for line in lines)
    assert 0 < lines[-1]["recon"] < 256  # at most 1 per pixel on the [0, 1] scale
    assert lines[-1]["recon"] < lines[0]["recon"]
    assert checkpoint.read_meta(run.dir / "checkpoints" / "last.safetensors")["config"]["objective"]["recon"] == "mse"
    assert run.load().sample(4).shape == (4, 16, 16, 1)


def test_beta_zero_leaves_only_the_reconstruction(tmp_path):
    run = ganforge.train(overrides={**TINY_VAE, "objective.beta": 0.0, "train.steps": 20, "log.every": 5,
                                    "out": str(tmp_path / "b0")})
    for line in records(run.dir):
        assert line["loss_VAE"] == line["recon"]
        assert line["kl"] > 0  # still measured, just not weighted


def test_bad_vae_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="beta"):
        ganforge.make_config(overrides={"model.name": "vae", "objective.beta": -1.0})
    with pytest.raises(ConfigError, match="recon"):
        ganforge.make_config(overrides={"model.name": "vae", "objective.recon": "l1"})


def test_vae_objective_with_a_dcgan_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "r"
    with pytest.raises(ConfigError, match="encoder"):
        ganforge.train(overrides={**TINY_GAN, "objective.name": "vae", "train.steps": 2, "out": str(out)})
    assert not out.exists()
    assert main(["train", "--set", "objective.name=vae", "--steps", "2", "--quiet", "--out", str(out)]) == 2
    assert "model.name=vae" in error_line(capsys, "train")
    assert not out.exists()


def test_kl_to_standard_normal_known_values():
    zeros = torch.zeros(3, 5)
    assert torch.equal(kl_to_standard_normal(zeros, zeros), torch.zeros(3))
    mean = torch.tensor([[1.0, -2.0], [0.0, 0.5]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [-1.0, 2.0]])
    var = logvar.exp()
    expected = 0.5 * (mean ** 2 + var - 1 - logvar).sum(1)
    assert torch.allclose(kl_to_standard_normal(mean, logvar), expected)
    # Row 0 by hand: 0.5 * (1 + (4 + 4 - 1 - log 4)).
    assert float(kl_to_standard_normal(mean, logvar)[0]) == pytest.approx(0.5 * (1 + 7 - math.log(4.0)), rel=1e-6)
    # Against torch.distributions.
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    assert torch.allclose(kl_to_standard_normal(mean, logvar), torch.distributions.kl_divergence(q, p).sum(1))


def test_reconstruction_known_values():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 1, 3, 3, generator=g)
    target = torch.rand(4, 1, 3, 3, generator=g) * 2 - 1
    p = torch.sigmoid(2 * logits)
    t = (target + 1) / 2
    bce = -(t * p.log() + (1 - t) * (1 - p).log()).flatten(1).sum(1)
    assert torch.allclose(reconstruction(logits, target, "bce"), bce, atol=1e-5)
    assert torch.allclose(p, (torch.tanh(logits) + 1) / 2, atol=1e-6)  # sigmoid(2a) is the image
    mse = (((torch.tanh(logits) + 1) / 2 - t) ** 2).flatten(1).sum(1)
    assert torch.allclose(reconstruction(logits, target, "mse"), mse)
    # A perfect image costs nothing in squared error; a black target against white costs a pixel each.
    assert torch.allclose(reconstruction(torch.full((1, 1, 2, 2), 50.0), torch.ones(1, 1, 2, 2), "mse"),
                          torch.zeros(1))
    assert float(reconstruction(torch.full((1, 1, 2, 2), 50.0), -torch.ones(1, 1, 2, 2), "mse")) == \
        pytest.approx(4.0)
    assert float(reconstruction(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2), "bce")) == \
        pytest.approx(4 * math.log(2.0))


def test_vae_model_shapes():
    from ganforge.models import DataShape, build_models
    from ganforge.config import ModelConfig

    vae = build_models(ModelConfig(name="vae", args={"width": 8, "latent_dim": 6}), DataShape(16, 1))["G"]
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (5, 6)
    logits = vae.decode_logits(mean)
    assert logits.shape == (5, 1, 16, 16)
    assert torch.allclose(vae(mean), torch.tanh(logits))
    assert vae.latent_dim == 6 and vae.num_classes == 0


def assert_same_checkpoints(a_dir: Path, b_dir: Path) -> None:
    a, meta_a = checkpoint.load(a_dir / "checkpoints" / "last.safetensors")
    b, meta_b = checkpoint.load(b_dir / "checkpoints" / "last.safetensors")
    assert a.keys() == b.keys()
    assert any(k.startswith("optim.G.state") for k in a)
    assert not any(k.startswith("ema.") for k in a)  # the VAE trains without EMA
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert meta_a["step"] == meta_b["step"]
    assert [r["loss_VAE"] for r in records(a_dir)] == [r["loss_VAE"] for r in records(b_dir)]


def test_vae_resume_with_more_steps_is_exact(tmp_path):
    """8 steps straight vs 4 + 4 (a constant learning rate: the cosine decay depends on train.steps)."""
    common = {**TINY_VAE, "train.lr_schedule": "constant", "log.every": 2}
    straight = ganforge.train(overrides={**common, "train.steps": 8, "out": str(tmp_path / "straight")})
    ganforge.train(overrides={**common, "train.steps": 4, "out": str(tmp_path / "split")})
    resumed = ganforge.train(resume=tmp_path / "split", overrides={"train.steps": 8})
    assert straight.step == resumed.step == 8
    assert_same_checkpoints(straight.dir, resumed.dir)
    assert [r["step"] for r in records(resumed.dir)] == [2, 4, 6, 8]


def test_vae_resume_after_a_stop_is_exact(tmp_path, monkeypatch):
    """With the VAE's own defaults (cosine decay): stopped at step 4 of 8 (as by Ctrl-C), resumed."""
    common = {**TINY_VAE, "train.steps": 8, "log.every": 2}
    straight = ganforge.train(overrides={**common, "out": str(tmp_path / "straight")})

    class StopAfterFour:  # the loop's stop flag, as after a Ctrl-C during step 4
        def __init__(self):
            self.polls = 0

        @property
        def requested(self):
            self.polls += 1
            return self.polls >= 4

        def restore(self):
            pass

    from ganforge.training import trainer as trainer_module
    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "_StopFlag", StopAfterFour)
        stopped = ganforge.train(overrides={**common, "out": str(tmp_path / "split")})
    assert stopped.step == 4 and stopped.stop_reason == "interrupted"
    resumed = ganforge.train(resume=tmp_path / "split")
    assert resumed.step == 8
    assert_same_checkpoints(straight.dir, resumed.dir)


def test_sample_a_vae_run(vae_run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", str(vae_run), "-n", "9", "--seed", "1", "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.size == (3 * 18 + 2, 3 * 18 + 2)
    images = ganforge.load(vae_run).sample(9, seed=1)
    assert images.shape == (9, 16, 16, 1) and images.std() > 0
    assert np.array_equal(images, ganforge.load(vae_run).sample(9, seed=1, batch_size=4))


def test_reconstruct_writes_input_reconstruction_pairs(vae_run, tmp_path, capsys):
    out = tmp_path / "f.png"
    assert main(["reconstruct", str(vae_run), "-n", "8", "--out", str(out)]) == 0
    assert "8 input / reconstruction pairs" in capsys.readouterr().out
    with Image.open(out) as image:
        tiles = np.asarray(image)
    assert tiles.shape == (2 + 18, 2 + 16 * 18)  # one row of 16 tiles of 16 px with 2 px gaps
    inputs = load_dataset(DIGITS16, "test").images[:8, 0].numpy()
    recons = ganforge.load(vae_run).reconstruct(load_dataset(DIGITS16, "test").images[:8])[:, 0].numpy()
    for k in range(8):
        left, right = 2 + 2 * k * 18, 2 + (2 * k + 1) * 18
        assert np.array_equal(tiles[2:18, left:left + 16], inputs[k])
        assert np.array_equal(tiles[2:18, right:right + 16], recons[k])
    # Reconstructions look like their inputs more than like other images.
    err = lambda a, b: np.abs(a.astype(float) - b.astype(float)).mean()
    own = np.mean([err(inputs[k], recons[k]) for k in range(8)])
    other = np.mean([err(inputs[k], recons[(k + 1) % 8]) for k in range(8)])
    assert own < other


def test_reconstruct_default_out_and_api(vae_run, tmp_path):
    run = Path(shutil.copytree(vae_run, tmp_path / "vae"))
    assert main(["reconstruct", str(run), "-n", "3"]) == 0
    assert (run / "samples" / "reconstructions.png").is_file()
    model = ganforge.load(run)
    images = load_dataset(DIGITS16, "test").images[:5]
    again = model.reconstruct(images, batch_size=2)
    assert again.shape == images.shape and again.dtype == torch.uint8
    assert torch.equal(again, model.reconstruct(images))  # the posterior mean: deterministic


def test_reconstruct_needs_an_encoder(gan_run, tmp_path, capsys):
    out = tmp_path / "f.png"
    assert main(["reconstruct", str(gan_run), "-n", "8", "--out", str(out)]) == 2
    assert "encoder" in error_line(capsys, "reconstruct")
    assert not out.exists()
    assert main(["reconstruct", str(gan_run), "-n", "0"]) == 2
    assert "-n 0" in error_line(capsys, "reconstruct")


# --------------------------------------------------------------------------- classifiers

@pytest.fixture(scope="module")
def classifier(module_dir) -> Path:
    """The module's one classifier, trained through the CLI."""
    out = module_dir / "classifier"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANFORGE_CACHE", str(module_dir / "cache"))
        code = main(["classify", "train", "--steps", "300", "--resolution", "16", "--quiet",
                     "--set", "model.width=16", "--set", "model.hidden=64", "--set", "log.tensorboard=no",
                     "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def train_report(classifier) -> dict:
    """classify train's own evaluation on the test split, read before anything rewrites it."""
    return json.loads((classifier / "classify-eval.json").read_text())


def test_classifier_beats_chance_and_reports_everything(train_report, classifier):
    report = train_report
    assert report["split"] == "test" and report["data_set"] == "digits" and report["images"] == N_TEST
    assert report["accuracy"] > 0.6
    assert len(report["per_class"]) == 10
    assert [row["class"] for row in report["per_class"]] == [str(d) for d in range(10)]
    assert 0.5 < report["macro_f1"] <= 1
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == N_TEST
    assert report["accuracy"] == pytest.approx(np.trace(matrix) / N_TEST)
    assert_report_matches_matrix(report)
    with Image.open(classifier / "confusion.png") as image:
        image.load()
        assert image.mode == "RGB" and image.size[0] == image.size[1] > 100


def assert_report_matches_matrix(report: dict) -> None:
    """precision = diagonal / column sum, recall = diagonal / row sum, F1 their harmonic mean."""
    matrix = np.array(report["confusion_matrix"], dtype=float)
    for k, row in enumerate(report["per_class"]):
        tp, predicted, actual = matrix[k, k], matrix[:, k].sum(), matrix[k].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert row["precision"] == pytest.approx(precision), k
        assert row["recall"] == pytest.approx(recall), k
        assert row["f1"] == pytest.approx(f1), k
        assert row["support"] == actual
    assert report["macro_precision"] == pytest.approx(np.mean([r["precision"] for r in report["per_class"]]))
    assert report["macro_recall"] == pytest.approx(np.mean([r["recall"] for r in report["per_class"]]))
    assert report["macro_f1"] == pytest.approx(np.mean([r["f1"] for r in report["per_class"]]))


def test_classify_eval_on_the_train_split(classifier, train_report, capsys):
    assert main(["classify", "eval", str(classifier), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "digits (train, 1437 images)" in out and "confusion matrix" in out
    report = json.loads((classifier / "classify-eval.json").read_text())
    assert report["split"] == "train" and report["images"] == N_TRAIN
    assert np.array(report["confusion_matrix"]).sum() == N_TRAIN
    assert report["accuracy"] > 0.6
    assert_report_matches_matrix(report)
    # The same numbers as the API's.
    clf = load_classifier(classifier)
    api = clf.report(load_dataset(DIGITS16, "train"))
    assert api["confusion_matrix"] == report["confusion_matrix"]
    # And the test split again gives what `classify train` reported.
    assert main(["classify", "eval", str(classifier)]) == 0
    assert json.loads((classifier / "classify-eval.json").read_text())["confusion_matrix"] == \
        train_report["confusion_matrix"]


def test_classifier_run_is_not_a_generator(classifier, capsys):
    with pytest.raises(ConfigError, match="cnn"):
        ganforge.load(classifier)
    assert main(["sample", str(classifier), "-n", "2"]) == 2
    error_line(capsys, "sample")
    assert main(["reconstruct", str(classifier), "-n", "2"]) == 2
    error_line(capsys, "reconstruct")


def test_loading_a_classifier_as_a_generator_points_to_classify_eval(classifier):
    with pytest.raises(ConfigError, match="classify eval"):
        ganforge.load(classifier)


def test_classify_needs_labels(unlabelled_folder, classifier, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["classify", "train", "--dataset", f"folder:{unlabelled_folder}", "--steps", "5",
                 "--batch-size", "4", "--resolution", "16", "--quiet", "--out", str(out)]) == 2
    assert "label" in error_line(capsys, "classify")
    assert not out.exists()
    # Evaluating on an unlabelled set (it has no test split; its train split has no labels).
    assert main(["classify", "eval", str(classifier), "--dataset", f"folder:{unlabelled_folder}",
                 "--split", "train"]) == 2
    assert "no labels" in error_line(capsys, "classify")
    assert main(["classify", "eval", str(classifier), "--dataset", f"folder:{unlabelled_folder}"]) == 2
    assert "--split train" in error_line(capsys, "classify")


class ScriptedNet(torch.nn.Module):
    """A fake classifier: predicts the class written (as value * 20) into an image's first pixel."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x):
        predicted = ((x[:, 0, 0, 0] + 1) * 127.5 / 20).round().long()
        return F.one_hot(predicted, self.num_classes).float() * 10


def test_report_math_with_a_scripted_classifier():
    g = torch.Generator().manual_seed(0)
    n, names = 200, ["a", "b", "c", "d"]
    truth = torch.randint(0, 3, (n,), generator=g)                       # class "d" never occurs
    predicted = torch.tensor([0, 1, 3])[torch.randint(0, 3, (n,), generator=g)]  # "c" is never predicted
    keep = (torch.rand(n, generator=g) < 0.5) & (truth != 2)
    predicted = torch.where(keep, truth, predicted)                     # better than chance
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = (predicted * 20).to(torch.uint8)
    clf = TrainedClassifier(ScriptedNet(4), {"class_names": names, "shape": {"resolution": 4, "channels": 1}},
                            torch.device("cpu"))
    assert torch.equal(clf.predict(images, batch_size=7), predicted)
    report = clf.report(ImageSet(images, truth, names, "scripted"))

    matrix = np.zeros((4, 4), dtype=int)
    for t, p in zip(truth.tolist(), predicted.tolist()):
        matrix[t, p] += 1
    assert report["confusion_matrix"] == matrix.tolist()
    assert report["images"] == n
    assert report["accuracy"] == pytest.approx(float((truth == predicted).float().mean()))
    assert_report_matches_matrix(report)
    rows = {row["class"]: row for row in report["per_class"]}
    assert rows["c"]["precision"] == 0.0 and rows["c"]["recall"] == 0.0  # never predicted
    assert rows["d"]["support"] == 0 and rows["d"]["recall"] == 0.0 and rows["d"]["precision"] == 0.0
    # Against scikit-learn's own per-class numbers.
    from sklearn.metrics import f1_score, precision_score, recall_score
    for fn, key in ((precision_score, "precision"), (recall_score, "recall"), (f1_score, "f1")):
        expected = fn(truth.numpy(), predicted.numpy(), labels=[0, 1, 2, 3], average=None, zero_division=0)
        assert [row[key] for row in report["per_class"]] == pytest.approx(expected.tolist())
    text = format_report({**report, "data_set": "scripted", "split": "test"}, names)
    assert "macro avg" in text and "accuracy" in text and len(text.splitlines()) == 2 + 4 + 1 + 2 + 4
