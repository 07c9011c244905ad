"""PNG plots: training curves and confusion matrices (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..utils.plotting import plot_series, pyplot


def training_curves(records: list[dict], path: Path, title: str = "") -> Path:
    """Loss and error against steps: training dashed, evaluation solid (the papers' Fig. 6 style)."""
    plt = pyplot()
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        plot_series(ax1, [r["step"] for r in train], [r["loss"] for r in train], "--", label="train loss")
        plot_series(ax2, [r["step"] for r in train], [100 * r["err"] for r in train], "--", label="train error")
    for split in sorted({k.split("/")[0] for r in evals for k in r if k.endswith("/top1_err")}):
        pts = [r for r in evals if f"{split}/top1_err" in r]
        plot_series(ax1, [r["step"] for r in pts], [r[f"{split}/loss"] for r in pts], "-", label=f"{split} loss")
        ax2.plot([r["step"] for r in pts], [100 * r[f"{split}/top1_err"] for r in pts], "-o", ms=3, label=f"{split} error")
    ax1.set_xlabel("iteration"), ax1.set_ylabel("loss"), ax1.set_yscale("log"), ax1.legend()
    ax2.set_xlabel("iteration"), ax2.set_ylabel("top-1 error (%)"), ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_matrix(confusion: torch.Tensor, classes: list[str], path: Path, title: str = "") -> Path:
    plt = pyplot()
    c = confusion.double()
    norm = (c / c.sum(1, keepdim=True).clamp(min=1)).numpy()
    n = len(classes)
    size = min(4 + 0.45 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if n <= 40:
        ax.set_xticks(range(n), classes, rotation=90, fontsize=8)
        ax.set_yticks(range(n), classes, fontsize=8)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if confusion[i, j]:
                        ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title)
    fig.colorbar(im, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
