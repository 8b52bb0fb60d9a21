"""Speedup-versus-workers charts as small multiples, written as SVG text or as a PNG via Pillow.

The layout is computed once as a list of drawing primitives; each backend only renders them.
"""

import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

from PIL import Image, ImageDraw, ImageFont

from nogil_bench.core.files import write_atomically

# Okabe-Ito colours: distinguishable for the common forms of colour blindness.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442")
SUPPORTED_SUFFIXES = (".svg", ".png")
PLOT_WIDTH_PX, PLOT_HEIGHT_PX = 300, 240
LEFT_MARGIN_PX, PANEL_GAP_PX, RIGHT_MARGIN_PX = 68, 52, 16
TITLE_BAND_PX, HEADING_BAND_PX, BOTTOM_BAND_PX = 40, 28, 48
LEGEND_GAP_PX, LEGEND_ROW_PX, LEGEND_SWATCH_PX, LEGEND_FONT_PX = 28, 20, 28, 12
DASH_ON_PX, DASH_OFF_PX = 6, 4
MARKER_RADIUS_PX = 3.5
# Roughly a sans-serif glyph's average advance; only sizes the legend column.
CHAR_WIDTH_PER_FONT_PX = 0.62
PNG_SUPERSAMPLING = 2  # drawn at twice the size then downscaled, since ImageDraw does not antialias

type Anchor = Literal["start", "middle", "end"]
type Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class ChartPoint:
    panel: str
    series: str
    workers: int
    speedup: float


@dataclass(frozen=True, slots=True)
class _Line:
    role: str  # "axis", "grid", "ideal", "series" or "legend"; becomes the SVG class
    points_px: tuple[Point, ...]
    colour: str
    width_px: float
    dashed: bool = False
    markers: bool = False


@dataclass(frozen=True, slots=True)
class _Text:
    x_px: float
    y_px: float  # baseline
    text: str
    size_px: int
    anchor: Anchor = "middle"
    rotated: bool = False  # reads bottom-to-top, centred on (x, y)


@dataclass(frozen=True, slots=True)
class _Scene:
    width_px: int
    height_px: int
    lines: list[_Line]
    texts: list[_Text]


def draw_speedup_chart(points: Sequence[ChartPoint], path: Path, *, title: str) -> None:
    """Draw one panel per `panel`, one line per `series`, speedup over worker count."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(SUPPORTED_SUFFIXES)
        raise ValueError(f"unsupported chart suffix {path.suffix!r}; use one of {supported}")
    if not points:
        raise ValueError("no points to chart: points is empty")
    write_atomically(path, render_speedup_chart(points, suffix.removeprefix("."), title=title))


def render_speedup_chart(points: Sequence[ChartPoint], chart_format: str, *, title: str) -> bytes:
    """The chart as SVG text or PNG bytes; `chart_format` is "svg" or "png"."""
    if not points:
        raise ValueError("no points to chart: points is empty")
    scene = _layout(points, title)
    return _render_svg(scene) if chart_format == "svg" else _render_png(scene)


def _layout(points: Sequence[ChartPoint], title: str) -> _Scene:
    panels = list(dict.fromkeys(point.panel for point in points))
    series = list(dict.fromkeys(point.series for point in points))
    colours = {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(series)}
    worker_ticks = sorted({point.workers for point in points})
    by_workers = sorted(points, key=lambda point: point.workers)
    max_workers = worker_ticks[-1]
    y_max = max(max_workers, *(point.speedup for point in points)) * 1.1
    y_step = _nice_step(y_max)
    top_px = TITLE_BAND_PX + HEADING_BAND_PX
    bottom_px = top_px + PLOT_HEIGHT_PX

    def x_px_at(left_px: float, workers: int) -> float:
        # 5% slack on the right so the last markers do not sit on the plot's edge.
        return round(left_px + workers / (max_workers * 1.05) * PLOT_WIDTH_PX, 2)

    def y_px_at(speedup: float) -> float:
        return round(bottom_px - speedup / y_max * PLOT_HEIGHT_PX, 2)

    plots_right_px = LEFT_MARGIN_PX + len(panels) * (PLOT_WIDTH_PX + PANEL_GAP_PX) - PANEL_GAP_PX
    legend_x_px = plots_right_px + LEGEND_GAP_PX
    longest_name_px = max(len(name) for name in series) * LEGEND_FONT_PX * CHAR_WIDTH_PER_FONT_PX
    legend_width_px = LEGEND_SWATCH_PX + 8 + math.ceil(longest_name_px)
    width_px = legend_x_px + legend_width_px + RIGHT_MARGIN_PX
    height_px = max(bottom_px + BOTTOM_BAND_PX, top_px + LEGEND_ROW_PX * (len(series) + 1))
    lines: list[_Line] = []
    texts = [
        _Text(width_px / 2, TITLE_BAND_PX - 14, title, 16),
        _Text(18, top_px + PLOT_HEIGHT_PX / 2, "speedup vs sequential", 12, rotated=True),
    ]
    for panel_index, panel in enumerate(panels):
        left_px = LEFT_MARGIN_PX + panel_index * (PLOT_WIDTH_PX + PANEL_GAP_PX)
        right_px, centre_px = left_px + PLOT_WIDTH_PX, left_px + PLOT_WIDTH_PX / 2
        for tick in (index * y_step for index in range(int(y_max / y_step) + 1)):
            y_px = y_px_at(tick)
            lines.append(_Line("grid", ((left_px, y_px), (right_px, y_px)), "#e4e4e4", 1))
            texts.append(_Text(left_px - 6, y_px + 4, f"{tick:g}", 11, "end"))
        for workers in worker_ticks:
            x_px = x_px_at(left_px, workers)
            lines.append(_Line("axis", ((x_px, bottom_px), (x_px, bottom_px + 5)), "#333333", 1))
            texts.append(_Text(x_px, bottom_px + 18, str(workers), 11))
        corner = (left_px, bottom_px)
        axes = ((left_px, top_px), corner, (right_px, bottom_px))
        lines.append(_Line("axis", axes, "#333333", 1))
        ideal_end = (x_px_at(left_px, max_workers), y_px_at(max_workers))
        lines.append(_Line("ideal", (corner, ideal_end), "#999999", 1, dashed=True))
        texts.append(_Text(centre_px, top_px - 10, panel, 13))
        texts.append(_Text(centre_px, bottom_px + 38, "workers", 12))
        for name in series:
            line_px = tuple(
                (x_px_at(left_px, p.workers), y_px_at(p.speedup))
                for p in by_workers
                if p.panel == panel and p.series == name
            )
            if line_px:
                dashed = "GIL=1" in name
                lines.append(_Line("series", line_px, colours[name], 2, dashed, markers=True))
    for row, name in enumerate(series):
        y_px = top_px + LEGEND_ROW_PX * row + 6
        swatch = ((legend_x_px, y_px), (legend_x_px + LEGEND_SWATCH_PX, y_px))
        lines.append(_Line("legend", swatch, colours[name], 2, dashed="GIL=1" in name))
        name_x_px = legend_x_px + LEGEND_SWATCH_PX + 8
        texts.append(_Text(name_x_px, y_px + 4, name, LEGEND_FONT_PX, "start"))
    return _Scene(width_px, height_px, lines, texts)


def _nice_step(span: float) -> float:
    """The 1, 2 or 5 times a power of ten that cuts `span` into at most six intervals."""
    magnitude = 10.0 ** math.floor(math.log10(span / 6))
    return next(m * magnitude for m in (1, 2, 5, 10) if span / (m * magnitude) <= 6)


def _render_svg(scene: _Scene) -> bytes:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{scene.width_px}" '
        f'height="{scene.height_px}" font-family="sans-serif">',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
    ]
    for line in scene.lines:
        coordinates = " ".join(f"{x:g},{y:g}" for x, y in line.points_px)
        dash = f' stroke-dasharray="{DASH_ON_PX} {DASH_OFF_PX}"' if line.dashed else ""
        parts.append(
            f'<polyline class="{line.role}" points="{coordinates}" fill="none" '
            f'stroke="{line.colour}" stroke-width="{line.width_px:g}"{dash}/>'
        )
        parts.extend(
            f'<circle cx="{x:g}" cy="{y:g}" r="{MARKER_RADIUS_PX:g}" fill="{line.colour}"/>'
            for x, y in (line.points_px if line.markers else ())
        )
    for text in scene.texts:
        x, y = f"{text.x_px:g}", f"{text.y_px:g}"
        rotate = f' transform="rotate(-90 {x} {y})" dominant-baseline="central"'
        parts.append(
            f'<text x="{x}" y="{y}" font-size="{text.size_px}" text-anchor="{text.anchor}"'
            f"{rotate if text.rotated else ''}>{escape(text.text)}</text>"
        )
    parts.append("</svg>\n")
    return "\n".join(parts).encode()


def _render_png(scene: _Scene) -> bytes:
    scale = PNG_SUPERSAMPLING
    image = Image.new("RGB", (scene.width_px * scale, scene.height_px * scale), "#ffffff")
    draw = ImageDraw.Draw(image)
    for line in scene.lines:
        scaled = [(x * scale, y * scale) for x, y in line.points_px]
        for segment in _dash_segments(scaled, scale) if line.dashed else [scaled]:
            draw.line(segment, fill=line.colour, width=round(line.width_px * scale), joint="curve")
        radius_px = MARKER_RADIUS_PX * scale
        for x, y in scaled if line.markers else []:
            draw.ellipse((x - radius_px, y - radius_px, x + radius_px, y + radius_px), line.colour)
    for text in scene.texts:
        font = ImageFont.load_default(text.size_px * scale)
        xy = (text.x_px * scale, text.y_px * scale)
        if not text.rotated:
            anchor = {"start": "ls", "middle": "ms", "end": "rs"}[text.anchor]
            draw.text(xy, text.text, fill="#000000", font=font, anchor=anchor)
            continue
        # ImageDraw cannot rotate text, so draw it upright into a mask and rotate the mask.
        left, top, right, bottom = font.getbbox(text.text)
        mask = Image.new("L", (math.ceil(right - left), math.ceil(bottom - top)))
        ImageDraw.Draw(mask).text((-left, -top), text.text, fill=255, font=font)
        mask = mask.rotate(90, expand=True)
        corner = (round(xy[0] - mask.width / 2), round(xy[1] - mask.height / 2))
        image.paste("#000000", (*corner, corner[0] + mask.width, corner[1] + mask.height), mask)
    buffer = io.BytesIO()
    image.resize((scene.width_px, scene.height_px), Image.Resampling.LANCZOS).save(buffer, "PNG")
    return buffer.getvalue()


def _dash_segments(points_px: Sequence[Point], scale: int) -> list[list[Point]]:
    """Cut a polyline into dashes; the pattern restarts at each vertex, which is not noticeable."""
    dashes = []
    for (x0, y0), (x1, y1) in itertools.pairwise(points_px):
        length_px = math.hypot(x1 - x0, y1 - y0)
        for start_px in range(0, math.ceil(length_px), (DASH_ON_PX + DASH_OFF_PX) * scale):
            end_px = min(start_px + DASH_ON_PX * scale, length_px)
            fractions = (start_px / length_px, end_px / length_px)
            dashes.append([(x0 + (x1 - x0) * f, y0 + (y1 - y0) * f) for f in fractions])
    return dashes
