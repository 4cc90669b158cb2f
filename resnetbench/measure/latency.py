"""Latency figures from raw samples: percentiles only where there are enough samples.

The minimum sample counts follow MLPerf Inference's early-stopping tables: a p90 claim
needs at least 64 samples, a p99 claim at least 662.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

MIN_SAMPLES = {"p90": 64, "p99": 662}


def summarize(samples_ms: list[float], batch: int) -> dict[str, Any]:
    """Median, mean, spread, p90/p99 (or None with too few samples) and throughput."""
    arr = np.asarray(samples_ms, dtype=float)
    median = float(np.median(arr))
    return {
        "samples_ms": [round(float(s), 6) for s in arr],
        "rounds": int(arr.size),
        "median_ms": median,
        "mean_ms": float(arr.mean()),
        "stdev_ms": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "min_ms": float(arr.min()),
        "iqr_ms": float(np.percentile(arr, 75) - np.percentile(arr, 25)),
        "p90_ms": float(np.percentile(arr, 90)) if arr.size >= MIN_SAMPLES["p90"] else None,
        "p99_ms": float(np.percentile(arr, 99)) if arr.size >= MIN_SAMPLES["p99"] else None,
        "throughput_ips": batch / (median / 1e3),
    }


def roofline(flops: int, median_ms: float, peak_gflops: float | None) -> dict[str, Any]:
    """Achieved GFLOP/s and the share of the machine's measured peak."""
    achieved = flops / (median_ms / 1e3) / 1e9
    return {
        "gflops_per_s": achieved,
        "peak_fraction": achieved / peak_gflops if peak_gflops else None,
    }


def count_flops(model: Any, sample: Any) -> dict[str, int]:
    """FLOPs of one forward pass with torch's FlopCounterMode (1 MAC = 2 FLOPs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(sample)
    flops = int(counter.get_total_flops())
    return {"flops": flops, "macs": flops // 2}


class BlockCalibration:
    """Splits a latency case's rounds into blocks and times a reference workload before each.

    Run-to-run speed on shared machines drifts far more than the noise within a run
    suggests (measured here: medians of back-to-back runs of one unchanged model differ
    by 8-14%), and a single conv kernel timed once per session tracks it poorly. A
    network-shaped reference (``environment.ReferenceKernel``) timed right before each
    block tracks it well for PyTorch (run-median spread 14% -> 4%, correlation 0.96), and
    blocks give the gate a unit whose spread includes drift, so its intervals are honest.

    Use as pytest-benchmark's ``pedantic(setup=...)``: setup time is not measured.
    """

    def __init__(self, kernel: Any, run: Any, native: Any, warmup: int, rounds: int, blocks: int) -> None:
        self.kernel = kernel
        self.run = run
        self.native = native
        self.warmup = warmup
        self.blocks = max(1, min(blocks, rounds))
        self.block_size = rounds // self.blocks
        self.calls = 0
        self.calibration_ms: list[float] = []

    def setup(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        timed = self.calls - self.warmup
        if timed >= 0 and timed % self.block_size == 0 and len(self.calibration_ms) < self.blocks:
            self.calibration_ms.append(self.kernel.median_ms())
            self.run(self.native)  # re-warm caches and thread pools after the reference ran
        self.calls += 1
        return (self.native,), {}

    def summary(self, samples_ms: list[float]) -> dict[str, Any]:
        """Per-block medians of the case's samples, with the block's reference time."""
        k = self.block_size
        medians = [statistics.median(samples_ms[i * k : (i + 1) * k]) for i in range(len(self.calibration_ms))]
        return {"size": k, "medians_ms": medians, "calibration_ms": list(self.calibration_ms),
                "kernel": self.kernel.description}
