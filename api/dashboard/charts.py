"""Charts as inline SVG made on the server: no script, no network, easy to assert on.
Every point and bar carries data-* attributes with its value and a <title> tooltip."""
from __future__ import annotations

from markupsafe import Markup, escape

from base import i18n, times


def trend(points: list[dict], width: int = 640, height: int = 200, lang: str = i18n.DEFAULT_LANG) -> Markup:
    """Accepted share per run (points: run_id, at, pass_share in 0..1), oldest first; times in
    the display time zone."""
    if not points:
        return Markup(f'<p class="muted">{escape(i18n.t("chart.no_runs", lang))}</p>')
    left, right, top, bottom = 44, 16, 22, 28
    w, h = width - left - right, height - top - bottom
    n = len(points)
    pad = 28                                     # keeps points and labels off the axis
    step = (w - 2 * pad) / (n - 1) if n > 1 else 0

    def xy(i: int, share: float) -> tuple[float, float]:
        return left + (pad + i * step if n > 1 else w / 2), top + h * (1 - share)

    parts = [f'<svg class="chart trend" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="accepted share per run">']
    for share in (0, 0.5, 1):
        y = top + h * (1 - share)
        parts.append(f'<line class="grid" x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{share:.0%}</text>')
    coords = [xy(i, _share(p)) for i, p in enumerate(points)]
    if n > 1:
        parts.append('<polyline class="line" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')
    for p, (x, y) in zip(points, coords):
        share = _share(p)
        label = escape(f"{i18n.t('col.run', lang)} {p.get('run_id')} · {times.shown(p.get('at'))} · "
                       f"{share:.1%} {i18n.t('chart.accepted', lang)}")
        parts.append(f'<circle class="point{" low" if share < 0.9 else ""}" cx="{x:.1f}" cy="{y:.1f}" r="4" '
                     f'data-run="{escape(str(p.get("run_id")))}" data-share="{share:.4f}">'
                     f'<title>{label}</title></circle>')
        if n <= 15:
            parts.append(f'<text class="value" x="{x:.1f}" y="{y - 8:.1f}" '
                         f'text-anchor="middle">{share:.1%}</text>')
    first, last = points[0].get("at"), points[-1].get("at")
    parts.append(f'<text class="axis" x="{coords[0][0]:.1f}" y="{height - 8}" text-anchor="middle">'
                 f'{escape(times.shown(first)[:10])}</text>')
    if n > 1:
        parts.append(f'<text class="axis" x="{coords[-1][0]:.1f}" y="{height - 8}" text-anchor="middle">'
                     f'{escape(times.shown(last)[:10])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _share(p: dict) -> float:
    s = p.get("pass_share")
    return 0.0 if s is None else max(0.0, min(1.0, float(s)))


def bars(rows: list[dict], label: str, series: list[tuple[str, str]], width: int = 640,
         lang: str = i18n.DEFAULT_LANG) -> Markup:
    """Horizontal grouped bars of shares in 0..1: one group per row, one bar per (key, title)."""
    if not rows:
        return Markup(f'<p class="muted">{escape(i18n.t("chart.nothing", lang))}</p>')
    left, right, bar, gap = 170, 56, 14, 10
    group = bar * len(series) + gap
    height = group * len(rows) + 30
    w = width - left - right
    parts = [f'<svg class="chart bars" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(", ".join(t for _, t in series))} {escape(i18n.t("chart.per_department", lang))}">']
    for i, row in enumerate(rows):
        y0 = i * group + 4
        parts.append(f'<text class="label" x="{left - 8}" y="{y0 + bar * len(series) / 2 + 4:.1f}" '
                     f'text-anchor="end">{escape(str(row.get(label, ""))[:22])}</text>')
        for j, (key, title) in enumerate(series):
            v = row.get(key)
            share = 0.0 if v is None else max(0.0, min(1.0, float(v)))
            y = y0 + j * bar
            text = "–" if v is None else f"{share:.0%}"
            parts.append(f'<rect class="bar s{j}" x="{left}" y="{y}" width="{w * share:.1f}" height="{bar - 2}" '
                         f'data-department="{escape(str(row.get("department", "")))}" data-series="{escape(key)}" '
                         f'data-value="{"" if v is None else f"{share:.4f}"}">'
                         f'<title>{escape(f"{row.get(label)}: {title} {text}")}</title></rect>'
                         f'<text class="value" x="{left + w * share + 4:.1f}" y="{y + bar - 4}">{text}</text>')
    y = height - 12
    for j, (_, title) in enumerate(series):
        x = left + j * 160
        parts.append(f'<rect class="bar s{j}" x="{x}" y="{y - 9}" width="10" height="10"/>'
                     f'<text class="legend" x="{x + 14}" y="{y}">{escape(title)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
