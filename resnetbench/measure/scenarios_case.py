"""One case under MLPerf LoadGen (``test_scenarios``): which split of the threads into streams
serves it best, whether every response is right, and the scenarios the matrix asks for.

1. **Sweep.** Every split of the case's threads into streams x threads (``loadgen.splits_of``)
   serves LoadGen's Offline scenario; the split with the most samples/s is kept, as tuning keeps
   a recipe (``sweep: false``: one stream with every thread).
2. **Accuracy.** LoadGen's accuracy mode sends every sample once to the kept split; each
   response must be the case's own output for its sample (``loadgen.check_responses``). A
   system that drops, duplicates or mixes up responses fails the test with the samples.
3. **Performance.** SingleStream (p90), MultiStream (p99 of 8-sample queries), Offline
   (samples/s, ``repeats`` runs) and Server (the highest QPS with p99 within the bound,
   ``loadgen.find_capacity``) as asked. Offline and Server are paired with the latency
   reference served the same way (``measure/capacity.py``: what the capacity gate compares).
   Server's capacity is also found for the best split on the other side of
   one-stream/multi-stream, so the record compares multi-stream with single-stream.

It all runs alone on the machine (``quiet.exclusive``), like every timing.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnetbench import quiet
from resnetbench.build import load_streams
from resnetbench.environment import set_threads
from resnetbench.measure.accuracy_reference import reference_for
from resnetbench.measure.capacity import DEFAULT_REFINE_RUNS, offline_pairs, server_capacity, throughput
from resnetbench.measure.latency_reference import reference_streams
from resnetbench.measure.loadgen import (
    DEFAULT_SERVER_P99_MS,
    NOT_MLPERF,
    LoadGenError,
    LoadGenRun,
    Split,
    StreamSystem,
    check_responses,
    loadgen,
    read_accuracy_log,
    run_loadgen,
    settings_for,
    splits_of,
)
from resnetbench.measure.outputs import case_outputs

LATENCY_SCENARIOS = ("singlestream", "multistream")  # Offline and Server: measure/capacity.py
ESTIMATE_CALLS = 5


@dataclass
class ScenariosMeasurement:
    """What the scenarios test records, the notes for the case, and why it fails (None: it passed)."""

    record: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    failure: str | None = None


def measure_scenarios(case: Any, built: Any, state: Any) -> ScenariosMeasurement:
    """Steps 1-3 of the module's doc for ``case``."""
    cfg, asked = state.config, state.config.scenarios
    with quiet.shared(state.cache.root):
        reference = reference_for(cfg, case, state.cache, state.memo)
        expected, _ = case_outputs(built, reference.inputs, state)
    images = reference.inputs.images
    recipe = built.tuning.get("recipe")
    lg = loadgen()
    record: dict[str, Any] = {
        "mlperf_valid": False,
        "why_not_mlperf": NOT_MLPERF.format(seconds=asked.seconds, samples=int(images.shape[0])),
        "loadgen_version": _loadgen_version(lg),
        "recipe": recipe,
        "seconds": asked.seconds, "min_queries": asked.min_queries,
    }

    @contextlib.contextmanager
    def system(split: Split) -> Iterator[StreamSystem]:
        set_threads(split.threads)  # eager and TorchScript: every stream's calls use this many threads
        runners = load_streams(cfg, case, state.cache, split.threads, recipe, split.streams)
        served = StreamSystem(runners, images, case.batch)
        try:
            yield served
        finally:
            served.close()

    @contextlib.contextmanager
    def reference_system(split: Split) -> Iterator[tuple[StreamSystem, Any]]:
        """The latency reference served the same way (measure/capacity.py: what the gate pairs with).
        Built inside the exclusive section: a shared lock here would wait for this process's own."""
        runners, workload = reference_streams(case.backend, case.batch, cfg.input_size, state.threads,
                                              state.cache, case.dtype, case.compression, recipe, split.streams,
                                              split.threads)
        served = StreamSystem(runners, images, case.batch)
        try:
            yield served, workload
        finally:
            served.close()

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="resnetbench-loadgen-") as tmp, quiet.exclusive(state.cache.root):
        logs = Path(tmp)
        try:
            return _measure(case, asked, images, expected, system, reference_system, logs, record, start,
                            state.threads)
        except LoadGenError as exc:
            record["error"] = str(exc)
            return ScenariosMeasurement(record, failure=f"{case.id}: LoadGen: {exc}")
        finally:
            set_threads(state.threads)


def _measure(case: Any, asked: Any, images: Any, expected: Any, system: Any, reference_system: Any, logs: Path,
             record: dict[str, Any], start: float, threads: int) -> ScenariosMeasurement:
    samples = int(images.shape[0])
    candidates = splits_of(threads, case.batch) if asked.sweep else [Split(1, threads, case.batch)]
    swept = []
    for split in candidates:
        with system(split) as served:
            estimate = _estimate_qps(served, split, images)
            run = run_loadgen(served, samples, "offline", "performance",
                              settings_for("offline", "performance", seconds=asked.seconds, min_queries=1,
                                           target_qps=estimate),
                              logs / f"sweep-{split.streams}x{split.threads}", {"target_qps": estimate})
        swept.append((split, run))
    record["splits"] = [{**split.to_dict(), "offline_samples_per_s": throughput(run), "estimate_qps": run.asked["target_qps"]}
                        for split, run in swept]
    kept, kept_run = max(swept, key=lambda sr: throughput(sr[1]) or 0.0)
    record["kept"] = {**kept.to_dict(), "how": "the most Offline samples/s of the splits swept" if len(swept) > 1
                      else "the only split tried (sweep: false, or one thread)"}

    with system(kept) as served:
        run = run_loadgen(served, samples, "offline", "accuracy",
                          settings_for("offline", "accuracy", seconds=asked.seconds, min_queries=1,
                                       target_qps=kept_run.asked["target_qps"]),
                          logs / "accuracy", {"target_qps": kept_run.asked["target_qps"]})
        accuracy = check_responses(read_accuracy_log(run.logdir / "mlperf_log_accuracy.json"), expected)
        record["accuracy"] = accuracy
        expected_ms = 1000.0 * kept.streams / kept_run.asked["target_qps"]
        for scenario in LATENCY_SCENARIOS:
            if getattr(asked, scenario) is not None:
                run = run_loadgen(served, samples, scenario, "performance",
                                  settings_for(scenario, "performance", seconds=asked.seconds,
                                               min_queries=asked.min_queries, expected_ms=expected_ms),
                                  logs / scenario, {"target_qps": None})
                record[scenario] = run.summary()
        if asked.offline is not None or asked.server is not None:
            kept_rate = throughput(kept_run) or kept_run.asked["target_qps"]
            with reference_system(kept) as (ref_served, workload):
                ref_rate = _estimate_qps(ref_served, kept, images)
                record["reference"] = {"key": workload.key, "description": workload.description}
                if asked.offline is not None:
                    record["offline"] = offline_pairs(served, ref_served, samples, asked.repeats, asked.seconds,
                                                      (kept_rate, ref_rate), logs / "offline")
                if asked.server is not None:
                    bound = float(asked.server.get("p99_ms", DEFAULT_SERVER_P99_MS))
                    record["server"] = {"p99_bound_ms": bound, "split": kept.to_dict(),
                                        **server_capacity(served, ref_served, samples, seconds=asked.seconds,
                                                          min_queries=asked.min_queries, bound_ms=bound,
                                                          offline_qps=kept_rate, reference_qps=ref_rate,
                                                          logdir=logs / "server",
                                                          refine_runs=int(asked.server.get("refine_runs",
                                                                                           DEFAULT_REFINE_RUNS)))}
                    record["capacity_qps"] = record["server"]["qps"]
    if asked.server is not None:
        other = _best_other_side(swept, kept)
        if other is not None:
            split, run = other
            with system(split) as served:
                record["server"]["compared"] = {
                    "split": split.to_dict(),
                    **server_capacity(served, None, samples, seconds=asked.seconds, min_queries=asked.min_queries,
                                      bound_ms=record["server"]["p99_bound_ms"], offline_qps=throughput(run),
                                      reference_qps=None, logdir=logs / "server-compared")}
    record["seconds_total"] = round(time.perf_counter() - start, 2)
    notes = [f"LoadGen: kept {kept.label} ({_fmt(throughput(kept_run))} samples/s Offline)"
             + (f"; Server {_fmt(record['capacity_qps'])} QPS within p99 {record['server']['p99_bound_ms']:g} ms"
                if "server" in record else "")]
    failure = None
    if accuracy["verdict"] != "passed":
        failure = f"{case.id}: LoadGen's responses are wrong: {accuracy['reason']}"
    elif "server" in record and record["capacity_qps"] is None:
        notes.append(f"LoadGen Server: {record['server']['reason']}")
    return ScenariosMeasurement(record, notes, failure)


def _best_other_side(swept: list[tuple[Split, LoadGenRun]], kept: Split) -> tuple[Split, LoadGenRun] | None:
    """The fastest split with one stream if ``kept`` has several, else the fastest with several."""
    others = [(s, r) for s, r in swept if (s.streams > 1) != (kept.streams > 1)]
    return max(others, key=lambda sr: throughput(sr[1]) or 0.0) if others else None


def _estimate_qps(served: StreamSystem, split: Split, images: Any) -> float:
    """Samples/s the split might serve, from a few serial calls: LoadGen sizes its Offline query
    and its SingleStream schedule from it (what ran is then measured, not estimated)."""
    runner = served.runners[0]
    x = images[: split.batch]
    seconds = []
    for _ in range(ESTIMATE_CALLS):
        t = time.perf_counter()
        runner.to_logits(runner.run(runner.prepare(x)))
        seconds.append(time.perf_counter() - t)
    return split.streams * split.batch / max(statistics.median(seconds[1:]), 1e-6)


def _loadgen_version(lg: Any) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlcommons-loadgen")
    except PackageNotFoundError:
        return getattr(lg, "__version__", "unknown")


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"
