"""--isolate: a case that segfaults, hangs or blows up its memory costs only itself."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnetbench.isolation import crash_reason, limits_for, machine_memory_bytes
from resnetbench.settings import LimitsSettings
from tests.conftest import by_id

BAD_ARCHS = '''
import ctypes
import time

import torch
from torchvision.models.resnet import BasicBlock, ResNet


class Bad(ResNet):
    """A small ResNet whose forward pass does one bad thing."""

    def __init__(self, what, num_classes=1000):
        super().__init__(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
        self.what = what

    def forward(self, x):
        if self.what == "segv":
            ctypes.string_at(0)  # reads address 0: SIGSEGV in native code
        elif self.what == "hang":
            time.sleep(3600)
        elif self.what == "hog":
            hoard = []
            while len(hoard) < 160:  # up to 16 GB, 100 MB at a time, touched so it is resident
                hoard.append(torch.ones(25_000_000))
                time.sleep(0.01)
            time.sleep(3600)
        return super().forward(x)


def segv(num_classes=1000):
    return Bad("segv", num_classes)


def hang(num_classes=1000):
    return Bad("hang", num_classes)


def hog(num_classes=1000):
    return Bad("hog", num_classes)
'''

GOOD = [
    ("resnet18", "fp32", "none", "eager"),
    ("resnet18", "fp32", "none", "onnxruntime"),
    ("resnet18", "fp32", "none", "openvino"),
    ("resnet18", "fp32", "none", "torchscript"),
    ("resnet18", "bf16", "none", "eager"),
    ("resnet18", "int8", "static", "onnxruntime"),
    ("resnet18", "int8", "dynamic", "eager"),
]
BAD = {"segv": "segfault (SIGSEGV)", "hang": "timeout: still running after 40 s", "hog": "out of memory: resident"}


def _matrix() -> str:
    # the bad cases sit between good ones: cases before and after a crash must both finish
    order = [GOOD[0], ("segv", "fp32", "none", "eager"), GOOD[1], GOOD[2], ("hang", "fp32", "none", "eager"),
             GOOD[3], GOOD[4], ("hog", "fp32", "none", "eager"), GOOD[5], GOOD[6]]
    include = "\n".join(f"    - {{arch: {a}, dtype: {d}, compression: {c}, backend: {b}}}" for a, d, c, b in order)
    return f"""
matrix:
  batch: [1]
  include:
{include}
architectures: {{segv: "badarchs:segv", hang: "badarchs:hang", hog: "badarchs:hog"}}
input_size: 32
dataset: {{name: synthetic, samples: 8}}
latency: {{warmup: 1, rounds: 4, pairs: 6, blocks: 3}}
limits: {{timeout_s: 40, memory_gb: 4}}
tuning: {{enabled: false}}
claims: false
"""


def _case_id(arch: str, dtype: str, compression: str, backend: str) -> str:
    return f"{arch}-{dtype}-{compression}-{backend}-b1"


@pytest.mark.slow
def test_a_segfault_a_hang_and_a_memory_blowup_cost_only_their_cases(pytester, run_matrix):
    pytester.makepyfile(badarchs=BAD_ARCHS)
    start = time.perf_counter()
    # a broken watchdog would leave the hang to sleep an hour: fail instead
    result, data = run_matrix(_matrix(), "--isolate", timeout=900)
    wall = time.perf_counter() - start
    out = result.stdout.str()
    assert data is not None, out[-3000:]
    cases = by_id(data)
    assert len(cases) == 10, sorted(cases)
    for good in GOOD:
        case = cases[_case_id(*good)]
        assert case["outcome"] == "passed", (case["id"], case["reason"], out[-3000:])
        assert case["tests"] == {"size": "passed", "accuracy": "passed", "latency": "passed"}
        assert case["latency"]["median_ms"] > 0
    for arch, reason in BAD.items():
        case = cases[_case_id(arch, "fp32", "none", "eager")]
        assert case["outcome"] == "error", case
        assert reason in case["reason"], case["reason"]
        assert set(case["tests"].values()) <= {"passed", "error"} and "error" in case["tests"].values()
    assert out.count("replacing crashed worker") == 3
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    print(f"10 cases, 3 crashes, {wall:.0f} s")  # noqa: T201  (seen with -s)


def test_limits_default_and_from_the_matrix():
    timeout, memory = limits_for(LimitsSettings())
    assert timeout == 1800 and 0.8 * machine_memory_bytes() < memory < machine_memory_bytes()
    assert limits_for(LimitsSettings(timeout_s=5, memory_gb=2)) == (5.0, 2_000_000_000)


def test_crash_reason_reads_the_watchdog_the_faulthandler_then_the_signal(tmp_path):
    (tmp_path / "gw0.verdict.json").write_text(json.dumps({"nodeid": "x", "kind": "timeout", "reason": "timeout: t"}))
    (tmp_path / "gw0.fault").write_text("Fatal Python error: Segmentation fault\n\nThread 0x1 ...\n")
    assert crash_reason(tmp_path, "gw0", -9) == {"kind": "timeout", "reason": "timeout: t"}
    assert not (tmp_path / "gw0.verdict.json").exists()  # a replacement worker starts clean
    assert crash_reason(tmp_path, "gw0", -11) == {"kind": "signal", "reason": "segfault (SIGSEGV)"}
    (tmp_path / "gw0.fault").write_text("")
    assert "SIGKILL" in crash_reason(tmp_path, "gw0", -9)["reason"]
    assert crash_reason(tmp_path, "gw0", 3)["kind"] == "died"
    assert crash_reason(tmp_path, "gw1", None)["kind"] == "died"


WATCHED = """
import sys, time
from pathlib import Path
from resnetbench.isolation import WorkerGuard
guard = WorkerGuard(Path(sys.argv[1]), "gw0")
guard.arm("t", float(sys.argv[2]), int(float(sys.argv[3])))
print("armed", flush=True)
if sys.argv[4] == "hog":
    hoard = [bytearray(50_000_000) for _ in range(40)]
time.sleep(float(sys.argv[5]))
guard.disarm()
guard.close()
print("survived", flush=True)
"""


@pytest.mark.timing
@pytest.mark.parametrize("what,timeout,memory,sleep,survives", [
    ("hang", 0.5, 8e9, 30, False),
    ("hog", 60, 1e9, 30, False),
    ("quiet", 5, 8e9, 0.5, True),
])
def test_the_watchdog_kills_past_a_limit_and_only_then(tmp_path, what, timeout, memory, sleep, survives):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", WATCHED, str(tmp_path), str(timeout), str(memory), what, str(sleep)],
                          capture_output=True, text=True, timeout=60)
    assert ("survived" in proc.stdout) == survives, proc.stderr
    if survives:
        assert proc.returncode == 0 and not (tmp_path / "gw0.verdict.json").exists()
        return
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - start < 20
    why = crash_reason(tmp_path, "gw0", proc.returncode)
    assert why["kind"] == ("timeout" if what == "hang" else "memory"), why


def test_isolate_without_xdist_is_a_clear_error(pytester):
    pytester.makefile(".yaml", m="matrix:\n  arch: [resnet18]\n  backend: [eager]\nclaims: false\n")
    result = pytester.runpytest_subprocess("--matrix", str(Path(pytester.path) / "m.yaml"), "--isolate",
                                           "-p", "no:xdist", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--isolate needs pytest-xdist" in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
