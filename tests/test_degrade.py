"""Tests for the degradations that make editing inputs (ganforge.data.degrade).

Every random draw comes from a seeded generator, so each test is deterministic.
"""
from __future__ import annotations

import pytest
import torch

from ganforge.data.degrade import DEGRADATIONS, Degraded, parse_degradation
from ganforge.errors import ConfigError, DataError

MASKS = ["mask:box", "mask:center", "mask:free-form", "mask:region"]
# One spec per registered op, so a new op that is not listed here fails test_every_op_listed.
SPECS = MASKS + ["downscale:2", "noise:25", "gray", "edges", "blur:1", "jpeg:40", "lowlight:3"]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 4, c: int = 3, h: int = 16, w: int | None = None, seed: int = 0,
           **kwargs) -> torch.Tensor:
    """Uniform in (-1, 1): no exact zeros, so a 0 in a source was written by a mask."""
    return torch.rand(n, c, h, w or h, generator=gen(seed), **kwargs).mul(2).sub(1)


def regions_for(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Instance maps for x: ids 0 and 2 present in every image (left and right halves of the
    top rows), id 1 absent, -1 elsewhere; classes 5, 6, 7."""
    n, _, h, w = x.shape
    regions = torch.full((n, h, w), -1, dtype=torch.long)
    regions[:, : h // 2, : w // 2] = 0
    regions[:, : h // 2, w // 2:] = 2
    return regions, torch.tensor([[5, 6, 7]]).repeat(n, 1)


def run(spec: str, x: torch.Tensor, seed: int = 0) -> Degraded:
    regions, labels = regions_for(x)
    return parse_degradation(spec)(x, gen(seed), regions, labels)


# --------------------------------------------------------------------------- every op

def test_every_op_listed():
    assert sorted(spec.split(":")[0] if not spec.startswith("mask") else spec
                  for spec in SPECS) == DEGRADATIONS.names()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spec", SPECS)
def test_op_shape_dtype_range(spec, dtype):
    x = images(dtype=dtype)
    out = run(spec, x)
    degradation = parse_degradation(spec)
    n, c, h, w = x.shape
    s = degradation.scale
    assert out.source.shape == (n, degradation.in_channels(c), h // s, w // s)
    assert out.source.dtype == dtype and out.source.min() >= -1 and out.source.max() <= 1
    assert (out.mask is not None) == degradation.makes_mask
    if out.mask is not None:
        assert out.mask.shape == (n, 1, h, w) and out.mask.dtype == dtype
        assert set(out.mask.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("spec", SPECS)
def test_op_reproducible_and_keeps_input(spec):
    x = images()
    before = x.clone()
    first = run(spec, x, seed=1)
    second = run(spec, x, seed=1)
    assert torch.equal(x, before)
    assert torch.equal(first.source, second.source)
    if first.mask is not None:
        assert torch.equal(first.mask, second.mask)


@pytest.mark.parametrize("spec", ["mask:box", "mask:free-form", "noise:25", "mask:region"])
def test_random_ops_differ_by_seed(spec):
    x = images(8)
    assert not torch.equal(run(spec, x, seed=1).source, run(spec, x, seed=2).source)


@pytest.mark.parametrize("spec", MASKS)
def test_mask_fills_hole_with_zero_and_keeps_the_rest(spec):
    x = images(6)
    out = run(spec, x)
    hole = out.mask.bool().expand_as(x)
    assert hole.any(dim=(1, 2, 3)).all()
    assert (out.source[hole] == 0.0).all()
    assert torch.equal(out.source[~hole], x[~hole])


def test_identity():
    x = images()
    degradation = parse_degradation("")
    out = degradation(x)
    assert out.source is x and out.mask is None and out.region_labels is None
    assert degradation.scale == 1 and not degradation.makes_mask and degradation.in_channels(3) == 3


def test_spec_is_normalised():
    degradation = parse_degradation(" noise:25.0 + jpeg: 40 ")
    assert degradation.spec == "noise:25+jpeg:40"
    assert repr(degradation) == "Degradation('noise:25+jpeg:40')"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("spec", ["mask:free-form+noise:25", "mask:box", "mask:region"])
def test_same_generator_same_result_on_any_device(spec):
    x = images(8, h=32)
    cpu = run(spec, x, seed=3)
    regions, labels = regions_for(x)
    cuda = parse_degradation(spec)(x.cuda(), gen(3), regions.cuda(), labels.cuda())
    assert cuda.source.is_cuda and cuda.mask.is_cuda
    agree = (cuda.mask.cpu() == cpu.mask).expand_as(x)     # a stroke's edge may round apart
    assert agree.float().mean() > 0.999
    assert torch.allclose(cuda.source.cpu()[agree], cpu.source[agree], atol=1e-6)
    if spec == "mask:region":
        assert torch.equal(cuda.region_labels.cpu(), cpu.region_labels)


# --------------------------------------------------------------------------- known values

def test_noise_std():
    x = torch.zeros(4, 3, 64, 64)
    noise = run("noise:25", x).source
    assert noise.mean().abs() < 0.005
    assert noise.std().item() == pytest.approx(25 / 127.5, rel=0.02)


def test_downscale_size_and_constant():
    x = torch.full((2, 3, 16, 24), 0.3)
    out = run("downscale:4", x).source
    assert out.shape == (2, 3, 4, 6)
    assert torch.allclose(out, torch.full_like(out, 0.3), atol=1e-6)
    assert parse_degradation("downscale:2+downscale:2").scale == 4


def test_downscale_needs_divisible_size():
    with pytest.raises(ConfigError, match="18x18"):
        run("downscale:4", images(h=18))


def test_gray_is_luma():
    colour = torch.tensor([0.2, -0.4, 0.6]).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    out = run("gray", colour).source
    assert out.shape == (2, 1, 4, 4)
    assert torch.allclose(out, torch.tensor(0.299 * 0.2 - 0.587 * 0.4 + 0.114 * 0.6))
    assert torch.equal(run("gray", images(c=1)).source, images(c=1))
    assert parse_degradation("gray").in_channels(3) == 1


def test_blur_keeps_constant_and_smooths_noise():
    flat = torch.full((2, 3, 16, 16), -0.4)
    assert torch.allclose(run("blur:1.5", flat).source, flat, atol=1e-6)
    noisy = torch.randn(2, 3, 32, 32, generator=gen()).mul(0.3)
    assert run("blur:1", noisy).source.var() < noisy.var() / 4


def test_blur_needs_room_for_the_kernel():
    with pytest.raises(ConfigError, match="blur:5"):
        run("blur:5", images(h=8))


def test_jpeg_error_grows_as_quality_falls():
    ramp = torch.linspace(-0.8, 0.8, 32)
    x = torch.stack([ramp.view(1, -1).expand(32, 32), ramp.view(-1, 1).expand(32, 32),
                     -ramp.view(1, -1).expand(32, 32)]).unsqueeze(0)     # smooth colour ramps
    fine = (run("jpeg:100", x).source - x).abs().mean()
    coarse = (run("jpeg:5", x).source - x).abs().mean()
    assert fine < 0.015 and coarse > 5 * fine
    assert torch.equal(run("jpeg:40", x).source, run("jpeg:40", x, seed=9).source)


def test_jpeg_gray():
    x = images(c=1)
    assert run("jpeg:90", x).source.shape == x.shape


def test_lowlight():
    out = run("lowlight:2", torch.tensor([1.0, 0.0, -1.0]).view(1, 1, 1, 3)).source.flatten()
    assert out.tolist() == [1.0, -0.5, -1.0]     # 0.5 ** 2 = 0.25 on the [0, 1] scale


def test_center_mask_area():
    out = run("mask:center", images(2, h=16, w=12))
    assert out.mask.sum((1, 2, 3)).tolist() == [8 * 6, 8 * 6]
    assert out.mask[0, 0, 4:12, 3:9].all()


def test_box_sides_within_bounds():
    h, w = 16, 24
    mask = run("mask:box", images(32, h=h, w=w)).mask[:, 0].bool()
    rows, cols = mask.any(2).sum(1), mask.any(1).sum(1)
    assert torch.equal(mask.sum((1, 2)), rows * cols)          # one filled rectangle
    assert rows.min() >= h / 4 and rows.max() <= h / 2
    assert cols.min() >= w / 4 and cols.max() <= w / 2
    assert len(set(rows.tolist())) > 1 and len(set(cols.tolist())) > 1


@pytest.mark.parametrize("size", [16, 48])
def test_free_form_share(size):
    share = run("mask:free-form", images(96, c=1, h=size)).mask.mean((1, 2, 3))
    assert (share > 0).all() and share.max() < 0.9
    assert 0.1 <= share.mean() <= 0.4


def test_composition_mask_then_noise():
    x = images(4, h=32)
    out = run("mask:center+noise:10", x)
    keep = ~out.mask.bool().expand_as(x)
    assert out.mask.sum() == 4 * 16 * 16
    residual = (out.source - x)[keep & (x.abs() < 0.8)]        # away from the clamp
    assert residual.std().item() == pytest.approx(10 / 127.5, rel=0.1)


def test_region_picks_a_present_instance():
    x = images(64, h=8)
    regions, labels = regions_for(x)
    labels = labels * torch.arange(1, 65).view(-1, 1)          # classes differ per image
    out = parse_degradation("mask:region")(x, gen(), regions, labels)
    picked = out.mask[:, 0, 0, 0].bool()                       # top-left is instance 0
    chosen = torch.where(picked, 0, 2)
    assert torch.equal(out.mask[:, 0].bool(), regions == chosen.view(-1, 1, 1))
    assert torch.equal(out.region_labels, labels.gather(1, chosen[:, None]).squeeze(1))
    assert 10 < picked.sum() < 54                               # both picked, roughly evenly


def test_region_errors():
    x = images(2, h=8)
    with pytest.raises(ConfigError, match="regions"):
        parse_degradation("mask:region")(x, gen())
    regions, labels = regions_for(x)
    regions[1] = -1
    with pytest.raises(DataError, match="instance"):
        parse_degradation("mask:region")(x, gen(), regions, labels)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("spec, part", [
    ("noise:abc", "noise:abc"), ("downscale:3.5", "downscale:3.5"), ("downscale:0", "downscale:0"),
    ("jpeg:0", "jpeg:0"), ("jpeg:101", "jpeg:101"), ("blur:-1", "blur:-1"), ("blur:0", "blur:0"),
    ("lowlight:0", "lowlight:0"), ("noise", "noise needs an argument"),
    ("gray:2", "gray takes no argument"), ("mask:box:3", "mask:box takes no argument"),
    ("noize:25", "did you mean 'noise'"), ("mask:boxx", "did you mean 'mask:box'"),
    ("jpeg:40++gray", "empty op"), ("mask:box+mask:center", "only one mask op"),
    ("downscale:2+mask:free-form", "mask ops must come first"),
])
def test_bad_spec(spec, part):
    with pytest.raises(ConfigError, match=part.replace("+", r"\+")) as error:
        parse_degradation(spec)
    assert spec in str(error.value)


def test_unknown_lists_valid_names():
    with pytest.raises(ConfigError, match="valid: blur, downscale"):
        parse_degradation("sharpen")


def test_noise_zero_is_identity():
    assert torch.equal(run("noise:0", images()).source, images())


def test_edges_draws_black_lines_where_the_image_changes():
    flat = torch.zeros(1, 3, 16, 16)
    assert torch.equal(run("edges", flat).source, torch.ones(1, 1, 16, 16))   # no edge: white
    step = torch.full((1, 3, 16, 16), -1.0)
    step[..., 8:] = 1.0                       # a vertical black-to-white step at column 8
    out = run("edges", step).source[0, 0]
    assert (out[:, 7:9] == -1).all() and (out[:, :6] == 1).all() and (out[:, 10:] == 1).all()
    assert parse_degradation("edges").in_channels(3) == 1


# --------------------------------------------------------------------------- free-form at a set scale

def test_free_form_scale_equals_plain_at_that_size():
    x = images(8, c=1, h=32)
    assert torch.equal(run("mask:free-form:32", x).mask, run("mask:free-form", x).mask)


def test_free_form_scale_keeps_stroke_size_and_share_on_a_larger_image():
    """Strokes drawn as on a 32-pixel image cover a 128-pixel one as much, but each is a
    quarter as wide as the image-sized ones: holes of the training crops' size on a photo."""
    x = images(8, c=1, h=128)
    scaled, plain = run("mask:free-form:32", x).mask, run("mask:free-form", x).mask
    assert 0.1 <= scaled.mean() <= 0.4 and 0.1 <= plain.mean() <= 0.4
    # Thin strokes leave most hole pixels near the hole's edge; wide ones do not.
    def edge_share(mask):
        inner = -torch.nn.functional.max_pool2d(-mask, 5, 1, 2)      # erosion by 2 pixels
        return 1 - inner.sum() / mask.sum()
    assert edge_share(scaled) > 2 * edge_share(plain)


@pytest.mark.parametrize("spec, part", [("mask:free-form:abc", "size in pixels"),
                                        ("mask:free-form:4", ">= 8"), ("mask:free-form:-5", ">= 8")])
def test_free_form_scale_errors(spec, part):
    with pytest.raises(ConfigError, match=part) as error:
        parse_degradation(spec)
    assert spec in str(error.value)
