"""Parts of a labelled data set: some of its classes (`data.classes`) and a few of its
images (`data.limit`), what transfer learning and few-shot runs train on.

The images kept by a limit are fixed: the same for every run, seed and machine, so runs
that differ in anything else see the same images. They are drawn class by class in turns
from one fixed shuffle, so every class is equally represented (as far as it has images) and
a smaller limit keeps a subset of a larger one's images: the 100 images of `limit: 100` are
among the 1,000 of `limit: 1000`. A limit applies to the train split only; the test split
stays whole, so evaluation compares with every held-out image.
"""
from __future__ import annotations

import torch

from ..errors import DataError
from .imageset import ImageSet

SUBSET_SEED = 0  # the fixed shuffle a limit draws from (not a run's seed: see the module docstring)


def select(data, classes: list | None, limit: int | None, split: str, name: str):
    """`data` restricted to `classes` (relabelled 0, 1, ... in the order given) and, for the
    train split, to `limit` images.

    Args:
        data: what a source returned; only an ImageSet can be restricted.
        classes: class indices or names, or None for every class.
        limit: at most this many training images, or None for all of them.
        split: "train" or "test".
        name: the data set's name, for errors.

    Example:
        >>> part = select(digits, [5, 6], 100, "train", "digits")
        >>> part.class_names, len(part)
        (['5', '6'], 100)
    """
    if classes is None and (limit is None or split != "train"):
        return data
    what = "data.classes" if classes is not None else "data.limit"
    if not isinstance(data, ImageSet):
        raise DataError(f"{what}: data set {name!r} is not one set of equal-sized images "
                        f"(crops, pairs or two domains); choose its images by other means")
    if classes is not None:
        data = _keep_classes(data, classes, name)
    if limit is not None and split == "train" and limit < len(data):
        data = data.subset(balanced_order(data.labels, len(data))[:limit])
    return data


def _keep_classes(data: ImageSet, classes: list, name: str) -> ImageSet:
    if data.labels is None:
        raise DataError(f"data.classes: data set {name!r} has no labels to choose classes by")
    indices = []
    for wanted in classes:
        if isinstance(wanted, str):
            if wanted not in data.class_names:
                raise DataError(f"data.classes: data set {name!r} has no class {wanted!r}; its "
                                f"classes: {', '.join(data.class_names)}")
            indices.append(data.class_names.index(wanted))
        elif wanted >= len(data.class_names):
            raise DataError(f"data.classes: data set {name!r} has classes 0 to "
                            f"{len(data.class_names) - 1}, not {wanted}")
        else:
            indices.append(wanted)
    if len(set(indices)) != len(indices):
        raise DataError(f"data.classes={classes!r} names a class of {name!r} twice")
    relabel = torch.full((len(data.class_names),), -1, dtype=torch.long)
    relabel[torch.tensor(indices)] = torch.arange(len(indices))
    new = relabel[data.labels]
    kept = torch.nonzero(new >= 0).flatten()
    if len(kept) == 0:
        raise DataError(f"data.classes={classes!r}: data set {name!r} has no images of these classes")
    part = data.subset(kept)
    part.labels = new[kept]
    part.class_names = [data.class_names[i] for i in indices]
    return part


def balanced_order(labels: torch.Tensor | None, n: int) -> torch.Tensor:
    """Indices 0..n-1 in the order a limit takes them: one fixed shuffle, then the classes in
    turns (the first image of each class, then the second of each, ...)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SUBSET_SEED))
    if labels is None:
        return order
    shuffled = labels[order]
    rank = torch.empty(n, dtype=torch.long)  # how many images of its class come before it
    for cls in shuffled.unique():
        where = torch.nonzero(shuffled == cls).flatten()
        rank[where] = torch.arange(len(where))
    # Stable sort by rank: within a turn, classes in the order the shuffle met them.
    return order[torch.sort(rank * n + torch.arange(n), stable=True).indices]
