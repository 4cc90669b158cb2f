"""The self-contained HTML report: Jinja environment, page context, atomic writing.

CSS, JavaScript, data and the plotting library are inlined from ``resnetbench/templates``,
and the page loads nothing from the network.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from resnetbench.decide import SCENARIOS, Scenario, decide, format_decision
from resnetbench.recommendations import judge_all
from resnetbench.records import AXES, DECISION_LABELS, DECISIONS, unstable_cases
from resnetbench.report.cells import (
    CASE_COLUMNS,
    _axis_key,
    _blocking,
    _case_cells,
    _delta_rows,
    _duration,
    _fmt,
    _fmt_ms,
    _fmt_pct,
    _grids,
    _machine,
    _tradeoffs,
    _undecidable_cases,
    case_details,
    counts,
)
from resnetbench.report.figures import _box_figures, _plotly_payload, _size_latency_figure, _tradeoff_figure
from resnetbench.results import load, merge

TEMPLATES = Path(__file__).parent.parent / "templates"
# What the cases table can be filtered on: the matrix axes and the outcome.
FILTER_AXES = (*AXES, "outcome")


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """The Jinja environment: autoescaped, strict about undefined names."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        # The template is named *.html.j2, which select_autoescape would not recognise.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # NaN in embedded JSON would make JSON.parse throw; fail here instead.
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "allow_nan": False}
    env.filters["ms"] = _fmt_ms
    env.filters["pct"] = _fmt_pct
    env.filters["num"] = _fmt
    return env


def _static(name: str) -> Markup:
    """A CSS or JS asset from templates/, inlined verbatim (it is ours, not data)."""
    return Markup((TEMPLATES / name).read_text(encoding="utf-8"))


def render_html(
    results: dict[str, Any],
    baseline: dict[str, Any] | None = None,
    comparison: list[dict[str, Any]] | None = None,
) -> str:
    """Render a results dict as one self-contained HTML page.

    ``baseline`` is another results dict; when it is given without ``comparison`` the
    regression gate (``resnetbench.compare.compare_results``) is run if it is available.
    ``comparison`` is the gate's list of per-case decisions; with it the report opens
    with a delta table, regressions first. Example::

        html = render_html(resnetbench.results.load("reports/results.json"))
    """
    if baseline is not None and comparison is None:
        try:
            from resnetbench.compare import compare_results
        except ImportError:
            comparison = None
        else:
            comparison = compare_results(baseline, results)
    cases = list(results.get("cases", []))
    environment = results.get("environment") or {}
    axes = {
        axis: sorted({str(c.get(axis)) for c in cases if c.get(axis) is not None}, key=_axis_key)
        for axis in FILTER_AXES
    }
    tradeoffs = _tradeoffs(cases)
    scatter, size_front = _size_latency_figure(cases)
    tradeoff_scatter, tradeoff_front = _tradeoff_figure(tradeoffs, cases)
    figures: list[dict[str, Any]] = []
    if scatter:
        figures.append({"id": "fig-size-latency", "figure": scatter})
    if tradeoff_scatter:
        figures.append({"id": "fig-tradeoff", "figure": tradeoff_scatter})
    boxes = _box_figures(cases)
    for i, box in enumerate(boxes):
        box["id"] = f"fig-box-{i}"
        figures.append({"id": box["id"], "figure": box["figure"]})
    problem_rank = {"error": 0, "failed": 1, "skipped": 2}
    problems = sorted(
        (c for c in cases if c.get("outcome") != "passed"),
        key=lambda c: (problem_rank.get(str(c.get("outcome")), 3), str(c.get("id"))),
    )
    claims = list(results.get("claims") or []) + judge_all(results, decided_only=True)  # C10-C12 (recommendations.py)
    # the guide's closing question, for its two scenarios (``resnetbench decide`` for others)
    ship = [decide(results, Scenario.load(name)) for name in SCENARIOS]
    plotly = _plotly_payload() if figures else None
    context = {
        "title": "resnetbench report",
        "results": results,
        "started": results.get("started"),
        "finished": results.get("finished"),
        "duration": _duration(results.get("started"), results.get("finished")),
        "matrix_file": results.get("matrix_file"),
        "shards": results.get("shards") or [],
        "machine": _machine(environment),
        "counts": counts(results),
        "total": len(cases),
        "columns": CASE_COLUMNS,
        "rows": [(c, _case_cells(c)) for c in cases],
        "axes": axes,
        "grids": _grids(cases),
        "tradeoffs": tradeoffs,
        "figures": figures,
        "has_scatter": scatter is not None,
        "has_tradeoff_scatter": tradeoff_scatter is not None,
        "size_front": size_front,
        "tradeoff_front": tradeoff_front,
        "boxes": boxes,
        "problems": problems,
        "undecidable": _undecidable_cases(cases),
        "unstable": unstable_cases(cases),
        "claims": claims,
        "ship": [{"decision": d, "text": format_decision(d)} for d in ship],
        "details": case_details(cases),
        "comparison": _delta_rows(comparison, results, baseline)
        if comparison is not None
        else None,
        "decision_counts": Counter(str(e.get("decision")) for e in comparison or []),
        "gate_blocking": len(_blocking(comparison or [])),
        "decisions": DECISIONS,
        "decision_labels": DECISION_LABELS,
        "baseline_label": (baseline or {}).get("started") or "",
        "plotly_b64": plotly[0] if plotly else None,
        "plotly_version": plotly[1] if plotly else None,
        "css": _static("report.css"),
        "js": _static("report.js"),
        "generated": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    return _environment().get_template("report.html.j2").render(context)


def write_html(results_paths: list[str], out: str, baseline_path: str | None = None) -> None:
    """Merge results files, render the HTML report and write it atomically to ``out``.

    Raises :class:`resnetbench.results.ResultsError` for unreadable or malformed input.
    Example::

        write_html(["shard1.json", "shard2.json"], "reports/report.html",
                   baseline_path="reports/baseline.json")
    """
    if isinstance(results_paths, (str, os.PathLike)):  # one path, not its characters
        results_paths = [str(results_paths)]
    results = merge(results_paths)
    baseline = load(baseline_path) if baseline_path is not None else None
    text = render_html(results, baseline=baseline)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a browser or CI upload never sees half a file.
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
