"""The image-to-image families (unet, srresnet, dncnn) and their shared PatchGAN: shapes,
gradients, determinism, receptive fields, and the configurations they refuse."""
import pytest
import torch
import torch.nn.functional as F

import ganforge.models.dncnn  # noqa: F401  (registers the families until models/__init__ does)
import ganforge.models.srresnet  # noqa: F401
import ganforge.models.unet  # noqa: F401
from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import MODELS, DataShape, build_models
from ganforge.models.patchgan import (PatchGAN, patchgan_min_size, patchgan_output_size,
                                      patchgan_receptive_field)
from ganforge.models.unet import unet_receptive_field

FAMILIES = ("unet", "srresnet", "dncnn")
SMALL = {"unet": {"g_width": 4, "depth": 2, "max_width": 8, "d_width": 4, "d_layers": 1},
         "srresnet": {"n_blocks": 2, "width": 4, "d_width": 4, "d_layers": 1},
         "dncnn": {"depth": 3, "width": 4, "d_width": 4, "d_layers": 1}}


def build(name, channels=1, in_channels=None, mask=False, classes=0, scale=1, resolution=12,
          seed=0, **args):
    torch.manual_seed(seed)
    shape = DataShape(resolution, channels, classes, channels if in_channels is None else in_channels,
                      scale, mask)
    return build_models(ModelConfig(name=name, args={**SMALL[name], **args}), shape)


def cases():
    for name in FAMILIES:
        for channels in (1, 3):
            for mask in (False, True):
                # unet may change the channels (colorization) and take a class map.
                extra = [(4 - channels, 0), (channels, 3)] if name == "unet" else [(channels, 0)]
                for in_channels, classes in extra:
                    yield name, channels, in_channels, mask, classes


def test_families_are_registered_as_image_to_image():
    for name in FAMILIES:
        arch = MODELS.get(name)
        assert arch.objective == "image2image" and arch.resolutions is None
        assert arch.channels == (1, 3)
    assert MODELS.get("unet").labels == "optional"
    assert MODELS.get("srresnet").labels == MODELS.get("dncnn").labels == "never"


@pytest.mark.parametrize("name,channels,in_channels,mask,classes", list(cases()))
def test_shapes_and_gradients(name, channels, in_channels, mask, classes):
    nets = build(name, channels, in_channels, mask, classes, d_conditional=True)
    G, D = nets["G"], nets["D"]
    assert G.in_channels == in_channels + mask + classes == D.cond_channels
    assert (G.channels, G.scale) == (channels, 1)
    h, w = (12, 20) if name == "unet" else (7, 9)
    assert h % G.stride == 0 and w % G.stride == 0
    x = torch.randn(2, G.in_channels, h, w)
    y = G(x)
    assert y.shape == (2, channels, h, w) and torch.isfinite(y).all()
    if name == "unet":
        assert y.abs().max() <= 1   # tanh output
    logits = D(y, x)
    assert logits.shape == (2, 1, patchgan_output_size(h, 1), patchgan_output_size(w, 1))
    assert torch.isfinite(logits).all()
    (logits * torch.randn_like(logits)).sum().backward()
    for net in (G, D):
        for pname, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, f"{pname} got a zero gradient"


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_unet_and_patchgan_norms_train_every_parameter(norm):
    nets = build("unet", 3, mask=True, norm=norm, d_norm=norm)
    G, D = nets["G"], nets["D"]
    x = torch.randn(2, G.in_channels, 12, 16)
    logits = D(G(x), x)
    (logits * torch.randn_like(logits)).sum().backward()
    for net in (G, D):
        for pname, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_patchgan_takes_spectral_norm():
    from ganforge.losses.regularizers import add_spectral_norm
    D = add_spectral_norm(build("srresnet", 3)["D"])
    with torch.no_grad():
        for _ in range(20):   # settle the power iteration
            D(torch.randn(2, 3, 12, 12))
    weight = D.net[0].weight.flatten(1)
    assert torch.linalg.matrix_norm(weight.detach(), ord=2).item() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("name", FAMILIES)
def test_same_seed_same_networks_and_state_round_trip(name):
    a, b, c = build(name, seed=1), build(name, seed=1), build(name, seed=2)
    x = torch.randn(2, 1, 12, 12)
    for nets in (a, b, c):
        nets["G"].eval(), nets["D"].eval()

    def judge(nets):
        return nets["D"](x, x if nets["D"].cond_channels else None)
    assert torch.equal(a["G"](x), b["G"](x)) and torch.equal(judge(a), judge(b))
    assert not torch.equal(a["G"](x), c["G"](x)) and not torch.equal(judge(a), judge(c))
    c["G"].load_state_dict(a["G"].state_dict())
    c["D"].load_state_dict(a["D"].state_dict())
    assert torch.equal(a["G"](x), c["G"](x)) and torch.equal(judge(a), judge(c))


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("mask", [False, True])
def test_srresnet_scales(scale, mask):
    nets = build("srresnet", 3, mask=mask, scale=scale, d_conditional=True)
    G, D = nets["G"], nets["D"]
    assert (G.scale, G.stride) == (scale, 1)
    x = torch.randn(2, G.in_channels, 7, 9)
    y = G(x)
    assert y.shape == (2, 3, 7 * scale, 9 * scale) and torch.isfinite(y).all()
    # The conditional D sees the input upsampled to the output size.
    up = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False) if scale > 1 else x
    assert D(y, up).shape == (2, 1, patchgan_output_size(7 * scale, 1), patchgan_output_size(9 * scale, 1))


def test_srresnet_upsamplers_start_as_nearest_neighbour():
    """ICNR: the r*r sub-pixel copies of a channel start with the same kernel, so each
    upsampling stage starts as its conv followed by nearest-neighbour upsampling."""
    G = build("srresnet", 1, scale=4)["G"]
    feature = torch.randn(1, 4, 5, 6)
    first = G.tail[0]
    expected = F.interpolate(first[0](feature)[:, ::4], scale_factor=2, mode="nearest")
    assert torch.allclose(first(feature), expected)


@pytest.mark.parametrize("mask,unshuffle", [(False, 1), (True, 1), (True, 2)])
def test_dncnn_with_zero_last_layer_is_the_identity(mask, unshuffle):
    G = build("dncnn", 3, mask=mask, unshuffle=unshuffle)["G"]
    last = [m for m in G.net if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.zero_(), last.bias.zero_()
    x = torch.randn(2, G.in_channels, 6 * unshuffle, 9 * unshuffle)
    assert torch.equal(G(x), x[:, :3])


def test_dncnn_unshuffled_runs_its_layers_on_sub_images():
    """FFDNet's layout: the hidden layers see h/2 x w/2 maps with 4 times the input channels,
    and the model asks for sizes that are multiples of 2."""
    G = build("dncnn", 3, unshuffle=2)["G"]
    seen = []
    G.net[1].register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    assert G(torch.randn(1, 3, 8, 10)).shape == (1, 3, 8, 10)
    assert seen == [(1, 12, 4, 5)] and G.stride == 2


def _farthest_change(G, size, pixel):
    """Chebyshev distance, in input pixels, from `pixel` to the farthest output pixel that
    changes when that one input pixel changes (float64, so rounding cannot pass for a change)."""
    G = G.double().eval()
    x = torch.randn(1, G.in_channels, size, size, dtype=torch.float64)
    moved = x.clone()
    moved[0, :, pixel[0], pixel[1]] += 1.0
    with torch.no_grad():
        changed = (G(moved) - G(x)).abs().sum(1)[0] > 1e-9
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert len(rows) > 0
    # Output pixel o lies in input pixel o // scale.
    return max((rows // G.scale - pixel[0]).abs().max().item(), (cols // G.scale - pixel[1]).abs().max().item())


@pytest.mark.parametrize("name,scale,args", [("srresnet", 1, {}), ("srresnet", 2, {}), ("srresnet", 3, {}),
                                             ("srresnet", 4, {}), ("dncnn", 1, {}),
                                             ("dncnn", 1, {"unshuffle": 2}), ("dncnn", 1, {"unshuffle": 3})])
def test_receptive_field_bounds_the_influence_of_a_pixel(name, scale, args):
    G = build(name, 1, scale=scale, **args)["G"]
    radius = G.receptive_field // 2
    assert G.receptive_field == 2 * radius + 1
    stride = getattr(G, "stride", 1)
    size = -(-(2 * radius + 6) // stride) * stride   # a multiple of the stride
    # Every position inside a stride cell (an unshuffled model sees a pixel by its cell).
    farthest = max(_farthest_change(G, size, (radius + 2 + d, radius + 3 - d)) for d in range(max(2, stride)))
    assert farthest == radius   # honest, and tight


def test_unet_receptive_field_bounds_the_influence_of_a_pixel():
    G = build("unet", 1)["G"]   # depth 2
    radius = G.receptive_field // 2
    assert G.receptive_field == unet_receptive_field(2) == 2 * radius + 1
    size = 4 * (radius // 2 + 2)
    farthest = [_farthest_change(G, size, (size // 2 + d, size // 2 - d)) for d in range(4)]
    assert max(farthest) == radius


def test_unet_receptive_field_grows_with_depth():
    fields = [unet_receptive_field(d) for d in range(1, 9)]
    assert fields == sorted(fields) and fields[0] == 7 and fields[4] == 187


def test_patchgan_receptive_field_is_the_patch_one_logit_sees():
    assert [patchgan_receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]   # pix2pix's 70 x 70
    D = PatchGAN(1, width=4, layers=2, norm="none").double()
    x = torch.randn(1, 1, 64, 64, dtype=torch.float64, requires_grad=True)
    D(x)[0, 0, 5, 6].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    assert rows.max() - rows.min() + 1 == cols.max() - cols.min() + 1 == patchgan_receptive_field(2)


def test_patchgan_sizes_match_pix2pix():
    assert patchgan_output_size(256, 3) == 30
    assert patchgan_min_size(3) == 24 and patchgan_output_size(23, 3) == 0
    D = PatchGAN(3, cond_channels=3, width=4, layers=3, norm="instance")
    assert D(torch.randn(1, 3, 24, 40), torch.randn(1, 3, 24, 40)).shape == (1, 1, 1, 3)


def test_pix2pix_sizes_have_pix2pix_parameter_counts():
    """unet_256 and the basic 70 x 70 D of pix2pix (3 -> 3 channels, batch norm): 54.414 M and
    2.769 M parameters in its logs. This U-Net adds 64 + 512 biases, on the first and the
    innermost conv (no norm follows them; pix2pix leaves them without bias)."""
    with torch.device("meta"):
        nets = build("unet", 3, 3, resolution=256, g_width=64, depth=8, max_width=512, d_width=64,
                     d_layers=3)
    count = {k: sum(p.numel() for p in net.parameters()) for k, net in nets.items()}
    assert round((count["G"] - 64 - 512) / 1e6, 3) == 54.414
    assert count["D"] == 2_768_705 and round(count["D"] / 1e6, 3) == 2.769


def test_unet_dropout_in_the_three_decoder_layers_next_to_the_bottleneck():
    G = build("unet", 1, depth=4, dropout=0.5, resolution=16)["G"]
    drops = [i for i, layer in enumerate(G.up) if any(isinstance(m, torch.nn.Dropout) for m in layer)]
    assert drops == [0, 1, 2]
    x = torch.randn(2, 1, 16, 16)
    assert not torch.equal(G(x), G(x))
    G.eval()
    assert torch.equal(G(x), G(x))
    assert not any(isinstance(m, torch.nn.Dropout) for m in build("unet", 1, depth=4, resolution=16)["G"].modules())


def test_discriminator_condition_is_checked():
    D = build("unet", 3, 1)["D"]   # conditional by default
    y = torch.randn(1, 3, 12, 12)
    with pytest.raises(ValueError, match="conditional"):
        D(y)
    with pytest.raises(ValueError, match="does not fit"):
        D(y, torch.randn(1, 1, 6, 6))
    D = build("dncnn", 1)["D"]     # unconditional by default
    with pytest.raises(ValueError, match="unconditional"):
        D(torch.randn(1, 1, 12, 12), torch.randn(1, 1, 12, 12))


def test_unet_rejects_inputs_off_its_stride():
    G = build("unet", 1)["G"]
    with pytest.raises(ValueError, match="multiples of 4"):
        G(torch.randn(1, 1, 12, 10))


@pytest.mark.parametrize("name,kwargs,match", [
    ("unet", {"scale": 2}, "scale .*is 2"),
    ("unet", {"resolution": 10}, "data.resolution=10.*multiple of 4"),
    ("dncnn", {"channels": 3, "in_channels": 1}, "data.channels=3.*1-channel"),
    ("dncnn", {"scale": 2}, "scale .*is 2"),
    ("srresnet", {"scale": 5}, "scale 5"),
    ("srresnet", {"scale": 4, "resolution": 10}, "data.resolution=10"),
    ("unet", {"norm": "layer"}, "model.norm='layer'"),
    ("unet", {"d_norm": "spectral"}, "model.d_norm='spectral'"),
    ("unet", {"dropout": 1.0}, "model.dropout=1.0"),
    ("unet", {"depth": 0}, "model.depth=0"),
    ("srresnet", {"width": 0}, "model.width=0"),
    ("srresnet", {"res_scale": 0.0}, "model.res_scale=0.0"),
    ("dncnn", {"depth": 1}, "model.depth=1"),
    ("dncnn", {"d_layers": 0}, "model.d_layers=0"),
])
def test_impossible_configurations_are_config_errors(name, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build(name, **kwargs)


# --------------------------------------------------------------------------- unet residual

def test_smooth_fill_keeps_known_pixels_and_fills_smoothly():
    from ganforge.models.fill import smooth_fill

    ramp = torch.linspace(-1, 1, 40).view(1, 1, 1, 40).expand(2, 3, 40, 40)
    hole = torch.zeros(2, 1, 40, 40)
    hole[0, :, 10:30, 12:20] = 1
    hole[1, :, 5:8, :] = 1                                  # a band across the whole image
    filled = smooth_fill(ramp * (1 - hole), hole)
    assert torch.equal(filled[hole.expand_as(filled) == 0], ramp[hole.expand_as(ramp) == 0])
    # A ramp is harmonic: the fill should come close to it, far closer than mid-grey.
    inside = hole.expand_as(filled) == 1
    error = (filled - ramp)[inside].abs().mean()
    assert error < 0.1 * ramp[inside].abs().mean()
    assert smooth_fill(ramp, torch.ones(2, 1, 40, 40)).abs().max() == 0   # nothing known: mid-grey


def test_unet_residual_fills_the_hole_first_and_learns_a_correction():
    from ganforge.models.fill import smooth_fill

    G = build("unet", 3, mask=True, residual=True)["G"]
    x = torch.rand(2, 3, 12, 20) * 2 - 1
    hole = torch.zeros(2, 1, 12, 20)
    hole[..., 4:8, 4:12] = 1
    torch.nn.init.zeros_(G.up[-1][1].weight)
    torch.nn.init.zeros_(G.up[-1][1].bias)                 # no correction: the fill itself
    packed = torch.cat([x * (1 - hole), hole], 1)
    assert torch.allclose(G(packed), smooth_fill(x * (1 - hole), hole).clamp(-1, 1))
    G = build("unet", 3, mask=True, residual=True)["G"]     # a correction, and its gradients
    out = G(packed)
    assert not torch.allclose(out, smooth_fill(x * (1 - hole), hole))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())


def test_unet_residual_without_a_hole_returns_input_plus_correction():
    G = build("unet", 3, residual=True)["G"]
    x = torch.rand(2, 3, 12, 20) * 1.6 - 0.8
    torch.nn.init.zeros_(G.up[-1][1].weight)
    torch.nn.init.zeros_(G.up[-1][1].bias)
    assert torch.equal(G(x), x)


def test_unet_residual_needs_the_output_channels_in_the_input():
    with pytest.raises(ConfigError, match="model.residual.*1 channel.*output 3"):
        build("unet", 3, 1, mask=True, residual=True)
