"""HTML and Markdown reports rendered from results JSON.

Reads results dicts only (see :mod:`resnetbench.results`) and never imports torch:
reports are built on machines that have none. The HTML report is one self-contained
file: CSS, JavaScript, data and the plotting library are inlined, and it loads nothing
from the network, so it can be attached to a CI run and opened offline.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import itertools
import math
import os
import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from resnetbench.compare import BLOCKING, DECISION_LABELS, DECISIONS, blocking
from resnetbench.results import load, merge

__all__ = ["counts", "pareto_front", "render_html", "render_markdown", "write_html"]

TEMPLATES = Path(__file__).with_name("templates")
OUTCOMES = ("passed", "failed", "skipped", "error")
AXES = ("arch", "dtype", "compression", "backend", "batch", "outcome")
DTYPE_ORDER = ("fp32", "tf32", "bf16", "fp16", "int8", "int4")
# Markdown summary budget: GitHub's step summary should fit on one screen.
MD_MAX_REGRESSIONS = 6
MD_MAX_ARCHS = 5
MD_MAX_CLAIMS = 6


# ---------------------------------------------------------------- small helpers


def _get(obj: Any, *keys: str) -> Any:
    """Nested dict lookup that returns None as soon as a level is missing or null."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _num(value: Any) -> float | None:
    """A finite float, or None for missing, null, non-numeric, bool, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    """Format a number or return an em dash when it is missing."""
    num = _num(value)
    return "—" if num is None else f"{num:{spec}}{suffix}"


def _fmt_ms(value: Any) -> str:
    """Milliseconds with about four significant digits and no exponent."""
    num = _num(value)
    if num is None:
        return "—"
    if num >= 1000:
        return f"{num:,.0f}"
    if num >= 100:
        return f"{num:.1f}"
    if num >= 10:
        return f"{num:.2f}"
    return f"{num:.3f}"


def _fmt_pct(fraction: Any, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage."""
    num = _num(fraction)
    return "—" if num is None else f"{100 * num:.{digits}f}%"


def _fmt_p(value: Any) -> str:
    """A p-value; tiny values as an upper bound rather than noise digits."""
    num = _num(value)
    if num is None:
        return "—"
    return "<0.001" if num < 0.001 else f"{num:.3f}"


def _fmt_ci(ci: Any, digits: int = 3) -> str:
    """A [low, high] interval, or an em dash."""
    if not isinstance(ci, Sequence) or isinstance(ci, str) or len(ci) != 2:
        return "—"
    low, high = _num(ci[0]), _num(ci[1])
    if low is None or high is None:
        return "—"
    return f"{low:.{digits}f}–{high:.{digits}f}"


def _dtype_key(dtype: str) -> tuple[int, str]:
    """Sort dtypes widest first, unknown ones last and alphabetically."""
    return (
        DTYPE_ORDER.index(dtype) if dtype in DTYPE_ORDER else len(DTYPE_ORDER),
        dtype,
    )


def _axis_key(value: Any) -> tuple[int, float, str]:
    """Sort axis values numerically where they are numbers (batch), else as text."""
    num = _num(value)
    return (0, num, "") if num is not None else (1, 0.0, str(value))


def _artifact_mb(case: Mapping[str, Any]) -> float | None:
    """Artifact size in MB (10^6 bytes), from artifact_mb or artifact_bytes."""
    mb = _num(_get(case, "size", "artifact_mb"))
    if mb is None:
        nbytes = _num(_get(case, "size", "artifact_bytes"))
        mb = None if nbytes is None else nbytes / 1e6
    return mb


def _formula_mb(case: Mapping[str, Any]) -> float | None:
    """Closed-formula size in MB (10^6 bytes)."""
    mb = _num(_get(case, "size", "formula_mb"))
    if mb is None:
        nbytes = _num(_get(case, "size", "formula_bytes"))
        mb = None if nbytes is None else nbytes / 1e6
    return mb


def _unstable(case: Mapping[str, Any] | None) -> bool:
    """The run marked this case's timing unstable (measure/stability.py): its figures are not results."""
    return _get(case, "latency", "stability", "verdict") == "unstable"


def _median_ms(case: Mapping[str, Any] | None) -> float | None:
    """Median latency of a case for anything derived from it (speed-ups, fronts, bests); None when unstable."""
    return None if _unstable(case) else _num(_get(case, "latency", "median_ms"))


def _unstable_cases(cases: Sequence[Mapping[str, Any]]) -> list[tuple[Any, str]]:
    """(id, reasons) of every case whose timing stayed unstable."""
    return [(c.get("id"), "; ".join(_get(c, "latency", "stability", "reasons") or [])) for c in cases if _unstable(c)]


def _undecidable_cases(cases: Sequence[Mapping[str, Any]]) -> list[tuple[Any, str]]:
    """(id, why) of every case whose accuracy verdict is undecidable."""
    return [(c.get("id"), str(_get(c, "accuracy", "message") or "")) for c in cases
            if _get(c, "accuracy", "verdict") == "undecidable"]


def _latency_text(case: Mapping[str, Any] | None) -> str:
    """The median as shown: an unstable one is marked where it stands, a re-timed one says so."""
    text = _fmt_ms(_get(case, "latency", "median_ms"))
    verdict = _get(case, "latency", "stability", "verdict")
    if verdict == "unstable":
        return f"⚠ unstable {text}"
    return f"{text} (retimed)" if verdict == "retimed" else text


def _conversion_s(case: Mapping[str, Any]) -> float | None:
    """Seconds spent converting/exporting the model for its backend."""
    conv = case.get("conversion")
    for key in ("export_s", "convert_s", "conversion_s", "seconds"):
        value = _num(_get(conv, key))
        if value is not None:
            return value
    return None


def _accuracy_text(case: Mapping[str, Any]) -> str:
    """Task top-1 where it decides, else the centred cosine to the reference; for compact cells."""
    if _get(case, "accuracy", "verdict") == "undecidable":
        return "⚠ undecidable"
    top1 = _num(_get(case, "accuracy", "task", "top1"))
    if top1 is not None and not _get(case, "accuracy", "task", "undecidable"):
        return f"top1 {100 * top1:.1f}%"
    cosine = _num(_get(case, "accuracy", "metrics", "centered_cosine"))
    if cosine is not None:
        return f"ccos {cosine:.4f}"
    return "—"


def counts(results: Mapping[str, Any]) -> dict[str, int]:
    """Number of cases per outcome, every outcome present (zero when absent)."""
    seen = Counter(case.get("outcome") for case in results.get("cases", []))
    return {outcome: seen.get(outcome, 0) for outcome in OUTCOMES}


def _parse_time(text: Any) -> datetime | None:
    """An ISO-8601 timestamp, or None when it is missing or malformed."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _duration(started: Any, finished: Any) -> str:
    """Human duration between two ISO timestamps, or an empty string."""
    start, end = _parse_time(started), _parse_time(finished)
    if start is None or end is None or (start.tzinfo is None) != (end.tzinfo is None):
        return ""
    seconds = int((end - start).total_seconds())
    if seconds < 0:
        return ""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


# ---------------------------------------------------------------- Pareto front


def pareto_front(
    points: Sequence[tuple[float, float]], maximize: tuple[bool, bool] = (False, False)
) -> list[int]:
    """Indices of the non-dominated points, in input order.

    A point is dominated when another point is at least as good on both objectives
    and strictly better on one; identical points do not dominate each other, so
    duplicates on the front are all kept. By default both objectives are minimised;
    ``maximize`` flips either one. Example::

        >>> pareto_front([(1, 5), (2, 3), (3, 4), (4, 1), (5, 1)])
        [0, 1, 3]
    """
    # Turn every objective into "smaller is better", then sweep in x order keeping the
    # best y seen so far: O(n log n) instead of comparing every pair.
    signs = (-1.0 if maximize[0] else 1.0, -1.0 if maximize[1] else 1.0)
    norm = [(signs[0] * x, signs[1] * y) for x, y in points]
    order = sorted(range(len(norm)), key=lambda i: norm[i])
    front: list[int] = []
    best_y = math.inf
    for _, group in itertools.groupby(order, key=lambda i: norm[i][0]):
        members = list(group)
        group_min = min(norm[i][1] for i in members)
        # Equal y with a smaller x earlier means dominated; only a strict improvement counts.
        if group_min < best_y:
            front.extend(i for i in members if norm[i][1] == group_min)
            best_y = group_min
    return sorted(front)


# ---------------------------------------------------------------- table model


@dataclass(frozen=True)
class Cell:
    """One table cell: the text shown and the value the JavaScript sorts on."""

    text: str
    sort: float | str | None = None
    title: str = ""
    css: str = ""


@dataclass(frozen=True)
class Column:
    """A column of the cases table."""

    key: str
    label: str
    numeric: bool
    title: str = ""


CASE_COLUMNS = (
    Column("id", "id", False),
    Column("arch", "arch", False),
    Column("dtype", "dtype", False),
    Column("compression", "compression", False),
    Column("backend", "backend", False),
    Column("batch", "batch", True),
    Column("outcome", "outcome", False),
    Column("params", "params", True),
    Column("formula_mb", "formula MB", True, "closed-form size, 10^6 bytes"),
    Column("artifact_mb", "artifact MB", True, "bytes of the files the backend loads"),
    Column("size_ratio", "artifact / formula", True),
    Column("rel_l2", "rel L2", True, "relative L2 error of logits vs the reference"),
    Column("centered_cosine", "centred cos", True,
           "cosine of the input-dependent part of the logits (minus the reference's batch mean)"),
    Column("top1_agreement", "top-1 agreement", True, "same top-1 class as the reference"),
    Column("task_top1", "task top-1 (CI)", True, "labelled-dataset top-1 with its interval"),
    Column("drop_points", "drop pts", True, "task top-1 drop vs fp32, percentage points"),
    Column("median_ms", "median ms", True),
    Column("p90_ms", "p90 ms", True),
    Column("throughput", "img/s", True, "throughput, images per second"),
    Column("peak", "% of peak", True, "achieved GFLOP/s as a share of the calibrated peak"),
    Column("conversion", "conversion s", True, "export/conversion time"),
    Column("reason", "reason", False),
)


def _case_cells(case: Mapping[str, Any]) -> list[Cell]:
    """The cells of one case row, in CASE_COLUMNS order."""
    size = case.get("size")
    metrics = _get(case, "accuracy", "metrics")
    task = _get(case, "accuracy", "task")
    latency = case.get("latency")
    formula_mb, artifact_mb = _formula_mb(case), _artifact_mb(case)
    ratio = _num(_get(size, "ratio"))
    if ratio is None and formula_mb and artifact_mb is not None:
        ratio = artifact_mb / formula_mb
    top1 = _num(_get(task, "top1"))
    ci = _fmt_ci(_get(task, "top1_ci"), 3)
    top1_text = "—" if top1 is None else f"{100 * top1:.1f}%"
    if top1 is not None and ci != "—":
        low, high = (_num(v) for v in task["top1_ci"])
        top1_text += f" [{100 * low:.1f}–{100 * high:.1f}]"  # type: ignore[operator]
    peak = _num(_get(latency, "peak_fraction"))
    conversion = _conversion_s(case)
    cached = _get(case, "conversion", "cached") is True
    params = _num(_get(size, "params"))
    outcome = str(case.get("outcome", ""))
    reason = str(case.get("reason") or "")
    notes = case.get("notes") or []
    reason_title = "\n".join([reason, *map(str, notes)]).strip()

    def num(value: float | None, text: str) -> Cell:
        return Cell(text, value, css="n")

    return [
        Cell(str(case.get("id", "")), str(case.get("id", ""))),
        Cell(str(case.get("arch", "")), str(case.get("arch", ""))),
        Cell(str(case.get("dtype", "")), str(case.get("dtype", ""))),
        Cell(str(case.get("compression", "")), str(case.get("compression", ""))),
        Cell(str(case.get("backend", "")), str(case.get("backend", ""))),
        num(_num(case.get("batch")), str(case.get("batch", ""))),
        Cell(outcome, outcome, css=f"outcome o-{outcome}"),
        num(params, "—" if params is None else f"{int(params):,}"),
        num(formula_mb, _fmt(formula_mb, ".2f")),
        num(artifact_mb, _fmt(artifact_mb, ".2f")),
        num(ratio, _fmt(ratio, ".3f", "×")),
        num(_num(_get(metrics, "rel_l2")), _fmt(_get(metrics, "rel_l2"), ".2e")),
        num(_num(_get(metrics, "centered_cosine")), _fmt(_get(metrics, "centered_cosine"), ".4f")),
        num(
            _num(_get(metrics, "top1_agreement")),
            _fmt_pct(_get(metrics, "top1_agreement")),
        ),
        num(top1, top1_text),
        num(_num(_get(task, "drop_points")), _fmt(_get(task, "drop_points"), ".2f")),
        Cell(_latency_text(case), _median_ms(case), title="; ".join(_get(latency, "stability", "reasons") or []),
             css="n unstable" if _unstable(case) else "n"),
        num(_num(_get(latency, "p90_ms")), _fmt_ms(_get(latency, "p90_ms"))),
        num(
            _num(_get(latency, "throughput_ips")),
            _fmt(_get(latency, "throughput_ips"), ".1f"),
        ),
        num(None if peak is None else 100 * peak, _fmt_pct(peak)),
        num(conversion, _fmt(conversion, ".2f") + (" (cached)" if cached else "")),
        Cell(reason, reason, title=reason_title, css="reason"),
    ]


# ---------------------------------------------------------------- comparison views


def _grids(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per architecture, backend × dtype grids of median latency and of accuracy."""
    by_arch: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for case in cases:
        by_arch[str(case.get("arch"))].append(case)
    grids = []
    for arch in sorted(by_arch, key=_axis_key):
        arch_cases = by_arch[arch]
        backends = sorted({str(c.get("backend")) for c in arch_cases}, key=_axis_key)
        dtypes = sorted({str(c.get("dtype")) for c in arch_cases}, key=_dtype_key)
        several_batches = len({c.get("batch") for c in arch_cases}) > 1
        # Latency per call grows with the batch, so the fastest case is picked per batch size.
        fastest: dict[Any, Mapping[str, Any]] = {}
        for case in arch_cases:
            median = _median_ms(case)
            if case.get("outcome") != "passed" or median is None:
                continue
            best = fastest.get(case.get("batch"))
            if best is None or median < _median_ms(best):  # type: ignore[operator]
                fastest[case.get("batch")] = case
        cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for case in sorted(
            arch_cases,
            key=lambda c: (_axis_key(c.get("compression")), _axis_key(c.get("batch"))),
        ):
            label = str(case.get("compression"))
            if several_batches:
                label += f" b{case.get('batch')}"
            cells[(str(case.get("backend")), str(case.get("dtype")))].append(
                {
                    "id": case.get("id"),
                    "label": label,
                    "outcome": case.get("outcome"),
                    "latency": _latency_text(case) + (" ms" if _get(case, "latency", "median_ms") else ""),
                    "accuracy": _accuracy_text(case),
                    "fastest": fastest.get(case.get("batch")) is case,
                }
            )
        grids.append({"arch": arch, "backends": backends, "dtypes": dtypes, "cells": cells})
    return grids


def _reference_key(case: Mapping[str, Any]) -> tuple[str, str, str]:
    """What a case is compared against: same arch, backend and batch."""
    return (str(case.get("arch")), str(case.get("backend")), str(case.get("batch")))


def _is_reference(case: Mapping[str, Any]) -> bool:
    """The uncompressed fp32 case that trade-offs are measured against."""
    return case.get("dtype") == "fp32" and case.get("compression") == "none"


def _accuracy_drop(case: Mapping[str, Any], ref: Mapping[str, Any]) -> tuple[float | None, str]:
    """Accuracy lost against the fp32 reference, in percentage points, and its basis."""
    drop = _num(_get(case, "accuracy", "task", "drop_points"))
    if drop is not None:
        return drop, "task top-1"
    top1 = _num(_get(case, "accuracy", "task", "top1"))
    ref_top1 = _num(_get(ref, "accuracy", "task", "top1"))
    if top1 is not None and ref_top1 is not None:
        return 100 * (ref_top1 - top1), "task top-1"
    # Without labels, disagreement with the reference's top-1 is the best proxy we have,
    # unless the reference predicts one class for everything (then it says nothing).
    agreement = _num(_get(case, "accuracy", "metrics", "top1_agreement"))
    if agreement is not None and not _get(case, "accuracy", "degenerate"):
        return 100 * (1 - agreement), "top-1 disagreement"
    return None, ""


def _tradeoffs(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Size ratio, speedup and accuracy drop of every case vs its fp32 `none` reference."""
    refs = {_reference_key(c): c for c in cases if _is_reference(c)}
    rows: list[dict[str, Any]] = []
    for case in cases:
        ref = refs.get(_reference_key(case))
        if _is_reference(case):
            continue
        size, ref_size = _artifact_mb(case), _artifact_mb(ref) if ref else None
        median, ref_median = _median_ms(case), _median_ms(ref)
        drop, basis = _accuracy_drop(case, ref) if ref else (None, "")
        rows.append(
            {
                "case": case,
                "ref_id": ref.get("id") if ref else None,
                "size_ratio": size / ref_size if size is not None and ref_size else None,
                "speedup": ref_median / median if ref_median is not None and median else None,
                "drop": drop,
                "basis": basis,
            }
        )
    rows.sort(
        key=lambda r: (
            _axis_key(r["case"].get("arch")),
            _axis_key(r["case"].get("backend")),
            _axis_key(r["case"].get("batch")),
            _dtype_key(str(r["case"].get("dtype"))),
        )
    )
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(row["case"].get("compression"))].append(row)
    return [{"compression": k, "rows": groups[k]} for k in sorted(groups, key=_axis_key)]


def _delta_rows(
    comparison: Sequence[Mapping[str, Any]],
    results: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """Rows of the baseline delta table, regressions first."""
    current = {c.get("id"): c for c in results.get("cases", [])}
    base = {c.get("id"): c for c in (baseline or {}).get("cases", [])}
    rows: list[dict[str, Any]] = []
    for entry in comparison:
        decision = str(entry.get("decision", ""))
        case_id = entry.get("id")
        base_ms = _num(entry.get("baseline_median_ms"))
        if base_ms is None:
            base_ms = _median_ms(base.get(case_id))
        cur_ms = _num(entry.get("current_median_ms"))
        if cur_ms is None:
            cur_ms = _median_ms(current.get(case_id))
        ratio = _num(entry.get("ratio"))
        rows.append(
            {
                "id": case_id,
                "decision": decision,
                "label": DECISION_LABELS.get(decision, decision),
                "baseline": _fmt_ms(base_ms),
                "current": _fmt_ms(cur_ms),
                "ratio": "—" if ratio is None else f"{ratio:.3f}× ({100 * (ratio - 1):+.1f}%)",
                "ratio_value": ratio,
                "ci": _fmt_ci(entry.get("ci")),
                "p_value": _fmt_p(entry.get("p_value")),
                "reason": str(entry.get("reason") or ""),
                "blocking": decision in BLOCKING and not entry.get("allowed"),
                "allowed": str(entry.get("allowed") or ""),
            }
        )
    rank = {d: i for i, d in enumerate(DECISIONS)}
    # Within a decision, the largest slowdown first: that is where to look.
    rows.sort(
        key=lambda r: (
            rank.get(r["decision"], len(rank)),
            -(r["ratio_value"] or 0.0),
            str(r["id"]),
        )
    )
    return rows


# ---------------------------------------------------------------- charts (plotly figure dicts)


def _hover(text: Any) -> str:
    """Escape text for plotly hover labels, which interpret a subset of HTML."""
    return html.escape(str(text), quote=False)


def _axis(title: str, values: Iterable[float]) -> dict[str, Any]:
    """A plotly axis, logarithmic when the data spans more than 20×."""
    positive = [v for v in values if v > 0]
    log = bool(positive) and max(positive) / min(positive) > 20
    return {
        "title": {"text": title},
        "type": "log" if log else "linear",
        "zeroline": False,
    }


def _layout(xaxis: dict[str, Any], yaxis: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Shared plotly layout."""
    layout = {
        "xaxis": xaxis,
        "yaxis": yaxis,
        "margin": {"l": 70, "r": 20, "t": 10, "b": 60},
        "legend": {"orientation": "h", "y": -0.18},
        "hovermode": "closest",
        "height": 460,
        "font": {"family": "system-ui, sans-serif", "size": 12},
    }
    layout.update(extra)
    return layout


_SYMBOLS = (
    "circle",
    "square",
    "diamond",
    "triangle-up",
    "cross",
    "x",
    "triangle-down",
    "pentagon",
)
_HOVER_XY = "%{text}<br>%{x:.3g} %{meta[0]}<br>%{y:.3g} %{meta[1]}<extra></extra>"


def _scatter(
    points: Sequence[dict[str, Any]],
    group_key: str,
    units: tuple[str, str],
    eligible: set[int],
    front_groups: Mapping[str, list[int]],
    xaxis: dict[str, Any],
    yaxis: dict[str, Any],
) -> dict[str, Any]:
    """A scatter figure: one trace per group, ineligible points grey, Pareto fronts marked."""
    data: list[dict[str, Any]] = []
    groups: dict[str, list[int]] = defaultdict(list)
    for i, point in enumerate(points):
        groups[str(point[group_key]) if i in eligible else "not passed"].append(i)
    archs = sorted({str(p["arch"]) for p in points}, key=_axis_key)
    for name in sorted(groups, key=lambda g: (g == "not passed", _axis_key(g))):
        idx = groups[name]
        marker: dict[str, Any] = {
            "size": 9,
            "symbol": [_SYMBOLS[archs.index(str(points[i]["arch"])) % 8] for i in idx],
            "line": {"width": 0.5, "color": "#333"},
        }
        if name == "not passed":
            marker["color"] = "#b0b0b0"
        trace = {
            "type": "scatter",
            "mode": "markers",
            "name": name,
            "x": [points[i]["x"] for i in idx],
            "y": [points[i]["y"] for i in idx],
            "text": [_hover(points[i]["id"]) for i in idx],
            "meta": list(units),
            "hovertemplate": _HOVER_XY,
            "marker": marker,
        }
        data.append(trace)
    for label, idx in front_groups.items():
        # Sorted along x so the line reads as a staircase of the best trade-offs.
        idx = sorted(idx, key=lambda i: (points[i]["x"], points[i]["y"]))
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": label,
                "x": [points[i]["x"] for i in idx],
                "y": [points[i]["y"] for i in idx],
                "text": [_hover(points[i]["id"]) + " (Pareto-optimal)" for i in idx],
                "meta": list(units),
                "hovertemplate": _HOVER_XY,
                "line": {"dash": "dot", "width": 1, "color": "#d62728"},
                "marker": {
                    "size": 16,
                    "symbol": "star-open",
                    "color": "#d62728",
                    "line": {"width": 1.5},
                },
            }
        )
    return {"data": data, "layout": _layout(xaxis, yaxis)}


def _size_latency_figure(
    cases: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, Any] | None, list[str]]:
    """Latency vs artifact size, Pareto front per batch size; also the front's case ids."""
    points: list[dict[str, Any]] = [
        {
            "id": c.get("id"),
            "arch": c.get("arch"),
            "backend": c.get("backend"),
            "batch": c.get("batch"),
            "passed": c.get("outcome") == "passed",
            "x": _artifact_mb(c),
            "y": _median_ms(c),
        }
        for c in cases
        if _artifact_mb(c) is not None and _median_ms(c) is not None
    ]
    if not points:
        return None, []
    eligible = {i for i, p in enumerate(points) if p["passed"]}
    # Latency at different batch sizes is not comparable, so each batch gets its own front.
    by_batch: dict[str, list[int]] = defaultdict(list)
    for i in sorted(eligible):
        by_batch[str(points[i]["batch"])].append(i)
    front_groups: dict[str, list[int]] = {}
    for batch in sorted(by_batch, key=_axis_key):
        idx = by_batch[batch]
        chosen = pareto_front([(points[i]["x"], points[i]["y"]) for i in idx])
        label = "Pareto front" if len(by_batch) == 1 else f"Pareto front (b{batch})"
        front_groups[label] = [idx[j] for j in chosen]
    front = {i for idx in front_groups.values() for i in idx}
    figure = _scatter(
        points,
        "backend",
        ("MB", "ms"),
        eligible,
        front_groups,
        _axis("artifact size (MB)", (p["x"] for p in points)),
        _axis("median latency (ms)", (p["y"] for p in points)),
    )
    return figure, [str(points[i]["id"]) for i in sorted(front)]


def _tradeoff_figure(
    tradeoffs: Sequence[Mapping[str, Any]], cases: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any] | None, list[str]]:
    """Accuracy drop vs speedup against the fp32 reference, with the Pareto front."""
    points: list[dict[str, Any]] = []
    for group in tradeoffs:
        for row in group["rows"]:
            if row["speedup"] is None or row["drop"] is None:
                continue
            case = row["case"]
            points.append(
                {
                    "id": case.get("id"),
                    "arch": case.get("arch"),
                    "label": f"{case.get('compression')} / {case.get('dtype')}",
                    "passed": case.get("outcome") == "passed",
                    "x": row["speedup"],
                    "y": row["drop"],
                }
            )
    if not points:
        return None, []
    # The fp32 references themselves sit at (1×, 0 pts): a compressed config that is slower
    # without being more accurate is dominated by them and must not be called optimal.
    for case in cases:
        if _is_reference(case) and _median_ms(case) is not None:
            points.append(
                {
                    "id": case.get("id"),
                    "arch": case.get("arch"),
                    "label": "fp32 reference",
                    "passed": case.get("outcome") == "passed",
                    "x": 1.0,
                    "y": 0.0,
                }
            )
    eligible = {i for i, p in enumerate(points) if p["passed"]}
    idx = sorted(eligible)
    chosen = pareto_front([(points[i]["x"], points[i]["y"]) for i in idx], maximize=(True, False))
    front_idx = [idx[j] for j in chosen]
    figure = _scatter(
        points,
        "label",
        ("× speedup", "pts drop"),
        eligible,
        {"Pareto front": front_idx} if front_idx else {},
        _axis("speedup vs fp32 none (×)", (p["x"] for p in points)),
        {"title": {"text": "accuracy drop (percentage points)"}, "zeroline": True},
    )
    return figure, sorted({str(points[i]["id"]) for i in front_idx})


def _quartiles(samples: Sequence[float]) -> dict[str, Any]:
    """Box statistics (linear-interpolated quartiles, Tukey fences) and the outliers."""
    data = sorted(samples)
    n = len(data)

    def quantile(q: float) -> float:
        pos = q * (n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return data[lo] + (data[hi] - data[lo]) * (pos - lo)

    q1, median, q3 = quantile(0.25), quantile(0.5), quantile(0.75)
    iqr = q3 - q1
    inside = [v for v in data if q1 - 1.5 * iqr <= v <= q3 + 1.5 * iqr]
    outliers = [v for v in data if v < inside[0] or v > inside[-1]]
    return {
        "q1": q1,
        "median": median,
        "q3": q3,
        "low": inside[0],
        "high": inside[-1],
        "mean": sum(data) / n,
        "n": n,
        "outliers": outliers,
    }


def _box_figures(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One horizontal box chart per architecture, built from each case's raw samples."""
    by_arch: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for case in cases:
        samples = [
            v for v in (_num(s) for s in _get(case, "latency", "samples_ms") or []) if v is not None
        ]
        if samples:
            by_arch[str(case.get("arch"))].append((str(case.get("id")), _quartiles(samples)))
    figures = []
    for arch in sorted(by_arch, key=_axis_key):
        # Fastest at the top: plotly draws the first category at the bottom of a y axis.
        entries = sorted(by_arch[arch], key=lambda e: -e[1]["median"])
        ids = [_hover(case_id) for case_id, _ in entries]
        stats = [s for _, s in entries]
        outlier_x = [v for s in stats for v in s["outliers"]]
        outlier_y = [ids[i] for i, s in enumerate(stats) for _ in s["outliers"]]
        data: list[dict[str, Any]] = [
            {
                "type": "box",
                "orientation": "h",
                "name": "samples",
                # Precomputed statistics keep the file small however many rounds were run.
                "y": ids,
                "q1": [s["q1"] for s in stats],
                "median": [s["median"] for s in stats],
                "q3": [s["q3"] for s in stats],
                "lowerfence": [s["low"] for s in stats],
                "upperfence": [s["high"] for s in stats],
                "mean": [s["mean"] for s in stats],
                "boxpoints": False,
                "marker": {"color": "#1f77b4"},
            }
        ]
        if outlier_x:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": "outliers",
                    "x": outlier_x,
                    "y": outlier_y,
                    "marker": {"size": 4, "color": "#ff7f0e"},
                    "hovertemplate": "%{y}<br>%{x:.3f} ms<extra>outlier</extra>",
                }
            )
        values = [v for s in stats for v in (s["low"], s["high"])]
        layout = _layout(
            _axis("latency per call (ms)", values),
            {"type": "category", "automargin": True},
            height=min(140 + 22 * len(entries), 4000),
            showlegend=False,
        )
        # Axis on top: with a hundred cases the bottom of the chart is far off screen.
        layout["xaxis"]["side"] = "top"
        layout["margin"] = {"l": 10, "r": 20, "t": 50, "b": 10}
        figures.append({"arch": arch, "figure": {"data": data, "layout": layout}})
    return figures


@functools.lru_cache(maxsize=1)
def _plotly_payload() -> tuple[str, str] | None:
    """plotly.js gzip-compressed and base64-encoded, with its version; None without plotly.

    The minified bundle is 4.8 MB, alone almost the whole 5 MB report budget; gzip brings
    it to ~2 MB and the page inflates it with the browser's DecompressionStream.
    """
    try:
        from plotly.offline import get_plotlyjs, get_plotlyjs_version
    except ImportError:
        return None
    packed = gzip.compress(get_plotlyjs().encode("utf-8"), compresslevel=6, mtime=0)
    return base64.b64encode(packed).decode("ascii"), get_plotlyjs_version()


# ---------------------------------------------------------------- HTML


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


# The instruction-set extensions that decide which kernels (fp32, bf16, int8) run fast.
_NOTABLE_FLAG = re.compile(r"avx|amx|vnni|bf16|fp16|fma|sse4|neon|asimd|sve|dotprod|i8mm")


def _machine(environment: Mapping[str, Any]) -> dict[str, Any]:
    """The machine fingerprint flattened for the header."""
    fingerprint = environment.get("fingerprint") or {}

    def pick(key: str) -> Any:
        value = fingerprint.get(key)
        return environment.get(key) if value is None else value

    flags = pick("cpu_flags")
    if isinstance(flags, str):
        flags = flags.split()
    calibration = environment.get("calibration") or {}
    known = {
        "cpu_model",
        "cpu_flags",
        "cores_physical",
        "cores_logical",
        "python",
        "libraries",
        "hash",
        "platform",
    }
    extra = {
        k: v
        for k, v in fingerprint.items()
        if k not in known and isinstance(v, (str, int, float, bool))
    }
    return {
        "cpu_model": pick("cpu_model"),
        "flags": [str(f) for f in flags or []],
        "notable_flags": [str(f) for f in flags or [] if _NOTABLE_FLAG.search(str(f))],
        "cores_physical": pick("cores_physical"),
        "cores_logical": pick("cores_logical"),
        "threads": environment.get("threads"),
        "python": pick("python"),
        "platform": pick("platform"),
        "hash": pick("hash"),
        "peak_gflops": _num(environment.get("peak_gflops")),
        "libraries": dict(sorted((pick("libraries") or {}).items())),
        "calibration": {
            "kernel": calibration.get("kernel"),
            "median_ms": _num(calibration.get("median_ms")),
            "cv": _num(calibration.get("cv")),
        }
        if calibration
        else None,
        "extra": extra,
    }


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
        for axis in AXES
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
    claims = list(results.get("claims") or [])
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
        "unstable": _unstable_cases(cases),
        "claims": claims,
        "comparison": _delta_rows(comparison, results, baseline)
        if comparison is not None
        else None,
        "decision_counts": Counter(str(e.get("decision")) for e in comparison or []),
        "gate_blocking": len(blocking(comparison or [])),
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


# ---------------------------------------------------------------- Markdown


def _md(text: Any, limit: int = 80) -> str:
    """Text made safe for a Markdown table cell: no pipes, newlines or raw HTML."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=False).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    return lines


def render_markdown(results: dict[str, Any], comparison: list[dict[str, Any]] | None = None) -> str:
    """A one-screen Markdown summary (at most ~40 lines) for $GITHUB_STEP_SUMMARY.

    Outcome counts, regressions when ``comparison`` is given, the fastest passed
    configuration per architecture, and the claims verdicts. Example::

        Path(os.environ["GITHUB_STEP_SUMMARY"]).write_text(render_markdown(results))
    """
    cases = list(results.get("cases", []))
    tally = counts(results)
    lines = [
        "### resnetbench: "
        + " · ".join(f"{n} {o}" for o, n in tally.items())
        + f" ({len(cases)} cases)",
        "",
    ]
    environment = results.get("environment") or {}
    machine = _machine(environment)
    meta = [str(machine["cpu_model"] or "unknown CPU")]
    if machine["threads"] is not None:
        meta[0] += f", {machine['threads']} threads"
    if results.get("started"):
        meta.append(f"started {results['started']}")
    duration = _duration(results.get("started"), results.get("finished"))
    if duration:
        meta.append(f"took {duration}")
    if results.get("matrix_file"):
        meta.append(f"matrix {results['matrix_file']}")
    lines += [_md(" · ".join(meta), 300), ""]
    for what, flagged in (
        ("timing(s) stayed unstable after re-timing: their latency is not a result", _unstable_cases(cases)),
        ("accuracy verdict(s) undecidable (counted as failed)", _undecidable_cases(cases)),
    ):
        if flagged:
            lines += [f"**⚠ {len(flagged)} {what}:**", ""]
            lines += [f"- `{_md(cid, 80)}`: {_md(why, 200)}" for cid, why in flagged[:MD_MAX_REGRESSIONS]]
            lines.append("")

    if comparison is not None:
        decided = Counter(str(e.get("decision")) for e in comparison)
        counted = ", ".join(f"{decided[d]} {d}" for d in DECISIONS if decided[d])
        failing = blocking(comparison)
        lines += [
            f"**Gate: {'FAILED' if failing else 'passed'}** — {len(failing)} blocking of {len(comparison)}"
            f" compared ({counted})",
            "",
        ]
        rows = _delta_rows(comparison, results, None)
        shown = [r for r in rows if r["blocking"]]
        if shown:
            lines += _md_table(
                ("case", "decision", "ratio", "95% CI", "why"),
                [(r["id"], r["decision"], r["ratio"], r["ci"], r["reason"]) for r in shown[:MD_MAX_REGRESSIONS]],
            )
            if len(shown) > MD_MAX_REGRESSIONS:
                lines.append(f"…and {len(shown) - MD_MAX_REGRESSIONS} more in the HTML report")
            lines.append("")
        allowed = [r for r in rows if r["allowed"]]
        if allowed:
            lines += ["Allowed by the matrix or `--allow` (not failing the gate):", ""]
            lines += [f"- `{_md(r['id'], 80)}` ({r['decision']}): {_md(r['allowed'], 200)}" for r in allowed]
            lines.append("")

    best: dict[str, Mapping[str, Any]] = {}
    for case in cases:
        median = _median_ms(case)
        if case.get("outcome") != "passed" or median is None:
            continue
        arch = str(case.get("arch"))
        if arch not in best or median < _median_ms(best[arch]):  # type: ignore[operator]
            best[arch] = case
    if best:
        archs = sorted(best, key=_axis_key)
        lines += [
            "**Best configuration per architecture** (lowest median latency, passed)",
            "",
        ]
        lines += _md_table(
            ("arch", "case", "median ms", "artifact MB", "accuracy"),
            [
                (
                    a,
                    best[a].get("id"),
                    _fmt_ms(_median_ms(best[a])),
                    _fmt(_artifact_mb(best[a]), ".2f"),
                    _accuracy_text(best[a]),
                )
                for a in archs[:MD_MAX_ARCHS]
            ],
        )
        if len(archs) > MD_MAX_ARCHS:
            lines.append(f"…and {len(archs) - MD_MAX_ARCHS} more in the HTML report")
        lines.append("")

    claims = list(results.get("claims") or [])
    if claims:
        verdicts = Counter(str(c.get("verdict")) for c in claims)
        mismatched = [c for c in claims if c.get("verdict") != c.get("expected_verdict")]
        lines += [
            "**Claims**: "
            + ", ".join(f"{n} {_md(v, 30)}" for v, n in sorted(verdicts.items()))
            + f"; {len(mismatched)} differ from the expected verdict",
            "",
        ]
        # Surprises first: a claim whose verdict changed is the news.
        ordered = mismatched + [c for c in claims if c not in mismatched]
        lines += _md_table(
            ("id", "claim", "measured", "verdict", "expected"),
            [
                (
                    c.get("id"),
                    c.get("claim"),
                    c.get("measured"),
                    ("⚠ " if c in mismatched else "") + str(c.get("verdict")),
                    c.get("expected_verdict"),
                )
                for c in ordered[:MD_MAX_CLAIMS]
            ],
        )
        if len(claims) > MD_MAX_CLAIMS:
            lines.append(f"…and {len(claims) - MD_MAX_CLAIMS} more in the HTML report")
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"
