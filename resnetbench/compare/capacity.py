"""The gate's capacity rules: Offline throughput and Server capacity under LoadGen
(``test_scenarios``, ``measure/scenarios_case.py``), failing closed like latency.

Both are "more is better", so a regression is a fall:

Both are paired with the latency reference (``measure/capacity.py``): Offline as each run's
ratio to the reference's run beside it, Server divided by the reference's Offline throughput
around the search. The gate uses the paired figures when both sides have them with the same
reference, and the raw ones otherwise (the detail says "unpaired").

- **Offline** keeps ``repeats`` runs per side. Regressed: the median fell by more
  than the threshold *and* every current run is below every baseline run. The same fall
  with overlapping runs is ``inconclusive`` (it blocks too).
- **Server** keeps the capacity search's bracket: the highest rate LoadGen called VALID
  (``low``) and the lowest it did not (``high``; None when the search never failed), and
  ``crossing_qps``, where the search's runs cross the p99 bound (``measure/capacity.py``;
  steadier than ``low``, which hangs on single runs). The point estimate is the crossing
  when both sides have one, else ``low``. Ok: it fell by at most the threshold. Regressed:
  it fell further *and* the current ``high`` is at most the baseline ``low`` less the
  threshold, so the capacity fell by more than the threshold wherever it was within both
  brackets. A fall past the threshold with overlapping brackets is ``inconclusive``. No
  valid rate now, where the baseline had one: regressed when the search went down to below
  the baseline's capacity less the threshold, else inconclusive. A different p99 bound on
  the two sides is not comparable: inconclusive.

Measured in the baseline and absent now (the scenarios did not run, or no Offline/Server
record): inconclusive. ``resnetbench gate-check --capacity`` measures how often these rules
raise a false alarm on an unchanged system and how often they catch a slower one.
"""

from __future__ import annotations

import math
from typing import Any

from resnetbench.records import lookup
from resnetbench.results import ResultsError


def _numbers(value: Any, where: str) -> list[float]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise ResultsError(f"{where} must be a list of numbers, got {value!r}")
    return [float(v) for v in value]


def offline_runs(case: dict[str, Any], where: str, paired: bool = False) -> list[float]:
    """The samples/s of every Offline run a case's scenarios record kept ([] when none);
    ``paired``: each run's ratio to the reference's run beside it (measure/capacity.py)."""
    offline = lookup(case, "scenarios", "offline")
    if not isinstance(offline, dict):
        return []
    if paired:
        return _numbers(offline.get("ratios"), f"{where}: scenarios.offline.ratios")
    runs = _numbers(offline.get("runs_samples_per_s"), f"{where}: scenarios.offline.runs_samples_per_s")
    if not runs and isinstance(offline.get("samples_per_s"), (int, float)):
        runs = [float(offline["samples_per_s"])]
    return runs


def _reference_key(case: dict[str, Any]) -> Any:
    return lookup(case, "scenarios", "reference", "key")


def decide_offline(base: list[float], cur: list[float], threshold: float, what: str = "samples/s") -> tuple[str, str]:
    """(status, detail) for two sides' Offline runs (samples/s, or ratios to the reference);
    status ok | regressed | inconclusive."""
    mb, mc = sorted(base)[len(base) // 2], sorted(cur)[len(cur) // 2]
    change = f"Offline {mb:.4g} -> {mc:.4g} {what} (median of {len(base)} and {len(cur)} runs"
    if mc >= mb * (1 - threshold):
        return "ok", f"{change})"
    if max(cur) < min(base):
        return "regressed", f"{change}, fell more than {threshold:.0%}; every run below every baseline run)"
    return "inconclusive", f"{change}: fell more than {threshold:.0%}, but the runs overlap)"


def decide_server(base: dict[str, Any], cur: dict[str, Any], threshold: float) -> tuple[str, str]:
    """(status, detail) for two sides' Server capacity searches (``find_capacity``'s records)."""
    bound_b, bound_c = base.get("p99_bound_ms"), cur.get("p99_bound_ms")
    if bound_b != bound_c:
        return "inconclusive", f"Server capacity not compared: p99 bound {bound_b} ms in baseline, {bound_c} ms now"
    low_b, low_c = base.get("qps"), cur.get("qps")
    high_c = (cur.get("bracket") or [None, None])[1]
    floor = low_b * (1 - threshold) if low_b is not None else None
    at = f"within p99 {bound_c:g} ms"
    if low_b is None:
        return "ok", f"Server: no valid rate {at} in the baseline" + ("" if low_c is None else f"; {low_c:.4g} QPS now")
    assert floor is not None
    if low_c is None:
        tried = [r.get("target_qps") for r in cur.get("runs") or [] if isinstance(r.get("target_qps"), (int, float))]
        lowest = min(tried) if tried else math.inf
        text = f"Server: no valid rate {at} now, down to {lowest:.4g} QPS; baseline served {low_b:.4g} QPS"
        return ("regressed", text) if lowest <= floor else ("inconclusive", text + " (not searched that low)")
    point_b, point_c, what = low_b, low_c, "highest VALID rate"
    if isinstance(base.get("crossing_qps"), (int, float)) and isinstance(cur.get("crossing_qps"), (int, float)):
        point_b, point_c, what = base["crossing_qps"], cur["crossing_qps"], "where p99 crosses the bound"
    change = f"Server capacity {point_b:.4g} -> {point_c:.4g} QPS {at} ({what})"
    if point_c >= point_b * (1 - threshold):
        return "ok", change
    if high_c is not None and high_c <= floor:
        return "regressed", (f"{change}: fell more than {threshold:.0%}; below {high_c:.4g} now (the lowest rate "
                             f"that failed), more than {threshold:.0%} under the baseline's highest VALID {low_b:.4g}")
    return "inconclusive", f"{change}: fell more than {threshold:.0%}, but the search brackets overlap"


def capacity_checks(base: dict[str, Any], cur: dict[str, Any], threshold: float, where: str) -> list[dict[str, Any]]:
    """The Offline and Server checks of one case (status n/a when the baseline measured neither)."""
    checks = []
    same_reference = _reference_key(base) is not None and _reference_key(base) == _reference_key(cur)
    paired = same_reference and bool(offline_runs(base, f"baseline {where}", True)) \
        and bool(offline_runs(cur, f"current {where}", True))
    b_runs, c_runs = offline_runs(base, f"baseline {where}", paired), offline_runs(cur, f"current {where}", paired)
    what = "case/reference throughput" if paired else "samples/s (unpaired: a side has no reference runs)"
    check: dict[str, Any] = {"name": "offline", "status": "n/a", "baseline": None, "current": None, "detail": ""}
    if b_runs and not c_runs:
        check.update(status="inconclusive", detail="Offline throughput measured in the baseline, not now")
    elif b_runs:
        status, detail = decide_offline(b_runs, c_runs, threshold, what)
        check.update(status=status, detail=detail, baseline=sorted(b_runs)[len(b_runs) // 2],
                     current=sorted(c_runs)[len(c_runs) // 2])
    checks.append(check)
    b_server, c_server = lookup(base, "scenarios", "server"), lookup(cur, "scenarios", "server")
    check = {"name": "server", "status": "n/a", "baseline": None, "current": None, "detail": ""}
    if isinstance(b_server, dict) and not isinstance(c_server, dict):
        check.update(status="inconclusive", detail="Server capacity measured in the baseline, not now")
    elif isinstance(b_server, dict) and isinstance(c_server, dict):
        normalized = same_reference and isinstance(b_server.get("normalized"), dict) \
            and isinstance(c_server.get("normalized"), dict)
        if normalized:  # capacities over the reference's Offline throughput around each search
            # (a raw crossing must not stand in for a normalised one an older record lacks)
            b_server = {**b_server, "crossing_qps": None, **b_server["normalized"]}
            c_server = {**c_server, "crossing_qps": None, **c_server["normalized"]}
        status, detail = decide_server(b_server, c_server, threshold)
        if normalized:
            detail = detail.replace("QPS", "QPS per reference sample/s")
        check.update(status=status, detail=detail, baseline=b_server.get("qps"), current=c_server.get("qps"))
    checks.append(check)
    return checks
