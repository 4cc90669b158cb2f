"""Offline throughput and Server capacity that the gate can compare across runs: each paired
with the latency reference's own LoadGen runs (``compare/capacity.py`` decides on them).

Why pairs. An unchanged ResNet-18's Offline throughput read 1226-1670 samples/s across the
100 trials of ``gate-check --capacity`` (2 ONNX Runtime streams, runs 8 s apart): this
machine's speed moves in steps, as the latency reference's docstring measured for latency.
Compared raw, 8 of 100 A/A pairs blocked at a 10% threshold. So, as for latency, a
fixed reference (``measure.latency_reference``: ResNet-18 with seeded weights, on the case's
backend, arithmetic family, batch and input size, loaded with the case's split of streams
and threads) serves LoadGen right beside the case:

- **Offline:** ``repeats`` pairs of [case run, reference run]; the gate reads each pair's
  ratio of samples/s, in which the machine's speed of that moment cancels.
- **Server:** one reference Offline run before the capacity search and one after each of its
  runs; the capacity and its bracket are also kept divided by the geometric mean of those
  (``normalized``).
  (One reference run before and one after the search read 1315-1655 samples/s around
  searches whose raw capacity moved 2%: the machine's speed *during* the search is what
  counts, so the reference is sampled through it.)
- **Server, what the gate compares:** ``crossing_qps``, the rate at which the search's runs
  cross the p99 bound (``crossing_rate``), each run's rate divided by the reference runs
  right before and after it (their geometric mean). The search's answer (its last VALID
  rate) hangs on single runs: near the capacity, whether a few hundred queries all stay
  under the bound is close to a coin toss, and one pause of the machine fails a run. Over
  the 101 searches of an unchanged ResNet-18 in ``gate-check --capacity --no-offline`` here
  (docs/results/2026-12-06-capacity-gate.md), with 12 staircase runs, the normalised
  crossing had an sd of 0.015 and the VALID rate of the same searches 0.031; the gate on the
  crossing raised 0 false alarms in 100 and caught 99 in 100 systems 20% slower (2 and 98
  on the VALID rate). With 6 staircase runs: sd 0.023, 1 false alarm, 94 caught.

A changed backend library moves the reference too (the ratio hides a runtime that got
slower for every model); the run's fingerprint records the libraries, and ``compare``
warns when they differ.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnetbench.measure.loadgen import (
    MAX_SERVER_RUN_S,
    SERVER_MIN_QUERIES,
    LoadGenRun,
    StreamSystem,
    find_capacity,
    run_loadgen,
    server_run_record,
    settings_for,
)


def offline_run(system: StreamSystem, samples: int, seconds: float, expected_qps: float, logdir: Path) -> LoadGenRun:
    """One LoadGen Offline run (LoadGen sizes its one query from ``expected_qps``)."""
    return run_loadgen(system, samples, "offline", "performance",
                       settings_for("offline", "performance", seconds=seconds, min_queries=1, target_qps=expected_qps),
                       logdir, {"target_qps": expected_qps})


def offline_rate(system: StreamSystem, samples: int, seconds: float, expected_qps: float, logdir: Path) -> float | None:
    """Samples/s of one LoadGen Offline run."""
    return throughput(offline_run(system, samples, seconds, expected_qps, logdir))


def throughput(run: LoadGenRun) -> float | None:
    value = run.result("samples_per_second") or run.result("completed_samples_per_sec")
    return None if value is None else float(value)


def offline_pairs(system: StreamSystem, reference: StreamSystem | None, samples: int, repeats: int, seconds: float,
                  expected: tuple[float, float], logdir: Path) -> dict[str, Any]:
    """``repeats`` Offline runs of ``system``, each followed by one of ``reference`` (when given)."""
    case_runs: list[float] = []
    reference_runs: list[float] = []
    first: dict[str, Any] = {}
    for i in range(repeats):
        run = offline_run(system, samples, seconds, expected[0], logdir / f"offline-{i}")
        first = first or run.summary()
        rate = throughput(run)
        if rate is not None:
            case_runs.append(rate)
        if reference is not None:
            ref = offline_rate(reference, samples, seconds, expected[1], logdir / f"offline-reference-{i}")
            if ref is not None and rate is not None:
                reference_runs.append(ref)
    out: dict[str, Any] = {**first, "runs_samples_per_s": case_runs,
                           "samples_per_s": statistics.median(case_runs) if case_runs else None}
    if reference is not None and len(reference_runs) == len(case_runs):
        out["reference_samples_per_s"] = reference_runs
        out["ratios"] = [c / r for c, r in zip(case_runs, reference_runs, strict=True) if r > 0]
    return out


def server_capacity(system: StreamSystem, reference: StreamSystem | None, samples: int, *, seconds: float,
                    min_queries: int, bound_ms: float, offline_qps: float | None, reference_qps: float | None,
                    logdir: Path, refine_runs: int = 0) -> dict[str, Any]:
    """The Server capacity search (``loadgen.find_capacity``), starting at half the Offline
    throughput (a server under a bound serves less than an unbounded batch), then
    ``refine_runs`` more runs around the crossing (``refine_crossing``). With a reference, one
    reference Offline run comes before the first run and one after every run, so each run is
    normalised by the reference runs on both sides of it."""
    counter = iter(range(1_000))
    reference_rates: list[float | None] = []

    def reference_run(name: str) -> None:
        if reference is not None and reference_qps:
            reference_rates.append(offline_rate(reference, samples, seconds, reference_qps, logdir / name))

    def run_at(qps: float) -> LoadGenRun:
        i = next(counter)
        run = run_loadgen(system, samples, "server", "performance",
                          settings_for("server", "performance", seconds=seconds, min_queries=min_queries,
                                       target_qps=qps, p99_ms=bound_ms),
                          logdir / f"run-{i}", {"target_qps": qps})
        reference_run(f"reference-{i}")
        return run

    reference_run("reference-start")
    found = find_capacity(run_at, max(0.5 * (offline_qps or 1.0), 0.1),
                          floor_qps=max(min_queries, SERVER_MIN_QUERIES) / MAX_SERVER_RUN_S,
                          ceiling_qps=1.25 * offline_qps if offline_qps else None)
    refine_crossing(run_at, found, bound_ms, refine_runs)
    found["crossing_qps"] = crossing_rate([(r["target_qps"], r["p99_ms"]) for r in found["runs"]], bound_ms)
    rates = [r for r in reference_rates if r]
    if found["runs"] and len(rates) == len(found["runs"]) + 1:
        scale = math.exp(statistics.fmean(math.log(r) for r in rates))
        around = [math.sqrt(before * after) for before, after in itertools.pairwise(rates)]  # one per run
        found["reference_samples_per_s"] = rates
        found["normalized"] = {
            "qps": _scaled(found["qps"], scale),
            "bracket": [_scaled(v, scale) for v in found["bracket"]],
            "runs": [{**r, "target_qps": r["target_qps"] / scale} for r in found["runs"]],
            "crossing_qps": crossing_rate([(r["target_qps"] / ref, r["p99_ms"])
                                           for r, ref in zip(found["runs"], around, strict=True)], bound_ms),
        }
    return found


REFINE_STEP = 1.03
# 6 runs left the crossing's sd at 2-3 points and the gate caught 94 in 100 systems 20% slower;
# 12 brought it to 1.5 and 99 in 100, for about 3 s more per search (100 trials each, measured).
DEFAULT_REFINE_RUNS = 12


def refine_crossing(run_at: Callable[[float], LoadGenRun], found: dict[str, Any], bound_ms: float, count: int) -> None:
    """``count`` more runs of a finished search, appended to its runs, placed as an up-and-down
    staircase (Dixon and Mood): the next run is 3% faster after a run within the bound and 3%
    slower after one over it, starting at the crossing so far. A bisection leaves 3-4 runs
    near the crossing and spends the rest finding it; a staircase spends every run there,
    where each one's vote counts (``crossing_rate``). The search's bracket and VALID rate are
    left as LoadGen found them."""
    level = crossing_rate([(r["target_qps"], r["p99_ms"]) for r in found["runs"]], bound_ms)
    for _ in range(count if level else 0):
        assert level is not None
        run = run_at(level)
        found["runs"].append({**server_run_record(run), "refine": True})
        found["seconds"] = round(found["seconds"] + run.seconds, 2)
        p99 = run.percentile_ms(99.0)
        level = level * REFINE_STEP if p99 is not None and p99 <= bound_ms else level / REFINE_STEP


def crossing_rate(runs: list[tuple[float, float | None]], bound_ms: float) -> float | None:
    """Where a capacity search's runs, as (rate, p99 ms), cross the p99 bound: the cut that
    leaves the fewest runs on the wrong side (within the bound above it, over it below it),
    halfway between the runs around it; the median cut when several tie. A run with no p99
    counts as over. None when no run was within the bound; the highest rate when none was
    over (the capacity is at least that).

    Every run votes, so one paused run moves the answer by one run's place, not to wherever
    the search went after it.
    """
    # at one rate, runs within the bound sort first: a cut between a pass and a fail there is that rate
    ordered = sorted(((rate, p99 is not None and p99 <= bound_ms) for rate, p99 in runs), key=lambda r: (r[0], not r[1]))
    if not any(within for _, within in ordered):
        return None
    # cut k: the first k runs are taken as within the bound, the rest as over
    wrong = [sum(not w for _, w in ordered[:k]) + sum(w for _, w in ordered[k:]) for k in range(len(ordered) + 1)]
    best = [k for k, n in enumerate(wrong) if n == min(wrong)]
    k = best[(len(best) - 1) // 2]
    if k == 0:
        return None
    if k == len(ordered):
        return ordered[-1][0]
    return (ordered[k - 1][0] + ordered[k][0]) / 2


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value / scale

