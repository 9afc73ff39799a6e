"""Control of a trained generator's latent space: interpolation, inversion of real images
(projection), directions that change an attribute, and style mixing.

Latent codes live where each generator is smoothest: style-based generators in w (after the
mapping network; `w+` is one w per synthesis layer), every other generator in z. A code is
a `Latent`: the tensor, its kind, and the class for conditional models; `save_latent` and
`load_latent` keep it in a safetensors file so that `ganforge project` and
`ganforge edit-latent` hand codes to each other.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .. import atomic
from ..data.imageset import to_float, to_uint8
from ..errors import ConfigError, DataError

LATENT_FORMAT = "ganforge-latent"


@dataclass
class Latent:
    """A point of a generator's latent space: `codes` is N x latent_dim (z), N x w_dim (w)
    or N x num_ws x w_dim (w+); `labels` the class per code (conditional models), as integer
    classes or N x classes weights."""

    codes: torch.Tensor
    kind: str                          # "z", "w" or "w+"
    labels: torch.Tensor | None = None


def is_style_based(net) -> bool:
    return hasattr(net, "mapping") and hasattr(net, "synthesis")


def _device(net) -> torch.device:
    return next(net.parameters()).device


def noise(net, seeds: list[int]) -> torch.Tensor:
    """z for each seed, drawn as `generate` draws one image's noise from that seed."""
    return torch.cat([torch.randn(1, net.latent_dim, generator=torch.Generator().manual_seed(s))
                      for s in seeds])


def _labels(net, labels) -> torch.Tensor | None:
    if not getattr(net, "num_classes", 0):
        if labels is not None:
            raise ConfigError("a class was given but this model is not class-conditional")
        return None
    if labels is None:
        raise ConfigError("this model is class-conditional: give a class")
    labels = torch.as_tensor(labels)
    if not labels.is_floating_point():
        bad = labels[(labels < 0) | (labels >= net.num_classes)]
        if len(bad):
            raise ConfigError(f"class {int(bad[0])} is outside 0..{net.num_classes - 1}")
    return labels


def encode(net, z: torch.Tensor, labels=None, kind: str | None = None) -> Latent:
    """The latent codes of noise `z`: w (or w+) for style-based generators, z otherwise."""
    labels = _labels(net, labels)
    if not is_style_based(net):
        return Latent(z, "z", labels)
    with torch.no_grad():
        w = net.mapping(z.to(_device(net)), None if labels is None else labels.to(_device(net)),
                        update_w_avg=False).cpu()
    if kind == "w+":
        return Latent(w[:, None].repeat(1, net.num_ws, 1), "w+", labels)
    return Latent(w, "w", labels)


def render(net, latent: Latent) -> torch.Tensor:
    """Float images in [-1, 1] (with gradients where the codes have them)."""
    device = _device(net)
    codes = latent.codes.to(device)
    labels = None if latent.labels is None else latent.labels.to(device)
    if latent.kind == "z":
        return net(codes, labels)
    ws = codes[:, None].repeat(1, net.num_ws, 1) if latent.kind == "w" else codes
    return torch.tanh(net.synthesis(ws))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of rows of `a` and `b` at fractions `t` (the path that keeps
    Gaussian noise at the norm the generator was trained on)."""
    a_n, b_n = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    t = t.view(-1, *([1] * (a.dim() - 1)))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


@torch.no_grad()
def interpolate(net, seed_from: int, seed_to: int, steps: int, label_from=None,
                label_to=None) -> torch.Tensor:
    """uint8 images along the path from seed_from's image to seed_to's: linear in w for
    style-based generators, spherical in z otherwise. For conditional models the class moves
    from `label_from` to `label_to` (class embeddings mixed) at the same time; with the same
    seed at both ends, this interpolates between classes at fixed z.

    Example:
        >>> frames = interpolate(ganforge.load("runs/a").net, 1, 2, steps=8)
    """
    if steps < 2:
        raise ConfigError(f"--steps {steps}: an interpolation needs at least 2 images")
    z = noise(net, [seed_from, seed_to])
    t = torch.linspace(0, 1, steps)
    labels = None
    if getattr(net, "num_classes", 0):
        a = F.one_hot(torch.as_tensor(_labels(net, label_from)), net.num_classes).float()
        b = F.one_hot(torch.as_tensor(_labels(net, label_to if label_to is not None else label_from)),
                      net.num_classes).float()
        labels = torch.lerp(a.expand(steps, -1), b.expand(steps, -1), t[:, None])
    if is_style_based(net):
        ends = encode(net, z, None if labels is None else labels[[0, -1]]).codes
        codes = torch.lerp(ends[:1].expand(steps, -1), ends[1:].expand(steps, -1), t[:, None])
        return to_uint8(render(net, Latent(codes, "w")).cpu())
    codes = slerp(z[:1].expand(steps, -1), z[1:].expand(steps, -1), t)
    return to_uint8(render(net, Latent(codes, "z", labels)).cpu())


@torch.no_grad()
def style_mix(net, seed_coarse: int, seed_fine: int, layers: range, label=None) -> torch.Tensor:
    """uint8 image: seed_coarse's w everywhere except the synthesis layers in `layers`,
    which take seed_fine's w (style mixing of the style-based generator)."""
    if not is_style_based(net):
        raise ConfigError("style mixing needs a style-based generator (model stylegan)")
    if not layers or layers.start < 0 or layers.stop > net.num_ws:
        raise ConfigError(f"layers {layers.start}-{layers.stop - 1}: the generator has "
                          f"layers 0-{net.num_ws - 1}")
    labels = None if label is None else [label]
    a, b = (encode(net, noise(net, [s]), labels, "w+").codes for s in (seed_coarse, seed_fine))
    a[:, layers] = b[:, layers]
    return to_uint8(render(net, Latent(a, "w+")).cpu())


# Inversion.
def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two float image batches in [-1, 1] (peak-to-peak 2)."""
    mse = float(F.mse_loss(a.float(), b.float()))
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def project(net, target: torch.Tensor, label=None, steps: int = 300, lr: float = 0.05,
            features: Callable[[torch.Tensor], torch.Tensor] | None = None,
            feature_weight: float = 0.1, noise_weight: float = 1e-3, kind: str | None = None,
            starts: int = 16, seed: int = 0) -> tuple[Latent, torch.Tensor, dict]:
    """Find the latent code whose image matches `target` (uint8 1 x C x H x W at the run's
    size) by gradient descent on the pixel MSE, plus `feature_weight` x the MSE of
    `features` (a differentiable feature network on float images in [-1, 1], e.g. the
    evaluation classifier's penultimate layer: `classifier_features`), plus a
    regulariser: for z, `noise_weight` x (|z|^2/dim - 1)^2 keeps z on the shell Gaussian
    noise lives on; for w / w+, the same weight x the squared distance to the average w.

    The best of `starts` random codes (by pixel MSE) is the starting point; Adam with a
    cosine-decaying learning rate does the rest. Returns the code, its uint8 image and
    {'psnr', 'psnr_start', 'losses'}.

    Example:
        >>> latent, image, info = project(model.net, target, steps=300)
    """
    if steps < 1:
        raise ConfigError(f"--steps {steps}: must be at least 1")
    shape = (getattr(net, "channels", None), getattr(net, "resolution", None))
    if target.dim() != 4 or len(target) != 1 or target.shape[1] != shape[0] or \
            target.shape[-1] != shape[1] or target.shape[-2] != shape[1]:
        raise DataError(f"the image to project must be 1 x {shape[0]} x {shape[1]} x {shape[1]} "
                        f"(the run's size), got {tuple(target.shape)}")
    net.eval().requires_grad_(False)
    device = _device(net)
    goal = to_float(target).to(device)
    with torch.no_grad():
        goal_features = None if features is None else features(goal).detach()
    labels = None if label is None else torch.tensor([label] * starts)
    kind = kind or ("w" if is_style_based(net) else "z")
    generator = torch.Generator().manual_seed(seed)
    candidates = encode(net, torch.randn(starts, net.latent_dim, generator=generator), labels, kind)
    with torch.no_grad():  # eval mode: each image is what it would be alone
        errors = (render(net, candidates) - goal).pow(2).flatten(1).mean(1).tolist()
    best = min(range(starts), key=errors.__getitem__)
    labels = None if labels is None else labels[:1]
    code = candidates.codes[best:best + 1].clone().to(device).requires_grad_(True)
    anchor = None if kind == "z" else net.w_avg.detach().to(device)
    optimizer = torch.optim.Adam([code], lr=lr)
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        image = render(net, Latent(code, kind, labels))
        loss = F.mse_loss(image, goal)
        if goal_features is not None and feature_weight:
            loss = loss + feature_weight * F.mse_loss(features(image), goal_features)
        if kind == "z":
            loss = loss + noise_weight * ((code.pow(2).mean() - 1) ** 2)
        else:
            loss = loss + noise_weight * (code - anchor).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    latent = Latent(code.detach().cpu(), kind, labels)
    with torch.no_grad():
        image = render(net, latent)
    info = {"psnr": psnr(image, goal), "psnr_start": 10 * math.log10(4.0 / max(errors[best], 1e-12)),
            "losses": losses}
    return latent, to_uint8(image.cpu()), info


def classifier_features(classifier) -> Callable[[torch.Tensor], torch.Tensor]:
    """A differentiable feature function from a TrainedClassifier: its penultimate layer on
    float images in [-1, 1], resized to the classifier's resolution where they differ."""
    net, size = classifier.net, classifier.shape["resolution"]

    def features(images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        return net.features(images.to(classifier.device))
    return features


# Directions.
@torch.no_grad()
def class_directions(net, classify: Callable[[torch.Tensor], torch.Tensor], n: int = 2000,
                     seed: int = 0, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class c, the unit vector from the mean code of samples not classified as c to
    the mean code of those that are (difference of class means, in w or z). `classify`
    maps uint8 images to class indices. Returns (classes x dim directions, counts per class);
    a class no sample fell into has a zero direction.

    Example:
        >>> directions, counts = class_directions(G, lambda images: clf(images).argmax(1))
    """
    if getattr(net, "num_classes", 0):
        raise ConfigError("class directions are for unconditional models; a conditional model "
                          "changes class through its label (ganforge interpolate --class-to)")
    z = torch.randn(n, net.latent_dim, generator=torch.Generator().manual_seed(seed))
    codes, classes = [], []
    for start in range(0, n, batch_size):
        latent = encode(net, z[start:start + batch_size])
        codes.append(latent.codes)
        classes.append(classify(to_uint8(render(net, latent).cpu())).cpu())
    codes, classes = torch.cat(codes), torch.cat(classes)
    num = int(classes.max()) + 1 if len(classes) else 0
    directions = torch.zeros(num, codes.shape[1])
    counts = torch.bincount(classes, minlength=num)
    for c in range(num):
        inside = classes == c
        if inside.any() and (~inside).any():
            directions[c] = F.normalize(codes[inside].mean(0) - codes[~inside].mean(0), dim=0)
    return directions, counts


@torch.no_grad()
def direction_curve(net, directions: torch.Tensor, classify: Callable[[torch.Tensor], torch.Tensor],
                    amounts, n: int = 500, seed: int = 1) -> list[list[float | None]]:
    """Per class c and amount a: of `n` fresh samples not classified as c, the share that
    is classified as c once moved by a along c's direction (None: no such samples, or no
    direction). The measure of how well a direction does what its name says."""
    latent = encode(net, torch.randn(n, net.latent_dim, generator=torch.Generator().manual_seed(seed)))
    before = classify(to_uint8(render(net, latent).cpu())).cpu()
    curve = []
    for c, direction in enumerate(directions):
        others = before != c
        if not others.any() or not direction.any():
            curve.append([None] * len(amounts))
            continue
        start = Latent(latent.codes[others], latent.kind)
        shares = []
        for amount in amounts:
            moved = classify(to_uint8(render(net, move(start, direction, amount)).cpu())).cpu()
            shares.append(round(float((moved == c).float().mean()), 4))
        curve.append(shares)
    return curve


def move(latent: Latent, direction: torch.Tensor, amount: float) -> Latent:
    """`latent` moved by `amount` along a unit `direction`, in units of the codes' mean
    length (amount 1 moves a code by its own typical norm), so amounts mean the same in z
    and in w."""
    length = latent.codes.reshape(-1, latent.codes.shape[-1]).norm(dim=1).mean()  # per z, w or layer's w
    step = direction.to(latent.codes.dtype) * amount * float(length)
    codes = latent.codes + step  # broadcast over the layers of a w+ code
    return Latent(codes, latent.kind, latent.labels)


# Files.
def save_latent(latent: Latent, path: str | Path, meta: dict | None = None) -> None:
    """Write a latent code (safetensors; kind, labels and `meta` in its header), atomically."""
    tensors = {"codes": latent.codes.contiguous()}
    if latent.labels is not None:
        tensors["labels"] = latent.labels.contiguous()
    header = {"format": LATENT_FORMAT, "kind": latent.kind, **(meta or {})}
    with atomic.replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata={"ganforge": json.dumps(header)})


def load_latent(path: str | Path) -> tuple[Latent, dict]:
    """Read a file written by `save_latent`: (latent, header)."""
    try:
        with safe_open(str(path), "pt") as handle:
            header = json.loads((handle.metadata() or {}).get("ganforge", "{}"))
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (OSError, SafetensorError, ValueError) as error:
        raise DataError(f"{path}: not a latent file ({error})") from None
    if header.get("format") != LATENT_FORMAT or "codes" not in tensors:
        raise DataError(f"{path}: not a latent file written by ganforge project")
    return Latent(tensors["codes"], header["kind"], tensors.get("labels")), header
