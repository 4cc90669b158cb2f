"""Is a latency measurement trustworthy? Two questions, kept apart.

1. Is *what the gate compares* stable? The gate compares the case/reference ratio of
   the paired calls (``stats.normalized_blocks``), not the absolute time. The timing is
   ``unstable`` (a blocking verdict in ``compare``) only when that ratio is:

   - ``ratio_iqr_over_median`` > 0.25: the middle half of the per-pair ratios spans a
     quarter of their median (the case's calls are bimodal beside its reference's: a
     runner or a neighbour disturbing every other call);
   - ``ratio_drift`` > 1.15: the median ratio moved by more than 15% between the first and
     the second half of the pairs, more than the gate's threshold (10%) plus the ratio's
     own run-to-run movement: the two networks stopped feeling the machine alike.

2. Was *the machine* steady while the absolute figures (the plain loop's median, p90...)
   were taken? pyperf warns that a benchmark "may be unstable" from the spread of its
   own values; this suite also has the reference's own times. The machine is
   ``disturbed`` when any of these holds:

   - ``min_over_median`` < 0.7: the plain loop's median is more than 1.43x its fastest
     call (a quiet machine: 0.90-0.99 here);
   - ``iqr_over_median`` > 0.25: the middle half of the samples spans a quarter of the
     median (quiet: 0.01-0.08);
   - ``reference_drift`` > 1.25: the reference's median moved by more than 25% between the
     first and the second half of the pairs (quiet: 1.00-1.05);
   - ``reference_vs_run`` > 1.5: the reference ran 1.5x slower than in the fastest case of
     this run with the same reference;
   - ``plain_vs_paired`` > 1.25: the plain loop's median is more than 1.25x the median of
     the same case's calls timed between reference calls a moment later (paired calls run
     with caches the reference disturbed and are never faster when all is quiet:
     plain/paired measured 0.94-1.09 over 19 quiet timings at 224x224 on three runtimes).

   A disturbed machine triggers a re-timing (the absolute figures are worth having
   right), and one that stays disturbed is recorded and shown (``machine``), with the
   cause the records show (``cause``). It is not a gate verdict: the pairing exists to
   cancel the machine's speed, and issue 27 measured the gate red with base = head in 3
   of 3 rehearsals from absolute-speed checks while the ratios it compares were steady.

Why not judge the ratio by the absolute checks. The machine's speed moves 10-40% between
quiet periods with nothing else running (the default matrix read ``foreign_load_cores``
0.008 and 0.015 on two timings the old rule called "a busy machine"), and those moves
land on case and reference alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

RATIO_LIMITS = {"ratio_iqr_over_median": 0.25, "ratio_drift": 1.15}
MACHINE_LIMITS = {"min_over_median": 0.7, "iqr_over_median": 0.25, "reference_drift": 1.25, "reference_vs_run": 1.5,
                  "plain_vs_paired": 1.25}
LIMITS = {**RATIO_LIMITS, **MACHINE_LIMITS}
# A cause is named only when a record shows it: other processes' load or the hypervisor's
# steal above these many cores during the timing (quiet.ForeignLoad measures both).
FOREIGN_CAUSE_CORES = 0.25
STEAL_CAUSE_CORES = 0.05


def _halves_ratio(values: np.ndarray) -> float:
    first, second = float(np.median(values[: len(values) // 2])), float(np.median(values[len(values) // 2:]))
    return max(first, second) / min(first, second)


def assess(samples_ms: Sequence[float], reference_ms: Sequence[float] | None = None,
           run_reference_best_ms: float | None = None, paired_case_ms: Sequence[float] | None = None) -> dict[str, Any]:
    """``{"verdict": "stable" | "unstable", "reasons", "machine": {"verdict": "quiet" | "disturbed",
    "reasons"}, "figures", "limits"}`` for one timing (module docstring)."""
    s = np.asarray(samples_ms, dtype=float)
    median = float(np.median(s))
    q1, q3 = np.percentile(s, [25, 75])
    min_over_median = float(s.min()) / median
    iqr_over_median = float(q3 - q1) / median
    figures: dict[str, float | None] = dict.fromkeys(LIMITS)
    figures.update(min_over_median=min_over_median, iqr_over_median=iqr_over_median)
    if paired_case_ms:
        figures["plain_vs_paired"] = float(median / np.median(paired_case_ms))
    if reference_ms is not None and len(reference_ms) >= 4:
        r = np.asarray(reference_ms, dtype=float)
        figures["reference_drift"] = _halves_ratio(r)
        if run_reference_best_ms:
            figures["reference_vs_run"] = float(np.median(r)) / run_reference_best_ms
        if paired_case_ms is not None and len(paired_case_ms) == len(r):
            ratios = np.asarray(paired_case_ms, dtype=float) / r
            rq1, rq3 = np.percentile(ratios, [25, 75])
            figures["ratio_iqr_over_median"] = float(rq3 - rq1) / float(np.median(ratios))
            figures["ratio_drift"] = _halves_ratio(ratios)
    reasons = []
    if (v := figures["ratio_iqr_over_median"]) is not None and v > LIMITS["ratio_iqr_over_median"]:
        reasons.append(f"the case/reference ratio's interquartile range is {v:.0%} of its median")
    if (v := figures["ratio_drift"]) is not None and v > LIMITS["ratio_drift"]:
        reasons.append(f"the case/reference ratio moved {v:.2f}x between the first and second half of the pairs")
    machine = []
    if min_over_median < LIMITS["min_over_median"]:
        machine.append(f"median {median:.3g} ms is {1 / min_over_median:.2f}x the fastest call")
    if iqr_over_median > LIMITS["iqr_over_median"]:
        machine.append(f"interquartile range is {iqr_over_median:.0%} of the median")
    if (v := figures["reference_drift"]) is not None and v > LIMITS["reference_drift"]:
        machine.append(f"the reference's speed moved {v:.2f}x during the case")
    if (v := figures["reference_vs_run"]) is not None and v > LIMITS["reference_vs_run"]:
        machine.append(f"the reference ran {v:.2f}x slower than in this run's fastest case")
    if (v := figures["plain_vs_paired"]) is not None and v > LIMITS["plain_vs_paired"]:
        machine.append(f"the plain loop's median was {v:.2f}x the case's paired calls right after it:"
                       " the machine was slower during the plain loop")
    return {"verdict": "unstable" if reasons else "stable", "reasons": reasons,
            "machine": {"verdict": "disturbed" if machine else "quiet", "reasons": machine},
            "figures": figures, "limits": dict(LIMITS)}


def cause(foreign_cores: float | None, steal_cores: float | None) -> str:
    """What the records show about why a timing was disturbed; never a cause that was not measured."""
    found = []
    if foreign_cores is not None and foreign_cores >= FOREIGN_CAUSE_CORES:
        found.append(f"other processes kept {foreign_cores:.2f} cores busy")
    if steal_cores is not None and steal_cores >= STEAL_CAUSE_CORES:
        found.append(f"the hypervisor took {steal_cores:.2f} cores (steal time)")
    if found:
        return "; ".join(found)
    if foreign_cores is None:
        return "no load could be measured here (no /proc/stat)"
    return (f"the machine's speed changed with no other load measured (other processes {foreign_cores:.2f} cores,"
            f" steal {steal_cores or 0:.2f} cores)")


def recheck_run(latency_records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """After the run: mark the machine ``disturbed`` for every timing whose reference ran
    ``reference_vs_run`` slower than the run's fastest timing with the same reference.

    During the run a case can only be compared with the cases before it, so a slow period
    at the start of a run is seen only once the machine has been seen fast. The verdict on
    the compared ratio is left as it is. Returns the records it marked.
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
        if not (key in best and med and isinstance(stability, dict)):
            continue
        machine = stability.setdefault("machine", {"verdict": "quiet", "reasons": []})
        ratio = med / best[key]
        if ratio > LIMITS["reference_vs_run"] and machine.get("verdict") != "disturbed":
            machine["verdict"] = "disturbed"
            machine["reasons"] = [*machine.get("reasons", []),
                                  f"the reference ran {ratio:.2f}x slower than in this run's fastest case"
                                  " (found after the run)"]
            marked.append(lat)
    return marked
