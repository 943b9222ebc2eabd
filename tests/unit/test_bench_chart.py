"""bench/chart.py: the figures in seconds as a PNG, one bar chart per benchmark."""

from __future__ import annotations

import struct

import pytest

from bench.chart import target_seconds, write_chart
from bench.common import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    return struct.unpack(">II", png[16:24])  # the IHDR chunk's width and height


@pytest.mark.parametrize(("target", "seconds"), [
    ("< 120 s", 120.0), ("< 1 s", 1.0), ("<0.5 s", 0.5), ("< 5 ms", 0.005), ("< 2 min", 120.0),
    ("< 1,000 s", 1000.0), ("", None), ("flat", None), ("~1 (flat)", None), ("> 0.3", None),
    ("< 5", None), (">= 1000", None),
])
def test_target_seconds(target: str, seconds: float | None) -> None:
    assert target_seconds(target) == (pytest.approx(seconds) if seconds is not None else None)


def test_a_png_of_the_figures_in_seconds_growing_with_them(tmp_path) -> None:
    few = [
        Figure("generate", "skiff generate, 5,000,000 sessions", 95.0, "s", "< 120 s"),
        Figure("generate", "peak RSS", 900.0, "MiB"),
        Figure("parse", "cold parse", 1.4, "s", "< 1 s"),
    ]
    more = few + [Figure("e2e", f"stage {s}", 10.0 + i, "s") for i, s in
                  enumerate(("validate_raw", "prepare", "validate", "train", "release"))]

    small = write_chart(few, tmp_path / "few.png", title="few")
    large = write_chart(more, tmp_path / "more.png", title="more")

    assert small == tmp_path / "few.png" and large == tmp_path / "more.png"
    (w_small, h_small), (w_large, h_large) = _size(small.read_bytes()), _size(large.read_bytes())
    assert w_small == w_large == 1210  # 11 in at 110 dpi
    assert h_large > h_small  # a row per figure, a panel per benchmark


def test_nothing_written_without_figures_in_seconds(tmp_path) -> None:
    out = tmp_path / "none.png"
    assert write_chart([Figure("serve", "p50", 3.0, "ms", "< 5 ms")], out, title="t") is None
    assert not out.exists()
