"""The metrics math against closed forms and independent NumPy/SciPy references.

Every metric here is a pure function of arrays, so the tests build feature sets with known
statistics (exact sample means and covariances, separated clusters, one-hot predictions)
and check the numbers, not only the types. No images, models or files are involved.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import cdist

from ganforge.metrics import (class_histogram, density_coverage, fid, inception_score, kid,
                              mean_pairwise_distance, precision_recall)
from ganforge.metrics import distances


def rng(seed=0):
    return np.random.default_rng(seed)


def random_cov(d, seed, rank=None):
    """A random PSD covariance with a spread of eigenvalues (rank-deficient if rank < d)."""
    a = rng(seed).normal(size=(d, rank or d))
    return a @ a.T / (rank or d) + (0 if rank else 0.1 * np.eye(d))


def exact_samples(mean, cov, n, seed):
    """n samples whose *sample* mean and unbiased covariance are exactly `mean` and `cov`."""
    z = rng(seed).normal(size=(n, len(mean)))
    z -= z.mean(axis=0)
    whiten = np.linalg.cholesky(np.cov(z, rowvar=False))
    z = np.linalg.solve(whiten, z.T).T                      # sample covariance now I
    return z @ np.linalg.cholesky(cov).T + mean


def fid_closed_form(m1, s1, m2, s2):
    """|m1 - m2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), with SciPy's general matrix square root."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def fid_reference(a, b):
    return fid_closed_form(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))




@pytest.fixture
def tiny_blocks(monkeypatch):
    """Force the blocked code paths: a handful of distances per block, with ragged last blocks."""
    monkeypatch.setattr(distances, "BLOCK_ELEMENTS", 37)


# --------------------------------------------------------------------------- FID

@pytest.mark.parametrize("n,d", [(400, 8), (50, 200)])
def test_fid_of_a_set_with_itself_is_zero(n, d):
    x = rng(1).normal(size=(n, d)) * 3.0 + 5.0
    scale = np.trace(np.cov(x, rowvar=False))
    value = fid(x, x)
    assert math.isfinite(value)
    assert abs(value) < 1e-6 * scale


def test_fid_matches_closed_form_for_known_gaussians():
    d = 6
    m1, m2 = rng(2).normal(size=d), rng(3).normal(size=d) + 1.0
    s1, s2 = random_cov(d, 4), random_cov(d, 5)
    x1, x2 = exact_samples(m1, s1, 300, 6), exact_samples(m2, s2, 500, 7)
    expected = fid_closed_form(m1, s1, m2, s2)
    assert expected > 1.0
    assert fid(x1, x2) == pytest.approx(expected, rel=1e-6)
    assert fid(torch.from_numpy(x2), torch.from_numpy(x1)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("n1,n2,d", [(200, 300, 16), (40, 60, 24), (20, 30, 40), (30, 25, 64)])
def test_fid_matches_scipy_on_random_feature_sets(n1, n2, d):
    """Includes D > N, where both covariances are singular: the result must stay finite."""
    x1 = rng(8).normal(size=(n1, d)) @ np.linalg.cholesky(random_cov(d, 9)).T
    x2 = rng(10).normal(size=(n2, d)) * 1.5 + 0.3
    value = fid(x1, x2)
    assert math.isfinite(value)
    assert value == pytest.approx(fid_reference(x1, x2), rel=1e-6)


def test_fid_near_singular_covariance_stays_finite():
    d = 30
    s = random_cov(d, 11, rank=3) + 1e-12 * np.eye(d)     # rank 3 plus round-off scale noise
    x1 = exact_samples(np.zeros(d), s, 80, 12)
    x2 = rng(13).normal(size=(10, d))                      # D > N: singular sample covariance
    value = fid(x1, x2)
    assert math.isfinite(value) and value > 0
    assert value == pytest.approx(fid_reference(x1, x2), rel=1e-6)


def test_fid_translation_adds_squared_norm():
    x = rng(14).normal(size=(300, 10)) @ np.linalg.cholesky(random_cov(10, 15)).T
    v = rng(16).normal(size=10) * 2.0
    assert fid(x, x + v) == pytest.approx(float(v @ v), rel=1e-9)


def test_fid_float32_torch_and_float64_numpy_agree(tiny_blocks):
    x = torch.randn(120, 5, generator=torch.Generator().manual_seed(0))
    y = torch.randn(90, 5, generator=torch.Generator().manual_seed(1)) * 2 + 1
    blocked = fid(x, y.requires_grad_())
    assert blocked == pytest.approx(fid_reference(x.double().numpy(), y.detach().double().numpy()),
                                    rel=1e-9)


@pytest.mark.parametrize("a,b,message", [
    (np.zeros((1, 3)), np.zeros((5, 3)), "real_feats needs at least 2 samples"),
    (np.zeros((5, 3)), np.zeros((1, 3)), "fake_feats needs at least 2 samples"),
    (np.zeros((5, 3)), np.zeros((5, 4)), "same feature dimension"),
    (np.zeros(5), np.zeros((5, 3)), "real_feats must be 2-D"),
    (np.full((5, 3), np.nan), np.zeros((5, 3)), "real_feats contains NaN"),
    (np.zeros((5, 3)), np.full((5, 3), np.inf), "fake_feats contains NaN or infinite"),
])
def test_fid_rejects_bad_inputs(a, b, message):
    with pytest.raises(ValueError, match=message):
        fid(a, b)


# --------------------------------------------------------------------------- KID

def mmd2_unbiased_numpy(x, y, degree=3):
    """Binkowski et al. (2018), eq. for the unbiased MMD^2 estimate, written out directly."""
    m, d = x.shape
    kernel = lambda a, b: (a @ b.T / d + 1.0) ** degree  # noqa: E731
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.sum() / m ** 2)


def test_kid_of_same_distribution_is_near_zero_and_grows_with_shift():
    x, y = rng(20).normal(size=(600, 16)), rng(21).normal(size=(600, 16))
    null, null_std = kid(x, y, subsets=20, subset_size=300)
    assert abs(null) < 0.005
    assert null_std >= 0
    shifted = [kid(x, y + s, subsets=20, subset_size=300)[0] for s in (0.25, 0.5, 1.0)]
    assert shifted[0] > 10 * abs(null) + 0.01
    assert shifted[0] < shifted[1] < shifted[2]


@pytest.mark.parametrize("degree", [3, 2])
def test_kid_matches_numpy_estimator_on_one_full_subset(tiny_blocks, degree):
    x, y = rng(22).normal(size=(60, 7)), rng(23).normal(size=(60, 7)) * 1.3 + 0.4
    mean, std = kid(x, y, subsets=1, subset_size=60, degree=degree)
    assert mean == pytest.approx(mmd2_unbiased_numpy(x, y, degree), rel=1e-9)
    assert std == 0.0


def test_kid_caps_subset_size_and_is_deterministic():
    x, y = rng(24).normal(size=(80, 4)), rng(25).normal(size=(50, 4)) + 0.5
    capped = kid(x, y, subsets=5, subset_size=1000, seed=3)
    assert capped == kid(x, y, subsets=5, subset_size=50, seed=3)
    assert capped == kid(torch.from_numpy(x), torch.from_numpy(y), subsets=5, subset_size=50, seed=3)
    assert capped != kid(x, y, subsets=5, subset_size=50, seed=4)
    assert capped[1] > 0


@pytest.mark.parametrize("kwargs,message", [
    ({"subsets": 0}, "subsets must be >= 1"),
    ({"subset_size": 1}, "subset_size must be >= 2"),
    ({"degree": 1.5}, "degree must be an integer"),
])
def test_kid_rejects_bad_arguments(kwargs, message):
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match=message):
        kid(x, x, **kwargs)
    with pytest.raises(ValueError, match="same feature dimension"):
        kid(x, np.zeros((10, 2)))


# --------------------------------------------------------------------------- Inception Score

def test_inception_score_uniform_predictions_is_one():
    mean, std = inception_score(np.full((100, 10), 0.1))
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("classes", [2, 10, 37])
def test_inception_score_confident_even_predictions_is_num_classes(classes):
    labels = torch.arange(10 * classes * 3) % classes      # every split holds each class 3 times
    probs = torch.nn.functional.one_hot(labels, classes).float()
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(classes, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_matches_numpy_reference():
    p = rng(30).dirichlet(np.full(6, 0.3), size=300)
    scores = []
    for part in np.split(p, 3):
        py = part.mean(axis=0)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), axis=1))))
    mean, std = inception_score(p, splits=3)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)
    assert 1.0 < mean < 6.0


@pytest.mark.parametrize("probs,splits,message", [
    (np.full((10, 4), 0.3), 1, "rows must sum to 1"),
    (np.random.default_rng(0).normal(size=(10, 4)), 1, r"\[0, 1\].*not logits"),
    (np.full((5, 4), 0.25), 6, "splits \\(6\\) must not exceed the number of samples \\(5\\)"),
    (np.full((5, 4), 0.25), 0, "splits must be >= 1"),
    (np.full(4, 0.25), 1, "probs must be 2-D"),
])
def test_inception_score_rejects_bad_inputs(probs, splits, message):
    with pytest.raises(ValueError, match=message):
        inception_score(probs, splits=splits)


# --------------------------------------------------------------------------- k-NN metrics

def clusters(centres, per_cluster, seed, scale=1.0):
    points = [c + scale * rng(seed + i).normal(size=(per_cluster, len(c))) for i, c in enumerate(centres)]
    return np.concatenate(points)


CENTRES = [np.array(c, dtype=float) for c in ([0, 0, 0], [40, 0, 0], [0, 40, 0], [0, 0, 40])]


def test_precision_recall_identical_and_disjoint_sets():
    x = rng(40).normal(size=(300, 8))
    assert precision_recall(x, x) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0) == (0.0, 0.0)


def test_precision_recall_half_the_modes():
    real = clusters(CENTRES, 250, seed=41)
    fake = clusters(CENTRES[:2], 500, seed=51)             # fresh samples of 2 of the 4 modes
    precision, recall = precision_recall(real, fake, k=3)
    assert precision > 0.9
    assert recall == pytest.approx(0.5, abs=0.04)
    assert recall <= 0.5
    # The fake set *is* the real samples of two modes: exactly (1, 1/2).
    assert precision_recall(real, real[:500]) == (1.0, 0.5)


def test_density_coverage_identical_disjoint_and_half_modes():
    x = rng(42).normal(size=(300, 8))
    density, coverage = density_coverage(x, x)
    assert coverage == 1.0
    assert density == pytest.approx(1.0, abs=0.02)       # each ball: its centre + k-1 neighbours
    assert density_coverage(x, x + 100.0) == (0.0, 0.0)
    real = clusters(CENTRES, 250, seed=41)
    density, coverage = density_coverage(real, clusters(CENTRES[:2], 500, seed=51))
    assert coverage == pytest.approx(0.5, abs=0.04)
    assert 0.7 < density < 1.3


def brute_force_prdc(real, fake, k_pr, k_dc):
    def radii(x, k):
        d = cdist(x, x)
        np.fill_diagonal(d, np.inf)
        return np.sort(d, axis=1)[:, k - 1]

    d_rf = cdist(real, fake)
    precision = np.mean((d_rf <= radii(real, k_pr)[:, None]).any(axis=0))
    recall = np.mean((d_rf <= radii(fake, k_pr)[None, :]).any(axis=1))
    r = radii(real, k_dc)[:, None]
    density = (d_rf < r).sum() / (k_dc * len(fake))
    coverage = np.mean(d_rf.min(axis=1) < r[:, 0])
    return precision, recall, density, coverage


@pytest.mark.parametrize("blocked", [False, True])
def test_knn_metrics_match_brute_force(request, blocked):
    if blocked:
        request.getfixturevalue("tiny_blocks")
    real = rng(43).normal(size=(70, 5))
    fake = rng(44).normal(size=(55, 5)) * 1.4 + 0.3
    p, r, d, c = brute_force_prdc(real, fake, 3, 5)
    assert 0 < p < 1 and 0 < r < 1 and 0 < c < 1
    assert precision_recall(real, torch.from_numpy(fake).float(), k=3) == pytest.approx((p, r))
    assert density_coverage(real, fake, k=5) == pytest.approx((d, c))


@pytest.mark.parametrize("call,message", [
    (lambda: precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3), "real_feats needs at least 4"),
    (lambda: precision_recall(np.zeros((10, 2)), np.zeros((10, 2)), k=0), "k must be >= 1"),
    (lambda: precision_recall(np.zeros((10, 2)), np.zeros((10, 3))), "same feature dimension"),
    (lambda: density_coverage(np.zeros((5, 2)), np.zeros((10, 2)), k=5), "real_feats needs at least 6"),
    (lambda: density_coverage(np.zeros((10, 2)), [[0.0, float("nan")]]), "fake_feats contains NaN"),
    (lambda: precision_recall("abc", np.zeros((10, 2))), "real_feats must be a torch tensor or NumPy"),
])
def test_knn_metrics_reject_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- class histogram

def test_class_histogram_single_class_and_uniform():
    one = class_histogram(torch.full((50,), 3), num_classes=10)
    assert one == {"classes_present": 0.1, "entropy": 0.0, "normalized_entropy": 0.0}
    uniform = class_histogram(np.arange(100) % 10, num_classes=10)
    assert uniform["classes_present"] == 1.0
    assert uniform["entropy"] == pytest.approx(math.log(10), rel=1e-12)
    assert uniform["normalized_entropy"] == pytest.approx(1.0, rel=1e-12)


def test_class_histogram_partial():
    stats = class_histogram([0, 0, 0, 1], num_classes=4)   # p = (3/4, 1/4, 0, 0)
    assert stats["classes_present"] == 0.5
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert stats["entropy"] == pytest.approx(expected, rel=1e-12)
    assert stats["normalized_entropy"] == pytest.approx(expected / math.log(4), rel=1e-12)


@pytest.mark.parametrize("labels,num_classes,message", [
    ([0, 1, 10], 10, r"must lie in \[0, 10\).*got label 10"),
    ([0, -1], 10, "got label -1"),
    (np.zeros((4, 10)), 10, "1-D class indices.*argmax"),
    ([0.5, 1.0], 10, "integer class indices"),
    ([], 10, "empty"),
    ([0, 0], 1, "num_classes must be >= 2"),
])
def test_class_histogram_rejects_bad_inputs(labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        class_histogram(labels, num_classes)


# --------------------------------------------------------------------------- mean pairwise distance

def test_mean_pairwise_distance_known_configurations(tiny_blocks):
    assert mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 0.0]])) == 3.0
    square = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
    assert mean_pairwise_distance(square) == pytest.approx((4 + 2 * math.sqrt(2)) / 6, rel=1e-12)
    assert mean_pairwise_distance(np.eye(30)) == pytest.approx(math.sqrt(2), rel=1e-12)
    assert mean_pairwise_distance(np.zeros((5, 3))) == 0.0


def test_mean_pairwise_distance_matches_scipy_and_subsamples_deterministically(tiny_blocks):
    x = rng(60).normal(size=(80, 6))
    d = cdist(x, x)
    assert mean_pairwise_distance(x) == pytest.approx(d[np.triu_indices(80, 1)].mean(), rel=1e-12)
    sub = mean_pairwise_distance(x, max_samples=40, seed=1)
    assert sub == mean_pairwise_distance(x, max_samples=40, seed=1)
    assert sub != mean_pairwise_distance(x, max_samples=40, seed=2)
    assert sub == pytest.approx(mean_pairwise_distance(x), rel=0.1)


def test_mean_pairwise_distance_rejects_bad_inputs():
    with pytest.raises(ValueError, match="feats needs at least 2 samples"):
        mean_pairwise_distance(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="max_samples must be >= 2"):
        mean_pairwise_distance(np.zeros((4, 3)), max_samples=1)


def test_large_comparisons_run_in_bounded_blocks(monkeypatch):
    """A 10,000 x 10,000 comparison never holds more than BLOCK_ELEMENTS distances at once."""
    sizes = []
    real_cdist = torch.cdist

    def spy(a, b, *args, **kwargs):
        sizes.append(a.shape[0] * b.shape[0])
        return real_cdist(a, b, *args, **kwargs)

    monkeypatch.setattr(torch, "cdist", spy)
    x = torch.randn(10_000, 2, generator=torch.Generator().manual_seed(0))
    # x - y ~ N(0, 2 I) in 2-D: |x - y| is Rayleigh with sigma sqrt(2), mean sqrt(pi).
    assert mean_pairwise_distance(x, max_samples=10_000) == pytest.approx(math.sqrt(math.pi), rel=0.02)
    assert max(sizes) <= distances.BLOCK_ELEMENTS < 10_000 * 10_000
    assert sum(sizes) == 10_000 * 10_000
