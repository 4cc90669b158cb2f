"""Block calibration and the block-level gate: drift shared by reference and case cancels."""

from __future__ import annotations

import numpy as np

from resnetbench.compare import decide_blocks, normalized_blocks
from resnetbench.measure.latency import BlockCalibration


class FakeKernel:
    description = "fake"

    def __init__(self) -> None:
        self.calls = 0

    def median_ms(self) -> float:
        self.calls += 1
        return 2.0 * self.calls


def test_reference_is_timed_before_each_block_and_not_during_warmup():
    runs = []
    kernel = FakeKernel()
    cal = BlockCalibration(kernel, runs.append, "x", warmup=2, rounds=12, blocks=3)
    timed = []
    for call in range(14):
        args, _ = cal.setup()
        if call >= 2:
            timed.append(call)
    assert kernel.calls == 3 and cal.calibration_ms == [2.0, 4.0, 6.0]
    assert len(runs) == 3, "one re-warm call after each reference timing"
    summary = cal.summary([1, 2, 3, 4, 10, 10, 10, 10, 5, 6, 7, 8])
    assert summary["size"] == 4 and summary["medians_ms"] == [2.5, 10, 6.5]
    assert list(normalized_blocks({"blocks": summary})) == [1.25, 2.5, 6.5 / 6]


def runs(rng, n_runs, shift=1.0, blocks=6, drift_sd=0.08, residual_sd=0.02):
    """Block medians of runs on a machine whose speed drifts per block; the reference sees the drift."""
    out = []
    for _ in range(n_runs):
        speed = np.exp(rng.normal(0, drift_sd, blocks))
        medians = 10 * shift * speed * np.exp(rng.normal(0, residual_sd, blocks))
        cal = 5 * speed * np.exp(rng.normal(0, residual_sd, blocks))
        out.append(normalized_blocks({"blocks": {"medians_ms": list(medians), "calibration_ms": list(cal)}}))
    return out


def test_block_gate_error_rates_under_drift():
    rng = np.random.default_rng(0)
    aa = [decide_blocks(a, b, rng_seed=i)["decision"] for i, (a, b) in enumerate(zip(runs(rng, 200), runs(rng, 200), strict=True))]
    slow20 = [decide_blocks(a, b, rng_seed=i) for i, (a, b) in enumerate(zip(runs(rng, 100), runs(rng, 100, 1.2), strict=True))]
    assert aa.count("regressed") == 0
    assert sum(r["decision"] == "regressed" for r in slow20) >= 95
    assert np.mean([abs(r["ratio"] - 1.2) for r in slow20]) < 0.03


def test_too_few_blocks_is_inconclusive():
    assert decide_blocks([1, 1, 1], [2, 2, 2])["decision"] == "inconclusive"


def test_missing_or_broken_blocks_are_not_used():
    assert normalized_blocks(None) is None
    assert normalized_blocks({"blocks": {"medians_ms": [1, 2], "calibration_ms": [1]}}) is None
    assert normalized_blocks({"blocks": {"medians_ms": [1, 2], "calibration_ms": [1, 0]}}) is None
