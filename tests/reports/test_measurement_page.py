"""The report page of a measurement: the answer in words first, then every figure with its
interval, the environment and how to reproduce it; self-contained and escaped."""

import base64
import json
import re
from xml.etree import ElementTree

from nogil_bench.bench.document import from_json
from nogil_bench.bench.progress import Progress
from nogil_bench.bench.report import markdown
from nogil_bench.bench.results import Unsupported
from nogil_bench.reports.measurement import Reproduce, measurement_page, status_page
from tests.reports.pages import measurement, two_workloads
from tests.utils.bench_rows import row
from tests.utils.html_page import Page

HOSTILE = '<script>alert("x")</script>\'</style>'


def render(**overrides: object) -> str:
    return measurement_page(
        overrides.pop("measured", None) or measurement(),  # type: ignore[arg-type]
        title=str(overrides.pop("title", "fib")),
        reproduce=Reproduce(command="nogil-bench measure fib --quick"),
        shared=bool(overrides.pop("shared", False)),
    )


def test_the_page_opens_with_the_answer_in_words_per_gil_mode() -> None:
    words = Page(render()).words()

    answer = words[words.index("The answer") : words.index("Every configuration")]
    best = "GIL off: the highest speedup measured is threads with 2 workers, 1.95x [1.91, 1.98]"
    assert f"{best} over sequential" in answer
    assert "GIL on: the highest speedup measured is processes with 2 workers" in answer
    # The verdicts that decide: the other runner against threads, the GIL's own effect.
    assert "GIL off: processes against threads with 2 workers: slower by" in answer
    assert "threads with 2 workers, GIL off against on: faster by" in answer
    assert "of the host's ceiling at 2 workers" in answer


def test_every_configuration_is_in_the_table_with_its_interval_and_verdict() -> None:
    measured = measurement()
    page = render(measured=measured)

    for each in measured.rows:
        assert each.speedup is not None or each.runner == "sequential"
        if each.speedup is not None:
            interval = f"[{each.speedup.ci_low:.2f}, {each.speedup.ci_high:.2f}]"
            cells = f'{each.speedup.ratio:.2f}x {interval}</td><td class="'
            assert cells in page
            assert f'">{each.speedup.verdict}</td>' in page.split(cells, 1)[1]
    assert page.count("<tr><td>3.14.7t</td>") == len(measured.rows)


def test_each_workload_has_one_answer_and_one_table_with_both_gil_modes() -> None:
    measured = two_workloads()
    page = measurement_page(measured, title="two", reproduce=Reproduce())

    headings = [text for tag, text in re.findall(r"<(h3)>([^<:]+)", page)]
    assert headings == ["fib", "images", "fib", "images"]  # an answer each, then a table each
    words = Page(page).words()
    answers = words[words.index("The answer") : words.index("Every configuration")]
    assert answers.count("GIL off: the highest speedup measured") == 2
    assert answers.count("GIL on: the highest speedup measured") == 2
    assert "### fib" in markdown(measured)
    assert markdown(measured).count("### fib") == 1


def test_unsupported_runners_are_listed_with_their_reasons() -> None:
    measured = measurement()
    measured.unsupported.append(
        Unsupported("fib", "interpreters", "3.14.7t", "its module cannot be shared")
    )

    assert "not measured: its module cannot be shared" in Page(render(measured=measured)).words()


def test_the_page_is_self_contained_no_script_and_nothing_loaded_from_elsewhere() -> None:
    page = Page(render())

    assert not page.named("script")
    assert not page.named("link")  # no stylesheet from anywhere
    images = page.named("img")
    assert images
    assert all(str(image["src"]).startswith("data:image/svg+xml;base64,") for image in images)
    sources = re.findall(r'(?:src|href)="([^"]*)"', render())
    assert all(source.startswith("data:") for source in sources)


def test_the_chart_is_the_engines_svg_with_its_intervals() -> None:
    (image,) = Page(render()).named("img")
    svg = base64.b64decode(str(image["src"]).split(",", 1)[1]).decode()

    assert svg.startswith("<svg") or svg.startswith("<?xml")
    assert "95% interval: where a rerun lands" in svg
    assert "host ceiling" in svg


def test_the_data_downloads_are_the_document_and_the_pyperf_suite() -> None:
    measured = measurement()
    links = {
        str(link["download"]): str(link["href"])
        for link in Page(render(measured=measured)).named("a")
    }

    document = json.loads(base64.b64decode(links["measurement.json"].split(",", 1)[1]))
    assert from_json(document).rows[1].wall_s == measured.rows[1].wall_s  # it reads back
    suite = json.loads(base64.b64decode(links["pyperf.json"].split(",", 1)[1]))
    assert len(suite["benchmarks"]) == len(measured.rows)


def test_the_environment_and_how_to_reproduce_it_are_on_the_page() -> None:
    words = Page(render()).words()

    for fact in (
        "AMD EPYC, 2 CPUs",
        "GIL=0 asked: off in its workers; GIL=1 asked: on in its workers",
        "1.50, 1.20, 0.90",
        "Linux-6.18-x86_64",
        "2026-12-02T18:30:00+00:00",
        "nogil-bench measure fib --quick",
    ):
        assert fact in words


def test_a_shared_page_names_no_path_on_the_measuring_host() -> None:
    assert "/opt/python3.14.7t" in render()
    shared = render(shared=True)

    assert "/opt/python3.14.7t" not in shared
    hrefs = [str(link["href"]) for link in Page(shared).named("a")]
    assert all(b"/opt/python" not in base64.b64decode(href.split(",", 1)[1]) for href in hrefs)


def test_every_user_given_string_is_escaped() -> None:
    rows = [
        row("sequential", 1, [1.0, 1.01, 0.99, 1.0, 1.02, 0.98], workload=HOSTILE),
        row("threads", 2, [0.5, 0.51, 0.49, 0.5, 0.52, 0.5], workload=HOSTILE),
    ]
    measured = measurement(HOSTILE, rows=rows)
    measured.unsupported.append(Unsupported(HOSTILE, "interpreters", "3.14.7t", HOSTILE))
    page = measurement_page(
        measured, title=HOSTILE, reproduce=Reproduce(command=HOSTILE, request_body=HOSTILE)
    )

    assert "<script" not in page
    assert page.count("</style>") == 1  # the page's own
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#39;&lt;/style&gt;" in page
    assert HOSTILE in Page(page).words()  # shown as text, as typed
    # The chart names the workload too: its SVG is well-formed and holds the name as text.
    (image,) = Page(page).named("img")
    svg = ElementTree.fromstring(base64.b64decode(str(image["src"]).split(",", 1)[1]))  # noqa: S314 (our own SVG)
    texts = svg.iter("{http://www.w3.org/2000/svg}text")
    assert HOSTILE in ["".join(text.itertext()) for text in texts]


def test_a_running_benchmark_says_how_far_it_is() -> None:
    progress = Progress(
        phase="rounds",
        setups_done=8,
        setups=8,
        rounds_done=4,
        rounds_bound=18,
        rounds_expected=6,
        blocks_done=1,
        block_rounds=3,
        elapsed_s=40.0,
        left_s=25.0,
        widest_ci=None,
        target_ci=0.05,
    )
    page = status_page(
        title="fib", status="running", progress=progress, reproduce=Reproduce(), error=None
    )

    words = Page(page).words()
    assert "Benchmark running" in words
    assert "4 of 6 rounds expected (at most 18)" in words
    assert "about 25 s left" in words
    assert 'aria-valuenow="67"' in page
