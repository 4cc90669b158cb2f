"""MLPerf LoadGen's scenarios against a case: the system under test, LoadGen runs and their logs,
the check of every response, and the Server capacity search.

LoadGen (``mlcommons-loadgen``) issues the queries, keeps the clock and computes the
percentiles, early stopping and validity; this module only answers its queries and reads its
logs. The system under test is the backend's own runner, ``streams`` copies of it, each on a
thread of its own with ``threads`` intra-op threads (``Backend.load_streams``: by default an
independent load per stream, such as an ONNX Runtime session or an interpreter; OpenVINO: one
compiled model with that many CPU streams and two infer requests per stream; eager PyTorch
and TorchScript: the module called from ``streams`` threads, each call with ``threads``
threads).

Each response carries the sample's logits (float32). LoadGen's accuracy mode logs every
response; ``check_responses`` compares each with the case's own output for that sample, so a
system that drops, duplicates or mixes up responses fails with the samples it got wrong.

These runs last seconds, not MLPerf's 600 s, and use the case's inputs, not ImageNet's
validation set: their figures are not MLPerf results, and the record says so.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

NOT_MLPERF = ("not a valid MLPerf result: runs last {seconds:g} s with the case's own {samples} inputs, where MLPerf "
              "requires 600 s runs, its query counts and the ImageNet validation set")
# LoadGen's Server scenario for ResNet-50 (MLPerf Inference): p99 within 15 ms.
DEFAULT_SERVER_P99_MS = 15.0
MULTISTREAM_SAMPLES = 8  # MLPerf's samples per MultiStream query
# LoadGen's early stopping proves a p99 within the bound only from 459 queries with none over
# it: fewer, and no Server run can be VALID (measured with LoadGen 6.0.17).
SERVER_MIN_QUERIES = 460
MAX_HALVINGS = 4
# The longest a Server run may take (its minimum queries at the target rate): the search's floor.
MAX_SERVER_RUN_S = 30.0


class LoadGenError(RuntimeError):
    """LoadGen cannot run here (not installed) or a run left no usable log."""


def loadgen() -> Any:
    try:
        import mlperf_loadgen
    except ImportError as exc:
        raise LoadGenError("MLPerf LoadGen is not installed: pip install 'resnetbench[scenarios]' "
                           "(the mlcommons-loadgen wheel)") from exc
    return mlperf_loadgen


@dataclass(frozen=True)
class Split:
    """How the machine's threads serve queries: ``streams`` runners, ``threads`` each, ``batch``
    samples a call."""

    streams: int
    threads: int
    batch: int = 1

    @property
    def label(self) -> str:
        return f"{self.streams} stream{'s' * (self.streams > 1)} x {self.threads} thread{'s' * (self.threads > 1)}" \
               f", batch {self.batch}"

    def to_dict(self) -> dict[str, int]:
        return {"streams": self.streams, "threads": self.threads, "batch": self.batch}


def splits_of(cores: int, batch: int = 1) -> list[Split]:
    """Every way to split ``cores`` threads into equal streams: 1 x cores, ..., cores x 1."""
    return [Split(s, cores // s, batch) for s in range(1, cores + 1) if cores % s == 0]


class StreamSystem:
    """The system under test: one runner per stream, each on its own thread, taking queued
    samples (up to ``batch`` at a time) and answering each with its logits.

    ``issue`` only queues, as LoadGen asks of a SUT: the issuing thread is LoadGen's clock.
    """

    def __init__(self, runners: Sequence[Any], images: torch.Tensor, batch: int = 1) -> None:
        self.runners, self.images, self.batch = list(runners), images, batch
        self.pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.errors: list[str] = []
        self.lg = loadgen()
        self.workers = [threading.Thread(target=self._serve, args=(runner,), daemon=True) for runner in self.runners]
        for worker in self.workers:
            worker.start()

    def issue(self, samples: list[Any]) -> None:
        for sample in samples:
            self.pending.put(sample)

    def flush(self) -> None:
        """LoadGen's flush: nothing is held back (samples are served as they come)."""

    def close(self) -> None:
        for _ in self.workers:
            self.pending.put(None)
        for worker in self.workers:
            worker.join(timeout=60)

    def _take(self) -> list[Any] | None:
        first = self.pending.get()
        if first is None:
            return None
        taken = [first]
        while len(taken) < self.batch:  # whatever is already queued, never waiting for more
            try:
                more = self.pending.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self.pending.put(None)  # another worker's stop
                break
            taken.append(more)
        return taken

    def _serve(self, runner: Any) -> None:
        while (taken := self._take()) is not None:
            try:
                index = [s.index for s in taken]
                x = self.images[index]
                if len(index) < self.batch:  # a fixed-shape artifact: pad the batch with the last sample
                    x = torch.cat([x, x[-1:].expand(self.batch - len(index), *x.shape[1:])])
                logits = runner.to_logits(runner.run(runner.prepare(x)))[: len(index)]
                rows = np.ascontiguousarray(logits.detach().float().numpy(), dtype=np.float32)
            except Exception as exc:  # noqa: BLE001  (the run reports it; LoadGen must still get its answers)
                self.errors.append(f"{type(exc).__name__}: {exc}")
                rows = np.full((len(taken), 1), np.nan, dtype=np.float32)
            self.respond(taken, rows)

    def respond(self, samples: list[Any], rows: np.ndarray) -> None:
        """Answer each sample with its row of logits (the array lives until LoadGen has copied it)."""
        responses = [self.lg.QuerySampleResponse(s.id, row.ctypes.data, row.nbytes) for s, row in zip(samples, rows, strict=True)]
        self.lg.QuerySamplesComplete(responses)


@dataclass(frozen=True)
class LoadGenRun:
    """One LoadGen run: what was asked, and the results it logged."""

    scenario: str
    mode: str
    asked: dict[str, Any]
    log: dict[str, Any]  # the detail log's keys and their last values
    seconds: float
    logdir: Path

    def result(self, key: str) -> Any:
        return self.log.get(f"result_{key}")

    def percentile_ms(self, percentile: float) -> float | None:
        ns = self.result(f"{percentile:.2f}_percentile_latency_ns")
        return None if ns is None else ns / 1e6

    @property
    def valid(self) -> bool:
        return self.result("validity") == "VALID"

    @property
    def early_stopping(self) -> str:
        return " ".join(str(self.log.get("early_stopping_result", "")).split())

    def summary(self) -> dict[str, Any]:
        """The figures a record keeps."""
        out: dict[str, Any] = {
            "scenario": self.scenario, "asked": self.asked, "seconds": round(self.seconds, 3),
            "loadgen_validity": self.result("validity"),
            "loadgen_invalid_reason": self.result("invalid_reason") or None,
            "early_stopping_met": self.log.get("early_stopping_met"),
            "early_stopping": self.early_stopping or None,
            "queries": self.result("query_count"),
            "samples_per_s": self.result("samples_per_second") or self.result("completed_samples_per_sec"),
            "scheduled_samples_per_s": self.result("scheduled_samples_per_sec"),
            "p50_ms": self.percentile_ms(50.0), "p90_ms": self.percentile_ms(90.0), "p99_ms": self.percentile_ms(99.0),
            "errors": self.log.get("num_errors"),
        }
        return {k: v for k, v in out.items() if v is not None}


def read_detail_log(path: Path) -> dict[str, Any]:
    """The detail log's ``:::MLLOG {json}`` lines as key -> last value."""
    if not path.exists():
        raise LoadGenError(f"LoadGen wrote no {path.name} in {path.parent}")
    values: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(":::MLLOG "):
            try:
                entry = json.loads(line[len(":::MLLOG "):])
            except json.JSONDecodeError:
                continue
            values[entry.get("key", "")] = entry.get("value")
    return values


def settings_for(scenario: str, mode: str, *, seconds: float, min_queries: int, target_qps: float | None = None,
                 p99_ms: float = DEFAULT_SERVER_P99_MS, expected_ms: float | None = None, seed: int = 0) -> Any:
    """LoadGen's TestSettings for one scaled-down run (MLPerf's own defaults ask for 600 s)."""
    lg = loadgen()
    s = lg.TestSettings()
    s.scenario = {"singlestream": lg.TestScenario.SingleStream, "multistream": lg.TestScenario.MultiStream,
                  "offline": lg.TestScenario.Offline, "server": lg.TestScenario.Server}[scenario]
    s.mode = {"performance": lg.TestMode.PerformanceOnly, "accuracy": lg.TestMode.AccuracyOnly}[mode]
    if scenario == "server":
        min_queries = max(min_queries, SERVER_MIN_QUERIES)
    s.min_duration_ms = int(seconds * 1000)
    s.min_query_count = min_queries
    if target_qps is not None and scenario == "server":
        # a system far below the target would otherwise take min_queries / its own rate
        s.max_duration_ms = int(1000 * 4 * max(seconds, min_queries / target_qps))
    s.qsl_rng_seed = s.sample_index_rng_seed = s.schedule_rng_seed = seed
    if expected_ms is not None:
        s.single_stream_expected_latency_ns = int(expected_ms * 1e6)
        s.multi_stream_expected_latency_ns = int(expected_ms * MULTISTREAM_SAMPLES * 1e6)
    if scenario == "multistream":
        s.multi_stream_samples_per_query = MULTISTREAM_SAMPLES
    if target_qps is not None:
        s.server_target_qps = target_qps
        s.offline_expected_qps = target_qps
    if scenario == "server":
        s.server_target_latency_ns = int(p99_ms * 1e6)
        s.server_target_latency_percentile = 0.99
    return s


def run_loadgen(system: StreamSystem, samples: int, scenario: str, mode: str, settings: Any, logdir: Path,
                asked: dict[str, Any]) -> LoadGenRun:
    """One LoadGen test of ``system`` over a library of ``samples`` samples (all held in memory)."""
    lg = loadgen()
    logdir.mkdir(parents=True, exist_ok=True)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(logdir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False
    sut = lg.ConstructSUT(system.issue, system.flush)
    qsl = lg.ConstructQSL(samples, samples, lambda indices: None, lambda indices: None)
    start = time.perf_counter()
    try:
        lg.StartTestWithLogSettings(sut, qsl, settings, log_settings)
    finally:
        seconds = time.perf_counter() - start
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    if system.errors:
        raise LoadGenError(f"the system under test failed {len(system.errors)} call(s): {system.errors[0]}")
    return LoadGenRun(scenario, mode, asked, read_detail_log(logdir / "mlperf_log_detail.txt"), seconds, logdir)


def read_accuracy_log(path: Path) -> list[tuple[int, np.ndarray]]:
    """LoadGen's accuracy log: (sample index, its response's float32 logits) per response."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LoadGenError(f"cannot read LoadGen's accuracy log {path}: {exc}") from exc
    return [(int(e["qsl_idx"]), np.frombuffer(bytes.fromhex(e["data"]), dtype=np.float32)) for e in entries]


def check_responses(responses: list[tuple[int, np.ndarray]], expected: torch.Tensor,
                    rtol: float = 1e-4) -> dict[str, Any]:
    """Each sample answered exactly once, with the case's own output for that sample.

    ``expected``: the case's logits for every sample of the library (its accuracy pass). Rows
    are compared centred (the mean row over the samples taken out): a ResNet with random
    weights gives nearly the same logits for every image, and only what differs between
    images tells one sample's response from another's. A response is right when it is within
    ``rtol`` of its sample's row (relative L2) or nearer to it than to any other; one nearer to
    another sample's row names that sample (a mixed-up response, not a numeric drift).
    """
    reference = expected.detach().double().numpy()
    count = reference.shape[0]
    mean = reference.mean(axis=0)
    centred = reference - mean
    scale = np.maximum(np.linalg.norm(centred, axis=1), 1e-12)
    seen: dict[int, int] = {}
    wrong: list[str] = []
    for index, row in responses:
        seen[index] = seen.get(index, 0) + 1
        if not 0 <= index < count or row.shape != reference[index].shape:
            wrong.append(f"sample {index}: a response of {row.shape[0]} values")
            continue
        if not np.isfinite(row).all():  # NaN distances would make any sample the "nearest"
            wrong.append(f"sample {index}: a non-finite output")
            continue
        distances = np.linalg.norm(centred - (row.astype(np.float64) - mean), axis=1) / scale
        nearest = int(np.argmin(distances))
        if distances[index] <= rtol or nearest == index:
            continue
        wrong.append(f"sample {index} got sample {nearest}'s output")
    missing = [i for i in range(count) if i not in seen]
    repeated = sorted(i for i, n in seen.items() if n > 1)
    reasons = []
    if missing:
        reasons.append(f"{len(missing)} sample(s) never answered ({_few(missing)})")
    if repeated:
        reasons.append(f"{len(repeated)} sample(s) answered more than once ({_few(repeated)})")
    if wrong:
        reasons.append(f"{len(wrong)} wrong response(s): {'; '.join(wrong[:4])}{' ...' if len(wrong) > 4 else ''}")
    return {"verdict": "failed" if reasons else "passed", "reason": "; ".join(reasons),
            "responses": len(responses), "samples": count}


def _few(items: list[int]) -> str:
    return ", ".join(map(str, items[:6])) + (" ..." if len(items) > 6 else "")


def server_run_record(run: LoadGenRun) -> dict[str, Any]:
    """What a capacity search keeps of one Server run."""
    return {"target_qps": round(run.asked["target_qps"], 3), "valid": run.valid, "p99_ms": run.percentile_ms(99.0),
            "queries": run.result("query_count"), "seconds": round(run.seconds, 2),
            **({"why": run.result("invalid_reason") or run.early_stopping} if not run.valid else {})}


def find_capacity(run_at: Callable[[float], LoadGenRun], start_qps: float, *, precision: float = 0.05,
                  max_runs: int = 20, floor_qps: float = 0.0, ceiling_qps: float | None = None,
                  confirm_failures: bool = True) -> dict[str, Any]:
    """The highest Server QPS whose run LoadGen calls VALID (p99 within the bound, early stopping
    met), searched as LoadGen's FindPeakPerformance does: double the target until a run fails,
    then bisect until the bracket is within ``precision`` of its top. It never asks for less
    than ``floor_qps`` (a run needs its minimum queries, so a slow target means a long run).

    A failed rate is run once more before it counts (``confirm_failures``): early stopping
    proves a p99 only with almost no query over the bound, so one pause of the machine fails
    a run, and unconfirmed the search stopped 20% low in one of three A/A searches here
    (``gate-check --capacity``). A slower system fails both runs.

    Doubling stops once at ``ceiling_qps`` (the caller's Offline throughput and some): a server
    under a bound serves no more than an unbounded batch does, and each doubling past it ran
    an overloaded system, twice, which half the searches of ``gate-check --capacity`` did
    (5 of their 9 s). A run that passes at the ceiling doubles on from it.

    Fails closed: with no valid run at all, the capacity is None (not 0, not the start).
    """
    runs: list[LoadGenRun] = []

    def attempt(qps: float) -> bool:
        runs.append(run_at(qps))
        if not runs[-1].valid and confirm_failures and len(runs) < max_runs:
            runs.append(run_at(qps))
        return runs[-1].valid

    low: float | None = None
    high: float | None = None
    qps = start_qps
    # Bracket: double up from a passing start, halve down from a failing one, but not below
    # start / 2**MAX_HALVINGS: a run needs min_queries queries, so each halving doubles its length.
    while len(runs) < max_runs and qps >= max(start_qps / 2**MAX_HALVINGS, floor_qps):
        if attempt(qps):
            low = qps
            if high is not None:
                break
            qps = min(qps * 2, ceiling_qps) if ceiling_qps is not None and qps < ceiling_qps else qps * 2
        else:
            high = qps
            if low is not None:
                break
            qps /= 2
    while low is not None and high is not None and high - low > precision * high and len(runs) < max_runs:
        mid = (low + high) / 2
        if attempt(mid):
            low = mid
        else:
            high = mid
    best = next((r for r in reversed(runs) if r.valid and r.asked["target_qps"] == low), None) if low is not None else None
    return {
        "qps": low, "p99_ms": best.percentile_ms(99.0) if best else None,
        "bracket": [low, high], "precision": precision,
        "runs": [server_run_record(r) for r in runs],
        "seconds": round(sum(r.seconds for r in runs), 2),
        "reason": None if low is not None else (
            f"no valid Server run in {len(runs)} tries, down to {min(r.asked['target_qps'] for r in runs):.3g} QPS"
            if runs else f"no Server run: the start, {start_qps:.3g} QPS, is below the floor, {floor_qps:.3g} QPS"),
    }
