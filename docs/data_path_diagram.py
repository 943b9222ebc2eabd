"""Draw the README's picture of the data path, ``docs/img/data-path.svg`` (``make diagram``).

Two lanes, one above the other, column by column the same job: the embedded default (the
simulated shoppers, ``skiff collect``, a landing folder, DuckDB) and production (a pixel or
SDK, API Gateway and the ``/collect`` Lambda, Firehose, S3, Snowflake). Both end in the same
``ingest_events`` task and the rest of ``skiff_hourly``. Drawn as ``docs/pipeline_diagram.py``
draws the pipeline: matplotlib only, text as paths, so the SVG shows the same everywhere. Its SVG is
narrower than that picture's (794 pt, not 982) at the same font sizes, so that its text stays
legible at README width.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline_diagram import canvas, cli, legend, save

__all__ = ["Box", "BOXES", "ARROWS", "draw", "main"]

OUT = Path(__file__).resolve().parent / "img" / "data-path.svg"

#: Box colour -> (fill, what the colour means), for the legend.
PARTS = {
    "skiff": ("#dbeafe", "Skiff's code"),
    "aws": ("#fef3c7", "AWS, made by include/skiff_api/template.yaml"),
    "warehouse": ("#dcfce7", "the warehouse"),
    "dag": ("#ffedd5", "the rest of skiff_hourly"),
    "outside": ("#f1f5f9", "the shop's own"),
}

FIG_W, FIG_H = 14.1, 5.3  # the figure's size (inches) and its axes' units
COL = 1.8  # column pitch
W, H = 1.62, 1.2  # box size
LANE_Y = {"embedded": 4.15, "production": 1.85}
LINE = 0.2  # a line of text in a box


def _x(column: float) -> float:
    """Centre of a column (0-based; a box over two columns sits at their middle, 1.5 etc.)."""
    return 0.85 + column * COL


@dataclass(frozen=True)
class Box:
    """One step of a lane: a title, a few lines saying what it does, and where it is drawn.

    :param key: the name arrows refer to.
    :param title: the first line, bold.
    :param notes: the lines below it.
    :param part: a key of :data:`PARTS`, the box's colour.
    :param x: centre, in figure units.
    :param y: centre, in figure units.
    :param width: box width (a box may span two columns).
    :param height: box height (a box may span both lanes).
    """

    key: str
    title: str
    notes: tuple[str, ...]
    part: str
    x: float
    y: float
    width: float = W
    height: float = H


_E, _P = LANE_Y["embedded"], LANE_Y["production"]
_MID, _BOTH = (_E + _P) / 2, _E - _P + H

BOXES = [
    # the embedded default
    Box("emit", "skiff emit", ("simulated", "shoppers", "(seeded)"), "skiff", _x(0), _E),
    Box("collect", "skiff collect", ("POST /collect, pixel GET",
                                     "a 4xx names a bad field"),
        "skiff", _x(1.5), _E, width=COL + W),
    Box("log", "append log", ("fsync'd before", "the 2xx; rolled", "60 s or 5 MiB"), "skiff",
        _x(3), _E),
    Box("folder", "landing zone", ("a folder:", "$SKIFF_HOME/", "landing"), "skiff", _x(4), _E),
    Box("duckdb", "raw log", ("DuckDB, one", "transaction"), "warehouse", _x(6), _E),
    # production
    Box("pixel", "pixel / SDK", ("on the shop's", "pages, apps"), "outside", _x(0), _P),
    Box("gateway", "API Gateway", ("HTTP API", "/collect"), "aws", _x(1), _P),
    Box("lambda", "Lambda", ("/collect: the", "same checks"), "skiff", _x(2), _P),
    Box("firehose", "Firehose", ("a stream per", "table; 60 s or", "5 MiB, GZIP"), "aws",
        _x(3), _P),
    Box("s3", "S3 bucket", ("Firehose's", "layout; whole", "objects"), "aws", _x(4), _P),
    Box("snowflake", "raw log", ("Snowflake:", "stage, then", "COPY INTO in", "one transaction"),
        "warehouse", _x(6), _P),
    # both lanes
    Box("ingest", "ingest_events", ("each interval:", "the files that", "arrived in it", "",
                                    "a ledger: each", "file loads once", "", "S3: through",
                                    "the Amazon", "provider's hook"),
        "skiff", _x(5), _MID, width=W + 0.1, height=_BOTH),
    Box("dag", "then", ("validate_raw", "↓", "dbt (Cosmos)", "↓", "validate", "↓", "train,",
                        "gate, deploy"),
        "dag", _x(6) + W / 2 + 0.35 + 0.63, _MID, width=1.26, height=_BOTH),
]

ARROWS = [
    ("emit", "collect", _E), ("collect", "log", _E), ("log", "folder", _E),
    ("folder", "ingest", _E), ("ingest", "duckdb", _E), ("duckdb", "dag", _E),
    ("pixel", "gateway", _P), ("gateway", "lambda", _P), ("lambda", "firehose", _P),
    ("firehose", "s3", _P), ("s3", "ingest", _P), ("ingest", "snowflake", _P),
    ("snowflake", "dag", _P),
]


def draw(out: Path) -> Path:
    """Draw the data path into ``out`` (SVG, or PNG by its suffix).

    :param out: the file to write.
    :return: ``out``.
    """
    fig, ax = canvas(FIG_W, FIG_H)
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    boxes = {box.key: box for box in BOXES}
    for box in BOXES:
        ax.add_patch(FancyBboxPatch((box.x - box.width / 2, box.y - box.height / 2), box.width,
                                    box.height, boxstyle="round,pad=0.02,rounding_size=0.1",
                                    facecolor=PARTS[box.part][0], edgecolor="#334155",
                                    linewidth=1.2))
        top = box.y + LINE * len(box.notes) / 2 + 0.04  # title and notes centred as a block
        ax.text(box.x, top, box.title, ha="center", va="center", fontsize=11.5,
                fontweight="bold", color="#0f172a")
        for i, note in enumerate(box.notes):
            ax.text(box.x, top - 0.06 - LINE * (i + 1), note, ha="center", va="center",
                    fontsize=9.5, color="#64748b" if note == "↓" else "#334155")
    line = {"linewidth": 1.4, "color": "#475569"}
    for start, end, y in ARROWS:
        a, b = boxes[start], boxes[end]
        ax.add_patch(FancyArrowPatch((a.x + a.width / 2, y), (b.x - b.width / 2, y),
                                     arrowstyle="-|>", mutation_scale=15, shrinkA=0, shrinkB=2,
                                     **line))
    left = _x(0) - W / 2
    for y, title, note in (
            (_E, "Embedded default", "make run · make airflow · docker compose up"),
            (_P, "Production", "SKIFF_LANDING_URI=s3://…   SKIFF_WAREHOUSE=snowflake")):
        ax.text(left, y + H / 2 + 0.22, title, fontsize=13, fontweight="bold", color="#0f172a",
                va="center")
        ax.text(left + 0.16 * len(title) + 0.2, y + H / 2 + 0.22, note, fontsize=10.5,
                color="#475569", va="center")
    ax.text(left, 0.82, "Both lanes: the same contract checks (skiff.data.contract); landing "
            "files <table>/YYYY/MM/DD/HH/*.ndjson.gz by arrival hour.", fontsize=10.5,
            color="#334155", va="center")
    ax.text(left, 0.52, "Accepted = durable before the 2xx.   A landing file is seen only "
            "whole.   An interval loads all or nothing, a file once.", fontsize=10.5,
            color="#7f1d1d", va="center")
    legend(ax, PARTS, x=left, y=0.08, box=(0.26, 0.2), fontsize=10, pitch=(0.75, 0.095))
    return save(fig, out)


def main(argv: list[str] | None = None) -> int:
    """``python docs/data_path_diagram.py [--out FILE]``."""
    return cli(draw, OUT, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
