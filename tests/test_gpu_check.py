"""GPU readiness: the gpu marker, the GPU matrix and gpu-check's synchronisation verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnetbench.tools.gpucheck import GPU_MATRIX, sync_verdict


def test_synchronised_when_host_and_events_agree_and_the_control_is_shorter():
    v = sync_verdict([5.1, 5.2, 5.0], [5.0, 5.0, 4.9], [0.3, 0.4, 0.3])
    assert v["verdict"] == "synchronised"


def test_a_runner_that_does_not_wait_for_the_kernels_is_caught():
    # host time ~ the unsynchronised launch time, far below the kernels' event time
    v = sync_verdict([0.4, 0.3, 0.4], [5.0, 5.0, 4.9], [0.3, 0.4, 0.3])
    assert v["verdict"] == "not synchronised" and "host median" in v["why"]


def test_undecided_when_the_negative_control_cannot_differ():
    v = sync_verdict([5.0, 5.0], [5.0, 5.0], [4.9, 5.0])
    assert v["verdict"] == "undecided"


@pytest.mark.slow
def test_the_gpu_marker_selects_exactly_the_gpu_cases(pytester):
    result = pytester.runpytest_subprocess("--matrix", str(GPU_MATRIX), "-m", "gpu", "--collect-only", "-q",
                                           "-p", "no:cacheprovider")
    lines = [x for x in result.stdout.lines if "::test_" in x]
    gpu_backends = ("-cuda-", "-onnxruntime-cuda-", "-onnxruntime-tensorrt-", "-tensorrt-")
    assert len(lines) == 3 * 17 and all(any(b in x for b in gpu_backends) for x in lines)
    cpu = pytester.runpytest_subprocess("--matrix", str(Path(__file__).parents[1] / "matrix.yaml"), "-m", "gpu",
                                        "--collect-only", "-q", "-p", "no:cacheprovider")
    picked = [x for x in cpu.stdout.lines if "::test_" in x]
    assert picked and all("cuda" in x or "tensorrt" in x for x in picked)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU answer")
def test_gpu_check_without_a_device_says_so_and_exits_2():
    proc = subprocess.run([sys.executable, "-m", "resnetbench.cli", "gpu-check"], capture_output=True, text=True)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr and "Traceback" not in proc.stderr
