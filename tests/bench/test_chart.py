import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from nogil_bench.bench.chart import (
    BAND_OPACITY,
    CEILING_COLOUR,
    CEILING_LABEL,
    IDEAL_LABEL,
    PALETTE,
    ChartPoint,
    draw_speedup_chart,
)

SVG = "{http://www.w3.org/2000/svg}"
PANELS = ("pure-python", "numpy-like")
SERIES = ("threads GIL=0", "threads GIL=1", "processes GIL=0", "asyncio GIL=1")


def sample_points() -> list[ChartPoint]:
    # Workers listed high to low, so the chart has to sort each line itself.
    return [
        ChartPoint(panel, series, workers, 1 + (workers - 1) * 0.3 * (index + 1))
        for panel in PANELS
        for index, series in enumerate(SERIES)
        for workers in (4, 3, 2, 1)
    ]


def with_intervals(points: list[ChartPoint]) -> list[ChartPoint]:
    """The same points, each with a 95% interval from 0.2 below to 0.3 above its speedup."""
    return [
        ChartPoint(p.panel, p.series, p.workers, p.speedup, p.speedup - 0.2, p.speedup + 0.3)
        for p in points
    ]


def sample_ceilings() -> list[ChartPoint]:
    return [
        ChartPoint(panel, "ceiling", workers, workers * 0.9, workers * 0.85, workers * 0.95)
        for panel in PANELS
        for workers in (1, 2, 3, 4)
    ]


def draw_svg(
    tmp_path: Path,
    points: list[ChartPoint] | None = None,
    title: str = "Speedup",
    ceilings: list[ChartPoint] | None = None,
) -> ET.Element:
    path = tmp_path / "chart.svg"
    chosen = sample_points() if points is None else points
    draw_speedup_chart(chosen, path, title=title, ceilings=ceilings or [])
    return ET.parse(path).getroot()  # noqa: S314 - the SVG is our own output, not untrusted input


def polylines(svg: ET.Element, role: str) -> list[ET.Element]:
    return [line for line in svg.iter(f"{SVG}polyline") if line.get("class") == role]


def elements(svg: ET.Element, tag: str, role: str) -> list[ET.Element]:
    return [element for element in svg.iter(f"{SVG}{tag}") if element.get("class") == role]


def ys_px(element: ET.Element) -> list[float]:
    return [float(point.split(",")[1]) for point in str(element.get("points")).split()]


def legend(svg: ET.Element) -> dict[str, str]:
    """Each series' legend swatch colour, keyed by the series name written beside it."""
    names = [text.text for text in svg.iter(f"{SVG}text") if text.get("class") == "legend"]
    colours = [swatch.get("stroke") for swatch in polylines(svg, "legend")]
    return {str(name): str(colour) for name, colour in zip(names, colours, strict=True)}


def test_svg_has_one_line_per_panel_and_series(tmp_path: Path) -> None:
    svg = draw_svg(tmp_path)

    assert len(polylines(svg, "series")) == len(PANELS) * len(SERIES)


def test_svg_legend_names_every_series_once_and_every_panel_is_headed(tmp_path: Path) -> None:
    svg = draw_svg(tmp_path)

    texts = Counter(text.text for text in svg.iter(f"{SVG}text"))
    assert list(legend(svg)) == list(SERIES)
    assert all(texts[name] == 1 for name in (*SERIES, *PANELS, "Speedup"))
    assert texts["speedup vs sequential"] == 1
    assert texts["workers"] == len(PANELS)


def test_each_series_keeps_its_palette_colour_in_every_panel(tmp_path: Path) -> None:
    svg = draw_svg(tmp_path)

    colours = legend(svg)
    assert list(colours.values()) == list(PALETTE[: len(SERIES)])
    drawn = Counter(line.get("stroke") for line in polylines(svg, "series"))
    assert drawn == {colour: len(PANELS) for colour in colours.values()}


def test_gil_enabled_series_are_dashed_and_the_others_solid(tmp_path: Path) -> None:
    svg = draw_svg(tmp_path)

    dashed_colours = {colour for name, colour in legend(svg).items() if "GIL=1" in name}
    for line in [*polylines(svg, "series"), *polylines(svg, "legend")]:
        assert ("stroke-dasharray" in line.attrib) == (line.get("stroke") in dashed_colours)


def test_every_panel_has_a_dashed_ideal_line(tmp_path: Path) -> None:
    ideal = polylines(draw_svg(tmp_path), "ideal")

    assert len(ideal) == len(PANELS)
    assert all("stroke-dasharray" in line.attrib for line in ideal)


def test_series_points_are_joined_in_order_of_workers(tmp_path: Path) -> None:
    for line in polylines(draw_svg(tmp_path), "series"):
        xs_px = [float(point.split(",")[0]) for point in str(line.get("points")).split()]
        assert xs_px == sorted(xs_px)
        assert len(xs_px) == 4


def test_svg_escapes_markup_in_titles_and_names(tmp_path: Path) -> None:
    points = [ChartPoint("a<b", "x & y GIL=1", 1, 1.0), ChartPoint("a<b", "x & y GIL=1", 2, 1.5)]
    svg = draw_svg(tmp_path, points, title="<title> & more")

    texts = {text.text for text in svg.iter(f"{SVG}text")}
    assert {"a<b", "x & y GIL=1", "<title> & more"} <= texts


def test_png_opens_with_pillow_at_the_same_size_as_the_svg(tmp_path: Path) -> None:
    svg = draw_svg(tmp_path)
    path = tmp_path / "chart.png"
    draw_speedup_chart(sample_points(), path, title="Speedup")

    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (int(str(svg.get("width"))), int(str(svg.get("height"))))


def test_png_draws_series_in_their_palette_colours(tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    draw_speedup_chart(sample_points(), path, title="Speedup")

    with Image.open(path) as image:
        counted = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert counted is not None
    colours = {colour for _, colour in counted}
    for hex_colour in PALETTE[: len(SERIES)]:
        assert tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)) in colours


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_output_is_deterministic(tmp_path: Path, suffix: str) -> None:
    first, second = tmp_path / f"first{suffix}", tmp_path / f"second{suffix}"
    draw_speedup_chart(sample_points(), first, title="Speedup")
    draw_speedup_chart(sample_points(), second, title="Speedup")

    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_chart_replaces_an_existing_file_and_leaves_no_temporary_file(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"chart{suffix}"
    path.write_bytes(b"stale")
    draw_speedup_chart(sample_points(), path, title="Speedup")

    assert path.read_bytes() != b"stale"
    assert list(tmp_path.iterdir()) == [path]


def test_an_unsupported_suffix_is_refused_naming_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "chart.jpg"
    with pytest.raises(ValueError, match=r"'\.jpg'.*\.svg, \.png"):
        draw_speedup_chart(sample_points(), path, title="Speedup")
    assert not path.exists()


def test_no_points_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "chart.svg"
    with pytest.raises(ValueError, match="empty"):
        draw_speedup_chart([], path, title="Speedup")
    assert not path.exists()


def test_every_point_with_an_interval_gets_one_whisker_in_its_series_colour(
    tmp_path: Path,
) -> None:
    points = sample_points()
    # Intervals for the first series only: the other series must stay without whiskers.
    first = [p for p in points if p.series == SERIES[0]]
    rest = [p for p in points if p.series != SERIES[0]]
    svg = draw_svg(tmp_path, [*with_intervals(first), *rest])

    whiskers = polylines(svg, "whisker")
    assert len(whiskers) == len(first)
    assert {whisker.get("stroke") for whisker in whiskers} == {PALETTE[0]}


def test_points_without_intervals_draw_no_whiskers_bands_or_interval_legend(
    tmp_path: Path,
) -> None:
    svg = draw_svg(tmp_path)

    assert polylines(svg, "whisker") == []
    assert elements(svg, "polygon", "band") == []
    assert polylines(svg, "legend-ci") == []


def test_a_whisker_spans_its_interval_around_the_point(tmp_path: Path) -> None:
    points = [ChartPoint("p", "s", 1, 1.0), ChartPoint("p", "s", 2, 1.5, 1.2, 1.9)]
    svg = draw_svg(tmp_path, points)

    (whisker,) = polylines(svg, "whisker")
    (series,) = polylines(svg, "series")
    point_y_px = ys_px(series)[1]
    # SVG's y grows downwards: the high end is the smaller y.
    assert min(ys_px(whisker)) < point_y_px < max(ys_px(whisker))


def test_a_series_with_two_or_more_intervals_gets_one_translucent_band(tmp_path: Path) -> None:
    points = [
        *with_intervals([ChartPoint("p", "two", w, float(w)) for w in (1, 2)]),
        *with_intervals([ChartPoint("p", "one", 1, 1.0)]),
        ChartPoint("p", "one", 2, 1.5),
    ]
    svg = draw_svg(tmp_path, points)

    (band,) = elements(svg, "polygon", "band")
    assert band.get("fill") == PALETTE[0]
    assert 0 < float(str(band.get("fill-opacity"))) < 1
    assert len(ys_px(band)) == 4  # two upper corners, then two lower ones


def test_intervals_are_named_in_the_legend(tmp_path: Path) -> None:
    svg = draw_svg(tmp_path, with_intervals(sample_points()))

    assert len(polylines(svg, "legend-ci")) == 1
    assert "95% interval: where a rerun lands" in {text.text for text in svg.iter(f"{SVG}text")}


def test_the_y_axis_reaches_the_highest_whisker(tmp_path: Path) -> None:
    points = [ChartPoint("p", "s", 1, 1.0), ChartPoint("p", "s", 2, 1.5, 1.0, 9.0)]
    svg = draw_svg(tmp_path, points)

    (axes,) = [line for line in polylines(svg, "axis") if len(ys_px(line)) == 3]
    plot_top_px = ys_px(axes)[0]
    assert min(ys_px(polylines(svg, "whisker")[0])) >= plot_top_px
    ticks = [float(str(t.text)) for t in svg.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert max(ticks) >= 8  # a tick near the top, not a scale stopping at the ideal line


def test_every_panel_draws_the_host_ceiling_as_a_grey_dotted_line(tmp_path: Path) -> None:
    svg = draw_svg(tmp_path, ceilings=sample_ceilings())

    ceilings, (ideal, *_) = polylines(svg, "ceiling"), polylines(svg, "ideal")
    assert len(ceilings) == len(PANELS)
    for ceiling in ceilings:
        stroke = str(ceiling.get("stroke"))
        assert stroke not in PALETTE
        assert len({stroke[1:3], stroke[3:5], stroke[5:7]}) == 1  # grey
        assert ceiling.get("stroke-dasharray") not in {None, ideal.get("stroke-dasharray")}
    assert len(polylines(svg, "ceiling-whisker")) == len(sample_ceilings())


def test_the_legend_names_the_ideal_line_always_and_the_ceiling_when_drawn(
    tmp_path: Path,
) -> None:
    without = Counter(text.text for text in draw_svg(tmp_path).iter(f"{SVG}text"))
    with_ceiling = draw_svg(tmp_path, ceilings=sample_ceilings())
    texts = Counter(text.text for text in with_ceiling.iter(f"{SVG}text"))

    assert without[IDEAL_LABEL] == 1
    assert without[CEILING_LABEL] == 0
    assert texts[IDEAL_LABEL] == 1
    assert texts[CEILING_LABEL] == 1
    assert CEILING_LABEL == "host ceiling (K independent processes)"
    assert len(polylines(with_ceiling, "legend-ceiling")) == 1
    assert list(legend(with_ceiling)) == list(SERIES)  # the series' own entries are unchanged


def test_ceilings_for_a_panel_with_no_points_are_refused(tmp_path: Path) -> None:
    ceilings = [ChartPoint("elsewhere", "ceiling", 2, 1.8)]
    with pytest.raises(ValueError, match="elsewhere"):
        draw_svg(tmp_path, ceilings=ceilings)


@pytest.mark.parametrize(("low", "high"), [(1.0, None), (None, 2.0), (2.0, 1.0)])
def test_an_interval_needs_both_ends_in_order(low: float | None, high: float | None) -> None:
    with pytest.raises(ValueError, match="low"):
        ChartPoint("p", "s", 2, 1.5, low, high)


def png_colours(path: Path) -> set[tuple[int, ...]]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        counted = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert counted is not None
    return {colour for _, colour in counted if isinstance(colour, tuple)}


def test_png_draws_bands_as_a_tint_of_the_series_colour_and_the_ceiling_in_grey(
    tmp_path: Path,
) -> None:
    plain, marked = tmp_path / "plain.png", tmp_path / "marked.png"
    draw_speedup_chart(sample_points(), plain, title="Speedup")
    draw_speedup_chart(
        with_intervals(sample_points()), marked, title="Speedup", ceilings=sample_ceilings()
    )

    # The first series' colour #0072b2 at the band's opacity over white.
    tint = tuple(round(255 - BAND_OPACITY * (255 - c)) for c in (0x00, 0x72, 0xB2))
    grey = tuple(int(CEILING_COLOUR[i : i + 2], 16) for i in (1, 3, 5))

    def near(colours: set[tuple[int, ...]], wanted: tuple[int, ...]) -> bool:
        return any(max(abs(a - b) for a, b in zip(c, wanted, strict=True)) <= 1 for c in colours)

    assert near(png_colours(marked), tint)
    assert near(png_colours(marked), grey)
    assert not near(png_colours(plain), tint)
    assert plain.read_bytes() != marked.read_bytes()
