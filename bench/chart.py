"""The timing figures of a benchmark run as a PNG: one horizontal bar chart per benchmark.

Only figures in seconds are drawn. A target of the form ``< N s`` (or ``ms``, ``min``) is
marked on its bar with a dashed line, and the bar is green within it, red over it; bars
without such a target are grey. Rendered with matplotlib's Agg canvas (no display needed).
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.common import Figure

_TARGET = re.compile(r"^\s*<\s*([0-9][0-9,.]*)\s*(ms|s|min)\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0}
_COLOURS = {None: "#9aa5b1", True: "#3a9d5d", False: "#d64545"}


def target_seconds(target: str) -> float | None:
    """The bound of a ``< N s`` target in seconds; ``None`` for any other target."""
    match = _TARGET.match(target)
    return float(match[1].replace(",", "")) * _SECONDS[match[2]] if match else None


def write_chart(figures: list[Figure], path: Path, *, title: str) -> Path | None:
    """Draw the figures in seconds of each benchmark as bars; ``None`` when there are none.

    :param figures: the run's figures (others than seconds are left out).
    :param path: the PNG to write (its folder must exist).
    :param title: the chart's title.
    :return: ``path``, or ``None`` if no figure is in seconds (nothing is written).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as Canvas

    groups: dict[str, list[Figure]] = {}
    for figure in figures:
        if figure.unit == "s":
            groups.setdefault(figure.bench, []).append(figure)
    if not groups:
        return None
    heights = [0.9 + 0.32 * len(bars) for bars in groups.values()]
    canvas = Canvas(figsize=(11, sum(heights) + 0.6), layout="constrained")
    FigureCanvasAgg(canvas)
    canvas.suptitle(title, fontsize=11)
    axes = canvas.subplots(len(groups), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (bench, bars) in zip(axes, groups.items()):
        rows = range(len(bars))[::-1]  # first figure on top
        bounds = [target_seconds(f.target) for f in bars]
        colours = [_COLOURS[None if b is None else f.value <= b] for f, b in zip(bars, bounds)]
        ax.barh(rows, [f.value for f in bars], color=colours, height=0.7)
        ax.set_yticks(rows, [f.name for f in bars], fontsize=8)
        ax.set_title(bench, loc="left", fontsize=9, fontweight="bold")
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel("seconds", fontsize=8)
        ax.margins(x=0.15)
        for row, figure, bound in zip(rows, bars, bounds):
            ax.annotate(f"{figure.value:,.3g} s" + (f"  ({figure.target})" if bound else ""),
                        (figure.value, row), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7)
            if bound is not None:
                ax.plot([bound, bound], [row - 0.45, row + 0.45], color="black",
                        linestyle="--", linewidth=1)
    canvas.savefig(path, dpi=110)
    return path
