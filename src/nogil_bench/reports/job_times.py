"""Each job's time in a batch as a small bar chart, written as SVG text: one slot per job in
submission order, a bar for each job that ran (failed ones in another colour), and the batch's
latency percentiles as dashed lines across. Every label is escaped, though all are numbers or
fixed words. The batch page inlines it as a data: URL image."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from nogil_bench.bench.chart import PALETTE

WIDTH_PX, HEIGHT_PX = 760, 300
LEFT_PX, RIGHT_PX, TOP_PX, BOTTOM_PX = 64, 104, 44, 48
FONT_PX, TITLE_FONT_PX = 12, 14
SUCCEEDED_COLOUR, FAILED_COLOUR = PALETTE[0], PALETTE[1]
AXIS_COLOUR, GRID_COLOUR, GUIDE_COLOUR = "#333333", "#e3e6ea", "#555555"
Y_TICKS = 4  # about as many gridlines, at round values
MAX_JOB_LABELS = 10
BAR_SHARE = 0.8  # of a job's slot: the rest keeps neighbouring bars apart
# A job that took next to nothing still shows a sliver, so that no job that ran looks missing.
MIN_BAR_PX = 1.0
LEGEND_ENTRY_PX = 96  # a swatch and its word
GUIDE_LABEL_GAP_PX = 14  # the least distance between two percentile labels


@dataclass(frozen=True, slots=True)
class JobTime:
    """One job's slot: its latency if it ran, and whether it failed."""

    latency_s: float | None
    failed: bool


@dataclass(frozen=True, slots=True)
class Guide:
    """A dashed line across the bars, e.g. the batch's p50."""

    label: str
    value_s: float


def job_times_svg(jobs: Sequence[JobTime], guides: Sequence[Guide] = ()) -> bytes | None:
    """The chart, or None when no job has a time yet."""
    times = [job.latency_s for job in jobs if job.latency_s is not None]
    if not times:
        return None
    top_s = max([*times, *(guide.value_s for guide in guides)])
    step_s = nice_step(top_s / Y_TICKS)
    # A step of headroom above the tallest bar: the percentiles' labels stay clear of the legend.
    axis_top_s = step_s * (math.floor(top_s / step_s) + 1)
    unit, per_second = ("ms", 1000) if axis_top_s < 1 else ("s", 1)
    plot_width_px = WIDTH_PX - LEFT_PX - RIGHT_PX
    plot_height_px = HEIGHT_PX - TOP_PX - BOTTOM_PX
    bottom_px = TOP_PX + plot_height_px

    def y_px(value_s: float) -> float:
        return bottom_px - value_s / axis_top_s * plot_height_px

    slot_px = plot_width_px / len(jobs)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{HEIGHT_PX}" '
        f'font-family="sans-serif" font-size="{FONT_PX}">',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        text(LEFT_PX, 20, "Each job's latency (its worker's wall time)", size_px=TITLE_FONT_PX),
    ]
    parts += legend(20)
    for tick in range(round(axis_top_s / step_s) + 1):
        value_s = tick * step_s
        y = y_px(value_s)
        parts.append(line(LEFT_PX, y, LEFT_PX + plot_width_px, y, GRID_COLOUR))
        parts.append(text(LEFT_PX - 6, y + 4, f"{value_s * per_second:g}", anchor="end"))
    parts.append(
        text(16, TOP_PX + plot_height_px / 2, f"latency ({unit})", anchor="middle", rotated=True)
    )
    for index, job in enumerate(jobs):
        if job.latency_s is None:
            continue
        height_px = max(job.latency_s / axis_top_s * plot_height_px, MIN_BAR_PX)
        width_px = slot_px * BAR_SHARE
        parts.append(
            f'<rect class="{"failed" if job.failed else "succeeded"}" '
            f'x="{LEFT_PX + index * slot_px + (slot_px - width_px) / 2:.2f}" '
            f'y="{bottom_px - height_px:.2f}" width="{width_px:.2f}" height="{height_px:.2f}" '
            f'fill="{FAILED_COLOUR if job.failed else SUCCEEDED_COLOUR}"/>'
        )
    for number in job_labels(len(jobs)):
        x = LEFT_PX + (number - 0.5) * slot_px
        parts.append(line(x, bottom_px, x, bottom_px + 4, AXIS_COLOUR))
        parts.append(text(x, bottom_px + 17, str(number), anchor="middle"))
    parts.append(
        text(
            LEFT_PX + plot_width_px / 2,
            HEIGHT_PX - 10,
            "job, in the order submitted",
            anchor="middle",
        )
    )
    parts.append(line(LEFT_PX, TOP_PX, LEFT_PX, bottom_px, AXIS_COLOUR))
    parts.append(line(LEFT_PX, bottom_px, LEFT_PX + plot_width_px, bottom_px, AXIS_COLOUR))
    label_y_px = math.inf
    for guide in sorted(guides, key=lambda guide: guide.value_s):
        y = y_px(guide.value_s)
        parts.append(
            line(LEFT_PX, y, LEFT_PX + plot_width_px, y, GUIDE_COLOUR, dashed=True, role="guide")
        )
        # Close percentiles would write their labels over each other: the higher one moves up.
        label_y_px = min(y + 4, label_y_px - GUIDE_LABEL_GAP_PX)
        parts.append(
            text(
                LEFT_PX + plot_width_px + 6,
                label_y_px,
                f"{guide.label} {guide.value_s * per_second:.3g} {unit}",
            )
        )
    parts.append("</svg>\n")
    return "\n".join(parts).encode()


def nice_step(raw: float) -> float:
    """The round value (1, 2 or 5 times a power of ten) at or just above `raw`."""
    if raw <= 0:
        return 1e-3  # every job took no time at all: a 1 ms scale still draws
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(factor * magnitude for factor in (1, 2, 5, 10) if factor * magnitude >= raw)


def job_labels(count: int) -> list[int]:
    """The job numbers written under the axis: the first, then every round step, at most
    about MAX_JOB_LABELS of them."""
    step = max(1, round(nice_step(count / MAX_JOB_LABELS)))
    return sorted({1, *range(step, count + 1, step)})


def legend(y_px: float) -> list[str]:
    """The two colours' meanings, at the top right."""
    parts = []
    for index, (label, colour) in enumerate(
        (("failed", FAILED_COLOUR), ("succeeded", SUCCEEDED_COLOUR))
    ):
        x = WIDTH_PX - 12 - LEGEND_ENTRY_PX * (index + 1)
        parts.append(f'<rect x="{x}" y="{y_px - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(text(x + 17, y_px, label))
    return parts


def line(
    x1: float,
    y1: float,
    x2: float,
    y2: float,
    colour: str,
    *,
    dashed: bool = False,
    role: str | None = None,
) -> str:
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    css_class = f' class="{role}"' if role else ""
    return (
        f'<line{css_class} x1="{x1:.2f}" y1="{y1:.2f}" x2="{x2:.2f}" y2="{y2:.2f}" '
        f'stroke="{colour}"{dash}/>'
    )


def text(
    x: float,
    y: float,
    content: str,
    *,
    anchor: str = "start",
    size_px: int = FONT_PX,
    rotated: bool = False,
) -> str:
    rotate = f' transform="rotate(-90 {x:.2f} {y:.2f})"' if rotated else ""
    return (
        f'<text x="{x:.2f}" y="{y:.2f}" font-size="{size_px}" text-anchor="{anchor}"{rotate}>'
        f"{escape(content)}</text>"
    )
