"""A small matplotlib plot of a per-slice score, embeddable in a Qt widget."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


class SlicePlot(FigureCanvasQTAgg):
    """Line plot of one value per ``z`` slice with its mean as a dashed line."""

    def __init__(self, ylabel: str) -> None:
        self.figure = Figure(figsize=(3.5, 2.2), layout="constrained")
        super().__init__(self.figure)
        self.axes = self.figure.add_subplot()
        self._ylabel = ylabel
        self.setMinimumHeight(180)
        self.plot(np.array([]), float("nan"))

    def plot(self, values: np.ndarray, mean: float, first: int = 0) -> None:
        """Show ``values`` ``(Z,)`` of the slices ``first, first + 1, ...`` (NaN slices are
        gaps) and ``mean``."""
        ax = self.axes
        ax.clear()
        ax.plot(first + np.arange(values.size), values, marker=".", label="slice")
        if np.isfinite(mean):
            ax.axhline(mean, linestyle="--", color="grey", label=f"mean {mean:.2f}")
            ax.legend(loc="best", fontsize="small")
        ax.set_xlabel("slice (z)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # slice numbers, not 1.2
        ax.set_ylabel(self._ylabel)
        self.draw_idle()
