"""The HTML report in a real headless Chromium: offline, error-free, interactive, inert data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from resnetbench import report
from resnetbench.results import load

CHROMIUM = Path("/usr/bin/chromium")
EXAMPLE = Path(__file__).parent / "data" / "results_example.json"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Would set a flag (or open a dialog) if any data string were ever parsed as markup.
PAYLOAD = '<img src=x onerror="window.__xss=1"><script>window.__xss=2;alert(2)</script>'

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} not installed (apt-get install chromium)",
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)


@dataclass
class Loaded:
    """A report opened in a page, with everything the page did while loading."""

    page: Any
    path: Path
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """The example report (plus a comparison and extra payloads) open in headless Chromium."""
    results = load(EXAMPLE)
    results["cases"][0]["reason"] = PAYLOAD  # the example already has <script>alert(1)</script>
    results["claims"][0]["measured"] = PAYLOAD
    comparison = [
        {
            "id": "resnet18-int8-static-onnxruntime-b1",
            "decision": "regressed",
            "ratio": 1.25,
            "ci": [1.1, 1.4],
            "p_value": 0.002,
            "reason": PAYLOAD,
        },
        {
            "id": "resnet18-fp32-none-eager-b1",
            "decision": "unchanged",
            "ratio": 1.01,
            "ci": [0.97, 1.05],
            "p_value": 0.6,
            "reason": "within noise",
        },
    ]
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(report.render_html(results, comparison=comparison), encoding="utf-8")

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            state = Loaded(page, path)

            def on_console(message: Any) -> None:
                if message.type == "error":
                    state.console_errors.append(message.text)

            def on_dialog(dialog: Any) -> None:
                state.dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("console", on_console)
            page.on("pageerror", lambda error: state.console_errors.append(str(error)))
            page.on("request", lambda request: state.requests.append(request.url))
            page.on("dialog", on_dialog)
            page.goto(path.as_uri())
            # Charts load plotly asynchronously; the page flags the end either way.
            page.wait_for_function("document.body.dataset.charts !== 'pending'", timeout=30_000)
            yield state
        finally:
            browser.close()


def column_values(page: Any, label: str) -> list[str | None]:
    """The sort values (data-v) of one column, for the visible rows, in display order."""
    return page.evaluate(
        """label => {
            const table = document.getElementById("cases");
            const heads = Array.from(table.tHead.rows[0].cells);
            const index = heads.findIndex(th => th.textContent.trim().startsWith(label));
            return Array.from(table.tBodies[0].rows)
                .filter(row => !row.hidden)
                .map(row => row.cells[index].getAttribute("data-v"));
        }""",
        label,
    )


def test_loads_offline_without_errors(loaded: Loaded) -> None:
    """No console errors, no exceptions, no request other than the file and blob: URLs."""
    assert loaded.console_errors == []
    outside = [u for u in loaded.requests if not u.startswith(("file://", "data:", "blob:"))]
    assert outside == []
    assert loaded.requests[0] == loaded.path.as_uri()


def test_charts_render(loaded: Loaded) -> None:
    """Every chart container holds a drawn plotly SVG."""
    page = loaded.page
    assert page.evaluate("document.body.dataset.charts") == "ready"
    charts = page.locator("div.chart")
    assert charts.count() >= 3
    for i in range(charts.count()):
        assert charts.nth(i).locator(".main-svg").count() > 0
    # The scatter shows the example's Pareto-optimal int8 case as a star marker; the case
    # whose timing was unstable is not a point.
    assert page.locator("#fig-size-latency .point").count() >= 4


def test_data_never_executes(loaded: Loaded) -> None:
    """Script and onerror payloads in reasons, claims and the delta table stay text."""
    page = loaded.page
    assert loaded.dialogs == []
    assert page.evaluate("window.__xss") is None
    assert page.locator("img").count() == 0
    problems = page.locator("#problems").inner_text()
    assert "<script>alert(1)</script>" in problems
    assert PAYLOAD in page.locator("#baseline").inner_text()


def test_header_click_sorts(loaded: Loaded) -> None:
    """Clicking 'median ms' sorts ascending with missing values last; again, descending."""
    page = loaded.page
    before = column_values(page, "median ms")
    header = page.locator("#cases thead th", has_text="median ms")
    header.click()
    ascending = column_values(page, "median ms")
    numbers = [float(v) for v in ascending if v is not None]
    assert ascending != before
    # 3 results: the skipped case has no latency and the unstable one's is not a result
    assert numbers == sorted(numbers) and len(numbers) == 3
    assert ascending[-2:] == [None, None]
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    descending = [float(v) for v in column_values(page, "median ms") if v is not None]
    assert descending == sorted(numbers, reverse=True)


def test_filter_hides_rows(loaded: Loaded) -> None:
    """Typing in the filter box and choosing an axis value hide the other rows."""
    page = loaded.page
    page.fill("#filter", "int8")
    assert column_values(page, "id") == ["resnet18-int8-static-onnxruntime-b1"]
    assert page.locator("#shown").inner_text() == "1 of 5 shown"
    page.fill("#filter", "")
    page.select_option("select[data-axis=dtype]", "fp32")
    assert sorted(column_values(page, "id")) == [  # type: ignore[type-var]
        "resnet18-fp32-none-eager-b1",
        "resnet18-fp32-none-onnxruntime-b1",
    ]
    page.fill("#filter", "eager")
    assert column_values(page, "id") == ["resnet18-fp32-none-eager-b1"]
    page.fill("#filter", "")
    page.select_option("select[data-axis=dtype]", "")
    assert len(column_values(page, "id")) == 5


def test_screenshot(loaded: Loaded) -> None:
    """A full-page screenshot next to the report, for a person to look at in CI artifacts."""
    shot = loaded.path.with_name("report.png")
    loaded.page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert loaded.console_errors == []  # nothing new while scrolling and resizing
