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
- **Server:** one reference Offline run after each run of the capacity search; the capacity
  and its bracket are also kept divided by the geometric mean of those (``normalized``).
  (One reference run before and one after the search read 1315-1655 samples/s around
  searches whose raw capacity moved 2%: the machine's speed *during* the search is what
  counts, so the reference is sampled through it.)

A changed backend library moves the reference too (the ratio hides a runtime that got
slower for every model); the run's fingerprint records the libraries, and ``compare``
warns when they differ.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from resnetbench.measure.loadgen import (
    MAX_SERVER_RUN_S,
    SERVER_MIN_QUERIES,
    LoadGenRun,
    StreamSystem,
    find_capacity,
    run_loadgen,
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
                    logdir: Path) -> dict[str, Any]:
    """The Server capacity search (``loadgen.find_capacity``), starting at half the Offline
    throughput (a server under a bound serves less than an unbounded batch), with a reference
    Offline run after each of its runs when a reference is given."""
    counter = iter(range(1_000))
    reference_rates: list[float] = []

    def run_at(qps: float) -> LoadGenRun:
        i = next(counter)
        run = run_loadgen(system, samples, "server", "performance",
                          settings_for("server", "performance", seconds=seconds, min_queries=min_queries,
                                       target_qps=qps, p99_ms=bound_ms),
                          logdir / f"run-{i}", {"target_qps": qps})
        if reference is not None and reference_qps:
            rate = offline_rate(reference, samples, seconds, reference_qps, logdir / f"reference-{i}")
            if rate:
                reference_rates.append(rate)
        return run

    found = find_capacity(run_at, max(0.5 * (offline_qps or 1.0), 0.1),
                          floor_qps=max(min_queries, SERVER_MIN_QUERIES) / MAX_SERVER_RUN_S)
    if reference_rates and len(reference_rates) == len(found["runs"]):
        scale = math.exp(statistics.fmean(math.log(r) for r in reference_rates))
        found["reference_samples_per_s"] = reference_rates
        found["normalized"] = {"qps": _scaled(found["qps"], scale),
                               "bracket": [_scaled(v, scale) for v in found["bracket"]],
                               "runs": [{**r, "target_qps": r["target_qps"] / scale} for r in found["runs"]]}
    return found


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value / scale

