"""Adversarial losses (values and gradients on hand-computed logits) and D regularisers."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ganforge.errors import ConfigError
from ganforge.losses import GAN_LOSSES, GANLoss, ns_d_loss, ns_d_loss_smoothed
from ganforge.losses.regularizers import (add_spectral_norm, clip_weights_, gradient_penalty,
                                          r1_penalty)

REAL, FAKE = [2.0, -1.0], [0.5]


def sp(x: float) -> float:
    return math.log1p(math.exp(x))


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def d_value_and_grads(name, real=REAL, fake=FAKE, **kw):
    r = torch.tensor(real, dtype=torch.float64, requires_grad=True)
    f = torch.tensor(fake, dtype=torch.float64, requires_grad=True)
    loss = GAN_LOSSES.get(name).d_loss(r, f, **kw)
    loss.backward()
    return loss.item(), r.grad.tolist(), f.grad.tolist()


def g_value_and_grad(name, fake=FAKE):
    f = torch.tensor(fake, dtype=torch.float64, requires_grad=True)
    loss = GAN_LOSSES.get(name).g_loss(f)
    loss.backward()
    return loss.item(), f.grad.tolist()


# --- registry ---------------------------------------------------------------------------

def test_registry_lists_losses_and_rejects_typos():
    assert {"ns", "lsgan", "wgan", "wgan-gp", "hinge"} <= set(GAN_LOSSES.names())
    with pytest.raises(ConfigError, match="wgan-gp"):
        GAN_LOSSES.get("wgan_gp")
    with pytest.raises(ConfigError):
        GAN_LOSSES.get("hinj")


def test_entries_carry_clipping_and_gradient_penalty_defaults():
    assert GAN_LOSSES.get("wgan").clip == 0.01
    assert GAN_LOSSES.get("wgan").gradient_penalty == 0.0
    assert GAN_LOSSES.get("wgan-gp").clip is None
    assert GAN_LOSSES.get("wgan-gp").gradient_penalty == 10.0
    for name in ("ns", "lsgan", "hinge"):
        assert GAN_LOSSES.get(name).clip is None
        assert GAN_LOSSES.get(name).gradient_penalty == 0.0
    # The same critic and generator losses for both Wasserstein entries.
    assert GAN_LOSSES.get("wgan").d_loss is GAN_LOSSES.get("wgan-gp").d_loss
    assert GAN_LOSSES.get("wgan").g_loss is GAN_LOSSES.get("wgan-gp").g_loss
    # Defaults: a bare GANLoss neither clips nor penalises.
    bare = GANLoss(lambda r, f: r.mean(), lambda f: f.mean())
    assert bare.clip is None and bare.gradient_penalty == 0.0


# --- ns and label smoothing ---------------------------------------------------------------

def test_ns_value_and_gradient():
    value, g_real, g_fake = d_value_and_grads("ns")
    assert value == pytest.approx((sp(-2) + sp(1)) / 2 + sp(0.5))
    # d/dr softplus(-r)/n = -sigmoid(-r)/n ; d/df softplus(f)/n = sigmoid(f)/n
    assert g_real == pytest.approx([-sig(-2) / 2, -sig(1) / 2])
    assert g_fake == pytest.approx([sig(0.5)])
    value, grad = g_value_and_grad("ns")
    assert value == pytest.approx(sp(-0.5))
    assert grad == pytest.approx([-sig(-0.5)])


def test_label_smoothing_is_bce_with_target_09_on_reals_only():
    bce = nn.functional.binary_cross_entropy_with_logits
    real = torch.tensor(REAL, dtype=torch.float64)
    fake = torch.tensor(FAKE, dtype=torch.float64)
    smoothed = ns_d_loss(real, fake, real_target=0.9)
    expected = bce(real, torch.full_like(real, 0.9)) + bce(fake, torch.zeros_like(fake))
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-12)
    assert smoothed.item() == pytest.approx(0.9 * (sp(-2) + sp(1)) / 2 + 0.1 * (sp(2) + sp(-1)) / 2
                                            + sp(0.5))
    assert smoothed.item() != pytest.approx(ns_d_loss(real, fake).item())
    assert ns_d_loss_smoothed(real, fake, 0.9).item() == pytest.approx(smoothed.item(), rel=1e-12)
    assert ns_d_loss_smoothed(real, fake).item() == pytest.approx(smoothed.item(), rel=1e-12)
    # Only the real term changes: the difference does not depend on the fakes, and the
    # gradient w.r.t. the fakes is the unsmoothed one.
    for other_fake in ([0.5], [-3.0, 4.0], [10.0]):
        f = torch.tensor(other_fake, dtype=torch.float64)
        diff = ns_d_loss(real, f, real_target=0.9) - ns_d_loss(real, f)
        assert diff.item() == pytest.approx((smoothed - ns_d_loss(real, fake)).item(), rel=1e-12)
    _, _, g_fake_smooth = d_value_and_grads("ns", real_target=0.9)
    _, g_real_smooth, _ = d_value_and_grads("ns", real_target=0.9)
    _, g_real, g_fake = d_value_and_grads("ns")
    assert g_fake_smooth == pytest.approx(g_fake, rel=1e-12)
    # d/dr BCE(r, 0.9)/n = (sigmoid(r) - 0.9)/n
    assert g_real_smooth == pytest.approx([(sig(2) - 0.9) / 2, (sig(-1) - 0.9) / 2])
    assert g_real_smooth != pytest.approx(g_real)
    # The default target is 1: the registered loss is unchanged.
    assert ns_d_loss(real, fake, real_target=1.0).item() == ns_d_loss(real, fake).item()
    with pytest.raises(ConfigError):
        ns_d_loss(real, fake, real_target=1.5)


# --- lsgan --------------------------------------------------------------------------------

def test_lsgan_value_and_gradient():
    value, g_real, g_fake = d_value_and_grads("lsgan")
    # 0.5 * mean((r - 1)^2) + 0.5 * mean(f^2) = 0.5 * (1 + 4) / 2 + 0.5 * 0.25
    assert value == pytest.approx(1.375)
    assert g_real == pytest.approx([(2 - 1) / 2, (-1 - 1) / 2])      # (r - 1) / n
    assert g_fake == pytest.approx([0.5])                           # f / n
    value, grad = g_value_and_grad("lsgan")
    assert value == pytest.approx(0.5 * (0.5 - 1) ** 2)
    assert grad == pytest.approx([0.5 - 1])


def test_lsgan_targets_real_one_fake_zero_generator_one():
    value, g_real, g_fake = d_value_and_grads("lsgan", real=[1.0, 1.0], fake=[0.0, 0.0])
    assert value == 0.0 and g_real == [0.0, 0.0] and g_fake == [0.0, 0.0]
    value, grad = g_value_and_grad("lsgan", fake=[1.0, 1.0])
    assert value == 0.0 and grad == [0.0, 0.0]
    # Away from the targets the loss is positive.
    assert d_value_and_grads("lsgan", real=[0.0], fake=[1.0])[0] == pytest.approx(1.0)
    assert g_value_and_grad("lsgan", fake=[0.0])[0] == pytest.approx(0.5)


# --- wgan ---------------------------------------------------------------------------------

def test_wgan_value_gradient_and_signs():
    value, g_real, g_fake = d_value_and_grads("wgan", fake=[-0.5])
    assert value == pytest.approx(-0.5 - 0.5)                       # mean(fake) - mean(real)
    assert g_real == pytest.approx([-0.5, -0.5])                    # the critic pushes reals up
    assert g_fake == pytest.approx([1.0])                           # ... and fakes down
    value, grad = g_value_and_grad("wgan", fake=[-0.5, 1.5])
    assert value == pytest.approx(-0.5)                             # -mean(fake)
    assert grad == pytest.approx([-0.5, -0.5])                      # G pushes fakes up
    # Same numbers for wgan-gp (its penalty is a separate term).
    assert d_value_and_grads("wgan-gp", fake=[-0.5]) == d_value_and_grads("wgan", fake=[-0.5])
    assert g_value_and_grad("wgan-gp", fake=[-0.5, 1.5]) == g_value_and_grad("wgan", fake=[-0.5, 1.5])
    # A critic that scores reals higher than fakes has a lower loss.
    lo = GAN_LOSSES.get("wgan").d_loss(torch.tensor([3.0]), torch.tensor([-3.0]))
    hi = GAN_LOSSES.get("wgan").d_loss(torch.tensor([-3.0]), torch.tensor([3.0]))
    assert lo.item() == -6.0 and hi.item() == 6.0


# --- hinge --------------------------------------------------------------------------------

def test_hinge_value_and_gradient():
    value, g_real, g_fake = d_value_and_grads("hinge")
    # mean(relu(1 - [2, -1])) + mean(relu(1 + 0.5)) = (0 + 2) / 2 + 1.5
    assert value == pytest.approx(2.5)
    assert g_real == pytest.approx([0.0, -0.5])
    assert g_fake == pytest.approx([1.0])
    value, grad = g_value_and_grad("hinge", fake=[0.5, -2.0])
    assert value == pytest.approx(0.75)
    assert grad == pytest.approx([-0.5, -0.5])


def test_hinge_zero_gradient_region():
    # Reals scored above 1 and fakes below -1 contribute neither loss nor gradient.
    value, g_real, g_fake = d_value_and_grads("hinge", real=[1.5, 7.0], fake=[-1.5, -4.0])
    assert value == 0.0
    assert g_real == [0.0, 0.0] and g_fake == [0.0, 0.0]
    # Inside the margin they do.
    value, g_real, g_fake = d_value_and_grads("hinge", real=[1.5, 0.5], fake=[-1.5, -0.5])
    assert value == pytest.approx(0.25 + 0.25)
    assert g_real == pytest.approx([0.0, -0.5]) and g_fake == pytest.approx([0.0, 0.5])


# --- critics for the regularisers ----------------------------------------------------------

class LinearCritic(nn.Module):
    """D(x) = <w, x> + b per sample: its input gradient is w everywhere."""

    def __init__(self, shape, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
        self.seen_labels = []

    def forward(self, x, labels=None):
        self.seen_labels.append(labels)
        return (x * self.w).flatten(1).sum(1) + self.b


class SmallCritic(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 1)).double()

    def forward(self, x, labels=None):
        return self.net(x).flatten()


def images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 2, 2, generator=g, dtype=torch.float64)


# --- gradient penalty ------------------------------------------------------------------------

def test_gradient_penalty_on_linear_critic_is_closed_form():
    D = LinearCritic((2, 2, 2))
    real, fake = images(5, 1), images(5, 2)
    w_norm = D.w.detach().norm().item()
    labels = torch.arange(5)
    for seed in range(3):
        gp = gradient_penalty(D, real, fake, labels, generator=torch.Generator().manual_seed(seed))
        assert gp.item() == pytest.approx((w_norm - 1) ** 2, rel=1e-10)
    assert D.seen_labels[-1] is labels
    # Back-propagates into D: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||; b has no effect.
    D.zero_grad()
    gradient_penalty(D, real, fake).backward()
    expected = 2 * (w_norm - 1) * D.w.detach() / w_norm
    assert torch.allclose(D.w.grad, expected, rtol=1e-10, atol=1e-12)
    assert D.b.grad is None or D.b.grad.item() == 0.0


def test_gradient_penalty_matches_finite_differences(monkeypatch):
    D = SmallCritic()
    real, fake = images(4, 3), images(4, 4)
    eps = torch.tensor([0.1, 0.5, 0.8, 0.33], dtype=torch.float64).view(4, 1, 1, 1)
    shapes = []

    def fixed_rand(*size, **kw):
        shapes.append(tuple(size[0]) if len(size) == 1 else tuple(size))
        return eps.clone()

    monkeypatch.setattr(torch, "rand", fixed_rand)
    gp = gradient_penalty(D, real, fake)
    assert shapes == [(4, 1, 1, 1)]               # one eps per sample, broadcast over C, H, W
    x_hat = eps * real + (1 - eps) * fake
    h = 1e-6
    norms = []
    with torch.no_grad():
        for i in range(4):
            grad = torch.zeros(8, dtype=torch.float64)
            for j in range(8):
                step = torch.zeros(8, dtype=torch.float64)
                step[j] = h
                plus = x_hat[i:i + 1] + step.view(1, 2, 2, 2)
                minus = x_hat[i:i + 1] - step.view(1, 2, 2, 2)
                grad[j] = (D(plus) - D(minus)).item() / (2 * h)
            norms.append(grad.norm().item())
    expected = sum((n - 1) ** 2 for n in norms) / 4
    assert gp.item() == pytest.approx(expected, rel=1e-6)
    # A different eps (fixed_rand reads this name when called) gives a different penalty.
    eps = torch.tensor([0.9, 0.0, 0.2, 1.0], dtype=torch.float64).view(4, 1, 1, 1)
    assert gradient_penalty(D, real, fake).item() != pytest.approx(gp.item(), rel=1e-6)


def test_gradient_penalty_backpropagates_into_d_only():
    D = SmallCritic()
    real = images(6, 5).requires_grad_(True)
    fake = images(6, 6).requires_grad_(True)
    gp = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(0))
    assert gp.requires_grad
    gp.backward()
    for name, p in D.named_parameters():
        if name == "net.3.bias":                  # the output bias does not move the gradient
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert fake.grad is None and real.grad is None


def test_gradient_penalty_eps_is_per_sample_and_seeded():
    D = SmallCritic()
    real, fake = images(8, 7), images(8, 8)
    a = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(11))
    b = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(11))
    c = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(12))
    assert a.item() == b.item()
    assert a.item() != c.item()


# --- R1 ----------------------------------------------------------------------------------------

def test_r1_on_linear_critic_is_squared_weight_norm():
    D = LinearCritic((2, 2, 2), seed=3)
    real = images(5, 9)
    labels = torch.zeros(5, dtype=torch.long)
    r1 = r1_penalty(D, real, labels)
    assert r1.item() == pytest.approx(D.w.detach().pow(2).sum().item(), rel=1e-12)
    assert D.seen_labels[-1] is labels
    r1.backward()                                  # d/dw ||w||^2 = 2 w
    assert torch.allclose(D.w.grad, 2 * D.w.detach(), rtol=1e-12)
    assert real.grad is None


def test_r1_on_quadratic_critic():
    class Quadratic(nn.Module):
        def forward(self, x, labels=None):
            return x.pow(2).flatten(1).sum(1)

    real = images(6, 10)
    expected = (2 * real).pow(2).flatten(1).sum(1).mean()
    assert r1_penalty(Quadratic(), real).item() == pytest.approx(expected.item(), rel=1e-12)


def test_r1_backpropagates_into_d():
    D = SmallCritic(seed=1)
    r1_penalty(D, images(4, 11)).backward()
    for name, p in D.named_parameters():
        if name == "net.3.bias":                  # the output bias does not move the gradient
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# --- spectral norm -------------------------------------------------------------------------------

def sigma_max(w: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(w.detach().flatten(1), ord=2).item()


def test_spectral_norm_bounds_largest_singular_value():
    torch.manual_seed(0)
    linear, conv = nn.Linear(16, 12), nn.Conv2d(3, 6, 3, padding=1)
    deconv = nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1)
    with torch.no_grad():
        for m in (linear, conv, deconv):
            m.weight.mul_(10)
    assert sigma_max(linear.weight) > 5 and sigma_max(conv.weight) > 5
    net = nn.ModuleDict({"linear": linear, "conv": conv, "deconv": deconv})
    assert add_spectral_norm(net) is net
    net.train()
    for _ in range(10):
        linear(torch.randn(2, 16))
        deconv(conv(torch.randn(2, 3, 8, 8)))
    assert sigma_max(linear.weight) == pytest.approx(1.0, abs=1e-2)
    assert sigma_max(conv.weight) == pytest.approx(1.0, abs=1e-2)
    # ConvTranspose2d is normalised along its output-channel dimension.
    assert sigma_max(deconv.weight.transpose(0, 1)) == pytest.approx(1.0, abs=1e-2)


def test_spectral_norm_wraps_every_kind_and_still_trains():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(3, 4)
            self.deconv = nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1)
            self.conv = nn.Conv2d(2, 3, 3, padding=1)
            self.linear = nn.Linear(3 * 2 * 2, 1)
            self.norm = nn.BatchNorm2d(3)

        def forward(self, labels):
            x = self.embed(labels).view(-1, 4, 1, 1)
            return self.linear(self.norm(self.conv(self.deconv(x))).flatten(1))

    net = add_spectral_norm(Net())
    for layer in (net.embed, net.deconv, net.conv, net.linear):
        assert parametrize.is_parametrized(layer, "weight"), type(layer).__name__
        assert not hasattr(layer, "weight_orig")   # not the deprecated nn.utils.spectral_norm
    assert not parametrize.is_parametrized(net.norm)
    add_spectral_norm(net)                          # idempotent
    assert len(net.linear.parametrizations.weight) == 1
    out = net(torch.tensor([0, 2, 1]))
    assert out.shape == (3, 1)
    out.sum().backward()
    for layer in (net.deconv, net.conv, net.linear):
        grad = layer.parametrizations.weight.original.grad
        assert grad is not None and grad.abs().sum() > 0
    assert net.embed.parametrizations.weight.original.grad is not None


# --- weight clipping -----------------------------------------------------------------------------------

def test_clip_weights_bounds_all_parameters():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10).add_(0.5)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    assert max(p.abs().max().item() for p in net.parameters()) > 0.5
    assert clip_weights_(net, 0.01) is net
    for name, p in net.named_parameters():
        assert p.abs().max().item() <= 0.01, name
        assert p.requires_grad and p.grad_fn is None
        expected = before[name].clamp(-0.01, 0.01)
        assert torch.equal(p.detach(), expected), name
    assert any((p.abs() == 0.01).any() for p in net.parameters())
    with pytest.raises(ConfigError):
        clip_weights_(net, 0.0)
