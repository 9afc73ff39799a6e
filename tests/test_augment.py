"""Tests for differentiable augmentation and the ADA controller (ganforge.data.augment).

Every random draw comes from a seeded generator, so each test is deterministic.
"""
from __future__ import annotations

import json

import pytest
import torch

from ganforge.data.augment import (AUGMENTS, AdaptiveAugment, augment, color, cutout, flip,
                                   parse_policy, translate)
from ganforge.errors import CheckpointError, ConfigError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 8, c: int = 3, size: int = 16, seed: int = 0, **kwargs) -> torch.Tensor:
    """Uniform in (-1, 1): no exact zeros, so a 0 in an output was written by the op."""
    return torch.rand(n, c, size, size, generator=gen(seed), **kwargs).mul(2).sub(1)


def changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per sample: does a differ from b anywhere?"""
    return (a != b).flatten(1).any(1)


# --------------------------------------------------------------------------- every op

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_op_keeps_shape_dtype_device(name, dtype, device):
    x = images(5, 3, 12, dtype=dtype).to(device)
    out = AUGMENTS[name](x, generator=gen())
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert out is not x


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_op_does_not_modify_input(name):
    x = images(6)
    before = x.clone()
    AUGMENTS[name](x, generator=gen())
    assert torch.equal(x, before)


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_op_reproducible_with_seed(name):
    x = images(32)
    first = AUGMENTS[name](x, generator=gen(1))
    assert torch.equal(first, AUGMENTS[name](x, generator=gen(1)))
    assert not torch.equal(first, AUGMENTS[name](x, generator=gen(2)))


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_op_global_rng_when_no_generator(name):
    x = images(32)
    torch.manual_seed(5)
    first = AUGMENTS[name](x)
    torch.manual_seed(5)
    assert torch.equal(first, AUGMENTS[name](x))


@pytest.mark.parametrize("name", ["flip", "color"])
def test_grad_of_sum_is_one_everywhere(name):
    # flip permutes pixels; color's saturation and contrast keep the channel / image mean,
    # and brightness adds a constant: d sum(out) / dx = 1 for every pixel in both cases.
    x = images(8).requires_grad_()
    AUGMENTS[name](x, generator=gen()).sum().backward()
    assert x.grad is not None
    assert torch.allclose(x.grad, torch.ones_like(x), atol=1e-5)


def test_grad_translate_is_one_exactly_on_kept_pixels():
    x = images(16).requires_grad_()
    out = translate(x, generator=gen())
    out.sum().backward()
    assert set(x.grad.unique().tolist()) == {0.0, 1.0}
    # As many inputs reach the output as output pixels are not border fill.
    assert torch.equal(x.grad.flatten(1).sum(1), (out != 0).flatten(1).sum(1).to(x.dtype))


def test_grad_cutout_is_zero_exactly_inside_the_square():
    x = images(8).requires_grad_()
    out = cutout(x, generator=gen())
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).to(x.dtype))
    assert (x.grad == 0).any() and (x.grad == 1).any()


def test_grad_through_weighted_loss():
    # A non-uniform upstream gradient: every op still passes some of it back to x.
    weights = images(8, seed=9)
    for name, op in AUGMENTS.items():
        x = images(8).requires_grad_()
        (op(x, generator=gen()) * weights).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, name


# --------------------------------------------------------------------------- translate

@pytest.mark.parametrize("fraction", [0.0, 0.125, 0.25])
def test_translate_moves_bright_pixel_within_shift(fraction):
    n, size, centre = 400, 32, 16
    shift = int(size * fraction + 0.5)
    x = torch.zeros(n, 1, size, size)
    x[:, 0, centre, centre] = 1.0
    out = translate(x, fraction, generator=gen())
    # The pixel stays inside (centre +- shift is in the frame), so it is conserved.
    assert torch.equal(out.flatten(1).sum(1), torch.ones(n))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    where = out[:, 0].flatten(1).argmax(1)
    dy, dx = where // size - centre, where % size - centre
    assert dy.abs().max() == shift and dx.abs().max() == shift   # the full range is used
    assert dy.min() == -shift and dx.min() == -shift


def test_translate_drops_pixels_shifted_out():
    n, size = 400, 16
    x = torch.zeros(n, 1, size, size)
    x[:, 0, 0, 0] = 1.0   # a corner pixel: any negative shift pushes it out
    out = translate(x, 0.25, generator=gen())
    sums = out.flatten(1).sum(1)
    assert set(sums.tolist()) == {0.0, 1.0}
    kept = sums == 1
    where = out[kept, 0].flatten(1).argmax(1)
    assert (where // size).max() <= 4 and (where % size).max() <= 4
    # Dropped exactly when it moved up or left: P(dy >= 0 and dx >= 0) = (5/9)^2.
    assert abs(kept.float().mean().item() - 25 / 81) < 0.08


def test_translate_rectangular_and_zero():
    x = images(4, 3, 8)[:, :, :, :6].contiguous()
    assert translate(x, generator=gen()).shape == (4, 3, 8, 6)
    assert torch.equal(translate(torch.zeros(8, 3, 16, 16), 0.5, generator=gen()),
                       torch.zeros(8, 3, 16, 16))
    assert torch.equal(translate(x, 0.0, generator=gen()), x)


def test_translate_moves_content_rigidly():
    x = images(16, 2, 16)
    out = translate(x, generator=gen())
    for i in range(16):
        ys, xs = torch.nonzero(out[i, 0] != 0, as_tuple=True)
        top, left = ys.min().item(), xs.min().item()
        bottom, right = ys.max().item() + 1, xs.max().item() + 1
        height, width = bottom - top, right - left
        # The kept block equals a same-size block of the input at the opposite corner.
        src_top = 0 if top > 0 else 16 - height
        src_left = 0 if left > 0 else 16 - width
        assert torch.equal(out[i, :, top:bottom, left:right],
                           x[i, :, src_top:src_top + height, src_left:src_left + width])


def test_fraction_out_of_range_rejected():
    with pytest.raises(ValueError):
        translate(images(), 1.5)
    with pytest.raises(ValueError):
        cutout(images(), -0.1)


# --------------------------------------------------------------------------- cutout

@pytest.mark.parametrize("fraction,side", [(0.5, 8), (0.25, 4), (0.3, 5)])
def test_cutout_zeroes_one_square_of_right_size(fraction, side):
    n = 64
    x = images(n, 3, 16)
    out = cutout(x, fraction, generator=gen())
    tops = set()
    for i in range(n):
        zero = out[i] == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # all channels
        ys, xs = torch.nonzero(zero[0], as_tuple=True)
        top, left = ys.min().item(), xs.min().item()
        assert ys.max().item() - top + 1 == side and xs.max().item() - left + 1 == side
        assert zero[0].sum().item() == side * side          # filled: a solid square
        tops.add((top, left))
    assert torch.equal(out[out != 0], x[out != 0])          # the rest is untouched
    assert len(tops) > n // 4                                  # positions vary


def test_cutout_zero_stays_zero_and_fraction_zero_is_identity():
    assert torch.equal(cutout(torch.zeros(4, 3, 8, 8), generator=gen()), torch.zeros(4, 3, 8, 8))
    x = images()
    assert torch.equal(cutout(x, 0.0, generator=gen()), x)
    assert (cutout(x, 1.0, generator=gen()) == 0).all()


# --------------------------------------------------------------------------- flip

def test_flip_matches_torch_flip_per_sample():
    n = 200
    x = images(n, 3, 8)
    out = flip(x, generator=gen())
    mirrored = torch.flip(x, dims=[-1])
    is_flipped = (out == mirrored).flatten(1).all(1)
    is_same = (out == x).flatten(1).all(1)
    assert (is_flipped ^ is_same).all()                       # each sample is one or the other
    assert abs(is_flipped.float().mean().item() - 0.5) < 0.1


# --------------------------------------------------------------------------- color

def test_color_on_single_channel_images():
    x = images(16, 1, 8)
    out = color(x, generator=gen())
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert changed(out, x).all()


def test_color_keeps_gray_rgb_gray():
    gray = images(16, 1, 8).repeat(1, 3, 1, 1)
    out = color(gray, generator=gen())
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 0], out[:, 2])
    # Per sample an affine map of the input: out = a x + b with a = contrast in [0.5, 1.5).
    for i in range(16):
        a = torch.linalg.lstsq(torch.stack([gray[i, 0].flatten(), torch.ones(64)], 1),
                               out[i, 0].flatten()[:, None]).solution[0].item()
        assert 0.5 - 1e-4 <= a < 1.5 + 1e-4


def test_color_brightness_range_on_flat_images():
    # A flat image has no saturation or contrast to change: only brightness in [-0.5, 0.5).
    n = 500
    x = torch.full((n, 3, 4, 4), 0.2)
    out = color(x, generator=gen())
    delta = out - x
    assert torch.allclose(delta, delta[:, :1, :1, :1].expand_as(delta), atol=1e-6)
    assert delta.min() >= -0.5 - 1e-6 and delta.max() < 0.5 + 1e-6
    assert delta.min() < -0.45 and delta.max() > 0.45
    assert delta.flatten(1)[:, 0].unique().numel() > n // 2    # one draw per sample


def test_color_saturation_range_on_colour_images():
    # A per-pixel-mean-zero colour image: brightness and contrast scale it by c in [0.5, 1.5),
    # saturation by s in [0, 2): the total factor spans [0, 3).
    n = 500
    base = torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1).expand(n, 3, 4, 4) * 0.3
    out = color(base, generator=gen())
    centred = out - out.mean(dim=1, keepdim=True)
    factor = centred[:, 0, 0, 0] / 0.3
    assert factor.min() >= -1e-5 and factor.max() < 3.0
    assert factor.min() < 0.1 and factor.max() > 2.0


# --------------------------------------------------------------------------- augment / policy

def test_parse_policy():
    assert parse_policy("translation,cutout") == ["translation", "cutout"]
    assert parse_policy(" translation , color ,") == ["translation", "color"]
    assert parse_policy("") == []
    assert parse_policy(["flip"]) == ["flip"]


def test_unknown_op_raises_config_error_with_valid_names():
    with pytest.raises(ConfigError) as info:
        parse_policy("translation,cutuot")
    message = str(info.value)
    assert "cutuot" in message and "did you mean 'cutout'" in message
    assert all(name in message for name in AUGMENTS)
    with pytest.raises(ConfigError, match="valid: color, cutout, flip, translation"):
        augment(images(), ["rotate"], p=0.0)       # checked even when nothing would be applied


def test_probability_out_of_range_rejected():
    with pytest.raises(ConfigError):
        augment(images(), "flip", p=1.5)


def test_p_zero_returns_x_exactly():
    x = images(16)
    g = gen()
    state = g.get_state()
    out = augment(x, "translation,cutout,color,flip", p=0.0, generator=g)
    assert torch.equal(out, x)
    assert out is x and torch.equal(g.get_state(), state)   # no work, no draws


def test_empty_policy_is_identity():
    x = images(16)
    assert torch.equal(augment(x, "", p=1.0, generator=gen()), x)


def test_p_one_translation_changes_almost_every_sample():
    n = 512
    x = images(n, 3, 16)
    out = augment(x, "translation", p=1.0, generator=gen())
    # Only a (0, 0) shift leaves a sample as it is: 1 in 25 with shifts in [-2, 2].
    assert changed(out, x).float().mean() > 0.9


def test_p_one_equals_op_on_whole_batch():
    x = images(16)
    assert torch.equal(augment(x, ["cutout"], p=1.0, generator=gen(3)),
                       cutout(x, generator=gen(3)))


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_p_fraction_changes_about_p_of_the_samples(p):
    n = 2000
    x = images(n, 3, 8)
    out = augment(x, "cutout", p=p, generator=gen())   # cutout always changes a sample
    rate = changed(out, x).float().mean().item()
    assert abs(rate - p) < 0.05
    # Unchosen samples are the input exactly; chosen ones are a cutout of it.
    same = ~changed(out, x)
    assert torch.equal(out[same], x[same])
    assert ((out[~same] == 0).flatten(1).sum(1) == 3 * 4 * 4).all()


def test_ops_are_chosen_independently():
    n = 4000
    x = images(n, 1, 8)
    out = augment(x, "cutout,flip", p=0.5, generator=gen())
    cut = (out == 0).flatten(1).any(1)
    # flip-only and cutout-only both happen; cutout rate is about p.
    assert abs(cut.float().mean().item() - 0.5) < 0.05
    assert (changed(out, x) & ~cut).any()


def test_augment_reproducible_and_differentiable():
    x = images(32).requires_grad_()
    policy = "color,translation,cutout"
    out = augment(x, policy, p=0.5, generator=gen(4))
    assert torch.equal(out, augment(x, policy, p=0.5, generator=gen(4)))
    assert not torch.equal(out, augment(x, policy, p=0.5, generator=gen(5)))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    untouched = ~changed(out.detach(), x.detach())
    assert untouched.any()
    assert torch.equal(x.grad[untouched], torch.ones_like(x[untouched]))


# --------------------------------------------------------------------------- ADA

def run(ada: AdaptiveAugment, logits: torch.Tensor, steps: int, batch: int = 64):
    returns, ps = [], []
    for _ in range(steps):
        ada.observe(logits)
        returns.append(ada.update(batch))
        ps.append(ada.p)
    return returns, ps


def test_ada_overfitting_raises_p_by_exact_step_and_clamps():
    batch, interval, speed = 64, 4, 1000
    ada = AdaptiveAugment(target=0.6, speed_images=speed, interval=interval, max_p=0.8)
    returns, ps = run(ada, torch.full((batch,), 3.0), 4 * interval * 4, batch)
    increment = batch * interval / speed          # 0.256
    adjustments = [r for r in returns if r is not None]
    assert adjustments == [1.0] * 16
    expected, p = [], 0.0
    for step in range(1, 4 * interval * 4 + 1):
        if step % interval == 0:
            p = min(p + increment, 0.8)
        expected.append(p)
    assert ps == pytest.approx(expected, abs=1e-12)
    assert ps[interval - 1] == pytest.approx(increment, abs=1e-12)
    assert ps[2 * interval - 1] == pytest.approx(2 * increment, abs=1e-12)
    assert ada.p == 0.8


def test_ada_underfitting_lowers_p_and_clamps_at_zero():
    ada = AdaptiveAugment(speed_images=1000, interval=2, p=0.5)
    returns, ps = run(ada, -torch.ones(32, 1), 20, batch=32)   # 10 x 0.064 > 0.5
    step = 32 * 2 / 1000
    assert returns[1] == -1.0
    assert ps[1] == pytest.approx(0.5 - step) and ps[3] == pytest.approx(0.5 - 2 * step)
    assert ps[-1] == 0.0 and min(ps) == 0.0


def test_ada_update_returns_none_between_adjustments():
    ada = AdaptiveAugment(interval=4)
    returns, ps = run(ada, torch.ones(8), 12)
    assert [r is not None for r in returns] == [False, False, False, True] * 3
    assert ps[0] == ps[1] == ps[2] == 0.0 and ps[3] > 0.0


def test_ada_mean_sign_over_interval_and_target():
    ada = AdaptiveAugment(target=0.5, interval=2, speed_images=100)
    ada.observe(torch.tensor([1.0, 2.0, -1.0, 0.5]))      # signs sum 2
    assert ada.update(10) is None
    ada.observe(torch.tensor([[-3.0], [4.0]]))             # signs sum 0; total 2 / 6
    r = ada.update(10)
    assert r == pytest.approx(1 / 3)
    assert ada.p == 0.0                                    # below target: stays clamped at 0
    ada = AdaptiveAugment(target=0.5, interval=1, speed_images=100, p=0.3)
    ada.observe(torch.tensor([1.0, -1.0, 2.0, 0.5]))          # exactly the target
    assert ada.update(10) == 0.5 and ada.p == 0.3          # no move at r_t == target


def test_ada_observe_keeps_tensor_and_ignores_grad():
    ada = AdaptiveAugment(interval=1)
    logits = torch.randn(16, requires_grad=True)
    ada.observe(logits)
    assert isinstance(ada._sign_sum, torch.Tensor) and not ada._sign_sum.requires_grad
    assert ada.update(16) == pytest.approx(logits.detach().sign().mean().item())


def test_ada_adjustment_without_observation_keeps_p():
    ada = AdaptiveAugment(interval=1, p=0.4)
    assert ada.update(64) is None and ada.p == 0.4


def test_ada_state_dict_round_trip_continues_identically():
    logits = [torch.randn(16, generator=gen(i)) + 0.8 for i in range(40)]
    reference = AdaptiveAugment(speed_images=2000, interval=4)
    ref_returns, ref_ps = [], []
    for t in logits:
        reference.observe(t)
        ref_returns.append(reference.update(16))
        ref_ps.append(reference.p)

    first = AdaptiveAugment(speed_images=2000, interval=4)
    for t in logits[:10]:
        first.observe(t)
        first.update(16)
    first.observe(logits[10])                    # interrupted mid-interval, mid-step
    state = json.loads(json.dumps(first.state_dict()))
    assert all(type(v) in (int, float) for v in state.values())
    assert state["step"] == 10 and state["count"] == 16 * 3

    resumed = AdaptiveAugment(speed_images=2000, interval=4)
    resumed.load_state_dict(state)
    assert resumed.p == first.p == ref_ps[9]
    returns, ps = [resumed.update(16)], [resumed.p]
    for t in logits[11:]:
        resumed.observe(t)
        returns.append(resumed.update(16))
        ps.append(resumed.p)
    assert ps == ref_ps[10:] and returns == ref_returns[10:]
    assert len(set(ref_ps)) > 3                     # p actually moved along the way


def test_ada_load_state_dict_rejects_incomplete_state():
    with pytest.raises(CheckpointError, match="count"):
        AdaptiveAugment().load_state_dict({"p": 0.1, "step": 3, "sign_sum": 0.0})


def test_ada_rejects_bad_settings():
    with pytest.raises(ConfigError):
        AdaptiveAugment(p=0.9, max_p=0.5)
    with pytest.raises(ConfigError):
        AdaptiveAugment(interval=0)
    with pytest.raises(ConfigError):
        AdaptiveAugment(speed_images=0)
