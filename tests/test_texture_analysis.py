"""Texture descriptors and similarity (ganforge.texture.analysis) and `ganforge texture analyze`,
on textures made here whose statistics are known: stripes, checkerboards, flat images, white
noise and low-pass noise of known spectrum, periodic and non-periodic patterns."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from helpers import error_line
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.texture import analysis
from ganforge.texture.analysis import (compare, compare_to_set, describe, diversity, glcm_features,
                                       json_ready, lbp_histogram, luma, multiscale_lbp, seam_score,
                                       texture_distance, texture_similarity,
                                       texture_similarity_to_set)

TOP = 31 ** 2        # contrast of neighbours at the lowest and highest of 32 levels
HORIZONTAL, VERTICAL = (0.0,), (math.pi / 2,)
DIAGONALS = (math.pi / 4, 3 * math.pi / 4)
NOISE_STD = 40.0     # grey levels of the noise textures (5 of the 32 quantised levels)
SMOOTH_SIGMA = 2.0   # pixels: the Gaussian low-pass of the smooth noise


def stripes(height: int = 32, width: int = 32, period: int = 2) -> np.ndarray:
    """Vertical stripes: columns alternate 0 and 255 every period / 2 columns."""
    columns = np.where(np.arange(width) % period < period // 2, 0, 255).astype(np.uint8)
    return np.tile(columns, (height, 1))


def checkerboard(size: int = 32) -> np.ndarray:
    """One-pixel black and white squares."""
    y, x = np.indices((size, size))
    return np.where((x + y) % 2, 255, 0).astype(np.uint8)


def noise(size: int, sigma: float, seed: int, stretch: float = 1.0) -> np.ndarray:
    """Gaussian noise of std NOISE_STD around 128; sigma > 0 low-passes it with a Gaussian of
    that many pixels (through the FFT, so the texture is periodic with the image size).
    Its autocorrelation at offset d is then exp(-d^2 / (4 sigma^2)); `stretch` < 1 elongates
    it horizontally."""
    white = np.random.default_rng(seed).standard_normal((size, size))
    if sigma:
        fy, fx = np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :]
        transfer = np.exp(-2 * np.pi ** 2 * sigma ** 2 * ((fx / stretch) ** 2 + fy ** 2))
        white = np.fft.ifft2(np.fft.fft2(white) * transfer).real
    white = (white - white.mean()) / white.std()
    return np.clip(np.rint(128 + NOISE_STD * white), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def white():
    return noise(128, 0, seed=1)


@pytest.fixture(scope="module")
def smooth():
    return noise(128, SMOOTH_SIGMA, seed=2)


# GLCM on patterns with exact answers.

def test_vertical_stripes_glcm_by_direction():
    image = stripes()
    across = glcm_features(image, angles=HORIZONTAL)
    assert across["contrast"] == pytest.approx([TOP, 0, 0])          # d=1 crosses, d=2,4 do not
    assert across["correlation"] == pytest.approx([-1, 1, 1])
    assert across["dissimilarity"] == pytest.approx([31, 0, 0])
    along = glcm_features(image, angles=VERTICAL)
    assert along["contrast"] == pytest.approx([0, 0, 0])
    assert along["correlation"] == pytest.approx([1, 1, 1])
    assert along["homogeneity"] == pytest.approx([1, 1, 1])
    assert along["energy"] == pytest.approx([math.sqrt(0.5)] * 3)  # two equally filled cells


def test_checkerboard_glcm():
    image = checkerboard()
    for angles in (HORIZONTAL, VERTICAL):
        features = glcm_features(image, angles=angles)
        assert features["contrast"] == pytest.approx([TOP, 0, 0])
        assert features["correlation"] == pytest.approx([-1, 1, 1])
    diagonal = glcm_features(image, angles=DIAGONALS)
    assert diagonal["contrast"] == pytest.approx([0, 0, 0])
    # The default mean over four directions: half the directions see a change at d=1.
    assert glcm_features(image)["contrast"] == pytest.approx([TOP / 2, 0, 0])


def test_flat_image_descriptors():
    flat = np.full((32, 32), 100, np.uint8)
    features = glcm_features(flat)
    for name, value in {"energy": 1, "ASM": 1, "homogeneity": 1, "contrast": 0,
                        "dissimilarity": 0, "correlation": 1}.items():
        assert features[name] == pytest.approx([value] * 3), name
    # Every neighbour equal: every pixel has uniform code P, border pixels included.
    for points, radius in analysis.LBP_SCALES:
        histogram = lbp_histogram(flat, points, radius)
        assert histogram.shape == (points + 2,)
        assert histogram[points] == 1.0
    description = describe(flat)
    assert description["lbp"]["entropy"] == [0.0, 0.0, 0.0]
    assert all(e > 0 for e in description["gram"]["energy"])


def test_glcm_quantises_and_tolerates_rotation(smooth):
    levels = glcm_features(np.array([[0, 7, 8, 255]] * 8, np.uint8), distances=(1,), angles=HORIZONTAL)
    # 0 and 7 share level 0; 8 is level 1; 255 is level 31: mean of 0, 1, 30 squared, symmetric.
    assert levels["contrast"] == pytest.approx([(0 + 1 + 30 ** 2) / 3])
    turned = glcm_features(np.ascontiguousarray(np.rot90(smooth)))
    for name, values in glcm_features(smooth).items():
        assert turned[name] == pytest.approx(values, rel=1e-9), name


# Noise of known spectra.

def test_white_and_smooth_noise_match_their_spectra(white, smooth):
    variance = (NOISE_STD / 8) ** 2                     # in quantised levels
    axes = HORIZONTAL + VERTICAL                         # offsets of exactly d pixels
    w, s = glcm_features(white, angles=axes), glcm_features(smooth, angles=axes)
    expected = [math.exp(-d * d / (4 * SMOOTH_SIGMA ** 2)) for d in analysis.GLCM_DISTANCES]
    assert s["correlation"] == pytest.approx(expected, abs=0.08)   # over 20 seeds: within 0.06
    assert w["correlation"] == pytest.approx([0, 0, 0], abs=0.05)
    # contrast = E(i - j)^2 = 2 variance (1 - correlation)
    predicted = [2 * variance * (1 - r) for r in expected]
    assert s["contrast"] == pytest.approx(predicted, rel=0.2)        # over 20 seeds: within 0.16
    assert w["contrast"] == pytest.approx([2 * variance] * 3, rel=0.1)
    assert w["contrast"][0] > 10 * s["contrast"][0]
    assert s["homogeneity"][0] > 2 * w["homogeneity"][0]


def test_lbp_tells_noise_from_smooth_noise(white, smooth):
    other_white = noise(128, 0, seed=3)
    for points, radius in analysis.LBP_SCALES:
        a, b = lbp_histogram(white, points, radius), lbp_histogram(smooth, points, radius)
        assert a.sum() == pytest.approx(1) and b.sum() == pytest.approx(1)
        assert analysis.chi_square(a, b) > 0.1
        assert analysis.chi_square(a, lbp_histogram(other_white, points, radius)) < 0.01
    assert multiscale_lbp(white).shape == (sum(p + 2 for p, _ in analysis.LBP_SCALES),)


# Similarity.

def test_similarity_of_crops_beats_another_texture():
    texture = noise(256, 2.5, seed=4, stretch=3.0)      # horizontally elongated blobs
    crop_a, crop_b = texture[:80, :96], texture[130:230, 100:240]   # different sizes
    same = compare(crop_a, crop_b)
    for other in (noise(100, 2.5, seed=5), noise(100, 0, seed=6), stripes(96, 96, period=8)):
        different = compare(crop_a, other)
        assert same["similarity"] > different["similarity"]
        assert same["distance"] < different["distance"]
    assert 0 < same["similarity"] <= 1
    for key in analysis.COMPONENTS:
        assert 0 <= same[key] <= 1


def test_similarity_to_itself_is_exactly_one(smooth):
    rgb = np.random.default_rng(7).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    for image in (smooth, rgb):
        result = compare(image, image.copy())
        assert result == {"similarity": 1.0, "distance": 0.0, "lbp": 0.0, "glcm": 0.0, "gram": 0.0}
        assert texture_similarity(describe(image), image) == 1.0
        assert texture_distance(image, describe(image)) == 0.0


def test_distance_is_the_mean_of_its_components(white, smooth):
    result = compare(white, smooth)
    assert result["distance"] == pytest.approx(np.mean([result[k] for k in analysis.COMPONENTS]))
    assert result["similarity"] == pytest.approx(math.exp(-result["distance"]))
    assert texture_distance(white, smooth) == pytest.approx(texture_distance(smooth, white))


def test_compare_to_set_and_diversity(white, smooth):
    exemplar = describe(smooth)
    copies = [smooth.copy() for _ in range(3)]
    assert compare_to_set(exemplar, copies)["similarity"] == 1.0
    assert diversity(copies) == 0.0
    mixed = [describe(smooth), describe(white)]
    result = compare_to_set(exemplar, mixed)
    assert result["distance"] == pytest.approx(texture_distance(smooth, white) / 2)
    assert texture_similarity_to_set(exemplar, mixed) == pytest.approx(math.exp(-result["distance"]))
    assert diversity(mixed) == pytest.approx(texture_distance(smooth, white))
    with pytest.raises(ConfigError, match="at least 2"):
        diversity([smooth])


def test_colour_goes_to_luma_and_floats_are_accepted(smooth):
    rgb = np.repeat(smooth[..., None], 3, axis=-1)
    assert np.array_equal(luma(rgb), smooth)
    assert luma(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)).tolist() == [[76, 150, 29]]
    gray, colour = describe(smooth), describe(rgb)
    assert gray["glcm"] == colour["glcm"]
    assert all(np.array_equal(a, b) for a, b in zip(gray["lbp"]["histograms"], colour["lbp"]["histograms"]))
    as_float = describe(smooth.astype(np.float32) / 255)
    assert as_float["glcm"] == gray["glcm"]
    assert texture_distance(as_float, gray) == 0.0


def test_json_ready_is_plain(smooth):
    report = json_ready(describe(smooth))
    assert json.loads(json.dumps(report)) == report
    assert "grams" not in report["gram"]

    def plain(value):
        if isinstance(value, dict):
            return all(plain(v) for v in value.values())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return type(value) in (int, float, str)

    assert plain(report)
    grams = json_ready(describe(smooth), grams=True)["gram"]["grams"]
    assert len(grams) == 4 and len(grams[0]) == 64


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(ConfigError, match="8x8 is too small"):
        describe(np.zeros((8, 8), np.uint8))
    with pytest.raises(ConfigError, match=r"\[255, 255\]: expected \[0, 1\]"):
        describe(np.full((16, 16), 255.0))
    with pytest.raises(ConfigError, match="int16"):
        describe(np.zeros((16, 16), np.int16))
    with pytest.raises(ConfigError, match="distances"):
        glcm_features(np.zeros((8, 8), np.uint8), distances=(8,))
    with pytest.raises(ConfigError, match="'var'"):
        lbp_histogram(np.zeros((8, 8), np.uint8), method="var")
    with pytest.raises(ConfigError, match="uint8 H x W"):
        glcm_features(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ConfigError, match="glcm distances"):
        compare(describe(stripes()), describe(stripes(), distances=(1, 2)))
    with pytest.raises(ConfigError, match="period_axis"):
        seam_score(stripes(), "z")


# Tiling.

def test_seam_score_periodic_vs_not():
    x = np.arange(64)

    def oblique(period: int) -> np.ndarray:
        return (0.5 + 0.4 * np.sin(2 * np.pi * (x[None, :] + x[:, None]) / period)).astype(np.float32)

    assert seam_score(oblique(16)) == pytest.approx(1.0, abs=0.05)     # 16 divides 64
    assert seam_score(oblique(24)) > 10                                # 24 does not
    periodic = noise(64, 3.0, seed=8)                                  # periodic by construction
    assert 0.4 < seam_score(periodic) < 2.5                            # 30 seeds: 0.57-1.66
    assert seam_score(periodic[:48, :40]) > 5                          # cropped: a seam
    ramp = np.tile(x.astype(np.uint8) * 4, (64, 1))                    # a step at the x border
    assert seam_score(ramp, "x") > 1000
    assert seam_score(ramp, "y") == 1.0
    assert seam_score(ramp) > 1000
    assert seam_score(np.full((16, 16, 3), 7, np.uint8)) == 1.0


# The command line.

@pytest.fixture
def image_files(tmp_path):
    folder = tmp_path / "textures"
    folder.mkdir()
    Image.fromarray(noise(64, 2.0, seed=9)).save(folder / "smooth.png")
    Image.fromarray(np.random.default_rng(10).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(
        folder / "noise.png")
    return folder


def test_cli_analyze_table(image_files, capsys):
    assert main(["texture", "analyze", str(image_files)]) == 0
    out = capsys.readouterr().out
    assert "noise.png  64x48, RGB" in out and "smooth.png  64x64, gray" in out
    for text in ("d=1", "d=2", "d=4", "contrast", "correlation", "homogeneity", "energy",
                 "LBP entropy", "P8,R1", "P24,R3", "Gram energy"):
        assert text in out, text
    assert "similarity to" not in out


def test_cli_analyze_json_and_compare(image_files, capsys):
    smooth, other = image_files / "smooth.png", image_files / "noise.png"
    assert main(["texture", "analyze", str(smooth), str(other), "--json", "--compare", str(smooth)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["reference"] == str(smooth)
    first, second = document["images"]
    assert first["file"] == str(smooth) and (first["height"], first["width"]) == (64, 64)
    assert len(first["glcm"]["properties"]["contrast"]) == 3
    assert all(isinstance(v, float) for v in first["gram"]["energy"])
    assert first["compare"]["similarity"] == 1.0
    assert 0 < second["compare"]["similarity"] < 1
    assert set(second["compare"]) == {"similarity", "distance", "lbp", "glcm", "gram"}

    assert main(["texture", "analyze", str(other), "--compare", str(smooth)]) == 0
    out = capsys.readouterr().out
    assert f"similarity to {smooth}" in out and "lbp" in out and "gram" in out


def test_cli_unreadable_file(image_files, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert main(["texture", "analyze", str(image_files / "smooth.png"), str(bad)]) == 2
    line = error_line(capsys, "texture")
    assert str(bad) in line
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tiny)
    assert main(["texture", "analyze", str(tiny)]) == 2
    assert str(tiny) in error_line(capsys, "texture")
    missing = str(tmp_path / "no.png")
    assert main(["texture", "analyze", str(image_files / "smooth.png"), "--compare", missing]) == 2
    assert "no.png" in error_line(capsys, "texture")
