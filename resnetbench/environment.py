"""The machine fingerprint, library versions, thread setting and calibration kernels.

Comparisons across runs normalise latency by a fixed calibration kernel timed in the
same process, so machine-speed drift cancels; a different fingerprint is flagged.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

# The core's own libraries; each backend adds the packages it requires (Backend.requires).
LIBRARIES = ("torch", "torchvision", "torch-pruning", "numpy", "pytest-benchmark")
FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "fma")


@cache
def library_versions() -> dict[str, str]:
    """Installed versions of the libraries whose behaviour the results depend on."""
    out: dict[str, str] = {}
    for name in (*LIBRARIES, *_backend_libraries()):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _backend_libraries() -> list[str]:
    """Packages the registered backends require, in registry order (each once)."""
    from resnetbench.registries import BACKENDS
    from resnetbench.registry import RegistryError

    names: list[str] = []
    for backend in BACKENDS.names():
        try:
            requires = BACKENDS.get(backend).requires
        except RegistryError:
            continue  # a broken plugin is reported where a case uses it
        names.extend(r for r in requires if r not in names and r not in LIBRARIES)
    return names


def cpu_info() -> dict[str, Any]:
    """CPU model, flags of interest and core counts from /proc/cpuinfo."""
    model = platform.processor() or "unknown"
    flags: set[str] = set()
    physical: set[tuple[str, str]] = set()
    phys_id = "0"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    model = value
                elif key == "flags":
                    flags = set(value.split())
                elif key == "physical id":
                    phys_id = value
                elif key == "core id":
                    physical.add((phys_id, value))
    except OSError:
        pass
    cores = len(physical) or os.cpu_count() or 1
    return {
        "cpu_model": model,
        "cpu_flags": sorted(f for f in FLAGS_OF_INTEREST if f in flags),
        "cores_physical": cores,
        "cores_logical": os.cpu_count(),
    }


def default_threads() -> int:
    """Physical cores this process may run on: hyper-threads do not speed up dense convolutions,
    and threads beyond the CPUs the process is allowed (``taskset``, a container's cpuset) only
    take turns on them (two ResNet-18 processes of 2 threads each on 2 CPUs served 38% fewer
    calls between them than two of 1 thread each, measured here)."""
    cores = int(cpu_info()["cores_physical"])
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux: no affinity to honour
        return cores
    return max(1, min(cores, allowed))


def fingerprint(threads: int) -> dict[str, Any]:
    """What makes two runs comparable; ``hash`` is equal exactly when they are."""
    fp = {**cpu_info(), "threads": threads, "python": platform.python_version(),
          "platform": platform.platform(), "libraries": library_versions()}
    fp["hash"] = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]
    return fp


def set_threads(threads: int) -> None:
    """The same thread setting for every backend (torch here; others read it from the context)."""
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def calibration_kernel(rounds: int = 30) -> dict[str, Any]:
    """Time a fixed conv2d (1x64x56x56, 3x3, 64 filters: a ResNet stage-1 conv)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 56, 56, generator=gen)
    w = torch.randn(64, 64, 3, 3, generator=gen)
    samples = []
    with torch.inference_mode():
        for _ in range(5):
            torch.nn.functional.conv2d(x, w, padding=1)
        for _ in range(rounds):
            start = time.perf_counter()
            torch.nn.functional.conv2d(x, w, padding=1)
            samples.append((time.perf_counter() - start) * 1e3)
    median = statistics.median(samples)
    cv = statistics.stdev(samples) / statistics.mean(samples) if len(samples) > 1 else 0.0
    return {"kernel": "conv2d x(1,64,56,56) w(64,64,3,3) pad 1, fp32", "samples_ms": samples,
            "median_ms": median, "cv": cv}


def peak_gflops(n: int = 2048, rounds: int = 5, dtype: str = "fp32") -> dict[str, Any]:
    """This machine's achievable peak at a dtype: best of a few large matrix products."""
    import torch

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a = torch.randn(n, n).to(torch_dtype)
    b = torch.randn(n, n).to(torch_dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return {"kernel": f"{dtype} matmul {n}x{n}x{n}", "gflops": 2 * n**3 / best / 1e9, "seconds": best}
