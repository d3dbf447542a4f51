"""Confusion matrix, most-confused pairs and per-class scores, computed from predictions."""
from __future__ import annotations

import numpy as np
import torch


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int = 10) -> np.ndarray:
    """Counts [true, predicted] as an int64 array."""
    flat = y_true.to(torch.int64) * num_classes + y_pred.to(torch.int64)
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes).numpy()


def most_confused(cm: np.ndarray, k: int = 5) -> list[dict]:
    """The ``k`` largest off-diagonal cells: ``{"true", "pred", "count"}``, largest first (ties by class)."""
    cells = [(int(cm[t, p]), t, p) for t in range(len(cm)) for p in range(len(cm)) if t != p and cm[t, p] > 0]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [{"true": t, "pred": p, "count": n} for n, t, p in cells[:k]]


def most_confused_pairs(cm: np.ndarray, k: int = 5) -> list[dict]:
    """The ``k`` unordered class pairs a↔b with the most mistakes in either direction."""
    pairs = [
        {"a": a, "b": b, "count": int(cm[a, b] + cm[b, a]), "a_as_b": int(cm[a, b]), "b_as_a": int(cm[b, a])}
        for a in range(len(cm)) for b in range(a + 1, len(cm)) if cm[a, b] + cm[b, a] > 0
    ]
    pairs.sort(key=lambda d: (-d["count"], d["a"], d["b"]))
    return pairs[:k]


def per_class_scores(y_true: torch.Tensor, y_pred: torch.Tensor) -> list[dict]:
    """Precision, recall, F1 and support of each class (scikit-learn)."""
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(y_true.numpy(), y_pred.numpy(), labels=list(range(10)), zero_division=0)
    return [{"class": c, "precision": float(p[c]), "recall": float(r[c]), "f1": float(f[c]), "support": int(s[c])} for c in range(10)]
