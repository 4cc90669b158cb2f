"""Fast tests of the HTML and Markdown reports (no browser, no torch)."""

from __future__ import annotations

import copy
import json
import random
import re
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from resnetbench import report
from resnetbench.report import cells, figures
from resnetbench.results import ResultsError, load

EXAMPLE = Path(__file__).parent / "data" / "results_example.json"
XSS = "<script>alert(1)</script>"
XSS_BREAKOUT = '</script><script>alert("breakout")</script><img src=x onerror=alert(3)>'


@pytest.fixture
def example() -> dict[str, Any]:
    """The example results file, freshly loaded (tests may mutate it)."""
    return load(EXAMPLE)


def by_id(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Cases keyed by id."""
    return {case["id"]: case for case in results["cases"]}


def synthetic(n_archs: int = 5, seed: int = 0) -> dict[str, Any]:
    """A 500-case results dict built from the example's record shapes."""
    rng = random.Random(seed)
    template = load(EXAMPLE)
    passed = copy.deepcopy(by_id(template)["resnet18-fp32-none-eager-b1"])
    skipped = by_id(template)["resnet18-fp16-none-eager-b1"]
    archs = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"][:n_archs]
    backends = ["eager", "torchscript", "compile", "onnxruntime", "openvino"]
    variants = [
        ("fp32", "none"),
        ("bf16", "none"),
        ("int8", "static"),
        ("fp32", "prune"),
    ]
    batches = [1, 2, 4, 8, 16]
    cases = []
    for arch in archs:
        for backend in backends:
            for dtype, compression in variants:
                for batch in batches:
                    case_id = f"{arch}-{dtype}-{compression}-{backend}-b{batch}"
                    roll = rng.random()
                    if roll < 0.05:
                        case = copy.deepcopy(skipped)
                    else:
                        case = copy.deepcopy(passed)
                        scale = rng.uniform(0.2, 5.0) * batch
                        samples = sorted(rng.gauss(20 * scale, scale) for _ in range(80))
                        case["latency"]["samples_ms"] = [round(s, 4) for s in samples]
                        case["latency"]["median_ms"] = statistics.median(samples)
                        case["latency"]["p90_ms"] = None if roll < 0.3 else samples[71]
                        case["size"]["artifact_mb"] = rng.uniform(5, 250)
                        case["accuracy"]["task"]["drop_points"] = rng.uniform(0, 5)
                        if roll > 0.9:
                            case["outcome"] = "failed"
                            case["reason"] = f"accuracy: cosine below limit {XSS}"
                    case.update(
                        id=case_id,
                        arch=arch,
                        dtype=dtype,
                        compression=compression,
                        backend=backend,
                        batch=batch,
                    )
                    cases.append(case)
    template["cases"] = cases
    template["claims"] = template["claims"] * 10
    return template


# ---------------------------------------------------------------- escaping and offline


def test_data_is_escaped_not_markup(example: dict[str, Any]) -> None:
    """Markup in any data field renders as text, including inside the embedded JSON."""
    example["cases"][0]["id"] = "resnet18" + XSS_BREAKOUT
    example["cases"][0]["reason"] = XSS_BREAKOUT
    example["claims"][0]["claim"] = XSS_BREAKOUT
    example["matrix_file"] = XSS_BREAKOUT
    example["environment"]["fingerprint"]["libraries"][XSS_BREAKOUT] = XSS_BREAKOUT
    comparison = [
        {
            "id": XSS_BREAKOUT,
            "decision": "regressed",
            "ratio": 1.5,
            "ci": [1.2, 1.8],
            "p_value": 0.01,
            "reason": XSS_BREAKOUT,
        }
    ]
    html = report.render_html(example, comparison=comparison)
    # The example file itself carries "<script>alert(1)</script>" in a failed case's reason.
    assert "<script>alert" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Only our own three script elements exist: the JSON data, plotly's payload and the code.
    assert len(re.findall(r"<script\b", html)) == 3


def test_embedded_json_is_valid_and_cannot_close_its_element(
    example: dict[str, Any],
) -> None:
    """The figures JSON parses and holds no '<' that could end the script element."""
    example["cases"][0]["id"] = XSS_BREAKOUT
    html = report.render_html(example)
    match = re.search(r'<script type="application/json" id="figures">(.*?)</script>', html, re.S)
    assert match is not None
    assert "<" not in match.group(1)
    figures = json.loads(match.group(1))
    assert {f["id"] for f in figures} >= {
        "fig-size-latency",
        "fig-tradeoff",
        "fig-box-0",
    }


def test_no_external_loads(example: dict[str, Any]) -> None:
    """Nothing is loaded from a URL: no src/href to the network, no CSS url() or @import."""
    html = report.render_html(example)
    assert not re.search(r"<script[^>]*\ssrc=", html, re.I)
    assert not re.search(r"<link[^>]*\shref=", html, re.I)
    assert not re.search(r"""\s(src|href)=["']?(https?:)?//""", html, re.I)
    style = html[html.index("<style>") : html.index("</style>")]
    assert "url(" not in style and "@import" not in style
    # plotly.js is inlined gzip+base64, so not even its string constants hold a URL.
    assert "http://" not in html and "https://" not in html


# ---------------------------------------------------------------- budgets


def test_500_cases_under_5_mb_and_2_s(record_property: Any) -> None:
    """A 500-case report, rendered cold (plotly packed afresh), fits the size and time budget."""
    results = synthetic()
    assert len(results["cases"]) == 500
    figures._plotly_payload.cache_clear()
    start = time.perf_counter()
    html = report.render_html(results)
    elapsed = time.perf_counter() - start
    size = len(html.encode("utf-8"))
    record_property("render_s", round(elapsed, 3))
    record_property("size_bytes", size)
    print(f"\n500 cases: rendered in {elapsed:.3f} s, {size / 1e6:.2f} MB")
    assert size < 5_000_000
    assert elapsed < 2.0
    assert html.count("<tr data-arch=") == 500


# ---------------------------------------------------------------- markdown


def test_markdown_counts_and_best_per_arch(example: dict[str, Any]) -> None:
    """The summary has the outcome counts and, per arch, the fastest *passed* case."""
    md = report.render_markdown(example)
    first = md.splitlines()[0]
    for text in ("3 passed", "1 failed", "1 skipped", "0 error"):
        assert text in first
    # The example's medians: eager 19.93, onnxruntime 12.04, int8 static 4.978 (all passed).
    assert "| resnet18 | resnet18-int8-static-onnxruntime-b1 | 4.978 | 11.90 | top1 95.0% |" in md
    # Make the failed bf16 case the fastest: it must still not be chosen.
    by_id(example)["resnet18-bf16-none-onnxruntime-b1"]["latency"]["median_ms"] = 1.0
    assert "resnet18-bf16-none-onnxruntime-b1 | 1.000" not in report.render_markdown(example)
    assert "| C3 |" in md and "refuted" in md
    assert len(md.splitlines()) <= 40


def test_markdown_stays_on_one_screen_when_large() -> None:
    """Many regressions, architectures and claims are truncated with a pointer to the HTML."""
    results = synthetic()
    comparison = [
        {
            "id": c["id"],
            "decision": "regressed",
            "ratio": 1.2,
            "ci": [1.1, 1.3],
            "p_value": 0.0001,
            "reason": "slower | by 20% <b>",
        }
        for c in results["cases"][:50]
    ] + [
        {
            "id": "x",
            "decision": "improved",
            "ratio": 0.5,
            "ci": None,
            "p_value": None,
            "reason": "",
        }
    ]
    md = report.render_markdown(results, comparison=comparison)
    lines = md.splitlines()
    assert len(lines) <= 40, md
    assert "**Gate: FAILED** — 50 blocking of 51 compared (50 regressed, 1 improved)" in md
    assert "…and 44 more in the HTML report" in md
    assert "<b>" not in md and "slower \\| by 20% &lt;b&gt;" in md
    assert "<script>" not in md


def test_markdown_without_optional_parts() -> None:
    """No environment, claims or latency: still a valid summary with the counts."""
    results = {
        "schema_version": 1,
        "cases": [
            {
                "id": "a",
                "arch": "resnet18",
                "dtype": "fp32",
                "compression": "none",
                "backend": "eager",
                "batch": 1,
                "outcome": "skipped",
            },
        ],
    }
    md = report.render_markdown(results)
    assert md.startswith("### resnetbench: 0 passed · 0 failed · 1 skipped · 0 error (1 cases)")


# ---------------------------------------------------------------- robustness


def test_missing_and_null_fields_do_not_crash() -> None:
    """Bare records, null metrics, empty samples and a missing environment all render."""
    base = {
        "arch": "resnet50",
        "dtype": "int8",
        "compression": "static",
        "backend": "openvino",
        "batch": 1,
    }
    results: dict[str, Any] = {
        "schema_version": 1,
        "cases": [
            {**base, "id": "bare", "outcome": "error", "reason": None},
            {
                **base,
                "id": "nulls",
                "outcome": "passed",
                "reason": "",
                "size": None,
                "accuracy": {"metrics": None, "task": None, "degenerate": None},
                "latency": {"samples_ms": [], "median_ms": None, "p90_ms": None},
                "conversion": None,
                "tests": None,
                "notes": None,
            },
            {
                **base,
                "id": "nan",
                "outcome": "passed",
                "batch": 2,
                "latency": {
                    "samples_ms": [5.0, float("nan")],
                    "median_ms": float("nan"),
                    "p90_ms": None,
                    "p99_ms": None,
                    "throughput_ips": None,
                },
            },
            {
                **base,
                "id": "one-sample",
                "outcome": "failed",
                "batch": 4,
                "size": {"artifact_bytes": 2_000_000},
                "latency": {"samples_ms": [3.0], "median_ms": 3.0},
            },
        ],
        "claims": [{"id": "C9"}],
    }
    html = report.render_html(results)
    assert "bare" in html and "C9" in html
    assert 'id="fig-box-0"' in html  # the one-sample and NaN cases still get a box
    md = report.render_markdown(results, comparison=[{"id": "bare", "decision": "regressed"}])
    assert "| bare | regressed | — | — |  |" in md


def test_example_renders_all_sections(example: dict[str, Any]) -> None:
    """Header, machine, grids, trade-offs, charts, problems, unstable and undecidable warnings, claims."""
    html = report.render_html(example)
    for text in (
        "2026-11-29T03:00:00+00:00",
        "2026-11-29T03:10:00+00:00",
        "Intel Xeon",
        "avx512_vnni",
        "onnxruntime 1.23.0",
        "matrix.yaml",
        "3 passed",
        "1 skipped",
        'id="grids"',
        'id="tradeoffs"',
        'id="fig-size-latency"',
        'id="fig-tradeoff"',
        'id="undecidable"',
        "is not above chance (0.1% for 1000 classes)",
        'id="unstable"',
        "median 29.9 ms is 6.45x the fastest call",
        "⚠ unstable 29.86",
        "(retimed)",
        "quantize_dynamic(Linear) makes ResNet-50 ~1/4 size",
        "fp16 convolutions in PyTorch eager on CPU are pathologically slow",
    ):
        assert text in html, text
    assert 'id="baseline"' not in html


# ---------------------------------------------------------------- computations


def test_pareto_front_hand_example() -> None:
    """Non-dominated points, duplicates kept, ties on one axis resolved by the other."""
    points = [(1, 5), (2, 3), (3, 4), (4, 1), (2, 3), (5, 1), (1, 6)]
    # (3,4) is beaten by (2,3); (5,1) by (4,1); (1,6) by (1,5); the two (2,3) tie.
    assert report.pareto_front(points) == [0, 1, 3, 4]
    # Maximise x (speedup), minimise y (drop): (5,1) is the fastest and loses least.
    assert report.pareto_front(points, maximize=(True, False)) == [5]
    speedup_drop = [
        (1.0, 0.0),
        (2.4, 0.5),
        (1.5, 0.5),
        (3.0, 2.0),
        (0.8, 0.0),
        (2.4, 0.5),
    ]
    # (1.5, 0.5) is beaten by (2.4, 0.5); (0.8, 0) by the reference at (1, 0).
    assert report.pareto_front(speedup_drop, maximize=(True, False)) == [0, 1, 3, 5]
    assert report.pareto_front([]) == []
    assert report.pareto_front([(2.0, 2.0)]) == [0]


def test_pareto_front_matches_brute_force() -> None:
    """The sweep agrees with the definition checked pair by pair."""
    rng = random.Random(1)
    points = [(rng.randint(0, 9), rng.randint(0, 9)) for _ in range(200)]

    def dominated(p: tuple[int, int]) -> bool:
        return any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)

    assert report.pareto_front(points) == [i for i, p in enumerate(points) if not dominated(p)]


def test_pareto_marked_in_report(example: dict[str, Any]) -> None:
    """The example's fronts: int8 static is smallest and fastest; failed cases never count."""
    # Make the failed bf16 case the smallest and fastest of all: it must stay off the front.
    bf16 = by_id(example)["resnet18-bf16-none-onnxruntime-b1"]
    bf16["latency"]["median_ms"], bf16["size"]["artifact_mb"] = 1.0, 1.0
    _, size_front = figures._size_latency_figure(example["cases"])
    assert size_front == ["resnet18-int8-static-onnxruntime-b1"]
    _, tradeoff_front = figures._tradeoff_figure(
        cells._tradeoffs(example["cases"]), example["cases"]
    )
    # The fp32 references sit at (1x, 0 pts); int8 static at (2.42x, 0.5 pts): none dominates.
    assert tradeoff_front == [
        "resnet18-fp32-none-eager-b1",
        "resnet18-fp32-none-onnxruntime-b1",
        "resnet18-int8-static-onnxruntime-b1",
    ]
    html = report.render_html(example)
    charts = html[html.index('id="charts"') : html.index('id="distributions"')]
    assert charts.count("<li><code>resnet18-int8-static-onnxruntime-b1</code></li>") == 2
    assert "<li><code>resnet18-bf16-none-onnxruntime-b1</code></li>" not in charts


def test_tradeoffs_against_fp32_reference(example: dict[str, Any]) -> None:
    """Size ratio, speedup and accuracy drop vs the fp32 `none` case of the same backend."""
    groups = {g["compression"]: g["rows"] for g in cells._tradeoffs(example["cases"])}
    (static,) = groups["static"]
    assert static["ref_id"] == "resnet18-fp32-none-onnxruntime-b1"
    assert static["size_ratio"] == pytest.approx(11.9 / 46.9)
    assert static["speedup"] == pytest.approx(12.0401 / 4.978)
    assert static["drop"] == pytest.approx(0.5)
    skipped = next(r for r in groups["none"] if r["case"]["dtype"] == "fp16")
    assert skipped["ref_id"] == "resnet18-fp32-none-eager-b1"
    assert skipped["speedup"] is None and skipped["size_ratio"] is None


def test_box_statistics_match_statistics_module() -> None:
    """Quartiles equal Python's inclusive quantiles; the whiskers stop at 1.5 IQR."""
    samples = [10.0, 11, 11.5, 12, 12.2, 12.4, 13, 14, 30]
    stats = figures._quartiles(samples)
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    assert (stats["q1"], stats["median"], stats["q3"]) == pytest.approx((q1, median, q3))
    assert stats["outliers"] == [30]
    assert stats["high"] == 14 and stats["low"] == 10


# ---------------------------------------------------------------- baseline comparison


def test_comparison_table_regressions_first_with_labels(
    example: dict[str, Any],
) -> None:
    """Regressions lead the delta table, coloured by class and named in text."""
    comparison: list[dict[str, Any]] = [
        {
            "id": "resnet18-fp32-none-eager-b1",
            "decision": "unchanged",
            "ratio": 1.0,
            "ci": [0.98, 1.02],
            "p_value": 0.7,
            "reason": "within noise",
        },
        {
            "id": "resnet18-int8-static-onnxruntime-b1",
            "decision": "regressed",
            "ratio": 1.31,
            "ci": [1.2, 1.4],
            "p_value": 0.0001,
            "reason": "31% slower",
        },
        {
            "id": "resnet18-gone-b1",
            "decision": "missing",
            "ratio": None,
            "ci": None,
            "p_value": None,
            "reason": "not run",
        },
    ]
    html = report.render_html(example, comparison=comparison)
    section = html[html.index('id="baseline"') : html.index('id="cases-section"')]
    rows = re.findall(r'<tr class="d-([a-z-]+)">', section)
    assert rows == ["regressed", "missing", "unchanged"]
    assert "▲ REGRESSED" in section and "1.310× (+31.0%)" in section and "&lt;0.001" in section
    # No baseline dict was given: its medians are unknown, the current ones are shown.
    regressed_row = section[section.index('<tr class="d-regressed">') :].split("</tr>")[0]
    assert re.findall(r'<td class="n">([^<]*)</td>', regressed_row)[:2] == [
        "—",
        "4.978",
    ]


def test_baseline_runs_the_gate_when_available(
    example: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a baseline and no comparison, compare_results is called if it can be imported."""
    calls = []

    def compare_results(baseline: dict[str, Any], current: dict[str, Any]) -> list[dict[str, Any]]:
        calls.append((baseline, current))
        return [
            {
                "id": "resnet18-fp32-none-eager-b1",
                "decision": "improved",
                "ratio": 0.8,
                "ci": [0.7, 0.9],
                "p_value": 0.01,
                "reason": "faster",
            }
        ]

    fake = types.ModuleType("resnetbench.compare")
    fake.compare_results = compare_results  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "resnetbench.compare", fake)
    baseline = copy.deepcopy(example)
    html = report.render_html(example, baseline=baseline)
    assert calls == [(baseline, example)]
    assert "▼ improved" in html and 'id="baseline"' in html


def test_baseline_without_gate_module_omits_comparison(
    example: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """If resnetbench.compare cannot be imported the report simply has no delta section."""
    monkeypatch.setitem(sys.modules, "resnetbench.compare", None)  # import -> ImportError
    html = report.render_html(example, baseline=copy.deepcopy(example))
    assert 'id="baseline"' not in html


def test_real_gate_records_render(example: dict[str, Any]) -> None:
    """The regression gate's own records (when the module is there) fill the delta table."""
    compare = pytest.importorskip("resnetbench.compare", reason="resnetbench.compare not ready")
    baseline = copy.deepcopy(example)
    slow = by_id(example)["resnet18-fp32-none-onnxruntime-b1"]["latency"]
    slow["samples_ms"] = [2 * s for s in slow["samples_ms"]]
    slow["median_ms"] *= 2
    records = compare.compare_results(baseline, example)
    html = report.render_html(example, baseline=baseline)
    section = html[html.index('id="baseline"') : html.index('id="cases-section"')]
    assert section.count('<tr class="d-') == len(records) == len(example["cases"])
    rows = section[section.index("<tbody>") :].split("</tr>")
    # worst news first: the case that fails on both sides, then the slowdown
    assert "d-failed" in rows[0] and "resnet18-bf16-none-onnxruntime-b1" in rows[0]
    assert "d-regressed" in rows[1] and "resnet18-fp32-none-onnxruntime-b1" in rows[1]
    assert "Gate: FAILED" in section


# ---------------------------------------------------------------- files


def test_write_html_merges_shards(tmp_path: Path, example: dict[str, Any]) -> None:
    """Two shard files become one report holding every case; the target dir is created."""
    first, second = copy.deepcopy(example), copy.deepcopy(example)
    first["cases"], second["cases"] = example["cases"][:2], example["cases"][2:]
    second["claims"] = []
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, data in zip(paths, (first, second), strict=True):
        path.write_text(json.dumps(data))
    out = tmp_path / "out" / "report.html"
    report.write_html([str(p) for p in paths], str(out))
    html = out.read_text(encoding="utf-8")
    for case in example["cases"]:
        assert case["id"] in html
    assert html.count("<tr data-arch=") == len(example["cases"])
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def test_write_html_reports_bad_input(tmp_path: Path) -> None:
    """A missing results file raises ResultsError naming it."""
    with pytest.raises(ResultsError, match=r"missing\.json"):
        report.write_html([str(tmp_path / "missing.json")], str(tmp_path / "r.html"))
