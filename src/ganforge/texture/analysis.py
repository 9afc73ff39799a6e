"""Texture descriptors and a texture similarity: co-occurrence, local binary patterns, CNN Grams.

Three views of a texture, each a statistic averaged over positions, so that images of any size
(a small exemplar, a large synthesised sample) can be compared:

- GLCM: grey-level co-occurrence statistics (Haralick) at a few pixel distances, averaged over
  four directions so that a rotated texture reads nearly the same.
- LBP: histograms of uniform local binary patterns at three radii (Ojala et al., 2002), the
  micro-structure (edges, corners, spots) whatever the brightness.
- Gram: per scale, the Gram matrix of the fixed random CNN in `features.py`, the statistics
  Gram-matrix synthesis matches; analysis and synthesis therefore share one feature space.

`texture_distance` combines one normalised distance per view (each in [0, 1], 0 for identical
textures) into their mean; `texture_similarity` is exp(-distance). `seam_score` tells whether a
sample tiles without a visible seam, and `diversity` whether a run's samples differ from each
other (a copy of the exemplar is perfectly similar and not at all diverse).

Example:
    >>> exemplar = describe(pixels)                       # uint8 H x W x C, or float in [0, 1]
    >>> texture_similarity(exemplar, sample_pixels)       # 1.0 for the same texture
    >>> compare_to_set(exemplar, samples)["similarity"], diversity(samples)
"""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

from ..errors import ConfigError
from ..inference.images import LUMA_601, without_alpha
from .features import SCALES, RandomFeatures

GLCM_DISTANCES = (1, 2, 4)
GLCM_ANGLES = (0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4)
GLCM_LEVELS = 32
GLCM_PROPERTIES = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
# The classic four enter the distance; dissimilarity and ASM repeat contrast and energy.
GLCM_COMPARED = ("contrast", "correlation", "energy", "homogeneity")
LBP_SCALES = ((8, 1), (16, 2), (24, 3))     # (points, radius)
LBP_METHODS = ("uniform", "nri_uniform", "default", "ror")
MIN_SIZE = 2 ** SCALES                      # the coarsest CNN scale needs 2 x 2 pixels
COMPONENTS = ("lbp", "glcm", "gram")
PERIOD_AXES = ("both", "x", "y")

Texture = np.ndarray | dict                 # an image, or its describe() result


# Input images.

def as_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 H x W x C (C 1 or 3) from uint8, or float in [0, 1] (ImageFile.pixels), H x W or
    H x W x 1-4 (alpha dropped): the descriptors are defined on 8-bit grey levels."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return without_alpha(image)
    if not np.issubdtype(image.dtype, np.floating):
        raise ConfigError(f"image dtype {image.dtype}: expected uint8, or float in [0, 1]")
    if image.size and not (np.nanmin(image) >= 0.0 and np.nanmax(image) <= 1.0):
        raise ConfigError(f"float image values [{np.nanmin(image):g}, {np.nanmax(image):g}]: "
                          f"expected [0, 1] (or pass uint8)")
    scaled = np.rint(np.nan_to_num(without_alpha(image), nan=0.0) * 255.0)
    return scaled.astype(np.uint8)


def luma(image: np.ndarray) -> np.ndarray:
    """uint8 H x W grey levels; colour by ITU-R BT.601 (0.299 R + 0.587 G + 0.114 B), as Pillow."""
    pixels = as_uint8(image)
    if pixels.shape[-1] == 1:
        return pixels[..., 0]
    return np.clip(np.rint(pixels.astype(np.float32) @ LUMA_601), 0, 255).astype(np.uint8)


def _gray(gray_uint8: np.ndarray) -> np.ndarray:
    """The H x W uint8 array a GLCM or LBP function was given, checked."""
    gray = np.asarray(gray_uint8)
    if gray.ndim == 3 and gray.shape[-1] == 1:
        gray = gray[..., 0]
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ConfigError(f"expected a uint8 H x W grey image, got {gray.dtype} of shape {gray.shape}; "
                          f"convert colour with luma()")
    return gray


def _check_size(image: np.ndarray) -> None:
    """Refuse images too small for the coarsest CNN scale (and so for every descriptor)."""
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIZE:
        raise ConfigError(f"image {width}x{height} is too small: texture analysis needs at least "
                          f"{MIN_SIZE}x{MIN_SIZE} pixels")


# Grey-level co-occurrence.

def glcm_features(gray_uint8: np.ndarray, distances: Sequence[int] = GLCM_DISTANCES,
                  angles: Sequence[float] = GLCM_ANGLES, levels: int = GLCM_LEVELS) -> dict[str, list[float]]:
    """Haralick statistics of the symmetric, normalised co-occurrence matrix (scikit-image).

    Grey levels are quantised to `levels` (level = value * levels // 256) so that the matrix is
    well filled; each property is averaged over `angles` (rotation tolerance). Contrast and
    dissimilarity are in quantised levels (squared / plain); correlation is 1 for a flat image.

    Args:
        gray_uint8: uint8 H x W.
        distances: pixel offsets, each smaller than the image's height and width.
        angles: directions in radians (0: to the right, pi/2: upwards, as scikit-image).
        levels: 2..256.

    Returns:
        {property: [value per distance]} for the properties of GLCM_PROPERTIES.

    Example:
        >>> glcm_features(stripes, angles=(0,))["contrast"]   # 0/255 columns, period 2
        [961.0, 0.0, 0.0]
    """
    gray = _gray(gray_uint8)
    distances = [int(d) for d in distances]
    if not 2 <= levels <= 256:
        raise ConfigError(f"levels={levels}: must be 2..256")
    if not distances or not angles:
        raise ConfigError("glcm_features needs at least one distance and one angle")
    if min(distances) < 1 or max(distances) >= min(gray.shape):
        raise ConfigError(f"GLCM distances {distances}: each must be 1..{min(gray.shape) - 1} "
                          f"for a {gray.shape[1]}x{gray.shape[0]} image")
    quantised = (gray.astype(np.uint16) * levels // 256).astype(np.uint8)
    matrix = graycomatrix(quantised, distances, list(angles), levels=levels, symmetric=True, normed=True)
    return {name: [float(v) for v in graycoprops(matrix, name).mean(axis=1)] for name in GLCM_PROPERTIES}


# Local binary patterns.

def lbp_bins(points: int, method: str) -> int:
    """How many codes `local_binary_pattern` gives: P + 2 for uniform patterns."""
    if method not in LBP_METHODS:
        raise ConfigError(f"LBP method {method!r}: use one of {', '.join(LBP_METHODS)}")
    if method == "uniform":
        return points + 2
    if method == "nri_uniform":
        return points * (points - 1) + 3
    if points > 16:
        raise ConfigError(f"LBP method {method!r} with {points} points would need 2^{points} bins; "
                          f"use 'uniform' or at most 16 points")
    return 2 ** points


def lbp_histogram(gray_uint8: np.ndarray, points: int = 8, radius: float = 1,
                  method: str = "uniform") -> np.ndarray:
    """The normalised histogram of local binary pattern codes (scikit-image).

    Pixels within ceil(radius) of the border are left out: scikit-image reads zeros beyond the
    image, which would add false edges all round.

    Returns:
        float64 array of lbp_bins(points, method) entries summing to 1.

    Example:
        >>> lbp_histogram(np.full((16, 16), 9, np.uint8))   # all neighbours equal: code P
        array([0., 0., 0., 0., 0., 0., 0., 0., 1., 0.])
    """
    gray = _gray(gray_uint8)
    bins = lbp_bins(int(points), method)
    if points < 1 or radius <= 0:
        raise ConfigError(f"LBP points={points}, radius={radius}: both must be positive")
    margin = math.ceil(radius)
    if min(gray.shape) <= 2 * margin:
        raise ConfigError(f"image {gray.shape[1]}x{gray.shape[0]} is too small for LBP radius {radius}")
    codes = local_binary_pattern(gray, int(points), radius, method)[margin:-margin, margin:-margin]
    counts = np.bincount(codes.astype(np.int64).ravel(), minlength=bins)
    return counts / counts.sum()


def lbp_histograms(gray_uint8: np.ndarray, scales: Sequence[tuple[int, float]] = LBP_SCALES,
                   method: str = "uniform") -> list[np.ndarray]:
    """lbp_histogram at each (points, radius): fine to coarse micro-structure."""
    return [lbp_histogram(gray_uint8, points, radius, method) for points, radius in scales]


def multiscale_lbp(gray_uint8: np.ndarray, scales: Sequence[tuple[int, float]] = LBP_SCALES,
                   method: str = "uniform") -> np.ndarray:
    """The histograms of lbp_histograms concatenated into one vector (each part sums to 1)."""
    return np.concatenate(lbp_histograms(gray_uint8, scales, method))


def entropy_bits(histogram: np.ndarray) -> float:
    """Shannon entropy in bits: how varied the patterns are (0 for a flat image)."""
    p = np.asarray(histogram, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) if p.size else 0.0


# CNN Gram matrices.

@functools.lru_cache(maxsize=1)
def _network() -> RandomFeatures:
    """The shared random network (fixed by its seed), built once per process."""
    return RandomFeatures()


def gram_statistics(image: np.ndarray) -> dict[str, list]:
    """Per scale of RandomFeatures, the C x C Gram matrix and its mean activation energy.

    The energy, trace(G) / C, is the mean squared activation: how strongly the image excites the
    filters at that scale (high for fine detail at scale 1, for large structures at scale 4).

    Args:
        image: uint8 (or float in [0, 1]) H x W or H x W x C, at least MIN_SIZE pixels a side.

    Returns:
        {"grams": [float64 C x C array per scale], "energy": [float per scale]}.
    """
    pixels = as_uint8(image)
    _check_size(pixels)
    tensor = torch.tensor(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1.0  # a copy: inputs may be read-only
    with torch.inference_mode():
        grams = [g[0].double().numpy() for g in _network().grams(tensor)]
    return {"grams": grams, "energy": [float(np.trace(g) / g.shape[0]) for g in grams]}


# All descriptors of one image.

def describe(image: np.ndarray, distances: Sequence[int] = GLCM_DISTANCES,
             angles: Sequence[float] = GLCM_ANGLES, levels: int = GLCM_LEVELS,
             lbp_scales: Sequence[tuple[int, float]] = LBP_SCALES, lbp_method: str = "uniform") -> dict:
    """GLCM, LBP and Gram descriptors of one image, with the settings they were made with.

    Colour goes to luma (ITU-R BT.601) for GLCM and LBP; the CNN sees the colour. Pass the result
    instead of the image to texture_distance and friends to describe an exemplar only once.

    Args:
        image: uint8 H x W or H x W x C (C 1-4, alpha ignored), or float in [0, 1].

    Returns:
        {"height", "width", "channels",
         "glcm": {"levels", "distances", "angles", "properties": {name: [per distance]}},
         "lbp": {"method", "scales": [[P, R], ...], "histograms": [array per scale],
                 "entropy": [bits per scale]},
         "gram": {"grams": [C x C array per scale], "energy": [per scale]}}.
        json_ready() turns it into plain lists of floats.
    """
    pixels = as_uint8(image)
    _check_size(pixels)
    gray = luma(pixels)
    histograms = lbp_histograms(gray, lbp_scales, lbp_method)
    return {
        "height": int(pixels.shape[0]), "width": int(pixels.shape[1]), "channels": int(pixels.shape[2]),
        "glcm": {"levels": int(levels), "distances": [int(d) for d in distances],
                 "angles": [float(a) for a in angles],
                 "properties": glcm_features(gray, distances, angles, levels)},
        "lbp": {"method": lbp_method, "scales": [[int(p), float(r)] for p, r in lbp_scales],
                "histograms": histograms, "entropy": [entropy_bits(h) for h in histograms]},
        "gram": gram_statistics(pixels),
    }


def json_ready(description: dict, grams: bool = False) -> dict:
    """A describe() result as plain ints, floats and lists (JSON-safe); the Gram matrices
    (64 x 64 per scale) only when `grams`, as they are for similarity, not for reading."""
    lbp, gram = description["lbp"], description["gram"]
    out = {key: description[key] for key in ("height", "width", "channels")}
    out["glcm"] = {**description["glcm"], "properties": {
        name: [float(v) for v in values] for name, values in description["glcm"]["properties"].items()}}
    out["lbp"] = {"method": lbp["method"], "scales": [list(s) for s in lbp["scales"]],
                  "histograms": [[float(v) for v in h] for h in lbp["histograms"]],
                  "entropy": [float(v) for v in lbp["entropy"]]}
    out["gram"] = {"energy": [float(v) for v in gram["energy"]]}
    if grams:
        out["gram"]["grams"] = [np.asarray(g, dtype=np.float64).tolist() for g in gram["grams"]]
    return out


# Distances and similarity.

def _described(texture: Texture) -> dict:
    """A describe() result as is; an image described."""
    return texture if isinstance(texture, dict) else describe(texture)


def _check_comparable(a: dict, b: dict) -> None:
    """Two descriptions made with different settings cannot be compared."""
    settings = (("glcm", "levels"), ("glcm", "distances"), ("glcm", "angles"),
                ("lbp", "method"), ("lbp", "scales"))
    for section, key in settings:
        if a[section][key] != b[section][key]:
            raise ConfigError(f"cannot compare textures described with different {section} {key}: "
                              f"{a[section][key]} vs {b[section][key]}")
    shapes = [np.shape(g) for g in a["gram"]["grams"]], [np.shape(g) for g in b["gram"]["grams"]]
    if shapes[0] != shapes[1]:
        raise ConfigError(f"cannot compare Gram matrices of different networks: {shapes[0]} vs {shapes[1]}")


def chi_square(p: np.ndarray, q: np.ndarray) -> float:
    """1/2 sum (p - q)^2 / (p + q) over bins with p + q > 0: in [0, 1] for two histograms summing
    to 1, 0 when equal, 1 when they share no bin."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    total = p + q
    used = total > 0
    return float(0.5 * ((p[used] - q[used]) ** 2 / total[used]).sum())


def relative_difference(u, v) -> float:
    """|u - v| / (|u| + |v|) (Euclidean or Frobenius): in [0, 1], scale-free, 0 when equal
    (also when both are zero), 1 when one is zero and the other not."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    scale = np.linalg.norm(u) + np.linalg.norm(v)
    return float(np.linalg.norm(u - v) / scale) if scale > 0 else 0.0


def _glcm_vector(description: dict, name: str) -> np.ndarray:
    """One compared GLCM property over distances; correlation (in [-1, 1]) is mapped to
    (1 + c) / 2 so that the near-zero correlation of noise does not make a relative difference
    of noise against noise large."""
    values = np.asarray(description["glcm"]["properties"][name], dtype=np.float64)
    return (1.0 + values) / 2.0 if name == "correlation" else values


def compare(a: Texture, b: Texture) -> dict[str, float]:
    """The texture distance of two images (or describe() results) and its components.

    Components, each in [0, 1] and 0 for identical descriptors:
      lbp:  mean over LBP scales of chi_square(histogram_a, histogram_b);
      glcm: mean over contrast, correlation, energy, homogeneity of relative_difference of the
            property's vector over distances (correlation mapped to (1 + c) / 2);
      gram: mean over CNN scales of relative_difference(G_a, G_b) (Frobenius norm).
    distance = mean of the three (in [0, 1]); similarity = exp(-distance) (in [1/e, 1]).

    Returns:
        {"similarity", "distance", "lbp", "glcm", "gram"} as floats.
    """
    a, b = _described(a), _described(b)
    _check_comparable(a, b)
    histograms = zip(a["lbp"]["histograms"], b["lbp"]["histograms"])
    grams = zip(a["gram"]["grams"], b["gram"]["grams"])
    parts = {
        "lbp": float(np.mean([chi_square(p, q) for p, q in histograms])),
        "glcm": float(np.mean([relative_difference(_glcm_vector(a, name), _glcm_vector(b, name))
                               for name in GLCM_COMPARED])),
        "gram": float(np.mean([relative_difference(p, q) for p, q in grams])),
    }
    distance = float(np.mean([parts[key] for key in COMPONENTS]))
    return {"similarity": math.exp(-distance), "distance": distance, **parts}


def texture_distance(a: Texture, b: Texture) -> float:
    """Mean of the LBP, GLCM and Gram distances (see compare): 0 for the same texture, at most 1."""
    return compare(a, b)["distance"]


def texture_similarity(a: Texture, b: Texture) -> float:
    """exp(-texture_distance(a, b)): 1 for the same texture, 1/e at the largest distance."""
    return compare(a, b)["similarity"]


def compare_to_set(reference: Texture, images: Sequence[Texture]) -> dict[str, float]:
    """compare(reference, image) averaged over `images` (e.g. a run's samples against its
    exemplar): each component and the distance are means over the set, and similarity is
    exp(-mean distance). The reference is described once."""
    if len(images) == 0:
        raise ConfigError("compare_to_set needs at least one image to compare with")
    reference = _described(reference)
    results = [compare(reference, image) for image in images]
    means = {key: float(np.mean([r[key] for r in results])) for key in ("distance", *COMPONENTS)}
    return {"similarity": math.exp(-means["distance"]), **means}


def texture_similarity_to_set(reference: Texture, images: Sequence[Texture]) -> float:
    """exp(-mean texture distance) from `reference` to each of `images`."""
    return compare_to_set(reference, images)["similarity"]


def diversity(images: Sequence[Texture]) -> float:
    """Mean texture_distance over all pairs of `images`: 0 when they are copies of one image.

    A generator that returns its exemplar unchanged scores similarity 1 and diversity 0; report
    both to tell learning a texture from memorising it.
    """
    if len(images) < 2:
        raise ConfigError(f"diversity needs at least 2 images, got {len(images)}")
    described = [_described(image) for image in images]
    return float(np.mean([texture_distance(a, b) for a, b in itertools.combinations(described, 2)]))


# Tiling.

def seam_score(image: np.ndarray, period_axis: str = "both") -> float:
    """How visible the wrap-around seam of a tileable texture is: about 1 when seamless.

    The mean squared intensity difference across the wrap boundary (last column against first
    for "x", last row against first for "y", both pooled for "both") over the mean squared
    difference between neighbouring columns / rows inside the image. A texture that is periodic
    with the image size reads ~1; a seam makes it much larger. A flat image reads 1.

    Args:
        image: uint8 (or float in [0, 1]) H x W or H x W x C; all colour channels count.
        period_axis: "x" (tiles left-right), "y" (tiles top-bottom) or "both".
    """
    if period_axis not in PERIOD_AXES:
        raise ConfigError(f"period_axis={period_axis!r}: use one of {', '.join(PERIOD_AXES)}")
    pixels = as_uint8(image).astype(np.float64) / 255.0
    if min(pixels.shape[:2]) < 2:
        raise ConfigError(f"image {pixels.shape[1]}x{pixels.shape[0]} is too small for a seam score")
    axes = (1, 0) if period_axis == "both" else ((1,) if period_axis == "x" else (0,))
    wrap, inside = [], []
    for axis in axes:
        first, last = np.take(pixels, 0, axis=axis), np.take(pixels, -1, axis=axis)
        wrap.append(((last - first) ** 2).ravel())
        inside.append((np.diff(pixels, axis=axis) ** 2).ravel())
    across, within = float(np.concatenate(wrap).mean()), float(np.concatenate(inside).mean())
    return across / within if within > 0 else 1.0
