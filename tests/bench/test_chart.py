import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from nogil_bench.bench.chart import PALETTE, ChartPoint, draw_speedup_chart

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


def draw_svg(
    tmp_path: Path, points: list[ChartPoint] | None = None, title: str = "Speedup"
) -> ET.Element:
    path = tmp_path / "chart.svg"
    draw_speedup_chart(sample_points() if points is None else points, path, title=title)
    return ET.parse(path).getroot()  # noqa: S314 - the SVG is our own output, not untrusted input


def polylines(svg: ET.Element, role: str) -> list[ET.Element]:
    return [line for line in svg.iter(f"{SVG}polyline") if line.get("class") == role]


def legend(svg: ET.Element) -> dict[str, str]:
    """Each legend swatch's colour, keyed by the series name written beside it."""
    names = [text.text for text in svg.iter(f"{SVG}text") if text.get("text-anchor") == "start"]
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
