"""Accuracy, per-class recall and the confusion matrix, as the course's labels name them."""

from __future__ import annotations

import numpy as np

from predictor.contract import LABELS


def report(truth, predicted) -> str:
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    confusion = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        confusion[t, p] += 1
    right = int(np.sum(truth == predicted))
    lines = [f"accuracy: {right / len(truth):.1%} ({right}/{len(truth)})"]
    for index, label in enumerate(LABELS):
        hits, total = confusion[index, index], confusion[index].sum()
        recall = f"{hits / total:.1%}" if total else "n/a"
        lines.append(f"recall {label:<5}: {recall} ({hits}/{total})")
    lines.append("confusion (rows: truth, columns: predicted)")
    lines.append("        " + " ".join(f"{label:>6}" for label in LABELS))
    for index, label in enumerate(LABELS):
        lines.append(f"{label:>6}  " + " ".join(f"{n:>6}" for n in confusion[index]))
    return "\n".join(lines)
