"""pytest-xdist: the results survive, a case's tests share one worker, and timings stay alone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnetbench import quiet
from resnetbench.session import case_scope
from tests.conftest import by_id

pytestmark = pytest.mark.timing  # every test here judges measured times (docs/testing.md)

HOLD = """
import sys, time
from pathlib import Path
from resnetbench import quiet
with quiet.{mode}(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(directory: Path, mode: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(mode=mode), str(directory), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def _wait_for(lock: object) -> float:
    start = time.perf_counter()
    with lock:  # type: ignore[attr-defined]
        return time.perf_counter() - start


@pytest.mark.skipif(quiet.fcntl is None, reason="flock is POSIX")
def test_a_timing_waits_for_work_on_another_worker_and_work_waits_for_a_timing(tmp_path):
    holder = _hold(tmp_path, "shared", 1.0)
    assert _wait_for(quiet.exclusive(tmp_path)) > 0.5
    _release(holder)
    holder = _hold(tmp_path, "exclusive", 1.0)
    assert _wait_for(quiet.shared(tmp_path)) > 0.5
    _release(holder)


@pytest.mark.skipif(quiet.fcntl is None, reason="flock is POSIX")
def test_work_on_two_workers_overlaps(tmp_path):
    holder = _hold(tmp_path, "shared", 2.0)
    assert _wait_for(quiet.shared(tmp_path)) < 0.5
    _release(holder)


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="foreign load is read from /proc/stat")
def test_foreign_load_sees_another_busy_process():
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nend=time.time()+30\nwhile time.time()<end: pass"])
    try:
        time.sleep(0.3)
        with quiet.ForeignLoad() as busy:
            time.sleep(1.0)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy.cores is not None and busy.cores > 0.6 and busy.alone is False
    with quiet.ForeignLoad() as own:
        sum(i * i for i in range(3_000_000))  # our own work is not foreign
    assert own.cores is not None and own.cores < busy.cores


def test_a_case_is_scheduled_as_one_unit_and_claims_alone():
    suite = "resnetbench/suite/test_resnets.py::"
    ids = [f"{suite}test_{k}[resnet18-fp32-none-eager-b1]" for k in ("size", "accuracy", "latency")]
    assert {case_scope(i) for i in ids} == {"resnet18-fp32-none-eager-b1"}
    assert case_scope(f"{suite}test_claim[C1]") == f"{suite}test_claim[C1]"
    assert case_scope(f"{suite}test_size[resnet18-fp32-none-onnxruntime-b1]") != case_scope(ids[0])


MATRIX = """
matrix:
  arch: [resnet18]
  dtype: [fp32]
  compression: [none]
  backend: [eager, onnxruntime, openvino]
  batch: [1]
  include:
    - {arch: resnet18, dtype: int8, compression: static, backend: onnxruntime}
    - {arch: resnet18, dtype: fp32, compression: none, backend: tensorrt}
input_size: 32
latency: {warmup: 2, rounds: 6, pairs: 8, blocks: 4}
claims: false
"""
TIMINGS = {"duration_s", "conversion", "artifact"}


def _without_timings(case: dict) -> dict:
    out = {k: v for k, v in case.items() if k not in TIMINGS}
    if out.get("size"):
        out["size"] = {k: v for k, v in out["size"].items() if not k.endswith("_s")}
    return out


@pytest.mark.slow
def test_two_workers_write_the_same_results_as_a_serial_run(run_matrix):
    # --fresh-outputs: both runs execute every artifact (the second would read the first's outputs)
    serial, serial_data = run_matrix(MATRIX, "-m", "size or accuracy", "--fresh-outputs")
    assert serial.ret == 0, serial.stdout.str()[-3000:]
    parallel, parallel_data = run_matrix(MATRIX, "-m", "size or accuracy", "-n", "2", "--fresh-outputs")
    assert parallel.ret == 0, parallel.stdout.str()[-3000:]
    assert serial_data and parallel_data
    serial_cases, parallel_cases = by_id(serial_data), by_id(parallel_data)
    assert len(parallel_cases) == 5 and set(parallel_cases) == set(serial_cases)
    for case_id, case in serial_cases.items():
        assert _without_timings(parallel_cases[case_id]) == _without_timings(case), case_id
    assert parallel_data["environment"]["xdist_workers"] == 2


@pytest.mark.slow
def test_under_two_workers_every_case_is_timed_and_its_quiet_is_measured(run_matrix):
    result, data = run_matrix(MATRIX, "-n", "2", "-k", "eager or openvino")
    assert result.ret == 0, result.stdout.str()[-3000:]
    cases = by_id(data)
    assert set(cases) == {"resnet18-fp32-none-eager-b1", "resnet18-fp32-none-openvino-b1"}
    for case in cases.values():
        assert case["tests"] == {"size": "passed", "accuracy": "passed", "latency": "passed"}
        lat = case["latency"]
        assert lat["median_ms"] > 0 and len(lat["samples_ms"]) == 6
        assert isinstance(lat["ran_alone"], bool) and lat["foreign_load_cores"] >= 0
