"""Pictures for the ensemble run: member weights and the diversity heatmap (headless)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def weights_bar(weights: Mapping[str, float], path: str | Path, title: str = "") -> Path:
    """Bar chart of each member's weight in the ensemble."""
    plt = _pyplot()
    names = list(weights)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 2), 3.2))
    ax.bar(names, [weights[n] for n in names], color="#3b75af")
    ax.set_ylabel("weight")
    ax.set_title(title or "ensemble weights")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def heatmap(matrix: np.ndarray, names: Sequence[str], path: str | Path, title: str) -> Path:
    """Annotated heatmap of a members x members matrix (e.g. error correlation)."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=float)
    size = max(3.5, 0.7 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, matrix.min()), vmax=1.0)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    if len(names) <= 15:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if matrix[i, j] < 0.6 else "black",
                )
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
