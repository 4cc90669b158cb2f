"""``resnetbench gpu-check``: on a machine with a CUDA device, everything GPU in one go.

GPU machines are lent briefly, so this is one prepared command:

1. **Device timing is synchronised.** The CUDA runner's ``run`` must return only after
   the kernels finished. For ResNet-18 and ResNet-50 at batch 1 and 8 it times calls three
   ways: the host clock around ``run`` (what the suite measures), CUDA events recorded
   around the same calls, and the host clock around an *unsynchronised* forward (the
   negative control: it returns as soon as the kernels are queued). The host and event
   medians must agree within ``SYNC_TOLERANCE``; the control must come out faster than
   the events by more than that, or the check could not have failed and says so.
2. **The GPU backends run**: ``pytest --matrix matrices/gpu.yaml -m gpu`` (the ``gpu``
   marker is on every GPU case) with results, report and summary under ``--out``.
3. A table of both on stdout, and ``gpu-check.json`` under ``--out``.

Exit 0: synchronised and the suite passed. 1: a check failed. 2: no CUDA device (or bad
input): there is nothing to check here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RED, EXIT_USAGE = 0, 1, 2
SYNC_TOLERANCE = 0.10  # host vs CUDA-event medians; a host clock adds ~10-50 us per call
GPU_MATRIX = Path(__file__).resolve().parents[2] / "matrices" / "gpu.yaml"


def sync_verdict(host_ms: list[float], event_ms: list[float], unsynced_ms: list[float]) -> dict[str, Any]:
    """Whether host timings of ``run`` measure the kernels (agree with CUDA events)."""
    host, event, unsynced = (statistics.median(v) for v in (host_ms, event_ms, unsynced_ms))
    agree = abs(host - event) / event <= SYNC_TOLERANCE
    control_differs = (event - unsynced) / event > SYNC_TOLERANCE
    verdict = "synchronised" if agree and control_differs else ("not synchronised" if not agree else "undecided")
    why = {"synchronised": "host and CUDA-event times agree; an unsynchronised call is measurably shorter",
           "not synchronised": f"host median {host:.3f} ms vs CUDA events {event:.3f} ms",
           "undecided": "even an unsynchronised call takes as long as the kernels: the check cannot tell"}[verdict]
    return {"host_ms": host, "event_ms": event, "unsynced_ms": unsynced, "verdict": verdict, "why": why}


def measure_sync(arch: str, batch: int, calls: int = 50) -> dict[str, Any]:  # pragma: no cover - needs CUDA
    import torch

    from resnetbench.backends.gpu import CudaRunner
    from resnetbench.matrix import Case
    from resnetbench.models import build_model

    case = Case(arch, "fp32", "none", "cuda", batch)
    runner = CudaRunner(build_model(arch), case)
    x = runner.prepare(torch.randn(batch, 3, 224, 224))
    for _ in range(10):
        runner.run(x)
    host, event, unsynced = [], [], []
    for _ in range(calls):
        start_ev, end_ev = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        start_ev.record()
        runner.run(x)
        end_ev.record()
        host.append((time.perf_counter() - t0) * 1e3)
        torch.cuda.synchronize()
        event.append(start_ev.elapsed_time(end_ev))
        with torch.inference_mode():
            t0 = time.perf_counter()
            runner.model(x)  # no synchronize: returns once the kernels are queued
            unsynced.append((time.perf_counter() - t0) * 1e3)
        torch.cuda.synchronize()
    return {"arch": arch, "batch": batch, **sync_verdict(host, event, unsynced)}


def run(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        print("gpu-check: torch is not installed", file=sys.stderr)
        return EXIT_USAGE
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine (torch.cuda.is_available() is False); "
              "run it where one is", file=sys.stderr)
        return EXIT_USAGE
    matrix = Path(args.matrix)
    if not matrix.is_file():
        print(f"gpu-check: --matrix {matrix}: no such file", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    sync = [measure_sync(arch, batch) for arch in ("resnet18", "resnet50") for batch in (1, 8)]
    print(f"{'arch':10} {'batch':>5} {'host ms':>9} {'event ms':>9} {'unsynced':>9}  verdict")
    for row in sync:
        print(f"{row['arch']:10} {row['batch']:>5} {row['host_ms']:>9.3f} {row['event_ms']:>9.3f} "
              f"{row['unsynced_ms']:>9.3f}  {row['verdict']}")
    suite = subprocess.run(
        [sys.executable, "-m", "pytest", "--matrix", str(matrix), "-m", "gpu", "-p", "no:cacheprovider",
         "--results", str(out / "gpu-results.json"), "--report", str(out / "gpu-report.html"),
         "--summary", str(out / "gpu-summary.md"), "-q", *args.pytest_args.split()])
    data = json.loads((out / "gpu-results.json").read_text()) if (out / "gpu-results.json").exists() else {"cases": []}
    print(f"\n{'case':45} {'outcome':8} {'median ms':>10}")
    for case in data["cases"]:
        median = (case.get("latency") or {}).get("median_ms")
        print(f"{case['id']:45} {case['outcome']:8} {median if median is None else f'{median:10.3f}'}")
    report = {"device": torch.cuda.get_device_name(0), "sync": sync, "suite_exit": suite.returncode,
              "cases": {c["id"]: c["outcome"] for c in data["cases"]}}
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1))
    ok = all(r["verdict"] == "synchronised" for r in sync) and suite.returncode == 0 and data["cases"]
    print(f"\ngpu-check: {'passed' if ok else 'FAILED'} (details in {out})")
    return EXIT_OK if ok else EXIT_RED


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``gpu-check`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "gpu-check", help="on a CUDA machine: check device timing is synchronised and run the GPU backends",
        description="Exit 0 passed, 1 a check failed, 2 no CUDA device here.")
    p.add_argument("--matrix", default=str(GPU_MATRIX), help="the GPU matrix (default: matrices/gpu.yaml)")
    p.add_argument("-o", "--out", default="reports/gpu-check", help="output directory")
    p.add_argument("--pytest-args", default="", help="extra pytest arguments, one string")
    p.set_defaults(func=run)
    return p
