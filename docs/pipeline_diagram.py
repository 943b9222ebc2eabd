"""Draw the README's picture of the pipeline, ``docs/img/pipeline.svg`` (``make diagram``).

One box per stage of ``skiff_hourly``, coloured by the part of the tree that holds its code,
and what the stage runs on locally and in production. matplotlib only (a pinned test tool),
so the picture can be drawn again on any machine ``make install`` set up; text is drawn as
paths, so the SVG shows the same everywhere (GitHub, the MkDocs site).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Box", "BOXES", "ARROWS", "draw", "main"]

OUT = Path(__file__).resolve().parent / "img" / "pipeline.svg"

#: Stage colour -> (fill, where the stage's code lives), for the legend.
PARTS = {
    "data": ("#dbeafe", "skiff.data · plugins/operators/ingest.py"),
    "dbt": ("#ffedd5", "include/dbt (Cosmos)"),
    "validate": ("#dcfce7", "skiff.validate · include/gx"),
    "train": ("#ede9fe", "skiff.train · include/flows"),
    "serve": ("#fee2e2", "skiff.serve · include/skiff_api · plugins"),
}


@dataclass(frozen=True)
class Box:
    """One stage: its name, a second line (what runs it) and where it is drawn.

    :param key: the name arrows refer to.
    :param title: the first line, the task or stage name.
    :param note: the second line, the tool (embedded default | production).
    :param part: a key of :data:`PARTS`, the box's colour.
    :param x: centre, in figure units (0-17.2).
    :param y: centre, in figure units (0-6).
    """

    key: str
    title: str
    note: str
    part: str
    x: float
    y: float


W, H = 2.6, 0.95  # box size, figure units
BUS_X, BUS_Y = 0.2, 4.02  # the line from validate to the two training lanes

BOXES = [
    Box("events", "raw events", "replay source | skiff load", "data", 1.85, 4.9),
    Box("ingest", "ingest_events", "append-only raw log", "data", 4.75, 4.9),
    Box("raw", "validate_raw", "GX: schema, events, volume", "validate", 7.65, 4.9),
    Box("prepare", "prepare", "dbt models + tests (Cosmos)", "dbt", 10.55, 4.9),
    Box("validate", "validate", "GX on what dbt built", "validate", 13.45, 4.9),
    Box("train_intent", "train_intent", "Metaflow + Keras, local | Batch", "train", 1.85, 3.0),
    Box("train_rec", "train_rec", "Metaflow + Keras, local | Batch", "train", 1.85, 1.6),
    Box("gate_intent", "gate", "vs the champion", "serve", 4.75, 3.0),
    Box("gate_rec", "gate", "vs the champion", "serve", 4.75, 1.6),
    Box("deploy_intent", "deploy", "local server | SageMaker", "serve", 7.65, 3.0),
    Box("deploy_rec", "deploy", "local server | SageMaker", "serve", 7.65, 1.6),
    Box("smoke_intent", "smoke test", "GET /predict, 200", "serve", 10.55, 3.0),
    Box("smoke_rec", "smoke test", "GET /predict, 200", "serve", 10.55, 1.6),
    Box("promote_intent", "promote | rollback", "champion registry", "serve", 13.45, 3.0),
    Box("promote_rec", "promote | rollback", "champion registry", "serve", 13.45, 1.6),
    Box("predict", "GET /predict", "Lambda handler", "serve", 16.1, 2.3),
]

ARROWS = [
    ("events", "ingest"), ("ingest", "raw"), ("raw", "prepare"), ("prepare", "validate"),
    ("validate", "train_intent"), ("validate", "train_rec"),
    *[(f"{a}_{m}", f"{b}_{m}") for m in ("intent", "rec")
      for a, b in (("train", "gate"), ("gate", "deploy"), ("deploy", "smoke"),
                   ("smoke", "promote"))],
    ("promote_intent", "predict"), ("promote_rec", "predict"),
]


def _width(box: Box) -> float:
    return 2.0 if box.key == "predict" else W


def draw(out: Path) -> Path:
    """Draw the pipeline into ``out`` (SVG, or PNG by its suffix).

    :param out: the file to write.
    :return: ``out``.
    """
    fig, ax = canvas(17.2, 6.4)
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    boxes = {box.key: box for box in BOXES}
    for box in BOXES:
        width = _width(box)
        ax.add_patch(FancyBboxPatch((box.x - width / 2, box.y - H / 2), width, H,
                                    boxstyle="round,pad=0.02,rounding_size=0.12",
                                    facecolor=PARTS[box.part][0], edgecolor="#334155",
                                    linewidth=1.2))
        ax.text(box.x, box.y + 0.17, box.title, ha="center", va="center", fontsize=12,
                fontweight="bold", color="#0f172a")
        ax.text(box.x, box.y - 0.2, box.note, ha="center", va="center", fontsize=9,
                color="#334155")
    line = {"linewidth": 1.4, "color": "#475569"}
    validate = boxes["validate"]
    ax.plot([validate.x, validate.x, BUS_X, BUS_X],
            [validate.y - H / 2, BUS_Y, BUS_Y, boxes["train_rec"].y], **line)
    for start, end in ARROWS:
        a, b = boxes[start], boxes[end]
        if start == "validate":  # off the bus, into the lane's first box
            points = (BUS_X, b.y), (b.x - W / 2, b.y)
        elif a.y == b.y:  # along a row
            points = (a.x + W / 2, a.y), (b.x - _width(b) / 2, b.y)
        else:  # the two lanes into /predict
            points = (a.x + W / 2, a.y), (b.x - _width(b) / 2, b.y + (0.25 if a.y > b.y else -0.25))
        ax.add_patch(FancyArrowPatch(*points, arrowstyle="-|>", mutation_scale=16,
                                     shrinkA=0, shrinkB=2, **line))
    ax.text(0.2, 6.05, "skiff_hourly, every hour, on its data interval", fontsize=13,
            fontweight="bold", color="#0f172a", va="center")
    ax.text(7.65, 3.75, "one release task group per model: intent (cart abandonment), "
            "rec (next item)", fontsize=9.5, color="#475569", ha="center", style="italic")
    ax.text(0.2, 0.62, "Any failed task or run, or a run past its deadline → alert: "
            "Slack webhook | a log line.   A failed validation stops the run: nothing "
            "downstream runs.   A lost gate ends it green.", fontsize=10, color="#7f1d1d",
            va="center")
    legend(ax, PARTS, x=0.2, y=0.04, box=(0.28, 0.22), fontsize=9.5, pitch=(1.0, 0.085),
           gap=0.12)
    return save(fig, out)


def canvas(width: float, height: float):
    """A figure of ``width`` x ``height`` inches whose axes count in inches, no frame; text
    drawn as paths (the SVG shows the same everywhere) and ids salted (the same bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "svg.hashsalt": "skiff",
                         "font.family": "DejaVu Sans"})
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def legend(ax, parts: dict[str, tuple[str, str]], *, x: float, y: float,
           box: tuple[float, float], fontsize: float, pitch: tuple[float, float],
           gap: float = 0.1) -> None:
    """A row of colour swatches, each with what it means (the diagrams' legend).

    :param parts: colour name -> (fill, label).
    :param x: left of the first swatch; ``y`` its bottom (axes units).
    :param box: a swatch's width and height.
    :param pitch: the space after a swatch: a constant plus this much per label character.
    :param gap: between a swatch and its label.
    """
    from matplotlib.patches import FancyBboxPatch

    for fill, label in parts.values():
        ax.add_patch(FancyBboxPatch((x, y), *box, boxstyle="round,pad=0.01",
                                    facecolor=fill, edgecolor="#334155", linewidth=0.8))
        ax.text(x + box[0] + gap, y + box[1] / 2, label, fontsize=fontsize, va="center",
                color="#334155")
        x += pitch[0] + pitch[1] * len(label)


def save(fig, out: Path) -> Path:
    """Write ``fig`` to ``out`` without a date in it (the same drawing, the same bytes)."""
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight", pad_inches=0.05, metadata={"Date": None})
    plt.close(fig)
    return out


def cli(draw_to, default: Path, doc: str, argv: list[str] | None = None) -> int:
    """``python docs/<script>.py [--out FILE]``: draw into ``FILE`` (default ``default``).

    :param draw_to: the script's ``draw(out) -> out``.
    :param doc: the script's docstring (its first line is the help).
    :param argv: the arguments (``sys.argv[1:]`` by default).
    :return: the exit status.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default, help=f"default: {default}")
    args = parser.parse_args(argv)
    print(draw_to(args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python docs/pipeline_diagram.py [--out FILE]``."""
    return cli(draw, OUT, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
