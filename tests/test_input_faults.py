"""Faults at the edges of a run (issue 17, items 12-15 and 17): a network torch.compile cannot
compile, a PyTorch older than the code needs, face presets on unlabelled folders, FFHQ's
numbered shard folders, the decoded-set cache, and bad --config / --out inputs."""
from __future__ import annotations

import inspect
import os
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ganforge
from helpers import error_line
from ganforge.cli import main
from ganforge.config import DataConfig
from ganforge.data import folder as folder_source
from ganforge.data.cache import cache_dir
from ganforge.training import Trainer
from ganforge.training import device as device_module
from ganforge.training.device import CompileFallback, compiled, require_torch

ROOT = Path(__file__).resolve().parents[1]
TINY = {"model.g_width": 8, "model.d_width": 8, "data.resolution": 16, "train.batch_size": 16,
        "train.ema_decay": 0.0, "log.progress": False, "log.tensorboard": "no",
        "train.channels_last": "no", "train.optimizer_impl": "loop", "train.precision": "fp32"}


# --------------------------------------------------------------------------- 12: torch.compile
class FakeCompiled:
    """What a fake torch.compile returns: fails like a backend without a compiler, or runs
    the network (a compile that worked), counting its calls."""

    def __init__(self, net, fail: bool):
        self.net, self.fail, self.calls = net, fail, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.fail:
            raise RuntimeError("BackendCompilerFailed: backend='inductor' raised:\n"
                               "CppCompileError: no C++ compiler found\nmore detail")
        return self.net(*args, **kwargs)


@pytest.fixture
def fake_compile(monkeypatch):
    """torch.compile fails for discriminators only; returns the FakeCompiled made so far."""
    made = []

    def fake(net, **_):
        made.append(FakeCompiled(net, fail="Discriminator" in type(net).__name__))
        return made[-1]

    import torch._dynamo
    monkeypatch.setattr(torch, "compile", fake)
    with torch._dynamo.config.patch(suppress_errors=False):  # torch's own way to set it for a while
        yield made


def trained_weights(tmp_path, name, steps=2, **options):
    trainer = Trainer(ganforge.make_config(overrides={**TINY, **options, "out": str(tmp_path / name)}))
    for _ in range(steps):
        trainer._train_step({})
    weights = {f"{n}.{k}": p.detach().clone() for n, net in trainer.nets.items() for k, p in net.named_parameters()}
    return trainer, weights


def test_compile_failure_falls_back_for_that_network_only(tmp_path, fake_compile, capsys):
    trainer, weights = trained_weights(tmp_path, "compiled", **{"train.compile": "yes"})
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "torch.compile failed" in line]
    D = trainer.nets["D"]
    assert len(warnings) == 1, err                              # once, not at every call
    assert re.search(rf"network ({type(D).__name__}|D)\b", warnings[0])
    assert "RuntimeError: BackendCompilerFailed" in warnings[0] and "more detail" not in warnings[0]
    assert not trainer.train_nets["D"].is_compiled                # D runs eagerly ...
    assert trainer.train_nets["G"].is_compiled                    # ... G keeps its compiled form
    by_net = {("Discriminator" in type(f.net).__name__): f for f in fake_compile}
    assert by_net[True].calls == 1 and by_net[False].calls >= 2   # D tried once; G ran compiled
    assert torch._dynamo.config.suppress_errors is False          # nothing hidden process-wide
    # The fallback trains exactly as an eager run does.
    _, eager = trained_weights(tmp_path, "eager", **{"train.compile": "no"})
    assert weights.keys() == eager.keys()
    assert all(torch.equal(weights[k], eager[k]) for k in weights)


class BackwardFails(torch.autograd.Function):
    """The identity whose backward raises what inductor raised on CUDA (pytorch#171622)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise AssertionError("expected size 256==256, stride 16==1 at dim=1\n"
                             "Error in op: torch.ops.aten.convolution_backward.default")


def test_a_compiled_backward_that_fails_turns_the_run_eager_and_retakes_the_step(tmp_path, monkeypatch, capsys):
    made = []

    def fake(net, **_):  # compiles; G's compiled backward then fails, as inductor's did
        made.append(FakeCompiled(net, fail=False))
        if "Generator" in type(net).__name__:
            return lambda *args, **kwargs: BackwardFails.apply(made[0](*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(torch, "compile", fake)
    trainer, weights = trained_weights(tmp_path, "compiled", steps=3, **{"train.compile": "yes"})
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "torch.compile failed" in line]
    assert len(warnings) == 2, err                  # every compiled network, once, at the first failure
    assert all("AssertionError: expected size 256==256" in line and "Error in op" not in line for line in warnings)
    assert not any(net.is_compiled for net in trainer.train_nets.values())
    # Every step trained both networks: the failed G phase was computed again, eagerly.
    start, _ = trained_weights(tmp_path, "start", steps=0, **{"train.compile": "no"})
    initial = {f"{n}.{k}": p for n, net in start.nets.items() for k, p in net.named_parameters()}
    assert all(torch.isfinite(w).all() for w in weights.values())
    for net in ("G", "D"):
        assert any(not torch.equal(w, initial[k]) for k, w in weights.items() if k.startswith(net + "."))
    assert trainer.optimizers["G"].state[next(trainer.nets["G"].parameters())]["step"] == 3


def test_an_eager_backward_error_is_raised_not_retried(tmp_path, monkeypatch):
    trainer = Trainer(ganforge.make_config(overrides={**TINY, "out": str(tmp_path / "r")}))
    G = trainer.nets["G"]
    monkeypatch.setattr(G, "forward", lambda *a, **k: BackwardFails.apply(type(G).forward(G, *a, **k)))
    with pytest.raises(AssertionError, match="256==256"):
        trainer._train_step({})


def test_the_networks_own_error_is_raised_not_hidden(fake_compile, capsys):
    net = compiled(torch.nn.Linear(2, 3), "L")
    fake_compile[0].fail = True
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        net(torch.zeros(4, 5))                                     # wrong for eager too
    assert "torch.compile failed" not in capsys.readouterr().err and net.is_compiled
    out = net(torch.zeros(4, 2))                                   # a compile failure: falls back
    assert out.shape == (4, 3) and not net.is_compiled
    assert capsys.readouterr().err.count("torch.compile failed for network L ") == 1
    assert net.out_features == 3                                   # attributes of the network


def test_torch_compile_refusing_at_once_leaves_the_network_eager(monkeypatch, capsys):
    def refuse(net, **_):
        raise RuntimeError("Dynamo is not supported on Python 3.99+")

    monkeypatch.setattr(torch, "compile", refuse)
    net = torch.nn.Linear(2, 3)
    assert compiled(net, "G") is net
    err = capsys.readouterr().err.strip()
    assert err == ("warning: torch.compile failed for network G (RuntimeError: Dynamo is not "
                   "supported on Python 3.99+); G runs eagerly")


def test_fallback_wrapper_adds_no_weights():
    net = torch.nn.Linear(2, 3)
    wrapped = CompileFallback(lambda x: net(x), net, "L")
    assert list(wrapped.parameters()) == list(net.parameters())
    assert set(wrapped.state_dict()) == {"eager.weight", "eager.bias"}


# --------------------------------------------------------------------------- 13: the torch floor
def _floor(package: str) -> tuple[int, int]:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(rf'"{package}>=(\d+)\.(\d+)', text)
    assert match, f"pyproject.toml names no floor for {package}"
    return int(match[1]), int(match[2])


def test_pyproject_floor_is_the_one_checked_at_import():
    assert _floor("torch") == device_module.TORCH_FLOOR == (2, 3)
    assert _floor("torchvision") == device_module.TORCHVISION_FLOOR == (0, 18)


def test_the_apis_that_set_the_floor_exist():
    """Each newer API ganforge calls, with the release that brought it."""
    assert "device" in inspect.signature(torch.amp.GradScaler).parameters      # 2.3: the floor
    assert torch.amp.GradScaler("cpu", enabled=False).is_enabled() is False
    assert callable(torch.compile)                                            # 2.0
    assert isinstance(torch._dynamo.config.cache_size_limit, int)             # 2.0
    shadow, params = [torch.zeros(2)], [torch.ones(2)]
    torch._foreach_lerp_(shadow, params, 0.25)                                # 2.1 (EMA)
    assert torch.equal(shadow[0], torch.full((2,), 0.25))
    assert torch.equal(torch.stack(torch._foreach_norm([torch.ones(4)])), torch.tensor([2.0]))
    assert torch.Generator(device="cpu").manual_seed(0).device.type == "cpu"
    assert "weights_only" in inspect.signature(torch.load).parameters         # 1.13
    assert hasattr(torch.nn.Module, "register_load_state_dict_post_hook")      # 1.13
    assert callable(torch.nn.utils.parametrizations.spectral_norm)
    assert F.interpolate(torch.ones(1, 1, 4, 4), size=2, mode="bicubic", antialias=True).shape[-1] == 2
    assert F.interpolate(torch.ones(1, 1, 4, 4), size=2, mode="nearest-exact").shape[-1] == 2
    assert callable(torch.cuda.mem_get_info) and callable(torch.linalg.vector_norm)
    assert torch.special.xlogy(torch.tensor(0.0), torch.tensor(0.0)) == 0


def test_older_torch_is_refused_with_one_clear_line():
    require_torch()                                                          # this machine's
    for old in ("2.1.2", "2.2.2+cu121", "1.13.1"):
        with pytest.raises(ImportError) as info:
            require_torch(old, "0.99")
        message = str(info.value)
        assert "\n" not in message and "torch>=2.3" in message and f"found {old}" in message
    with pytest.raises(ImportError, match=r"torchvision>=0\.18 \(found 0\.17\.2\)"):
        require_torch("2.3.1", "0.17.2")
    require_torch("2.3.0a0+git1234", "0.18.0")                               # pre-releases of it pass
    require_torch("2.10.0", "0.25.1")                                        # 10 > 3, not "1" < "3"
    require_torch("unknown", "")                                             # unreadable: not judged


# --------------------------------------------------------------------------- 14: face presets, FFHQ shards
@pytest.mark.parametrize("name", ["progressive-64", "stylegan-64", "stylegan-256"])
def test_face_presets_do_not_evaluate_unlabelled_folders(name, unlabelled_folder):
    from ganforge.presets import preset_text

    config = ganforge.make_config(preset=name, overrides={"data.name": f"folder:{unlabelled_folder}"})
    assert config.log.eval_every == 0
    comments = " ".join(line for line in preset_text(name).splitlines() if line.startswith("#"))
    assert "eval_every" in comments and "--inception-weights" in comments


def test_no_folder_preset_evaluates_during_training():
    from ganforge import presets

    for name in presets.names():
        raw = presets.load_preset(name)
        if str(raw.get("data", {}).get("name", "")).startswith("folder:"):
            assert raw.get("log", {}).get("eval_every", 0) == 0, name


def write_images(folder: Path, count: int, size: int = 8, start: int = 0, mode: str = "L") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        value = (start + i) * 10 % 256
        Image.new(mode, (size, size), value if mode == "L" else (value, 0, 255 - value)).save(
            folder / f"{start + i:05d}.png")


def load_folder(root: Path, resolution: int = 8, channels: int = 1):
    return folder_source.load_folder(str(root), DataConfig(name=f"folder:{root}", resolution=resolution,
                                                           channels=channels), "train")


def test_ffhq_numbered_shards_are_one_unlabelled_set(tmp_path, capsys):
    root = tmp_path / "ffhq"
    for shard in range(3):
        write_images(root / f"{shard * 1000:05d}", 2, start=shard * 1000)
    data = load_folder(root)
    assert len(data) == 6 and data.labels is None and data.class_names == [] and data.num_classes == 0
    assert data.images[:, 0, 0, 0].tolist() == [0, 10, 16, 26, 32, 42]   # every shard, in order
    notes = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(notes) == 1 and "3 numbered sub-folders (00000/, ...)" in notes[0] and "unlabelled" in notes[0]


@pytest.mark.parametrize("names, labelled", [
    (["0", "1", "2"], True),             # digit classes, as MNIST exported to folders
    (["1", "10"], True),                 # numbers of different widths
    (["00000", "cats"], True),           # not all numbers
    (["000", "001"], False),             # zero-padded numbering: shards
])
def test_which_numbered_folders_are_classes(tmp_path, names, labelled):
    root = tmp_path / "set"
    for name in names:
        write_images(root / name, 1)
    data = load_folder(root)
    assert (data.labels is not None) == labelled
    if labelled:
        assert data.class_names == sorted(names) and data.labels.tolist() == list(range(len(names)))


# --------------------------------------------------------------------------- 15: the decoded-set cache
def cache_files() -> list[Path]:
    return sorted((cache_dir() / "folders").glob("*.npy"))


def test_second_load_reuses_the_cache_without_decoding(tmp_path, monkeypatch):
    root = tmp_path / "colour"
    write_images(root, 5, size=12, mode="RGB")
    first = load_folder(root, resolution=8, channels=3)
    assert len(cache_files()) == 1
    stored = np.load(cache_files()[0])
    assert stored.shape == (5, 3, 8, 8) and np.array_equal(stored, first.images.numpy())

    def no_decoding(*args):
        raise AssertionError("decoded again")

    real = folder_source.read_image

    monkeypatch.setattr(folder_source, "read_image", no_decoding)
    second = load_folder(root, resolution=8, channels=3)
    assert torch.equal(first.images, second.images)
    # The set is a view of the mapped file, and writing to it never reaches the file.
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(cache_files()[0]) in maps.read_text()
    second.images[0] = 0
    assert np.array_equal(np.load(cache_files()[0]), stored)
    # Another resolution is another entry.
    monkeypatch.setattr(folder_source, "read_image", real)
    assert load_folder(root, resolution=4, channels=3).images.shape == (5, 3, 4, 4)
    assert len(cache_files()) == 2


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's list of mapped files")
def test_load_dataset_keeps_the_set_mapped(tmp_path):
    from ganforge.data import load_dataset

    root = tmp_path / "set"
    write_images(root, 3)
    data = load_dataset(DataConfig(name=f"folder:{root}", resolution=8, channels=1))
    assert data.images.shape == (3, 1, 8, 8)
    assert str(cache_files()[0]) in Path("/proc/self/maps").read_text()


def test_a_changed_or_added_file_invalidates_the_cache(tmp_path):
    root = tmp_path / "set"
    write_images(root, 3)
    assert load_folder(root).images[1].unique().tolist() == [10]
    changed = root / "00001.png"
    Image.new("L", (8, 8), 200).save(changed)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert load_folder(root).images[1].unique().tolist() == [200]
    write_images(root, 1, start=3)
    assert len(load_folder(root)) == 4
    assert len(cache_files()) == 1          # the folder's entry is replaced, not piled up


@pytest.mark.parametrize("damage", ["garbage", "truncated", "meta"])
def test_a_corrupt_cache_is_rebuilt(tmp_path, monkeypatch, damage):
    root = tmp_path / "set"
    write_images(root, 4)
    expected = load_folder(root).images.clone()
    array_path = cache_files()[0]
    if damage == "garbage":
        array_path.write_bytes(b"\x93NUMPY not really" * 3)
    elif damage == "truncated":
        array_path.write_bytes(array_path.read_bytes()[:-100])
    else:
        array_path.with_suffix(".json").write_text("{not json")
    decoded = []
    real = folder_source.read_image
    monkeypatch.setattr(folder_source, "read_image", lambda *a: decoded.append(a) or real(*a))
    assert torch.equal(load_folder(root).images, expected)
    assert len(decoded) == 4
    assert not [p for p in array_path.parent.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_decoding_keeps_no_second_copy(tmp_path):
    """Decoding into a list and stacking it holds the set twice (2x `total` traced by numpy);
    decoding into the memory map holds a few images at a time (about 0.2 MB here)."""
    root = tmp_path / "big"
    write_images(root, 48, size=96, mode="RGB")
    total = 48 * 3 * 96 * 96
    write_images(tmp_path / "warm-up", 1, mode="RGB")
    load_folder(tmp_path / "warm-up", resolution=8, channels=3)  # Pillow's plugins imported
    tracemalloc.start()
    try:
        data = load_folder(root, resolution=96, channels=3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data.images.shape == (48, 3, 96, 96) and data.images.float().std() > 0
    assert peak < total / 3, f"{peak} bytes traced while decoding {total} bytes of images"


def test_unreadable_files_and_labels_survive_the_cache(tmp_path, capsys):
    root = tmp_path / "classes"
    write_images(root / "a", 3)
    write_images(root / "b", 2, start=3)
    (root / "a" / "00001.png").write_bytes(b"not a png")
    for _ in range(2):                     # decoded, then from the cache
        data = load_folder(root)
        assert data.labels.tolist() == [0, 0, 1, 1]
        assert [int(image.max()) for image in data.images] == [0, 20, 30, 40]
        err = capsys.readouterr().err
        assert "skipped 1 unreadable image file(s)" in err and "00001.png" in err


def test_an_unwritable_cache_decodes_into_memory(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache would go")
    monkeypatch.setenv("GANFORGE_CACHE", str(blocker))
    root = tmp_path / "set"
    write_images(root, 2)
    data = load_folder(root)
    assert data.images[:, 0, 0, 0].tolist() == [0, 10]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot keep a decoded copy" in err and "GANFORGE_CACHE" in err


# --------------------------------------------------------------------------- 17: bad --config / --out
def test_binary_config_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "weights.yaml"
    path.write_bytes(bytes(range(128, 256)) * 4)
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    line = error_line(capsys)
    assert str(path) in line and "not a text" in line


def test_config_with_nul_bytes_or_a_directory_is_one_line(tmp_path, capsys):
    path = tmp_path / "nul.yaml"
    path.write_bytes(b"train:\x00 {steps: 1}\n")
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    assert "NUL" in error_line(capsys)
    assert main(["train", "--config", str(tmp_path), "--dry-run"]) == 2
    assert "is a directory" in error_line(capsys)


def test_scalar_section_says_what_a_config_looks_like(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("model: dcgan\n")
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    assert error_line(capsys).endswith(
        "error: config section 'model' must be a mapping like {name: dcgan, ...}, got 'dcgan'")
    path.write_text("train: 100\n")
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    assert "config section 'train' must be a mapping like {batch_size: 64, ...}, got 100" in error_line(capsys)
    path.write_text("- model\n- train\n")
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    assert "must hold a mapping of sections like {model: {name: dcgan}" in error_line(capsys)


@pytest.mark.parametrize("below", [False, True])
def test_out_naming_an_existing_file_is_one_line(tmp_path, capsys, below):
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    out = existing / "run" if below else existing
    assert main(["train", "--out", str(out), "--steps", "1"]) == 2
    line = error_line(capsys)
    assert str(out) in line and "existing file" in line
    assert existing.read_text() == "mine"
