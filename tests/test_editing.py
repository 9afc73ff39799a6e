"""Image-to-image editing end to end: every task trains, resumes exactly, loads as an editor
and edits images of any size through the API and the `ganforge edit` command; evaluation
compares it with the classical baselines; two ranks under torchrun stay in step.

Every run is tiny (a few steps of 4-channel networks at 16 px) and trains in well under a
second: these tests are about the plumbing (shapes, modes, untouched pixels, tiling, resume,
errors), not about image quality. Photo tasks train on `patches:FOLDER` of a few synthetic
PNGs instead of the bundled photos, which take a second to load.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

import ganforge
import ganforge.objectives.classifier
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.inference import TrainedEditor
from ganforge.inference import editor as editor_module
from ganforge.inference.tiles import choose_overlap
from ganforge.tasks import TASKS
from helpers import assert_resume_is_exact, error_line

QUIET = {"log.progress": False, "log.tensorboard": "no"}
TINY = {"data.resolution": 16, "train.batch_size": 4, "train.steps": 3, **QUIET}
# Per model family: the smallest networks that still have every part (D included).
SMALL_D = {"model.d_width": 4, "model.d_layers": 1}
FAMILY = {"unet": {"model.g_width": 4, "model.depth": 2, **SMALL_D},
          "srresnet": {"model.n_blocks": 1, "model.width": 4, **SMALL_D},
          "dncnn": {"model.depth": 3, "model.width": 4, **SMALL_D}}
EDIT_TASKS = [name for name in TASKS.names() if name not in ("generate", "translate")]  # translate: test_translation.py
PREVIEW_COLUMNS = 8   # columns of an editing preview (input, output and target rows)
MID_GRAY = 128        # what a hole (0.0) looks like in a uint8 preview
TINY_CLASSIFIER_DEFAULTS = {"model.name": "cnn", "train.steps": 20, "log.every": 10,
                            "model.width": 4, "model.hidden": 8}
WORKER = Path(__file__).with_name("dist_worker.py")


# Data and runs.
def picture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth RGB uint8 picture (gradients and a few flat rectangles), photo-like enough for
    the classical denoisers to help."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * np.sin(3 * (x + y))], -1)
    for _ in range(3):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        image[top:top + height // 3, left:left + width // 3] = rng.uniform(0, 1, 3)
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_pictures(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (height, width) in enumerate(sizes):
        Image.fromarray(picture(height, width, seed + i)).save(folder / f"{i:02d}.png")
    return folder


def task_overrides(task: str, out: Path, patches: Path | None = None, family: str | None = None,
                   **extra) -> dict:
    """A tiny config for `task`: its own model family (or `family`) at its smallest; photo
    tasks on `patches` (synthetic PNGs); super-resolution at x2."""
    defaults = TASKS.get(task).defaults
    family = family or defaults["model"]["name"]
    overrides = {"task": task, **TINY, "model.name": family, **FAMILY[family], "out": str(out)}
    if defaults["data"]["name"].startswith("photos"):
        overrides["data.name"] = f"patches:{patches}"
    if task == "super-resolve":
        overrides["data.degrade"] = "downscale:2"
    return {**overrides, **extra}


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("editing")


@pytest.fixture(scope="module")
def patches(module_dir) -> Path:
    """Synthetic RGB pictures of assorted sizes: three in train/, two in test/."""
    root = module_dir / "pictures"
    write_pictures(root / "train", [(40, 52), (37, 45), (64, 33)])
    write_pictures(root / "test", [(31, 41), (27, 35)], seed=10)
    return root


@pytest.fixture(scope="module")
def inpaint_run(module_dir) -> Path:
    """Inpainting on digits (gray, U-Net of stride 4), with the adversarial term."""
    return ganforge.train(overrides=task_overrides("inpaint", module_dir / "inpaint")).dir


@pytest.fixture(scope="module")
def replace_run(module_dir) -> Path:
    return ganforge.train(overrides=task_overrides("replace", module_dir / "replace")).dir


@pytest.fixture(scope="module")
def sr_run(module_dir, patches) -> Path:
    """x2 super-resolution (SRResNet with two blocks, so tiles need real context)."""
    return ganforge.train(overrides=task_overrides("super-resolve", module_dir / "sr", patches,
                                                   **{"model.n_blocks": 2})).dir


@pytest.fixture(scope="module")
def denoise_run(module_dir, patches) -> Path:
    return ganforge.train(overrides=task_overrides("denoise", module_dir / "denoise", patches)).dir


@pytest.fixture(scope="module")
def dncnn_run(module_dir, patches) -> Path:
    """Denoising with DnCNN (stride 1, no global operation: tiles must equal the whole)."""
    return ganforge.train(overrides=task_overrides("denoise", module_dir / "dncnn", patches, "dncnn")).dir


@pytest.fixture(scope="module")
def dcgan_run(module_dir) -> Path:
    """A generation run, which `ganforge edit` must refuse."""
    overrides = {"model.g_width": 4, "model.d_width": 4, **TINY, "train.steps": 1}
    return ganforge.train(overrides={**overrides, "out": str(module_dir / "dcgan")}).dir


@pytest.fixture
def tiny_classifier(monkeypatch):
    monkeypatch.setattr(ganforge.objectives.classifier, "CLASSIFY_DEFAULTS",
                        dict(TINY_CLASSIFIER_DEFAULTS))


def edit_cli(run: Path, *args) -> int:
    return main(["edit", str(run), *map(str, args), "--quiet"])


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# 1. Every editing task trains, previews and loads as an editor.
@pytest.mark.parametrize("task", EDIT_TASKS)
def test_every_task_trains_previews_and_loads(task, tmp_path, patches):
    run = ganforge.train(overrides=task_overrides(task, tmp_path / "run", patches))
    assert run.step == TINY["train.steps"]
    needs = TASKS.get(task).needs
    scale = 2 if task == "super-resolve" else 1
    gray_out = task in ("inpaint", "replace")           # digits
    gray_in = gray_out or task in ("colorize", "pix2pix")

    # The preview: input, output and target rows of 8 columns, at the output's size.
    preview = np.asarray(Image.open(run.dir / "samples" / "final.png"))
    side = TINY["data.resolution"]
    columns = PREVIEW_COLUMNS
    assert preview.shape[:2] == (3 * side + 4 * 2, columns * side + (columns + 1) * 2)
    assert preview.ndim == (2 if gray_out else 3)
    rows = [preview[2 + r * (side + 2):2 + r * (side + 2) + side] for r in range(3)]
    shown, made, target = rows
    assert not np.array_equal(shown, target)             # the input is degraded
    if "mask" in needs:
        # Outside the hole (wherever the input is not the hole's mid-gray) output = input = target.
        kept = shown != MID_GRAY
        assert kept.mean() > 0.3
        assert np.array_equal(made[kept], shown[kept]) and np.array_equal(target[kept], shown[kept])

    # The editor knows what the task needs.
    editor = ganforge.load(run.dir)
    assert isinstance(editor, TrainedEditor) and editor.task == task
    assert editor.scale == scale
    assert editor.needs_mask == ("mask" in needs)
    assert editor.num_classes == (10 if "class" in needs else 0)
    assert (editor.in_channels, editor.channels) == (1 if gray_in else 3, 1 if gray_out else 3)
    if editor.num_classes:
        assert len(editor.class_names) == 10

    # And edits an image of an odd size end to end.
    image = picture(13, 19, 0)
    mask = np.zeros((13, 19), bool)
    mask[3:9, 4:12] = True
    out = editor.edit(image, mask=mask if editor.needs_mask else None,
                      cls=7 if editor.num_classes else None)
    assert out.dtype == np.uint8 and out.shape == (13 * scale, 19 * scale, editor.channels)


# 2. Exact resume.
def test_inpaint_with_adversarial_term_resumes_exactly(tmp_path):
    overrides = task_overrides("inpaint", tmp_path, **{"objective.adv_weight": 0.05})
    tensors = assert_resume_is_exact(tmp_path, overrides, steps=4, split=2)
    assert any(k.startswith("optim.D.state") for k in tensors)
    assert any(k.startswith("optim.G.state") for k in tensors)
    assert "sampler.order" in tensors                     # an epoch sampler over the digits


def test_super_resolve_on_patches_resumes_exactly(tmp_path, patches):
    # Noise after the downscale: the inputs are random, drawn from the step's seed. The task's
    # cosine schedule follows train.steps, which the split run changes: a constant one here.
    overrides = task_overrides("super-resolve", tmp_path, patches, **{
        "data.degrade": "downscale:2+noise:10", "train.lr_schedule": "constant"})
    tensors = assert_resume_is_exact(tmp_path, overrides, steps=4, split=2)
    assert "sampler.generator" in tensors and "sampler.order" not in tensors  # crops
    assert not any(k.startswith("optim.D.") for k in tensors)                 # L1 only


# 3. Untouched pixels, any size.
@pytest.mark.parametrize("height, width", [(23, 37), (6, 9), (2, 3)])
def test_inpaint_keeps_every_pixel_outside_the_hole(inpaint_run, height, width):
    editor = ganforge.load(inpaint_run)
    rng = np.random.default_rng(height)
    image = rng.integers(0, 256, (height, width), dtype=np.uint8)
    mask = np.zeros((height, width), bool)
    top, left = height // 4, width // 4
    mask[top:top + max(2, height // 2), left:left + max(2, width // 2)] = True
    out = editor.edit(image, mask=mask)
    assert out.shape == (height, width, 1) and out.dtype == np.uint8
    assert np.array_equal(out[~mask, 0], image[~mask])
    assert not np.array_equal(out[mask, 0], image[mask])   # the hole was filled by the model


def test_inpaint_a_list_of_images_of_different_sizes(inpaint_run):
    editor = ganforge.load(inpaint_run)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size, dtype=np.uint8) for size in ((23, 37), (11, 5))]
    masks = [rng.random(image.shape) < 0.3 for image in images]
    outs = editor.edit(images, mask=masks)
    for image, mask, out in zip(images, masks, outs):
        assert out.shape == (*image.shape, 1)
        assert np.array_equal(out[~mask, 0], image[~mask])
        # One at a time gives the same result.
        assert np.array_equal(editor.edit(image, mask=mask), out)


def test_replace_keeps_every_pixel_outside_the_region(replace_run):
    editor = ganforge.load(replace_run)
    image = np.random.default_rng(1).integers(0, 256, (21, 27), dtype=np.uint8)
    mask = np.zeros(image.shape, bool)
    mask[2:12, 14:25] = True
    outs = [editor.edit(image, mask=mask, cls=c) for c in (3, editor.class_names[7])]
    for out in outs:
        assert out.shape == (21, 27, 1)
        assert np.array_equal(out[~mask, 0], image[~mask])
    assert not np.array_equal(outs[0], outs[1])             # the class is used


# 4. Padding.
def test_super_resolve_pads_odd_sizes(sr_run):
    editor = ganforge.load(sr_run)
    image = picture(13, 21, 3)
    assert editor.edit(image).shape == (26, 42, 3)
    assert editor.edit(image[..., 0]).shape == (26, 42, 3)  # gray in: repeated to the RGB model
    assert editor.edit(image, tile=8).shape == (26, 42, 3)


# 5. Tiles equal the whole image.
@pytest.mark.parametrize("run_name", ["sr_run", "dncnn_run"])
def test_tiles_equal_the_whole_image(run_name, request, monkeypatch):
    editor = ganforge.load(request.getfixturevalue(run_name))
    source = torch.from_numpy(picture(23, 29, 5)).permute(2, 0, 1)[None].float() / 127.5 - 1
    source += 0.1 * torch.randn(source.shape, generator=torch.Generator().manual_seed(0))
    whole = editor.edit_tensor(source)
    assert whole.shape == (1, 3, 23 * editor.scale, 29 * editor.scale)

    # Record the overlap the editor chooses by default.
    used = []
    real = editor_module.run_tiled

    def spy(fn, x, tile, overlap, *args, **kwargs):
        used.append(overlap)
        return real(fn, x, tile, overlap, *args, **kwargs)

    monkeypatch.setattr(editor_module, "run_tiled", spy)
    for tile in (8, 10):                                    # neither divides 23 or 29
        tiled = editor.edit_tensor(source, tile=tile)
        assert tiled.shape == whole.shape
        assert (tiled - whole).abs().max() < 1e-4, tile
    assert used == [choose_overlap(editor.net.receptive_field)] * 2 and used[0] > 0
    # Without context the seams show: the comparison above can fail.
    seams = editor.edit_tensor(source, tile=8, overlap=0)
    assert (seams - whole).abs().max() > 1e-3


# 6. `ganforge train --task`, `ganforge tasks`, `ganforge models`.
def test_train_scale_sets_the_downscale(capsys):
    assert main(["train", "--task", "super-resolve", "--scale", "2", "--dry-run"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["task"] == "super-resolve"
    assert printed["data"]["degrade"] == "downscale:2"
    assert printed["model"]["name"] == "srresnet" and printed["objective"]["name"] == "image2image"
    # Super-resolution's own schedule (measured in the README's editing table), not denoising's.
    assert (printed["train"]["lr"], printed["train"]["steps"]) == (5e-4, 3300)
    assert main(["train", "--task", "denoise", "--dry-run"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (printed["train"]["lr"], printed["train"]["steps"]) == (5e-4, 4000)
    assert printed["model"]["name"] == "unet" and printed["model"]["residual"] is True


def test_train_task_defaults_are_overridable(capsys):
    assert main(["train", "--task", "denoise", "--degrade", "noise:10", "--model", "unet",
                 "--set", "model.depth=3", "--dry-run"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["degrade"] == "noise:10" and printed["data"]["name"] == "photos"
    assert printed["model"]["name"] == "unet" and printed["model"]["depth"] == 3


def test_train_scale_with_degrade_is_an_error(capsys, tmp_path):
    assert main(["train", "--task", "super-resolve", "--scale", "2", "--degrade", "noise:5",
                 "--out", str(tmp_path / "run")]) == 2
    line = error_line(capsys)
    assert "--scale" in line and "--degrade" in line
    assert not (tmp_path / "run").exists()


def test_train_unknown_task_lists_the_tasks(capsys):
    assert main(["train", "--task", "inpaintt", "--dry-run"]) == 2
    line = error_line(capsys)
    assert "inpaintt" in line
    for name in TASKS.names():
        assert name in line


def test_tasks_and_models_are_listed(capsys):
    assert main(["tasks"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == TASKS.names()
    assert main(["models"]) == 0
    rows = {line.split()[0]: line.split()[1]
            for line in capsys.readouterr().out.splitlines() if line.strip()}
    for name in ("unet", "srresnet", "dncnn"):
        assert rows[name] == "image2image"


# 7. `ganforge edit`.
def write_mixed_inputs(folder: Path) -> dict[str, tuple[int, int]]:
    """Gray, RGB, RGBA (alpha 100) and 16-bit gray PNGs of odd sizes: name -> (width, height)."""
    folder.mkdir(parents=True)
    Image.fromarray(picture(9, 13, 0)[..., 0], "L").save(folder / "gray.png")
    Image.fromarray(picture(7, 11, 1), "RGB").save(folder / "rgb.png")
    rgba = np.concatenate([picture(5, 9, 2), np.full((5, 9, 1), 100, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    deep = (picture(11, 7, 3)[..., 0].astype(np.uint16) * 257 + 129)
    Image.fromarray(deep).save(folder / "deep.png")
    assert Image.open(folder / "deep.png").mode in ("I;16", "I")
    return {"gray": (13, 9), "rgb": (11, 7), "rgba": (9, 5), "deep": (7, 11)}


def test_edit_a_folder_of_every_mode(sr_run, tmp_path, capsys):
    sizes = write_mixed_inputs(tmp_path / "in")
    assert edit_cli(sr_run, tmp_path / "in", "--out", tmp_path / "out", "--scale", 2) == 0
    assert "wrote 4 image(s)" in capsys.readouterr().out
    assert files_in(tmp_path / "out") == sorted(f"{name}.png" for name in sizes)
    modes = {}
    for name, (width, height) in sizes.items():
        with Image.open(tmp_path / "out" / f"{name}.png") as image:
            assert image.size == (2 * width, 2 * height), name
            modes[name] = image.mode
            if name == "rgba":
                assert np.all(np.asarray(image)[..., 3] == 100)
            if name == "deep":  # 16 bits of the model's output, not 8 bits scaled up
                assert np.any(np.asarray(image).astype(np.int64) % 257)
    assert modes["gray"] == "L" and modes["rgb"] == "RGB" and modes["rgba"] == "RGBA"
    assert modes["deep"] in ("I;16", "I")


def test_edit_tiles_through_the_cli_match_the_whole_image(sr_run, tmp_path):
    Image.fromarray(picture(19, 23, 4)).save(tmp_path / "a.png")
    assert edit_cli(sr_run, tmp_path / "a.png", "--out", tmp_path / "whole") == 0
    assert edit_cli(sr_run, tmp_path / "a.png", "--out", tmp_path / "tiled", "--tile", 8) == 0
    whole = np.asarray(Image.open(tmp_path / "whole" / "a.png")).astype(int)
    tiled = np.asarray(Image.open(tmp_path / "tiled" / "a.png")).astype(int)
    assert whole.shape == (38, 46, 3) and np.abs(whole - tiled).max() <= 1


def gray_image(path: Path, height: int = 23, width: int = 37) -> np.ndarray:
    pixels = np.random.default_rng(2).integers(0, 256, (height, width), dtype=np.uint8)
    Image.fromarray(pixels, "L").save(path)
    return pixels


ERRORS = [  # run fixture, options after RUN INPUT (INPUT: a 37x23 gray PNG), words of the line
    ("inpaint_run", ["--mask", "{small_mask}"], ["5x5", "37x23"]),
    ("inpaint_run", [], ["--mask", "--box"]),
    ("inpaint_run", ["--box", "30,4,10,5"], ["--box", "37x23"]),
    ("inpaint_run", ["--box", "1,2,3"], ["--box", "x,y,w,h"]),
    ("replace_run", ["--box", "2,2,8,8"], ["--class"]),
    ("replace_run", ["--box", "2,2,8,8", "--class", "cat"], ["'cat'"]),
    ("replace_run", ["--box", "2,2,8,8", "--class", "10"], ["10", "0..9"]),
    ("sr_run", ["--scale", "4"], ["--scale 4", "x2"]),
    ("sr_run", ["--box", "2,2,8,8"], ["no mask"]),
    ("dcgan_run", [], ["ganforge sample"]),
]


@pytest.mark.parametrize("run_name, options, words", ERRORS)
def test_edit_errors_are_one_line(run_name, options, words, request, tmp_path, capsys):
    run = request.getfixturevalue(run_name)
    gray_image(tmp_path / "in.png")
    Image.fromarray(np.full((5, 5), 255, np.uint8)).save(tmp_path / "small.png")
    options = [o.format(small_mask=tmp_path / "small.png") for o in options]
    assert edit_cli(run, tmp_path / "in.png", "--out", tmp_path / "out", *options) == 2
    line = error_line(capsys, "edit")
    for word in words:
        assert word in line, line
    assert files_in(tmp_path / "out") == []


def test_edit_missing_input(inpaint_run, tmp_path, capsys):
    missing = tmp_path / "nowhere.png"
    assert edit_cli(inpaint_run, missing, "--box", "1,1,2,2", "--out", tmp_path / "out") == 2
    assert "nowhere.png" in error_line(capsys, "edit")
    assert files_in(tmp_path / "out") == []


def test_edit_writes_the_readable_files_and_names_the_unreadable_one(inpaint_run, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    gray_image(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert edit_cli(inpaint_run, folder, "--box", "1,1,4,4", "--out", tmp_path / "out") == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganforge edit: error: ")
    assert "broken.png" in lines[0] and "1 of 2" in lines[0]
    assert "wrote 1 image(s)" in captured.out
    assert files_in(tmp_path / "out") == ["good.png"]


def test_edit_never_overwrites_without_force(inpaint_run, tmp_path, capsys):
    pixels = gray_image(tmp_path / "a.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"mine")
    args = [tmp_path / "a.png", "--box", "3,3,9,9", "--out", tmp_path / "out"]
    assert edit_cli(inpaint_run, *args) == 2
    assert "--force" in error_line(capsys, "edit")
    assert (tmp_path / "out" / "a.png").read_bytes() == b"mine"
    assert edit_cli(inpaint_run, *args, "--force") == 0
    written = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert written.shape == pixels.shape
    outside = np.ones(pixels.shape, bool)
    outside[3:12, 3:12] = False
    assert np.array_equal(written[outside], pixels[outside])


def test_sample_refuses_an_editing_run(inpaint_run, tmp_path, capsys):
    assert main(["sample", str(inpaint_run), "--out", str(tmp_path / "grid.png")]) == 2
    assert "ganforge edit" in error_line(capsys, "sample")
    assert not (tmp_path / "grid.png").exists()


# 8. Masks from files.
def test_mask_files_give_the_box_result(inpaint_run, tmp_path):
    pixels = gray_image(tmp_path / "a.png")
    hole = np.zeros(pixels.shape, bool)
    hole[4:13, 5:17] = True                                # --box 5,4,12,9
    Image.fromarray(np.where(hole, 255, 0).astype(np.uint8), "L").save(tmp_path / "white.png")
    colours = np.random.default_rng(3).integers(0, 256, (*pixels.shape, 3), dtype=np.uint8)
    rgba = np.concatenate([colours, np.where(hole, 0, 255).astype(np.uint8)[..., None]], -1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "erased.png")
    results = {}
    options = {"box": ["--box", "5,4,12,9"], "white": ["--mask", tmp_path / "white.png"],
               "erased": ["--mask", tmp_path / "erased.png"]}
    for name, option in options.items():
        assert edit_cli(inpaint_run, tmp_path / "a.png", "--out", tmp_path / name, *option) == 0
        results[name] = np.asarray(Image.open(tmp_path / name / "a.png"))
    assert np.array_equal(results["white"], results["box"])
    assert np.array_equal(results["erased"], results["box"])
    assert np.array_equal(results["box"][~hole], pixels[~hole])
    assert not np.array_equal(results["box"][hole], pixels[hole])


# 9. Evaluation beside the classical baselines.
def test_evaluate_inpaint(inpaint_run, tmp_path, tiny_classifier, capsys):
    run = Path(shutil.copytree(inpaint_run, tmp_path / "run"))
    assert main(["evaluate", str(run), "-n", "16"]) == 0
    assert "inpaint_biharmonic" in capsys.readouterr().out
    report = json.loads((run / "eval.json").read_text())
    assert report["task"] == "inpaint" and report["setup"]["images"] == 16
    assert set(report["baselines"]) == {"inpaint_biharmonic", "input"}
    for row in [report["model"], *report["baselines"].values()]:
        assert {"psnr", "psnr_y", "ssim", "psnr_hole"} <= set(row)
        assert all(math.isfinite(v) for v in row.values())
        assert row["psnr"] == pytest.approx(row["psnr_y"])   # gray: Y is the image
        assert 0 <= row["ssim"] <= 1 and row["psnr_hole"] < row["psnr"]
    # A mid-gray hole is a poor guess on digits; harmonic filling is far better.
    baselines = report["baselines"]
    assert baselines["inpaint_biharmonic"]["psnr_hole"] > baselines["input"]["psnr_hole"] + 3
    assert report["changed_outside_hole"] == 0
    assert {"model", "inpaint_biharmonic", "real floor"} <= set(report["feature_scores"])


@pytest.fixture(scope="module")
def replace_report(replace_run, module_dir) -> dict:
    run = Path(shutil.copytree(replace_run, module_dir / "replace-eval"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ganforge.objectives.classifier, "CLASSIFY_DEFAULTS",
                   dict(TINY_CLASSIFIER_DEFAULTS))
        mp.setenv("GANFORGE_CACHE", str(module_dir / "cache"))
        assert main(["evaluate", str(run), "-n", "16"]) == 0
    return json.loads((run / "eval.json").read_text())


def test_evaluate_replace(replace_report):
    assert replace_report["task"] == "replace"
    assert 0 <= replace_report["replaced_accuracy"] <= 1
    assert replace_report["replaced_chance"] == pytest.approx(0.1)
    assert replace_report["changed_outside_hole"] == 0
    assert replace_report["setup"]["images"] == 16


def test_evaluate_replace_lists_no_model_among_the_baselines(replace_report):
    assert "model" not in replace_report["baselines"]


def test_evaluate_denoise_on_a_patch_folder(denoise_run, tmp_path, capsys):
    run = Path(shutil.copytree(denoise_run, tmp_path / "run"))
    assert main(["evaluate", str(run)]) == 0
    assert "wrote" in capsys.readouterr().out
    report = json.loads((run / "eval.json").read_text())
    assert report["degrade"] == "noise:25" and report["setup"]["images"] == 2   # test/ holds two
    assert set(report["baselines"]) == {"nl_means", "wavelet", "tv_chambolle", "input"}
    for name, row in report["baselines"].items():
        assert {"psnr", "psnr_y", "ssim", "ssim_y"} <= set(row)
        if name != "input":  # told the true sigma, each classical denoiser beats the noisy input
            assert row["psnr"] > report["baselines"]["input"]["psnr"] + 1, name
    assert "changed_outside_hole" not in report


def test_evaluate_inpaint_on_photos_of_several_sizes(patches, tmp_path, capsys):
    """Whole held-out photos of two sizes (31x41, 27x35): scored one by one, the hole PSNR
    beside biharmonic's, the pixels outside the hole checked across both sizes; no feature
    space (unlabelled photos), and no crash from stacking images of several sizes."""
    run = ganforge.train(overrides=task_overrides("inpaint", tmp_path / "run", patches,
                                                  **{"data.name": f"patches:{patches}", "data.channels": 3,
                                                     "data.resolution": 16})).dir
    assert main(["evaluate", str(run)]) == 0
    report = json.loads((run / "eval.json").read_text())
    assert report["setup"]["images"] == 2 and report["changed_outside_hole"] == 0
    assert "psnr_hole" in report["model"] and "psnr_hole" in report["baselines"]["inpaint_biharmonic"]
    assert "feature_scores" not in report


# 10. Two ranks.
@pytest.mark.dist
def test_inpaint_with_adversarial_term_keeps_two_ranks_in_step(tmp_path):
    settings = ["task=inpaint", *(f"{k}={v}" for k, v in FAMILY["unet"].items()),
                "data.resolution=16", "train.batch_size=8", "train.steps=3",
                "objective.adv_weight=0.05", "train.device=cpu", "train.precision=fp32",
                "log.progress=false", "log.tensorboard=no"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(WORKER), str(tmp_path), *settings]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    # Batch-norm running statistics are each rank's own, as with plain DDP.
    params = [k for k in rank0 if "running_" not in k and "num_batches" not in k]
    assert any(k.startswith("G.") for k in params) and any(k.startswith("D.") for k in params)
    for key in params:
        assert torch.equal(rank0[key], rank1[key]), key
    meta = ganforge.checkpoint.read_meta(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert meta["step"] == 3 and meta["config"]["task"] == "inpaint"


# 11. Configurations that cannot work.
def test_a_degradation_needs_an_editing_model(tmp_path):
    with pytest.raises(ConfigError, match="degradations feed image-to-image models"):
        ganforge.train(overrides={"model.name": "dcgan", "data.degrade": "noise:25", **TINY,
                                  "out": str(tmp_path / "run")})
    assert not (tmp_path / "run").exists()


def test_an_editing_model_needs_inputs(tmp_path):
    with pytest.raises(ConfigError, match="data.degrade"):
        ganforge.train(overrides=task_overrides("inpaint", tmp_path / "run",
                                                **{"data.degrade": ""}))
    assert not (tmp_path / "run").exists()


def test_resolution_must_be_a_multiple_of_the_downscale(tmp_path, patches):
    overrides = task_overrides("super-resolve", tmp_path / "run", patches,
                               **{"data.resolution": 18, "data.degrade": "downscale:4"})
    with pytest.raises(ConfigError, match="data.resolution=18.*downscale factor 4"):
        ganforge.train(overrides=overrides)
    assert not (tmp_path / "run").exists()


def test_the_discriminator_size_counts_only_when_it_is_trained(tmp_path, patches):
    """An L1-only run never calls D, so small crops are fine; with adv_weight they are refused
    by name before the run directory is made."""
    small = {**task_overrides("denoise", tmp_path / "l1", patches), "data.resolution": 16,
             "model.d_layers": 3}
    assert ganforge.train(overrides=small).step == TINY["train.steps"]
    with pytest.raises(ConfigError, match="data.resolution=16.*adv_weight"):
        ganforge.train(overrides={**small, "objective.adv_weight": 0.1, "out": str(tmp_path / "adv")})
    assert not (tmp_path / "adv").exists()


def test_resume_refuses_another_degradation_or_task(tmp_path):
    run = ganforge.train(overrides=task_overrides("inpaint", tmp_path / "run", **{"train.steps": 1})).dir
    with pytest.raises(ConfigError, match="data.degrade was 'mask:free-form'.*now 'mask:box'"):
        ganforge.train(resume=run, overrides={"data.degrade": "mask:box", "train.steps": 2})
    with pytest.raises(ConfigError, match="task was 'inpaint'"):
        ganforge.train(resume=run, overrides={"task": "replace", "train.steps": 2})
    assert ganforge.train(resume=run, overrides={"train.steps": 2}).step == 2


@pytest.mark.parametrize("spec", ["lowlight:2.5", "blur:1.5", "noise:25", "downscale:2", "gray",
                                  "mask:free-form"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_classical_baseline_runs_on_gray_and_rgb(spec, channels):
    """Each baseline of each degradation takes an H x W x C image and returns one of the
    target's size and channels (the enhance row once failed on CLAHE's arguments in the
    benchmark, and NL-means returned gray images without their channel axis)."""
    from ganforge.evaluate_edit import baselines

    rng = np.random.default_rng(0)
    factor = 2 if spec.startswith("downscale") else 1
    source_channels = 1 if spec == "gray" else channels
    source = rng.uniform(0, 1, (24 // factor, 20 // factor, source_channels))
    hole = np.zeros((24, 20), bool)
    hole[8:14, 6:12] = True
    found = baselines(spec, (24, 20), channels)
    assert found
    for name, fn in found.items():
        estimate = fn(source, hole)
        assert estimate.shape == (24, 20, channels), name
        assert np.isfinite(estimate).all(), name
