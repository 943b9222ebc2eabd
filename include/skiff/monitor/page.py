"""The Skiff page: a monitor snapshot as HTML, with inline SVG charts.

Server-rendered and self-contained: no script, no stylesheet or font fetched from elsewhere
(Airflow may run without network), every value escaped. Per model: the champion (version,
metrics, promoted at), its promotions, the last gate decisions with their reasons, the
breaches of the last hours, and charts of the snapshot's days: requests per hour, latency
(p50, p99), online quality against the champion's offline value, and drift (PSI by feature),
each with its threshold drawn where it has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

__all__ = ["render_page", "line_chart"]

_COLOURS = ("#1f6feb", "#d9480f", "#2f9e44", "#9c36b5", "#e8590c", "#0c8599")
_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px;color:#1b1f24}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:24px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:14px;margin:14px 0 6px} .muted{color:#57606a;font-size:12px}
table{border-collapse:collapse;font-size:12px;margin-bottom:8px}
td,th{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa} .ok{color:#1a7f37} .bad{color:#cf222e;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:12px} .chart{border:1px solid #d0d7de;border-radius:6px}
.breach{background:#fff1f0;border:1px solid #ffa198;padding:6px 10px;border-radius:6px}
.errors{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:6px}
"""


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _time(iso: str | None) -> str:
    if not iso:
        return "–"
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def line_chart(series: Mapping[str, Sequence[tuple[datetime, float | None]]], *, title: str,
               unit: str = "", threshold: float | None = None, bars: bool = False,
               width: int = 520, height: int = 170) -> str:
    """One inline SVG chart of hourly series.

    :param series: name -> ``(hour, value)`` points (None: no value, a gap).
    :param title: shown above the plot (and as the SVG's accessible name).
    :param unit: appended to the axis labels.
    :param threshold: drawn as a dashed red line and named in the legend.
    :param bars: draw the (first) series as bars (counts) instead of lines.
    :return: ``<svg>`` markup; a note instead of a plot when there are no points.
    """
    left, right, top, bottom = 48, 10, 24, 22
    points = [(t, v) for pts in series.values() for t, v in pts if v is not None]
    head = (f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
            f'<text x="{left}" y="15" font-size="12" font-weight="600">{escape(title)}</text>')
    if not points:
        return (head + f'<text x="{left}" y="{height // 2}" font-size="12" fill="#57606a">'
                "no data yet</text></svg>")
    t0 = min(t for t, _ in points).timestamp()
    t1 = max(t for t, _ in points).timestamp()
    span = max(t1 - t0, 3600.0)
    values = [v for _, v in points] + ([threshold] if threshold is not None else [])
    vmin = min(0.0, min(values))
    vmax = max(values) * 1.1 or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: datetime) -> float:
        return left + (t.timestamp() - t0) / span * plot_w

    def y(v: float) -> float:
        return top + plot_h - (v - vmin) / ((vmax - vmin) or 1.0) * plot_h

    parts = [head,
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
             'stroke="#8c959f"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#8c959f"/>']
    for v in (vmin, (vmin + vmax) / 2, vmax):
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end" '
                     f'fill="#57606a">{_short(v)}{escape(unit)}</text>')
    for t in (t0, t1):
        label = datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M")
        anchor = "start" if t == t0 else "end"
        xpos = left if t == t0 else width - right
        parts.append(f'<text x="{xpos}" y="{height - 6}" font-size="10" text-anchor="{anchor}" '
                     f'fill="#57606a">{label}</text>')
    legend_x = left + 8 + 7 * len(title)
    for i, (name, pts) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        kept = [(t, v) for t, v in pts if v is not None]
        if bars and i == 0:
            bar_w = max(plot_w / max(span / 3600 + 1, 1) * 0.8, 1.5)
            parts += [f'<rect x="{x(t) - bar_w / 2:.1f}" y="{y(v):.1f}" width="{bar_w:.1f}" '
                      f'height="{max(y(vmin) - y(v), 0):.1f}" fill="{colour}"/>' for t, v in kept]
        elif len(kept) == 1:
            (t, v), = kept
            parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>')
        else:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in kept)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                         'stroke-width="1.6"/>')
        parts.append(f'<text x="{legend_x}" y="15" font-size="11" fill="{colour}">'
                     f'{escape(name)}</text>')
        legend_x += 12 + 7 * len(name)
    if threshold is not None:
        parts.append(f'<line x1="{left}" y1="{y(threshold):.1f}" x2="{width - right}" '
                     f'y2="{y(threshold):.1f}" stroke="#cf222e" stroke-dasharray="5,4"/>'
                     f'<text x="{width - right}" y="{y(threshold) - 3:.1f}" font-size="10" '
                     f'text-anchor="end" fill="#cf222e">threshold {_short(threshold)}'
                     f'{escape(unit)}</text>')
    return "".join(parts) + "</svg>"


def _short(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v / 1000:.1f}k"
    if abs(v) >= 10 or v == 0:
        return f"{v:.0f}"
    return f"{v:.2f}"


def _hour(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _series(rows: Sequence[Mapping[str, Any]], key: str, value: str
            ) -> dict[str, list[tuple[datetime, float | None]]]:
    out: dict[str, list[tuple[datetime, float | None]]] = {}
    for r in rows:
        out.setdefault(str(r[key]), []).append((_hour(r["hour"]), r[value]))
    return out


def _charts(part: Mapping[str, Any], thresholds: Mapping[str, float]) -> str:
    serving, quality = part.get("serving", []), part.get("quality", [])
    drift = part.get("drift", [])
    volume = {"requests": [(_hour(r["hour"]), float(r["requests"])) for r in serving]}
    latency = {"p50": [(_hour(r["hour"]), r["latency_p50_ms"]) for r in serving],
               "p99": [(_hour(r["hour"]), r["latency_p99_ms"]) for r in serving]}
    errors = {"error rate": [(_hour(r["hour"]), r["error_rate"]) for r in serving]}
    charts = [line_chart(volume, title="Requests per hour", bars=True),
              line_chart(latency, title="Latency", unit=" ms",
                         threshold=thresholds.get("latency_p99_ms_max")),
              line_chart(errors, title="Error rate", threshold=thresholds.get("error_rate_max"))]
    for metric, rows in sorted(_group(quality, "metric").items()):
        series = {"online": [(_hour(r["hour"]), r["online_value"]) for r in rows]}
        offline = [(_hour(r["hour"]), r["offline_value"]) for r in rows]
        if any(v is not None for _, v in offline):
            series["offline (champion)"] = offline
        limit = thresholds.get("calibration_error_max") if metric == "calibration_error" else None
        charts.append(line_chart(series, title=f"Online vs offline: {metric}", threshold=limit))
    if not quality:
        charts.append(line_chart({}, title="Online vs offline quality"))
    charts.append(line_chart(_series(drift, "feature", "psi"), title="Drift (PSI)",
                             threshold=thresholds.get("psi_max")))
    return '<div class="charts">' + "".join(charts) + "</div>"


def _group(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        out.setdefault(str(r[key]), []).append(r)
    return out


def _metrics(metrics: Mapping[str, Any]) -> str:
    return ", ".join(f"{escape(k)}={_fmt(v)}" for k, v in sorted(metrics.items())) or "–"


def _model(name: str, part: Mapping[str, Any], thresholds: Mapping[str, float],
           window_hours: int) -> str:
    champion = part.get("champion")
    out = [f'<section id="model-{escape(name)}"><h2>Model: {escape(name)}</h2>']
    if champion:
        out.append(
            f'<h3>Champion</h3><table class="champion"><tr><th>version</th><td>'
            f'{escape(champion["model_version"])}</td></tr><tr><th>promoted at</th><td>'
            f'{_time(champion["promoted_at"])}</td></tr><tr><th>metrics</th><td>'
            f'{_metrics(champion.get("shown_metrics") or {})}</td></tr><tr><th>why</th><td>'
            f'{escape(champion.get("reason") or "")}</td></tr></table>')
    else:
        out.append("<p class=\"muted\">No champion yet (nothing promoted).</p>")
    found = part.get("breaches") or []
    if found:
        out.append(f'<div class="breach"><b>Over a threshold in the last {window_hours} h:'
                   "</b><ul>" + "".join(f"<li>{escape(b)}</li>" for b in found) + "</ul></div>")
    else:
        out.append(f'<p class="ok">Nothing over a threshold in the last {window_hours} h.</p>')
    out.append(_charts(part, thresholds))
    history = part.get("history") or []
    out.append("<h3>Champion history</h3>")
    if history:
        out.append('<table class="history"><tr><th>version</th><th>promoted at</th>'
                   "<th>metrics</th><th>replaced</th></tr>" + "".join(
                       f'<tr><td>{escape(h["model_version"])}</td><td>{_time(h["promoted_at"])}'
                       f'</td><td>{_metrics(h.get("metrics") or {})}</td>'
                       f'<td>{escape(h.get("previous") or "–")}</td></tr>' for h in history)
                   + "</table>")
    else:
        out.append('<p class="muted">No promotions yet.</p>')
    decisions = part.get("decisions") or []
    out.append("<h3>Last gate decisions</h3>")
    if decisions:
        out.append('<table class="decisions"><tr><th>decided at</th><th>candidate</th>'
                   "<th>decision</th><th>reason</th></tr>" + "".join(
                       f'<tr><td>{_time(d.get("decided_at"))}</td>'
                       f'<td>{escape(str(d.get("pathspec")))}</td>'
                       + ('<td class="ok">promote</td>' if d.get("promote")
                          else '<td class="bad">keep champion</td>')
                       + f'<td>{escape(str(d.get("reason") or ""))}</td></tr>'
                       for d in decisions) + "</table>")
    else:
        out.append('<p class="muted">No gate decisions yet.</p>')
    return "".join(out) + "</section>"


def render_page(doc: Mapping[str, Any] | None, *, title: str = "Skiff") -> str:
    """The whole page for a snapshot (:func:`skiff.monitor.snapshot.build_snapshot`).

    :param doc: the snapshot; None before skiff_monitor's first run (the page says so).
    :param title: the page's heading.
    :return: an HTML document.
    """
    head = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
            f"</title><style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>")
    if doc is None:
        return (head + '<p class="muted">No monitor snapshot yet: skiff_monitor writes one '
                "after each hour skiff_hourly builds (or trigger skiff_monitor).</p></body></html>")
    out = [head, f'<p class="muted">Snapshot of {_time(doc.get("generated_at"))}, the last '
                 f'{doc.get("history_days")} days; checks cover the last '
                 f'{doc.get("window_hours")} h. Thresholds: '
                 + escape(", ".join(f"{k}={v}" for k, v in (doc.get("thresholds") or {}).items()))
                 + "</p>"]
    if doc.get("errors"):
        out.append('<div class="errors"><b>Not shown:</b><ul>' + "".join(
            f"<li>{escape(e)}</li>" for e in doc["errors"]) + "</ul></div>")
    models = doc.get("models") or {}
    order = {"rec": 0, "intent": 1}  # the recommendations first, as the pipeline lists them
    for name in sorted(models, key=lambda m: (order.get(m, 2), m)):
        part = models[name]
        out.append(_model(name, part, doc.get("thresholds") or {}, doc.get("window_hours", 0)))
    return "".join(out) + "</body></html>"
