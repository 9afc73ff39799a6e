"""Whole-image and tiled inference (inference/tiles.py) and user image files (inference/images.py)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import ConfigError, DataError
from ganforge.inference.images import (list_inputs, output_path, read_image_file,
                                       to_model_channels, write_image_file)
from ganforge.inference.tiles import choose_overlap, run_padded, run_tiled


def conv_net(scale: int = 1, channels: int = 3) -> torch.nn.Module:
    """Three 3x3 convolutions (receptive radius 3), then a pixel shuffle when scale > 1."""
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(channels, 8, 3, padding=1), torch.nn.ReLU(),
              torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
              torch.nn.Conv2d(8, channels * scale * scale, 3, padding=1)]
    if scale > 1:
        layers.append(torch.nn.PixelShuffle(scale))
    return torch.nn.Sequential(*layers).eval()


class Stride8(torch.nn.Module):
    """Downsample by 8 and back: only accepts sides that are multiples of 8."""

    def forward(self, x):
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, x.shape
        return torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 8), scale_factor=8)


# ---- run_padded

@pytest.mark.parametrize("size", [(13, 21), (8, 16), (3, 5), (1, 1)])
def test_run_padded_crops_back_exactly(size):
    x = torch.rand(2, 3, *size)
    assert run_padded(Stride8(), x, stride=8).shape == x.shape
    # Identity through stride-8 padding returns x itself: the padding is cropped away.
    assert torch.equal(run_padded(lambda t: t, x, stride=8), x)
    assert torch.equal(run_padded(lambda t: t, x), x)


def test_run_padded_reflects_and_replicates():
    seen = {}

    def record(t):
        seen["x"] = t.clone()
        return t

    x = torch.arange(10.0).view(1, 1, 2, 5)  # pad 6 rows (> height: replicate), 3 columns
    run_padded(record, x, stride=8)
    assert seen["x"].shape == (1, 1, 8, 8)
    assert torch.equal(seen["x"][0, 0, -1, :5], x[0, 0, -1])          # replicated last row
    x = torch.arange(100.0).view(1, 1, 10, 10)                         # pad 6 < 10: reflect
    run_padded(record, x, stride=8)
    assert torch.equal(seen["x"][0, 0, 10, :10], x[0, 0, 8])


def test_run_padded_scale_and_wrong_network():
    net = conv_net(scale=2)
    x = torch.rand(1, 3, 7, 9)
    with torch.inference_mode():
        assert run_padded(net, x, scale=2).shape == (1, 3, 14, 18)
        with pytest.raises(ConfigError, match="scale"):
            run_padded(net, x, scale=1)


# ---- run_tiled

@pytest.mark.parametrize("scale", [1, 2])
def test_run_tiled_matches_whole_image(scale):
    net = conv_net(scale)
    x = torch.rand(2, 3, 23, 30)  # tiles of 8 divide neither side
    with torch.inference_mode():
        whole = run_padded(net, x, scale=scale)
        for overlap in (3, 5):
            tiled = run_tiled(net, x, tile=8, overlap=overlap, scale=scale)
            assert tiled.shape == whole.shape == (2, 3, 23 * scale, 30 * scale)
            assert (tiled - whole).abs().max() < 1e-5
        # Without enough context the seams show: this test can fail.
        assert (run_tiled(net, x, tile=8, overlap=0, scale=scale) - whole).abs().max() > 1e-3
        assert (run_tiled(net, x, tile=8, overlap=2, scale=scale) - whole).abs().max() > 1e-4


def test_run_tiled_progress_device_and_large_tile():
    net = conv_net()
    x = torch.rand(1, 3, 17, 10)
    calls = []
    with torch.inference_mode():
        out = run_tiled(net, x, tile=8, overlap=3, out_device="cpu",
                        progress=lambda done, total: calls.append((done, total)))
        assert calls == [(i, 6) for i in range(1, 7)]  # 3 rows x 2 columns
        assert out.device == torch.device("cpu")
        one = run_tiled(net, x, tile=64, overlap=3)  # one tile bigger than the image
        assert torch.allclose(one, run_padded(net, x), atol=1e-6)


def test_run_tiled_output_device():
    x = torch.rand(1, 1, 9, 9)
    target = "cuda" if torch.cuda.is_available() else "cpu"
    out = run_tiled(lambda t: t * 2, x, tile=4, overlap=1, out_device=target)
    assert out.device.type == target and torch.equal(out.cpu(), x * 2)


def test_run_tiled_strided_network():
    x = torch.rand(1, 3, 19, 27)
    out = run_tiled(Stride8(), x, tile=16, overlap=8, stride=8)
    assert out.shape == x.shape
    # A constant image is mapped to itself whatever the tiling.
    flat = torch.full((1, 1, 19, 27), 0.25)
    assert torch.allclose(run_tiled(Stride8(), flat, tile=8, overlap=4, stride=8), flat)


def test_run_tiled_errors():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ConfigError, match="--tile=0"):
        run_tiled(lambda t: t, x, tile=0, overlap=0)
    with pytest.raises(ConfigError, match="--tile=12.*stride 8"):
        run_tiled(lambda t: t, x, tile=12, overlap=0, stride=8)
    with pytest.raises(ConfigError, match="overlap=-1"):
        run_tiled(lambda t: t, x, tile=8, overlap=-1)
    with pytest.raises(ConfigError, match="stride=0"):
        run_tiled(lambda t: t, x, tile=8, overlap=0, stride=0)
    with pytest.raises(ValueError, match="N x C x H x W"):
        run_tiled(lambda t: t, x[0], tile=8, overlap=0)


def test_choose_overlap():
    assert choose_overlap(7) == 3
    assert choose_overlap(1) == 0
    assert choose_overlap(500) == 64
    assert choose_overlap(500, cap=16) == 16
    with pytest.raises(ConfigError):
        choose_overlap(0)


# ---- reading and writing image files

def gradient(height=6, width=5, channels=3, levels=255):
    """Pixels that are exact multiples of 1/levels, different everywhere."""
    values = np.arange(height * width * channels).reshape(height, width, channels) % (levels + 1)
    return (values / levels).astype(np.float32)


def test_gray_and_rgb_round_trip(tmp_path):
    for channels in (1, 3):
        pixels = gradient(channels=channels)
        write_image_file(tmp_path / f"{channels}.png", pixels)
        image = read_image_file(tmp_path / f"{channels}.png")
        assert image.mode == ("L" if channels == 1 else "RGB") and image.bits == 8
        assert image.pixels.dtype == np.float32 and image.pixels.shape == (6, 5, channels)
        assert image.alpha is None
        np.testing.assert_allclose(image.pixels, pixels, atol=1e-6)


def test_rgba_keeps_alpha(tmp_path):
    pixels, alpha = gradient(), gradient(channels=1)[..., 0][::-1].copy()
    for suffix in (".png", ".tif", ".webp"):
        write_image_file(tmp_path / f"a{suffix}", pixels, alpha)
        image = read_image_file(tmp_path / f"a{suffix}")
        assert image.mode == "RGBA"
        np.testing.assert_allclose(image.alpha, alpha, atol=1e-6)
        visible = alpha > 0  # WebP lossless may drop colour under fully transparent pixels
        np.testing.assert_allclose(image.pixels[visible], pixels[visible], atol=1e-6)
    # Gray with alpha stays gray.
    write_image_file(tmp_path / "la.png", pixels[..., :1], alpha)
    image = read_image_file(tmp_path / "la.png")
    assert image.mode == "LA" and image.pixels.shape == (6, 5, 1)
    np.testing.assert_allclose(image.alpha, alpha, atol=1e-6)


def test_alpha_is_resized_to_the_result(tmp_path):
    alpha = np.zeros((4, 4), np.float32)
    alpha[:, 2:] = 1.0
    write_image_file(tmp_path / "x.png", np.full((8, 8, 3), 0.5, np.float32), alpha)
    image = read_image_file(tmp_path / "x.png")
    assert image.alpha.shape == (8, 8)
    assert image.alpha[:, 0].max() == 0.0 and image.alpha[:, -1].min() == 1.0


def test_sixteen_bit_gray(tmp_path):
    values = np.array([[0, 1, 2, 257], [1000, 32767, 65534, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "in.png")
    image = read_image_file(tmp_path / "in.png")
    assert image.bits == 16 and image.mode.startswith("I") and image.pixels.shape == (2, 4, 1)
    np.testing.assert_allclose(image.pixels[..., 0] * 65535, values, atol=1e-3)
    for suffix in (".png", ".tif"):
        write_image_file(tmp_path / f"out{suffix}", image.pixels, bits=16)
        with Image.open(tmp_path / f"out{suffix}") as again:
            assert np.array_equal(np.asarray(again).astype(np.int64), values.astype(np.int64))
    # 16-bit colour is written with 8 bits: Pillow cannot write 16-bit RGB.
    write_image_file(tmp_path / "rgb.png", gradient(), bits=16)
    assert read_image_file(tmp_path / "rgb.png").bits == 8


def test_palette(tmp_path):
    rgb = (gradient(channels=3, levels=3) * 255).astype(np.uint8)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    image = read_image_file(tmp_path / "p.png")
    assert image.mode == "P" and image.alpha is None and image.pixels.shape == (6, 5, 3)
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB")) / 255.0
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    write_image_file(tmp_path / "p2.png", image.pixels)
    np.testing.assert_allclose(read_image_file(tmp_path / "p2.png").pixels, image.pixels, atol=1e-6)
    # A transparent palette entry becomes alpha 0 there.
    palette = Image.fromarray(np.array([[0, 1], [1, 2]], np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette.save(tmp_path / "t.png", transparency=1)
    image = read_image_file(tmp_path / "t.png")
    assert np.array_equal(image.alpha, np.array([[1, 0], [0, 1]], np.float32))
    np.testing.assert_allclose(image.pixels[0, 0], [1, 0, 0])


def test_other_modes(tmp_path):
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1").save(tmp_path / "b.png")
    image = read_image_file(tmp_path / "b.png")
    assert image.mode == "1" and np.array_equal(image.pixels[..., 0], [[0, 1], [1, 0]])
    Image.new("CMYK", (3, 2), (0, 255, 255, 0)).save(tmp_path / "c.tif")  # pure red ink
    image = read_image_file(tmp_path / "c.tif")
    assert image.mode == "CMYK" and image.pixels.shape == (2, 3, 3)
    np.testing.assert_allclose(image.pixels[0, 0], [1, 0, 0])


def test_jpeg(tmp_path):
    pixels = np.full((16, 16, 3), [0.2, 0.5, 0.8], np.float32)
    write_image_file(tmp_path / "x.jpg", pixels)
    image = read_image_file(tmp_path / "x.jpg")
    assert image.mode == "RGB" and image.alpha is None
    assert np.abs(image.pixels - pixels).max() < 3 / 255
    # JPEG has no alpha: a transparent image is laid over white.
    write_image_file(tmp_path / "a.jpeg", pixels * 0, np.zeros((16, 16), np.float32))
    assert read_image_file(tmp_path / "a.jpeg").pixels.min() > 250 / 255


def test_exif_rotation(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display turned 90 degrees clockwise
    Image.fromarray(array).save(tmp_path / "r.png", exif=exif)
    image = read_image_file(tmp_path / "r.png")
    assert image.pixels.shape == (3, 2, 1)
    np.testing.assert_allclose(image.pixels[..., 0] * 255, np.rot90(array, k=-1), atol=1e-4)


def test_read_errors(tmp_path):
    with pytest.raises(DataError, match="missing.png: no such file"):
        read_image_file(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match="notes.png: not an image"):
        read_image_file(tmp_path / "notes.png")
    write_image_file(tmp_path / "whole.png", np.random.default_rng(0).random((64, 64, 3)))
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match="cut.png: unreadable or truncated"):
        read_image_file(tmp_path / "cut.png")


def test_overwrite_and_atomic_write(tmp_path):
    target = tmp_path / "out.png"
    write_image_file(target, gradient())
    original = target.read_bytes()
    with pytest.raises(DataError, match="exists; pass --force to overwrite"):
        write_image_file(target, gradient() * 0)
    assert target.read_bytes() == original
    write_image_file(target, gradient() * 0, force=True)
    assert read_image_file(target).pixels.max() == 0
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == ["out.png"]
    # Failures leave the old file and no temporary file behind.
    kept = target.read_bytes()
    with pytest.raises(DataError, match="'.gif'"):
        write_image_file(tmp_path / "out.gif", gradient())
    with pytest.raises(ValueError, match="pixels"):
        write_image_file(target, np.zeros((4, 4, 2)), force=True)
    assert target.read_bytes() == kept
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == ["out.png"]


def test_failed_save_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    write_image_file(target, gradient())
    kept = target.read_bytes()

    def broken_save(self, fp, format=None, **options):
        fp.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image_file(target, gradient() * 0, force=True)
    assert target.read_bytes() == kept
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == ["out.png"]


def test_to_model_channels():
    rgb = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]], np.float32)
    gray = to_model_channels(rgb, 1)
    assert gray.shape == (1, 3, 1)
    np.testing.assert_allclose(gray[..., 0], [[0.299, 0.587, 1.0]], atol=1e-6)
    assert np.array_equal(to_model_channels(gray, 3), np.repeat(gray, 3, axis=-1))
    assert to_model_channels(rgb, 3) is rgb
    with pytest.raises(ConfigError):
        to_model_channels(rgb, 2)


def test_output_path():
    assert output_path("photos/cat.jpg", "out") == output_path("cat.jpeg", "out", "png")
    assert str(output_path("photos/cat.jpg", "out", ".tif")).endswith(os.path.join("out", "cat.tif"))


def test_list_inputs(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.png", "a.JPG", ".hidden.png", "notes.txt", "sub/c.png"):
        (folder / name).write_bytes(b"")
    single = tmp_path / "single.webp"
    single.write_bytes(b"")
    assert list_inputs([str(folder), str(single), str(folder / "b.png")]) == [
        folder / "a.JPG", folder / "b.png", single]
    with pytest.raises(DataError, match="nowhere: no such file or folder"):
        list_inputs([str(folder), str(tmp_path / "nowhere")])
    (folder / "sub" / "c.png").unlink()
    with pytest.raises(DataError, match="sub: folder holds no images"):
        list_inputs([str(folder / "sub")])
    with pytest.raises(DataError, match="no input images"):
        list_inputs([])


def test_bmp_has_no_alpha(tmp_path):
    write_image_file(tmp_path / "z.bmp", np.zeros((2, 2, 1), np.float32), np.zeros((2, 2), np.float32))
    image = read_image_file(tmp_path / "z.bmp")
    assert image.alpha is None and image.pixels.min() == 1.0  # laid over white
