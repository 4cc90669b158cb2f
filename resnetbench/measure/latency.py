"""Latency figures from raw samples: percentiles only where there are enough samples.

The minimum sample counts follow MLPerf Inference's early-stopping tables: a p90 claim
needs at least 64 samples, a p99 claim at least 662.
"""

from __future__ import annotations

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


def own_loop(fn: Any, arg: Any, warmup: int, rounds: int, setup: Any = None) -> list[float]:
    """Milliseconds per call, timed as ``pedantic(iterations=1)`` times them (``--benchmark-disable`` runs).

    ``setup``, as pedantic's: called before every call, outside the timer, it returns the
    call's ``(args, kwargs)`` (``arg`` is then unused).
    """
    import time

    def arguments() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return setup() if setup is not None else ((arg,), {})

    for _ in range(warmup):
        args, kwargs = arguments()
        fn(*args, **kwargs)
    samples = []
    for _ in range(rounds):
        args, kwargs = arguments()
        start = time.perf_counter()
        fn(*args, **kwargs)
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


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
