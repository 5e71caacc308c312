"""The one Pareto plot: an objective against a cost, with the front, other subnets and the chosen
ones, written as a PNG. Used by the reports (``ofa_nni.app.report``) and the Optuna sampler's
dashboard upload (``strategies.optuna_sampler``). matplotlib (headless, Agg) loads on first use."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ofa_nni._artifacts import atomic_write

__all__ = ["ParetoPanel", "pareto_plot"]

_CHOSEN_STYLES = (("*", 160, "gold"), ("D", 50, "#2ca02c"), ("s", 50, "#9467bd"))
"""Marker, size and colour of the first, second and third series of chosen subnets."""


@dataclasses.dataclass(frozen=True)
class ParetoPanel:
    """One panel of :func:`pareto_plot`: ``y`` (an objective) against ``x`` (a cost)."""

    xlabel: str
    ylabel: str
    front: tuple[Sequence[float], Sequence[float]]
    """The Pareto front ``(xs, ys)``, drawn as a step line in ``x`` order (the best ``y`` at ``x``)."""
    front_label: str = "Pareto front"
    points: tuple[Any, Any] | None = None
    """Other subnets ``(xs, ys)``, drawn as dots."""
    points_label: str = "sampled subnets"
    infeasible: tuple[Any, Any] | None = None
    """Subnets that miss a constraint ``(xs, ys)``, drawn as grey crosses."""
    chosen: Sequence[tuple[str, Sequence[float], Sequence[float]]] = ()
    """Series of chosen subnets ``(label, xs, ys)``: a star, then diamonds, then squares."""
    budgets: Sequence[float] = ()
    """Vertical dotted lines (the targets' budgets on ``x``)."""
    y_scale: float = 1.0
    """Factor the ``y`` values are drawn at (100: fractions shown in %)."""


def _draw(axis: Any, panel: ParetoPanel) -> None:
    scale = panel.y_scale
    if panel.points is not None:
        axis.scatter(np.asarray(panel.points[0]), scale * np.asarray(panel.points[1], dtype=np.float64), s=8,
                     c="#7fa7cf", alpha=0.6, label=panel.points_label)
    if panel.infeasible is not None and len(panel.infeasible[0]):
        axis.scatter(np.asarray(panel.infeasible[0]), scale * np.asarray(panel.infeasible[1], dtype=np.float64),
                     s=10, c="#999999", marker="x", alpha=0.6, label="infeasible")
    x, y = np.asarray(panel.front[0], dtype=np.float64), np.asarray(panel.front[1], dtype=np.float64)
    order = np.argsort(x, kind="stable")
    axis.step(x[order], scale * y[order], where="post", c="#d62728", label=panel.front_label)
    for budget in panel.budgets:
        axis.axvline(budget, c="#999999", ls=":", lw=1)
    for (label, xs, ys), (marker, size, colour) in zip(panel.chosen, _CHOSEN_STYLES, strict=False):
        axis.scatter(list(xs), [scale * v for v in ys], marker=marker, s=size, c=colour, edgecolors="k",
                     zorder=5, label=label)
    axis.set_xlabel(panel.xlabel)
    axis.set_ylabel(panel.ylabel)
    axis.grid(alpha=0.3)
    axis.legend(loc="best", fontsize=8)


def pareto_plot(path: str | os.PathLike[str], panels: ParetoPanel | Sequence[ParetoPanel], *, title: str) -> None:
    """Draw one or more :class:`ParetoPanel` side by side into a PNG at ``path`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")  # headless; no display needed
    import matplotlib.pyplot as plt

    panel_list = [panels] if isinstance(panels, ParetoPanel) else list(panels)
    figure, axes = plt.subplots(1, len(panel_list), figsize=(6.5 * len(panel_list), 4.5), dpi=120, squeeze=False)
    for axis, panel in zip(axes[0], panel_list, strict=True):
        _draw(axis, panel)
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    atomic_write(path, lambda file: file.write(buffer.getvalue()))
