"""Distances between feature sets, in float64 and in blocks, and the k-NN metrics built on them.

Sample-quality metrics compare thousands of feature vectors with thousands of others; a
full 10,000 x 10,000 float64 distance matrix is 800 MB, so every comparison here walks
over row blocks of at most BLOCK_ELEMENTS distances and reduces each block at once.
The input checks shared by all metrics live here too, so every metric rejects a bad
array with the same clear message.
"""
from __future__ import annotations

import numbers
from typing import Iterator

import numpy as np
import torch

BLOCK_ELEMENTS = 1 << 22  # distances (or kernel values) held at once: 32 MiB of float64


# --------------------------------------------------------------------------- input checks

def as_tensor(x, name: str) -> torch.Tensor:
    """`x` (tensor, NumPy array or nested list of numbers) as a detached torch tensor.

    Args:
        x: the input array.
        name: how error messages call it.

    Example:
        >>> as_tensor(np.arange(3), "labels").tolist()
        [0, 1, 2]
    """
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        t = torch.from_numpy(x) if isinstance(x, np.ndarray) else torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a torch tensor or NumPy array of numbers ({err})") from None
    if t.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    return t


def to_matrix(x, name: str, *, min_rows: int = 1, float64: bool = True) -> torch.Tensor:
    """Check that `x` is an N x D array of finite numbers; return it as a tensor.

    Args:
        x: tensor, NumPy array or nested list, one sample per row.
        name: how error messages call it.
        min_rows: fewest samples accepted.
        float64: convert to float64 (else keep a floating dtype, for callers that convert
            block by block to save memory).

    Example:
        >>> to_matrix(np.zeros((3, 2), dtype=np.float32), "real_feats").dtype
        torch.float64
    """
    t = as_tensor(x, name)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N samples x D features), got shape {tuple(t.shape)}")
    if t.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples, got {t.shape[0]}")
    if t.shape[1] == 0:
        raise ValueError(f"{name} has no feature dimensions (shape {tuple(t.shape)})")
    if float64 or not t.is_floating_point():
        t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def check_same_dim(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    """Raise ValueError unless two N x D matrices have the same D.

    Example:
        >>> check_same_dim(torch.zeros(2, 3), torch.zeros(5, 3), ("real_feats", "fake_feats"))
    """
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names[0]} and {names[1]} must have the same feature dimension D, "
                         f"got {a.shape[1]} and {b.shape[1]}")


def check_int(value, name: str, minimum: int) -> int:
    """`value` as an int, or ValueError if it is not an integer >= minimum.

    Example:
        >>> check_int(3, "k", 1)
        3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


# --------------------------------------------------------------------------- blocked distances

def rows_per_block(n_cols: int) -> int:
    """How many rows of an (rows x n_cols) block fit in BLOCK_ELEMENTS (at least 1).

    Example:
        >>> rows_per_block(BLOCK_ELEMENTS // 4)
        4
    """
    return max(1, BLOCK_ELEMENTS // max(1, n_cols))


def distance_blocks(a: torch.Tensor, b: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (start, stop, cdist(a[start:stop], b)) over row blocks of `a`.

    Args:
        a: Q x D float64 queries.
        b: R x D float64 references (same device as `a`).

    Example:
        >>> [d.shape for _, _, d in distance_blocks(torch.zeros(3, 2), torch.ones(4, 2))]
        [torch.Size([3, 4])]
    """
    step = rows_per_block(b.shape[0])
    for start in range(0, a.shape[0], step):
        stop = min(start + step, a.shape[0])
        yield start, stop, torch.cdist(a[start:stop], b)


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of `x` to its k-th nearest *other* row (the sample itself excluded).

    Args:
        x: N x D float64 features, N > k.
        k: which neighbour.

    Example:
        >>> knn_radii(torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64), 1).tolist()
        [1.0, 1.0, 2.0]
    """
    radii = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for start, stop, d in distance_blocks(x, x):
        d.diagonal(offset=start).fill_(float("inf"))
        radii[start:stop] = d.kthvalue(k, dim=1).values
    return radii


def _coverage_fraction(queries: torch.Tensor, refs: torch.Tensor, ref_radii: torch.Tensor) -> float:
    """Share of queries that lie within the radius (inclusive) of at least one reference."""
    inside = 0
    for _, _, d in distance_blocks(queries, refs):
        inside += int((d <= ref_radii).any(dim=1).sum())
    return inside / queries.shape[0]


def _paired(real_feats, fake_feats, real_min: int, fake_min: int) -> tuple[torch.Tensor, torch.Tensor]:
    real = to_matrix(real_feats, "real_feats", min_rows=real_min)
    fake = to_matrix(fake_feats, "fake_feats", min_rows=fake_min)
    check_same_dim(real, fake, ("real_feats", "fake_feats"))
    return real, fake.to(real.device)


# --------------------------------------------------------------------------- metrics

def precision_recall(real_feats, fake_feats, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) from k-NN manifolds.

    A fake sample counts for precision if it lies within (<=, as in the authors' code) the
    distance from some real sample to that sample's k-th nearest real neighbour; recall is
    the same with the roles of real and fake swapped. Precision measures fidelity, recall measures diversity.

    Args:
        real_feats: N x D real features (N > k).
        fake_feats: M x D generated features (M > k).
        k: neighbourhood size of the manifold estimate.

    Example:
        >>> x = torch.randn(100, 8)
        >>> precision_recall(x, x)
        (1.0, 1.0)
    """
    k = check_int(k, "k", 1)
    real, fake = _paired(real_feats, fake_feats, k + 1, k + 1)
    precision = _coverage_fraction(fake, real, knn_radii(real, k))
    recall = _coverage_fraction(real, fake, knn_radii(fake, k))
    return precision, recall


def density_coverage(real_feats, fake_feats, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), robust variants of precision and recall.

    Density counts, per fake sample, how many real k-NN balls contain it, divided by k
    and averaged (about 1 when fakes follow the real distribution; may exceed 1).
    Coverage is the share of real samples whose k-NN ball holds at least one fake sample.
    Both use only real-sample balls, so fake outliers cannot inflate them. Balls are open
    (distance < radius), as in the authors' `prdc` code, so a set against itself has
    density 1 (each ball holds its centre and k - 1 neighbours) and coverage 1.

    Args:
        real_feats: N x D real features (N > k).
        fake_feats: M x D generated features (M >= 1).
        k: neighbourhood size of the real balls.

    Example:
        >>> x = torch.randn(100, 8)
        >>> density_coverage(x, x)[1]
        1.0
    """
    k = check_int(k, "k", 1)
    real, fake = _paired(real_feats, fake_feats, k + 1, 1)
    radii = knn_radii(real, k)
    inside = 0
    for _, _, d in distance_blocks(fake, real):
        inside += int((d < radii).sum())
    density = inside / (k * fake.shape[0])
    covered = 0
    for start, stop, d in distance_blocks(real, fake):
        covered += int((d.min(dim=1).values < radii[start:stop]).sum())
    return density, covered / real.shape[0]


def mean_pairwise_distance(feats, max_samples: int = 2000, seed: int = 0) -> float:
    """Mean Euclidean distance over distinct pairs of samples: a simple diversity score.

    Args:
        feats: N x D features (N >= 2).
        max_samples: above this many rows, average over a random subset of this size,
            drawn deterministically from `seed`.
        seed: seed of that subset.

    Example:
        >>> mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 0.0]]))
        3.0
    """
    x = to_matrix(feats, "feats", min_rows=2)
    max_samples = check_int(max_samples, "max_samples", 2)
    if x.shape[0] > max_samples:
        order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
        x = x[order[:max_samples].to(x.device)]
    n = x.shape[0]
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start, _, d in distance_blocks(x, x):
        total += torch.triu(d, diagonal=start + 1).sum()  # pairs i < j only
    return float(total) / (n * (n - 1) / 2)


def nearest_neighbours(queries, refs, exclude=None,
                       dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance from each query row to its nearest reference row, and that row's index.

    Walks over blocks of both sides, converting each reference block to `dtype` once, so a
    large uint8 set (e.g. 60,000 training images as pixel rows) is searched without a float
    copy of it in memory. float32 halves the time of float64; its distances are then exact
    to about 1e-3 relative (an exact copy may come out a little above 0).

    Args:
        queries: Q x D rows (tensor or NumPy array, any real dtype).
        refs: R x D rows searched (R >= 1).
        exclude: optional Q indices into `refs`, one per query, that the query may not
            match (its own row when the queries are part of `refs`); -1 for none.
        dtype: floating dtype of the computation.

    Example:
        >>> nearest_neighbours(torch.tensor([[0.0], [2.9]]), torch.tensor([[1.0], [3.0]]))
        (tensor([1.0000, 0.1000], dtype=torch.float64), tensor([0, 1]))
    """
    q = as_tensor(queries, "queries")
    r = as_tensor(refs, "refs")
    for t, name in ((q, "queries"), (r, "refs")):
        if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
            raise ValueError(f"{name} must be a non-empty 2-D array (N x D), got shape {tuple(t.shape)}")
    check_same_dim(q, r, ("queries", "refs"))
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    q = q.to(dtype)
    if not torch.isfinite(q).all():
        raise ValueError("queries contains NaN or infinite values")
    if exclude is not None:
        exclude = as_tensor(exclude, "exclude").to(torch.int64).to(q.device)
        if exclude.shape != (q.shape[0],):
            raise ValueError(f"exclude must hold one index per query ({q.shape[0]}), got shape "
                             f"{tuple(exclude.shape)}")
    best = torch.full((q.shape[0],), float("inf"), dtype=dtype, device=q.device)
    index = torch.full((q.shape[0],), -1, dtype=torch.int64, device=q.device)
    ref_step = max(1, min(r.shape[0], BLOCK_ELEMENTS // r.shape[1]))
    for r0 in range(0, r.shape[0], ref_step):
        block = r[r0:r0 + ref_step].to(device=q.device, dtype=dtype)
        if not torch.isfinite(block).all():
            raise ValueError("refs contains NaN or infinite values")
        for q0, q1, d in distance_blocks(q, block):
            if exclude is not None:
                own = exclude[q0:q1] - r0
                rows = ((own >= 0) & (own < block.shape[0])).nonzero().flatten()
                d[rows, own[rows]] = float("inf")
            value, where = d.min(dim=1)
            better = value < best[q0:q1]
            best[q0:q1] = torch.where(better, value, best[q0:q1])
            index[q0:q1] = torch.where(better, where + r0, index[q0:q1])
    return best, index
