"""A trained classifier: predictions, penultimate features, and its evaluation report."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import ImageSet, to_float
from .generator import rebuild


class TrainedClassifier:
    """Wraps a classifier network; inputs are uint8 N x C x H x W tensors (an ImageSet's)."""

    def __init__(self, net: torch.nn.Module, meta: dict, device: torch.device):
        self.net, self.meta, self.device = net.eval().requires_grad_(False).to(device), meta, device
        self.class_names: list[str] = meta.get("class_names", [])
        self.shape = meta["shape"]

    def meta_config(self):
        """The run's resolved Config (a fresh copy)."""
        from ..config import from_dict
        return from_dict(self.meta["config"])

    @torch.inference_mode()
    def _run(self, images: torch.Tensor, fn, batch_size: int) -> torch.Tensor:
        out = []
        for start in range(0, len(images), batch_size):
            out.append(fn(to_float(images[start:start + batch_size].to(self.device))).float().cpu())
        return torch.cat(out) if out else torch.empty(0)

    def logits(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        return self._run(images, self.net, batch_size)

    def features(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Penultimate-layer features: the space FID, KID, precision/recall are measured in."""
        return self._run(images, self.net.features, batch_size)

    def predict(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        return self.logits(images, batch_size).argmax(1)

    def report(self, data: ImageSet) -> dict:
        """Accuracy, per-class precision/recall/F1, macro averages and the confusion matrix."""
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        if data.labels is None:
            raise ValueError("evaluating a classifier needs labelled images")
        truth = data.labels.cpu().numpy()
        pred = self.predict(data.images).numpy()
        classes = list(range(len(self.class_names)))
        precision, recall, f1, support = precision_recall_fscore_support(
            truth, pred, labels=classes, zero_division=0)
        return {
            "accuracy": float((truth == pred).mean()),
            "macro_precision": float(precision.mean()), "macro_recall": float(recall.mean()),
            "macro_f1": float(f1.mean()), "images": int(len(truth)),
            "per_class": [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f),
                           "support": int(s)}
                          for name, p, r, f, s in zip(self.class_names, precision, recall, f1, support)],
            "confusion_matrix": confusion_matrix(truth, pred, labels=classes).tolist(),
        }


def load_classifier(run_dir: str | Path, checkpoint_name: str = "last", device: str = "cpu") -> TrainedClassifier:
    """Load the classifier of a run made by `ganforge classify train`.

    Example:
        >>> clf = load_classifier("runs/digits-cnn")
        >>> clf.report(load_dataset(DataConfig(name="digits"), "test"))["accuracy"]
    """
    net, meta = rebuild(run_dir, checkpoint_name, "C")
    return TrainedClassifier(net, meta, torch.device(device))


def confusion_png(matrix: list[list[int]], class_names: list[str], cell: int = 36) -> np.ndarray:
    """Draw a confusion matrix (rows: true class, columns: predicted) as an RGB image."""
    from PIL import Image, ImageDraw

    counts = np.asarray(matrix, dtype=np.float64)
    n = len(counts)
    margin = cell + 8
    size = margin + n * cell
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    rows = counts.sum(1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    for i in range(n):
        draw.text((4, margin + i * cell + cell // 3), class_names[i][:5], fill="black")
        draw.text((margin + i * cell + 4, 4), class_names[i][:5], fill="black")
        for j in range(n):
            shade = int(255 * (1 - share[i, j]))
            x, y = margin + j * cell, margin + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(shade, shade, 255), outline="gray")
            draw.text((x + 4, y + cell // 3), str(int(counts[i, j])),
                      fill="white" if share[i, j] > 0.5 else "black")
    return np.asarray(image)
