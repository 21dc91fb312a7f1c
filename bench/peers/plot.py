"""Draw bench/peers.py's results: one panel per model, a group of bars per protocol and
concurrency, a bar per server (images/s). Run by bench/peers.py with a Python that has
matplotlib (.venv's, else the venv of bench/peers/plot/requirements.txt):

    python bench/peers/plot.py results.json docs/peers.png

results.json: {"title": str, "cells": [label, ...], "models": {model: {server: [rate per cell]}}},
a rate null where the server was not measured (failed, or refused for its answers): "n/a".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(source: str, out: str) -> None:
    data = json.loads(Path(source).read_text())
    models = data["models"]
    cells = data["cells"]
    figure, axes = plt.subplots(
        len(models), 1, figsize=(11, 4.2 * len(models)), squeeze=False, constrained_layout=True
    )
    for axis, (model, servers) in zip(axes[:, 0], models.items(), strict=True):
        width = 0.8 / max(1, len(servers))
        for index, (server, rates) in enumerate(servers.items()):
            offset = (index - (len(servers) - 1) / 2) * width
            heights = [rate or 0.0 for rate in rates]
            bars = axis.bar(
                [cell + offset for cell in range(len(cells))], heights, width, label=server
            )
            labels = ["n/a" if r is None else f"{r:.0f}" if r >= 10 else f"{r:.1f}" for r in rates]
            axis.bar_label(bars, labels=labels, fontsize=7)
        axis.set_xticks(range(len(cells)), cells)
        axis.set_ylabel("images/s")
        axis.set_title(f"{model}: {data['title']}")
        axis.grid(axis="y", alpha=0.3)
        axis.legend(fontsize=8, ncol=len(servers), loc="upper center", bbox_to_anchor=(0.5, -0.18))
    figure.savefig(out, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
