"""The report's charts as plotly figure dicts, and the inlined plotly.js payload.

Figures are plain dicts (``{"data": [...], "layout": {...}}``) that the page hands to
plotly.js; plotly itself is only needed, if present, for its bundled JavaScript.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from resnetbench.records import lookup
from resnetbench.report.cells import _artifact_mb, _axis_key, _is_reference, _median_ms, _num, pareto_front


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
            v for v in (_num(s) for s in lookup(case, "latency", "samples_ms") or []) if v is not None
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
