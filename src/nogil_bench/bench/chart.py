"""Speedup-versus-workers charts as small multiples, written as SVG text or as a PNG via Pillow.

The layout is computed once as a list of drawing primitives; each backend only renders them.
Each speedup may carry its 95% confidence interval, drawn as whiskers and, along a series, as a
translucent band, so that a reader does not take noise for a difference between runners.
"""

import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

from PIL import Image, ImageColor, ImageDraw, ImageFont

from nogil_bench.core.files import write_atomically

# Okabe-Ito colours: distinguishable for the common forms of colour blindness.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442")
SUPPORTED_SUFFIXES = (".svg", ".png")
PLOT_WIDTH_PX, PLOT_HEIGHT_PX = 300, 240
LEFT_MARGIN_PX, PANEL_GAP_PX, RIGHT_MARGIN_PX = 68, 52, 16
TITLE_BAND_PX, HEADING_BAND_PX, BOTTOM_BAND_PX = 40, 28, 48
LEGEND_GAP_PX, LEGEND_ROW_PX, LEGEND_SWATCH_PX, LEGEND_FONT_PX = 28, 20, 28, 12
DASHED_PX, DOTTED_PX = (6, 4), (2, 3)  # (on, off) lengths of the stroke pattern
MARKER_RADIUS_PX = 3.5
WHISKER_CAP_PX, WHISKER_WIDTH_PX = 4, 1.5  # the cap's half-width
BAND_OPACITY = 0.15  # light enough that overlapping bands leave every line readable
IDEAL_COLOUR, CEILING_COLOUR, CI_LEGEND_COLOUR = "#999999", "#555555", "#333333"
IDEAL_LABEL = "ideal (linear)"
CEILING_LABEL = "host ceiling (K independent processes)"
CI_LABEL = "95% interval: where a rerun lands"
# Roughly a sans-serif glyph's average advance; only sizes the legend column.
CHAR_WIDTH_PER_FONT_PX = 0.62
PNG_SUPERSAMPLING = 2  # drawn at twice the size then downscaled, since ImageDraw does not antialias

type Anchor = Literal["start", "middle", "end"]
type Point = tuple[float, float]
type DashPattern = tuple[int, int]


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One speedup; `low` and `high` bound its 95% confidence interval when it is known.

    The interval is optional so that single-run measurements still chart; the two ends come
    together, since a one-sided whisker would read as a precise estimate.
    """

    panel: str
    series: str
    workers: int
    speedup: float
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if (self.low is None) != (self.high is None):
            ends = f"low={self.low}, high={self.high}"
            raise ValueError(f"a confidence interval needs both ends or neither: {ends}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"confidence interval low={self.low} is above high={self.high}")

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)

    @property
    def top(self) -> float:
        """The highest value drawn for this point, which the y-axis has to reach."""
        return self.speedup if self.high is None else max(self.speedup, self.high)


@dataclass(frozen=True, slots=True)
class _Line:
    # "axis", "grid", "ideal", "ceiling", "series", "whisker", "ceiling-whisker", "legend" or
    # "legend-*" for the legend's reference entries; becomes the SVG class.
    role: str
    points_px: tuple[Point, ...]
    colour: str
    width_px: float
    dash_px: DashPattern | None = None
    markers: bool = False


@dataclass(frozen=True, slots=True)
class _Polygon:
    role: str  # "band"; becomes the SVG class
    points_px: tuple[Point, ...]
    colour: str
    opacity: float


@dataclass(frozen=True, slots=True)
class _Text:
    x_px: float
    y_px: float  # baseline
    text: str
    size_px: int
    anchor: Anchor = "middle"
    rotated: bool = False  # reads bottom-to-top, centred on (x, y)
    role: str = ""  # becomes the SVG class when set


@dataclass(frozen=True, slots=True)
class _Scene:
    """Everything to draw, back to front: polygons, then lines, then texts."""

    width_px: int
    height_px: int
    polygons: list[_Polygon]
    lines: list[_Line]
    texts: list[_Text]


@dataclass(frozen=True, slots=True)
class _Frame:
    """One panel's plotting area and the scales that map data into it."""

    left_px: float
    top_px: float
    max_workers: int
    y_max: float

    @property
    def bottom_px(self) -> float:
        return self.top_px + PLOT_HEIGHT_PX

    def x_px(self, workers: int) -> float:
        # 5% slack on the right so the last markers do not sit on the plot's edge.
        return round(self.left_px + workers / (self.max_workers * 1.05) * PLOT_WIDTH_PX, 2)

    def y_px(self, speedup: float) -> float:
        return round(self.bottom_px - speedup / self.y_max * PLOT_HEIGHT_PX, 2)


@dataclass(frozen=True, slots=True)
class _LegendEntry:
    label: str
    role: str
    colour: str
    dash_px: DashPattern | None = None
    whisker: bool = False  # drawn as a whisker rather than a line swatch


def draw_speedup_chart(
    points: Sequence[ChartPoint],
    path: Path,
    *,
    title: str,
    ceilings: Sequence[ChartPoint] = (),
) -> None:
    """Draw one panel per `panel`, one line per `series`, speedup over worker count.

    `ceilings` are the host's measured parallel ceiling per panel and worker count (the speedup
    of K independent processes started together); their `series` is not used. They show how much
    of a shortfall from the ideal line is the machine's rather than the runner's.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(SUPPORTED_SUFFIXES)
        raise ValueError(f"unsupported chart suffix {path.suffix!r}; use one of {supported}")
    if not points:
        raise ValueError("no points to chart: points is empty")
    chart = render_speedup_chart(points, suffix.removeprefix("."), title=title, ceilings=ceilings)
    write_atomically(path, chart)


def render_speedup_chart(
    points: Sequence[ChartPoint],
    chart_format: str,
    *,
    title: str,
    ceilings: Sequence[ChartPoint] = (),
) -> bytes:
    """The chart as SVG text or PNG bytes; `chart_format` is "svg" or "png"."""
    if not points:
        raise ValueError("no points to chart: points is empty")
    scene = _layout(points, ceilings, title)
    return _render_svg(scene) if chart_format == "svg" else _render_png(scene)


def _layout(points: Sequence[ChartPoint], ceilings: Sequence[ChartPoint], title: str) -> _Scene:
    panels = list(dict.fromkeys(point.panel for point in points))
    if unknown := sorted({ceiling.panel for ceiling in ceilings} - set(panels)):
        raise ValueError(f"ceilings for panels with no points: {', '.join(unknown)}")
    series = list(dict.fromkeys(point.series for point in points))
    colours = {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(series)}
    everything = [*points, *ceilings]
    worker_ticks = sorted({point.workers for point in everything})
    max_workers = worker_ticks[-1]
    y_max = max(max_workers, *(point.top for point in everything)) * 1.1
    top_px = TITLE_BAND_PX + HEADING_BAND_PX

    legend = [_LegendEntry(name, "legend", colours[name], _series_dash(name)) for name in series]
    legend.append(_LegendEntry(IDEAL_LABEL, "legend-ideal", IDEAL_COLOUR, DASHED_PX))
    if ceilings:
        legend.append(_LegendEntry(CEILING_LABEL, "legend-ceiling", CEILING_COLOUR, DOTTED_PX))
    if any(point.interval for point in everything):
        legend.append(_LegendEntry(CI_LABEL, "legend-ci", CI_LEGEND_COLOUR, whisker=True))
    plots_right_px = LEFT_MARGIN_PX + len(panels) * (PLOT_WIDTH_PX + PANEL_GAP_PX) - PANEL_GAP_PX
    legend_x_px = plots_right_px + LEGEND_GAP_PX
    longest_label = max(len(entry.label) for entry in legend)
    longest_label_px = longest_label * LEGEND_FONT_PX * CHAR_WIDTH_PER_FONT_PX
    legend_width_px = LEGEND_SWATCH_PX + 8 + math.ceil(longest_label_px)
    width_px = legend_x_px + legend_width_px + RIGHT_MARGIN_PX
    bottom_px = top_px + PLOT_HEIGHT_PX
    height_px = max(bottom_px + BOTTOM_BAND_PX, top_px + LEGEND_ROW_PX * (len(legend) + 1))
    scene = _Scene(width_px, height_px, [], [], [])
    scene.texts.extend(
        [
            _Text(width_px / 2, TITLE_BAND_PX - 14, title, 16),
            _Text(18, top_px + PLOT_HEIGHT_PX / 2, "speedup vs sequential", 12, rotated=True),
        ]
    )
    for panel_index, panel in enumerate(panels):
        left_px = LEFT_MARGIN_PX + panel_index * (PLOT_WIDTH_PX + PANEL_GAP_PX)
        frame = _Frame(left_px, top_px, max_workers, y_max)
        _draw_axes(scene, frame, panel, worker_ticks)
        _draw_ceiling(scene, frame, [ceiling for ceiling in ceilings if ceiling.panel == panel])
        for name in series:
            mine = [point for point in points if point.panel == panel and point.series == name]
            _draw_series(scene, frame, mine, colours[name], _series_dash(name))
    _draw_legend(scene, legend, legend_x_px, top_px)
    return scene


def _series_dash(name: str) -> DashPattern | None:
    """GIL-enabled series are dashed, so the two builds differ even without colour."""
    return DASHED_PX if "GIL=1" in name else None


def _draw_axes(scene: _Scene, frame: _Frame, panel: str, worker_ticks: Sequence[int]) -> None:
    left_px, right_px = frame.left_px, frame.left_px + PLOT_WIDTH_PX
    centre_px, bottom_px = frame.left_px + PLOT_WIDTH_PX / 2, frame.bottom_px
    y_step = _nice_step(frame.y_max)
    for tick in (index * y_step for index in range(int(frame.y_max / y_step) + 1)):
        y_px = frame.y_px(tick)
        scene.lines.append(_Line("grid", ((left_px, y_px), (right_px, y_px)), "#e4e4e4", 1))
        scene.texts.append(_Text(left_px - 6, y_px + 4, f"{tick:g}", 11, "end"))
    for workers in worker_ticks:
        x_px = frame.x_px(workers)
        scene.lines.append(_Line("axis", ((x_px, bottom_px), (x_px, bottom_px + 5)), "#333333", 1))
        scene.texts.append(_Text(x_px, bottom_px + 18, str(workers), 11))
    corner = (left_px, bottom_px)
    axes = ((left_px, frame.top_px), corner, (right_px, bottom_px))
    scene.lines.append(_Line("axis", axes, "#333333", 1))
    ideal_end = (frame.x_px(frame.max_workers), frame.y_px(frame.max_workers))
    scene.lines.append(_Line("ideal", (corner, ideal_end), IDEAL_COLOUR, 1, DASHED_PX))
    scene.texts.append(_Text(centre_px, frame.top_px - 10, panel, 13))
    scene.texts.append(_Text(centre_px, bottom_px + 38, "workers", 12))


def _draw_ceiling(scene: _Scene, frame: _Frame, ceilings: Sequence[ChartPoint]) -> None:
    ordered = sorted(ceilings, key=lambda point: point.workers)
    if line_px := tuple((frame.x_px(p.workers), frame.y_px(p.speedup)) for p in ordered):
        scene.lines.append(_Line("ceiling", line_px, CEILING_COLOUR, 1.5, DOTTED_PX))
    for point in ordered:
        if interval := point.interval:
            whisker_px = _whisker_px(frame.x_px(point.workers), *map(frame.y_px, interval))
            scene.lines.append(
                _Line("ceiling-whisker", whisker_px, CEILING_COLOUR, WHISKER_WIDTH_PX)
            )


def _draw_series(
    scene: _Scene,
    frame: _Frame,
    points: Sequence[ChartPoint],
    colour: str,
    dash_px: DashPattern | None,
) -> None:
    """One series in one panel: its band behind, its line, then its whiskers on top."""
    ordered = sorted(points, key=lambda point: point.workers)
    if not ordered:
        return
    line_px = tuple((frame.x_px(p.workers), frame.y_px(p.speedup)) for p in ordered)
    scene.lines.append(_Line("series", line_px, colour, 2, dash_px, markers=True))
    with_interval = [(p.workers, interval) for p in ordered if (interval := p.interval)]
    # A band needs two intervals to span; it joins the ones there are across any gaps.
    if len(with_interval) >= 2:
        upper_px = [(frame.x_px(workers), frame.y_px(high)) for workers, (_, high) in with_interval]
        lower_px = [(frame.x_px(workers), frame.y_px(low)) for workers, (low, _) in with_interval]
        band_px = (*upper_px, *reversed(lower_px))
        scene.polygons.append(_Polygon("band", band_px, colour, BAND_OPACITY))
    for workers, (low, high) in with_interval:
        whisker_px = _whisker_px(frame.x_px(workers), frame.y_px(low), frame.y_px(high))
        scene.lines.append(_Line("whisker", whisker_px, colour, WHISKER_WIDTH_PX))


def _whisker_px(x_px: float, low_px: float, high_px: float) -> tuple[Point, ...]:
    """A capped vertical bar as one polyline; the caps are retraced, which does not show."""
    left_px, right_px = x_px - WHISKER_CAP_PX, x_px + WHISKER_CAP_PX
    return (
        (left_px, high_px),
        (right_px, high_px),
        (x_px, high_px),
        (x_px, low_px),
        (left_px, low_px),
        (right_px, low_px),
    )


def _draw_legend(
    scene: _Scene, legend: Sequence[_LegendEntry], left_px: float, top_px: float
) -> None:
    for row, entry in enumerate(legend):
        y_px = top_px + LEGEND_ROW_PX * row + 6
        if entry.whisker:
            centre_px = left_px + LEGEND_SWATCH_PX / 2
            swatch_px = _whisker_px(centre_px, y_px + 6, y_px - 6)
            width_px = WHISKER_WIDTH_PX
        else:
            swatch_px = ((left_px, y_px), (left_px + LEGEND_SWATCH_PX, y_px))
            width_px = 2
        scene.lines.append(_Line(entry.role, swatch_px, entry.colour, width_px, entry.dash_px))
        label_x_px = left_px + LEGEND_SWATCH_PX + 8
        scene.texts.append(
            _Text(label_x_px, y_px + 4, entry.label, LEGEND_FONT_PX, "start", role=entry.role)
        )


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
    for polygon in scene.polygons:
        parts.append(
            f'<polygon class="{polygon.role}" points="{_svg_points(polygon.points_px)}" '
            f'fill="{polygon.colour}" fill-opacity="{polygon.opacity:g}" stroke="none"/>'
        )
    for line in scene.lines:
        dash = f' stroke-dasharray="{line.dash_px[0]} {line.dash_px[1]}"' if line.dash_px else ""
        parts.append(
            f'<polyline class="{line.role}" points="{_svg_points(line.points_px)}" fill="none" '
            f'stroke="{line.colour}" stroke-width="{line.width_px:g}"{dash}/>'
        )
        parts.extend(
            f'<circle cx="{x:g}" cy="{y:g}" r="{MARKER_RADIUS_PX:g}" fill="{line.colour}"/>'
            for x, y in (line.points_px if line.markers else ())
        )
    for text in scene.texts:
        x, y = f"{text.x_px:g}", f"{text.y_px:g}"
        role = f' class="{text.role}"' if text.role else ""
        rotate = f' transform="rotate(-90 {x} {y})" dominant-baseline="central"'
        parts.append(
            f'<text{role} x="{x}" y="{y}" font-size="{text.size_px}" text-anchor="{text.anchor}"'
            f"{rotate if text.rotated else ''}>{escape(text.text)}</text>"
        )
    parts.append("</svg>\n")
    return "\n".join(parts).encode()


def _svg_points(points_px: Sequence[Point]) -> str:
    return " ".join(f"{x:g},{y:g}" for x, y in points_px)


def _render_png(scene: _Scene) -> bytes:
    scale = PNG_SUPERSAMPLING
    image = Image.new("RGB", (scene.width_px * scale, scene.height_px * scale), "#ffffff")
    # An "RGBA" drawing context blends translucent fills into the RGB image, as SVG does.
    blending = ImageDraw.Draw(image, "RGBA")
    for polygon in scene.polygons:
        fill = (*ImageColor.getrgb(polygon.colour)[:3], round(polygon.opacity * 255))
        blending.polygon([(x * scale, y * scale) for x, y in polygon.points_px], fill=fill)
    draw = ImageDraw.Draw(image)
    for line in scene.lines:
        scaled = [(x * scale, y * scale) for x, y in line.points_px]
        segments = _dash_segments(scaled, line.dash_px, scale) if line.dash_px else [scaled]
        for segment in segments:
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


def _dash_segments(
    points_px: Sequence[Point], dash_px: DashPattern, scale: int
) -> list[list[Point]]:
    """Cut a polyline into dashes; the pattern restarts at each vertex, which is not noticeable."""
    on_px, off_px = dash_px
    dashes = []
    for (x0, y0), (x1, y1) in itertools.pairwise(points_px):
        length_px = math.hypot(x1 - x0, y1 - y0)
        for start_px in range(0, math.ceil(length_px), (on_px + off_px) * scale):
            end_px = min(start_px + on_px * scale, length_px)
            fractions = (start_px / length_px, end_px / length_px)
            dashes.append([(x0 + (x1 - x0) * f, y0 + (y1 - y0) * f) for f in fractions])
    return dashes
