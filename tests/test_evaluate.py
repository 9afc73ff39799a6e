"""Evaluating generators (`ganforge evaluate`, `Evaluator`, `log.eval_every`): the report's
sections, the real-data floor, determinism, the cached feature classifier and the `best`
checkpoint. One small digit classifier (trained once for the module) gives the features;
generators are tiny DCGANs on the bundled digits at 16 px."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import ganforge
import ganforge.objectives.classifier
import ganforge.evaluate
from ganforge import checkpoint
from ganforge.cli import main
from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.data.imageset import conform, to_float
from ganforge.errors import DataError
from ganforge.evaluate import ClassifierFeatures, Evaluator, build_extractor, evaluate_run, feature_classifier
from ganforge.training import trainer as trainer_module
from helpers import error_line
from test_collapse import PerClass

QUIET = {"log.progress": False, "log.tensorboard": "no"}
TINY_GAN = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 16, "data.resolution": 16, **QUIET}
# Runs that evaluate as they train; the health controller would roll back a barely trained
# GAN (its samples cover few classes), so it is off: these tests are about eval and `best`.
EVAL_GAN = {**TINY_GAN, "health.enabled": False}
DIGITS16 = DataConfig(name="digits", resolution=16)
N_HELDOUT = 360      # the digits test split
N_REAL = 1437        # the digits training split
METRICS = ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "diversity_ratio",
           "is", "classes_present", "class_entropy")
# A tiny feature classifier for the automatic cache path (the real default trains 1500 steps).
TINY_CLASSIFIER_DEFAULTS = {"model.name": "cnn", "train.steps": 20, "log.every": 10,
                            "model.width": 8, "model.hidden": 32}


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evaluate")


@pytest.fixture(scope="module")
def classifier(module_dir) -> Path:
    """The module's one feature classifier (a small CNN, 300 steps on digits at 16 px)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANFORGE_CACHE", str(module_dir / "cache"))
        run = ganforge.train(overrides={"model.name": "cnn", "model.width": 8, "model.hidden": 32,
                                        "train.steps": 300, "data.resolution": 16, **QUIET,
                                        "out": str(module_dir / "classifier")})
    return run.dir


@pytest.fixture(scope="module")
def gan_run(module_dir) -> Path:
    """A barely trained DCGAN (4 steps)."""
    return ganforge.train(overrides={**TINY_GAN, "train.steps": 4, "out": str(module_dir / "gan")}).dir


@pytest.fixture(scope="module")
def report(gan_run, classifier, module_dir) -> dict:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANFORGE_CACHE", str(module_dir / "cache"))
        return evaluate_run(gan_run, classifier=classifier, quiet=True)


@pytest.fixture
def use_module_classifier(monkeypatch, classifier):
    """Make the automatic feature classifier (used by log.eval_every) the module's one."""
    monkeypatch.setattr(ganforge.evaluate, "feature_classifier", lambda data, quiet=False: classifier)
    return classifier


def copy_run(run: Path, tmp_path: Path) -> Path:
    """A private copy, for tests that (re)write eval.json."""
    return Path(shutil.copytree(run, tmp_path / run.name))


def eval_lines(run: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if "eval_fid" in line]


def meta(run: Path, name: str = "last") -> dict:
    return checkpoint.read_meta(run / "checkpoints" / f"{name}.safetensors")


class RealImages(torch.nn.Module):
    """A stand-in "generator" that ignores z and returns given real images in order."""

    def __init__(self, images: torch.Tensor, num_classes: int = 0, by_label: dict | None = None):
        super().__init__()
        self.images = to_float(images)
        self.latent_dim, self.resolution, self.channels = 4, images.shape[-1], images.shape[1]
        self.num_classes, self.by_label = num_classes, by_label
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # generate() asks for a parameter's device
        self.position = 0

    def forward(self, z, labels=None):
        if labels is not None:  # conditional: an image of the requested class
            return torch.stack([self.by_label[int(label)] for label in labels])
        out = self.images[self.position:self.position + len(z)]
        self.position += len(z)
        return out


# The report of `evaluate`.
def test_report_has_model_and_floor_sections_with_finite_metrics(report, gan_run):
    for section in ("model", "floor"):
        for key in METRICS:
            assert key in report[section], (section, key)
            value = report[section][key]
            assert isinstance(value, float) and math.isfinite(value), (section, key, value)
    written = json.loads((gan_run / "eval.json").read_text())
    assert written["model"] == report["model"] and written["floor"] == report["floor"]
    assert not list(gan_run.glob(".*tmp*"))


def test_report_setup_records_how_it_was_measured(report, gan_run, classifier):
    setup = report["setup"]
    assert setup["n_samples"] == setup["n_heldout"] == N_HELDOUT  # default n: the held-out count
    assert setup["n_real"] == N_REAL
    assert setup["seed"] == 0 and setup["step"] == 4 and setup["checkpoint"] == "last"
    assert setup["extractor"].startswith("classifier:cnn") and str(classifier) in setup["extractor"]
    assert setup["heldout"] == "test split" and setup["data_set"] == "digits"
    assert "note" not in setup


def test_floor_is_far_below_a_barely_trained_model(report):
    model, floor = report["model"], report["floor"]
    assert floor["fid"] * 20 < model["fid"]
    assert floor["kid"] < model["kid"]
    assert floor["precision"] > 0.5 and floor["recall"] > 0.5
    assert floor["coverage"] > model["coverage"]
    assert 0.8 < floor["diversity_ratio"] < 1.2 and model["diversity_ratio"] < floor["diversity_ratio"]
    assert 0 <= floor["classes_present"] <= 1 and 0 <= floor["class_entropy"] <= 1


def test_same_seed_same_numbers_other_seed_differs(gan_run, classifier, tmp_path):
    run = copy_run(gan_run, tmp_path)
    first = evaluate_run(run, classifier=classifier, seed=3, quiet=True)
    calls = []
    again = evaluate_run(run, classifier=classifier, seed=3, quiet=True,
                         progress=lambda done, n: calls.append((done, n)))
    assert calls and calls[-1][0] == calls[-1][1] == first["setup"]["n_samples"]  # a bar for the sampling
    other = evaluate_run(run, classifier=classifier, seed=4, quiet=True)
    assert first["model"] == again["model"] and first["floor"] == again["floor"]
    assert first["setup"]["seed"] == 3 and other["setup"]["seed"] == 4
    assert other["model"]["fid"] != first["model"]["fid"]
    assert other["floor"]["fid"] == first["floor"]["fid"]  # the floor does not depend on the noise


def test_cli_prints_a_table_and_notes_another_sample_size(gan_run, classifier, tmp_path, capsys):
    run = copy_run(gan_run, tmp_path)
    assert main(["evaluate", str(run), "-n", "50", "--classifier", str(classifier)]) == 0
    out = capsys.readouterr().out
    assert "real floor" in out
    for key in ("fid", "kid", "precision", "coverage", "class_entropy"):
        assert any(line.startswith(key) for line in out.splitlines()), key
    report = json.loads((run / "eval.json").read_text())
    assert report["setup"]["n_samples"] == 50 and report["setup"]["n_heldout"] == N_HELDOUT
    assert "note" in report["setup"] and "n differs" in report["setup"]["note"]
    # n equal to the held-out count needs no note.
    assert main(["evaluate", str(run), "-n", str(N_HELDOUT), "--classifier", str(classifier)]) == 0
    assert "note" not in json.loads((run / "eval.json").read_text())["setup"]


@pytest.mark.parametrize("n", [2, 3])
def test_cli_too_few_samples_is_a_clear_error(gan_run, classifier, tmp_path, capsys, n):
    run = copy_run(gan_run, tmp_path)
    code = main(["evaluate", str(run), "-n", str(n), "--classifier", str(classifier)])
    assert code in (0, 2)
    if code == 2:
        assert "Traceback" not in capsys.readouterr().err


def test_cli_errors_exit_2(gan_run, tmp_path, capsys):
    assert main(["evaluate", str(gan_run), "-n", "1"]) == 2
    assert "-n 1" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nowhere"), "--classifier", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err


# Scoring in another resolution's feature space (`--resolution`).
def test_another_resolution_scores_the_resized_samples_in_that_space(gan_run, tmp_path, cache, monkeypatch, capsys):
    """A 16-pixel run scored in the 8-pixel space: its samples resized the way real images are
    (`conform`), the 8-pixel classifier, real images and floor, written beside eval.json."""
    monkeypatch.setattr(ganforge.objectives.classifier, "CLASSIFY_DEFAULTS", dict(TINY_CLASSIFIER_DEFAULTS))
    run = copy_run(gan_run, tmp_path)
    (run / "eval.json").unlink(missing_ok=True)
    report = evaluate_run(run, quiet=True, resolution=8)
    assert not (run / "eval.json").exists()
    assert json.loads((run / "eval-8px.json").read_text())["model"] == report["model"]
    assert "drawn at 16 px, resized to 8 px" in report["setup"]["resolution"]
    assert "digits-8px-1ch-" in report["setup"]["extractor"]
    # The same numbers as the 8-pixel space's own evaluator gives the resized samples.
    digits8 = DataConfig(name="digits", resolution=8)
    space = Evaluator(digits8, build_extractor(digits8, quiet=True))
    own = Evaluator(DIGITS16, build_extractor(DIGITS16, quiet=True))
    images, _ = own.sample(ganforge.load(run).net)
    assert images.shape[-1] == 16
    expected = space.score_samples(conform(images, 8, 1))
    assert report["model"]["fid"] == pytest.approx(expected["fid"]) and report["floor"] == space.floor
    # The run's own resolution is the plain evaluation; the CLI says which space it scored in.
    assert main(["evaluate", str(run), "--resolution", "16", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "space:" not in out and f"wrote {run}/eval.json" in out
    assert main(["evaluate", str(run), "--resolution", "8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "space: samples drawn at 16 px, resized to 8 px" in out and f"wrote {run}/eval-8px.json" in out


def test_another_resolution_errors_exit_2(gan_run, classifier, tmp_path, capsys):
    run = copy_run(gan_run, tmp_path)
    assert main(["evaluate", str(run), "--resolution", "2"]) == 2
    assert "resolution 2: a feature space needs at least 4 pixels" in error_line(capsys, "evaluate")
    assert main(["evaluate", str(run), "--resolution", "8", "--classifier", str(classifier)]) == 2
    assert "give one or the other" in error_line(capsys, "evaluate")
    assert not list(run.glob("eval-*.json"))


# The Evaluator on its own.
def test_real_heldout_images_score_the_floor(classifier):
    evaluator = Evaluator(DIGITS16, ClassifierFeatures(classifier))
    heldout = load_dataset(DIGITS16, "test")
    assert evaluator.n == len(heldout) == N_HELDOUT
    scores = evaluator(RealImages(heldout.images))
    for key in METRICS:
        assert scores[key] == pytest.approx(evaluator.floor[key], rel=1e-6, abs=1e-9), key
    # ... far from a generator of noise.
    noise = evaluator(RealImages(torch.randint(0, 256, heldout.images.shape, dtype=torch.uint8)))
    assert noise["fid"] > 10 * scores["fid"] + 1e-3
    assert noise["precision"] < scores["precision"]


def test_conditional_generator_gets_class_accuracy(classifier):
    extractor = ClassifierFeatures(classifier)
    evaluator = Evaluator(DIGITS16, extractor, n=100)
    heldout = load_dataset(DIGITS16, "test")
    first = {c: int((heldout.labels == c).nonzero()[0]) for c in range(10)}
    by_label = {c: to_float(heldout.images[i]) for c, i in first.items()}
    scores = evaluator(RealImages(heldout.images, num_classes=10, by_label=by_label))
    # The classifier's verdict on the one image shown per class, each shown as often as the
    # real class prior asks (about 10 times in 100).
    right = [int(extractor.classifier.predict(heldout.images[i:i + 1])[0]) == c for c, i in first.items()]
    counts = torch.bincount(evaluator.sample_labels(10), minlength=10)
    assert scores["sample_accuracy"] == pytest.approx(sum(int(k) * r for k, r in zip(counts, right)) / 100)
    assert scores["per_class_accuracy"] == [float(r) for r in right]
    assert "sample_accuracy" in evaluator.floor and 0.5 < evaluator.floor["sample_accuracy"] <= 1.0


def test_evaluate_a_vae_run(classifier, tmp_path):
    run = ganforge.train(overrides={"model.name": "vae", "model.width": 8, "train.batch_size": 32,
                                    "data.resolution": 16, "train.steps": 30, **QUIET,
                                    "out": str(tmp_path / "vae")})
    report = evaluate_run(run.dir, n=100, classifier=classifier, quiet=True)
    assert all(math.isfinite(report["model"][key]) for key in METRICS)
    assert report["setup"]["n_samples"] == 100 and "note" in report["setup"]


# Evaluation during training: log.eval_every and the `best` checkpoint.
def test_eval_every_logs_scores_and_keeps_the_best(tmp_path, use_module_classifier, monkeypatch):
    run = ganforge.train(overrides={**EVAL_GAN, "train.steps": 15, "log.eval_every": 5, "log.every": 100,
                                    "out": str(tmp_path / "r")}).dir
    lines = eval_lines(run)
    assert [line["step"] for line in lines] == [5, 10, 15]
    for line in lines:
        for key in ("fid", "kid", "precision", "recall", "coverage", "is", "class_entropy"):
            assert math.isfinite(line[f"eval_{key}"]), key
    best_line = min(lines, key=lambda line: line["eval_fid"])
    best = meta(run, "best")
    assert best["step"] == best_line["step"]
    assert best["best_fid"] == pytest.approx(best_line["eval_fid"], abs=1e-6)
    assert meta(run)["best_fid"] == best["best_fid"] and meta(run)["step"] == 15
    # `evaluate --checkpoint best` scores that checkpoint.
    report = evaluate_run(run, checkpoint="best", classifier=use_module_classifier, quiet=True)
    assert report["setup"]["step"] == best_line["step"] and report["setup"]["checkpoint"] == "best"
    assert report["model"]["fid"] == pytest.approx(best_line["eval_fid"], abs=1e-5)

    # Resumed, every later evaluation is worse: `best` and the recorded best FID stay.
    best_bytes = (run / "checkpoints" / "best.safetensors").read_bytes()
    real_call = Evaluator.__call__

    def worse(self, net):
        scores = real_call(self, net)
        return {**scores, "fid": scores["fid"] + 1000.0}

    monkeypatch.setattr(Evaluator, "__call__", worse)
    ganforge.train(resume=run, overrides={"train.steps": 25})
    lines = eval_lines(run)
    assert [line["step"] for line in lines] == [5, 10, 15, 20, 25]
    assert all(line["eval_fid"] > 1000 for line in lines[3:])
    assert (run / "checkpoints" / "best.safetensors").read_bytes() == best_bytes
    assert meta(run)["step"] == 25 and meta(run)["best_fid"] == best["best_fid"]


def test_best_survives_a_crash_right_after_an_evaluation(tmp_path, use_module_classifier, monkeypatch):
    real_step = trainer_module.Trainer._train_step

    def crash_at_step_7(self, sums):
        if self.step == 7:
            raise RuntimeError("simulated crash")
        return real_step(self, sums)

    monkeypatch.setattr(trainer_module.Trainer, "_train_step", crash_at_step_7)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ganforge.train(overrides={**EVAL_GAN, "train.steps": 10, "log.eval_every": 5,
                                  "log.checkpoint_every": 5, "out": str(tmp_path / "r")})
    run = tmp_path / "r"
    best_bytes = (run / "checkpoints" / "best.safetensors").read_bytes()
    assert meta(run, "best")["step"] == 5 and meta(run)["step"] == 5
    monkeypatch.setattr(trainer_module.Trainer, "_train_step", real_step)
    real_call = Evaluator.__call__
    monkeypatch.setattr(Evaluator, "__call__",
                        lambda self, net: {**real_call(self, net), "fid": 1e6})
    ganforge.train(resume=run)
    assert meta(run, "best")["step"] == 5
    assert (run / "checkpoints" / "best.safetensors").read_bytes() == best_bytes


@pytest.mark.parametrize("ema", [0.0, 0.999])
def test_evaluating_during_training_does_not_change_the_training(tmp_path, use_module_classifier, ema):
    common = {**EVAL_GAN, "train.steps": 10, "train.ema_decay": ema}
    plain = ganforge.train(overrides={**common, "out": str(tmp_path / "plain")}).dir
    scored = ganforge.train(overrides={**common, "log.eval_every": 5, "out": str(tmp_path / "scored")}).dir
    assert len(eval_lines(scored)) == 2 and not eval_lines(plain)
    a, _ = checkpoint.load(plain / "checkpoints" / "last.safetensors")
    b, _ = checkpoint.load(scored / "checkpoints" / "last.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_classify_train_with_eval_every_is_not_a_crash(tmp_path, use_module_classifier, capsys):
    code = main(["classify", "train", "--steps", "10", "--eval-every", "5", "--resolution", "16",
                 "--quiet", "--set", "model.width=8", "--set", "log.tensorboard=no",
                 "--out", str(tmp_path / "c")])
    assert code in (0, 2)


# The cached feature classifier.
def test_feature_classifier_is_trained_once_cached_and_keyed_by_resolution(gan_run, tmp_path, cache,
                                                                           monkeypatch, capsys):
    monkeypatch.setattr(ganforge.objectives.classifier, "CLASSIFY_DEFAULTS", dict(TINY_CLASSIFIER_DEFAULTS))
    run = copy_run(gan_run, tmp_path)
    assert not cache.exists()
    assert main(["evaluate", str(run)]) == 0
    assert "training a feature classifier" in capsys.readouterr().out
    folders = list((cache / "classifiers").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("digits-16px-1ch-")
    last = folders[0] / "checkpoints" / "last.safetensors"
    meta = checkpoint.read_meta(last)
    assert meta["step"] == TINY_CLASSIFIER_DEFAULTS["train.steps"]
    assert meta["config"]["train"]["precision"] == "fp32"   # the same feature space on every CPU
    first_mtime = last.stat().st_mtime_ns
    extractor = json.loads((run / "eval.json").read_text())["setup"]["extractor"]
    assert str(folders[0]) in extractor

    # The second time it is reused, not retrained.
    assert main(["evaluate", str(run)]) == 0
    assert "training a feature classifier" not in capsys.readouterr().out
    assert last.stat().st_mtime_ns == first_mtime
    assert json.loads((run / "eval.json").read_text())["setup"]["extractor"] == extractor
    assert feature_classifier(DIGITS16, quiet=True) == folders[0]

    # Another resolution is another classifier.
    other = feature_classifier(DataConfig(name="digits", resolution=32), quiet=True)
    assert other != folders[0] and other.name.startswith("digits-32px-1ch-")
    assert sorted(p.name[:12] for p in (cache / "classifiers").iterdir()) == ["digits-16px-", "digits-32px-"]
    assert checkpoint.read_meta(other / "checkpoints" / "last.safetensors")["shape"]["resolution"] == 32
    assert last.stat().st_mtime_ns == first_mtime


def test_a_killed_feature_classifier_training_is_recovered(cache, monkeypatch):
    monkeypatch.setattr(ganforge.objectives.classifier, "CLASSIFY_DEFAULTS", dict(TINY_CLASSIFIER_DEFAULTS))
    real_step = trainer_module.Trainer._train_step

    def killed_at_step_3(self, sums):
        if self.step == 3:
            raise RuntimeError("simulated kill")
        return real_step(self, sums)

    monkeypatch.setattr(trainer_module.Trainer, "_train_step", killed_at_step_3)
    with pytest.raises(RuntimeError, match="simulated kill"):
        feature_classifier(DIGITS16, quiet=True)
    monkeypatch.setattr(trainer_module.Trainer, "_train_step", real_step)
    run_dir = feature_classifier(DIGITS16, quiet=True)
    assert checkpoint.read_meta(run_dir / "checkpoints" / "last.safetensors")["step"] == \
        TINY_CLASSIFIER_DEFAULTS["train.steps"]


def test_a_stopped_feature_classifier_training_is_continued(cache, monkeypatch):
    monkeypatch.setattr(ganforge.objectives.classifier, "CLASSIFY_DEFAULTS", dict(TINY_CLASSIFIER_DEFAULTS))

    class CtrlC:  # the loop's stop flag, as after a first Ctrl-C: finish the step, save, stop
        requested = True

        def restore(self):
            pass

    monkeypatch.setattr(trainer_module, "_StopFlag", CtrlC)
    stopped = feature_classifier(DIGITS16, quiet=True)
    assert checkpoint.read_meta(stopped / "checkpoints" / "last.safetensors")["step"] == 1
    monkeypatch.undo()
    monkeypatch.setenv("GANFORGE_CACHE", str(cache))
    monkeypatch.setattr(ganforge.objectives.classifier, "CLASSIFY_DEFAULTS", dict(TINY_CLASSIFIER_DEFAULTS))
    run_dir = feature_classifier(DIGITS16, quiet=True)
    assert run_dir == stopped
    assert checkpoint.read_meta(run_dir / "checkpoints" / "last.safetensors")["step"] == \
        TINY_CLASSIFIER_DEFAULTS["train.steps"]


# Data sets without labels.


def test_unlabelled_folder_needs_inception_weights_or_a_classifier(unlabelled_folder, tmp_path, cache, capsys):
    data = DataConfig(name=f"folder:{unlabelled_folder}", resolution=16)
    with pytest.raises(DataError, match="--inception-weights"):
        build_extractor(data)
    run = ganforge.train(overrides={**TINY_GAN, "train.batch_size": 4, "train.steps": 2,
                                    "data.name": f"folder:{unlabelled_folder}", "out": str(tmp_path / "r")})
    assert main(["evaluate", str(run.dir)]) == 2
    err = capsys.readouterr().err
    assert "--inception-weights" in err and "label" in err and "Traceback" not in err
    assert not (run.dir / "eval.json").exists()
    assert not (cache / "classifiers").exists()  # nothing was trained


def test_per_class_coverage_tells_a_varied_class_from_a_single_image(classifier):
    evaluator = Evaluator(DIGITS16, ClassifierFeatures(classifier), n=200)
    heldout = load_dataset(DIGITS16, "test")
    varied = evaluator(PerClass({c: heldout.images[heldout.labels == c] for c in range(10)}))["per_class_coverage"]
    first = {c: to_float(heldout.images[int((heldout.labels == c).nonzero()[0])]) for c in range(10)}
    single = evaluator(RealImages(heldout.images, num_classes=10, by_label=first))["per_class_coverage"]
    assert len(varied) == len(single) == 10
    assert min(varied) > 0.2
    assert max(single) < min(varied)


def test_a_class_subset_gets_a_feature_classifier_of_its_own():
    """data.classes renumbers the classes 0..k-1: a classifier of all ten would score the
    samples of a 5-9 run against the wrong names."""
    from ganforge.config import DataConfig
    from ganforge.evaluate import classifier_slug

    every = DataConfig(name="mnist", resolution=28)
    upper = DataConfig(name="mnist", resolution=28, classes=[5, 6, 7, 8, 9])
    assert classifier_slug(every, False) != classifier_slug(upper, False)
    assert classifier_slug(upper, False) == classifier_slug(DataConfig(name="mnist", resolution=28,
                                                                       classes=[5, 6, 7, 8, 9]), False)
    assert classifier_slug(upper, False) != classifier_slug(DataConfig(name="mnist", resolution=28,
                                                                       classes=[9, 8, 7, 6, 5]), False)
