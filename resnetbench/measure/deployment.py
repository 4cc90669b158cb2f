"""Cold start and memory, as a deployment meets them: measured in fresh processes.

A model that needs 4 GB to load, or 30 s before its first output, fails in deployment
however fast its steady-state latency. Neither can be measured inside the suite's
process: its libraries are imported, its caches are warm and its memory holds every
other case. So each measurement is a fresh Python process (``python -m
resnetbench.measure.deployment``) that does what a deployment does and nothing else:

1. **import** the backend's libraries (torch, onnxruntime, openvino, ...);
2. **load** the case's cached artifact with the recipe the suite chose
   (``build.load_deployed``: the module is built only for state_dict artifacts);
3. **first output**: prepare one input batch, run it, read the logits.

Cold start is the wall time from spawning the process to the first output (the parent
passes its clock at spawn). Memory is resident set size (``VmRSS``) above the process's
baseline after the imports: the **load peak** (``VmHWM`` after loading, the peak being
reset with ``/proc/self/clear_refs`` first), what stays **resident** after loading, and
the **inference peak** (the peak during the first output above the resident set before
it). Off Linux, or where ``clear_refs`` cannot be written, peaks come from
``ru_maxrss`` (the load peak only) and ``peak_method`` says so.

The suite runs ``runs`` such processes one after another, alone on the machine
(``quiet.exclusive``), so that the gate can compare samples, not single figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULT_PREFIX = "RESNETBENCH-DEPLOYMENT "
DEFAULT_RUNS = 3
# Under tests, a hook to inject damage into the child (an allocation at load): an import path
# ``module:function`` called after loading, with the runner.
INJECT_ENV = "RESNETBENCH_DEPLOYMENT_AFTER_LOAD"


class DeploymentError(RuntimeError):
    """A measurement process that failed; the message carries its stderr's last lines."""


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's resident high-water mark to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def measure_in_this_process(matrix: str, case_id: str, cache_root: str, threads: int, recipe: str,
                            spawned_at: float) -> dict[str, Any]:
    """Steps 1-3 of the module docstring, in this (fresh) process."""
    start = time.perf_counter()
    import importlib

    import torch

    from resnetbench.backends import get_backend
    from resnetbench.build import load_deployed
    from resnetbench.cache import ArtifactCache
    from resnetbench.config import load_config
    from resnetbench.environment import set_threads
    from resnetbench.matrix import expand

    config = load_config(Path(matrix))
    case = next((c for c in expand(config) if c.id == case_id), None)
    if case is None:
        raise DeploymentError(f"{matrix}: no case {case_id}")
    backend = get_backend(case.backend)
    for module in backend.requires:
        importlib.import_module(module)
    set_threads(threads)
    import_s = time.perf_counter() - start

    exact = _reset_peak()
    base_kb = _status_kb("VmRSS") or _maxrss_kb()
    t = time.perf_counter()
    runner = load_deployed(config, case, ArtifactCache(Path(cache_root)), threads, recipe)
    inject = os.environ.get(INJECT_ENV)
    if inject:
        module_name, _, func = inject.partition(":")
        getattr(importlib.import_module(module_name), func)(runner)
    load_s = time.perf_counter() - t
    load_peak_kb = (_status_kb("VmHWM") if exact else None) or _maxrss_kb()
    resident_kb = _status_kb("VmRSS")

    x = torch.randn(case.batch, 3, config.input_size, config.input_size,
                    generator=torch.Generator().manual_seed(config.seed))
    exact = exact and _reset_peak()
    before_kb = _status_kb("VmRSS")
    t = time.perf_counter()
    logits = runner.to_logits(runner.run(runner.prepare(x)))
    first_output_s = time.perf_counter() - t
    cold_start_s = time.time() - spawned_at
    peak_kb = _status_kb("VmHWM") if exact else None
    if tuple(logits.shape)[0] != case.batch or not bool(torch.isfinite(logits).all()):
        raise DeploymentError(f"{case_id}: the first output is not {case.batch} finite rows: {tuple(logits.shape)}")

    def mb(kb: int | None) -> float | None:
        return None if kb is None else kb / 1024

    return {
        "cold_start_s": cold_start_s,
        "import_s": import_s,
        "load_s": load_s,
        "first_output_s": first_output_s,
        "baseline_mb": mb(base_kb),
        "load_peak_mb": mb(load_peak_kb - base_kb),
        "resident_mb": mb(None if resident_kb is None else resident_kb - base_kb),
        "inference_peak_mb": mb(None if peak_kb is None or before_kb is None else peak_kb - before_kb),
        "peak_method": "VmHWM reset through /proc/self/clear_refs" if exact else "ru_maxrss (load peak only)",
    }


def measure(matrix: Path, case_id: str, cache_root: Path, threads: int, recipe: str, runs: int = DEFAULT_RUNS,
            timeout_s: float = 600.0) -> dict[str, Any]:
    """``runs`` fresh processes, one after another; every figure per run, and medians."""
    samples = []
    for _ in range(runs):
        spawned_at = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "resnetbench.measure.deployment", str(matrix), case_id, str(cache_root),
             str(threads), recipe, repr(spawned_at)],
            capture_output=True, text=True, timeout=timeout_s, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
        if proc.returncode != 0 or not lines:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise DeploymentError(f"{case_id}: the cold-start process exited {proc.returncode}: {tail}")
        samples.append(json.loads(lines[-1][len(RESULT_PREFIX):]))
    summary: dict[str, Any] = {"runs": runs, "samples": samples, "peak_method": samples[0]["peak_method"]}
    for key in ("cold_start_s", "import_s", "load_s", "first_output_s", "load_peak_mb", "resident_mb",
                "inference_peak_mb"):
        values = [s[key] for s in samples if s.get(key) is not None]
        summary[key] = statistics.median(values) if values else None
    return summary


def main(argv: list[str]) -> int:
    matrix, case_id, cache_root, threads, recipe, spawned_at = argv
    try:
        result = measure_in_this_process(matrix, case_id, cache_root, int(threads), recipe, float(spawned_at))
    except Exception as exc:  # reported to the parent on stderr, one line
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
