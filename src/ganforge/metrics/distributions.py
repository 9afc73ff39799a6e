"""Distances between two feature distributions as a whole: FID and KID.

FID fits a Gaussian to each feature set and compares them in closed form; KID compares
the sets with a polynomial-kernel MMD, which is unbiased and so comparable across
sample sizes. Both work in float64; FID takes the matrix square root through symmetric
eigendecompositions, which stay real and finite even for singular covariances (D > N).
"""
from __future__ import annotations

import torch

from .distances import check_int, check_same_dim, rows_per_block, to_matrix


def _mean_and_cov(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample mean and unbiased (N - 1) covariance, accumulated in float64 row blocks."""
    n, dim = x.shape
    step = rows_per_block(dim)
    mean = torch.zeros(dim, dtype=torch.float64, device=x.device)
    for start in range(0, n, step):
        mean += x[start:start + step].to(torch.float64).sum(dim=0)
    mean /= n
    cov = torch.zeros(dim, dim, dtype=torch.float64, device=x.device)
    for start in range(0, n, step):
        centred = x[start:start + step].to(torch.float64) - mean
        cov += centred.T @ centred
    return mean, (cov + cov.T) / (2 * (n - 1))


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix; round-off negative eigenvalues become 0."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """tr sqrt(S1 S2) for symmetric PSD S1, S2, as the sum of sqrt(eig(sqrt(S1) S2 sqrt(S1))).

    sqrt(S1) S2 sqrt(S1) is similar to S1 S2 but symmetric PSD, so its eigenvalues are real
    and >= 0 up to round-off (clamped), unlike those of the non-symmetric product.

    Args:
        s1: D x D covariance.
        s2: D x D covariance.

    Example:
        >>> float(trace_sqrt_product(torch.eye(3, dtype=torch.float64), 4 * torch.eye(3, dtype=torch.float64)))
        6.0
    """
    root = _psd_sqrt(s1)
    m = root @ s2 @ root
    return torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()


def fid(real_feats, fake_feats) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017).

    |m1 - m2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2)), with unbiased (N - 1) covariances.
    The result is clamped at 0 (round-off can make identical sets slightly negative).

    Args:
        real_feats: N x D features (N >= 2), tensor or NumPy array.
        fake_feats: M x D features (M >= 2).

    Example:
        >>> x = torch.randn(500, 4)
        >>> round(fid(x, x + 1.0), 6)
        4.0
    """
    real = to_matrix(real_feats, "real_feats", min_rows=2, float64=False)
    fake = to_matrix(fake_feats, "fake_feats", min_rows=2, float64=False)
    check_same_dim(real, fake, ("real_feats", "fake_feats"))
    m1, s1 = _mean_and_cov(real)
    m2, s2 = _mean_and_cov(fake.to(real.device))
    value = (m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * trace_sqrt_product(s1, s2)
    return max(float(value), 0.0)


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, degree: int, skip_diagonal: bool) -> torch.Tensor:
    """Sum of (a_i . b_j / D + 1)^degree over all (i, j), or over i != j, in row blocks."""
    dim = a.shape[1]
    step = rows_per_block(b.shape[0])
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for start in range(0, a.shape[0], step):
        k = (a[start:start + step] @ b.T / dim + 1).pow(degree)
        if skip_diagonal:
            k.diagonal(offset=start).zero_()
        total += k.sum()
    return total


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int = 3) -> float:
    """Unbiased MMD^2 between two equal-size samples with the kernel (x.y / D + 1)^degree.

    Within-sample sums skip i == j, so two independent samples of one distribution give
    about 0 (either sign); a sample against itself does not (it comes out negative).

    Args:
        x: m x D float64 samples (m >= 2).
        y: m x D float64 samples on the same device.
        degree: polynomial degree.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = (torch.randn(500, 16, generator=g, dtype=torch.float64) for _ in range(2))
        >>> abs(mmd2_unbiased(x, y)) < 0.05, mmd2_unbiased(x, y + 1.0) > 1.0
        (True, True)
    """
    m = x.shape[0]
    within = _kernel_sum(x, x, degree, True) + _kernel_sum(y, y, degree, True)
    across = _kernel_sum(x, y, degree, False)
    return float(within / (m * (m - 1)) - 2 * across / (m * m))


def kid(real_feats, fake_feats, subsets: int = 100, subset_size: int = 1000,
        degree: int = 3, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): mean and std of unbiased MMD^2.

    Draws `subsets` random subsets of `subset_size` samples (capped by the smaller set)
    from each side, without replacement within a subset, as torch-fidelity and
    torchmetrics do; the std is the population std (ddof=0) over subsets.

    Args:
        real_feats: N x D features (N >= 2).
        fake_feats: M x D features (M >= 2).
        subsets: number of subsets to average.
        subset_size: samples per subset.
        degree: degree of the polynomial kernel (x.y / D + 1)^degree.
        seed: seed of the subset draws (the result is deterministic).

    Example:
        >>> x, y = torch.randn(200, 8), torch.randn(200, 8) + 1.0
        >>> kid(x, y, subsets=10, subset_size=100)[0] > 0.1
        True
    """
    real = to_matrix(real_feats, "real_feats", min_rows=2)
    fake = to_matrix(fake_feats, "fake_feats", min_rows=2)
    check_same_dim(real, fake, ("real_feats", "fake_feats"))
    fake = fake.to(real.device)
    subsets = check_int(subsets, "subsets", 1)
    m = min(check_int(subset_size, "subset_size", 2), real.shape[0], fake.shape[0])
    degree = check_int(degree, "degree", 1)
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        x = real[torch.randperm(real.shape[0], generator=generator)[:m].to(real.device)]
        y = fake[torch.randperm(fake.shape[0], generator=generator)[:m].to(real.device)]
        scores.append(mmd2_unbiased(x, y, degree))
    t = torch.tensor(scores, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False))
