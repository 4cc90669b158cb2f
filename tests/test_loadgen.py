"""MLPerf LoadGen's scenarios (measure/loadgen.py): real LoadGen runs against a toy system, the
check of every response (a swapped pair is red, naming it), and the Server capacity search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from resnetbench.measure import loadgen
from resnetbench.measure.loadgen import (
    LoadGenRun,
    Split,
    StreamSystem,
    check_responses,
    find_capacity,
    read_accuracy_log,
    run_loadgen,
    settings_for,
    splits_of,
)

pytest.importorskip("mlperf_loadgen")

SAMPLES = 16


class ToyRunner:
    """A linear 'model' over the flattened image: cheap, deterministic, input-dependent."""

    def __init__(self) -> None:
        self.weight = torch.randn(3 * 8 * 8, 10, generator=torch.Generator().manual_seed(0))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def run(self, native: torch.Tensor) -> torch.Tensor:
        return native @ self.weight

    def to_logits(self, out: torch.Tensor) -> torch.Tensor:
        return out


class SwappingSystem(StreamSystem):
    """Holds the first answer back and sends it with the second, their outputs swapped."""

    held: tuple[list[Any], np.ndarray] | None = None

    def respond(self, samples: list[Any], rows: np.ndarray) -> None:
        if self.held is None and not getattr(self, "swapped", False):
            self.held = (samples, rows.copy())
            return
        if self.held is not None:
            first, first_rows = self.held
            self.held, self.swapped = None, True
            super().respond(first, rows[:1].copy())
            super().respond(samples, np.concatenate([first_rows, rows[1:]]))
            return
        super().respond(samples, rows)


def images() -> torch.Tensor:
    return torch.randn(SAMPLES, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def expected() -> torch.Tensor:
    runner = ToyRunner()
    return runner.run(runner.prepare(images()))


def accuracy_run(system_type: type[StreamSystem], tmp_path: Path, streams: int = 2) -> dict[str, Any]:
    served = system_type([ToyRunner() for _ in range(streams)], images())
    try:
        run = run_loadgen(served, SAMPLES, "offline", "accuracy",
                          settings_for("offline", "accuracy", seconds=0.1, min_queries=1, target_qps=1000.0),
                          tmp_path / "acc", {"target_qps": 1000.0})
    finally:
        served.close()
    return check_responses(read_accuracy_log(run.logdir / "mlperf_log_accuracy.json"), expected())


def test_an_honest_system_answers_every_sample_with_its_own_output(tmp_path: Path) -> None:
    result = accuracy_run(StreamSystem, tmp_path)
    assert result == {"verdict": "passed", "reason": "", "responses": SAMPLES, "samples": SAMPLES}


def test_a_system_that_swaps_two_responses_is_red_naming_them(tmp_path: Path) -> None:
    result = accuracy_run(SwappingSystem, tmp_path, streams=1)
    assert result["verdict"] == "failed"
    assert "2 wrong response(s)" in result["reason"], result
    assert result["reason"].count("got sample") == 2


def test_missing_repeated_and_foreign_responses_are_named() -> None:
    rows = expected().numpy().astype(np.float32)
    responses = [(i, rows[i]) for i in range(SAMPLES) if i != 3] + [(5, rows[5]), (7, rows[9])]
    result = check_responses(responses, expected())
    assert result["verdict"] == "failed"
    assert "1 sample(s) never answered (3)" in result["reason"]
    assert "2 sample(s) answered more than once (5, 7)" in result["reason"]
    assert "sample 7 got sample 9's output" in result["reason"]
    nan = [(i, rows[i] if i else np.full_like(rows[0], np.nan)) for i in range(SAMPLES)]
    assert "sample 0: a non-finite output" in check_responses(nan, expected())["reason"]
    short = [(i, rows[i][:5]) for i in range(SAMPLES)]
    assert "a response of 5 values" in check_responses(short, expected())["reason"]


def test_nearly_identical_logits_are_told_apart_by_what_differs_between_samples() -> None:
    # A ResNet with random weights: every image gets nearly the same logits (cosine 0.9998);
    # only the small part that differs tells the samples apart.
    common = torch.randn(1, 1000, generator=torch.Generator().manual_seed(2)) * 10
    logits = common + 1e-3 * torch.randn(SAMPLES, 1000, generator=torch.Generator().manual_seed(3))
    rows = logits.numpy().astype(np.float32)
    assert check_responses([(i, rows[i]) for i in range(SAMPLES)], logits)["verdict"] == "passed"
    swapped = [(i, rows[{0: 1, 1: 0}.get(i, i)]) for i in range(SAMPLES)]
    result = check_responses(swapped, logits)
    assert result["verdict"] == "failed" and "sample 0 got sample 1's output" in result["reason"]


def fake_run(qps: float, valid: bool, p99_ms: float = 5.0) -> LoadGenRun:
    log = {"result_validity": "VALID" if valid else "INVALID", "result_99.00_percentile_latency_ns": p99_ms * 1e6,
           "result_query_count": 600, "early_stopping_result": "" if valid else " * Run unsuccessful."}
    return LoadGenRun("server", "performance", {"target_qps": qps}, log, 1.0, Path("."))


@pytest.mark.parametrize("start", [10.0, 100.0, 1000.0])
def test_capacity_is_the_highest_valid_qps_within_the_precision(start: float) -> None:
    result = find_capacity(lambda qps: fake_run(qps, qps <= 137.0), start)
    low, high = result["bracket"]
    assert low <= 137.0 < high and high - low <= 0.05 * high
    assert result["qps"] == low and result["p99_ms"] == 5.0 and result["reason"] is None
    assert all(r["valid"] == (r["target_qps"] <= 137.0) for r in result["runs"])


def test_doubling_stops_at_the_ceiling_once() -> None:
    capped = find_capacity(lambda qps: fake_run(qps, qps <= 137.0), 100.0, ceiling_qps=150.0)
    assert max(r["target_qps"] for r in capped["runs"]) == 150.0 and 130.0 <= capped["qps"] <= 137.0
    # a system faster than the ceiling passes there and the search doubles on
    above = find_capacity(lambda qps: fake_run(qps, qps <= 400.0), 100.0, ceiling_qps=150.0)
    assert [r["target_qps"] for r in above["runs"]][:3] == [100.0, 150.0, 300.0] and 380.0 <= above["qps"] <= 400.0


def test_no_valid_run_is_no_capacity_not_zero() -> None:
    result = find_capacity(lambda qps: fake_run(qps, False), 100.0)
    assert result["qps"] is None and result["p99_ms"] is None
    # halved four times at most: each halving doubles a run's length (it needs its minimum queries)
    assert result["reason"] == "no valid Server run in 10 tries, down to 6.25 QPS"  # each failure run twice
    floored = find_capacity(lambda qps: fake_run(qps, False), 100.0, floor_qps=30.0)
    assert floored["qps"] is None and floored["reason"] == "no valid Server run in 4 tries, down to 50 QPS"
    assert "below the floor" in find_capacity(lambda qps: fake_run(qps, True), 10.0, floor_qps=30.0)["reason"]
    once = find_capacity(lambda qps: fake_run(qps, False), 100.0, confirm_failures=False)
    assert once["reason"] == "no valid Server run in 5 tries, down to 6.25 QPS"


def test_a_rate_fails_only_when_its_second_run_fails_too() -> None:
    """One run disturbed by the machine does not end the search; a slower system fails both runs."""
    calls: list[float] = []

    def disturbed_once_at_150(qps: float) -> LoadGenRun:
        calls.append(qps)
        disturbed = qps == 150.0 and calls.count(150.0) == 1
        return fake_run(qps, qps <= 160.0 and not disturbed)

    result = find_capacity(disturbed_once_at_150, 150.0)
    # 150 failed once, passed on its second run: the search went on from there
    assert calls[:3] == [150.0, 150.0, 300.0] and 150.0 <= result["qps"] <= 160.0
    unconfirmed = find_capacity(lambda qps: fake_run(qps, qps <= 137.0), 100.0, confirm_failures=False)
    confirmed = find_capacity(lambda qps: fake_run(qps, qps <= 137.0), 100.0)
    assert confirmed["qps"] == unconfirmed["qps"] and len(confirmed["runs"]) > len(unconfirmed["runs"])


def test_splits_cover_the_threads_and_the_server_settings_carry_the_bound() -> None:
    assert splits_of(2) == [Split(1, 2), Split(2, 1)]
    assert splits_of(4, batch=2) == [Split(1, 4, 2), Split(2, 2, 2), Split(4, 1, 2)]
    s = settings_for("server", "performance", seconds=1.5, min_queries=600, target_qps=40.0, p99_ms=15.0)
    assert s.server_target_latency_ns == 15_000_000 and s.server_target_qps == 40.0
    assert s.min_duration_ms == 1500 and s.min_query_count == 600


def test_a_real_server_run_reports_its_percentiles_and_validity(tmp_path: Path) -> None:
    served = StreamSystem([ToyRunner(), ToyRunner()], images())
    try:
        # 100 queries asked: a Server run gets at least 460, without which early stopping never holds
        run = run_loadgen(served, SAMPLES, "server", "performance",
                          settings_for("server", "performance", seconds=0.2, min_queries=100, target_qps=400.0,
                                       p99_ms=50.0), tmp_path / "server", {"target_qps": 400.0})
    finally:
        served.close()
    summary = run.summary()
    assert summary["queries"] >= 460 and summary["p99_ms"] > 0 and summary["p50_ms"] <= summary["p99_ms"]
    assert summary["loadgen_validity"] in ("VALID", "INVALID")
    if summary["loadgen_validity"] == "INVALID":  # a loaded machine: LoadGen says why
        assert summary.get("loadgen_invalid_reason") or summary.get("early_stopping")


def test_without_loadgen_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_loadgen(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "mlperf_loadgen":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_loadgen)
    with pytest.raises(loadgen.LoadGenError, match=r"pip install 'resnetbench\[scenarios\]'"):
        loadgen.loadgen()


SCENARIOS_MATRIX = """
matrix:
  arch: [resnet18]
  backend: [eager, onnxruntime]
  include:
    - {arch: resnet18, dtype: bf16, backend: eager}  # not in scenarios.cases: LoadGen does not run it
input_size: 32
dataset: {name: synthetic, samples: 16}
claims: false
tuning: {enabled: false}
scenarios:
  offline: {}
  singlestream: {}
  multistream: {}
  server: {p99_ms: 50}
  seconds: 0.3
  min_queries: 460  # the fewest from which LoadGen's early stopping can prove a p99 (default 600)
  repeats: 3
  cases: ["resnet18-fp32-*"]
"""


@pytest.mark.slow
@pytest.mark.timing  # judges a Server capacity: alone on the machine
def test_the_scenarios_run_through_loadgen_for_each_case(run_matrix: Any) -> None:
    from resnetbench.compare.rules import compare_results

    result, data = run_matrix(SCENARIOS_MATRIX, "-m", "scenarios")
    out = result.stdout.str()
    assert result.ret == 0, out[-3000:]
    assert "resnetbench: 1 deselected: test_scenarios: the case matches none of scenarios.cases (resnet18-fp32-*)" \
        in out
    assert {c["id"] for c in data["cases"]} == {"resnet18-fp32-none-eager-b1", "resnet18-fp32-none-onnxruntime-b1"}
    for case in data["cases"]:
        rec = case["scenarios"]
        assert case["tests"] == {"scenarios": "passed"}
        assert rec["mlperf_valid"] is False and "600 s" in rec["why_not_mlperf"]
        # every split of the 2 threads was served, and the fastest kept
        assert [(s["streams"], s["threads"]) for s in rec["splits"]] == [(1, 2), (2, 1)]
        best = max(rec["splits"], key=lambda s: s["offline_samples_per_s"])
        assert (rec["kept"]["streams"], rec["kept"]["threads"]) == (best["streams"], best["threads"])
        assert rec["accuracy"] == {"verdict": "passed", "reason": "", "responses": 16, "samples": 16}
        assert rec["offline"]["samples_per_s"] > 0 and rec["singlestream"]["p90_ms"] > 0
        # MultiStream: queries of 8 samples, each answered as a whole; its p99 is a query's
        multi = rec["multistream"]
        assert multi["scenario"] == "multistream" and multi["queries"] >= 460 and multi["errors"] == 0, multi
        assert multi["p99_ms"] >= multi["p50_ms"] > rec["singlestream"]["p50_ms"], (multi, rec["singlestream"])
        server = rec["server"]
        assert server["p99_bound_ms"] == 50 and server["qps"] > 0 and server["p99_ms"] <= 50
        assert rec["capacity_qps"] == server["qps"]
        valid = [r for r in server["runs"] if r["valid"] and not r.get("refine")]  # the search's own runs
        assert max(r["target_qps"] for r in valid) == pytest.approx(server["qps"], rel=1e-3)
        assert all(r["queries"] >= 460 for r in server["runs"])
        # the other side of one-stream/multi-stream, for the comparison
        other = server["compared"]["split"]
        assert (other["streams"] > 1) != (server["split"]["streams"] > 1)
        # paired with the latency reference, for the capacity gate (measure/capacity.py)
        assert rec["reference"]["key"].startswith(f"{case['backend']}/fp32/none/b1/32/")
        offline = rec["offline"]
        assert len(offline["runs_samples_per_s"]) == len(offline["reference_samples_per_s"]) == 3
        assert offline["ratios"] == pytest.approx([c / r for c, r in zip(offline["runs_samples_per_s"],
                                                                       offline["reference_samples_per_s"], strict=True)])
        # a reference run before the first Server run and one after each
        assert len(server["reference_samples_per_s"]) == len(server["runs"]) + 1 and server["normalized"]["qps"] > 0
        assert server["normalized"]["crossing_qps"] > 0 and sum(r.get("refine", False) for r in server["runs"]) == 12
    # the run against itself: the capacity gate compares the paired figures and passes
    for record in compare_results(data, data):
        checks = {c["name"]: c for c in record["checks"]}
        assert checks["offline"]["status"] == checks["server"]["status"] == "ok", record["reason"]
        assert "case/reference" in checks["offline"]["detail"]
