"""matplotlib, headless, for every PNG reslab writes (training curves, experiments, analyses)."""
from __future__ import annotations

from collections.abc import Sequence


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_series(ax, xs: Sequence[float], ys: Sequence[float], style: str = "-", **kwargs):
    """ax.plot, with markers when a series has too few points for its line to be seen."""
    if len(xs) < 3:
        kwargs.setdefault("marker", "o")
        kwargs.setdefault("ms", 4)
    return ax.plot(list(xs), list(ys), style, **kwargs)
