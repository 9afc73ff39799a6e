"""Texture synthesis from one exemplar: sampling a trained spatial GAN at any size (tileable
too), Gram-matrix optimisation (training-free), and random tiling (the baseline a user would
do by hand); histogram matching of any of them to the exemplar.

All three return uint8 H x W x C arrays and take a seed, so every output can be made again.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.imageset import to_float, to_uint8
from ..errors import ConfigError, DataError
from .features import RandomFeatures

GRAM_STEPS = 400        # Adam steps of the Gram-matrix optimisation
GRAM_LR = 0.05          # on pixels in [-1, 1] (through tanh)
TILE_PATCH = 32         # side of the exemplar patches random tiling lays


def _hwc(images: torch.Tensor) -> np.ndarray:
    return to_uint8(images)[0].permute(1, 2, 0).numpy()


def _chw(exemplar: np.ndarray) -> torch.Tensor:
    """uint8 H x W (x C) -> float 1 x C x H x W in [-1, 1]."""
    array = exemplar[..., None] if exemplar.ndim == 2 else exemplar
    return to_float(torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None])


def check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ConfigError(f"--size {width}x{height}: both sides must be at least 1 pixel")


@torch.no_grad()
def sample_gan(net: torch.nn.Module, width: int, height: int, seed: int = 0, tileable: bool = False,
               n: int = 1) -> list[np.ndarray]:
    """`n` textures of width x height from a trained spatial generator (its EMA copy). With
    `tileable` the output wraps seamlessly (exactly periodic, cut open at `periodic_cut`); its
    sides must then be multiples of G's stride."""
    check_size(width, height)
    if not hasattr(net, "noise"):
        raise ConfigError("this run's generator is not a spatial (texture) GAN; train one with "
                          "ganforge texture train IMAGE")
    if tileable and (width % net.stride or height % net.stride):
        raise ConfigError(f"--tileable: --size {width}x{height} must be a multiple of {net.stride} on both "
                          f"sides (the latent field wraps at whole cells), e.g. "
                          f"{-(-width // net.stride) * net.stride}x{-(-height // net.stride) * net.stride}")
    device = next(net.parameters()).device
    z = net.noise(n, height, width, torch.Generator().manual_seed(seed)).to(device)
    net.tileable(tileable)
    try:
        images = net(z)[..., :height, :width].float().cpu()
    finally:
        net.tileable(False)
    if tileable:
        images = images.roll(periodic_cut(net.stride, seed), dims=(2, 3))
    return [_hwc(images[i:i + 1]) for i in range(n)]


def periodic_cut(stride: int, seed: int) -> tuple[int, int]:
    """Where a tileable texture is cut open: (rows, columns) to roll the periodic image by, a
    random offset within one latent cell drawn from `seed`.

    A periodic image has no seam; any cut gives the same tiling. Left at a cell boundary of the
    latent field, the cut would fall where the generator's grid bias is strongest (on brick,
    mortar edges gather on the 16-pixel cells: the jump at cell boundaries is 2.6x the mean
    jump with bilinear upsampling, 4.8x with nearest), so the cut column would read as a seam
    while it is one of the image's own cell boundaries. A random offset makes it a typical column."""
    offset = torch.randint(stride, (2,), generator=torch.Generator().manual_seed(seed))
    return int(offset[0]), int(offset[1])


def gram_synthesis(exemplar: np.ndarray, width: int, height: int, seed: int = 0, steps: int = GRAM_STEPS,
                   features: RandomFeatures | None = None) -> np.ndarray:
    """Gatys et al. (2015) with random filters: start from noise and optimise the pixels so that
    the Gram matrices of a fixed random CNN's feature maps at every scale match the exemplar's
    (each scale's squared error normalised by the exemplar's Gram energy). No training, no
    downloaded weights."""
    check_size(width, height)
    features = features or RandomFeatures()
    target = [g.detach() for g in features.grams(_chw(exemplar))]
    channels = 1 if exemplar.ndim == 2 or exemplar.shape[-1] == 1 else 3
    generator = torch.Generator().manual_seed(seed)
    raw = (torch.randn(1, channels, height, width, generator=generator) * 0.5).requires_grad_(True)
    optimiser = torch.optim.Adam([raw], lr=GRAM_LR)
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        made = features.grams(torch.tanh(raw))
        loss = sum(F.mse_loss(g, t, reduction="sum") / t.pow(2).sum().clamp_min(1e-12)
                   for g, t in zip(made, target))
        loss.backward()
        optimiser.step()
    return _hwc(torch.tanh(raw.detach()))


def random_tiling(exemplar: np.ndarray, width: int, height: int, seed: int = 0,
                  patch: int = TILE_PATCH) -> np.ndarray:
    """The baseline: a grid of `patch`-sized squares cut at random places from the exemplar."""
    check_size(width, height)
    array = exemplar[..., None] if exemplar.ndim == 2 else exemplar
    h, w = array.shape[:2]
    patch = min(patch, h, w)
    rng = np.random.default_rng(seed)
    out = np.empty((-(-height // patch) * patch, -(-width // patch) * patch, array.shape[2]), np.uint8)
    for top in range(0, out.shape[0], patch):
        for left in range(0, out.shape[1], patch):
            y, x = rng.integers(0, h - patch + 1), rng.integers(0, w - patch + 1)
            out[top:top + patch, left:left + patch] = array[y:y + patch, x:x + patch]
    return out[:height, :width]


def match_histogram(texture: np.ndarray, exemplar: np.ndarray) -> np.ndarray:
    """`texture` with each channel's grey levels mapped so that its histogram is the
    exemplar's (scikit-image's `match_histograms`), as classical texture synthesis does
    (Heeger and Bergen 1995): the GAN's structure, the exemplar's exact tones and contrast.
    A monotone map of each pixel on its own, so a tileable texture stays tileable."""
    from skimage.exposure import match_histograms

    source = texture[..., None] if texture.ndim == 2 else texture
    target = exemplar[..., None] if exemplar.ndim == 2 else exemplar
    if target.shape[-1] != source.shape[-1]:
        raise ConfigError(f"histogram matching: the texture has {source.shape[-1]} channels, the "
                          f"exemplar {target.shape[-1]}")
    matched = match_histograms(source.astype(np.float64), target.astype(np.float64), channel_axis=-1)
    return np.clip(np.round(matched), 0, 255).astype(np.uint8).reshape(texture.shape)


def exemplar_of(run_dir: str | Path, config) -> Path:
    """The exemplar image a texture run learnt from (its patches:FILE data set)."""
    name = config.data.name
    if not name.startswith("patches:"):
        raise ConfigError(f"run {str(run_dir)!r} did not learn from one image file (data.name={name!r})")
    path = Path(name[len("patches:"):])
    if not path.is_file():
        raise DataError(f"run {str(run_dir)!r} learnt from {str(path)!r}, which is no longer there "
                        f"(or is not one image file); give the exemplar's new place")
    return path


def read_exemplar(path: str | Path, channels: int) -> np.ndarray:
    """uint8 H x W x C pixels of an exemplar image; luma when the run's images are gray."""
    from ..inference import read_image_file
    from .analysis import luma

    if not Path(path).is_file():
        raise DataError(f"exemplar {str(path)!r} does not exist or is not a file")
    pixels = np.round(read_image_file(path).pixels * 255).astype(np.uint8)
    return luma(pixels)[..., None] if channels == 1 and pixels.shape[-1] == 3 else pixels
