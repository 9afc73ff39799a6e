"""InceptionFeatures: torch-fidelity's TF-compatible Inception-v3 behind a local weights file.

The real weights are never downloaded here: the fixture builds torch-fidelity's network with
its weight loading skipped, re-initialises it with a fixed seed (PyTorch's default init makes
the 94-layer features vanish to ~1e-8, too small to compare), and saves the state dict in the
real file format. Images are few and small; the network resizes them to 299 px itself.
"""
from __future__ import annotations

import socket
import sys
import urllib.request

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.metrics import inception_score
from ganforge.metrics.inception import InceptionFeatures

# Not importorskip: torch-fidelity is in the test extra, so its absence is a failure to see.
# Imported lazily so that test_missing_torch_fidelity_is_a_config_error runs without it.


def fidelity():
    from torch_fidelity import feature_extractor_inceptionv3
    return feature_extractor_inceptionv3


def _no_network(*args, **kwargs):
    raise AssertionError("InceptionFeatures tried to use the network")


@pytest.fixture
def offline(monkeypatch):
    """Every way torch-fidelity or torch.hub could fetch weights raises AssertionError."""
    import torch.hub

    for owner, name in [(torch.hub, "load_state_dict_from_url"), (torch.hub, "download_url_to_file"),
                        (fidelity(), "load_state_dict_from_url"), (urllib.request, "urlopen"),
                        (urllib.request, "urlretrieve"), (socket, "create_connection"),
                        (socket.socket, "connect")]:
        monkeypatch.setattr(owner, name, _no_network)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A state dict in the real 'pt_inception-2015-12-05' layout, with seeded random values."""
    folder = tmp_path_factory.mktemp("inception")
    empty = folder / "empty.pth"
    torch.save({}, empty)
    fe = fidelity()
    torch.manual_seed(0)
    with pytest.MonkeyPatch.context() as mp:  # build the architecture, skip loading weights
        mp.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        mp.setattr(fe, "load_state_dict_from_url", _no_network)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                             feature_extractor_weights_path=str(empty))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        torch.nn.init.normal_(net.fc.weight, std=2048 ** -0.5)
    path = folder / "weights-inception-test.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def inception(weights_file):
    return InceptionFeatures(str(weights_file))


def images(n, seed, channels=3, size=(16, 16)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, *size), generator=g, dtype=torch.uint8)


def test_attributes(inception, weights_file):
    assert inception.name == f"inception-v3-pool3 ({weights_file.name})"
    assert (inception.feature_dim, inception.num_classes) == (2048, 0)


def test_features_and_probs_shapes(inception):
    x = images(3, seed=1, size=(20, 12))  # any size: the network resizes to 299 itself
    feats, probs = inception.features_and_probs(x)
    assert feats.shape == (3, 2048) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    assert torch.isfinite(feats).all()
    assert probs.shape == (3, 1008) and probs.dtype == torch.float32
    assert (probs >= 0).all()
    torch.testing.assert_close(probs.sum(1), torch.ones(3), atol=1e-5, rtol=0)
    assert torch.equal(inception.features(x), feats)
    assert torch.equal(inception.probs(x), probs)
    mean, _ = inception_score(probs, splits=1)  # the metric accepts them as they are
    assert mean >= 1.0


def test_gray_equals_repeated_rgb(inception):
    gray = images(2, seed=2, channels=1)
    torch.testing.assert_close(inception.features(gray), inception.features(gray.repeat(1, 3, 1, 1)),
                               atol=0, rtol=0)


def test_deterministic_and_discriminative(inception):
    a, b = images(2, seed=3), images(2, seed=4)
    fa = inception.features(a)
    assert torch.equal(fa, inception.features(a.clone()))
    assert (fa - inception.features(b)).abs().max() > 1e-3
    assert (fa[0] - fa[1]).abs().max() > 1e-3


def test_batch_size_does_not_change_results(inception):
    x = images(5, seed=5)
    feats, probs = inception.features_and_probs(x, batch_size=200)
    for batch_size in (1, 2):
        f, p = inception.features_and_probs(x, batch_size=batch_size)
        torch.testing.assert_close(f, feats, atol=1e-5, rtol=0)
        torch.testing.assert_close(p, probs, atol=1e-5, rtol=0)


def test_empty_and_bad_images(inception):
    feats, probs = inception.features_and_probs(images(0, seed=0))
    assert feats.shape == (0, 2048) and probs.shape == (0, 1008)
    with pytest.raises(ValueError, match="uint8"):
        inception.features(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        inception.features(images(1, seed=0, channels=4))
    with pytest.raises(ValueError, match="batch_size"):
        inception.features(images(1, seed=0), batch_size=0)


@pytest.mark.parametrize("kind", ["missing", "directory", "none"])
def test_no_file_fails_before_any_download(kind, tmp_path, offline):
    path = {"missing": tmp_path / "nope" / "pt_inception.pth", "directory": tmp_path, "none": None}[kind]
    with pytest.raises(ConfigError) as err:
        InceptionFeatures(path)
    message = str(err.value)
    assert "\n" not in message and "pt_inception-2015-12-05" in message
    if path is not None:
        assert str(path) in message


def _run_on_load():
    _run_on_load.ran = True


class Evil:
    def __reduce__(self):
        return _run_on_load, ()


def _wrong_files(tmp_path, weights_file):
    state = torch.load(weights_file, weights_only=True)
    torchvision_like = dict(state, **{"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)})
    partial = {k: v for k, v in state.items() if not k.startswith("Mixed_6")}
    return {
        "garbage": b"this is not a checkpoint\n" * 10,
        "wrong_keys": {"conv.weight": torch.zeros(3, 3), "fc.weight": torch.zeros(10, 2048)},
        "torchvision_fc": torchvision_like,
        "partial": partial,
        "not_a_dict": [torch.zeros(2)],
        "pickled_code": {"fc.weight": Evil()},
    }


@pytest.mark.parametrize("kind", ["garbage", "wrong_keys", "torchvision_fc", "partial", "not_a_dict",
                                  "pickled_code"])
def test_wrong_file_is_a_config_error(kind, tmp_path, weights_file, offline):
    content = _wrong_files(tmp_path, weights_file)[kind]
    path = tmp_path / f"{kind}.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    _run_on_load.ran = False
    with pytest.raises(ConfigError) as err:
        InceptionFeatures(str(path))
    message = str(err.value)
    assert str(path) in message and "pt_inception-2015-12-05" in message and "\n" not in message
    assert not _run_on_load.ran  # loaded with weights_only=True: the pickle's code never ran


def test_missing_torch_fidelity_is_a_config_error(monkeypatch, weights_file):
    loaded = [m for m in sys.modules if m.startswith("torch_fidelity.")]
    for name in {"torch_fidelity", "torch_fidelity.feature_extractor_inceptionv3", *loaded}:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import torch_fidelity...` fail
    with pytest.raises(ConfigError, match=r"pip install 'ganforge\[inception\]'.*torch-fidelity"):
        InceptionFeatures(str(weights_file))


def test_bad_device_is_a_config_error(weights_file):
    with pytest.raises(ConfigError, match="device"):
        InceptionFeatures(str(weights_file), device="warp-drive")


def test_loads_offline_without_batchnorm_counters(inception, weights_file, tmp_path, offline):
    """Converted weights may lack BatchNorm's num_batches_tracked entries; they load all the same."""
    state = torch.load(weights_file, weights_only=True)
    path = tmp_path / "pt_inception-converted.pth"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)
    x = images(1, seed=6)
    assert torch.equal(InceptionFeatures(path).features(x), inception.features(x))
