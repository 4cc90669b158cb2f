"""Is a latency measurement trustworthy? A verdict from what the case's own timing measured.

A timing taken while something else used the cores is not a result: in a default-matrix
run that shared the machine with another job, ResNet-18 eager reported a 916 ms median
(min 142 ms; its reference pairs 650 ms against ~26 ms later in the same run). pyperf
warns that a benchmark "may be unstable" from the spread of its own values (standard
deviation above 10% of the mean, minimum or maximum far from the mean); this suite has
more to go on, because every latency case also times a fixed reference network next to
it. A measurement is ``unstable`` when any of these holds:

- ``min_over_median`` < 0.7: the plain loop's median is more than 1.43x its fastest call
  (a quiet machine: 0.90-0.99 here);
- ``iqr_over_median`` > 0.25: the middle half of the samples spans a quarter of the median
  (quiet: 0.01-0.08);
- ``reference_drift`` > 1.25: the reference's median moved by more than 25% between the
  first and the second half of the pairs, so the machine changed speed during the case
  (quiet: 1.00-1.05);
- ``reference_vs_run`` > 1.5: the reference ran 1.5x slower than in the fastest case of
  this run with the same reference, so the whole case ran on a loaded machine. The
  machine's speed also moves 10-40% between quiet periods (README), hence 1.5, not 1.1;
- ``plain_vs_paired`` > 1.25: the plain loop's median (the figure the suite reports) is
  more than 1.25x the median of the same case's calls timed between reference calls a
  moment later, so the machine was slower during the plain loop than right after it.
  Paired calls run with caches the reference disturbed and are never faster when all is
  quiet: plain/paired measured 0.94-1.09 over 19 quiet timings at 224x224 on three
  runtimes, 0.7-0.9 for tiny models at 64x64. It caught a cold run's first case, a
  ResNet-18, reporting a steady 35.7 ms (IQR 0.6%) while its paired calls took 18.9 ms
  and two reruns measured 20.4 and 18.9 ms: every other check passed it (README).

The thresholds are wide on purpose: an unstable verdict triggers a re-timing, and a
quiet run must not be marked unstable (measured: see README, "Measurement quality").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

LIMITS = {"min_over_median": 0.7, "iqr_over_median": 0.25, "reference_drift": 1.25, "reference_vs_run": 1.5,
          "plain_vs_paired": 1.25}


def assess(samples_ms: Sequence[float], reference_ms: Sequence[float] | None = None,
           run_reference_best_ms: float | None = None, paired_case_ms: Sequence[float] | None = None) -> dict[str, Any]:
    """``{"verdict": "stable" | "unstable", "reasons": [...], "figures": {...}}`` for one timing."""
    s = np.asarray(samples_ms, dtype=float)
    median = float(np.median(s))
    q1, q3 = np.percentile(s, [25, 75])
    min_over_median = float(s.min()) / median
    iqr_over_median = float(q3 - q1) / median
    figures: dict[str, float | None] = {
        "min_over_median": min_over_median,
        "iqr_over_median": iqr_over_median,
        "reference_drift": None,
        "reference_vs_run": None,
        "plain_vs_paired": float(median / np.median(paired_case_ms)) if paired_case_ms else None,
    }
    if reference_ms is not None and len(reference_ms) >= 4:
        r = np.asarray(reference_ms, dtype=float)
        first, second = float(np.median(r[: len(r) // 2])), float(np.median(r[len(r) // 2 :]))
        figures["reference_drift"] = max(first, second) / min(first, second)
        if run_reference_best_ms:
            figures["reference_vs_run"] = float(np.median(r)) / run_reference_best_ms
    reasons = []
    if min_over_median < LIMITS["min_over_median"]:
        reasons.append(f"median {median:.3g} ms is {1 / min_over_median:.2f}x the fastest call")
    if iqr_over_median > LIMITS["iqr_over_median"]:
        reasons.append(f"interquartile range is {iqr_over_median:.0%} of the median")
    drift = figures["reference_drift"]
    if drift is not None and drift > LIMITS["reference_drift"]:
        reasons.append(f"the reference's speed moved {drift:.2f}x during the case")
    vs_run = figures["reference_vs_run"]
    if vs_run is not None and vs_run > LIMITS["reference_vs_run"]:
        reasons.append(f"the reference ran {vs_run:.2f}x slower than in this run's fastest case: a busy machine")
    plain_vs_paired = figures["plain_vs_paired"]
    if plain_vs_paired is not None and plain_vs_paired > LIMITS["plain_vs_paired"]:
        reasons.append(f"the plain loop's median was {plain_vs_paired:.2f}x the case's paired calls right after it:"
                       " the machine was slower during the plain loop")
    return {"verdict": "unstable" if reasons else "stable", "reasons": reasons, "figures": figures,
            "limits": dict(LIMITS)}


def recheck_run(latency_records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """After the run: mark ``unstable`` every timing whose reference ran ``reference_vs_run`` slower
    than the run's fastest timing with the same reference.

    During the run a case can only be compared with the cases before it, so a busy period
    at the start of a run is seen only once the machine has been seen quiet. Returns the
    records it marked.
    """
    def ref_median(lat: dict[str, Any]) -> float | None:
        ref = (lat.get("paired") or {}).get("reference_ms")
        return float(np.median(ref)) if ref else None

    best: dict[str, float] = {}
    for lat in latency_records:
        key, med = (lat.get("paired") or {}).get("reference_key"), ref_median(lat)
        if key and med and (lat.get("stability") or {}).get("verdict") != "unstable":
            best[key] = min(best.get(key, med), med)
    marked = []
    for lat in latency_records:
        key, med, stability = (lat.get("paired") or {}).get("reference_key"), ref_median(lat), lat.get("stability")
        if not (key in best and med and isinstance(stability, dict)) or stability.get("verdict") == "unstable":
            continue
        ratio = med / best[key]
        if ratio > LIMITS["reference_vs_run"]:
            stability["verdict"] = "unstable"
            stability["reasons"] = [*stability.get("reasons", []),
                                    f"the reference ran {ratio:.2f}x slower than in this run's fastest case"
                                    " (found after the run): a busy machine"]
            marked.append(lat)
    return marked
