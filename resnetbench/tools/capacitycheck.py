"""``resnetbench gate-check --capacity``: the capacity gate's own error rates, measured here.

The capacity gate (``compare/capacity.py``) compares LoadGen's Offline throughput (``repeats``
runs per side) and Server capacity (a search's bracket) between a baseline and a current run.
This command checks its rules on real LoadGen runs of one small case:

1. Build the case (through the artifact cache) and load ``streams`` runners of it; a second
   system wraps the same runners in ``SlowedRunner`` (``gatecheck.py``: each call does the real
   work, then keeps the cores busy for ``slowdown`` times as long), i.e. a system needing 20%
   more compute.
2. ``trials + 1`` times: ``repeats`` Offline runs and one Server capacity search of the
   unchanged system (A), then the same of the slowed system (S), in a seeded random order,
   each paired with the latency reference as ``test_scenarios`` pairs a case
   (``measure/capacity.py``: ``offline_pairs``, ``server_capacity``).
3. Trial ``i`` compares A_i with A_(i+1) (A/A: any blocking decision is a false alarm) and
   A_i with S_i (the slowdown: a blocking decision is a catch). Each goes through
   ``compare/capacity.py``'s ``capacity_checks``, exactly as ``resnetbench compare`` does.

Targets (``CAPACITY_TARGETS``): A/A false alarms at most 1 in 100, a 20% slower system caught
at least 95 times in 100, for Offline and for Server. Every run is a real LoadGen run of a
real backend, scaled to seconds: the figures describe the rules on this machine's noise, not
MLPerf results. Like ``gate-check``'s latency pairs, all runs share one process, so the noise
between processes a real baseline-vs-current comparison has is not sampled.

Example::

    resnetbench gate-check --capacity --arch resnet18 --backends openvino --input-size 32 \\
        --trials 100 --json reports/capacity-check.json
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from resnetbench.compare.capacity import capacity_checks
from resnetbench.measure.capacity import DEFAULT_REFINE_RUNS
from resnetbench.settings import GateSettings

CAPACITY_TARGETS: dict[str, float] = {"false_alarm_rate_max": 0.01, "detection_rate_min": 0.95}
BLOCKING_STATUSES = ("regressed", "inconclusive")
QUANTITIES = ("offline", "server")


def _systems(arch: str, backend: str, family: str, input_size: int, cache_dir: Path, streams: int, threads: int,
             slowdown: float, samples: int, seed: int) -> tuple[Any, Any, Any, torch.Tensor, str, str]:
    """The unchanged and the slowed system under test, the latency reference served the same
    way (what the gate pairs with: ``measure/capacity.py``), the inputs, the case id and the
    reference's key."""
    from resnetbench.build import build_case, load_streams
    from resnetbench.cache import ArtifactCache
    from resnetbench.config import Config
    from resnetbench.environment import set_threads
    from resnetbench.matrix import Case
    from resnetbench.measure.latency_reference import reference_streams
    from resnetbench.measure.loadgen import StreamSystem
    from resnetbench.tools.slowdown import SlowedRunner, parse_family, pool_busy_wait

    dtype, compression = parse_family(family)
    config = Config(path=Path("<gate-check --capacity>"), matrix={}, input_size=input_size)
    case = Case(arch, dtype, compression, backend, 1)
    cache = ArtifactCache(cache_dir)
    built = build_case(config, case, cache, streams * threads, tune=False)
    recipe = built.tuning["recipe"]
    set_threads(threads)
    runners = load_streams(config, case, cache, threads, recipe, streams)
    reference_runners, workload = reference_streams(backend, 1, input_size, streams * threads, cache, dtype,
                                                    compression, recipe, streams, threads)
    images = torch.randn(samples, 3, input_size, input_size, generator=torch.Generator().manual_seed(seed))
    unchanged = StreamSystem(runners, images)
    # The wait computes in PyTorch with the stream's threads, releasing the GIL: a pure-Python
    # spin holds it, stalls the other streams' calls, and slowed 2 ONNX Runtime streams by
    # 42% for an injected 20% (100 trials here).
    slowed = StreamSystem([SlowedRunner(r, slowdown, pool_busy_wait) for r in runners], images)
    return unchanged, slowed, StreamSystem(reference_runners, images), images, case.id, workload.key


def measure_side(system: Any, reference: Any, samples: int, repeats: int, seconds: float, p99_ms: float | None,
                 logdir: Path, min_queries: int, estimates: tuple[float, float], refine_runs: int = 0) -> dict[str, Any]:
    """``repeats`` paired Offline runs and one Server capacity search of ``system``, as
    ``test_scenarios`` measures a case (``measure/capacity.py``)."""
    from resnetbench.measure.capacity import offline_pairs, server_capacity

    side = {"offline": offline_pairs(system, reference, samples, repeats, seconds, estimates, logdir / "offline")}
    if p99_ms is not None:
        side["server"] = {"p99_bound_ms": p99_ms, **server_capacity(
            system, reference, samples, seconds=seconds, min_queries=min_queries, bound_ms=p99_ms,
            offline_qps=side["offline"]["samples_per_s"], reference_qps=estimates[1], logdir=logdir / "server",
            refine_runs=refine_runs)}
    return side


def compare_sides(base: dict[str, Any], cur: dict[str, Any], threshold: float, reference_key: str,
                  quantities: tuple[str, ...] = QUANTITIES) -> dict[str, str]:
    """The gate's status for Offline and (when measured) Server, through ``compare``'s own rules."""
    def case(side: dict[str, Any]) -> dict[str, Any]:
        return {"scenarios": {**side, "reference": {"key": reference_key}}}

    checks = capacity_checks(case(base), case(cur), threshold, "gate-check")
    return {c["name"]: c["status"] for c in checks if c["status"] != "n/a" and c["name"] in quantities}


def _probe(system: Any, samples: int) -> float:
    """A first Offline rate, untimed by the check: LoadGen's expected rate for the first runs."""
    from resnetbench.measure.capacity import offline_rate

    with tempfile.TemporaryDirectory(prefix="resnetbench-probe-") as tmp:
        return offline_rate(system, samples, 0.3, 100.0, Path(tmp)) or 100.0


def summarize(comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates per kind (A/A, slowed) and quantity (offline, server), and the targets missed."""
    out: dict[str, Any] = {"failures": []}
    for kind in ("aa", "slowed"):
        rows = [c for c in comparisons if c["kind"] == kind]
        out[kind] = {}
        for quantity in QUANTITIES:
            statuses = [r["status"][quantity] for r in rows if quantity in r["status"]]
            blocking = sum(s in BLOCKING_STATUSES for s in statuses)
            out[kind][quantity] = {"n": len(statuses), "blocking": blocking, "regressed": statuses.count("regressed"),
                                   "inconclusive": statuses.count("inconclusive"),
                                   "rate": blocking / len(statuses) if statuses else None}
    for quantity in QUANTITIES:
        aa, slowed = out["aa"][quantity], out["slowed"][quantity]
        if aa["n"] == slowed["n"] == 0:
            continue  # not measured (--no-server)
        if aa["n"] < 100 or slowed["n"] < 100:
            out["failures"].append(f"{quantity}: {aa['n']} A/A and {slowed['n']} slowed comparisons (need 100 each)")
        if aa["rate"] is not None and aa["rate"] > CAPACITY_TARGETS["false_alarm_rate_max"]:
            out["failures"].append(f"{quantity}: A/A false alarms {aa['blocking']}/{aa['n']} "
                                   f"(at most {CAPACITY_TARGETS['false_alarm_rate_max']:.0%})")
        if slowed["rate"] is not None and slowed["rate"] < CAPACITY_TARGETS["detection_rate_min"]:
            out["failures"].append(f"{quantity}: slowed system caught {slowed['blocking']}/{slowed['n']} "
                                   f"(at least {CAPACITY_TARGETS['detection_rate_min']:.0%})")
    return out


def run_capacity_check(arch: str, backend: str, family: str, input_size: int, trials: int, *, cache_dir: Path,
                       streams: int = 2, threads: int = 1, slowdown: float = 0.20, repeats: int = 5,
                       seconds: float = 0.5, p99_ms: float | None = 15.0, min_queries: int = 460, samples: int = 64,
                       threshold: float | None = None, seed: int = 0, offline: bool = True,
                       refine_runs: int = DEFAULT_REFINE_RUNS,
                       progress: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Steps 1-3 of the module's doc; returns every side measured, every comparison and the summary.
    ``offline=False`` (Server only): one Offline pair per side, to start the search, not compared."""
    threshold = GateSettings().capacity_threshold if threshold is None else threshold
    repeats = repeats if offline else 1
    quantities = QUANTITIES if offline else ("server",)
    unchanged, slowed, reference, images, case_id, reference_key = _systems(
        arch, backend, family, input_size, cache_dir, streams, threads, slowdown, samples, seed)
    rng = random.Random(seed)
    sides: list[dict[str, Any]] = []
    # LoadGen sizes an Offline query from the expected rate: each system's last Offline median
    estimates = {"A": _probe(unchanged, len(images)), "S": _probe(slowed, len(images)),
                 "R": _probe(reference, len(images))}
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="resnetbench-capacity-check-") as tmp:
            for trial in range(trials + 1):
                order = ["A", "S"] if trial == trials else rng.sample(["A", "S"], 2)
                measured: dict[str, Any] = {}
                for which in order:
                    if which == "S" and trial == trials:
                        continue  # the last trial only needs A, as the A/A partner of the one before
                    system = unchanged if which == "A" else slowed
                    measured[which] = measure_side(system, reference, len(images), repeats, seconds, p99_ms,
                                                   Path(tmp) / f"{trial}-{which}", min_queries,
                                                   (estimates[which], estimates["R"]), refine_runs)
                    estimates[which] = measured[which]["offline"]["samples_per_s"] or estimates[which]
                sides.append(measured)
                progress(f"trial {trial + 1}/{trials + 1}: " + "; ".join(
                    f"{w} offline {m['offline']['samples_per_s'] or 0:.0f}/s"
                    f" (x{statistics.median(m['offline'].get('ratios') or [0]):.3f} reference)"
                    + (f", server {m['server']['qps'] or 0:.0f} QPS (crossing x"
                       f"{(m['server'].get('normalized') or {}).get('crossing_qps') or 0:.3f} reference)"
                       if "server" in m else "")
                    for w, m in sorted(measured.items())))
    finally:
        for system in (unchanged, slowed, reference):
            system.close()
    comparisons = []
    for i in range(trials):
        for kind, cur in (("aa", sides[i + 1]["A"]), ("slowed", sides[i]["S"])):
            comparisons.append({"kind": kind, "trial": i,
                                "status": compare_sides(sides[i]["A"], cur, threshold, reference_key, quantities)})
    # what the injected slowdown did to throughput: A's Offline median over S's, per trial
    ratios = [t["A"]["offline"]["samples_per_s"] / t["S"]["offline"]["samples_per_s"] for t in sides
              if "S" in t and t["A"]["offline"]["samples_per_s"] and t["S"]["offline"]["samples_per_s"]]
    return {"case": case_id, "reference": reference_key, "measured_slowdown": statistics.median(ratios) - 1 if ratios else None, "settings": {"streams": streams, "threads": threads, "slowdown": slowdown,
                                          "repeats": repeats, "seconds": seconds, "p99_ms": p99_ms, "offline": offline, "refine_runs": refine_runs,
                                          "min_queries": min_queries, "threshold": threshold, "trials": trials,
                                          "samples": len(images), "seed": seed},
            "sides": sides, "comparisons": comparisons, "summary": summarize(comparisons),
            "wall_s": round(time.perf_counter() - start, 1), "targets": CAPACITY_TARGETS}


def format_summary(result: dict[str, Any]) -> str:
    s, summary = result["settings"], result["summary"]
    server = f" and one Server search of p99 <= {s['p99_ms']:g} ms" if s["p99_ms"] else ""
    lines = [f"capacity gate-check: {result['case']}, {s['streams']} streams x {s['threads']} threads, "
             f"{s['trials']} trials ({s['repeats']} Offline runs{server} per side, {s['seconds']:g} s runs"
             f"{'' if s.get('offline', True) else '; Offline not compared'}), "
             f"threshold {s['threshold']:.0%}, slowdown {s['slowdown']:.0%} injected, "
             f"{(result['measured_slowdown'] or 0):.1%} measured (Offline medians), {result['wall_s']:.0f} s"]
    for quantity in QUANTITIES:
        aa, slowed = summary["aa"][quantity], summary["slowed"][quantity]
        if not aa["n"]:
            continue
        lines.append(f"  {quantity:8s} A/A false alarms {aa['blocking']}/{aa['n']} ({aa['inconclusive']} inconclusive); "
                     f"{s['slowdown']:.0%} slower caught {slowed['blocking']}/{slowed['n']} "
                     f"({slowed['regressed']} regressed, {slowed['inconclusive']} inconclusive)")
    lines.append("capacity gate-check: " + ("targets met" if not summary["failures"]
                                           else "targets MISSED: " + "; ".join(summary["failures"])))
    return "\n".join(lines)
