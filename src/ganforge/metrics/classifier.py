"""Metrics on a classifier's view of generated samples: Inception Score and the class histogram.

Both take what a classifier already produced (softmax probabilities or predicted labels),
never images or models, so they work with any classifier: Inception for natural images,
a small digit classifier for MNIST-like data.
"""
from __future__ import annotations

import math

import torch

from .distances import as_tensor, check_int, to_matrix

ROW_SUM_TOLERANCE = 1e-3  # how far a row of probs may sum from 1 (float32 softmax round-off)


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), mean and std over splits.

    The N rows are cut into `splits` contiguous near-equal parts; each part gets its own
    marginal p(y). The std is the population std (ddof=0), as in the original code and
    torch-fidelity. IS is 1 for identical predictions and C for confident predictions spread
    evenly over C classes.

    Args:
        probs: N x C softmax outputs (rows in [0, 1] summing to 1), tensor or NumPy array.
        splits: number of parts (1 <= splits <= N).

    Example:
        >>> inception_score(torch.eye(4).repeat(5, 1), splits=1)
        (4.0, 0.0)
    """
    p = to_matrix(probs, "probs")
    n = p.shape[0]
    if (p < 0).any() or (p > 1 + ROW_SUM_TOLERANCE).any():
        raise ValueError("probs must lie in [0, 1]: pass softmax probabilities, not logits")
    sums = p.sum(dim=1)
    bad = ((sums - 1).abs() > ROW_SUM_TOLERANCE).nonzero()
    if len(bad):
        row = int(bad[0])
        raise ValueError(f"probs rows must sum to 1 (softmax outputs); row {row} sums to "
                         f"{float(sums[row]):.6g}")
    splits = check_int(splits, "splits", 1)
    if splits > n:
        raise ValueError(f"splits ({splits}) must not exceed the number of samples ({n})")
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        marginal = part.mean(dim=0, keepdim=True)
        kl = (torch.special.xlogy(part, part) - torch.special.xlogy(part, marginal)).sum(dim=1)
        scores.append(kl.mean().exp())
    t = torch.stack(scores)
    return float(t.mean()), float(t.std(unbiased=False))


def class_histogram(pred_labels, num_classes: int) -> dict[str, float]:
    """How evenly generated samples spread over classes: a mode-collapse check.

    Args:
        pred_labels: N predicted class indices in [0, num_classes), 1-D tensor, array or list.
        num_classes: number of classes C (>= 2).

    Returns:
        classes_present: share of the C classes predicted at least once.
        entropy: natural-log entropy of the predicted-class histogram (0 to log C).
        normalized_entropy: entropy / log C (0 to 1).

    Example:
        >>> class_histogram([0, 1, 2, 3], num_classes=4)["normalized_entropy"]
        1.0
    """
    labels = as_tensor(pred_labels, "pred_labels")
    if labels.ndim != 1:
        raise ValueError(f"pred_labels must be 1-D class indices, got shape {tuple(labels.shape)} "
                         f"(for N x C probabilities, take argmax(dim=1) first)")
    if labels.numel() == 0:
        raise ValueError("pred_labels is empty")
    num_classes = check_int(num_classes, "num_classes", 2)
    if labels.is_floating_point():
        if not torch.isfinite(labels).all() or (labels != labels.round()).any():
            raise ValueError("pred_labels must be integer class indices, got non-integer values")
    labels = labels.to(torch.int64)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(f"pred_labels must lie in [0, {num_classes}) for num_classes={num_classes}, "
                         f"got label {low if low < 0 else high}")
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float64)
    share = counts / counts.sum()
    entropy = float(-torch.special.xlogy(share, share).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0
    return {
        "classes_present": int((counts > 0).sum()) / num_classes,
        "entropy": entropy,
        "normalized_entropy": entropy / math.log(num_classes),
    }
