"""ONNX export: every registered model family exports from a tiny trained run, runs in
onnxruntime at other batch (and spatial) sizes than it was traced at, and gives what the
PyTorch inference path gives (sample, edit, translate, texture sampling, classifier logits);
stylegan's noise and truncation are inputs; the command refuses what it should with one line.

Runs train for 2-3 steps at 16 px with the narrowest networks; each export takes a second or
two (torch.export dominates).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import ganforge
import ganforge.export as export_module
from ganforge.cli import main
from ganforge.data.imageset import to_float
from ganforge.errors import ConfigError, GanforgeError
from ganforge.export import export_onnx
from ganforge.inference import load_classifier
from ganforge.models import MODELS
from ganforge.texture.synthesis import periodic_cut, sample_gan
from helpers import error_line

QUIET = {"log.progress": False, "log.tensorboard": "no"}
TINY = {"data.resolution": 16, "train.batch_size": 4, "train.steps": 2, **QUIET}
PATCH_D = {"model.d_width": 4, "model.d_layers": 1}
# One tiny run per registered family; several carry the features they should exercise:
# resnet is class-conditional (labels), replace is inpainting with a class (mask and labels),
# progressive stops mid fade-in (stage 8 px blending into 16 px); stylegan is at 8 px (three
# noise maps: 4, 8 and 8 px), which halves its export time.
RUNS = {
    "dcgan": {"model.name": "dcgan", "model.g_width": 4, "model.d_width": 4},
    "mlp": {"model.name": "mlp", "model.hidden": 16},
    "resnet": {"model.name": "resnet", "model.g_width": 4, "model.d_width": 4, "model.conditional": True},
    "progressive": {"model.name": "progressive", "model.g_width": 4, "model.d_width": 4, "model.max_width": 8,
                    "model.stage_steps": 2, "model.fade_fraction": 1.0, "train.steps": 4},
    "stylegan": {"model.name": "stylegan", "model.latent_dim": 8, "model.w_dim": 8, "model.mapping_layers": 2,
                 "model.g_width": 4, "model.d_width": 4, "model.max_width": 8, "data.resolution": 8},
    "vae": {"model.name": "vae", "model.width": 4, "model.latent_dim": 3},
    "spatial": {"model.name": "spatial", "model.z_channels": 2, "model.upsamplings": 2, "model.g_width": 4,
                "model.max_width": 8, **PATCH_D, "data.channels": 1},
    "unet": {"task": "replace", "model.g_width": 4, "model.depth": 2, **PATCH_D},
    "srresnet": {"task": "super-resolve", "model.n_blocks": 1, "model.width": 4, **PATCH_D,
                 "data.degrade": "downscale:2"},
    "dncnn": {"task": "denoise", "model.name": "dncnn", "model.depth": 3, "model.width": 4, **PATCH_D},
    "cyclegan": {"task": "translate", "model.blocks": 1, "model.g_width": 4, **PATCH_D, "objective.pool_size": 3,
                 "train.batch_size": 2},
    "cnn": {"model.name": "cnn", "model.width": 4, "model.hidden": 8},
}
# Variants of a family that change its graph: exported and checked beside the family's own run.
VARIANTS = {"unet-residual": {"task": "inpaint", "model.g_width": 4, "model.depth": 2,
                             "model.residual": True, **PATCH_D},
            "spatial-bilinear": {**RUNS["spatial"], "model.upsample": "bilinear"}}
PHOTOS = ("spatial", "spatial-bilinear", "srresnet", "dncnn")   # trained on patches of synthetic pictures
STRICT = 1e-4   # what the tests ask of every export (the command's default is 1e-3)


def picture(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * np.sin(9 * (x + y))], -1)
    image += rng.normal(0, 0.05, image.shape)
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    for i, (h, w) in enumerate([(40, 52), (37, 45)]):
        Image.fromarray(picture(h, w, i)).save(root / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def runs(export_dir):
    """name -> run directory, trained on first use and shared by the whole session."""
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            overrides = {**TINY, **{**RUNS, **VARIANTS}[name], "out": str(export_dir / "runs" / name)}
            if name in PHOTOS:
                overrides["data.name"] = f"patches:{export_dir}"
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("GANFORGE_CACHE", str(export_dir / "cache"))
                made[name] = ganforge.train(overrides=overrides).dir
        return made[name]
    return get


@pytest.fixture(scope="session")
def exported(runs, export_dir):
    """name -> the report of its default export (strict tolerance), made once."""
    done: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in done:
            done[name] = export_onnx(runs(name), export_dir / "onnx" / f"{name}.onnx", atol=STRICT)
        return done[name]
    return get


def session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(path, **inputs) -> np.ndarray:
    feeds = {k: (v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in inputs.items()}
    return session(path).run(None, feeds)[0]


# 1. Every family.
def test_every_registered_generator_has_an_export_case():
    """Every family but the classifiers, of which one stands for all (they export the same way)."""
    classifiers = {n for n in MODELS.names() if MODELS.get(n).objective == "classifier"}
    assert set(MODELS.names()) - classifiers <= set(RUNS) <= set(MODELS.names())
    assert set(RUNS) & classifiers


@pytest.mark.parametrize("name", sorted(RUNS))
def test_every_family_exports_and_matches_pytorch(name, runs, exported):
    report = exported(name)
    path = Path(report["path"])
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))
    assert 0 <= report["max_abs_diff"] <= STRICT
    assert len(report["checks"]) == 2 and {row["batch"] for row in report["checks"]} == {1, 3}
    names = [i["name"] for i in report["inputs"]]
    inputs = {i["name"]: i["shape"] for i in report["inputs"]}
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert report["model"] == meta["ganforge.model"] == name and meta["ganforge.kind"] == report["kind"]
    assert all(shape[0] == "batch" for shape in inputs.values() if shape)   # dynamic batch everywhere
    kind, output = report["kind"], report["outputs"][0]
    assert report["checks"][1]["output"][0] == 3   # the batch of three came back as three
    if kind == "generation":
        size = 8 if name == "stylegan" else 16
        assert names[0] == "z" and output == {"name": "images", "shape": ["batch", 1, size, size], "type": "float32"}
        assert ("labels" in names) == (name == "resnet")
        assert ("truncation" in names) == (name == "stylegan")
        assert any(n.startswith("noise_") for n in names) == (name == "stylegan")
    elif kind in ("editing", "translation"):
        assert inputs["image"][2:] == ["height", "width"]
        sides = ["2*height", "2*width"] if name == "srresnet" else ["height", "width"]
        assert output["name"] == "images" and output["shape"][0] == "batch" and output["shape"][2:] == sides
        if name == "unet":
            assert names == ["image", "mask", "labels"]
    elif kind == "texture":
        assert inputs["z"][2:] == ["field_height", "field_width"]
        assert output["shape"] == ["batch", 1, "4*field_height", "4*field_width"]
    else:
        assert kind == "classifier" and output == {"name": "logits", "shape": ["batch", 10], "type": "float32"}


# 2. The same images as the PyTorch inference path.
@pytest.mark.parametrize("name", ["dcgan", "mlp", "resnet", "progressive", "vae"])
def test_generators_match_sample(name, runs, exported):
    """z drawn as `sample` draws it, the same labels: the same uint8 images (within one level)."""
    model = ganforge.load(runs(name))
    if name == "progressive":
        assert model.net._mode == "blend"   # both resolutions' paths are in the graph
    n, seed = 5, 3
    z = torch.randn(n, model.net.latent_dim, generator=torch.Generator().manual_seed(seed))
    inputs = {"z": z}
    labels = None
    if model.num_classes:
        labels = [4, 0, 9, 2, 2]
        inputs["labels"] = torch.tensor(labels)
    images = run_onnx(exported(name)["path"], **inputs)
    assert images.shape == (n, model.net.channels, 16, 16) and np.abs(images).max() <= 1
    expected = model.sample(n, seed=seed, labels=labels).astype(int)
    got = np.round((images.transpose(0, 2, 3, 1) + 1) * 127.5).clip(0, 255).astype(int)
    assert np.abs(got - expected).max() <= 1


def test_stylegan_noise_and_truncation_are_inputs(runs, exported):
    report, model = exported("stylegan"), ganforge.load(runs("stylegan"))
    path, net = report["path"], model.net
    shapes = net.synthesis.noise_shapes()
    assert report["notes"] == {"noise": "inputs", "noise_shapes": [[1, 4, 4], [1, 8, 8], [1, 8, 8]]}
    z = torch.randn(4, net.latent_dim, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    noise_a = [torch.randn(4, *s, generator=gen) for s in shapes]
    noise_b = [torch.randn(4, *s, generator=gen) for s in shapes]
    psi = np.full(4, 0.7, np.float32)

    def onnx_images(noise, truncation=psi, zs=z):
        return run_onnx(path, z=zs, truncation=truncation, **{f"noise_{i}": m for i, m in enumerate(noise)})

    a, again, b = onnx_images(noise_a), onnx_images(noise_a), onnx_images(noise_b)
    with torch.inference_mode():
        torch_a = net(z, None, truncation=0.7, noise=noise_a).numpy()
        torch_b = net(z, None, truncation=0.7, noise=noise_b).numpy()
    # Same noise in: the same image, in PyTorch and ONNX; different noise: a different image.
    assert np.array_equal(a, again)
    assert np.abs(a - torch_a).max() < STRICT and np.abs(b - torch_b).max() < STRICT
    assert np.abs(a - b).max() > 100 * max(np.abs(a - torch_a).max(), 1e-7)
    # The run's fixed maps as inputs give `sample`'s images; psi = 0 gives every z the mean image.
    fixed = [layer.expand(4, -1, -1, -1) for layer in (
        m.noise_const for block in net.synthesis.blocks for m in (block.conv0, block.conv1) if m is not None)]
    sampled = model.sample(4, seed=0, truncation=0.7).astype(int)
    got = np.round((onnx_images(fixed).transpose(0, 2, 3, 1) + 1) * 127.5).astype(int)
    assert np.abs(got - sampled).max() <= 1
    mean = onnx_images(fixed, np.zeros(4, np.float32))
    assert np.abs(mean - mean[:1]).max() < 1e-5
    # psi is per image: a batch with psi 0.7 and 0 holds both results.
    mixed = onnx_images(fixed, np.array([0.7, 0, 0.7, 0], np.float32))
    assert np.abs(mixed[0::2] - onnx_images(fixed)[0::2]).max() < 1e-5 and np.abs(mixed[1::2] - mean[1::2]).max() < 1e-5


def test_stylegan_fixed_noise_bakes_in_the_runs_maps(runs, export_dir):
    report = export_onnx(runs("stylegan"), export_dir / "fixed.onnx", fixed_noise=True, atol=STRICT)
    assert [i["name"] for i in report["inputs"]] == ["z", "truncation"] and report["notes"] == {"noise": "fixed"}
    model = ganforge.load(runs("stylegan"))
    z = torch.randn(3, model.net.latent_dim, generator=torch.Generator().manual_seed(2))
    images = run_onnx(report["path"], z=z, truncation=np.ones(3, np.float32))
    got = np.round((images.transpose(0, 2, 3, 1) + 1) * 127.5).astype(int)
    assert np.abs(got - model.sample(3, seed=2).astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["unet", "unet-residual", "srresnet", "dncnn"])
def test_editors_match_edit_tensor_at_any_size(name, runs, exported):
    """Odd sizes (padded to the stride inside the graph) and another batch size."""
    editor = ganforge.load(runs(name))
    path = exported(name)["path"]
    gen = torch.Generator().manual_seed(5)
    for height, width in ((19, 23), (24, 17)):
        source = torch.rand(1, editor.in_channels, height, width, generator=gen) * 2 - 1
        inputs, kwargs = {"image": source}, {}
        if editor.needs_mask:
            mask = torch.zeros(1, 1, height, width)
            mask[..., 3:11, 5:14] = 1
            inputs["mask"] = kwargs["mask"] = mask
        if editor.num_classes:
            inputs["labels"] = kwargs["labels"] = torch.tensor([7])
        expected = editor.edit_tensor(source, **kwargs).numpy()
        got = run_onnx(path, **inputs)
        assert got.shape == (1, editor.channels, height * editor.scale, width * editor.scale)
        assert np.abs(got - expected).max() < STRICT
    # A batch of five at once: each image as it is alone.
    batch = torch.rand(5, editor.in_channels, 20, 20, generator=gen) * 2 - 1
    inputs = {"image": batch}
    if editor.needs_mask:
        inputs["mask"] = (torch.rand(5, 1, 20, 20, generator=gen) > 0.5).float()
    if editor.num_classes:
        inputs["labels"] = torch.arange(5)
    together = run_onnx(path, **inputs)
    alone = run_onnx(path, **{k: v[2:3] for k, v in inputs.items()})
    assert np.abs(together[2:3] - alone).max() < 1e-5


def test_translation_exports_each_direction(runs, exported, capsys):
    """a2b by default through the API, b2a through the command (to RUN/export/G-b2a.onnx)."""
    run = runs("cyclegan")
    translator = ganforge.load(run)
    a2b = exported("cyclegan")
    assert a2b["notes"]["direction"] == "a2b"
    assert main(["export", str(run), "--direction", "b2a", "--atol", str(STRICT)]) == 0
    b2a = run / "export" / "G-b2a.onnx"
    assert f"wrote {b2a}" in capsys.readouterr().out
    x = torch.rand(2, translator.channels, 21, 18, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for path, direction in ((a2b["path"], "a2b"), (b2a, "b2a")):
        got = run_onnx(path, image=x)
        assert got.shape == (2, translator.channels, 21, 18)
        assert np.abs(got - translator.translate_tensor(x, direction).numpy()).max() < STRICT
    assert np.abs(run_onnx(a2b["path"], image=x) - run_onnx(b2a, image=x)).max() > 1e-3


@pytest.mark.parametrize("name", ["spatial", "spatial-bilinear"])
def test_texture_fields_of_any_size_and_tileable(runs, exported, export_dir, name):
    net = ganforge.load(runs(name)).net
    plain = exported(name)
    tileable = export_onnx(runs(name), export_dir / f"{name}-tileable.onnx", tileable=True, atol=STRICT)
    assert Path(tileable["path"]).is_file() and tileable["notes"]["tileable"] is True
    for report, wrap in ((plain, False), (tileable, True)):
        z = net.noise(2, 24, 36, torch.Generator().manual_seed(3))   # as sample_gan draws it
        got = run_onnx(report["path"], z=z)
        assert got.shape == (2, 1, 24, 36)
        if wrap:   # the graph returns the periodic image; sample_gan cuts it open at a random offset
            got = np.roll(got, periodic_cut(net.stride, 3), axis=(2, 3))
        expected = sample_gan(net, 36, 24, seed=3, tileable=wrap, n=2)
        pixels = np.round((got.transpose(0, 2, 3, 1) + 1) * 127.5).astype(int)
        assert np.abs(pixels - np.stack(expected).astype(int)).max() <= 1
    # The two graphs differ at the borders only where the padding differs.
    z = net.noise(1, 16, 16, torch.Generator().manual_seed(4))
    assert np.abs(run_onnx(plain["path"], z=z) - run_onnx(tileable["path"], z=z)).max() > 1e-4


def test_classifier_matches_logits(runs, exported):
    classifier = load_classifier(runs("cnn"))
    images = torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    got = run_onnx(exported("cnn")["path"], images=to_float(images))
    assert got.shape == (6, 10)
    assert np.abs(got - classifier.logits(images).numpy()).max() < STRICT


# 3. Writing, refusing and the command.
def test_a_disagreeing_graph_is_not_written(runs, export_dir, monkeypatch):
    """A graph traced from a network off by 0.01 fails the check: exit 2, nothing written."""
    trace = export_module._trace

    def off_by_a_bit(graph, opset):
        original = graph.fn
        shifted = dataclasses.replace(graph, fn=lambda net, **k: original(net, **k) + 0.01)
        return trace(shifted, opset)

    monkeypatch.setattr(export_module, "_trace", off_by_a_bit)
    out = export_dir / "off.onnx"
    with pytest.raises(GanforgeError, match=r"max abs difference vs PyTorch: 0\.01 exceeds --atol 0\.001"):
        export_onnx(runs("mlp"), out)
    assert not out.exists() and not list(export_dir.glob(".off.onnx*"))


def test_cli_refuses_to_overwrite_without_force_then_prints_the_difference(runs, capsys):
    run = runs("dcgan")
    path = run / "export" / "G.onnx"
    path.parent.mkdir(exist_ok=True)
    path.write_text("an older export")
    assert main(["export", str(run)]) == 2
    assert "exists; pass --force" in error_line(capsys, "export")
    assert path.read_text() == "an older export"
    assert main(["export", str(run), "--format", "onnx", "--checkpoint", "last", "--force"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {path}" in out
    line = next(line for line in out.splitlines() if line.startswith("max abs difference vs PyTorch: "))
    assert float(line.split(": ")[1].split()[0]) <= 1e-3
    assert "input  z: batch x 100 float32" in out and "output images: batch x 1 x 16 x 16 float32 in [-1, 1]" in out
    onnx.checker.check_model(onnx.load(str(path)))
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.parametrize("args,message", [
    (["--format", "tflite"], "--format 'tflite': ganforge exports onnx only"),
    (["--direction", "b2a"], "only translation runs have directions"),
    (["--tileable"], "only texture (spatial) runs"),
    (["--fixed-noise"], "--fixed-noise: only stylegan generators have noise maps"),
    (["--out", "model.pt"], "give a .onnx file"),
    (["--checkpoint", "step-000099"], "has no checkpoint 'step-000099'"),
    (["--atol", "-1"], "--atol -1: must be >= 0"),
])
def test_cli_refuses_with_one_line(runs, capsys, args, message):
    assert main(["export", str(runs("dcgan")), *args]) == 2
    assert message in error_line(capsys, "export")


def test_cli_refuses_a_missing_run_and_a_bad_direction(runs, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in error_line(capsys, "export")
    assert main(["export", str(runs("cyclegan")), "--direction", "sideways"]) == 2
    assert "--direction 'sideways'" in error_line(capsys, "export")


def test_api_is_exported_and_checks_its_arguments(runs):
    assert ganforge.export_onnx is export_onnx
    with pytest.raises(ConfigError, match="--opset 5"):
        export_onnx(runs("dcgan"), opset=5)
