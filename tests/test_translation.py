"""Unpaired translation (CycleGAN) end to end: the networks, the history pool of fakes, the
two-domain data sources, training that resumes exactly, the translator and `ganforge
translate`, and evaluation beside the identity and histogram-matching baselines.

Every network is tiny (4 channels, one residual block) and every run a few steps at 16 px:
these tests are about the plumbing (shapes, domains, pools, checkpoints, errors), not about
image quality.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
import ganforge.objectives.classifier
from ganforge.cli import main
from ganforge.config import DataConfig, ModelConfig
from ganforge.data import load_dataset
from ganforge.data.domains import STYLED_SEED, DomainPair, domain_config, stylise
from ganforge.data.imageset import ImageSet
from ganforge.errors import ConfigError, DataError
from ganforge.evaluate_translate import histogram_matched
from ganforge.inference import TrainedTranslator
from ganforge.models import DataShape, build_models
from ganforge.models.cyclegan import resnet_receptive_field
from ganforge.objectives.cyclegan import ImagePool
from ganforge.training.trainer import Trainer
from helpers import assert_resume_is_exact, error_line, torchrun

TRANSLATION = ("cyclegan",)   # the translation model families (test_models counts them)

QUIET = {"log.progress": False, "log.tensorboard": "no"}
SMALL = {"model.blocks": 1, "model.g_width": 4, "model.d_width": 4, "model.d_layers": 1}
TINY = {"task": "translate", **SMALL, "data.resolution": 16, "train.batch_size": 2,
        "objective.pool_size": 3, "train.steps": 3, **QUIET}
NET_ARGS = {"resnet": {"generator": "resnet", "blocks": 1, "g_width": 4, "d_width": 4, "d_layers": 1},
            "unet": {"generator": "unet", "depth": 2, "g_width": 4, "max_width": 8, "d_width": 4,
                     "d_layers": 1}}
TINY_CLASSIFIER_DEFAULTS = {"model.name": "cnn", "train.steps": 20, "log.every": 10,
                            "model.width": 4, "model.hidden": 8}


def build(generator: str, channels: int, resolution: int = 16, seed: int = 0, **args):
    torch.manual_seed(seed)
    config = ModelConfig(name="cyclegan", args={**NET_ARGS[generator], **args})
    return build_models(config, DataShape(resolution, channels, 0, channels))


def data_config(name: str, channels: int = 3, **extra) -> DataConfig:
    return DataConfig(name=name, resolution=16, channels=channels, **extra)


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("translation")


@pytest.fixture(scope="module")
def translate_run(module_dir) -> Path:
    """A tiny styled-digits run: gray digits (as RGB) <-> coloured, textured digits."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANFORGE_CACHE", str(module_dir / "cache"))
        return ganforge.train(overrides={**TINY, "out": str(module_dir / "run")}).dir


# 1. The networks.
@pytest.mark.parametrize("generator", ["resnet", "unet"])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_range_and_gradients(generator, channels):
    nets = build(generator, channels)
    G, D = nets["G"], nets["D"]
    assert (G.in_channels, G.channels) == (channels, channels)
    a, b = torch.randn(2, channels, 16, 12), torch.randn(2, channels, 16, 12)
    out = G(a, b)
    assert set(out) == {"fake_b", "fake_a", "rec_a", "rec_b", "idt_a", "idt_b"}
    for name, image in out.items():
        assert image.shape == (2, channels, 16, 12), name
        assert torch.isfinite(image).all() and image.abs().max() <= 1, name
    assert set(G(a, b, identity=False)) == {"fake_b", "fake_a", "rec_a", "rec_b"}
    score_a, score_b = D(out["fake_a"], out["fake_b"])
    assert score_a.shape == score_b.shape and score_a.shape[:2] == (2, 1)
    loss = sum((image * torch.randn_like(image)).sum() for image in out.values())
    loss = loss + (score_a * torch.randn_like(score_a)).sum() + (score_b * torch.randn_like(score_b)).sum()
    loss.backward()
    for net in (G, D):
        for pname, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, f"{pname} got a zero gradient"
    # translate runs one generator: the two directions are the two networks.
    with torch.no_grad():
        assert torch.equal(G.translate(a, "a2b"), G.ab(a))
        assert torch.equal(G.translate(b, "b2a"), G.ba(b))
        assert not torch.equal(G.translate(a, "a2b"), G.translate(a, "b2a"))


@pytest.mark.parametrize("generator", ["resnet", "unet"])
def test_translate_refuses_a_bad_direction_and_a_size_off_the_stride(generator):
    G = build(generator, 3)["G"]
    assert G.stride == 4
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ConfigError, match="a2b"):
        G.translate(x, "ab")
    with pytest.raises(ValueError, match="multiples of 4"):
        G.translate(torch.randn(1, 3, 18, 16), "a2b")
    with pytest.raises(ValueError, match="multiples of 4"):
        G(torch.randn(1, 3, 16, 14), torch.randn(1, 3, 16, 16))


@pytest.mark.parametrize("blocks", [1, 2])
def test_resnet_receptive_field_bounds_the_measured_one(blocks):
    """Without instance norm (which mixes the whole image), an output pixel depends on a
    window of the input: the extent of its nonzero input gradient. The stride-4 layers make
    the window depend on the pixel's phase, so the four phases are measured."""
    G = build("resnet", 1, blocks=blocks, norm="none")["G"].double()
    rf = resnet_receptive_field(blocks)
    assert G.receptive_field == rf
    side = 4 * ((rf + 40) // 4)                  # room on every side: no reflection folds back
    extents = []
    for centre in range(side // 2, side // 2 + 4):
        x = torch.randn(1, 1, side, side, dtype=torch.float64, requires_grad=True)
        G.ab(x)[0, 0, centre, centre].backward()
        reached = x.grad[0, 0].abs() > 0
        rows, cols = reached.any(1).nonzero().flatten(), reached.any(0).nonzero().flatten()
        extents += [int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)]
    assert max(extents) <= rf, (extents, rf)
    assert max(extents) == rf, (extents, rf)     # the bound is reached: the measurement can fail


def test_resnet_receptive_field_formula():
    assert resnet_receptive_field(9) == 169
    assert resnet_receptive_field(2) - resnet_receptive_field(1) == 16


# 2. The history pool of fakes.
def numbered(start: int, n: int) -> torch.Tensor:
    """n 1x2x2 images filled with start, start + 1, ...: each image is known by its value."""
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()


def ids(images: torch.Tensor) -> list[int]:
    return [int(v) for v in images[:, 0, 0, 0]]


def test_pool_of_size_zero_returns_its_input():
    pool = ImagePool(0, seed=0)
    images = numbered(0, 4)
    assert pool.query(images) is images
    assert pool.images is None and pool.count == 0


def test_pool_fills_then_swaps_for_earlier_images():
    size = 6
    pool = ImagePool(size, seed=0)
    assert ids(pool.query(numbered(0, 4))) == [0, 1, 2, 3]     # filling: as they came
    assert ids(pool.query(numbered(4, 2))) == [4, 5]
    assert pool.count == size
    assert sorted(ids(pool.images)) == list(range(size))
    stored, earlier, next_id = set(range(size)), 0, size
    for _ in range(10):
        new = numbered(next_id, 4)
        out = ids(pool.query(new))
        for new_id, got in zip(ids(new), out):
            # Either the new image itself, or one the pool held (which the new one replaced).
            assert got == new_id or got in stored, (got, new_id, stored)
            if got != new_id:
                earlier += 1
                stored.discard(got)
                stored.add(new_id)
        assert sorted(ids(pool.images)) == sorted(stored)
        assert pool.count == size
        next_id += 4
    # 40 images each swapped with probability 1/2: both kinds occur.
    assert 5 < earlier < 35


def test_pool_choices_follow_the_seed():
    def outputs(seed):
        pool = ImagePool(3, seed)
        return [ids(pool.query(numbered(4 * k, 4))) for k in range(8)]

    assert outputs(1) == outputs(1)
    assert outputs(1) != outputs(2)


@pytest.mark.parametrize("split", [0, 1, 3])   # empty, partly filled, full and swapping
def test_pool_state_round_trip_continues_like_an_uninterrupted_pool(split):
    batches = [numbered(3 * k, 3) for k in range(7)]
    straight = ImagePool(5, seed=3)
    expected = [ids(straight.query(batch)) for batch in batches]

    first = ImagePool(5, seed=3)
    for batch in batches[:split]:
        first.query(batch)
    state = first.state("pool.a")
    assert set(state) == {"pool.a.images", "pool.a.generator"}
    assert len(state["pool.a.images"]) == min(3 * split, 5)
    resumed = ImagePool(5, seed=99)                           # another seed: the state wins
    resumed.load(state, "pool.a", torch.device("cpu"))
    assert resumed.count == first.count
    assert [ids(resumed.query(batch)) for batch in batches[split:]] == expected[split:]


# 3. Two-domain data.
def test_styled_halves_share_the_classes_of_a_set_stored_class_by_class(tmp_path):
    """An npz whose images are sorted by class (as some MNIST copies are): both domains still
    get every class, in about equal shares."""
    labels = np.repeat(np.arange(4), 25)
    images = (np.arange(100)[:, None, None] % 7 * 30).astype(np.uint8).repeat(8, 1).repeat(8, 2)
    np.savez(tmp_path / "sorted.npz", x=images, y=labels)
    pair = load_dataset(data_config(f"styled:npz:{tmp_path / 'sorted.npz'}"))
    for side in (pair.a, pair.b):
        counts = torch.bincount(side.labels, minlength=4)
        assert counts.min() >= 6, counts


def test_styled_digits_are_two_disjoint_halves_with_labels():
    config = data_config("styled:digits")
    pair = load_dataset(config)
    assert isinstance(pair, DomainPair) and pair.source == "styled:digits"
    base = load_dataset(data_config("digits"))
    half = len(base) // 2
    assert len(pair.a) == len(pair.b) == len(pair) == half
    assert pair.a.images.shape == pair.b.images.shape == (half, 3, 16, 16)
    assert pair.num_classes == 0 and pair.class_names == base.class_names
    # A: one half of a fixed shuffle as it is; B: the other half, stylised; labels kept.
    order = torch.randperm(len(base), generator=torch.Generator().manual_seed(STYLED_SEED))
    first, second = order[:half], order[half:2 * half]
    assert torch.equal(pair.a.images, base.images[first])
    assert torch.equal(pair.a.labels, base.labels[first])
    assert torch.equal(pair.b.labels, base.labels[second])
    assert torch.equal(pair.b.images, stylise(base.images[second]))
    assert not set(first.tolist()) & set(second.tolist())
    assert not torch.equal(pair.a.labels, pair.b.labels)
    # A is gray repeated to RGB, B is coloured.
    a, b = pair.a.images.int(), pair.b.images.int()
    assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 1], a[:, 2])
    assert (b[:, 0] - b[:, 2]).abs().float().mean() > 20
    assert (b[:, 0] - b[:, 1]).abs().float().mean() > 5
    # The test split is two halves of digits' own test split.
    test = load_dataset(config, "test")
    assert len(test) == len(load_dataset(data_config("digits"), "test")) // 2


def test_stylise_is_fixed_and_needs_the_ink():
    gray = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    gray[1, :, 2:6, 3:5] = 255
    styled = stylise(gray)
    assert styled.shape == (2, 3, 8, 8) and styled.dtype == torch.uint8
    assert torch.equal(styled, stylise(gray.expand(2, 3, 8, 8)))   # RGB input: its luma
    changed = (styled[0] != styled[1]).any(0)
    assert changed[2:6, 3:5].all() and not changed[:2].any()      # only the ink differs


def write_pngs(folder: Path, n: int, mode: str, size=(20, 24), seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i}.png")
    return folder


@pytest.fixture
def cyclegan_folder(tmp_path) -> Path:
    root = tmp_path / "horse2zebra"
    write_pngs(root / "trainA", 3, "RGB", seed=0)
    write_pngs(root / "trainB", 4, "L", seed=1)
    write_pngs(root / "testA", 2, "RGB", seed=2)
    write_pngs(root / "testB", 2, "L", seed=3)
    return root


def test_a_cyclegan_folder_is_two_domains(cyclegan_folder):
    config = data_config(f"folder:{cyclegan_folder}")
    train = load_dataset(config, "train")
    assert isinstance(train, DomainPair)
    assert (len(train.a), len(train.b), len(train)) == (3, 4, 3)
    assert train.a.images.shape == (3, 3, 16, 16) and train.b.images.shape == (4, 3, 16, 16)
    b = train.b.images
    assert torch.equal(b[:, 0], b[:, 1])                      # gray domain B repeated to RGB
    assert not torch.equal(train.a.images[:, 0], train.a.images[:, 1])
    test = load_dataset(config, "test")
    assert isinstance(test, DomainPair) and (len(test.a), len(test.b)) == (2, 2)
    assert not torch.equal(test.a.images, train.a.images[:2])


def test_a_cyclegan_folder_without_testA_has_no_test_split(cyclegan_folder):
    shutil.rmtree(cyclegan_folder / "testA")
    config = data_config(f"folder:{cyclegan_folder}")
    assert isinstance(load_dataset(config, "train"), DomainPair)
    with pytest.raises(DataError, match="testA"):
        load_dataset(config, "test")


def test_name_b_pairs_two_ordinary_sources(unlabelled_folder):
    pair = load_dataset(data_config("digits", name_b=f"folder:{unlabelled_folder}"))
    assert isinstance(pair, DomainPair)
    digits = load_dataset(data_config("digits"))
    assert torch.equal(pair.a.images, digits.images)
    assert torch.equal(pair.a.labels, digits.labels)
    assert len(pair.b) == 12 and pair.b.labels is None
    assert pair.b.images.shape == (12, 3, 16, 16)
    assert pair.source == f"digits | folder:{unlabelled_folder}"


def test_domain_source_gives_one_domain():
    pair = load_dataset(data_config("styled:digits"))
    b = load_dataset(data_config("domain:b:styled:digits"))
    a = load_dataset(data_config("domain:a:styled:digits"))
    assert isinstance(b, ImageSet) and isinstance(a, ImageSet)
    assert torch.equal(b.images, pair.b.images) and torch.equal(b.labels, pair.b.labels)
    assert torch.equal(a.images, pair.a.images)
    # domain_config names each domain of a run's data section as a data set of its own.
    assert domain_config(data_config("styled:digits"), "b").name == "domain:b:styled:digits"
    both = domain_config(data_config("digits", name_b="mnist"), "b")
    assert (both.name, both.name_b) == ("mnist", "")


@pytest.mark.parametrize("name, name_b, words", [
    ("styled:digits", "digits", ["already holds two domains", "name_b"]),
    ("digits", "styled:digits", ["holds two domains itself"]),
    ("domain:c:digits", "", ["domain:a:NAME"]),
    ("domain:a", "", ["domain:a:NAME"]),
    ("domain:a:digits", "", ["one domain"]),
])
def test_two_domain_names_that_cannot_work(name, name_b, words):
    with pytest.raises(DataError) as error:
        load_dataset(data_config(name, name_b=name_b))
    for word in words:
        assert word in str(error.value), str(error.value)


# 4. Training.
def test_cyclegan_resumes_exactly(tmp_path):
    overrides = {**TINY, "train.schedule_steps": 4}
    tensors = assert_resume_is_exact(tmp_path, overrides, steps=4, split=2)
    for key in ("objective.pool.a.images", "objective.pool.b.images", "objective.pool.a.generator",
                "objective.pool.b.generator", "sampler.a.order", "sampler.a.generator",
                "sampler.b.order", "sampler.b.generator"):
        assert key in tensors, key
    assert tensors["objective.pool.a.images"].shape == (3, 3, 16, 16)   # pool_size 3, full
    assert any(k.startswith("nets.G.ab.") for k in tensors) and any(k.startswith("nets.D.b.") for k in tensors)


def test_two_ordinary_sources_train_and_resume_only_with_the_same_domain_b(tmp_path, unlabelled_folder):
    other = tmp_path / "other"
    shutil.copytree(unlabelled_folder, other)
    overrides = {**TINY, "data.name": "digits", "data.name_b": f"folder:{unlabelled_folder}",
                 "data.channels": 1, "train.steps": 1, "out": str(tmp_path / "run")}
    run = ganforge.train(overrides=overrides)
    assert ganforge.load(run.dir).translate(np.zeros((8, 12), np.uint8), "b2a").shape == (8, 12, 1)
    with pytest.raises(ConfigError, match="data.name_b was .*now"):
        ganforge.train(resume=run.dir, overrides={"data.name_b": f"folder:{other}", "train.steps": 2})
    assert ganforge.train(resume=run.dir, overrides={"train.steps": 2}).step == 2


def test_lr_hold_keeps_the_full_rate_first(tmp_path):
    def rates(hold: float) -> list[float]:
        config = ganforge.make_config(overrides={**TINY, "train.steps": 10, "train.lr_schedule": "linear",
                                                 "train.lr_hold": hold, "out": str(tmp_path / f"hold{hold}")})
        trainer = Trainer(config)
        out = []
        for step in (0, 3, 5, 6, 8, 10):
            trainer.step = step
            trainer._set_learning_rates()
            lrs = {g["lr"] for opt in trainer.optimizers.values() for g in opt.param_groups}
            assert len(lrs) == 1
            out.append(lrs.pop() / config.train.lr)
        return out

    assert rates(0.5) == pytest.approx([1, 1, 1, 0.8, 0.4, 0])
    assert rates(0.0) == pytest.approx([1, 0.7, 0.5, 0.4, 0.2, 0])


def test_translate_task_defaults_hold_half_the_schedule():
    config = ganforge.make_config(overrides={"task": "translate"})
    assert config.data.name == "styled:digits" and config.model.name == "cyclegan"
    assert config.train.lr_schedule == "linear" and config.train.lr_hold == 0.5
    with pytest.raises(ConfigError, match="lr_hold"):
        ganforge.make_config(overrides={"task": "translate", "train.lr_hold": 1.0})


@pytest.mark.parametrize("overrides, pattern", [
    ({"model.name": "dcgan", "model.g_width": 4, "model.d_width": 4, "data.name": "styled:digits",
      "data.resolution": 32, "train.batch_size": 2, **QUIET}, "two domains.*--task translate"),
    ({**TINY, "data.name": "digits"}, "translates between two domains.*--dataset-b"),
    ({**TINY, "data.degrade": "noise:25"}, "data.degrade.*drop data.degrade"),
])
def test_translation_shapes_that_cannot_work(overrides, pattern, tmp_path):
    with pytest.raises(ConfigError, match=pattern):
        ganforge.train(overrides={**overrides, "out": str(tmp_path / "run")})
    assert not (tmp_path / "run").exists()


# 5. Inference.
def test_load_gives_a_translator_for_any_size(translate_run):
    model = ganforge.load(translate_run)
    assert isinstance(model, TrainedTranslator)
    assert model.task == "translate" and model.channels == 3 and model.step == TINY["train.steps"]
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (13, 17), dtype=np.uint8)
    rgb = rng.integers(0, 256, (10, 6, 3), dtype=np.uint8)
    outs = {}
    for direction in ("a2b", "b2a"):
        outs[direction] = model.translate(gray, direction)
        assert outs[direction].shape == (13, 17, 3) and outs[direction].dtype == np.uint8
        out = model.translate(rgb, direction)
        assert out.shape == (10, 6, 3) and out.dtype == np.uint8
        assert model.translate(gray, direction, tile=8).shape == (13, 17, 3)
        assert model.translate(rgb[..., :1], direction, tile=8).shape == (10, 6, 3)
    assert not np.array_equal(outs["a2b"], outs["b2a"])
    listed = model.translate([gray, rgb], "a2b")
    assert [o.shape for o in listed] == [(13, 17, 3), (10, 6, 3)]
    assert np.array_equal(listed[0], outs["a2b"])
    with pytest.raises(ConfigError, match="a2b"):
        model.translate(gray, "ab")


def test_translate_batch_matches_translate(translate_run):
    model = ganforge.load(translate_run)
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 3, 16, 16), dtype=np.uint8))
    out = model.translate_batch(images, "b2a", batch_size=2)
    assert out.shape == (3, 3, 16, 16) and out.dtype == torch.uint8
    one = model.translate(images[1].permute(1, 2, 0).numpy(), "b2a")
    assert np.array_equal(out[1].permute(1, 2, 0).numpy(), one)


def translate_cli(run: Path, *args) -> int:
    return main(["translate", str(run), *map(str, args), "--quiet"])


def test_translate_cli_writes_one_png_per_input_and_never_overwrites(translate_run, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (13, 17), dtype=np.uint8), "L").save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 256, (10, 6, 3), dtype=np.uint8), "RGB").save(folder / "rgb.png")
    out = tmp_path / "out"
    assert translate_cli(translate_run, folder, "--direction", "b2a", "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gray.png", "rgb.png"]
    with Image.open(out / "gray.png") as image:
        assert image.size == (17, 13)
    with Image.open(out / "rgb.png") as image:
        assert image.size == (6, 10) and image.mode == "RGB"
    first = (out / "rgb.png").read_bytes()
    capsys.readouterr()
    assert translate_cli(translate_run, folder, "--direction", "a2b", "--out", out) == 2
    assert "--force" in error_line(capsys, "translate")
    assert (out / "rgb.png").read_bytes() == first
    assert translate_cli(translate_run, folder, "--direction", "a2b", "--out", out, "--force",
                         "--tile", 8) == 0
    assert (out / "rgb.png").read_bytes() != first
    with Image.open(out / "gray.png") as image:
        assert image.size == (17, 13)


def test_edit_refuses_a_translation_run(translate_run, tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(tmp_path / "a.png")
    assert main(["edit", str(translate_run), str(tmp_path / "a.png"), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 2
    assert "ganforge translate" in error_line(capsys, "edit")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# 6. Evaluation.
def test_evaluate_a_translation_run(translate_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ganforge.objectives.classifier, "CLASSIFY_DEFAULTS", dict(TINY_CLASSIFIER_DEFAULTS))
    run = Path(shutil.copytree(translate_run, tmp_path / "run"))
    assert main(["evaluate", str(run), "-n", "20"]) == 0
    assert "histogram_matching" in capsys.readouterr().out
    report = json.loads((run / "eval.json").read_text())
    assert report["task"] == "translate"
    assert report["setup"]["domains"] == {"a": "domain:a:styled:digits", "b": "domain:b:styled:digits"}
    for direction in ("a2b", "b2a"):
        part = report[direction]
        assert {"model", "identity", "histogram_matching", "floor"} <= set(part)
        assert part["n"] == 20
        for row in ("model", "identity", "histogram_matching", "floor"):
            assert math.isfinite(part[row]["fid"]), (direction, row)
            assert 0 <= part[row]["class_kept"] <= 1, (direction, row)
        assert 0 <= part["model"]["round_trip_class_kept"] <= 1
        assert math.isfinite(part["model"]["round_trip_psnr"])
        # Three different sets of images were scored.
        fids = [part[row]["fid"] for row in ("model", "identity", "histogram_matching")]
        assert len(set(fids)) == 3, fids
    # One feature classifier per domain, each trained on its own domain.
    extractors = report["setup"]["extractors"]
    assert extractors["a"] != extractors["b"] and all("classifier" in e for e in extractors.values())


def test_histogram_matching_takes_the_reference_histogram():
    rng = np.random.default_rng(0)
    dark = torch.from_numpy(rng.integers(0, 100, (1, 3, 16, 16), dtype=np.uint8))
    bright = torch.from_numpy(rng.integers(120, 256, (1, 3, 16, 16), dtype=np.uint8))
    bright[0, 1] = torch.from_numpy(rng.integers(200, 220, (16, 16), dtype=np.uint8))
    out = histogram_matched(dark, bright, seed=0)
    assert out.shape == dark.shape and out.dtype == torch.uint8
    for c in range(3):
        made, wanted = out[0, c].flatten().sort().values.float(), bright[0, c].flatten().sort().values.float()
        before = dark[0, c].flatten().sort().values.float()
        assert (made - wanted).abs().mean() < 2, c
        assert (before - wanted).abs().mean() > 50, c
    # The order of the pixels is kept: the brightest input pixel stays the brightest.
    assert out[0, 0].flatten().argmax() in (dark[0, 0].flatten() == dark[0, 0].max()).nonzero().flatten()
    # Many images, one reference each, drawn from several.
    several = histogram_matched(dark.expand(4, 3, 16, 16), torch.cat([bright, 255 - bright]), seed=1)
    assert several.shape == (4, 3, 16, 16)


# Fixes found while these tests were written.
def test_evaluation_runs_the_model_in_tiles_when_asked(translate_run, monkeypatch):
    from ganforge.evaluate_translate import evaluate_translation
    monkeypatch.setattr(ganforge.objectives.classifier, "CLASSIFY_DEFAULTS", dict(TINY_CLASSIFIER_DEFAULTS))
    seen = []
    original = TrainedTranslator.translate_tensor

    def spy(self, x, direction, tile=None, overlap=None, progress=None):
        seen.append(tile)
        return original(self, x, direction, tile, overlap, progress)

    monkeypatch.setattr(TrainedTranslator, "translate_tensor", spy)
    run = Path(shutil.copytree(translate_run, translate_run.parent / "tiled-run"))
    evaluate_translation(run, n=4, tile=8, quiet=True)
    assert seen and 8 in seen


def test_a_smaller_pool_on_resume_keeps_the_oldest_images():
    pool = ImagePool(5, seed=0)
    pool.query(numbered(0, 5))
    smaller = ImagePool(2, seed=0)
    smaller.load(pool.state("pool.a"), "pool.a", torch.device("cpu"))
    assert smaller.count == 2 and ids(smaller.images) == [0, 1]
    out = smaller.query(numbered(10, 3))                     # the smaller pool runs on
    assert out.shape == (3, 1, 2, 2) and smaller.count == 2
    assert set(ids(out)) <= {0, 1, 10, 11, 12}


def test_gray_with_alpha_arrays_lose_the_alpha(translate_run):
    model = ganforge.load(translate_run)
    gray_alpha = np.random.default_rng(0).integers(0, 256, (8, 12, 2), dtype=np.uint8)
    out = model.translate(gray_alpha, "a2b")
    expected = model.translate(gray_alpha[..., 0], "a2b")
    assert out.shape == (8, 12, 3) and np.array_equal(out, expected)


def test_an_unlabelled_domain_asks_for_inception_weights_only(tmp_path, cyclegan_folder):
    run = ganforge.train(overrides={**TINY, "data.name": f"folder:{cyclegan_folder}",
                                    "out": str(tmp_path / "run")}).dir
    with pytest.raises(DataError, match="has no labels") as caught:
        from ganforge.evaluate_translate import evaluate_translation
        evaluate_translation(run, n=4, quiet=True)
    assert "--inception-weights" in str(caught.value) and "--classifier" not in str(caught.value)


# Two processes under torchrun (gloo): both generators and discriminators stay in step on the
# two ranks, each rank keeps its own pool, and a resumed 2-rank run continues exactly.
DIST_WORKER = '''
import sys

from safetensors.torch import save_file

import ganforge
from ganforge import distributed
from ganforge.training import Trainer

out, overrides = sys.argv[1], sys.argv[2:]
Trainer(ganforge.make_config(overrides=[*overrides, "train.steps=4", f"out={out}/straight"])).run()
Trainer(ganforge.make_config(overrides=[*overrides, "train.steps=2", f"out={out}/split"])).run()
resumed = Trainer(ganforge.make_config(resume=f"{out}/split", overrides=["train.steps=4"]), resume=True)
resumed.run()
save_file({f"{name}.{key}": value.detach().clone().contiguous() for name, net in resumed.nets.items()
           for key, value in net.state_dict().items()}, f"{out}/rank{distributed.rank()}.safetensors")
distributed.teardown()
'''


@pytest.mark.dist
def test_two_ranks_stay_in_step_keep_their_own_pools_and_resume_exactly(tmp_path):
    from safetensors.torch import load_file

    worker = tmp_path / "cyclegan_worker.py"
    worker.write_text(DIST_WORKER)
    settings = [f"{key}={value}" for key, value in {**TINY, "train.batch_size": 4, "train.schedule_steps": 4,
                                                    "train.device": "cpu", "train.precision": "fp32",
                                                    "log.tensorboard": "no"}.items() if key != "train.steps"]
    done = torchrun(worker, tmp_path, settings)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rank{k}.safetensors") for k in (0, 1)]
    assert any(key.startswith("G.ab.") for key in ranks[0]) and any(key.startswith("D.b.") for key in ranks[0])
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    straight = ganforge.checkpoint.load(tmp_path / "straight" / "checkpoints" / "last.safetensors")[0]
    split = ganforge.checkpoint.load(tmp_path / "split" / "checkpoints" / "last.safetensors")[0]
    assert straight.keys() == split.keys()
    for key in straight:
        assert torch.equal(straight[key], split[key]), key
    # Each rank pooled its own fakes (half of the global batch each).
    mine, theirs = straight["objective.pool.a.images"], straight["objective.pool.a.images.rank1"]
    assert mine.shape == theirs.shape and len(mine) == 3 and not torch.equal(mine, theirs)
