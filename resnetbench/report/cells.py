"""The report's derived data: number formatting, case cells, grids, trade-offs and deltas.

Everything here turns results dicts into plain values and strings; the figure builders,
the HTML page and the Markdown summary all read it. Never imports torch or Jinja.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from resnetbench.records import (
    BLOCKING,
    DECISION_LABELS,
    DECISIONS,
    OUTCOMES,
    lookup,
    timing_disturbed,
    timing_unstable,
)

DTYPE_ORDER = ("fp32", "tf32", "bf16", "fp16", "int8", "int4")


# ---------------------------------------------------------------- small helpers


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
    mb = _num(lookup(case, "size", "artifact_mb"))
    if mb is None:
        nbytes = _num(lookup(case, "size", "artifact_bytes"))
        mb = None if nbytes is None else nbytes / 1e6
    return mb


def _formula_mb(case: Mapping[str, Any]) -> float | None:
    """Closed-formula size in MB (10^6 bytes)."""
    mb = _num(lookup(case, "size", "formula_mb"))
    if mb is None:
        nbytes = _num(lookup(case, "size", "formula_bytes"))
        mb = None if nbytes is None else nbytes / 1e6
    return mb


def _median_ms(case: Mapping[str, Any] | None) -> float | None:
    """Median latency of a case for anything derived from it (speed-ups, fronts, bests); None when unstable."""
    return None if timing_unstable(case) else _num(lookup(case, "latency", "median_ms"))


def _undecidable_cases(cases: Sequence[Mapping[str, Any]]) -> list[tuple[Any, str]]:
    """(id, why) of every case whose accuracy verdict is undecidable."""
    return [(c.get("id"), str(lookup(c, "accuracy", "message") or "")) for c in cases
            if lookup(c, "accuracy", "verdict") == "undecidable"]


def _latency_text(case: Mapping[str, Any] | None) -> str:
    """The median as shown: an unstable one is marked where it stands, a re-timed one says so."""
    text = _fmt_ms(lookup(case, "latency", "median_ms"))
    verdict = lookup(case, "latency", "stability", "verdict")
    if verdict == "unstable":
        return f"⚠ unstable {text}"
    if timing_disturbed(case):
        return f"{text} (machine disturbed)"
    return f"{text} (retimed)" if verdict == "retimed" else text


def _conversion_s(case: Mapping[str, Any]) -> float | None:
    """Seconds spent converting/exporting the model for its backend."""
    conv = case.get("conversion")
    for key in ("export_s", "convert_s", "conversion_s", "seconds"):
        value = _num(lookup(conv, key))
        if value is not None:
            return value
    return None


def _accuracy_text(case: Mapping[str, Any]) -> str:
    """Task top-1 where it decides, else the centred cosine to the reference; for compact cells."""
    if lookup(case, "accuracy", "verdict") == "undecidable":
        return "⚠ undecidable"
    top1 = _num(lookup(case, "accuracy", "task", "top1"))
    if top1 is not None and not lookup(case, "accuracy", "task", "undecidable"):
        return f"top1 {100 * top1:.1f}%"
    cosine = _num(lookup(case, "accuracy", "metrics", "centered_cosine"))
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
    Column("peak", "% of roof", True,
           "achieved GFLOP/s as a share of the roof of the arithmetic the case runs (Machine: Roofs)"),
    Column("conversion", "conversion s", True, "export/conversion time"),
    Column("cold_start", "cold start s", True,
           "fresh process to first output (median of the runs; deployment: in the matrix)"),
    Column("load_peak", "load MB", True, "peak resident memory while loading, above the process's baseline"),
    Column("server_qps", "Server q/s", True,
           "LoadGen Server capacity: the highest rate with p99 within the bound (scenarios: in the matrix)"),
    Column("reason", "reason", False),
)


def _case_cells(case: Mapping[str, Any]) -> list[Cell]:
    """The cells of one case row, in CASE_COLUMNS order."""
    size = case.get("size")
    metrics = lookup(case, "accuracy", "metrics")
    task = lookup(case, "accuracy", "task")
    latency = case.get("latency")
    formula_mb, artifact_mb = _formula_mb(case), _artifact_mb(case)
    ratio = _num(lookup(size, "ratio"))
    if ratio is None and formula_mb and artifact_mb is not None:
        ratio = artifact_mb / formula_mb
    top1 = _num(lookup(task, "top1"))
    ci = _fmt_ci(lookup(task, "top1_ci"), 3)
    top1_text = "—" if top1 is None else f"{100 * top1:.1f}%"
    if top1 is not None and ci != "—":
        low, high = (_num(v) for v in task["top1_ci"])
        top1_text += f" [{100 * low:.1f}–{100 * high:.1f}]"  # type: ignore[operator]
    peak = _num(lookup(latency, "peak_fraction"))
    conversion = _conversion_s(case)
    cached = lookup(case, "conversion", "cached") is True
    params = _num(lookup(size, "params"))
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
        _backend_cell(case),
        num(_num(case.get("batch")), str(case.get("batch", ""))),
        Cell(outcome, outcome, css=f"outcome o-{outcome}"),
        num(params, "—" if params is None else f"{int(params):,}"),
        num(formula_mb, _fmt(formula_mb, ".2f")),
        num(artifact_mb, _fmt(artifact_mb, ".2f")),
        num(ratio, _fmt(ratio, ".3f", "×")),
        num(_num(lookup(metrics, "rel_l2")), _fmt(lookup(metrics, "rel_l2"), ".2e")),
        num(_num(lookup(metrics, "centered_cosine")), _fmt(lookup(metrics, "centered_cosine"), ".4f")),
        num(
            _num(lookup(metrics, "top1_agreement")),
            _fmt_pct(lookup(metrics, "top1_agreement")),
        ),
        num(top1, top1_text),
        num(_num(lookup(task, "drop_points")), _fmt(lookup(task, "drop_points"), ".2f")),
        Cell(_latency_text(case), _median_ms(case),
             title="; ".join([*(lookup(latency, "stability", "reasons") or []),
                              *(lookup(latency, "stability", "machine", "reasons") or []),
                              *([c] if (c := lookup(latency, "stability", "cause")) else [])]),
             css="n unstable" if timing_unstable(case) else "n"),
        num(_num(lookup(latency, "p90_ms")), _fmt_ms(lookup(latency, "p90_ms"))),
        num(
            _num(lookup(latency, "throughput_ips")),
            _fmt(lookup(latency, "throughput_ips"), ".1f"),
        ),
        num(None if peak is None else 100 * peak, _fmt_pct(peak)),
        num(conversion, _fmt(conversion, ".2f") + (" (cached)" if cached else "")),
        _deployment_cell(case, "cold_start_s", ".2f"),
        _deployment_cell(case, "load_peak_mb", ".0f"),
        _capacity_cell(case),
        Cell(reason, reason, title=reason_title, css="reason"),
    ]


def _capacity_cell(case: Mapping[str, Any]) -> Cell:
    """LoadGen's Server capacity, its bound, its split and the one-stream/multi-stream comparison."""
    server = lookup(case, "scenarios", "server")
    if not isinstance(server, Mapping):
        return Cell("—", None, css="n")
    qps = _num(server.get("qps"))
    bound = _fmt(server.get("p99_bound_ms"), "g")
    split = server.get("split") or {}
    text = "none" if qps is None else f"{qps:.0f}"
    title = (f"p99 within {bound} ms; {split.get('streams')} stream(s) x {split.get('threads')} thread(s); "
             + (f"measured p99 {_fmt(server.get('p99_ms'), '.1f')} ms" if qps is not None
                else str(server.get("reason") or "no valid run")))
    compared = server.get("compared")
    if isinstance(compared, Mapping):
        other = compared.get("split") or {}
        title += (f"; {other.get('streams')} x {other.get('threads')}: "
                  f"{_fmt(compared.get('qps'), '.0f')} q/s")
    return Cell(f"{text} (≤{bound} ms)", qps, title=title + "; not an MLPerf result", css="n")


def _deployment_cell(case: Mapping[str, Any], key: str, spec: str) -> Cell:
    """A deployment figure (median of the fresh-process runs), every run in the tooltip."""
    value = _num(lookup(case, "deployment", key))
    samples = lookup(case, "deployment", "samples") or []
    runs = [_num(s.get(key)) for s in samples if isinstance(s, Mapping)]
    title = ", ".join(_fmt(r, spec) for r in runs if r is not None)
    if key == "cold_start_s":
        parts = {k: _num(lookup(case, "deployment", k)) for k in ("import_s", "load_s", "first_output_s")}
        title += " (import {import_s}, load {load_s}, first output {first_output_s} s)".format(
            **{k: _fmt(v, ".2f") for k, v in parts.items()})
    elif key == "load_peak_mb":
        title += f" (resident after load {_fmt(lookup(case, 'deployment', 'resident_mb'), '.0f')} MB, " \
                 f"first inference peak {_fmt(lookup(case, 'deployment', 'inference_peak_mb'), '.0f')} MB)"
    return Cell(_fmt(value, spec), value, title=title if value is not None else "", css="n")


def _backend_cell(case: Mapping[str, Any]) -> Cell:
    """The backend, with the recipe that ran it (tuning.py) beside it and why in the tooltip."""
    backend = str(case.get("backend", ""))
    tuning = lookup(case, "artifact", "tuning") or {}
    recipe = tuning.get("recipe") if isinstance(tuning, Mapping) else None
    if not recipe or recipe == "default":
        return Cell(backend, backend)
    trials = tuning.get("trials")
    if not isinstance(trials, Mapping):
        trials = {}
    timed = "; ".join(f"{name} {t['median_ms']:.2f} ms" if isinstance(t, Mapping) and _num(t.get("median_ms")) is not None
                      else f"{name}: {t.get('rejected', '?') if isinstance(t, Mapping) else '?'}"
                      for name, t in trials.items())
    title = f"recipe {recipe}: {tuning.get('how', '')}" + (f" ({timed})" if timed else "")
    return Cell(f"{backend} · {recipe}", backend, title=title)


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
                    "latency": _latency_text(case) + (" ms" if lookup(case, "latency", "median_ms") else ""),
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
    drop = _num(lookup(case, "accuracy", "task", "drop_points"))
    if drop is not None:
        return drop, "task top-1"
    top1 = _num(lookup(case, "accuracy", "task", "top1"))
    ref_top1 = _num(lookup(ref, "accuracy", "task", "top1"))
    if top1 is not None and ref_top1 is not None:
        return 100 * (ref_top1 - top1), "task top-1"
    # Without labels, disagreement with the reference's top-1 is the best proxy we have,
    # unless the reference predicts one class for everything (then it says nothing).
    agreement = _num(lookup(case, "accuracy", "metrics", "top1_agreement"))
    if agreement is not None and not lookup(case, "accuracy", "degenerate"):
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


def _profile_units(case: Mapping[str, Any] | None) -> dict[str, float]:
    units = lookup(case or {}, "latency", "profile", "units") or []
    return {str(u["name"]): float(u["ms"]) for u in units
            if isinstance(u, Mapping) and "name" in u and _num(u.get("ms")) is not None}


def _side_by_side(base: Mapping[str, Any] | None, cur: Mapping[str, Any] | None, top: int = 12) -> list[dict[str, str]]:
    """Base and head profiles unit by unit, the most added time first (a regressed case's drill-down)."""
    b, c = _profile_units(base), _profile_units(cur)
    if not b or not c:
        return []
    rows = sorted(set(b) | set(c), key=lambda n: -(c.get(n, 0.0) - b.get(n, 0.0)))[:top]
    return [{"name": n, "base": _fmt(b.get(n), ".3f"), "head": _fmt(c.get(n), ".3f"),
             "delta": f"{c.get(n, 0.0) - b.get(n, 0.0):+.3f}"} for n in rows]


def case_details(cases: Sequence[Mapping[str, Any]], top: int = 8) -> list[dict[str, Any]]:
    """Per case with a profile or deployment figures: its top units, memory and cold start."""
    details = []
    for case in cases:
        units = lookup(case, "latency", "profile", "units") or []
        deployment = case.get("deployment") if isinstance(case.get("deployment"), Mapping) else None
        if not units and not deployment:
            continue
        details.append({
            "id": str(case.get("id")),
            "profiler": str(lookup(case, "latency", "profile", "profiler") or ""),
            "profile_error": str(lookup(case, "latency", "profile", "error") or ""),
            "units": [{"name": str(u.get("name")), "ms": _fmt(u.get("ms"), ".3f"),
                       "share": _fmt_pct(u.get("share"))} for u in units[:top] if isinstance(u, Mapping)],
            "deployment": [] if deployment is None else [
                (label, _fmt(deployment.get(key), spec) + unit)
                for key, label, spec, unit in (
                    ("cold_start_s", "cold start", ".2f", " s"), ("import_s", "import", ".2f", " s"),
                    ("load_s", "load", ".2f", " s"), ("first_output_s", "first output", ".3f", " s"),
                    ("load_peak_mb", "load peak", ".0f", " MB"), ("resident_mb", "resident after load", ".0f", " MB"),
                    ("inference_peak_mb", "first-inference peak", ".0f", " MB"))],
        })
    return details


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
                "profiles": _side_by_side(base.get(case_id), current.get(case_id)) if decision == "regressed" else [],
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


def _blocking(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The gate records that fail it: a blocking decision that no allowance names.

    The same rule as ``resnetbench.compare.blocking``, kept here so that the report does not
    depend on the gate's modules.
    """
    return [r for r in records if r["decision"] in BLOCKING and not r.get("allowed")]


# ---------------------------------------------------------------- machine


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
        "roofs": [
            {"dtype": str(dtype), "gflops": _num(entry.get("gflops")), "units": str(entry.get("units") or "GFLOP/s"),
             "basis": str(entry.get("basis") or "")}
            for dtype, entry in (environment.get("roofs") or {}).items() if isinstance(entry, dict)
        ],
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
